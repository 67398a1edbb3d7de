"""Tests of the VAETransformer estimator."""

import copy
import pickle
import re
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_em import VAETransformer
from sklearn_em.vae import _vae

# Fits with a fixed budget of epochs stop at max_iter on purpose.
budget = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


def _small_vae(**params):
    defaults = dict(
        n_components=2, hidden_layer_sizes=(32,), max_iter=3, random_state=0
    )
    return VAETransformer(**{**defaults, **params})


def _fit(vae, X):
    """Fit for a fixed budget of epochs, without the ConvergenceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vae.fit(X)


@pytest.fixture(scope="module")
def trained(digits):
    """A Bernoulli VAE trained for 30 epochs on 600 digits, and its data."""
    X = digits[0][:600]
    vae = _small_vae(n_components=4, likelihood="bernoulli", max_iter=30)
    return _fit(vae, X), X


def _assert_same_state(fitted, reference):
    """Every fitted attribute of the two estimators is equal."""
    params = set(fitted._get_param_names())
    names = {n for n in vars(reference) if n not in params}
    assert names == {n for n in vars(fitted) if n not in params}
    for name in names:
        a, b = getattr(fitted, name), getattr(reference, name)
        if name == "_optimizer":
            assert a.t == b.t
            for x, y in zip(a.ms + a.vs, b.ms + b.vs):
                assert_array_equal(x, y)
        elif name == "_random_state":
            state_a, state_b = a.get_state(), b.get_state()
            assert_array_equal(state_a[1], state_b[1])
            assert state_a[2:] == state_b[2:]
        elif isinstance(a, list) and a and isinstance(a[0], np.ndarray):
            for x, y in zip(a, b, strict=True):
                assert_array_equal(x, y)
        elif isinstance(a, np.ndarray):
            assert_array_equal(a, b)
        else:
            assert a == b or (a != a and b != b), name


# ----------------------------------------------------------------------
# Training


@budget
def test_held_out_elbo_improves_with_training(digits):
    X, _ = digits
    X_train, X_test = X[:1200], X[1200:]
    vae = _small_vae(likelihood="bernoulli", max_iter=1).fit(X_train)
    before = vae.score(X_test)
    vae.set_params(max_iter=30).fit(X_train)
    assert vae.score(X_test) > before + 2
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]
    assert vae.n_iter_ == len(vae.loss_curve_)


@budget
def test_transform_beats_pca_for_a_linear_classifier(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = X[:1200], X[1200:], y[:1200], y[1200:]
    vae = _small_vae(likelihood="bernoulli", hidden_layer_sizes=(64,), max_iter=60).fit(
        X_train
    )
    classifier = LogisticRegression(max_iter=1000)
    vae_accuracy = classifier.fit(vae.transform(X_train), y_train).score(
        vae.transform(X_test), y_test
    )
    pca = PCA(n_components=2).fit(X_train)
    pca_accuracy = classifier.fit(pca.transform(X_train), y_train).score(
        pca.transform(X_test), y_test
    )
    assert vae_accuracy > pca_accuracy


@budget
def test_grid_search_over_n_components_in_a_pipeline(digits):
    X, y = digits
    pipeline = make_pipeline(_small_vae(), LogisticRegression(max_iter=200))
    search = GridSearchCV(pipeline, {"vaetransformer__n_components": [2, 4]}, cv=2).fit(
        X[:300], y[:300]
    )
    assert search.best_params_["vaetransformer__n_components"] in (2, 4)
    # The VAE alone is scored by its held-out ELBO.
    search = GridSearchCV(_small_vae(), {"n_components": [1, 2]}, cv=2).fit(X[:300])
    assert np.isfinite(search.best_score_)


@budget
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_dtypes_shapes_and_determinism(digits, dtype, likelihood):
    X = digits[0][:200].astype(dtype)
    X_copy = X.copy()
    vae = _small_vae(likelihood=likelihood, n_components=3).fit(X)
    assert_array_equal(X, X_copy)
    Z = vae.transform(X)
    assert Z.shape == (200, 3) and Z.dtype == dtype
    assert vae.encoder_coefs_[0].dtype == dtype
    assert vae.inverse_transform(Z).shape == (200, 64)
    assert vae.inverse_transform(Z).dtype == dtype
    assert vae.sample(5).shape == (5, 64)
    assert vae.sample_posterior(X, n_samples=4).shape == (800, 3)
    scores = vae.score_samples(X)
    assert scores.shape == (200,) and np.all(np.isfinite(scores))
    assert_allclose(vae.score(X), scores.mean())
    assert_array_equal(X, X_copy)
    # Deterministic given random_state, and scores independent of the rows.
    assert_array_equal(
        _small_vae(likelihood=likelihood, n_components=3).fit(X).transform(X), Z
    )
    assert_allclose(vae.score_samples(X[::-1][:50]), scores[::-1][:50], rtol=1e-5)
    if likelihood == "bernoulli":
        assert np.all((vae.sample(5) >= 0) & (vae.sample(5) <= 1))
    else:
        assert vae.decoder_log_var_.shape == (64,)


@budget
def test_sample_posterior_statistics(digits):
    X = digits[0][:20]
    vae = _small_vae(n_components=2).fit(X)
    Z = vae.sample_posterior(X, n_samples=4000, random_state=0).reshape(20, 4000, 2)
    mu, log_var = vae._posterior(vae._validate_X(X))
    assert_allclose(Z.mean(axis=1), mu, atol=0.1)
    assert_allclose(Z.std(axis=1), np.exp(0.5 * log_var), rtol=0.1)
    assert_array_equal(
        vae.sample_posterior(X, random_state=1), vae.sample_posterior(X, random_state=1)
    )


def test_convergence_warning_at_max_iter(digits):
    X = digits[0][:200]
    # n_iter_no_change=10 cannot be met within 3 epochs.
    with pytest.warns(ConvergenceWarning, match=r"max_iter=3"):
        _small_vae(max_iter=3).fit(X)
    # Stopping on the criterion: no warning (warnings are errors here).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vae = _small_vae(max_iter=50, tol=1e3, n_iter_no_change=2).fit(X)
        # As in MLPRegressor: stop when more than n_iter_no_change epochs
        # did not improve on the first.
        assert vae.n_iter_ == 4
        # One partial_fit epoch is not a convergence failure either.
        vae.partial_fit(X)
        _small_vae().partial_fit(X)


def test_verbose_reports_loss_validation_and_time(digits, capsys):
    X = digits[0][:300]
    with pytest.warns(ConvergenceWarning):
        vae = _small_vae(
            early_stopping=True, n_iter_kl_warmup=2, max_iter=3, verbose=1
        ).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    pattern = (
        r"Iteration (\d), loss = (-?\d+\.\d{8}), validation ELBO = (-?\d+\.\d{8})"
        r"(, KL weight = ([\d.]+))?, time = \d+\.\d{3}s"
    )
    for i, line in enumerate(lines):
        match = re.fullmatch(pattern, line)
        assert match, line
        assert int(match[1]) == i + 1
        assert_allclose(float(match[2]), vae.loss_curve_[i], atol=1e-8)
        assert_allclose(float(match[3]), vae.validation_scores_[i], atol=1e-8)
    # The KL weight is shown during the warm-up and where it ends.
    assert [line.split("KL weight = ")[1][:3] for line in lines[:2]] == ["0.5", "1, "]
    assert "KL weight" not in lines[2]


@budget
def test_early_stopping_restores_best_weights(digits):
    X = digits[0][:400]
    vae = _small_vae(early_stopping=True, max_iter=15, n_iter_no_change=2, tol=0.5).fit(
        X
    )
    assert len(vae.validation_scores_) == vae.n_iter_
    assert vae.best_loss_ is None
    assert vae.best_validation_score_ == max(vae.validation_scores_)
    assert np.all(np.isfinite(vae.transform(X)))


@budget
def test_early_stopping_restored_weights_reproduce_best_score(digits):
    """After fit, the model scores its validation split at the best score, and
    the validation scores are mean ELBOs of that split."""
    X = digits[0][:400]
    seen = {}

    class RecordingVAE(VAETransformer):
        def _validation_score(self, X_val, seed):
            seen["X_val"], seen["seed"] = X_val, seed
            return super()._validation_score(X_val, seed)

    vae = RecordingVAE(
        n_components=2,
        hidden_layer_sizes=(32,),
        likelihood="bernoulli",
        early_stopping=True,
        learning_rate=0.05,
        max_iter=12,
        n_iter_no_change=12,
        tol=0.0,
        random_state=0,
    ).fit(X)
    scores = np.asarray(vae.validation_scores_)
    # the test is only meaningful if the last epoch is not the best one
    assert scores.argmax() < len(scores) - 1
    restored = vae._validation_score(seen["X_val"], seen["seed"])
    assert_allclose(restored, vae.best_validation_score_, rtol=1e-10)
    assert restored > scores[-1]
    # An independent estimate of the validation split's mean ELBO agrees.
    elbo = vae.set_params(n_score_draws=200).score(seen["X_val"])
    assert abs(elbo - vae.best_validation_score_) < 0.5
    with pytest.raises(ValueError, match="early_stopping"):
        vae.partial_fit(X)


@budget
def test_partial_fit_and_warm_start(digits):
    X = digits[0][:300]
    vae = _small_vae()
    for _ in range(3):
        vae.partial_fit(X)
    assert vae.n_iter_ == 3 and len(vae.loss_curve_) == 3
    assert vae._optimizer.t == 3 * 3  # three batches of 128 per epoch
    warm = _small_vae(warm_start=True, max_iter=2).fit(X)
    weights = warm.encoder_coefs_[0].copy()
    warm.fit(X)
    assert warm.n_iter_ == 4
    assert not np.allclose(warm.encoder_coefs_[0], weights)


def test_kl_warmup_schedule(digits, monkeypatch):
    """The KL weight grows linearly, step by step, from 0 to beta over
    n_iter_kl_warmup epochs; the stopping criterion counts after it."""
    X = digits[0][:300]  # 3 minibatches of at most 128 per epoch
    betas = []
    original = _vae._elbo_loss_and_grad

    def recording(*args, beta, **kwargs):
        betas.append(beta)
        return original(*args, beta=beta, **kwargs)

    monkeypatch.setattr(_vae, "_elbo_loss_and_grad", recording)
    vae = _small_vae(
        beta=2.0, n_iter_kl_warmup=2, tol=1e9, n_iter_no_change=1, max_iter=20
    )
    vae.fit(X)
    expected = 2.0 * np.minimum(np.arange(1, 16) / 6, 1)
    assert_allclose(betas, expected, rtol=1e-12)
    # Without warm-up it would stop after 3 epochs; the count starts after 2.
    assert vae.n_iter_ == 5
    assert vae.best_loss_ == min(vae.loss_curve_[2:])


@budget
def test_kl_warmup_reduces_inactive_latent_units(digits):
    """Units whose posterior mean barely varies across the data have
    collapsed to the prior; warm-up leaves fewer of them. (With seeds 0, 1
    and 2 this setting gives 6, 5, 6 active units of 10 without warm-up and
    10, 10, 10 with it.)"""
    X = digits[0]

    def active_units(**params):
        vae = _small_vae(
            n_components=10,
            hidden_layer_sizes=(64,),
            likelihood="bernoulli",
            learning_rate=5e-3,
            max_iter=40,
            **params,
        )
        return int(np.sum(_fit(vae, X).transform(X).var(axis=0) > 0.01))

    without, with_warmup = active_units(), active_units(n_iter_kl_warmup=20)
    assert without <= 7
    assert with_warmup >= without + 3


def test_iwae_objective_is_the_importance_weighted_bound(digits):
    """With objective="iwae" the training loss is minus the importance-weighted
    bound with K = n_mc_samples, tighter than the ELBO on an untrained model,
    and training improves the held-out bound."""
    X = digits[0]
    X_train, X_test = X[:1200], X[1200:]
    params = dict(likelihood="bernoulli", objective="iwae", n_mc_samples=5)
    # A learning rate so small that one epoch leaves the weights as they are.
    frozen = _small_vae(**params, learning_rate=1e-30, max_iter=1)
    with pytest.warns(ConvergenceWarning):
        frozen.fit(X_train)
    per_sample = frozen.set_params(score_bound="iwae", n_score_draws=5).score_samples(
        X_train
    )
    standard_error = per_sample.std() / np.sqrt(len(per_sample))
    # (independent draws: the MC error of the loss is that of the score)
    assert abs(frozen.loss_ + per_sample.mean()) < 4 * np.sqrt(2) * standard_error
    elbo = frozen.set_params(score_bound="elbo", n_score_draws=5).score(X_train)
    assert -frozen.loss_ > elbo + 10 * standard_error

    vae = _small_vae(**params, max_iter=1)
    with pytest.warns(ConvergenceWarning):
        vae.fit(X_train)
    vae.set_params(score_bound="iwae", n_score_draws=20)
    before = vae.score(X_test)
    with pytest.warns(ConvergenceWarning):
        vae.set_params(max_iter=15).fit(X_train)
    assert vae.score(X_test) > before + 0.5


# ----------------------------------------------------------------------
# Scores


def test_score_uses_independent_draws_per_sample(trained):
    """Averaging over samples averages the Monte Carlo noise away: score
    changes by well under 0.1% between seeds, while one draw shared by all
    samples would move it by percents."""
    vae, X = trained
    vae = copy.deepcopy(vae)
    per_seed = np.array(
        [vae.set_params(random_state=seed).score_samples(X) for seed in range(5)]
    )
    means = per_seed.mean(axis=1)
    assert np.ptp(means) < 1e-3 * abs(means.mean())
    # The samples' errors are independent: the variance of the mean is that
    # of one sample divided by n (within a loose factor), and the per-sample
    # noise is there to be averaged.
    deviations = per_seed - per_seed.mean(axis=0)
    assert np.all(deviations.std(axis=0).mean() > 0.005)
    ratio = deviations.mean(axis=1).var() / (deviations.var() / X.shape[0])
    assert ratio < 5
    # A seeded model's score is reproducible; None draws anew.
    vae.set_params(random_state=3)
    assert vae.score(X) == vae.score(X)
    assert_array_equal(vae.score_samples(X), per_seed[3])
    vae.set_params(random_state=None)
    assert vae.score(X) != vae.score(X)


def test_default_score_varies_under_a_tenth_of_a_percent(digits):
    """The issue's criterion on the default model and default draws: score
    on a cross-validation-fold-sized held-out set (300 digits) changes by
    less than 0.1% between seeds."""
    X = digits[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae = VAETransformer(random_state=0).fit(X[:1500])
    scores = [vae.set_params(random_state=seed).score(X[1500:]) for seed in range(8)]
    assert np.ptp(scores) < 1e-3 * abs(np.mean(scores))


def test_score_samples_do_not_depend_on_other_rows(trained):
    vae, X = trained
    scores = vae.score_samples(X)
    order = np.random.RandomState(0).permutation(X.shape[0])[:37]
    # (equal up to the rounding of matrix products of other sizes)
    assert_allclose(vae.score_samples(X[order]), scores[order], rtol=1e-12)
    assert_allclose(vae.score_samples(X[:1]), scores[:1], rtol=1e-12)


def test_score_stays_below_the_importance_weighted_bound(trained):
    """The default score (an ELBO estimate) never exceeds the importance
    weighted bound with many draws beyond the Monte Carlo error; the
    importance-weighted score lies between the two."""
    vae, X = trained
    X = X[:200]
    vae = copy.deepcopy(vae)
    elbo = vae.set_params(random_state=0).score_samples(X)
    iwae_many = vae.set_params(score_bound="iwae", n_score_draws=2000).score_samples(X)
    iwae_few = vae.set_params(n_score_draws=50, random_state=1).score_samples(X)
    error = np.sqrt(elbo.var() / 200 + iwae_many.var() / 200) / 10  # paired
    assert elbo.mean() < iwae_many.mean() + 3 * error
    assert elbo.mean() < iwae_few.mean() < iwae_many.mean() + 3 * error


def test_score_samples_estimates_the_elbo(trained):
    """score_bound="elbo" is the ELBO: E_q[ln p(x|z)] - KL(q || p), here
    computed independently from the public weights with many draws."""
    vae, X = trained
    X = X[:50]
    scores = vae.score_samples(X)
    rng = np.random.RandomState(0)
    h = np.maximum(X @ vae.encoder_coefs_[0] + vae.encoder_intercepts_[0], 0)
    out = h @ vae.encoder_coefs_[1] + vae.encoder_intercepts_[1]
    mu, log_var = out[:, :4], out[:, 4:]
    kl = 0.5 * (mu**2 + np.exp(log_var) - log_var - 1).sum(axis=1)
    log_px_z = np.zeros(50)
    n_draws = 4000
    for _ in range(n_draws):
        z = mu + np.exp(0.5 * log_var) * rng.standard_normal(mu.shape)
        g = np.maximum(z @ vae.decoder_coefs_[0] + vae.decoder_intercepts_[0], 0)
        logits = g @ vae.decoder_coefs_[1] + vae.decoder_intercepts_[1]
        log_px_z += (X * logits - np.logaddexp(0, logits)).sum(axis=1)
    expected = log_px_z / n_draws - kl
    assert_allclose(scores.mean(), expected.mean(), atol=0.05)


# ----------------------------------------------------------------------
# Sparse input


@budget
def test_sparse_fit_equals_dense_fit(digits):
    X = digits[0][:300]
    X_sparse = sp.csr_matrix(X)
    for likelihood in ["bernoulli", "gaussian"]:
        params = dict(likelihood=likelihood, early_stopping=True, max_iter=4)
        dense = _small_vae(**params).fit(X)
        sparse = _small_vae(**params).fit(X_sparse)
        for a, b in zip(
            dense.encoder_coefs_ + dense.decoder_coefs_,
            sparse.encoder_coefs_ + sparse.decoder_coefs_,
        ):
            assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        assert_allclose(dense.loss_curve_, sparse.loss_curve_, rtol=1e-9)
        assert_allclose(dense.transform(X), sparse.transform(X_sparse), rtol=1e-9)
        assert_allclose(
            dense.score_samples(X), sparse.score_samples(X_sparse), rtol=1e-9
        )
        assert_allclose(
            dense.sample_posterior(X, random_state=0),
            sparse.sample_posterior(sp.csr_array(X), random_state=0),
            rtol=1e-9,
        )
        sparse.set_params(early_stopping=False).partial_fit(X_sparse)
        dense.set_params(early_stopping=False).partial_fit(X)
        assert_allclose(dense.loss_, sparse.loss_, rtol=1e-9)


@budget
def test_sparse_input_is_never_densified_whole(monkeypatch):
    """Peak memory of fit, transform and score_samples on a sparse matrix
    stays far below its dense size (tracemalloc sees NumPy's buffers)."""
    rng = np.random.RandomState(0)
    n_samples, n_features = 8000, 2000
    X = sp.random(n_samples, n_features, density=0.002, format="csr", random_state=rng)
    X.data[:] = 1.0
    dense_bytes = n_samples * n_features * 8  # 128 MB
    # Chunks of at most 2**18 floats (2 MB) per layer when scoring.
    monkeypatch.setattr(_vae, "_CHUNK_FLOATS", 2**18)
    vae = VAETransformer(
        hidden_layer_sizes=(4,),
        likelihood="bernoulli",
        max_iter=1,
        n_score_draws=2,
        random_state=0,
    )
    tracemalloc.start()
    try:
        vae.fit(X)
        vae.transform(X)
        vae.score_samples(X[:2000])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < dense_bytes / 8


# ----------------------------------------------------------------------
# Magnitudes, argument validation and failures


@budget
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gaussian_vae_is_equivariant_to_the_scale_of_x(digits, dtype):
    """Data of any magnitude (up to the dtype's range) gives the same codes,
    and scores shifted by the log-Jacobian of the scaling: no overflow, no
    warning (warnings are errors), no NaN."""
    X = digits[0][:300].astype(dtype)
    reference = _small_vae(n_components=3).fit(X)
    non_constant = np.sum(X.std(axis=0) > 0)
    scales = [1e154, 1e300, 1e-300] if dtype == np.float64 else [1e30, 1e-30]
    for scale in scales:
        X_scaled = X * dtype(scale)
        vae = _small_vae(n_components=3).fit(X_scaled)
        assert_allclose(vae.transform(X_scaled), reference.transform(X), rtol=1e-3)
        assert_allclose(
            vae.loss_curve_,
            np.add(reference.loss_curve_, non_constant * np.log(scale)),
            rtol=1e-4,
        )
        decoded = vae.inverse_transform(vae.transform(X_scaled))
        assert np.all(np.isfinite(decoded))
        assert_allclose(
            decoded / scale,
            reference.inverse_transform(reference.transform(X)),
            rtol=1e-3,
            atol=1e-5,
        )
        assert np.isfinite(vae.score(X_scaled))
    # Far from the training data: a clear error, not an overflow.
    with pytest.raises(ValueError, match="standard deviations"):
        reference.transform(X * np.finfo(dtype).max / 2)
    with pytest.raises(ValueError, match="latent points"):
        reference.inverse_transform(np.full((2, 3), np.finfo(dtype).max / 2))


@budget
def test_bernoulli_vae_rejects_out_of_range_magnitudes(digits):
    X = digits[0][:100]
    vae = _small_vae(likelihood="bernoulli").fit(X)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _small_vae(likelihood="bernoulli").fit(X * 1e154)
    with pytest.raises(ValueError, match="encoder handles"):
        vae.transform(X * 1e300)


@budget
def test_method_arguments_are_validated(digits):
    X = digits[0][:50]
    vae = _small_vae().fit(X)
    for bad in [True, np.True_, 2.0, "3", None]:
        with pytest.raises(TypeError, match="n_samples must be a positive int"):
            vae.sample(bad)
        with pytest.raises(TypeError, match="n_samples must be a positive int"):
            vae.sample_posterior(X, n_samples=bad)
    for bad in [0, -1]:
        with pytest.raises(ValueError, match="n_samples must be a positive int"):
            vae.sample(bad)
        with pytest.raises(ValueError, match="n_samples must be a positive int"):
            vae.sample_posterior(X, n_samples=bad)
    assert vae.sample(np.int64(2)).shape == (2, 64)
    for bad in [True, "seed", 1.5]:
        with pytest.raises(TypeError, match="random_state must be None, an int"):
            vae.sample_posterior(X, random_state=bad)
    with pytest.raises(ValueError, match="n_components=2"):
        vae.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        vae.inverse_transform(np.full((3, 2), np.nan))
    with pytest.raises(TypeError, match="[Ss]parse"):
        vae.inverse_transform(sp.csr_matrix(np.zeros((3, 2))))
    with pytest.raises(ValueError, match="features"):
        vae.score_samples(X[:, :10])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": (8, True)}, "hidden_layer_sizes"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"elbo": "other"}, "elbo"),
        ({"objective": "other"}, "objective"),
        ({"score_bound": "other"}, "score_bound"),
        ({"n_score_draws": 0}, "n_score_draws"),
        ({"n_iter_kl_warmup": -1}, "n_iter_kl_warmup"),
    ],
)
def test_invalid_parameters(digits, params, match):
    with pytest.raises(ValueError, match=match):
        _small_vae(**params).fit(digits[0][:50])


