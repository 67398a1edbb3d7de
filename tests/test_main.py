import builtins
import io
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.decomposition import PCA

from sklearn_em import GaussianMixtureEM
from sklearn_em.__main__ import (
    _bernoulli,
    _edge_warning,
    _load_data,
    _parse_args,
    _Progress,
    _vae,
    main,
)

SMALL = [
    "--n-samples",
    "300",
    "--max-components",
    "3",
    "--pca-components",
    "4",
    "--vae-epochs",
    "2",
    "--quiet",
]

FIGURES = [
    "gaussian_model_selection.png",
    "gaussian_mixture.png",
    "bernoulli_prototypes.png",
    "bernoulli_convergence.png",
    "vae_latent_space.png",
    "vae_manifold.png",
    "vae_convergence.png",
]


def _table_rows(text):
    """{model: (K, score, what the score is, ARI, iterations)} of the table."""
    return {
        m.group(1): m.groups()[1:]
        for m in re.finditer(
            r"^(\w+)\s+(\d+)\s+(-?\d+\.\d+)\s+(\S.*?\S)\s+(-?\d\.\d+)\s+(\d+)$",
            text,
            re.MULTILINE,
        )
    }


def test_main_writes_table_and_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = io.StringIO()
    assert main([*SMALL, "--out", str(tmp_path)], out=out) == 0
    assert capsys.readouterr().err == ""  # --quiet: no progress
    text = out.getvalue()
    assert "Data: scikit-learn digits (8x8), 300 images of 64 pixels" in text
    rows = _table_rows(text)
    assert set(rows) == {"GaussianMixtureEM", "BernoulliMixtureEM", "VAETransformer"}
    k_bic, loglik, what, ari, n_iter = rows["GaussianMixtureEM"]
    # The K of the smallest BIC, computed here independently of the demo.
    args = _parse_args(SMALL)
    X, _, _, _ = _load_data(args)
    Xp = PCA(args.pca_components, random_state=args.random_state).fit_transform(X)
    bics = [
        GaussianMixtureEM(k, n_init=2, random_state=args.random_state).fit(Xp).bic(Xp)
        for k in (1, 2, 3)
    ]
    assert int(k_bic) == 1 + int(np.argmin(bics))
    assert -1 <= float(ari) <= 1 and int(n_iter) >= 1
    # Each score says what it is the likelihood of.
    assert what == "log-density of the 4 PCA scores"
    assert rows["BernoulliMixtureEM"][2] == "log-probability of the 64 binary pixels"
    assert rows["VAETransformer"][2] == (
        "ELBO <= log-probability of the 64 binary pixels"
    )
    assert "The rows model different data and are not comparable" in text
    # The Bernoulli log-likelihood and the ELBO of 64 binary pixels are
    # negative; so is the ELBO's gap to the truth, whatever its size.
    assert float(rows["BernoulliMixtureEM"][1]) < 0
    assert float(rows["VAETransformer"][1]) < 0
    assert int(rows["VAETransformer"][4]) == 2
    assert re.search(
        r"selected by BIC: [123]; by 3-fold GridSearchCV .*: [123]\.",
        " ".join(text.split()),
    )
    for name in FIGURES:
        path = tmp_path / name
        assert path.exists() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"  {name}" in text


def test_progress_inside_long_stages_and_edge_warnings(tmp_path, capsys):
    """Every fit of the BIC loop and of the search reports on stderr; a K
    chosen at the top of the grid is flagged in the report."""
    args = [*SMALL, "--max-components", "2", "--out", str(tmp_path)]
    args.remove("--quiet")
    out = io.StringIO()
    assert main(args, out=out) == 0
    progress = capsys.readouterr().err
    for k in [1, 2]:
        assert re.search(rf"^\[sklearn_em\]   K={k}: BIC \d+\.\d ", progress, re.M)
    # scikit-learn's own line per fit of the search: 2 candidates x 3 folds.
    assert "Fitting 3 folds for each of 2 candidates, totalling 6 fits" in progress
    fits = re.findall(r"^\[CV (\d)/3\] END .*gm__n_components=(\d)", progress, re.M)
    assert sorted(fits) == sorted((f, k) for f in "123" for k in "12")
    # The VAE's line per epoch.
    epochs = re.findall(r"^Iteration (\d+), loss = .*, time = ", progress, re.M)
    assert epochs and epochs == [str(i + 1) for i in range(len(epochs))]
    report = out.getvalue()
    assert "[CV" not in report and "[sklearn_em]" not in report
    # Two components beat one on digits, by both criteria: the edge of 1..2.
    report = " ".join(report.split())  # unwrap the paragraphs
    assert "selected by BIC: 2; by 3-fold GridSearchCV" in report
    for method in ["BIC", "GridSearchCV"]:
        assert (
            f"Warning: {method} chose K=2, the largest K tried: a larger K may be "
            "better still. Rerun with --max-components 4 to look further."
        ) in report


def test_no_edge_warning_inside_the_grid():
    assert _edge_warning("BIC", 2, [1, 2, 3]) is None
    assert _edge_warning("BIC", 1, [1, 2, 3]) is None  # K=1 is the least there is
    assert _edge_warning("BIC", 1, [1]) is None  # a grid of one is no choice
    assert "--max-components 6" in _edge_warning("GridSearchCV", 3, [1, 2, 3])


def test_vae_and_bernoulli_mixture_score_the_same_pixels():
    """The two rows the notes call comparable are scores of the same data."""
    args = _parse_args(SMALL)
    X, y, _, _ = _load_data(args)
    bernoulli = _bernoulli(args, X, y, _Progress(quiet=True))
    vae = _vae(args, X, y, _Progress(quiet=True))
    assert_array_equal(vae["Xb"], X > 0.5)
    bm = bernoulli["model"]
    # The mixture binarises at 0.5 itself: its score is that of the same 0/1 data.
    assert_allclose(bernoulli["row"][3], bm.score(vae["Xb"]), rtol=1e-12)
    assert_allclose(vae["row"][3], vae["model"].score(vae["Xb"]), rtol=1e-12)


def test_main_without_matplotlib(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = io.StringIO()
    assert main([*SMALL, "--out", str(tmp_path / "figs")], out=out) == 0
    text = out.getvalue()
    assert "Figures skipped: matplotlib is not installed" in text
    assert len(_table_rows(text)) == 3
    assert not (tmp_path / "figs").exists()


def test_main_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--mnist", "--out", "--n-samples", "--vae-epochs"):
        assert option in help_text


def test_main_missing_mnist(tmp_path):
    with pytest.raises(SystemExit, match="no MNIST IDX files"):
        main(["--mnist", str(tmp_path), "--quiet"])


@pytest.mark.parametrize("option", ["--max-components", "--n-samples", "--vae-epochs"])
def test_options_must_be_positive(option, capsys):
    with pytest.raises(SystemExit) as exc:
        main([option, "0", "--quiet"])
    assert exc.value.code == 2
    assert "0 is not a positive integer" in capsys.readouterr().err
