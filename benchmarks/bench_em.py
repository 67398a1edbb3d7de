"""Benchmark GaussianMixtureEM against scikit-learn's GaussianMixture.

Every configuration fits both estimators on the same data, from the same
initial parameters (weights, means and precisions of a short scikit-learn
fit on a subsample) and for the same number of EM iterations (``tol=0``,
fixed ``max_iter``), alternating the two, and reports median times, their
ratio and the relative difference of the final lower bounds. Peak memory is
measured in a fresh process per fit (peak resident set size, ``VmHWM``).

Usage (from the repository root; unset the OpenBLAS variables that slow
numpy on this machine for the benchmark only)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_em.py

The markdown table is written to ``benchmarks/results/em.md``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import sklearn
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from sklearn_em import GaussianMixtureEM

RESULTS = Path(__file__).parent / "results" / "em.md"


def make_data(n_samples, n_features, n_components, dtype=np.float64, seed=0):
    """Well-separated Gaussian blobs, generated in blocks (low peak memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_components, n_features))
    scales = rng.uniform(0.5, 2.0, size=(n_components, n_features))
    X = np.empty((n_samples, n_features), dtype=dtype)
    for start in range(0, n_samples, 100_000):
        stop = min(start + 100_000, n_samples)
        labels = rng.integers(n_components, size=stop - start)
        noise = rng.normal(size=(stop - start, n_features))
        X[start:stop] = centres[labels] + noise * scales[labels]
    return X


