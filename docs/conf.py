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
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
default_role = "literal"

autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-em {release}"
html_static_path = []
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
    "bernoulli.md": "Bernoulli mixtures",
    "missing.md": "Missing values: GaussianMixtureImputer against scikit-learn",
    "vae_torch.md": "VAETransformer against PyTorch",
}


def _write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _benchmark_tables():
    results = ROOT / "benchmarks" / "results"
    lines = []
    for name, title in BENCHMARK_TABLES.items():
        if (results / name).exists():
            lines += [
                title,
                "-" * len(title),
                "",
                f"From ``benchmarks/results/{name}``:",
                "",
                f".. literalinclude:: ../benchmarks/results/{name}",
                "   :language: text",
                "",
            ]
    others = (
        sorted(p.name for p in results.glob("*.md") if p.name not in BENCHMARK_TABLES)
        if results.exists()
        else []
    )
    for name in others:
        lines += [
            name,
            "-" * len(name),
            "",
            f".. literalinclude:: ../benchmarks/results/{name}",
            "   :language: text",
            "",
        ]
    if not lines:
        lines = [
            ".. note::",
            "",
            "   No benchmark results in ``benchmarks/results/`` yet: run the",
            "   scripts in ``benchmarks/`` to produce them.",
            "",
        ]
    return "\n".join(lines)


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
    _write_if_changed(GENERATED / "benchmark_tables.rst", _benchmark_tables())
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

# Docstrings write ``shape (n_features_in_,)``: in reStructuredText a bare
# ``name_`` is a link, which we point to scikit-learn's glossary entry.
rst_epilog = """
.. _n_features_in: https://scikit-learn.org/stable/glossary.html#term-n_features_in_
"""
