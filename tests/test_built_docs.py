"""The built HTML documentation: complete API pages, nothing rendered raw.

Every public class of the package (``__all__`` of ``sklearn_em`` and of its
subpackages) must have an API page on which each of its public methods --
found by introspecting the class, inherited ones included -- has an entry,
and each attribute of its docstring's Attributes section is listed. No page
may show an object's repr (``<... object at 0x...>``), a markdown table left
as text, or a section titled with a raw ``.md`` file name.

Sphinx does not notice when an API page lacks its methods (an autosummary
template it cannot find falls back silently to one without members), so the
check reads the built HTML. It needs the documentation built first::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    SKLEARN_EM_DOCS_HTML=docs/_build/html python -m pytest tests/test_built_docs.py

Without ``SKLEARN_EM_DOCS_HTML`` that check is skipped (a stale build in a
working copy would otherwise fail it); ``.ci/run`` sets it after building the
documentation, and then a missing build or page fails. The other tests here
check the checker itself on small HTML files they write.
"""

import inspect
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from numpydoc.docscrape import ClassDoc

import sklearn_em
import sklearn_em.impute
import sklearn_em.mixture
import sklearn_em.plotting
import sklearn_em.vae
from sklearn_em import GaussianMixtureEM, VAETransformer

PUBLIC_MODULES = [
    sklearn_em,
    sklearn_em.mixture,
    sklearn_em.impute,
    sklearn_em.vae,
    sklearn_em.plotting,
]
API_PAGES = Path("api") / "generated"
HTML_ENV = "SKLEARN_EM_DOCS_HTML"


def public_classes(modules=PUBLIC_MODULES):
    """Map each public class to the name of its API page.

    A class exported by several modules is documented under the first one
    (``sklearn_em.GaussianMixtureEM`` rather than
    ``sklearn_em.mixture.GaussianMixtureEM``), as ``docs/api.rst`` does.
    """
    pages = {}
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and obj not in pages:
                pages[obj] = f"{module.__name__}.{name}"
    return pages


def public_methods(cls):
    """The public methods of ``cls``, inherited ones included."""
    return sorted(
        name
        for name in dir(cls)
        if not name.startswith("_") and inspect.isroutine(getattr(cls, name))
    )


def documented_attributes(cls):
    """The names in the Attributes section of the class docstring."""
    return sorted(
        name.strip()
        for attribute in ClassDoc(cls)["Attributes"]
        for name in attribute.name.split(",")
    )


class _PageEntries(HTMLParser):
    """Collects the ids of an API page's object entries and the names its
    numpydoc Attributes sections list."""

    def __init__(self):
        super().__init__()
        self.ids = set()
        self.attributes = set()
        self._field = None  # the name of the current numpydoc field list
        self._in_field_dt = False
        self._in_strong = False
        self._text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "dt" and "sig-object" in classes and attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "dt" and any(c.startswith("field-") for c in classes):
            self._in_field_dt, self._text = True, []
        if tag == "strong" and self._field == "Attributes":
            self._in_strong, self._text = True, []

    def handle_endtag(self, tag):
        if tag == "dt" and self._in_field_dt:
            self._in_field_dt = False
            self._field = "".join(self._text).strip().rstrip(":")
        if tag == "strong" and self._in_strong:
            self._in_strong = False
            self.attributes.add("".join(self._text).strip())

    def handle_data(self, data):
        if self._in_field_dt or self._in_strong:
            self._text.append(data)


def missing_entries(page_html, page_name, cls):
    """What the API page of ``cls`` lacks: 'method NAME' and 'attribute NAME'."""
    parser = _PageEntries()
    parser.feed(page_html)
    missing = []
    if page_name not in parser.ids:
        missing.append(f"class {page_name}")
    missing += [
        f"method {name}"
        for name in public_methods(cls)
        if f"{page_name}.{name}" not in parser.ids
    ]
    missing += [
        f"attribute {name}"
        for name in documented_attributes(cls)
        if name not in parser.attributes
    ]
    return missing


_RAW_RENDERINGS = {
    "an object repr": re.compile(r"&lt;[\w.]+ object at 0x[0-9a-f]+&gt;"),
    "a matplotlib Text repr": re.compile(r"(?:\[|>)Text\(-?\d"),
    "a markdown table": re.compile(r"\|\s*:?-{3,}:?\s*\|"),
    "a heading naming a .md file": re.compile(r"<h[1-6][^>]*>[^<]*\.md\b"),
}


def problems_in_build(html_dir, classes=None):
    """Every problem of the built documentation in ``html_dir``, as text."""
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        return [f"no built documentation in {html_dir} (no index.html)"]
    classes = public_classes() if classes is None else classes
    problems = []
    for cls, page_name in classes.items():
        page = html_dir / API_PAGES / f"{page_name}.html"
        if not page.is_file():
            problems.append(f"{page_name}: no API page ({page})")
            continue
        problems += [
            f"{page_name}: no {entry}"
            for entry in missing_entries(
                page.read_text(encoding="utf-8"), page_name, cls
            )
        ]
    for page in sorted(html_dir.rglob("*.html")):
        relative = page.relative_to(html_dir)
        if relative.parts[0] in {"_modules", "_sources", "_static", "_images"}:
            continue
        text = page.read_text(encoding="utf-8")
        for what, pattern in _RAW_RENDERINGS.items():
            match = pattern.search(text)
            if match:
                problems.append(f"{relative}: shows {what}: {match.group(0)!r}")
    return problems


# ----------------------------------------------------------------------
# The built documentation (CI: after the Sphinx build)


def test_built_documentation_is_complete():
    html_dir = os.environ.get(HTML_ENV)
    if not html_dir:
        pytest.skip(f"set {HTML_ENV} to the folder of a fresh Sphinx HTML build")
    problems = problems_in_build(html_dir)
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------
# The checker itself


