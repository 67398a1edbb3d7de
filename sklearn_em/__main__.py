"""The demo: ``python -m sklearn_em``.

Fits the three estimators on handwritten digits (scikit-learn's bundled 8x8
digits by default, or the MNIST test set with ``--mnist PATH``), selects the
number of Gaussian components by BIC and by a cross-validated GridSearchCV
over a Pipeline, prints a results table, and writes figures into ``--out``
when matplotlib is installed. Progress goes to stderr (one line per fit in
the long stages), the report to stdout.
"""

import argparse
import contextlib
import gzip
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from . import GaussianMixtureEM, VAETransformer, __version__
from .mixture import BernoulliMixtureEM


def _positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_em",
        description=(
            "Fit sklearn-em's three estimators on handwritten digits, select the "
            "number of Gaussian components by BIC and by GridSearchCV, print a "
            "results table and write figures."
        ),
    )
    parser.add_argument(
        "--mnist",
        metavar="PATH",
        default=None,
        help="folder of the MNIST test set IDX files (t10k-*-ubyte.gz); "
        "default: scikit-learn's bundled 8x8 digits",
    )
    parser.add_argument(
        "--n-samples",
        type=_positive_int,
        default=None,
        help="use only the first N images (default: all digits, 8000 of MNIST)",
    )
    parser.add_argument(
        "--max-components",
        type=_positive_int,
        metavar="N",
        default=16,
        help="largest number of Gaussian components tried; K = 1..N (default: 16)",
    )
    parser.add_argument(
        "--pca-components",
        type=_positive_int,
        default=10,
        help="PCA dimensions before the Gaussian mixture (default: 10)",
    )
    parser.add_argument(
        "--vae-epochs",
        type=_positive_int,
        default=60,
        help="training epochs of the VAE (default: 60)",
    )
    parser.add_argument(
        "--out",
        default="sklearn_em_output",
        help="folder for the figures (default: sklearn_em_output)",
    )
    parser.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress messages on stderr"
    )
    return parser.parse_args(argv)


def _load_data(args):
    """Images in [0, 1] of shape (n, d), labels, image shape and a name."""
    if args.mnist is None:
        X, y = load_digits(return_X_y=True)
        X, shape, name = X / 16.0, (8, 8), "scikit-learn digits (8x8)"
    else:
        path = Path(args.mnist)
        images = path / "t10k-images-idx3-ubyte.gz"
        labels = path / "t10k-labels-idx1-ubyte.gz"
        if not images.exists() or not labels.exists():
            raise SystemExit(f"error: no MNIST IDX files in {path}")
        with gzip.open(images) as f:
            X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784) / 255.0
        with gzip.open(labels) as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8).astype(int)
        X, y, shape, name = X[:8000], y[:8000], (28, 28), "MNIST (28x28)"
    if args.n_samples is not None:
        X, y = X[: args.n_samples], y[: args.n_samples]
    return X, y, shape, name


class _Progress:
    """Prints what runs and how long it took (to stderr, unless quiet)."""

    def __init__(self, quiet):
        self.quiet = quiet

    def __call__(self, message):
        if not self.quiet:
            print(f"[sklearn_em] {message}", file=sys.stderr, flush=True)


def _edge_warning(method, k, ks):
    """A warning when ``method`` chose the largest K of the grid, else None."""
    if k != ks[-1] or len(ks) < 2:
        return None
    return (
        f"Warning: {method} chose K={k}, the largest K tried: a larger K may be "
        f"better still. Rerun with --max-components {2 * k} to look further."
    )


