"""Claims of the README that no other test covers as stated.

The README's code examples run as doctests; the other claims are tested where
the estimators are (tests/mixture, tests/vae, tests/plotting, test_common.py,
test_main.py). These tests cover the rest: the drop-in API, the runtime
dependencies, the estimator contracts, the smoothing default, and what a Dask
block sends back.
"""

import inspect
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tomllib
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from sklearn_em import (
    BernoulliMixtureEM,
    GaussianMixtureEM,
    GaussianMixtureImputer,
    VAETransformer,
)

ROOT = Path(__file__).resolve().parents[1]


def _public_methods(cls):
    return {
        name
        for name in dir(cls)
        if not name.startswith("_") and inspect.isroutine(getattr(cls, name))
    }


def _fitted_attributes(estimator):
    return {k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")}


def test_gaussian_mixture_em_is_a_drop_in_api():
    """'Swapping the import changes nothing else in your code': every public
    method of scikit-learn's GaussianMixture exists, and takes its parameters
    in the same order with the same defaults; every constructor parameter has
    the same default; a fit sets every attribute scikit-learn's sets."""
    for name in sorted(_public_methods(GaussianMixture)):
        theirs = inspect.signature(getattr(GaussianMixture, name)).parameters
        ours = inspect.signature(getattr(GaussianMixtureEM, name)).parameters
        ours_first = list(ours.values())[: len(theirs)]
        assert [(p.name, p.default) for p in ours_first] == [
            (p.name, p.default) for p in theirs.values()
        ], name
    ref_params = GaussianMixture().get_params()
    our_params = GaussianMixtureEM().get_params()
    assert {k: our_params[k] for k in ref_params} == ref_params

    X = np.random.default_rng(0).normal(size=(60, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(2, max_iter=3, random_state=0).fit(X)
        ours = GaussianMixtureEM(2, max_iter=3, random_state=0).fit(X)
    assert _fitted_attributes(ref) <= _fitted_attributes(ours)


@pytest.mark.parametrize(
    "estimator, methods",
    [
        (
            GaussianMixtureEM,
            {"fit", "predict", "predict_proba", "transform", "score_samples"},
        ),
        (
            BernoulliMixtureEM,
            {"fit", "predict", "predict_proba", "transform", "score_samples"},
        ),
        (
            VAETransformer,
            {"fit", "transform", "inverse_transform", "score_samples", "sample"},
        ),
        (
            GaussianMixtureImputer,
            {"fit", "transform", "fit_transform", "get_feature_names_out"},
        ),
    ],
)
def test_estimator_contracts_named_in_the_readme(estimator, methods):
    assert methods <= _public_methods(estimator)


def test_runtime_dependencies_are_numpy_scipy_sklearn_joblib():
    """The estimators fit and transform with every optional package
    (matplotlib, Dask, pandas, PyTorch) made unimportable."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in dependencies}
    assert names == {"numpy", "scipy", "scikit-learn", "joblib"}
    script = """
import sys

OPTIONAL = {"matplotlib", "dask", "distributed", "pandas", "polars", "torch"}

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OPTIONAL:
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, Absent())
import numpy as np
import sklearn_em
X = np.random.default_rng(0).random((40, 6))
sklearn_em.GaussianMixtureEM(2, random_state=0).fit(X).transform(X)
sklearn_em.BernoulliMixtureEM(2, binarize=0.5, random_state=0).fit(X).predict(X)
sklearn_em.VAETransformer(2, max_iter=1, random_state=0).fit(X).transform(X)
X[::3, 1] = np.nan
sklearn_em.GaussianMixtureEM(2, random_state=0).fit(X).score_samples(X)
sklearn_em.GaussianMixtureImputer(random_state=0).fit_transform(X)
print("fitted")
"""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fitted"


def test_bernoulli_default_prior_is_add_one_smoothing():
    """Beta(2, 2): (sum r x + 1) / (N_k + 2), by the M-step that
    tests/mixture/test_bernoulli.py checks for any alpha and beta."""
    params = BernoulliMixtureEM().get_params()
    assert (params["alpha"], params["beta"]) == (2.0, 2.0)


def test_dask_blocks_send_back_statistics_not_rows(monkeypatch):
    """'Only the per-block statistics travel, never the rows': what each
    block's task returns has K (1 + D + D^2) + 2 numbers for full covariances
    (sums of weights, of x and of x x^T per component, the total weight and
    the log-likelihood), however many rows the block has."""
    da = pytest.importorskip("dask.array")
    from sklearn_em.mixture import _dask

    returned = []
    block_statistics = _dask._block_statistics

    def recording(*args, **kwargs):
        stats = block_statistics(*args, **kwargs)
        returned.append(sum(np.size(v) for v in stats.values()))
        return stats

    monkeypatch.setattr(_dask, "_block_statistics", recording)
    n_components, n_features = 3, 4
    X = np.random.default_rng(0).normal(size=(3000, n_features))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        GaussianMixtureEM(
            n_components, max_iter=2, random_state=0, init_params="random"
        ).fit(da.from_array(X, chunks=(1000, n_features)))
    assert len(returned) >= 3  # every block of every iteration
    expected = n_components * (1 + n_features + n_features**2) + 2
    assert set(returned) == {expected}
