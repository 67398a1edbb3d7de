"""How fast an EM iteration's products can run on this machine, alone.

The sweep's rate goal (issue 17) is our iteration's arithmetic at 50% or
more of the dgemm rate wherever the products dominate (D >= 32). For each
point of the sweep with D >= 32 this times the products the sweep counts
for our form (``bench_sweep.flops``), the same shapes and arithmetic, on
random float64 data with nothing else in the iteration: no exponentials,
no features to build, no reductions. They are split into chunks of several
sizes, run over the machine's cores (one chunk a thread, BLAS on one
thread, as the engine runs them; or one thread at a time with BLAS on
every core), and the fastest arrangement is kept. That rate is a ceiling
on any iteration made of these products through BLAS: where it is below
50% of dgemm, the goal cannot be met with them, whatever else the
iteration does or skips.

The products, per chunk of ``R`` rows (``F`` features per row):

- expanded form (full and diag): ``A @ C`` with ``A`` of shape ``(R, F)``
  and ``C`` of shape ``(F, K)`` (the log-densities), and ``P.T @ A`` with
  ``P`` of shape ``(R, K)`` (the moments); ``F = 2 D`` for diag,
  ``D (D + 3) / 2`` for full.
- per-component form (full): the whitening products of each component's
  triangular factor on its non-zero column blocks, the components' blocks
  side by side (512 columns at most, as ``_stacked_factors``), and a
  symmetric rank-k update ``W.T @ W`` per component over ``R / K`` rows
  (the separated blobs' rows of non-zero responsibility).

Usage (from the repository root; unset the OpenBLAS variables that slow
numpy on this machine for the benchmark only)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_rate_ceiling.py

The markdown table is written to ``benchmarks/results/rate_ceiling.md``;
with ``--sweep`` (default ``benchmarks/results/sweep.md``) the last sweep's
rate of our whole iteration is shown beside it, as a share of that run's
own dgemm measurement.
"""

import argparse
import os
import platform
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from bench_sweep import dgemm_rate, flops
from threadpoolctl import threadpool_limits

from sklearn_em import GaussianMixtureEM
from sklearn_em.mixture._gaussian import _n_quadratic_features

RESULTS = Path(__file__).parent / "results" / "rate_ceiling.md"
SWEEP = Path(__file__).parent / "results" / "sweep.md"

#: Chunk lengths tried (rows); the fastest is kept.
CHUNK_ROWS = (256, 512, 1024, 4096, 16384, 50_000)


def _column_blocks(d):
    """The sweep's triangular blocks: (rows, columns) of each product."""
    if d < 64:
        return [(d, d)]
    width = 32 if d < 192 else 64
    return [
        (min(start + width, d), min(width, d - start)) for start in range(0, d, width)
    ]