def initial_parameters(X, n_components, covariance_type):
    """Shared starting point: a short scikit-learn fit on 20,000 rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(
            n_components,
            covariance_type=covariance_type,
            max_iter=3,
            random_state=0,
        ).fit(X[:20_000].astype(np.float64))
    return {
        "weights_init": gm.weights_,
        "means_init": gm.means_,
        "precisions_init": gm.precisions_,
    }


def timed_fit(estimator, X, blas_threads=None):
    with warnings.catch_warnings(), threadpool_limits(blas_threads, user_api="blas"):
        # tol=0: neither estimator converges, both warn.
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        estimator.fit(X)
        return time.perf_counter() - start, estimator.lower_bound_


def compare(makers, Xs, repeats, blas_threads=None):
    """Median fit times of several estimators, alternated, and lower bounds.

    Returns one ``(median_time, lower_bound)`` pair per estimator.
    """
    times = [[] for _ in makers]
    bounds = [None] * len(makers)
    for _ in range(repeats):
        for i, (make, X) in enumerate(zip(makers, Xs)):
            t, bounds[i] = timed_fit(make(), X, blas_threads)
            times[i].append(t)
    return [(float(np.median(t)), lb) for t, lb in zip(times, bounds)]


def ratio_row(config, peer, peer_result, ours_result):
    (t_peer, lb_peer), (t_ours, lb_ours) = peer_result, ours_result
    row = {
        "config": config,
        "peer": peer,
        "peer_s": t_peer,
        "ours_s": t_ours,
        "ratio": t_peer / t_ours,
        "lb_rel": abs(lb_ours - lb_peer) / abs(lb_peer),
    }
    print(row, flush=True)
    return row


def speed_configurations(scale):
    n = int(200_000 * scale)
    return [
        ("full", n, 16, 16),
        ("diag", int(500_000 * scale), 32, 16),
        ("tied", n, 16, 16),
        ("spherical", n, 16, 16),
    ]


def run_speed(args, rows):
    for covariance_type, n, d, k in speed_configurations(args.scale):
        if args.only and covariance_type not in args.only:
            continue
        X = make_data(n, d, k)
        kwargs = dict(
            n_components=k,
            covariance_type=covariance_type,
            max_iter=args.max_iter,
            tol=0.0,
            **initial_parameters(X, k, covariance_type),
        )
        # Ours by default (threads over chunks on the cores BLAS may use, as
        # sklearn's BLAS calls use them) and on one thread, both against
        # sklearn with its default BLAS threads.
        sk, ours, ours_1 = compare(
            [
                partial(GaussianMixture, **kwargs),
                partial(GaussianMixtureEM, **kwargs),
                partial(GaussianMixtureEM, **kwargs, n_jobs=1),
            ],
            [X, X, X],
            args.repeats,
        )
        config = f"{covariance_type}, N={n:,}, D={d}, K={k}, float64"
        rows.append(ratio_row(config, "sklearn GaussianMixture", sk, ours))
        rows.append(
            ratio_row(config + ", n_jobs=1", "sklearn GaussianMixture", sk, ours_1)
        )
        if covariance_type != "full":
            continue
        # float32 against our own float64, same data and start.
        f64, f32 = compare(
            [partial(GaussianMixtureEM, **kwargs)] * 2,
            [X, X.astype(np.float32)],
            args.repeats,
        )
        rows.append(
            ratio_row(
                f"full, N={n:,}, D={d}, K={k}, float32", "ours, float64", f64, f32
            )
        )
        # Threads over chunks: n_jobs=2 against one thread.
        one, two = compare(
            [
                partial(GaussianMixtureEM, **kwargs, n_jobs=1),
                partial(GaussianMixtureEM, **kwargs, n_jobs=2),
            ],
            [X, X],
            args.repeats,
        )
        rows.append(
            ratio_row(
                f"full, N={n:,}, D={d}, K={k}, float64, n_jobs=2",
                "ours, n_jobs=1",
                one,
                two,
            )
        )
        # The same, with BLAS limited to one thread for the whole fit by the
        # caller (the engine limits it around its own BLAS calls).
        one, two = compare(
            [
                partial(GaussianMixtureEM, **kwargs, n_jobs=1),
                partial(GaussianMixtureEM, **kwargs, n_jobs=2),
            ],
            [X, X],
            args.repeats,
            blas_threads=1,
        )
        rows.append(
            ratio_row(
                f"full, N={n:,}, D={d}, K={k}, float64, n_jobs=2, "
                "whole fit in threadpool_limits(1)",
                "ours, n_jobs=1, same limit",
                one,
                two,
            )
        )


# ----------------------------------------------------------------------
# Prediction: the same fitted parameters, each library's own methods.
def run_predict(args, rows):
    n, d, k = int(1_000_000 * args.scale), 16, 16
    X = make_data(n, d, k)
    kwargs = dict(
        n_components=k,
        covariance_type="full",
        max_iter=2,
        tol=0.0,
        **initial_parameters(X, k, "full"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = GaussianMixture(**kwargs).fit(X[:100_000])
        ours = GaussianMixtureEM(**kwargs).fit(X[:100_000])
    for method in ["predict_proba", "score_samples", "predict"]:
        times = {"sk": [], "ours": []}
        results = {}
        for _ in range(args.repeats):
            for name, model in (("sk", sk), ("ours", ours)):
                start = time.perf_counter()
                results[name] = getattr(model, method)(X)
                times[name].append(time.perf_counter() - start)
        if method == "predict":
            diff = float(np.mean(results["sk"] != results["ours"]))
        else:
            diff = float(np.max(np.abs(results["sk"] - results["ours"])))
        t_sk, t_ours = float(np.median(times["sk"])), float(np.median(times["ours"]))
        rows.append(
            {
                "config": f"{method}, full, N={n:,}, D={d}, K={k}, float64",
                "peer": "sklearn GaussianMixture",
                "predict_peer_s": t_sk,
                "predict_ours_s": t_ours,
                "ratio": t_sk / t_ours,
                "diff": diff,
            }
        )
        print(rows[-1], flush=True)


# ----------------------------------------------------------------------
# Peak memory, one fresh process per fit.
def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def memory_child(spec):
    """Fit once and print the process's RSS before and its peak after, in MiB."""
    spec = json.loads(spec)
    X = make_data(spec["n"], spec["d"], spec["k"])
    kwargs = dict(
        n_components=spec["k"],
        covariance_type="full",
        max_iter=spec["max_iter"],
        tol=0.0,
        **initial_parameters(X, spec["k"], "full"),
    )
    estimator = (
        GaussianMixture(**kwargs)
        if spec["impl"] == "sklearn"
        else GaussianMixtureEM(**kwargs)
    )
    before = _status_kib("VmRSS")
    # Reset the peak so that it measures the fit, not the data generation.
    Path("/proc/self/clear_refs").write_text("5")
    with sklearn.config_context(working_memory=spec["working_memory"]):
        timed_fit(estimator, X)
    peak = _status_kib("VmHWM")
    print(json.dumps({"before": before / 1024, "peak": peak / 1024}))


