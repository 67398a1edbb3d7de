import subprocess
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import norm
from sklearn.datasets import load_digits, make_blobs
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import GaussianMixtureEM, VAETransformer
from sklearn_em.plotting import (
    ConvergenceDisplay,
    LatentSpaceDisplay,
    ManifoldDisplay,
    MixtureDisplay,
    PrototypeDisplay,
)


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=300, centers=3, cluster_std=1.0, random_state=0)
    # Shear the data so that the full covariances are tilted.
    return X @ np.array([[1.0, 0.6], [0.0, 0.8]])


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16, y[:400]


@pytest.fixture(scope="module")
def vae(digits):
    X, _ = digits
    vae = VAETransformer(
        2,
        hidden_layer_sizes=(16,),
        likelihood="bernoulli",
        max_iter=5,
        early_stopping=True,
        random_state=0,
    )
    with warnings.catch_warnings():
        # A fixed budget of epochs: no convergence expected.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vae.fit(X)


def _expected_ellipse(covariance, n_std):
    """Independent computation: semi-axes and the major axis' direction."""
    eigvals, eigvecs = np.linalg.eig(covariance)
    major = np.argmax(eigvals)
    direction = eigvecs[:, major]
    return (
        2 * n_std * np.sqrt(eigvals.max()),
        2 * n_std * np.sqrt(eigvals.min()),
        direction,
    )


def _check_ellipse(ellipse, mean, covariance, n_std):
    width, height, direction = _expected_ellipse(covariance, n_std)
    assert_allclose(ellipse.center, mean, rtol=1e-10)
    assert_allclose(ellipse.width, width, rtol=1e-10)
    assert_allclose(ellipse.height, height, rtol=1e-10)
    if np.isclose(width, height, rtol=1e-9):
        return  # a circle: every direction is an axis
    angle = np.radians(ellipse.angle)
    # The width lies along the major axis (up to its sign).
    assert_allclose(
        abs(np.dot([np.cos(angle), np.sin(angle)], direction)), 1.0, rtol=1e-10
    )


def test_mixture_display_full_covariances(pyplot, blobs):
    gm = GaussianMixtureEM(3, random_state=0).fit(blobs)
    disp = MixtureDisplay.from_estimator(gm, blobs, n_std=(1, 2))
    assert disp.ellipses_.shape == (3, 2)
    assert len(disp.ax_.patches) == 6
    for k in range(3):
        for j, n_std in enumerate((1, 2)):
            _check_ellipse(
                disp.ellipses_[k, j], gm.means_[k], gm.covariances_[k], n_std
            )
    assert_allclose(disp.scatter_.get_offsets(), blobs, rtol=1e-12)
    # Colours mix the components' tab10 colours by responsibility.
    tab10 = pyplot.get_cmap("tab10")(np.arange(3))[:, :3]
    expected = gm.predict_proba(blobs) @ tab10
    assert_allclose(disp.scatter_.get_facecolors()[:, :3], expected, atol=1e-12)
    assert_allclose(disp.means_scatter_.get_offsets(), gm.means_, rtol=1e-12)
    assert disp.ax_.figure is disp.figure_


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_mixture_display_other_covariance_types(pyplot, blobs, covariance_type):
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0)
    gm.fit(blobs)
    disp = MixtureDisplay.from_estimator(gm, blobs, n_std=(1.5,))
    for k in range(3):
        if covariance_type == "tied":
            covariance = gm.covariances_
        elif covariance_type == "diag":
            covariance = np.diag(gm.covariances_[k])
        else:
            covariance = gm.covariances_[k] * np.eye(2)
        _check_ellipse(disp.ellipses_[k, 0], gm.means_[k], covariance, 1.5)


