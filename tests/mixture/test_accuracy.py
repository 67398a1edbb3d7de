"""Precision guards of the fused Gaussian E-step.

The fast E-step expands the quadratic forms into products with x x^T
features around a common centre, which cancels terms of size
kappa_k = |U_k^T (mu_k - centre)|^2. These tests use data where that matters
-- far from the origin, tight clusters far apart -- in float32 and float64,
and compare with a direct, per-component computation in long double.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp

from sklearn_em import GaussianMixtureEM
from sklearn_em.mixture._data import as_data
from sklearn_em.mixture._gaussian import (
    _compute_precision_cholesky,
    _expanded_coefficients,
    _expansion_limit,
    _per_component_factors,
    _per_component_limit,
)

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _data(
    offset, spread, scale, dtype, n_samples=600, n_features=4, seed=0, n_clusters=3
):
    """Clusters ``spread`` apart with noise ``scale``, shifted by ``offset``."""
    rng = np.random.RandomState(seed)
    centres = offset + spread * rng.normal(size=(n_clusters, n_features))
    labels = np.arange(n_samples) % n_clusters
    noise = rng.normal(size=(n_samples, n_features)) * scale
    return (centres[labels] + noise).astype(dtype), centres, labels


def _float32_blobs(n_features, n_components, spread, n_samples=6000):
    """float32 clusters ``spread`` apart, each feature's scale in [0.5, 2]."""
    rng = np.random.RandomState(0)
    centres = rng.normal(scale=spread, size=(n_components, n_features))
    scales = rng.uniform(0.5, 2.0, size=(n_components, n_features))
    labels = rng.randint(n_components, size=n_samples)
    noise = rng.normal(size=(n_samples, n_features))
    return (centres[labels] + noise * scales[labels]).astype(np.float32)


def _model(X, centres, labels, covariance_type):
    """A model set at the clusters' sample moments (the EM fixed point)."""
    X64 = X.astype(np.float64)
    n = len(centres)
    means = np.stack([X64[labels == k].mean(0) for k in range(n)])
    covs = np.stack(
        [np.cov(X64[labels == k].T, bias=True) for k in range(n)]
    ) + 1e-12 * np.eye(X.shape[1])
    covariances = {
        "full": covs,
        "tied": covs.mean(0),
        "diag": np.diagonal(covs, axis1=1, axis2=2).copy(),
        "spherical": np.diagonal(covs, axis1=1, axis2=2).mean(1),
    }[covariance_type]
    gm = GaussianMixtureEM(n_components=n, covariance_type=covariance_type)
    gm.weights_ = np.full(n, 1 / n).astype(X.dtype)
    gm.means_ = means.astype(X.dtype)
    gm.precisions_cholesky_ = _compute_precision_cholesky(
        covariances, covariance_type
    ).astype(X.dtype)
    return gm


def _reference(X, gm):
    """log pi_k + log N(x | mu_k, Sigma_k) and resp-weighted second moments
    around the means, per component, in long double."""
    X = X.astype(np.longdouble)
    means = gm.means_.astype(np.longdouble)
    chol = np.asarray(gm.precisions_cholesky_, dtype=np.longdouble)
    n_features = X.shape[1]
    n = gm.n_components
    log_prob = np.empty((X.shape[0], n), dtype=np.longdouble)
    for k in range(n):
        diff = X - means[k]
        if gm.covariance_type in ("full", "tied"):
            u = chol[k] if gm.covariance_type == "full" else chol
            y = np.einsum("nd,de->ne", diff, u)
            log_det = np.log(np.diagonal(u)).sum()
        else:
            c = chol[k]
            y = diff * c
            log_det = np.log(c).sum() if np.ndim(c) else n_features * np.log(c)
        log_prob[:, k] = (
            -0.5 * (n_features * np.log(2 * np.pi, dtype=np.longdouble))
            - 0.5 * (y * y).sum(1)
            + log_det
            + np.log(np.longdouble(gm.weights_[k]))
        )
    top = log_prob.max(1, keepdims=True)
    resp = np.exp(log_prob - top)
    log_norm = np.log(resp.sum(1)) + top[:, 0]
    resp /= resp.sum(1, keepdims=True)
    sxx = np.stack(
        [
            np.einsum("n,nd,ne->de", resp[:, k], X - means[k], X - means[k])
            for k in range(n)
        ]
    )
    return log_norm, resp.sum(0), sxx


