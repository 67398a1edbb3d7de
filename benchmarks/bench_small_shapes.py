"""Scan small shapes for EM iterations slower than scikit-learn's.

The sweep (``bench_sweep.py``) measures 100,000 rows. This scan covers the
shapes a grid search or a model selection meets: few rows, one to 200
features, one to 40 components. For every covariance type and every
(N, D, K) of the grid, both estimators fit the same data from the same
initial parameters (a short scikit-learn fit's) for a fixed number of EM
iterations (``tol=0``), each library's fits in a block after 0.15 s of
its untimed fits (alternated fits measured the spinning OpenBLAS threads
scikit-learn's products leave behind more than our iteration, and this
machine runs work after a pause slowly at first); the table lists the
median time per iteration and the ratio, and the summary names every point where ours is
slower, so that a change that creates a cliff shows here. Fixed costs of a
fit (validation, the final E-step) are part of both times, as a user meets
them.

The data are tight and loose clusters on an offset axis (``reg_covar=1e-3``
for both, so that components of a few rows do not collapse): with many
components on few rows, tight components far from the data's centre make
our precision guard compute them directly, the case this scan found slow.

With ``--default-fit``, the same grid times whole default fits instead
(``random_state=0``, the k-means initialisation included, ``tol=1e-3``,
``reg_covar=1e-3`` for both): what a user's single ``fit`` or a grid
search's candidate costs, initialisation and convergence included. Both
start from the same k-means labels and run the same iterations.

Usage (from the repository root; unset the OpenBLAS variables that slow
numpy on this machine for the benchmark only)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/bench_small_shapes.py \\
        [--types full tied diag spherical] [--repeats 7] [--default-fit] \\
        [--dtype float64] [--wide]

The markdown table is written to ``benchmarks/results/small_shapes.md``
(about nine minutes on 2 cores), or with ``--default-fit`` to
``benchmarks/results/small_shapes_default.md``; with ``--dtype float32``
(the same data in float32, which both libraries fit in float32) to
``small_shapes_float32.md`` or ``small_shapes_default_float32.md``. With
``--wide``, 100 to 2,000 rows of 500 to 2,000 features (1 and 3
components) instead, written to ``small_shapes_wide.md`` or
``small_shapes_default_wide.md``.
"""

import argparse
import os
import platform
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import sklearn
from sklearn.mixture import GaussianMixture

from sklearn_em import GaussianMixtureEM

RESULTS = Path(__file__).parent / "results" / "small_shapes.md"
RESULTS_DEFAULT = Path(__file__).parent / "results" / "small_shapes_default.md"

SAMPLES = [30, 100, 300, 1000, 3000]
FEATURES = [1, 4, 16, 64, 200]
COMPONENTS = [1, 3, 12, 40]

#: ``--wide``: data with more features than the grid above, often more than
#: rows (expression profiles, embeddings), where the M-step's factorisations
#: and the covariances' reg_covar directions decide the time.
WIDE_SAMPLES = [100, 500, 2000]
WIDE_FEATURES = [500, 1000, 2000]
WIDE_COMPONENTS = [1, 3]
MAX_ITER = 10
REG_COVAR = 1e-3


def make_data(n_samples, n_features, seed=0):
    """Unit-variance rows around four offsets along the diagonal."""
    rng = np.random.RandomState(seed)
    offsets = rng.randint(0, 4, size=(n_samples, 1)) * 3.0
    return rng.normal(size=(n_samples, n_features)) + offsets


#: Seconds of untimed fits before each library's block (at least one fit).
#: On this machine work after a pause runs slowly for its first 0.1-0.2 s:
#: a default diag fit of 300 x 16 with 40 components took 12, 11, 10.5,
#: ... then 7.3 ms after half a second idle, and 11.6 ms (median of 7) in
#: the scan after a one-component shape's block of sub-millisecond fits,
#: against 7.3 after a block of 3 ms fits. One untimed fit did not outlast
#: that, nor the OpenBLAS threads scikit-learn's products leave spinning.
WARM_UP = 0.15


def per_iteration(make, X, repeats, per=MAX_ITER):
    """Seconds per iteration of ``make().fit(X)`` (``per`` iterations a
    fit; 1 for whole fits), one value per fit, after ``WARM_UP`` seconds of
    untimed fits."""
    start = time.perf_counter()
    while True:
        make().fit(X)
        if time.perf_counter() - start >= WARM_UP:
            break
    times = []
    for _ in range(repeats):
        estimator = make()
        start = time.perf_counter()
        estimator.fit(X)
        times.append((time.perf_counter() - start) / per)
    return times