def test_mixture_display_pca_projection(pyplot):
    X, _ = make_blobs(n_samples=200, n_features=4, centers=2, random_state=1)
    gm = GaussianMixtureEM(2, random_state=0).fit(X)
    disp = MixtureDisplay.from_estimator(gm, X)
    pca = PCA(n_components=2).fit(X)
    X_pca = pca.transform(X)
    # Same plane as scikit-learn's PCA, up to the sign of each axis.
    signs = np.sign(np.sum(disp.X * X_pca, axis=0))
    assert_allclose(disp.scatter_.get_offsets(), X_pca * signs, atol=1e-10)
    W = pca.components_ * signs[:, np.newaxis]
    for k in range(2):
        covariance = W @ gm.covariances_[k] @ W.T
        mean = pca.transform(gm.means_[k : k + 1])[0] * signs
        _check_ellipse(disp.ellipses_[k, 0], mean, covariance, 1)
    assert disp.ax_.get_xlabel() == "PC 1"


def test_mixture_display_first_two_features(pyplot):
    X, _ = make_blobs(n_samples=100, n_features=3, centers=2, random_state=1)
    gm = GaussianMixtureEM(2, random_state=0).fit(X)
    disp = MixtureDisplay.from_estimator(gm, X, projection="features")
    assert_allclose(disp.scatter_.get_offsets(), X[:, :2], rtol=1e-12)
    _check_ellipse(
        disp.ellipses_[1, 0], gm.means_[1, :2], gm.covariances_[1][:2, :2], 1
    )
    with pytest.raises(ValueError, match="projection must be"):
        MixtureDisplay.from_estimator(gm, X, projection="tsne")


def test_mixture_display_uses_given_axes(pyplot, blobs):
    gm = GaussianMixtureEM(2, random_state=0).fit(blobs)
    fig, (ax1, ax2) = pyplot.subplots(1, 2)
    disp = MixtureDisplay.from_estimator(gm, blobs, ax=ax2)
    assert disp.ax_ is ax2 and disp.figure_ is fig
    assert len(ax1.patches) == 0 and len(ax2.patches) == 4


def test_prototype_display(pyplot, digits):
    X, _ = digits
    gm = GaussianMixtureEM(5, covariance_type="diag", random_state=0).fit(X)
    disp = PrototypeDisplay.from_estimator(gm)
    order = np.argsort(-gm.weights_, kind="stable")
    assert len(disp.images_) == 5
    for image, k in zip(disp.images_, order):
        assert_allclose(image.get_array(), gm.means_[k].reshape(8, 8), rtol=1e-12)
    assert [t.get_text() for t in disp.texts_] == [
        f"{w:.3f}" for w in gm.weights_[order]
    ]
    assert list(disp.ax_.images) == disp.images_

    disp = PrototypeDisplay.from_estimator(gm, sort_by_weight=False)
    for k, image in enumerate(disp.images_):
        assert_allclose(image.get_array(), gm.means_[k].reshape(8, 8), rtol=1e-12)
    # Images never overlap: the extents of consecutive images are disjoint.
    left = [image.get_extent()[0] for image in disp.images_[:3]]
    assert np.all(np.diff(left) > 8)

    disp = PrototypeDisplay.from_estimator(gm, image_shape=(4, 16))
    assert disp.images_[0].get_array().shape == (4, 16)
    with pytest.raises(ValueError, match="does not match 64 features"):
        PrototypeDisplay.from_estimator(gm, image_shape=(5, 16))
    gm3 = GaussianMixtureEM(2, random_state=0).fit(X[:, :3])
    with pytest.raises(ValueError, match="square image shape"):
        PrototypeDisplay.from_estimator(gm3)


def test_latent_space_display(pyplot, digits, vae):
    X, y = digits
    disp = LatentSpaceDisplay.from_estimator(vae, X, y, n_samples=2, random_state=3)
    expected = vae.sample_posterior(X, n_samples=2, random_state=3)
    assert_allclose(disp.scatter_.get_offsets(), expected, rtol=1e-6)
    # Each point is coloured by its label, the draws of a row alike.
    colors = disp.scatter_.get_facecolors()[:, :3]
    tab10 = pyplot.get_cmap("tab10")(np.arange(10))[:, :3]
    assert_allclose(colors, tab10[np.repeat(y, 2)], atol=1e-12)
    # The prior's contours are the densities on circles of radius 3, 2, 1.
    levels = np.exp(-0.5 * np.array([9.0, 4.0, 1.0])) / (2 * np.pi)
    assert_allclose(disp.contour_.levels, levels, rtol=1e-12)
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert legend == [str(d) for d in range(10)]


