"""InformationCriterionDisplay, and MixtureDisplay of the shared-variance types."""

import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError

from sklearn_em import BernoulliMixtureIC, GaussianMixtureEM, GaussianMixtureIC
from sklearn_em.plotting import InformationCriterionDisplay, MixtureDisplay


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=300, centers=3, cluster_std=1.0, random_state=0)
    return X @ np.array([[1.0, 0.6], [0.0, 0.8]])


@pytest.fixture(scope="module")
def search(blobs):
    return GaussianMixtureIC(
        5, covariance_type=["spherical", "diag", "full"], random_state=0
    ).fit(blobs)


def test_one_line_per_structure(pyplot, search):
    disp = InformationCriterionDisplay.from_estimator(search)
    assert list(disp.lines_) == ["spherical", "diag", "full"]
    results = search.results_
    for covariance_type, line in disp.lines_.items():
        rows = results["covariance_type"] == covariance_type
        assert_array_equal(line.get_xdata(), results["n_components"][rows])
        assert_allclose(line.get_ydata(), results["bic"][rows], rtol=1e-12)
        mclust_name = {"spherical": "VII", "diag": "VVI", "full": "VVV"}
        assert line.get_label() == f"{covariance_type} ({mclust_name[covariance_type]})"
    # the selected candidate is marked, on its curve
    assert disp.best == (search.n_components_, search.covariance_type_)
    assert_allclose(
        disp.best_marker_.get_offsets(), [[search.n_components_, search.criterion_]]
    )
    assert disp.mixture_display_ is None
    assert disp.ax_.get_ylabel() == "BIC (lower is better)"
    assert disp.figure_ is disp.ax_.figure


def test_other_criterion_marks_its_own_minimum(pyplot, search):
    disp = InformationCriterionDisplay.from_estimator(search, criterion="aic")
    i = int(np.argmin(search.results_["aic"]))
    assert disp.best == (
        search.results_["n_components"][i],
        search.results_["covariance_type"][i],
    )
    assert disp.ax_.get_ylabel().startswith("AIC")
    with pytest.raises(ValueError, match="criterion must be one of"):
        InformationCriterionDisplay.from_estimator(search, criterion="mdl")


def test_with_data_draws_the_selected_mixture(pyplot, search, blobs):
    disp = InformationCriterionDisplay.from_estimator(search, blobs)
    mixture = disp.mixture_display_
    assert isinstance(mixture, MixtureDisplay)
    assert mixture.ellipses_.shape == (search.n_components_, 2)
    assert_allclose(mixture.means, search.means_, rtol=1e-12)
    assert mixture.ax_ is not disp.ax_
    assert mixture.ax_.figure is disp.figure_
    _, axes = pyplot.subplots(1, 2)
    disp = InformationCriterionDisplay.from_estimator(search, blobs, ax=axes)
    assert disp.ax_ is axes[0] and disp.mixture_display_.ax_ is axes[1]
    with pytest.raises(ValueError, match="two matplotlib Axes"):
        InformationCriterionDisplay.from_estimator(search, blobs, ax=axes[0])


def test_failed_candidates_leave_gaps(pyplot, blobs):
    search = GaussianMixtureIC([1, 2, 400], covariance_type="diag").fit(blobs)
    disp = InformationCriterionDisplay.from_estimator(search)
    y = disp.lines_["diag"].get_ydata()
    assert np.isfinite(y[:2]).all() and np.isnan(y[2])


def test_bernoulli_search(pyplot):
    rng = np.random.RandomState(0)
    X = (rng.rand(200, 8) < 0.5).astype(float)
    search = BernoulliMixtureIC(3, random_state=0).fit(X)
    disp = InformationCriterionDisplay.from_estimator(search)
    assert list(disp.lines_) == ["mixture"]
    assert_allclose(disp.lines_["mixture"].get_ydata(), search.results_["bic"])
    with pytest.raises(ValueError, match="Gaussian mixture search"):
        InformationCriterionDisplay.from_estimator(search, X)


def test_unfitted(pyplot):
    with pytest.raises(NotFittedError):
        InformationCriterionDisplay.from_estimator(GaussianMixtureIC())


def test_plot_on_given_axes_with_kwargs(pyplot, search):
    _, ax = pyplot.subplots()
    disp = InformationCriterionDisplay.from_estimator(
        search, ax=ax, line_kwargs={"linewidth": 3}, best_kwargs={"s": 10}
    )
    assert disp.ax_ is ax
    assert all(line.get_linewidth() == 3 for line in disp.lines_.values())
    assert_allclose(disp.best_marker_.get_sizes(), [10])


def test_missing_matplotlib_message(monkeypatch):
    display = InformationCriterionDisplay(
        n_components=[1, 2], values={"full": [2.0, 1.0]}, best=(2, "full")
    )
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "sklearn-em\[plot\]"'):
        display.plot()


@pytest.mark.parametrize("covariance_type", ["tied_diag", "tied_spherical"])
def test_mixture_display_shared_variances(pyplot, blobs, covariance_type):
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0)
    gm.fit(blobs)
    disp = MixtureDisplay.from_estimator(gm, blobs, n_std=(1.5,))
    covariance = (
        np.diag(gm.covariances_)
        if covariance_type == "tied_diag"
        else float(gm.covariances_) * np.eye(2)
    )
    for k in range(3):
        ellipse = disp.ellipses_[k, 0]
        assert_allclose(ellipse.center, gm.means_[k], rtol=1e-10)
        widths = sorted([ellipse.width, ellipse.height])
        expected = sorted(2 * 1.5 * np.sqrt(np.diag(covariance)))
        assert_allclose(widths, expected, rtol=1e-10)