def measure(X, n_components, params, repeats, per=MAX_ITER):
    """Median seconds per iteration of both libraries, and their ratio.

    Each library's fits run in a block after ``WARM_UP`` seconds of its
    untimed fits: scikit-learn's products run on OpenBLAS's threads, which
    spin for a while after it returns and took a core from a fit timed
    right after (ours, at these sizes, wakes none), and this machine runs
    work after a pause slowly at first.
    """
    ours = per_iteration(
        partial(GaussianMixtureEM, n_components, **params), X, repeats, per
    )
    theirs = per_iteration(
        partial(GaussianMixture, n_components, **params), X, repeats, per
    )
    ours, theirs = float(np.median(ours)), float(np.median(theirs))
    return dict(ours=ours, theirs=theirs, ratio=theirs / ours)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--types", nargs="+", default=["full", "tied", "diag", "spherical"]
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--default-fit",
        action="store_true",
        help="time whole default fits (k-means initialisation included)",
    )
    parser.add_argument(
        "--dtype",
        choices=["float64", "float32"],
        default="float64",
        help="the data's dtype (both libraries fit it as given)",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="scan 100-2,000 rows of 500-2,000 features instead",
    )
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.output is None:
        path = RESULTS_DEFAULT if args.default_fit else RESULTS
        if args.dtype != "float64":
            path = path.with_name(f"{path.stem}_{args.dtype}{path.suffix}")
        if args.wide:
            path = path.with_name(f"{path.stem}_wide{path.suffix}")
        args.output = str(path)
    samples, features, components = (
        (WIDE_SAMPLES, WIDE_FEATURES, WIDE_COMPONENTS)
        if args.wide
        else (SAMPLES, FEATURES, COMPONENTS)
    )
    per = 1 if args.default_fit else MAX_ITER
    warnings.simplefilter("ignore")

    load = [os.getloadavg()[0]]
    tic = time.perf_counter()
    rows = []
    for covariance_type in args.types:
        for n in samples:
            for d in features:
                X = make_data(n, d).astype(args.dtype)
                for k in components:
                    if 2 * k > n:
                        continue
                    limit = 1.3e10 if args.wide else 2e7 * d
                    if covariance_type in ("full", "tied") and d * d * k * n > limit:
                        continue
                    row = dict(covariance_type=covariance_type, n=n, d=d, k=k)
                    if args.default_fit:
                        params = dict(
                            covariance_type=covariance_type,
                            reg_covar=REG_COVAR,
                            random_state=0,
                        )
                        row.update(measure(X, k, params, args.repeats, per))
                        print(row, flush=True)
                        rows.append((row, X, params))
                        continue
                    start = GaussianMixture(
                        k,
                        covariance_type=covariance_type,
                        max_iter=3,
                        reg_covar=REG_COVAR,
                        random_state=0,
                    ).fit(X)
                    params = dict(
                        covariance_type=covariance_type,
                        weights_init=start.weights_,
                        means_init=start.means_,
                        precisions_init=start.precisions_,
                        tol=0.0,
                        max_iter=MAX_ITER,
                        reg_covar=REG_COVAR,
                    )
                    row.update(measure(X, k, params, args.repeats))
                    print(row, flush=True)
                    rows.append((row, X, params))
    # The machine is shared: a point below 1.0x is measured again, with
    # three times the fits, and keeps that measurement.
    for row, X, params in rows:
        if row["ratio"] < 1.0:
            row.update(measure(X, row["k"], params, 3 * args.repeats, per), again=True)
            print("again:", row, flush=True)
    rows = [row for row, _, _ in rows]
    load.append(os.getloadavg()[0])
    elapsed = time.perf_counter() - tic

    unit = "ms/fit" if args.default_fit else "ms/iter"
    slower = [r for r in rows if r["ratio"] < 1.0]
    ratios = np.array([r["ratio"] for r in rows])
    lines = [
        "<!-- Generated by benchmarks/bench_small_shapes.py; do not edit. -->",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; numpy "
        f"{np.__version__}, scikit-learn {sklearn.__version__}; {args.dtype} "
        "data. "
        + (
            "Milliseconds per default fit (`random_state=0`, k-means "
            f"initialisation, `tol=1e-3`, `reg_covar={REG_COVAR:g}`), "
            if args.default_fit
            else f"Milliseconds per EM iteration: a {MAX_ITER}-iteration fit "
            f"(`tol=0`, `reg_covar={REG_COVAR:g}`) from the same initial "
            "parameters, divided by its iterations, "
        )
        + f"median of {args.repeats} consecutive fits of each library "
        f"after {WARM_UP} s of its untimed fits (scikit-learn's products wake "
        "OpenBLAS's threads, which spin on after it returns and slowed a fit "
        "timed right after it, and this machine runs work after a pause slowly "
        "for its first 0.1-0.2 s). "
        "Points first measured below 1.0x were measured again with three times "
        "the fits; that measurement is kept, marked '(again)'. "
        "Load average (1 min) at the start and end: "
        f"{load[0]:.2f}, {load[1]:.2f}; {elapsed / 60:.1f} min.",
        "",
        f"Over {len(rows)} shapes: median speed-up {np.median(ratios):.2f}x, "
        f"smallest {ratios.min():.2f}x; {len(slower)} below 1.0x"
        + (
            ": "
            + ", ".join(
                f"{r['covariance_type']} {r['n']} x {r['d']} K={r['k']} "
                f"({r['ratio']:.2f}x)"
                for r in sorted(slower, key=lambda r: r["ratio"])
            )
            if slower
            else ""
        )
        + ".",
        "",
        f"| type | N | D | K | sklearn ({unit}) | ours ({unit}) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['covariance_type']} | {r['n']} | {r['d']} | {r['k']} "
            f"| {1e3 * r['theirs']:.3f} | {1e3 * r['ours']:.3f} "
            f"| {r['ratio']:.2f}x{' (again)' if r.get('again') else ''} |"
        )
    with open(args.output, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