def test_latent_displays_need_2d_latent_space(pyplot, digits):
    X, _ = digits
    vae3 = VAETransformer(3, hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    with pytest.warns(ConvergenceWarning):
        vae3.fit(X)
    with pytest.raises(ValueError, match="2-D latent space"):
        LatentSpaceDisplay.from_estimator(vae3, X)
    with pytest.raises(ValueError, match="2-D latent space"):
        ManifoldDisplay.from_estimator(vae3)


def test_manifold_display(pyplot, vae):
    disp = ManifoldDisplay.from_estimator(vae, n_points=5)
    # The grid maps the midpoints of a uniform mesh through the normal
    # inverse CDF: Phi(grid) recovers the mesh.
    u = (np.arange(5) + 0.5) / 5
    assert_allclose(norm.cdf(disp.grid[0, :, 0]), u, rtol=1e-12)
    assert_allclose(norm.cdf(disp.grid[:, 0, 1]), u[::-1], rtol=1e-12)
    mosaic = disp.image_.get_array()
    assert mosaic.shape == (40, 40)
    decoded = vae.inverse_transform(disp.grid.reshape(-1, 2))
    for i in range(5):
        for j in range(5):
            block = mosaic[8 * i : 8 * i + 8, 8 * j : 8 * j + 8]
            assert_allclose(block, decoded[5 * i + j].reshape(8, 8), rtol=1e-6)
    labels = [t.get_text() for t in disp.ax_.get_xticklabels()]
    assert labels == [f"{z:.1f}" for z in norm.ppf(u)]


def test_convergence_display_mixture(pyplot, blobs):
    gm = GaussianMixtureEM(3, random_state=0, tol=1e-6, max_iter=1000).fit(blobs)
    disp = ConvergenceDisplay.from_estimator(gm)
    (line,) = disp.lines_
    assert_array_equal(line.get_xdata(), np.arange(1, gm.n_iter_ + 1))
    assert_allclose(line.get_ydata(), gm.lower_bounds_, rtol=1e-12)
    # EM never decreases the lower bound.
    assert np.all(np.diff(line.get_ydata()) >= -1e-10)


def test_convergence_display_vae(pyplot, vae):
    disp = ConvergenceDisplay.from_estimator(vae)
    train, validation = disp.lines_
    assert_allclose(train.get_ydata(), -np.asarray(vae.loss_curve_), rtol=1e-12)
    assert_allclose(validation.get_ydata(), vae.validation_scores_, rtol=1e-12)
    with pytest.raises(TypeError, match="lower_bounds_ or loss_curve_"):
        ConvergenceDisplay.from_estimator(PCA().fit(np.eye(3)))


@pytest.mark.parametrize(
    "make_display",
    [
        lambda: MixtureDisplay(
            X=np.zeros((1, 2)),
            resp=np.ones((1, 1)),
            means=np.zeros((1, 2)),
            covariances=np.eye(2)[np.newaxis],
        ),
        lambda: PrototypeDisplay(images=np.zeros((1, 2, 2))),
        lambda: LatentSpaceDisplay(Z=np.zeros((1, 2))),
        lambda: ManifoldDisplay(
            images=np.zeros((1, 1, 2, 2)), grid=np.zeros((1, 1, 2))
        ),
        lambda: ConvergenceDisplay(curves={"a": [1.0]}),
    ],
)
def test_missing_matplotlib_message(monkeypatch, make_display):
    display = make_display()
    # A None entry in sys.modules makes ``import matplotlib`` raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "sklearn-em\[plot\]"'):
        display.plot()


def test_import_does_not_import_matplotlib():
    code = (
        "import sys, sklearn_em, sklearn_em.plotting; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
