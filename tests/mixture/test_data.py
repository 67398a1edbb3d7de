"""The data layer: one interface over in-memory and Dask data."""

import ast
import pathlib
from functools import partial

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_em import BernoulliMixtureEM, GaussianMixtureEM
from sklearn_em.mixture import _suffstats
from sklearn_em.mixture._arrays import ArrayData
from sklearn_em.mixture._data import as_data

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "sklearn_em"
COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _package_imports():
    """Module -> the package's modules it imports (at any depth of the code)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if parts[-1] == "__init__" else module.rsplit(".", 1)[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0]
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                if target.startswith("sklearn_em"):
                    imported.add(target)
            elif isinstance(node, ast.Import):
                imported |= {
                    a.name for a in node.names if a.name.startswith("sklearn_em")
                }
        graph[module] = imported
    return graph


def test_package_has_no_import_cycle():
    graph = _package_imports()
    # A package's __init__ re-exports its modules: edges into a package are
    # edges into its __init__, which may import its own submodules.
    state = {}

    def visit(module, stack):
        state[module] = "active"
        for target in graph.get(module, ()):
            if target not in graph:
                continue
            if state.get(target) == "active":
                raise AssertionError(" -> ".join([*stack, module, target]))
            if target not in state:
                visit(target, [*stack, module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])
    # The check sees the package's own modules.
    assert "sklearn_em.mixture._data" in graph
    assert "sklearn_em.mixture._arrays" in graph["sklearn_em.mixture._data"]


def test_base_never_asks_the_kind_of_data():
    source = (PACKAGE / "mixture" / "_base.py").read_text()
    assert "is_dask_collection" not in source
    assert "_dask" not in source


def _blobs(n_samples=3000, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5, size=(3, n_features))
    return centres[rng.integers(3, size=n_samples)] + rng.normal(
        size=(n_samples, n_features)
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_prediction_runs_on_the_engines_threads(covariance_type, monkeypatch):
    X = _blobs()
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0)
    gm.fit(X)
    expected = {
        method: getattr(gm, method)(X)
        for method in ["predict", "predict_proba", "score_samples"]
    }
    calls = []
    original = _suffstats.thread_pool

    def counting_pool(n_jobs):
        calls.append(n_jobs)
        return original(n_jobs)

    monkeypatch.setattr(_suffstats, "thread_pool", counting_pool)
    gm.set_params(n_jobs=2)
    with sklearn.config_context(working_memory=1):
        # Many small chunks over two threads: the same numbers.
        assert gm._rows(X) < X.shape[0]
        for method, value in expected.items():
            result = getattr(gm, method)(X)
            assert result.dtype == value.dtype
            assert_allclose(result, value, rtol=1e-12, atol=1e-12)
    assert calls and set(calls) == {2}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_prediction_equals_the_direct_densities(covariance_type):
    # The fused prediction kernels against scipy's densities.
    from scipy.stats import multivariate_normal

    X = _blobs(n_samples=200)
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    covariances = {
        "full": lambda c: c,
        "tied": lambda c: np.stack([c] * 3),
        "diag": lambda c: np.stack([np.diag(v) for v in c]),
        "spherical": lambda c: np.stack([np.eye(3) * v for v in c]),
    }[covariance_type](gm.covariances_)
    log_prob = np.column_stack(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(gm.weights_, gm.means_, covariances)
        ]
    )
    expected = np.logaddexp.reduce(log_prob, axis=1)
    assert_allclose(gm.score_samples(X), expected, rtol=1e-10)
    assert_allclose(
        gm.predict_proba(X), np.exp(log_prob - expected[:, None]), atol=1e-10
    )


def test_float32_model_predicts_float64_input():
    X = _blobs(n_samples=500)
    gm = GaussianMixtureEM(3, random_state=0).fit(X.astype(np.float32))
    proba = gm.predict_proba(X)
    assert proba.dtype == np.float32
    assert_allclose(proba, gm.predict_proba(X.astype(np.float32)), atol=1e-5)


def test_array_data_drops_zero_weights_and_counts_rows():
    X = _blobs(n_samples=10)
    w = np.r_[np.zeros(3), np.ones(7)]
    data = as_data(GaussianMixtureEM(2), X, w, reset=True)
    assert isinstance(data, ArrayData)
    assert data.shape == (7, 3) and data.n_samples == 7 and data.dtype == np.float64
    assert_array_equal(data.X, X[3:])
    with pytest.raises(ValueError, match="positive sample_weight"):
        as_data(GaussianMixtureEM(8), X, w, reset=True)


# ----------------------------------------------------------------------
# A fit that raises leaves the model as it was.
def _state(estimator):
    params = estimator.get_params(deep=False)
    return {k: v for k, v in vars(estimator).items() if k not in params}


def _assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, dict):
            _assert_same_state(value, after[key])
        elif isinstance(value, np.ndarray):
            assert_array_equal(after[key], value, err_msg=key)
        else:
            assert after[key] == value, key


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_failed_partial_fit_leaves_the_model_unchanged(covariance_type):
    X = _blobs(n_samples=300)
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0)
    gm.partial_fit(X[:150])
    before = _state(gm)
    proba = gm.predict_proba(X)
    # A failure in the M-step, after the statistics were blended.
    with pytest.raises(ValueError):
        gm.set_params(reg_covar=-1.0).partial_fit(X[150:])
    gm.set_params(reg_covar=1e-6)
    _assert_same_state(before, _state(gm))
    assert_array_equal(gm.predict_proba(X), proba)
    # The model still works on good data.
    gm.partial_fit(X[150:])
    assert gm.n_batch_iter_ == 2


def test_failed_partial_fit_injected_in_the_m_step(monkeypatch):
    X = _blobs(n_samples=300)
    gm = GaussianMixtureEM(3, random_state=0).partial_fit(X[:150])
    before = _state(gm)

    def failing_m_step(self, stats, initial=False):
        self.weights_ = np.full(3, np.nan)  # half-updated, then a failure
        raise FloatingPointError("injected")

    monkeypatch.setattr(GaussianMixtureEM, "_m_step", failing_m_step)
    with pytest.raises(FloatingPointError, match="injected"):
        gm.partial_fit(X[150:])
    monkeypatch.undo()
    _assert_same_state(before, _state(gm))


@pytest.mark.parametrize("Estimator", [GaussianMixtureEM, BernoulliMixtureEM])
def test_failed_fit_leaves_a_fitted_model_unchanged(Estimator, monkeypatch):
    X = (_blobs(n_samples=300) > 0).astype(float)
    model = Estimator(3, random_state=0).fit(X)
    before = _state(model)
    calls = []
    original = Estimator._m_step

    def failing_after_two(self, stats, initial=False):
        calls.append(1)
        if len(calls) > 2:
            raise FloatingPointError("injected")
        return original(self, stats, initial)

    monkeypatch.setattr(Estimator, "_m_step", failing_after_two)
    with pytest.raises(FloatingPointError):
        model.set_params(random_state=1).fit(X)
    monkeypatch.undo()
    _assert_same_state(before, _state(model))
    # An unfitted model stays unfitted.
    fresh = Estimator(3)
    with pytest.raises(ValueError):
        fresh.fit(np.full((5, 3), np.nan))
    assert not hasattr(fresh, "n_features_in_")


@pytest.mark.parametrize("Estimator", [GaussianMixtureEM, BernoulliMixtureEM])
def test_partial_fit_keeps_the_first_fits_dtype(Estimator):
    X = (_blobs(n_samples=300) > 0).astype(np.float32)
    model = Estimator(3, random_state=0).partial_fit(X[:150])
    model.partial_fit(X[150:].astype(np.float64))
    if Estimator is BernoulliMixtureEM:
        model.partial_fit(sp.csr_matrix(X[150:].astype(np.float64)))
    assert model.means_.dtype == np.float32
    assert model.weights_.dtype == np.float32
    assert model.predict_proba(X).dtype == np.float32


def test_partial_fit_float32_model_rejects_values_beyond_float32():
    X = _blobs(n_samples=300).astype(np.float32)
    gm = GaussianMixtureEM(3, random_state=0).partial_fit(X)
    with pytest.raises(ValueError, match="too large for the model's dtype float32"):
        gm.partial_fit(np.full((10, 3), 1e300))


@pytest.mark.parametrize(
    "Estimator", [GaussianMixtureEM, partial(BernoulliMixtureEM, binarize=0.5)]
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_prediction_takes_a_plain_float_array_as_it_is(Estimator, dtype, monkeypatch):
    # A fitted model's prediction on a float ndarray with its features skips
    # validate_data (which returns such an array itself); every other input
    # still goes through it, with its errors.
    from sklearn_em.mixture import _arrays

    rng = np.random.RandomState(0)
    X = rng.uniform(size=(40, 3)).astype(dtype)
    model = Estimator(n_components=2, random_state=0).fit(X)
    validated = []
    validate_data = _arrays.validate_data

    def spy(*args, **kwargs):
        validated.append(args[1])
        return validate_data(*args, **kwargs)

    monkeypatch.setattr(_arrays, "validate_data", spy)
    # (A list is validated to float64: a float32 model predicts it in float64.)
    expected = model.predict_proba(X.tolist())
    assert len(validated) == 1
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(model.predict_proba(X), expected, rtol=rtol)
    assert_allclose(model.predict_proba(X[::2]), expected[::2], rtol=rtol)
    assert_allclose(model.predict_proba(np.asfortranarray(X)), expected, rtol=rtol)
    assert len(validated) == 1
    # Not plain: another dtype, other features, no rows, one dimension.
    half = X.astype(np.float16)
    assert_allclose(
        model.predict_proba(half), model.predict_proba(half.astype(np.float64))
    )
    with pytest.raises(ValueError, match="X has 2 features, but .* is expecting 3"):
        model.predict_proba(X[:, :2])
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        model.predict_proba(X[:0])
    with pytest.raises(ValueError, match="Expected 2D array"):
        model.predict_proba(X[0])
    assert len(validated) == 5


def test_prediction_of_a_model_fitted_on_named_features_still_warns():
    pd = pytest.importorskip("pandas")
    X = np.random.RandomState(0).normal(size=(40, 2))
    model = GaussianMixtureEM(2, random_state=0).fit(
        pd.DataFrame(X, columns=["a", "b"])
    )
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        model.predict(X)