CASES = {
    # name: (offset, spread, scale)
    "far_from_origin": (1e6, 5.0, 1.0),
    "tight_clusters": (0.0, 1.0, 1e-4),
    "tight_and_far": (1e4, 1.0, 1e-3),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", [4, 20])
def test_e_step_statistics_match_long_double(case, covariance_type, dtype, n_features):
    # (From 16 features 'spherical' builds its features in two blocks, as
    # 'diag' does.)
    offset, spread, scale = CASES[case]
    if dtype == np.float32 and case == "far_from_origin":
        offset = 1e4  # float32 resolves 1e6 + x only to 0.06
    if dtype == np.float32 and case == "tight_clusters":
        scale = 1e-2
    X, centres, labels = _data(offset, spread, scale, dtype, n_features=n_features)
    gm = _model(X, centres, labels, covariance_type)
    stats = gm._e_step_chunk_function()(X, None)
    # Log-likelihood: float64 to ~1e-10 per sample, float32 to ~1e-3.
    if dtype == np.float64:
        _assert_match_reference(stats, X, gm, atol=1e-8, rtol=1e-8)
    else:
        _assert_match_reference(stats, X, gm, atol=5e-2, rtol=1e-3)


def _assert_match_reference(stats, X, gm, *, atol, rtol):
    """E-step statistics against :func:`_reference`: the mean log-likelihood
    to ``atol``, N_k and the second moments to ``rtol``."""
    log_norm, nk, sxx = _reference(X, gm)
    assert_allclose(
        float(stats["log_likelihood"]) / X.shape[0],
        float(log_norm.mean()),
        rtol=0,
        atol=atol,
    )
    assert_allclose(stats["nk"], nk.astype(np.float64), rtol=rtol, atol=rtol)
    # Second moments around the means: relative to their own size, per
    # component (tight clusters make them tiny next to the data's scale).
    covariance_type = gm.covariance_type
    expected, got = sxx.astype(np.float64), stats["sxx"]
    if covariance_type in ("diag", "spherical"):
        expected = np.diagonal(expected, axis1=1, axis2=2)
    if covariance_type == "tied":
        # Only the sum over components, the tied scatter, is meaningful.
        expected, got = expected.sum(0, keepdims=True), got.sum(0, keepdims=True)
    if covariance_type == "spherical":
        # Split equally over the features: only their mean is meaningful.
        expected, got = expected.mean(1), got.mean(1)
    size = np.abs(expected).reshape(len(expected), -1).max(1)
    err = np.abs(got - expected).reshape(len(expected), -1).max(1) / size
    assert np.all(err < rtol), err


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("feature_major", [True, False])
def test_direct_small_e_step_matches_long_double(
    case, covariance_type, dtype, feature_major, monkeypatch
):
    # Small fits compute every x - mu_k at once (_direct_e_step_chunk): no
    # expansion, so far and tight clusters keep float64's precision without
    # a guard, float32 data included (computed in float64). Both layouts of
    # the differences: feature-major and sample-major.
    from sklearn_em.mixture import _gaussian
    from sklearn_em.mixture._gaussian import _direct_e_step_chunk

    monkeypatch.setattr(_gaussian, "_feature_major", lambda *shape: feature_major)

    offset, spread, scale = CASES[case]
    if dtype == np.float32 and case == "far_from_origin":
        offset = 1e4  # float32 resolves 1e6 + x only to 0.06
    X, centres, labels = _data(offset, spread, scale, dtype)
    gm = _model(X, centres, labels, covariance_type)
    assert gm._uses_direct_form(as_data(gm, X, reset=False))
    stats = _direct_e_step_chunk(
        X,
        None,
        means=gm.means_.astype(np.float64),
        precisions_chol=gm.precisions_cholesky_.astype(np.float64),
        covariance_type=covariance_type,
        log_w=np.log(gm.weights_.astype(np.float64)),
    )
    _assert_match_reference(stats, X, gm, atol=1e-8, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "n_samples, n_features, n_components, direct",
    [
        # Few rows per feature: the direct form at any count of components.
        (100, 64, 40, True),
        (300, 32, 12, True),
        (30, 200, 12, True),
        # More than 320 rows, more than 10 a feature, or more than 2^20
        # differences: the fused forms.
        (500, 64, 12, False),
        (300, 16, 12, False),
        (300, 200, 40, False),
    ],
)
def test_full_direct_form_on_few_rows_per_feature(
    n_samples, n_features, n_components, direct, monkeypatch
):
    from sklearn_em.mixture import _gaussian

    rng = np.random.RandomState(0)
    offsets = rng.randint(0, 4, size=(n_samples, 1)) * 3.0
    X = rng.normal(size=(n_samples, n_features)) + offsets
    init = dict(
        max_iter=5,
        tol=0.0,
        reg_covar=1e-3,
        init_params="random_from_data",
        random_state=0,
    )
    fitted = GaussianMixtureEM(n_components, **init).fit(X)
    assert fitted._uses_direct_form(as_data(fitted, X, reset=False)) is direct
    # float32 data keep their fused forms, computed in float32 (the direct
    # form computes in float64: 1.8x slower at 300 x 64, K = 8).
    X32 = X.astype(np.float32)
    fitted32 = GaussianMixtureEM(n_components, **init).fit(X32)
    assert not fitted32._uses_direct_form(as_data(fitted32, X32, reset=False))
    if not direct or n_samples * n_features * n_components > 2**19:
        return
    # Both forms fit the same model from the same start.
    monkeypatch.setattr(
        _gaussian.GaussianMixtureEM, "_uses_direct_form", lambda self, data: False
    )
    fused = GaussianMixtureEM(n_components, **init).fit(X)
    assert_allclose(fitted.means_, fused.means_, rtol=1e-9, atol=1e-9)
    assert_allclose(fitted.covariances_, fused.covariances_, rtol=1e-9, atol=1e-9)
    assert_allclose(fitted.lower_bound_, fused.lower_bound_, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_guard_falls_back_on_tight_far_clusters(dtype):
    # The guard must switch these components to the direct form ...
    X, centres, labels = _data(0.0, 1.0, 1e-5, dtype)
    gm = _model(X, centres, labels, "full")
    chunk_function = gm._e_step_chunk_function()
    assert len(chunk_function.keywords["direct"]) == 3
    # (float32 chunks whose components would mostly be direct are computed
    # in float64, where these still are.)
    computed = chunk_function.keywords["log_w"].dtype
    assert computed == np.float64
    # ... and the expanded form alone would indeed be wrong there: forcing
    # it (no component direct) loses the covariances.
    log_w = np.log(gm.weights_.astype(np.float64))
    centre = gm.weights_.astype(np.float64) @ gm.means_.astype(np.float64)
    _, _, kappa = _expanded_coefficients(
        gm.means_, gm.precisions_cholesky_, "full", log_w, centre
    )
    assert np.all(kappa > _expansion_limit(computed))
    forced = chunk_function.func(
        X, None, **{**chunk_function.keywords, "direct": np.array([], dtype=int)}
    )
    _, _, sxx = _reference(X, gm)
    size = np.abs(sxx.astype(np.float64)).max()
    # Errors far above the tolerances of the test above.
    worse = 1e-7
    assert np.abs(forced["sxx"] - sxx.astype(np.float64)).max() / size > worse


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_is_translation_invariant(covariance_type):
    # A fit on data moved far from the origin is the same fit, moved.
    X, _, _ = _data(0.0, 5.0, 1.0, np.float64, n_samples=900)
    offset = 1e6
    kwargs = dict(
        n_components=3,
        covariance_type=covariance_type,
        max_iter=20,
        tol=1e-10,
        random_state=0,
    )
    near = GaussianMixtureEM(**kwargs).fit(X)
    far = GaussianMixtureEM(**kwargs).fit(X + offset)
    assert_allclose(far.means_ - offset, near.means_, rtol=0, atol=1e-7)
    assert_allclose(far.covariances_, near.covariances_, rtol=1e-6)
    assert_allclose(far.lower_bound_, near.lower_bound_, rtol=1e-8)


def test_float32_fit_close_to_float64():
    X, _, _ = _data(1e3, 5.0, 1.0, np.float64, n_samples=3000)
    kwargs = dict(n_components=3, max_iter=30, tol=1e-8, random_state=0)
    fit64 = GaussianMixtureEM(**kwargs).fit(X)
    fit32 = GaussianMixtureEM(
        **kwargs,
        weights_init=fit64.weights_,
        means_init=fit64.means_,
        precisions_init=fit64.precisions_,
    ).fit(X.astype(np.float32))
    assert fit32.means_.dtype == np.float32
    assert_allclose(fit32.lower_bound_, fit64.lower_bound_, rtol=1e-4)
    assert_allclose(fit32.means_, fit64.means_, rtol=1e-5)


def test_float32_expansion_that_would_be_mostly_direct_runs_in_float64():
    # float32's expansion cancels too many digits for these three components
    # 10 standard deviations apart in 20 dimensions: rather than computing
    # them directly on top of the expanded products (up to 3x slower than a
    # float64 fit), the chunks are computed in float64, to float64's
    # accuracy.
    X, centres, labels = _data(0.0, 10.0, 1.0, np.float32, n_features=20)
    gm = _model(X, centres, labels, "full")
    assert not gm._uses_per_component_form(20, np.float32)
    parameters = gm._fused_parameters(np.float32)
    assert parameters["log_w"].dtype == parameters["coef"].dtype == np.float64
    assert len(parameters["direct"]) == 0
    log_w = np.log(gm.weights_.astype(np.float64))
    centre = gm.weights_.astype(np.float64) @ gm.means_.astype(np.float64)
    _, _, cancelled = _expanded_coefficients(
        gm.means_, gm.precisions_cholesky_, "full", log_w, centre
    )
    assert np.all(cancelled > _expansion_limit(np.float32))
    stats = gm._e_step_chunk_function()(X, None)
    log_norm, nk, sxx = _reference(X, gm)
    assert_allclose(
        float(stats["log_likelihood"]) / len(X), float(log_norm.mean()), atol=1e-9
    )
    assert_allclose(stats["sxx"], sxx.astype(np.float64), rtol=1e-8, atol=1e-8)


def test_float32_per_component_log_densities_stay_centred_within_budget():
    # The per-component form's products add the mean's term to the whitened
    # centred row, which rounds in proportion to sqrt(kappa_k), not kappa_k
    # as the expansion: float32 components beyond the expansion's limit (839)
    # and within the form's (7,036) keep the stacked products on the centred
    # rows, and their log-densities stay within the expansion's 1e-4 budget
    # of a float64 computation with the same parameters on the same data.
    # (They had been computed from x - mu_k, one product per component:
    # 1.5x float64's time at 100,000 x 128 with 8 components, now 1.9x.)
    n_features, n_components = 64, 6
    X = _float32_blobs(n_features, n_components, spread=8.0)
    gm = GaussianMixtureEM(n_components, max_iter=3, random_state=0).fit(X)
    parameters = gm._fused_parameters(np.float32)
    assert parameters["per_component"] and parameters["coef"].dtype == np.float32
    _, kappa = _per_component_factors(
        gm.means_.astype(np.float64),
        gm.precisions_cholesky_.astype(np.float64),
        parameters["centre"].astype(np.float64),
        parameters["triangle"],
    )
    limit = _per_component_limit(np.float32)
    assert 7000 < limit < 7100
    assert (kappa > _expansion_limit(np.float32)).all() and (kappa < limit).all()
    assert len(parameters["direct"]) == 0
    reference = GaussianMixtureEM(n_components)
    for name in ("weights_", "means_", "precisions_cholesky_"):
        setattr(reference, name, getattr(gm, name).astype(np.float64))
    reference.covariance_type = gm.covariance_type
    error = np.abs(gm.score_samples(X) - reference.score_samples(X.astype(np.float64)))
    assert error.max() < 1e-4
    # float64's limit, about 2e9: the expansion's was 4.5e5.
    assert 1e9 < _per_component_limit(np.float64) < 1e10


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_float32_per_component_scatter_around_each_shift():
    # float32's per-component form accumulated every scatter around the
    # mixture's centre, then moved it to the component's shift in float64:
    # on separated clusters that cancelled about kappa_k / D of float32's
    # digits, 10x scikit-learn's float32 error on the covariances (whose
    # scatters are taken around each mean). Components with kappa_k > D are
    # now taken around their own shift, as the direct ones.
    n_features, n_components = 32, 8
    X = _float32_blobs(n_features, n_components, spread=3.0)
    start = GaussianMixtureEM(n_components, max_iter=3, random_state=0).fit(
        X.astype(np.float64)
    )
    init = dict(
        weights_init=start.weights_.astype(np.float32),
        means_init=start.means_.astype(np.float32),
        precisions_init=start.precisions_.astype(np.float32),
    )
    fit32 = GaussianMixtureEM(n_components, max_iter=1, tol=0, **init).fit(X)
    parameters = fit32._fused_parameters(np.float32)
    assert parameters["per_component"] and parameters["coef"].dtype == np.float32
    assert len(parameters["shifted"]) == n_components
    assert GaussianMixtureEM(n_components)._uses_per_component_form(
        n_features, np.float32
    )
    fit64 = GaussianMixtureEM(n_components, max_iter=1, tol=0, **init).fit(
        X.astype(np.float64)
    )
    error = np.abs(fit32.covariances_ - fit64.covariances_).max()
    # Around the centre: 5e-6 of the largest covariance; now 3e-7, as
    # scikit-learn's float32 fit from the same start.
    assert error < 1e-6 * np.abs(fit64.covariances_).max()
    # float64 takes them around the centre: its own rounding is far below.
    assert len(fit64._fused_parameters(np.float64)["shifted"]) == 0


def test_per_component_form_cost_model():
    # The per-component form is chosen for K <= max(D / 8, D^3 / 20000)
    # from 16 features, K <= max(D / 4, D^3 / 16000) from 24 and
    # K <= max(D^2 / 85, D^3 / 4000) from 32 and K <= D^2 / 40 from 64,
    # whatever the dtype; float32's from 32 features up to K <= D^3 / 700
    # (its per-component form stays in float32 where its expanded form would
    # be computed in float64).
    from sklearn_em.mixture._gaussian import _prefer_per_component

    # (n_features, n_components, float64's choice, float32's)
    for n_features, n_components, float64, float32 in [
        (16, 2, True, True),
        (16, 4, False, False),
        (20, 4, False, False),
        (24, 6, True, True),
        (24, 7, False, False),
        (31, 7, True, True),
        (31, 8, False, False),
        (32, 8, True, True),
        (32, 12, True, True),
        (32, 13, False, True),
        (32, 46, False, True),
        (32, 47, False, False),
        (48, 27, True, True),
        (48, 28, False, True),
        (48, 157, False, True),
        (48, 158, False, False),
        (63, 62, True, True),
        (63, 63, False, True),
        (64, 16, True, True),
        (64, 48, True, True),
        (64, 65, True, True),
        (64, 102, True, True),
        (64, 103, False, True),
        (64, 374, False, True),
        (64, 375, False, False),
        (96, 230, True, True),
        (96, 231, False, True),
        (128, 524, True, True),
        (128, 525, False, True),
    ]:
        for dtype, expected in ((np.float64, float64), (np.float32, float32)):
            got = _prefer_per_component("full", n_features, n_components, dtype)
            assert got == expected, (n_features, n_components, dtype)
    for covariance_type in ("tied", "diag", "spherical"):
        assert not _prefer_per_component(covariance_type, 128, 2)
    # Predictions keep the expanded form beyond the earlier rules: the rule
    # from 64 features is a fit's (its moments' products), not theirs.
    for n_features, n_components in [(64, 66), (64, 102), (96, 230)]:
        assert _prefer_per_component("full", n_features, n_components)
        assert not _prefer_per_component(
            "full", n_features, n_components, fitting=False
        )
    for n_features, n_components in [(64, 65), (128, 524), (32, 12)]:
        assert _prefer_per_component("full", n_features, n_components, fitting=False)
    gm = GaussianMixtureEM(80)
    assert gm._uses_per_component_form(64, np.float64)
    assert not gm._uses_per_component_form(64, np.float64, fitting=False)
    assert "cache_bytes" not in gm._chunk_sizing(64, 8, False, prediction=True)
    assert gm._chunk_sizing(64, 8, False)["cache_bytes"] > 0


def test_float32_diagonal_expansion_with_a_direct_component_runs_in_float64():
    # One far component is enough: a diagonal expansion costs less than the
    # direct pass over the chunk that component would need in float32.
    X, centres, labels = _data(0.0, 3.0, 1.0, np.float32, n_features=12)
    gm = _model(X, centres, labels, "diag")
    assert gm._fused_parameters(np.float32)["log_w"].dtype == np.float32
    gm.weights_ = np.array([0.02, 0.49, 0.49], dtype=np.float32)
    gm.means_[0] += 12
    log_w = np.log(gm.weights_.astype(np.float64))
    centre = gm.weights_.astype(np.float64) @ gm.means_.astype(np.float64)
    _, _, cancelled = _expanded_coefficients(
        gm.means_, gm.precisions_cholesky_, "diag", log_w, centre
    )
    assert np.sum(cancelled > _expansion_limit(np.float32)) == 1
    parameters = gm._fused_parameters(np.float32)
    assert parameters["log_w"].dtype == np.float64
    log_norm, nk, sxx = _reference(X, gm)
    # The far component's masses are all below 2^-64 of their rows'
    # largest: the fit's chunks drop them (negligible_floor; its E-step on
    # data this small is direct, exact).
    chunk = gm._e_step_chunk_function()(X, None)
    assert chunk["nk"][0] == 0 and 0 < nk[0] < 1e-290
    assert_allclose(chunk["nk"][1:], nk[1:].astype(np.float64), rtol=1e-9)
    stats = gm._e_step_statistics(as_data(gm, X, None, reset=False, dtype=np.float32))
    assert_allclose(
        float(stats["log_likelihood"]) / len(X), float(log_norm.mean()), atol=1e-9
    )
    assert_allclose(stats["nk"], nk.astype(np.float64), rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_chunk_computed_in_float64_is_cast_by_the_centring(covariance_type):
    # A float32 chunk computed in float64 is cast by the centring pass, not
    # by a pass of its own: the same statistics as the chunk cast first.
    X, centres, labels = _data(1e3, 10.0, 1.0, np.float32, n_features=20)
    gm = _model(X, centres, labels, covariance_type)
    gm.means_[0] += 30
    chunk_function = gm._e_step_chunk_function()
    assert chunk_function.keywords["log_w"].dtype == np.float64
    assert chunk_function.keywords["centre"].any()
    stats = chunk_function(X, None)
    cast_first = chunk_function(X.astype(np.float64), None)
    for key in stats:
        np.testing.assert_array_equal(stats[key], cast_first[key])


def test_many_direct_components_take_the_per_component_form():
    # With 16 features or more, an expansion that would compute a quarter of
    # the components or more directly gives way to the per-component form,
    # to the same accuracy.
    X, centres, labels = _data(0.0, 1.0, 1e-4, np.float64, n_features=16)
    gm = _model(X, centres, labels, "full")
    assert not gm._uses_per_component_form(16, np.float64)
    log_w = np.log(gm.weights_)
    centre = gm.weights_ @ gm.means_
    _, _, cancelled = _expanded_coefficients(
        gm.means_, gm.precisions_cholesky_, "full", log_w, centre
    )
    assert np.sum(cancelled > _expansion_limit(np.float64)) == 3
    parameters = gm._fused_parameters(np.float64)
    assert parameters["per_component"]
    stats = gm._e_step_chunk_function()(X, None)
    log_norm, nk, sxx = _reference(X, gm)
    assert_allclose(
        float(stats["log_likelihood"]) / len(X), float(log_norm.mean()), atol=1e-8
    )
    assert_allclose(stats["nk"], nk.astype(np.float64), rtol=1e-8)
    size = np.abs(sxx.astype(np.float64)).reshape(3, -1).max(1)
    err = np.abs(stats["sxx"] - sxx.astype(np.float64)).reshape(3, -1).max(1)
    assert np.all(err / size < 1e-8), err / size
    # Below 16 features the expanded form keeps them.
    X, centres, labels = _data(0.0, 1.0, 1e-4, np.float64, n_features=8)
    gm = _model(X, centres, labels, "full")
    assert not gm._fused_parameters(np.float64).get("per_component", False)


def _row_log_norm_error(gm, X, log_prob):
    """Largest error of the rows' ``log sum_k pi_k N(x | k)`` from
    ``log_prob`` (n_samples, n_components), against :func:`_reference`."""
    log_norm = _reference(X, gm)[0].astype(np.float64)
    return np.abs(logsumexp(np.asarray(log_prob, dtype=np.float64), 1) - log_norm).max()


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_diagonal_budget_grows_with_features(covariance_type):
    # In 64 dimensions these well-separated components cancel more than
    # 1e-4 nats in float32's expansion, but less than the budget of 2e-5
    # per feature: the chunks stay in float32 (they were computed in
    # float64 with a fixed 1e-4), to within that budget, and closer to the
    # exact log-densities than scikit-learn's float32 E-step on the same
    # model.
    from sklearn.mixture._gaussian_mixture import _estimate_log_gaussian_prob

    X, centres, labels = _data(0.0, 3.0, 1.0, np.float32, n_samples=3000, n_features=64)
    gm = _model(X, centres, labels, covariance_type)
    log_w = np.log(gm.weights_.astype(np.float64))
    centre = gm.weights_.astype(np.float64) @ gm.means_.astype(np.float64)
    engine_type, chol = gm._engine_parameters()
    _, _, cancelled = _expanded_coefficients(
        gm.means_, chol, engine_type, log_w, centre
    )
    assert np.all(cancelled > _expansion_limit(np.float32))
    assert np.all(cancelled <= _expansion_limit(np.float32, 64))
    parameters = gm._fused_parameters(np.float32)
    assert parameters["log_w"].dtype == np.float32
    assert len(parameters["direct"]) == 0
    budget = 2e-5 * 64
    ours = _row_log_norm_error(gm, X, gm._log_prob_chunk_function(np.float32)(X))
    theirs = _row_log_norm_error(
        gm,
        X,
        _estimate_log_gaussian_prob(X, gm.means_, chol, covariance_type)
        + np.log(gm.weights_),
    )
    assert ours < budget
    assert ours < theirs
    stats = gm._e_step_chunk_function()(X, None)
    _assert_match_reference(stats, X, gm, atol=budget, rtol=1e-3)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_tight_component_by_surviving_pairs(covariance_type, monkeypatch):
    # A tight cluster among wide ones: float32's expansion would cancel too
    # much for its component, which a fit's float32 E-step computes in
    # float64 only for the rows where its mass can exceed float32's floor
    # (its own cluster), the other components staying in float32; from 32
    # features (_FLOAT32_PAIRED_FEATURES) and for one component in eight,
    # else the chunks are float64.
    from sklearn_em.mixture import _gaussian
    from sklearn_em.mixture._suffstats import _FLOAT32_LOG_FLOOR

    def tight_first(n_features, n_tight=1):
        X, centres, labels = _data(
            0.0, 3.0, 1.0, np.float64, 8000, n_features, n_clusters=8
        )
        tight = labels < n_tight
        own = centres[labels[tight]]
        X[tight] = own + (X[tight] - own) * 1e-3
        X = X.astype(np.float32)
        return X, _model(X, centres, labels, covariance_type), tight

    for n_features, n_tight in [(_gaussian._FLOAT32_PAIRED_FEATURES - 1, 1), (32, 2)]:
        _, other, _ = tight_first(n_features, n_tight)
        parameters = other._fused_parameters(np.float32, paired=True)
        assert parameters["log_w"].dtype == np.float64
    X, gm, tight = tight_first(_gaussian._FLOAT32_PAIRED_FEATURES)
    parameters = gm._fused_parameters(np.float32, paired=True)
    assert parameters["log_w"].dtype == np.float32
    np.testing.assert_array_equal(parameters["direct"], [0])
    # Prediction, which has no floor, computes in float64 instead.
    assert gm._fused_parameters(np.float32)["log_w"].dtype == np.float64

    seen = []
    surviving = _gaussian._surviving_direct_pairs

    def spy(log_prob, *args):
        pairs = surviving(log_prob, *args)
        seen.append(pairs)
        return pairs

    monkeypatch.setattr(_gaussian, "_surviving_direct_pairs", spy)
    stats = gm._e_step_chunk_function()(X, None)
    rows, components = seen[0]
    np.testing.assert_array_equal(rows, np.flatnonzero(tight))
    np.testing.assert_array_equal(components, 0)
    # The entries left out are below float32's floor, exactly computed.
    X64 = X.astype(np.float64)
    precisions = np.asarray(gm.precisions_cholesky_, dtype=np.float64) ** 2
    if covariance_type == "spherical":
        precisions = np.repeat(precisions[:, None], X.shape[1], axis=1)
    log_prob = -0.5 * np.einsum(
        "nkd,kd->nk", (X64[:, None, :] - gm.means_.astype(np.float64)) ** 2, precisions
    ) + 0.5 * np.log(precisions).sum(1)
    relative = log_prob[:, 0] - log_prob.max(axis=1)
    assert np.all(relative[~tight] < _FLOAT32_LOG_FLOOR)
    # The tight component's sums are float64's; the others float32's.
    log_norm, nk, sxx = _reference(X, gm)
    assert_allclose(
        float(stats["log_likelihood"]) / len(X), float(log_norm.mean()), atol=1e-4
    )
    assert_allclose(stats["nk"], nk.astype(np.float64), rtol=1e-6)
    expected = np.diagonal(sxx.astype(np.float64), axis1=1, axis2=2)
    got = stats["sxx"]
    if covariance_type == "spherical":
        expected, got = expected.mean(1, keepdims=True), got.mean(1, keepdims=True)
    err = np.abs(got - expected).max(1) / np.abs(expected).max(1)
    assert err[0] < 1e-10
    assert np.all(err < 1e-4), err
    # An E-step that keeps every mass (see _keep_negligible_mass) computes
    # in float64, as before.
    gm._exact_e_step = True
    exact = gm._e_step_chunk_function()
    assert exact.keywords["log_w"].dtype == np.float64
    assert_allclose(exact(X, None)["nk"], stats["nk"], rtol=1e-6)


def test_float32_coefficients_expand_around_the_features_centre():
    # The features of a float32 chunk are centred on the centre rounded to
    # float32; the coefficients expand around the same point. Around the
    # float64 centre instead, 1e5 from the origin (3e-3 away from its
    # float32 value), a row's log-density moved by 0.017 nats.
    X, centres, labels = _data(1e5, 1.0, 1.0, np.float32, n_samples=3000)
    gm = _model(X, centres, labels, "diag")
    parameters = gm._fused_parameters(np.float32)
    assert parameters["log_w"].dtype == np.float32
    assert parameters["centre"].any()
    log_prob = gm._log_prob_chunk_function(np.float32)(X)
    assert _row_log_norm_error(gm, X, log_prob) < 1e-4
    # A far component sends the chunks to float64, which reuse the
    # coefficients around the float32 centre: they are centred on it too
    # (on the float64 centre, 0.02 nats off).
    gm.means_[0] += 30
    gm.weights_ = np.array([0.02, 0.49, 0.49], dtype=np.float32)
    parameters = gm._fused_parameters(np.float32)
    assert parameters["log_w"].dtype == np.float64
    assert parameters["centre"].any()
    log_prob = gm._log_prob_chunk_function(np.float32)(X)
    assert _row_log_norm_error(gm, X, log_prob) < 1e-9


def test_float32_diagonal_pairs_bound_each_entry(monkeypatch):
    # A component tight in two features of 32 (precision 1e5 there): a
    # row's bound from the largest precision times |z|^2 is thousands of
    # nats and would keep about 5% of its entries; each entry's own bound
    # (sum_d p_kd z_d^2) keeps about those whose exact mass is above
    # float32's floor -- and every one of those.
    from sklearn_em.mixture import _gaussian
    from sklearn_em.mixture._suffstats import _FLOAT32_LOG_FLOOR

    rng = np.random.RandomState(0)
    n_samples, n_features, n_components = 4000, 32, 8
    X = rng.normal(size=(n_samples, n_features))
    X[:, 2:] *= 10
    X = X.astype(np.float32)
    means = rng.normal(scale=0.5, size=(n_components, n_features))
    means[0] = 0
    precisions = np.full((n_components, n_features), 1e-2)
    precisions[:, :2] = 1.0
    precisions[0, :2] = 1e5
    gm = GaussianMixtureEM(n_components=n_components, covariance_type="diag")
    gm.weights_ = np.full(n_components, 1 / n_components, dtype=np.float32)
    gm.means_ = means.astype(np.float32)
    gm.precisions_cholesky_ = np.sqrt(precisions).astype(np.float32)
    parameters = gm._fused_parameters(np.float32, paired=True)
    assert parameters["log_w"].dtype == np.float32
    np.testing.assert_array_equal(parameters["direct"], [0])
    seen = []
    surviving = _gaussian._surviving_direct_pairs

    def spy(*args):
        pairs = surviving(*args)
        seen.append(pairs)
        return pairs

    monkeypatch.setattr(_gaussian, "_surviving_direct_pairs", spy)
    gm._e_step_chunk_function()(X, None)
    rows = np.concatenate([pairs[0] for pairs in seen])
    X64 = X.astype(np.float64)
    means64 = gm.means_.astype(np.float64)
    precisions64 = np.asarray(gm.precisions_cholesky_, dtype=np.float64) ** 2
    log_prob = -0.5 * np.einsum(
        "nkd,kd->nk", (X64[:, None, :] - means64) ** 2, precisions64
    ) + 0.5 * np.log(precisions64).sum(1)
    relative = log_prob[:, 0] - log_prob.max(axis=1)
    above = np.flatnonzero(relative >= _FLOAT32_LOG_FLOOR)
    assert len(above)
    assert np.isin(above, rows).all()
    assert len(rows) <= 2 * len(above) + 5, (len(rows), len(above))


def test_float32_fallback_reuses_the_expanded_coefficients(monkeypatch):
    # A tight component at the origin: float32 refuses the expansion
    # around zero (its precision times the data's spread) and computes it
    # directly around the centre, so on 20 features the chunks fall back to
    # float64, which accepts neither zero nor that component. The float64
    # call reuses the coefficients the float32 one computed: each expansion
    # is computed once.
    from sklearn_em.mixture import _gaussian

    X, centres, labels = _data(0.0, 3.0, 1.0, np.float64, 8000, 20, n_clusters=8)
    centres[0] = 0
    tight = labels == 0
    X[tight] = (X[tight] - X[tight].mean(axis=0)) * 1e-3
    X = X.astype(np.float32)
    gm = _model(X, centres, labels, "diag")
    calls = []
    expand = _gaussian._expanded_coefficients

    def spy(*args, **kwargs):
        calls.append("centre" if args[4].any() else "zero")
        return expand(*args, **kwargs)

    monkeypatch.setattr(_gaussian, "_expanded_coefficients", spy)
    parameters = gm._fused_parameters(np.float32, paired=True)
    assert parameters["log_w"].dtype == np.float64
    np.testing.assert_array_equal(parameters["direct"], [0])
    assert calls == ["zero", "centre"]
    monkeypatch.undo()
    stats = gm._e_step_chunk_function()(X, None)
    _assert_match_reference(stats, X, gm, atol=1e-9, rtol=1e-8)