def measure_memory(impl, n, d, k, max_iter, working_memory):
    spec = json.dumps(
        dict(
            impl=impl,
            n=n,
            d=d,
            k=k,
            max_iter=max_iter,
            working_memory=working_memory,
        )
    )
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", spec],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_memory(args, rows):
    n, d, k = int(1_000_000 * args.scale), 16, 16
    sk = measure_memory("sklearn", n, d, k, 2, 1024)
    for working_memory in (1024, 4):
        ours = measure_memory("ours", n, d, k, 2, working_memory)
        rows.append(
            {
                "config": f"memory: full, N={n:,}, D={d}, K={k}, "
                f"working_memory={working_memory} MiB",
                "peer": "sklearn GaussianMixture",
                "peer_mem": sk,
                "data_mib": n * d * 8 / 2**20,
                "ours_mem": ours,
            }
        )
        print(rows[-1], flush=True)


def write_table(rows, args):
    lines = [
        "<!-- Generated by benchmarks/bench_em.py; do not edit. -->",
        "",
        f"Machine: {platform.machine()}, {_n_cpus()} cores; numpy "
        f"{np.__version__}, scikit-learn {sklearn.__version__}. Same data, same "
        f"initial parameters, {args.max_iter} EM iterations each (tol=0); "
        f"median of {args.repeats} fits. Load average (1 min) at the start "
        f"and end of the run: {args.load_start:.2f}, {os.getloadavg()[0]:.2f}.",
        "",
        "| configuration | peer | peer time (s) | ours (s) | speed-up "
        "| lower-bound rel. diff |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "peer_s" in row:
            lines.append(
                f"| {row['config']} | {row['peer']} | {row['peer_s']:.3f} "
                f"| {row['ours_s']:.3f} | {row['ratio']:.1f}x "
                f"| {row['lb_rel']:.1e} |"
            )
    predict = [row for row in rows if "predict_peer_s" in row]
    if predict:
        lines += [
            "",
            "Prediction with the same fitted parameters (median of "
            f"{args.repeats} calls each, alternated): the outputs' largest "
            "absolute difference (for `predict`, the fraction of labels that "
            "differ).",
            "",
            "| configuration | peer | peer time (s) | ours (s) | speed-up "
            "| largest difference |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for row in predict:
            lines.append(
                f"| {row['config']} | {row['peer']} | {row['predict_peer_s']:.3f} "
                f"| {row['predict_ours_s']:.3f} | {row['ratio']:.1f}x "
                f"| {row['diff']:.1e} |"
            )
    memory = [row for row in rows if "peer_mem" in row]
    if memory:
        lines += [
            "",
            "Peak memory of one fit (2 iterations) in a fresh process: peak "
            "resident set size during the fit, and its increase over the "
            "resident size before the fit (the data, "
            f"{memory[0]['data_mib']:.0f} MiB, plus the interpreter and "
            "libraries).",
            "",
            "| configuration | sklearn peak (MiB) | ours peak (MiB) "
            "| sklearn increase (MiB) | ours increase (MiB) |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in memory:
            sk, ours = row["peer_mem"], row["ours_mem"]
            lines.append(
                f"| {row['config']} | {sk['peak']:.0f} | {ours['peak']:.0f} "
                f"| {sk['peak'] - sk['before']:.0f} "
                f"| {ours['peak'] - ours['before']:.0f} |"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _n_cpus():
    import os

    return len(os.sched_getaffinity(0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every N (quick runs)"
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["full", "tied", "diag", "spherical", "predict"],
        help="configurations to run (quick checks; no table is written)",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    args.load_start = os.getloadavg()[0]
    rows = []
    run_speed(args, rows)
    if not args.only or "predict" in args.only:
        run_predict(args, rows)
    if not args.no_memory:
        run_memory(args, rows)
    if not args.only:
        write_table(rows, args)


if __name__ == "__main__":
    main()
