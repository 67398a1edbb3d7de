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

The markdown tables are written to ``benchmarks/results/em.md``; a table of
default fits and ``predict_proba`` on the small data sets that ship with
scikit-learn (``--only small``) shows where fixed costs decide. The
end-to-end table (default ``fit``, initialisation included) runs on its own
with ``--only end-to-end --write``, which rewrites that table and keeps the
file's other tables as they were (likewise for any ``--only`` selection).
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
# End to end: default fits, initialisation (k-means) included.
END_TO_END_SHAPES = [(200_000, 16, 16), (10_000, 8, 8)]


def _timed_init(estimator, record):
    """Record the time of the estimator's ``_initialize_parameters`` calls."""
    initialize = estimator._initialize_parameters

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return initialize(*args, **kwargs)
        finally:
            record.append(time.perf_counter() - start)

    estimator._initialize_parameters = timed
    return estimator


def end_to_end_fit(estimator, X):
    """Fit time, initialisation time and the fitted estimator."""
    record = []
    _timed_init(estimator, record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        estimator.fit(X)
        elapsed = time.perf_counter() - start
    del estimator._initialize_parameters
    return elapsed, sum(record), estimator


def run_end_to_end(args, rows):
    for n, d, k in END_TO_END_SHAPES:
        n = max(int(n * args.scale), 10 * k)
        X = make_data(n, d, k)
        for covariance_type in ["full", "tied", "diag", "spherical"]:
            makers = {
                "sk": partial(
                    GaussianMixture, k, covariance_type=covariance_type, random_state=0
                ),
                "ours": partial(
                    GaussianMixtureEM,
                    k,
                    covariance_type=covariance_type,
                    random_state=0,
                ),
            }
            times = {name: [] for name in makers}
            inits = {name: [] for name in makers}
            fitted = {}
            for _ in range(args.repeats):
                for name, make in makers.items():
                    # One untimed fit first: scikit-learn's BLAS and OpenMP
                    # threads busy-wait for about a tenth of a second after
                    # its fit returns, and took a core from the fit timed
                    # right after it (the first E-step of ours, 40 against
                    # 25 ms at 200,000 x 16); each library's timed fit
                    # follows one of its own, as in a user's session.
                    end_to_end_fit(make(), X)
                    t, t_init, fitted[name] = end_to_end_fit(make(), X)
                    times[name].append(t)
                    inits[name].append(t_init)
            sk, ours = fitted["sk"], fitted["ours"]
            t_sk, t_ours = (
                float(np.median(times["sk"])),
                float(np.median(times["ours"])),
            )
            rows.append(
                {
                    "config": f"{covariance_type}, N={n:,}, D={d}, K={k}, float64",
                    "e2e_peer_s": t_sk,
                    "e2e_ours_s": t_ours,
                    "ratio": t_sk / t_ours,
                    "init_share_peer": float(np.median(inits["sk"])) / t_sk,
                    "init_share_ours": float(np.median(inits["ours"])) / t_ours,
                    "init_peer_s": float(np.median(inits["sk"])),
                    "init_ours_s": float(np.median(inits["ours"])),
                    "n_iter": (sk.n_iter_, ours.n_iter_),
                    "lb_rel": abs(ours.lower_bound_ - sk.lower_bound_)
                    / abs(sk.lower_bound_),
                    "means_diff": float(np.max(np.abs(ours.means_ - sk.means_))),
                }
            )
            print(rows[-1], flush=True)


# ----------------------------------------------------------------------
# Small data: the data sets that ship with scikit-learn, where fixed costs
# (validation, initialisation, per-call set-up) rather than arithmetic decide.
SMALL_DATA = ["iris", "wine", "breast_cancer"]


def run_small(args, rows):
    from sklearn import datasets

    n_fits, n_calls = 10 * args.repeats + 1, 30 * args.repeats + 1
    for name in SMALL_DATA:
        X = getattr(datasets, f"load_{name}")().data
        for covariance_type in ["full", "tied", "diag", "spherical"]:
            makers = {
                "sk": partial(
                    GaussianMixture, 3, covariance_type=covariance_type, random_state=0
                ),
                "ours": partial(
                    GaussianMixtureEM,
                    3,
                    covariance_type=covariance_type,
                    random_state=0,
                ),
            }
            fit_times = {"sk": [], "ours": []}
            fitted = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(n_fits):
                    for key, make in makers.items():
                        start = time.perf_counter()
                        fitted[key] = make().fit(X)
                        fit_times[key].append(time.perf_counter() - start)
            proba_times = {"sk": [], "ours": []}
            for _ in range(n_calls):
                for key, model in fitted.items():
                    start = time.perf_counter()
                    model.predict_proba(X)
                    proba_times[key].append(time.perf_counter() - start)
            sk, ours = fitted["sk"], fitted["ours"]
            fit_sk, fit_ours = (float(np.median(fit_times[k])) for k in ("sk", "ours"))
            proba_sk, proba_ours = (
                float(np.median(proba_times[k])) for k in ("sk", "ours")
            )
            rows.append(
                {
                    "config": f"{name} ({X.shape[0]:,} x {X.shape[1]}), "
                    f"{covariance_type}, K=3",
                    "small_fit_peer_s": fit_sk,
                    "small_fit_ours_s": fit_ours,
                    "small_proba_peer_s": proba_sk,
                    "small_proba_ours_s": proba_ours,
                    "n_iter": (sk.n_iter_, ours.n_iter_),
                    "lb_rel": abs(ours.lower_bound_ - sk.lower_bound_)
                    / abs(sk.lower_bound_),
                }
            )
            print(rows[-1], flush=True)


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


SECTION_MARK = "<!-- section: {} -->"
SECTIONS = ["speed", "end-to-end", "small", "predict", "memory"]


def _existing_sections():
    """The sections of the current results file, by name (empty if none)."""
    if not RESULTS.exists():
        return {}
    sections, name = {}, None
    for line in RESULTS.read_text().splitlines():
        for candidate in SECTIONS:
            if line == SECTION_MARK.format(candidate):
                name = candidate
                sections[name] = []
        if name is not None:
            sections[name].append(line)
    for lines in sections.values():
        while lines and not lines[-1]:
            lines.pop()
    return sections


def _speed_section(rows, args):
    lines = [
        f"Machine: {platform.machine()}, {_n_cpus()} cores; numpy "
        f"{np.__version__}, scikit-learn {sklearn.__version__}. Same data, same "
        f"initial parameters, {args.max_iter} EM iterations each (tol=0); "
        f"median of {args.repeats} fits. Load average (1 min) at the start "
        f"and end of these fits: {args.load['speed'][0]:.2f}, "
        f"{args.load['speed'][1]:.2f}.",
        "",
        "| configuration | peer | peer time (s) | ours (s) | speed-up "
        "| lower-bound rel. diff |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['config']} | {row['peer']} | {row['peer_s']:.3f} "
            f"| {row['ours_s']:.3f} | {row['ratio']:.1f}x "
            f"| {row['lb_rel']:.1e} |"
        )
    return lines


def _end_to_end_section(rows, args):
    lines = [
        "End to end: a default `fit` (every parameter at its default, "
        "`random_state=0`: k-means initialisation, `tol=1e-3`) of "
        "scikit-learn's `GaussianMixture` and of ours on the same data, "
        "alternated (each timed fit after an untimed one of the same library: "
        "scikit-learn's BLAS and OpenMP threads busy-wait after its fit and "
        "slowed a fit timed right after it), "
        f"median of {args.repeats} fits each (scikit-learn "
        f"{sklearn.__version__}, {_n_cpus()} cores; load average (1 min) at "
        f"the start and end of these fits: {args.load['end-to-end'][0]:.2f}, "
        f"{args.load['end-to-end'][1]:.2f}). The initialisation "
        "(`_initialize_parameters`: k-means and the first M-step) is timed "
        "inside each fit; its share is of that library's fit time. Both "
        "start from the same k-means labels, so the fits agree: EM "
        "iterations, the lower bounds' relative difference and the means' "
        "largest absolute difference.",
        "",
        "| configuration | sklearn (s) | ours (s) | speed-up "
        "| sklearn init (s, share) | ours init (s, share) "
        "| EM iterations (sklearn, ours) | lower-bound rel. diff "
        "| means max diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['config']} | {row['e2e_peer_s']:.3f} "
            f"| {row['e2e_ours_s']:.3f} | {row['ratio']:.1f}x "
            f"| {row['init_peer_s']:.3f} ({row['init_share_peer']:.0%}) "
            f"| {row['init_ours_s']:.3f} ({row['init_share_ours']:.0%}) "
            f"| {row['n_iter'][0]}, {row['n_iter'][1]} "
            f"| {row['lb_rel']:.1e} | {row['means_diff']:.1e} |"
        )
    return lines


def _small_section(rows, args):
    lines = [
        "Small data: a default `fit` (`random_state=0`, K=3) and "
        "`predict_proba` on the whole data set, on the data sets that ship "
        "with scikit-learn, alternated: median of "
        f"{10 * args.repeats + 1} fits and {30 * args.repeats + 1} calls each "
        f"(load average (1 min) at the start and end: "
        f"{args.load['small'][0]:.2f}, {args.load['small'][1]:.2f}). At these "
        "sizes fixed costs decide, not arithmetic; below 1.0x ours is slower.",
        "",
        "| configuration | sklearn fit (ms) | ours (ms) | speed-up "
        "| sklearn predict_proba (ms) | ours (ms) | speed-up "
        "| EM iterations (sklearn, ours) | lower-bound rel. diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['config']} | {1e3 * row['small_fit_peer_s']:.2f} "
            f"| {1e3 * row['small_fit_ours_s']:.2f} "
            f"| {row['small_fit_peer_s'] / row['small_fit_ours_s']:.2f}x "
            f"| {1e3 * row['small_proba_peer_s']:.3f} "
            f"| {1e3 * row['small_proba_ours_s']:.3f} "
            f"| {row['small_proba_peer_s'] / row['small_proba_ours_s']:.2f}x "
            f"| {row['n_iter'][0]}, {row['n_iter'][1]} | {row['lb_rel']:.1e} |"
        )
    return lines


def _predict_section(rows, args):
    lines = [
        "Prediction with the same fitted parameters (median of "
        f"{args.repeats} calls each, alternated): the outputs' largest "
        "absolute difference (for `predict`, the fraction of labels that "
        "differ).",
        "",
        "| configuration | peer | peer time (s) | ours (s) | speed-up "
        "| largest difference |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['config']} | {row['peer']} | {row['predict_peer_s']:.3f} "
            f"| {row['predict_ours_s']:.3f} | {row['ratio']:.1f}x "
            f"| {row['diff']:.1e} |"
        )
    return lines


def _memory_section(rows, args):
    lines = [
        "Peak memory of one fit (2 iterations) in a fresh process: peak "
        "resident set size during the fit, and its increase over the "
        "resident size before the fit (the data, "
        f"{rows[0]['data_mib']:.0f} MiB, plus the interpreter and "
        "libraries).",
        "",
        "| configuration | sklearn peak (MiB) | ours peak (MiB) "
        "| sklearn increase (MiB) | ours increase (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        sk, ours = row["peer_mem"], row["ours_mem"]
        lines.append(
            f"| {row['config']} | {sk['peak']:.0f} | {ours['peak']:.0f} "
            f"| {sk['peak'] - sk['before']:.0f} "
            f"| {ours['peak'] - ours['before']:.0f} |"
        )
    return lines


def write_table(rows, args):
    """Write the results file: this run's sections, the others kept."""
    builders = {
        "speed": ("peer_s", _speed_section),
        "end-to-end": ("e2e_peer_s", _end_to_end_section),
        "small": ("small_fit_peer_s", _small_section),
        "predict": ("predict_peer_s", _predict_section),
        "memory": ("peer_mem", _memory_section),
    }
    sections = _existing_sections()
    for name, (key, build) in builders.items():
        selected = [row for row in rows if key in row]
        if selected:
            sections[name] = [SECTION_MARK.format(name), "", *build(selected, args)]
    lines = ["<!-- Generated by benchmarks/bench_em.py; do not edit. -->"]
    for name in SECTIONS:
        if name in sections:
            lines += ["", *sections[name]]
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
        choices=[
            "full",
            "tied",
            "diag",
            "spherical",
            "end-to-end",
            "small",
            "predict",
            "memory",
        ],
        help="configurations to run (quick checks; no table is written "
        "unless --write is given)",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="with --only: rewrite the tables of what ran, keep the others",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    speed = ["full", "tied", "diag", "spherical"]
    if args.write and args.only and 0 < len(set(args.only) & set(speed)) < 4:
        # The per-iteration table is written from the rows that ran: a part
        # of it would replace the whole.
        parser.error(
            "--write rewrites the whole per-iteration table: give all of "
            f"{', '.join(speed)} with --only, or none of them"
        )
    if args.memory_child:
        memory_child(args.memory_child)
        return
    args.load = {}
    rows = []

    def selected(name):
        return not args.only or name in args.only

    def timed_section(name, run):
        start = os.getloadavg()[0]
        run(args, rows)
        args.load[name] = (start, os.getloadavg()[0])

    if not args.only or set(args.only) & set(speed):
        timed_section("speed", run_speed)
    if selected("end-to-end"):
        timed_section("end-to-end", run_end_to_end)
    if selected("small"):
        timed_section("small", run_small)
    if selected("predict"):
        run_predict(args, rows)
    if selected("memory") and not args.no_memory:
        run_memory(args, rows)
    if not args.only or args.write:
        write_table(rows, args)


if __name__ == "__main__":
    main()
