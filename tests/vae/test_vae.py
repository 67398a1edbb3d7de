"""Tests of the VAETransformer estimator."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sklearn_em import VAETransformer


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


def _small_vae(**params):
    defaults = dict(
        n_components=2, hidden_layer_sizes=(32,), max_iter=3, random_state=0
    )
    return VAETransformer(**{**defaults, **params})


def test_held_out_elbo_improves_with_training(digits):
    X, _ = digits
    X_train, X_test = X[:1200], X[1200:]
    vae = _small_vae(likelihood="bernoulli", max_iter=1).fit(X_train)
    before = vae.score(X_test)
    vae.set_params(max_iter=30).fit(X_train)
    assert vae.score(X_test) > before + 2
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]
    assert vae.n_iter_ == len(vae.loss_curve_)


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
    # Deterministic given random_state, and scores independent of the rows.
    assert_array_equal(
        _small_vae(likelihood=likelihood, n_components=3).fit(X).transform(X), Z
    )
    assert_allclose(vae.score_samples(X[::-1][:50]), scores[::-1][:50], rtol=1e-5)
    if likelihood == "bernoulli":
        assert np.all((vae.sample(5) >= 0) & (vae.sample(5) <= 1))
    else:
        assert vae.decoder_log_var_.shape == (64,)


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


def test_importance_weighted_score_is_tighter(digits):
    X = digits[0][:300]
    vae = _small_vae(likelihood="bernoulli", max_iter=20).fit(X)
    elbo = vae.set_params(n_mc_samples=50).score(X)
    iwae = vae.set_params(n_mc_samples=1, n_importance_samples=50).score(X)
    assert iwae > elbo


def test_early_stopping_restores_best_weights(digits):
    X = digits[0][:400]
    vae = _small_vae(early_stopping=True, max_iter=15, n_iter_no_change=2, tol=0.5).fit(
        X
    )
    assert len(vae.validation_scores_) == vae.n_iter_
    assert vae.best_loss_ is None
    assert vae.best_validation_score_ == max(vae.validation_scores_)
    assert np.all(np.isfinite(vae.transform(X)))


def test_early_stopping_restored_weights_reproduce_best_score(digits):
    """After fit, the model scores its validation split at the best score."""
    X = digits[0][:400]
    seen = {}

    class RecordingVAE(VAETransformer):
        def _update_no_improvement_count(self, X_val):
            seen["X_val"] = X_val
            return super()._update_no_improvement_count(X_val)

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
    restored = float(np.mean(vae._score_samples(seen["X_val"])))
    assert_allclose(restored, vae.best_validation_score_, rtol=1e-10)
    assert restored > scores[-1]
    with pytest.raises(ValueError, match="early_stopping"):
        vae.partial_fit(X)


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


def test_pickle_keeps_working(digits):
    import pickle

    X = digits[0][:200]
    vae = _small_vae().fit(X)
    clone = pickle.loads(pickle.dumps(vae))
    assert_allclose(clone.transform(X), vae.transform(X))
    clone.partial_fit(X)
    assert clone.n_iter_ == vae.n_iter_ + 1


def test_feature_names_and_set_output(digits):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(digits[0][:100], columns=[f"px{i}" for i in range(64)])
    vae = _small_vae(n_components=3).set_output(transform="pandas").fit(X)
    Z = vae.transform(X)
    assert list(Z.columns) == ["vaetransformer0", "vaetransformer1", "vaetransformer2"]
    assert_array_equal(vae.get_feature_names_out(), Z.columns)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"elbo": "other"}, "elbo"),
    ],
)
def test_invalid_parameters(digits, params, match):
    with pytest.raises(ValueError, match=match):
        _small_vae(**params).fit(digits[0][:50])


def test_invalid_input(digits):
    X = digits[0][:50]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _small_vae(likelihood="bernoulli").fit(X * 16)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _small_vae(likelihood="bernoulli").fit(X).score(X - 1)
    vae = _small_vae(n_components=2).fit(X)
    with pytest.raises(ValueError, match="n_components=2"):
        vae.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="features"):
        vae.transform(X[:, :10])
    with pytest.raises(ValueError, match="n_samples"):
        vae.sample(0)
    with pytest.raises(ValueError, match="NaN"):
        vae.transform(np.full_like(X, np.nan))


def test_divergence_raises_a_clear_error():
    X = np.random.RandomState(0).normal(size=(50, 4)).astype(np.float32) * 1e25
    X[:, 0] = 0  # constant feature: tiny variance, huge residuals
    with pytest.raises(ValueError, match="diverged"):
        _small_vae().fit(X)