@pytest.mark.parametrize(
    "name",
    ["n_components", "n_mc_samples", "batch_size", "max_iter", "n_score_draws"],
)
def test_bool_is_not_a_count(digits, name):
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        _small_vae(**{name: True}).fit(digits[0][:50])


@budget
def test_invalid_input(digits):
    X = digits[0][:50]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _small_vae(likelihood="bernoulli").fit(X * 16)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _small_vae(likelihood="bernoulli").fit(X).score(X - 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _small_vae(likelihood="bernoulli").fit(sp.csr_matrix(X * 2))
    vae = _small_vae(n_components=2).fit(X)
    with pytest.raises(ValueError, match="features"):
        vae.transform(X[:, :10])
    with pytest.raises(ValueError, match="NaN"):
        vae.transform(np.full_like(X, np.nan))


def test_divergence_raises_a_clear_error(digits, monkeypatch):
    original = _vae._elbo_loss_and_grad
    calls = []

    def diverging(*args, **kwargs):
        calls.append(None)
        loss = original(*args, **kwargs)
        return np.nan if len(calls) > 4 else loss

    monkeypatch.setattr(_vae, "_elbo_loss_and_grad", diverging)
    with pytest.raises(ValueError, match="diverged at epoch 2"):
        _small_vae().fit(digits[0][:300])


def _failing_loss(monkeypatch, after):
    """Make the training loss NaN from step ``after`` on."""
    original = _vae._elbo_loss_and_grad
    calls = []

    def failing(*args, **kwargs):
        calls.append(None)
        loss = original(*args, **kwargs)
        return np.nan if len(calls) > after else loss

    monkeypatch.setattr(_vae, "_elbo_loss_and_grad", failing)


@budget
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_failed_fit_leaves_the_fitted_model_unchanged(digits, monkeypatch, likelihood):
    """fit and partial_fit are transactional: when they raise, a fitted model
    keeps every attribute, its outputs, and how it would train next."""
    X = digits[0][:300]
    vae = _small_vae(likelihood=likelihood, early_stopping=False).fit(X)
    reference = copy.deepcopy(vae)
    Z = vae.transform(X)

    bad_batches = [
        X[:, :10],  # wrong number of features
        np.full_like(X, np.nan),
        X - 2 if likelihood == "bernoulli" else np.full(X.shape, "a"),
    ]
    for bad in bad_batches:
        with pytest.raises((ValueError, TypeError)):
            vae.partial_fit(bad)
        _assert_same_state(vae, reference)

    # Divergence in the middle of a partial_fit, a warm-started fit, and a
    # new fit on data of another shape.
    _failing_loss(monkeypatch, after=1)
    with pytest.raises(ValueError, match="diverged"):
        vae.partial_fit(X)
    _assert_same_state(vae, reference)
    with pytest.raises(ValueError, match="diverged"):
        vae.set_params(warm_start=True).fit(X)
    _assert_same_state(vae, reference)
    with pytest.raises(ValueError, match="diverged"):
        vae.set_params(warm_start=False, n_components=3).fit(X[:, :20])
    vae.set_params(n_components=2)
    _assert_same_state(vae, reference)
    assert vae.n_features_in_ == 64
    assert_array_equal(vae.transform(X), Z)

    monkeypatch.undo()
    # It trains on exactly as the untouched copy does.
    vae.partial_fit(X)
    reference.partial_fit(X)
    _assert_same_state(vae, reference)


def test_failed_first_fit_leaves_the_estimator_unfitted(digits, monkeypatch):
    _failing_loss(monkeypatch, after=2)
    vae = _small_vae()
    with pytest.raises(ValueError, match="diverged"):
        vae.fit(digits[0][:300])
    assert not hasattr(vae, "n_features_in_")
    assert not hasattr(vae, "encoder_coefs_")


# ----------------------------------------------------------------------
# Interoperability


@budget
def test_pickle_keeps_working(digits):
    X = digits[0][:200]
    vae = _small_vae().fit(X)
    clone_ = pickle.loads(pickle.dumps(vae))
    assert_allclose(clone_.transform(X), vae.transform(X))
    clone_.partial_fit(X)
    assert clone_.n_iter_ == vae.n_iter_ + 1


@budget
def test_feature_names_and_set_output(digits):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(digits[0][:100], columns=[f"px{i}" for i in range(64)])
    vae = _small_vae(n_components=3).set_output(transform="pandas").fit(X)
    Z = vae.transform(X)
    assert list(Z.columns) == ["vaetransformer0", "vaetransformer1", "vaetransformer2"]
    assert_array_equal(vae.get_feature_names_out(), Z.columns)


def test_blas_is_single_threaded_while_training_small_networks(digits, monkeypatch):
    """Small products run on one BLAS thread; the setting is restored after
    training, also when it raises."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [
            info["num_threads"]
            for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"
        ]

    before = blas_threads()
    seen = []
    original = _vae._elbo_loss_and_grad

    def recording(*args, **kwargs):
        seen.append(blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(_vae, "_elbo_loss_and_grad", recording)
    _fit(_small_vae(), digits[0][:200])
    assert seen and all(threads == [1] * len(before) for threads in seen)
    assert blas_threads() == before
    # A step whose products exceed _SMALL_PRODUCT multiply-adds keeps them.
    monkeypatch.setattr(_vae, "_SMALL_PRODUCT", 1)
    seen.clear()
    _fit(_small_vae(max_iter=1), digits[0][:200])
    assert all(threads == before for threads in seen)
    # Restored when training raises.
    monkeypatch.setattr(_vae, "_SMALL_PRODUCT", 2**40)
    _failing_loss(monkeypatch, after=1)
    with pytest.raises(ValueError, match="diverged"):
        _small_vae().fit(digits[0][:200])
    assert blas_threads() == before