def chunk_products(covariance_type, per_component, rows, d, k, rng):
    """The products of one chunk of ``rows`` rows, as a function, and its
    arithmetic (as ``bench_sweep.flops`` counts it)."""
    if not per_component:
        n_features = (
            2 * d
            if covariance_type == "diag"
            else (_n_quadratic_features("full", d) + d)
        )
        A = rng.normal(size=(rows, n_features))
        C = rng.normal(size=(n_features, k))
        P = rng.random(size=(rows, k))

        def run():
            np.dot(A, C)
            np.dot(P.T, A)

        return run, flops(covariance_type, False, rows, d, k)
    # Per-component: the stacked triangular blocks, 512 columns a product,
    # each on the leading columns of the chunk's one array of rows.
    A = rng.normal(size=(rows, d))
    products = []
    for depth, width in _column_blocks(d):
        group = max(1, 512 // width)
        for start in range(0, k, group):
            members = min(group, k - start)
            products.append((depth, rng.normal(size=(depth, members * width))))
    own = max(1, rows // k)
    W = [rng.normal(size=(own, d)) for _ in range(k)]

    def run():
        for depth, B in products:
            np.dot(A[:, :depth], B)
        for w in W:
            # NumPy runs a matrix times its own transpose as syrk.
            np.dot(w.T, w)

    return run, flops(covariance_type, True, rows, d, k, scatter_rows=own * k)


def ceiling(covariance_type, per_component, n_samples, d, k, n_threads):
    """The fastest rate (operations per second) of the products of an
    iteration over ``n_samples`` rows, and the arrangement that gave it."""
    with ThreadPoolExecutor(n_threads) as pool:
        return _ceiling(
            covariance_type, per_component, n_samples, d, k, n_threads, pool
        )


def _ceiling(covariance_type, per_component, n_samples, d, k, n_threads, pool):
    rng = np.random.default_rng(0)
    best = (0.0, None)
    for rows in CHUNK_ROWS:
        rows = min(rows, n_samples)
        run, work = chunk_products(covariance_type, per_component, rows, d, k, rng)
        n_chunks = max(1, round(n_samples / rows))
        work *= n_chunks
        for threads in sorted({1, n_threads}):
            blas = n_threads if threads == 1 else 1
            elapsed = _best_time(run, n_chunks, threads, blas, pool)
            rate = work / elapsed
            if rate > best[0]:
                label = (
                    f"{rows:,} rows, {threads} threads"
                    if threads > 1
                    else f"{rows:,} rows, BLAS on {blas}"
                )
                best = (rate, label)
    return best


def _best_time(run, n_chunks, threads, blas, pool):
    """Seconds for ``n_chunks`` calls of ``run``: one thread at a time with
    BLAS on ``blas`` threads, or spread over ``pool``'s threads with BLAS on
    one (best of three after one untimed)."""

    def iteration():
        with threadpool_limits(blas, user_api="blas"):
            if threads == 1:
                for _ in range(n_chunks):
                    run()
            else:
                list(pool.map(lambda _: run(), range(n_chunks)))

    iteration()
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        iteration()
        best = min(best, time.perf_counter() - start)
        if best > 1.0:
            break
    return best


def sweep_shares(path):
    """``{(type, D, K): share of dgemm}`` from a sweep table, if any."""
    shares = {}
    if not Path(path).exists():
        return shares
    for line in Path(path).read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 11 and cells[0] in ("full", "diag"):
            match = re.match(r"(\d+)%", cells[8])
            if match:
                shares[(cells[0], int(cells[1]), int(cells[2]))] = int(match.group(1))
    return shares


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--types", nargs="+", default=["full", "diag"])
    parser.add_argument("--features", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--components", type=int, nargs="+", default=[2, 4, 8, 16, 64])
    parser.add_argument("--sweep", default=str(SWEEP))
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    n_threads = os.cpu_count()
    load = [os.getloadavg()[0]]
    rates = [dgemm_rate()]
    print(f"dgemm: {rates[0] / 1e9:.1f} GFLOP/s", flush=True)
    shares = sweep_shares(args.sweep)
    rows = []
    for covariance_type in args.types:
        for d in args.features:
            for k in args.components:
                per_component = covariance_type == "full" and GaussianMixtureEM(
                    k, covariance_type=covariance_type
                )._uses_per_component_form(d, np.float64)
                rate, label = ceiling(
                    covariance_type, per_component, args.n_samples, d, k, n_threads
                )
                row = dict(
                    covariance_type=covariance_type,
                    d=d,
                    k=k,
                    form="per-component" if per_component else "expanded",
                    rate=rate,
                    arrangement=label,
                    ours=shares.get((covariance_type, d, k)),
                )
                print(row, flush=True)
                rows.append(row)
    load.append(os.getloadavg()[0])
    rates.append(dgemm_rate())
    print(f"dgemm at the end: {rates[-1] / 1e9:.1f} GFLOP/s", flush=True)
    peak = max(rates)
    for row in rows:
        row["share"] = row["rate"] / peak

    below = [r for r in rows if r["share"] < 0.5]
    lines = [
        "<!-- Generated by benchmarks/bench_rate_ceiling.py; do not edit. -->",
        "",
        f"Machine: {platform.machine()}, {n_threads} cores; numpy "
        f"{np.__version__}. N = {args.n_samples:,}, float64. The products the "
        "sweep counts for our form at each point, alone on random data, at the "
        "fastest of chunks of "
        + ", ".join(f"{r:,}" for r in CHUNK_ROWS)
        + " rows over "
        f"{n_threads} threads (BLAS on one) or one at a time (BLAS on "
        f"{n_threads}). Measured dgemm rate (2048 x 2048, all cores, after a "
        f"second of the same products), at the start and end: "
        f"{rates[0] / 1e9:.1f} and {rates[1] / 1e9:.1f} GFLOP/s; '% of dgemm' "
        "is of the larger. Load average (1 min) at the start and "
        f"end: {load[0]:.2f}, {load[1]:.2f}. The last column is our whole "
        "iteration's rate in the last sweep (`results/sweep.md`, against that "
        "run's dgemm).",
        "",
        "| type | D | K | our form | products alone (GFLOP/s) | % of dgemm "
        "| fastest arrangement | our iteration, % of dgemm (sweep) |",
        "|---|---:|---:|---|---:|---:|---|---:|",
    ]
    for r in rows:
        ours = "" if r["ours"] is None else f"{r['ours']}%"
        lines.append(
            f"| {r['covariance_type']} | {r['d']} | {r['k']} | {r['form']} "
            f"| {r['rate'] / 1e9:.1f} | {r['share']:.0%} | {r['arrangement']} "
            f"| {ours} |"
        )
    lines += [
        "",
        f"Points whose products alone run below 50% of dgemm: {len(below)} of "
        f"{len(rows)}"
        + (
            " ("
            + ", ".join(f"{r['covariance_type']} {r['d']} x {r['k']}" for r in below)
            + ")."
            if below
            else "."
        ),
    ]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