def _gaussian(args, X, y, progress):
    ks = list(range(1, args.max_components + 1))
    progress(
        f"GaussianMixtureEM on {args.pca_components} PCA scores: "
        f"BIC over K = 1..{args.max_components}"
    )
    Xp = PCA(args.pca_components, random_state=args.random_state).fit_transform(X)
    bics = []
    for k in ks:
        t0 = time.perf_counter()
        gm = GaussianMixtureEM(k, n_init=2, random_state=args.random_state).fit(Xp)
        bics.append(gm.bic(Xp))
        progress(f"  K={k}: BIC {bics[-1]:.1f} ({time.perf_counter() - t0:.1f} s)")
    k_bic = ks[int(np.argmin(bics))]
    progress(
        f"GridSearchCV over K = 1..{args.max_components} in "
        f"Pipeline(PCA, GaussianMixtureEM): {len(ks)} candidates x 3 folds"
    )
    pipe = Pipeline(
        [
            ("pca", PCA(args.pca_components, random_state=args.random_state)),
            ("gm", GaussianMixtureEM(random_state=args.random_state)),
        ]
    )
    search = GridSearchCV(
        pipe,
        {"gm__n_components": ks},
        cv=KFold(3, shuffle=True, random_state=args.random_state),
        # One line per fit: "[CV 1/3] END gm__n_components=1;, score=..."
        verbose=0 if progress.quiet else 3,
    )
    # scikit-learn prints its progress to stdout; it belongs with ours.
    with contextlib.redirect_stdout(sys.stderr):
        search.fit(X)
    k_cv = search.best_params_["gm__n_components"]
    gm = GaussianMixtureEM(k_bic, n_init=2, random_state=args.random_state).fit(Xp)
    return {
        "model": gm,
        "Xp": Xp,
        "k_bic": k_bic,
        "k_cv": k_cv,
        "ks": ks,
        "bics": bics,
        "cv_scores": search.cv_results_["mean_test_score"],
        "warnings": [
            w
            for w in [
                _edge_warning("BIC", k_bic, ks),
                _edge_warning("GridSearchCV", k_cv, ks),
            ]
            if w is not None
        ],
        "row": (
            "GaussianMixtureEM",
            k_bic,
            f"log-density of the {args.pca_components} PCA scores",
            gm.score(Xp),
            adjusted_rand_score(y, gm.predict(Xp)),
            gm.n_iter_,
        ),
    }


def _bernoulli(args, X, y, progress):
    k = 10
    progress(f"BernoulliMixtureEM: K={k} on the pixels binarised at 0.5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bm = BernoulliMixtureEM(
            k, binarize=0.5, n_init=2, random_state=args.random_state
        ).fit(X)
    return {
        "model": bm,
        "row": (
            "BernoulliMixtureEM",
            k,
            f"log-probability of the {X.shape[1]} binary pixels",
            bm.score(X),
            adjusted_rand_score(y, bm.predict(X)),
            bm.n_iter_,
        ),
    }


def _vae(args, X, y, progress):
    progress(
        f"VAETransformer: 2-D latent space, {args.vae_epochs} epochs on the "
        "pixels binarised at 0.5"
    )
    # The same binary pixels as the Bernoulli mixture, so that its ELBO bounds
    # the same kind of number as the mixture's log-likelihood.
    Xb = (X > 0.5).astype(np.float64)
    vae = VAETransformer(
        2,
        hidden_layer_sizes=(128,),
        likelihood="bernoulli",
        max_iter=args.vae_epochs,
        random_state=args.random_state,
        # One line per epoch: "Iteration 1, loss = ..., time = ...s".
        verbose=0 if progress.quiet else 1,
    )
    # Like scikit-learn's, the VAE's progress goes to stdout; it belongs with
    # ours.
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        # A fixed budget of --vae-epochs, not a run to convergence.
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(Xb)
    # k-means-free summary of the latent space: how well 10 Gaussian clusters
    # of the codes recover the digit classes.
    Z = vae.transform(Xb)
    gm = GaussianMixtureEM(10, random_state=args.random_state).fit(Z)
    return {
        "model": vae,
        "Xb": Xb,
        "row": (
            "VAETransformer",
            2,
            f"ELBO <= log-probability of the {X.shape[1]} binary pixels",
            vae.score(Xb),
            adjusted_rand_score(y, gm.predict(Z)),
            vae.n_iter_,
        ),
    }


def _print_table(rows, out):
    """The results: one row per model, each score labelled with what it is."""
    columns = ["model", "K", "score", "score: mean per image of the", "ARI", "iters"]
    cells = [
        [name, str(k), f"{score:.3f}", what, f"{ari:.3f}", str(n_iter)]
        for name, k, what, score, ari, n_iter in rows
    ]
    widths = [max(len(c[i]) for c in [columns, *cells]) for i in range(len(columns))]
    left = {0, 3}  # text columns; numbers are right-aligned

    def line(values):
        return "  ".join(
            v.ljust(w) if i in left else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths))
        )

    print(line(columns), file=out)
    print("-" * len(line(columns)), file=out)
    for row in cells:
        print(line(row), file=out)


