import builtins
import io
import re

import pytest

from sklearn_em.__main__ import main

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
    return {
        m.group(1).strip(): m.groups()[1:]
        for m in re.finditer(
            r"^(\w+[^\n]*?)\s+(\d+)\s+(-?\d+\.\d+)\s+(-?\d\.\d+)\s+(\d+)$",
            text,
            re.MULTILINE,
        )
    }


def test_main_writes_table_and_figures(tmp_path):
    pytest.importorskip("matplotlib")
    out = io.StringIO()
    assert main([*SMALL, "--out", str(tmp_path)], out=out) == 0
    text = out.getvalue()
    assert "Data: scikit-learn digits (8x8), 300 images of 64 pixels" in text
    rows = _table_rows(text)
    assert set(rows) == {
        "GaussianMixtureEM (PCA 4)",
        "BernoulliMixtureEM",
        "VAETransformer (ELBO)",
    }
    k_bic, loglik, ari, n_iter = rows["GaussianMixtureEM (PCA 4)"]
    assert 2 <= int(k_bic) <= 3
    assert -1 <= float(ari) <= 1 and int(n_iter) >= 1
    # The Bernoulli log-likelihood and the ELBO of 64 pixels are negative.
    assert float(rows["BernoulliMixtureEM"][1]) < 0
    assert float(rows["VAETransformer (ELBO)"][1]) < 0
    assert int(rows["VAETransformer (ELBO)"][3]) == 2
    assert re.search(r"selected by BIC: [23]; by 3-fold GridSearchCV .*: [23]\.", text)
    for name in FIGURES:
        path = tmp_path / name
        assert path.exists() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"  {name}" in text


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
