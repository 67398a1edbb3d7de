"""The demo: ``python -m sklearn_em``.

Fits GaussianMixtureEM on a data set that ships with scikit-learn, selects the
number of components by BIC, and prints a short report.
"""

import argparse
import sys
import time

from sklearn.datasets import load_iris
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from . import GaussianMixtureEM, __version__


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_em",
        description="Fit sklearn-em's estimators on bundled data and print a report.",
    )
    parser.add_argument(
        "--max-components",
        type=int,
        default=6,
        help="largest number of mixture components tried (default: 6)",
    )
    parser.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    return parser.parse_args(argv)


def _gaussian_report(args, out):
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    print(f"Iris: {X.shape[0]} samples, {X.shape[1]} features", file=out)
    print(
        f"{'K':>3} {'covariance':>10} {'BIC':>10} {'log-lik':>9} {'iters':>5}", file=out
    )
    best = None
    for covariance_type in ("full", "diag"):
        for k in range(1, args.max_components + 1):
            gm = GaussianMixtureEM(
                k,
                covariance_type=covariance_type,
                n_init=3,
                random_state=args.random_state,
            ).fit(X)
            bic = gm.bic(X)
            print(
                f"{k:>3} {covariance_type:>10} {bic:>10.1f} {gm.score(X):>9.3f} "
                f"{gm.n_iter_:>5}",
                file=out,
            )
            if best is None or bic < best[0]:
                best = (bic, gm)
    bic, gm = best
    ari = adjusted_rand_score(y, gm.predict(X))
    print(
        f"Selected by BIC: K={gm.n_components}, covariance_type="
        f"'{gm.covariance_type}' (BIC {bic:.1f}); adjusted Rand index against "
        f"the species: {ari:.3f}",
        file=out,
    )
    return gm


def main(argv=None, out=sys.stdout):
    """Run the demo; returns the process exit code."""
    args = _parse_args(argv)
    print(f"sklearn-em {__version__}", file=out)
    start = time.perf_counter()
    _gaussian_report(args, out)
    print(f"Done in {time.perf_counter() - start:.1f} s.", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
