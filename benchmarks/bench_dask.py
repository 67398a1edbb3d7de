"""GaussianMixtureEM on a Dask LocalCluster vs in memory, 10,000,000 x 16.

The data are a mixture of Gaussians generated block by block on the workers
(``da.map_blocks`` with one seeded generator per block): no process ever holds
all of it. Two single-threaded worker processes fit it; the script prints the
time of the initialisation (k-means on a sample of the blocks), the time per
EM iteration, the peak resident memory of each worker, and the same
iterations run in memory (threads over chunks, ``n_jobs=2``) on the largest N
whose data fit comfortably in this machine's available memory.

Run, from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_dask.py
"""

import argparse
import resource
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import GaussianMixtureEM


def _centres(n_components, n_features):
    return np.random.default_rng(0).normal(scale=4.0, size=(n_components, n_features))


def _generate_block(block_id, *, rows, n_features, n_components):
    """One block of the mixture, from its own seeded stream."""
    rng = np.random.default_rng([1, block_id[0]])
    labels = rng.integers(n_components, size=rows)
    return _centres(n_components, n_features)[labels] + rng.normal(
        size=(rows, n_features)
    )


def make_dask_data(n_samples, n_features, n_components, rows):
    import dask.array as da

    n_blocks = -(-n_samples // rows)
    chunks = ((rows,) * (n_blocks - 1) + (n_samples - rows * (n_blocks - 1),),)
    return da.map_blocks(
        lambda block_info=None: _generate_block(
            block_info[None]["chunk-location"],
            rows=block_info[None]["chunk-shape"][0],
            n_features=n_features,
            n_components=n_components,
        ),
        chunks=chunks + ((n_features,),),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _available_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 4 * 2**30  # pragma: no cover


def _fixed_iterations(estimator, X, n_iter):
    """Seconds per EM iteration from given initial parameters."""
    estimator.set_params(max_iter=n_iter, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        estimator.fit(X)
    return (time.perf_counter() - start) / n_iter


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=10_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--rows-per-block", type=int, default=250_000)
    parser.add_argument("--n-iter", type=int, default=3)
    parser.add_argument("--in-memory-n-jobs", type=int, nargs="+", default=[2])
    parser.add_argument(
        "--no-persist",
        action="store_true",
        help="regenerate the blocks at every iteration instead of keeping "
        "them in the workers' memory",
    )
    args = parser.parse_args()
    n, d, k = args.n_samples, args.n_features, args.n_components

    from distributed import Client, LocalCluster, wait

    print(
        f"data: {n:,} x {d} float64 ({n * d * 8 / 2**30:.2f} GiB), "
        f"{k} components, full covariances, blocks of {args.rows_per_block:,} rows"
    )
    with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        X = make_dask_data(n, d, k, args.rows_per_block)
        if not args.no_persist:
            start = time.perf_counter()
            X = X.persist()
            wait(X)
            elapsed = time.perf_counter() - start
            print(f"generate + persist on the workers: {elapsed:.1f} s")
        init = GaussianMixtureEM(k, max_iter=0, random_state=0)
        start = time.perf_counter()
        init.fit(X)
        t_init = time.perf_counter() - start
        print(f"initialisation (k-means on a ~100,000-row sample): {t_init:.1f} s")
        given = dict(
            means_init=init.means_,
            weights_init=init.weights_,
            precisions_init=init.precisions_,
        )
        t_dask = _fixed_iterations(GaussianMixtureEM(k, **given), X, args.n_iter)
        print(f"Dask, 2 workers x 1 thread: {t_dask:.2f} s per EM iteration")
        peaks = client.run(_peak_rss_mb)
        for address, peak in sorted(peaks.items()):
            print(f"  peak RSS of worker {address}: {peak:,.0f} MiB")
        n_blocks = len(X.chunks[0])
        stats_numbers = k * (1 + d + d * d) + 2
        print(
            f"  per iteration each of the {n_blocks} blocks returns "
            f"{stats_numbers:,} numbers ({stats_numbers * 8 / 1024:.1f} KiB) "
            f"instead of its {args.rows_per_block * d * 8 / 2**20:.0f} MiB of data"
        )

    # In memory: the largest N whose data (and the E-step's chunk
    # temporaries) take at most a third of the available memory.
    n_mem = int(min(n, _available_bytes() / 3 // (d * 8)))
    X_mem = np.concatenate(
        [
            _generate_block(
                (b,),
                rows=min(args.rows_per_block, n_mem - start),
                n_features=d,
                n_components=k,
            )
            for b, start in enumerate(range(0, n_mem, args.rows_per_block))
        ]
    )
    print(f"in memory: N = {n_mem:,}")
    for n_jobs in args.in_memory_n_jobs:
        t_mem = _fixed_iterations(
            GaussianMixtureEM(k, n_jobs=n_jobs, **given), X_mem, args.n_iter
        )
        per_row = t_mem / n_mem * n
        print(
            f"  n_jobs={n_jobs}: {t_mem:.2f} s per EM iteration "
            f"({per_row:.2f} s scaled to N = {n:,}); Dask / in-memory = "
            f"{t_dask / per_row:.2f}"
        )
    print(f"  peak RSS of this process: {_peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