def test_public_methods_come_from_the_classes():
    gm_methods = public_methods(GaussianMixtureEM)
    for name in ["fit", "partial_fit", "predict_proba", "bic", "sample", "transform"]:
        assert name in gm_methods
    # Inherited from scikit-learn's mixins, and generated ones.
    for name in ["get_params", "set_params", "fit_transform", "set_output"]:
        assert name in gm_methods
    assert "inverse_transform" in public_methods(VAETransformer)
    assert not any(name.startswith("_") for name in gm_methods)

    class WithOneMore(GaussianMixtureEM):
        def explain(self):
            """A method added in a subclass."""

    assert set(public_methods(WithOneMore)) - set(gm_methods) == {"explain"}


def test_every_public_estimator_has_a_page_name():
    pages = public_classes()
    assert pages[GaussianMixtureEM] == "sklearn_em.GaussianMixtureEM"
    assert pages[VAETransformer] == "sklearn_em.VAETransformer"
    assert pages[sklearn_em.plotting.MixtureDisplay] == (
        "sklearn_em.plotting.MixtureDisplay"
    )
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            if inspect.isclass(getattr(module, name)):
                assert getattr(module, name) in pages


def _page(page_name, methods, attributes):
    """A page laid out as Sphinx and numpydoc write an API page."""
    entries = "".join(
        f'<dl class="py method"><dt class="sig sig-object py" '
        f'id="{page_name}.{m}"><span>{m}</span></dt><dd></dd></dl>'
        for m in methods
    )
    fields = "".join(
        f'<dt><strong>{a}</strong><span class="classifier">int</span></dt>'
        f"<dd><p>About {a}.</p></dd>"
        for a in attributes
    )
    return (
        f'<html><body><dl class="py class"><dt class="sig sig-object py" '
        f'id="{page_name}">class</dt><dd><dl class="field-list">'
        f'<dt class="field-odd">Parameters<span class="colon">:</span></dt>'
        f'<dd class="field-odd"><dl><dt><strong>n_components</strong></dt>'
        f"<dd></dd></dl></dd>"
        f'<dt class="field-even">Attributes<span class="colon">:</span></dt>'
        f'<dd class="field-even"><dl>{fields}</dl></dd></dl>{entries}</dd></dl>'
        "</body></html>"
    )


def _write_build(html_dir, classes, drop=()):
    (html_dir / API_PAGES).mkdir(parents=True)
    (html_dir / "index.html").write_text("<html><body>Welcome</body></html>")
    for cls, page_name in classes.items():
        methods = [m for m in public_methods(cls) if m not in drop]
        attributes = [a for a in documented_attributes(cls) if a not in drop]
        (html_dir / API_PAGES / f"{page_name}.html").write_text(
            _page(page_name, methods, attributes)
        )


def test_checker_passes_a_complete_build(tmp_path):
    _write_build(tmp_path, public_classes())
    assert problems_in_build(tmp_path) == []


@pytest.mark.parametrize("dropped", ["partial_fit", "set_output", "means_"])
def test_checker_reports_a_missing_member(tmp_path, dropped):
    classes = {GaussianMixtureEM: "sklearn_em.GaussianMixtureEM"}
    _write_build(tmp_path, classes, drop=[dropped])
    kind = "attribute" if dropped.endswith("_") else "method"
    # BernoulliMixtureEM has means_ too, but only the one page was written.
    assert problems_in_build(tmp_path, classes) == [
        f"sklearn_em.GaussianMixtureEM: no {kind} {dropped}"
    ]


def test_checker_reports_a_page_without_any_method(tmp_path):
    # What the silent fallback to autosummary's base template produces.
    classes = {VAETransformer: "sklearn_em.VAETransformer"}
    _write_build(tmp_path, classes, drop=public_methods(VAETransformer))
    problems = problems_in_build(tmp_path, classes)
    assert len(problems) == len(public_methods(VAETransformer))
    assert "sklearn_em.VAETransformer: no method transform" in problems


def test_checker_reports_missing_pages_and_builds(tmp_path):
    assert problems_in_build(tmp_path / "nowhere") == [
        f"no built documentation in {tmp_path / 'nowhere'} (no index.html)"
    ]
    classes = public_classes()
    _write_build(tmp_path, classes)
    (tmp_path / API_PAGES / "sklearn_em.plotting.ManifoldDisplay.html").unlink()
    problems = problems_in_build(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("sklearn_em.plotting.ManifoldDisplay: no API page")


@pytest.mark.parametrize(
    "html, what",
    [
        (
            "<p>&lt;sklearn_em.plotting._mixture.MixtureDisplay object at "
            "0x7f748b1c1c50&gt;</p>",
            "an object repr",
        ),
        ("<pre>| K | s |\n|---|---:|\n| 10 | 0.4 |</pre>", "a markdown table"),
        ('<h2 id="dask-md">dask.md<a class="headerlink"></a></h2>', "a heading"),
        (
            "<pre>[Text(0.5, 23.63, 'Phi(z_1)'), Text(69.9, 0.5, 'Phi(z_2)')]</pre>",
            "a matplotlib Text repr",
        ),
        ("<pre><span></span>Text(0.5, 1.0, 'K=4')</pre>", "a matplotlib Text repr"),
    ],
)
def test_checker_reports_raw_renderings(tmp_path, html, what):
    _write_build(tmp_path, public_classes())
    (tmp_path / "auto_examples").mkdir()
    (tmp_path / "auto_examples" / "page.html").write_text(f"<body>{html}</body>")
    problems = problems_in_build(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(f"auto_examples{os.sep}page.html: shows {what}")