def _print_notes(args, out):
    notes = [
        "K: mixture components (for the VAE: latent dimensions). score: the mean "
        "over the images of the quantity named beside it, in nats.",
        "The rows model different data and are not comparable across them: the "
        f"Gaussian mixture models the images' first {args.pca_components} principal "
        "components (a density of continuous values, which depends on their "
        "scale), the Bernoulli mixture and the VAE the same binarised pixels "
        "(probabilities of discrete values). The VAE's ELBO is a lower bound on "
        "its own log-probability of those pixels.",
        "ARI: adjusted Rand index of the clusters (for the VAE: of a 10-component "
        "Gaussian mixture on its codes) against the digit labels, which no fit "
        "uses.",
    ]
    for note in notes:
        print(file=out)
        print(textwrap.fill(note, width=79), file=out)


def _figures(results, X, y, shape, out_dir, progress):
    """Write the figures; returns their paths, or None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import (
        ConvergenceDisplay,
        LatentSpaceDisplay,
        ManifoldDisplay,
        MixtureDisplay,
        PrototypeDisplay,
    )

    progress(f"writing figures into {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    gauss, bern, vae = results["gaussian"], results["bernoulli"], results["vae"]
    paths = []

    def save(display_or_fig, name):
        fig = getattr(display_or_fig, "figure_", display_or_fig)
        path = out_dir / name
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(gauss["ks"], gauss["bics"], marker="o")
    ax[0].set(xlabel="K", ylabel="BIC", title=f"BIC: K={gauss['k_bic']}")
    ax[1].plot(gauss["ks"], gauss["cv_scores"], marker="o")
    ax[1].set(
        xlabel="K",
        ylabel="held-out log-likelihood",
        title=f"GridSearchCV: K={gauss['k_cv']}",
    )
    fig.tight_layout()
    save(fig, "gaussian_model_selection.png")
    save(
        MixtureDisplay.from_estimator(gauss["model"], gauss["Xp"]),
        "gaussian_mixture.png",
    )
    save(
        PrototypeDisplay.from_estimator(bern["model"], image_shape=shape),
        "bernoulli_prototypes.png",
    )
    save(ConvergenceDisplay.from_estimator(bern["model"]), "bernoulli_convergence.png")
    save(
        LatentSpaceDisplay.from_estimator(vae["model"], vae["Xb"], y, random_state=0),
        "vae_latent_space.png",
    )
    save(
        ManifoldDisplay.from_estimator(vae["model"], image_shape=shape),
        "vae_manifold.png",
    )
    save(ConvergenceDisplay.from_estimator(vae["model"]), "vae_convergence.png")
    return paths


def main(argv=None, out=sys.stdout):
    """Run the demo; returns the process exit code."""
    args = _parse_args(argv)
    progress = _Progress(args.quiet)
    start = time.perf_counter()
    X, y, shape, name = _load_data(args)
    print(f"sklearn-em {__version__}", file=out)
    print(f"Data: {name}, {X.shape[0]} images of {X.shape[1]} pixels", file=out)
    results = {}
    for key, step in [
        ("gaussian", _gaussian),
        ("bernoulli", _bernoulli),
        ("vae", _vae),
    ]:
        t0 = time.perf_counter()
        results[key] = step(args, X, y, progress)
        progress(f"  done in {time.perf_counter() - t0:.1f} s")
    print(file=out)
    _print_table([r["row"] for r in results.values()], out)
    _print_notes(args, out)
    g = results["gaussian"]
    selected = (
        f"Number of Gaussian components selected by BIC: {g['k_bic']}; "
        f"by 3-fold GridSearchCV (held-out log-likelihood): {g['k_cv']}."
    )
    print(file=out)
    for paragraph in [selected, *g["warnings"]]:
        print(textwrap.fill(paragraph, width=79), file=out)
    out_dir = Path(args.out)
    paths = _figures(results, X, y, shape, out_dir, progress)
    if paths is None:
        print(
            "Figures skipped: matplotlib is not installed (pip install "
            '"sklearn-em[plot]").',
            file=out,
        )
    else:
        print(f"Figures written to {out_dir}/:", file=out)
        for path in paths:
            print(f"  {path.name}", file=out)
    print(f"Done in {time.perf_counter() - start:.1f} s.", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
