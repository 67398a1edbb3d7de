"""Sphinx configuration of the sklearn-em documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(the gallery in ``examples/`` executes; install ``".[docs]"`` first).
"""

import os
import sys
from pathlib import Path

import sklearn_em

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "_build" / "_generated"

# Examples execute without a display.
os.environ.setdefault("MPLBACKEND", "Agg")

project = "sklearn-em"
author = "sklearn-em developers"
copyright = "2025, sklearn-em developers"
version = release = sklearn_em.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
default_role = "literal"

autosummary_generate = True
numpydoc_show_class_members = True
numpydoc_class_members_toctree = False

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-em {release}"
html_static_path = []
# Pages without sub-pages need no section navigation: the width goes to
# their tables.
html_sidebars = {"benchmarks": [], "install": [], "glossary": []}
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "matplotlib_animations": False,
}


# ----------------------------------------------------------------------------
# Pages whose sources appear during development: the benchmark tables written
# by the scripts in benchmarks/ and the pages of other authors. Only the ones
# that exist are included, so that the build never warns about a missing file.

BENCHMARK_TABLES = {
    "em.md": "Gaussian mixtures: GaussianMixtureEM against scikit-learn",
    "bernoulli.md": "Bernoulli mixtures: BernoulliMixtureEM against pomegranate",
    "missing.md": "Missing values: GaussianMixtureImputer against scikit-learn",
    "vae_torch.md": "VAETransformer against PyTorch",
    "dask.md": "Dask: GaussianMixtureEM on a Dask cluster against in memory",
    "small_shapes.md": "Gaussian mixtures on small shapes: EM iterations against "
    "scikit-learn",
    "small_shapes_default.md": "Gaussian mixtures on small shapes: default fits "
    "against scikit-learn",
    "small_shapes_default_float32.md": "Gaussian mixtures on small shapes: "
    "default fits of float32 data against scikit-learn",
    "small_shapes_float32.md": "Gaussian mixtures on small shapes: EM "
    "iterations on float32 data against scikit-learn",
    "predict.md": "Gaussian mixtures: prediction (predict_proba, score_samples, "
    "predict) against scikit-learn",
    "predict_wide.md": "Gaussian mixtures on wide data: prediction against "
    "scikit-learn",
    "small_shapes_default_wide.md": "Gaussian mixtures on wide data: default "
    "fits against scikit-learn",
    "sweep.md": "Gaussian mixtures: EM iterations across shapes against "
    "scikit-learn",
    "rate_ceiling.md": "Gaussian mixtures: the sweep's products alone against "
    "the machine's dgemm rate",
}


def _write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _results_title(path):
    """A section title for a results file that BENCHMARK_TABLES does not name."""
    script = ROOT / "benchmarks" / f"bench_{path.stem}.py"
    if script.exists():
        return f"Results of benchmarks/bench_{path.stem}.py"
    return f"Results in benchmarks/results/{path.name}"


def _results_markdown(path, title):
    """One results file as a MyST section titled ``title``.

    The file's own level-1 headings become paragraphs (the section has its
    title already); deeper headings stay, one level below it. Code blocks
    without a language are plain text, not Python.
    """
    lines = [f"# {title}", "", f"From `benchmarks/results/{path.name}`:", ""]
    in_fence = False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            if not in_fence and line.strip() == "```":
                line = line.replace("```", "```text")
            in_fence = not in_fence
        elif not in_fence and line.startswith("# "):
            line = line[2:].strip()
        lines.append(line)
    return "\n".join(lines) + "\n"


def _benchmark_tables():
    """The results files in benchmarks/results/ as one MyST document."""
    results = ROOT / "benchmarks" / "results"
    present = sorted(results.glob("*.md")) if results.exists() else []
    order = {name: i for i, name in enumerate(BENCHMARK_TABLES)}
    present.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
    sections = [
        _results_markdown(p, BENCHMARK_TABLES.get(p.name) or _results_title(p))
        for p in present
    ]
    if not sections:
        sections = [
            "No benchmark results in `benchmarks/results/` yet: run the scripts "
            "in `benchmarks/` to produce them.\n"
        ]
    return "\n".join(sections)


def _optional_toctree(caption, docnames):
    present = [d for d in docnames if (DOCS / f"{d}.rst").exists()]
    if not present:
        return ""
    lines = [".. toctree::", "   :maxdepth: 2"]
    if caption:
        lines.append(f"   :caption: {caption}")
    lines.append("")
    lines += [f"   /{d}" for d in present]
    return "\n".join(lines) + "\n"


def _generate_pages():
    _write_if_changed(GENERATED / "benchmark_tables.md", _benchmark_tables())
    _write_if_changed(
        GENERATED / "user_guide_extra.rst",
        _optional_toctree(None, ["user_guide/scaling"]),
    )
    design = (
        sorted(f"design/{p.stem}" for p in (DOCS / "design").glob("*.rst"))
        if (DOCS / "design").exists()
        else []
    )
    _write_if_changed(
        GENERATED / "design_toctree.rst", _optional_toctree("Design", design)
    )


_generate_pages()
sys.path.insert(0, str(DOCS))

# The methods the estimators inherit from scikit-learn (get_metadata_routing,
# set_output, set_fit_request...) keep scikit-learn's docstrings, whose
# cross-references point into scikit-learn's documentation. Without network
# access at build time there is no intersphinx inventory: these few targets,
# and the public scikit-learn classes and functions the docstrings name, are
# linked to scikit-learn's stable pages here; any other unresolved reference
# still fails the build.
SKLEARN_DOCS = "https://scikit-learn.org/stable/"
SKLEARN_REFERENCES = {
    ("ref", "metadata_routing"): ("metadata_routing.html", None),
    ("ref", "df_output_transform"): ("modules/df_output_transform.html", None),
    ("ref", "sphx_glr_auto_examples_miscellaneous_plot_set_output.py"): (
        "auto_examples/miscellaneous/plot_set_output.html",
        "Introducing the set_output API",
    ),
    ("term", "meta-estimator"): ("glossary.html#term-meta-estimator", None),
}


def _sklearn_api_page(target):
    """The page of a public scikit-learn class or function, or None."""
    import importlib
    import inspect

    module_name, _, name = target.rpartition(".")
    if not module_name.startswith("sklearn") or name.startswith("_"):
        return None
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return None
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return f"modules/generated/{target}.html"
    return None


def _link_sklearn_reference(app, env, node, contnode):
    """Resolve references to scikit-learn's documentation (see above)."""
    from docutils import nodes

    target = node.get("reftarget", "")
    if node.get("refdomain") == "py":
        page, title = _sklearn_api_page(target), None
    else:
        key = (node.get("reftype"), target.lower())
        if node.get("refdomain") != "std" or key not in SKLEARN_REFERENCES:
            return None
        page, title = SKLEARN_REFERENCES[key]
    if page is None:
        return None
    content = nodes.Text(title) if title is not None else contnode
    return nodes.reference("", "", content, internal=False, refuri=SKLEARN_DOCS + page)


def setup(app):
    app.connect("missing-reference", _link_sklearn_reference)


# Docstrings write ``shape (n_features_in_,)``: in reStructuredText a bare
# ``name_`` is a link, which we point to scikit-learn's glossary entry.
rst_epilog = """
.. _n_features_in: https://scikit-learn.org/stable/glossary.html#term-n_features_in_
"""
