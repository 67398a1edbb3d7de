"""Benchmark a default VAETransformer epoch on small data against MLPRegressor.

The 8x8 digits (1,797 images of 64 pixels, scaled to [0, 1]): seconds per
epoch of ``VAETransformer()`` with its defaults (Gaussian likelihood, one
hidden layer of 256 ReLU units, 2 latent dimensions, minibatches of 128,
Adam) against scikit-learn's ``MLPRegressor(hidden_layer_sizes=(256,))``
trained as an auto-encoder (``fit(X, X)``, its defaults: minibatches of 200,
Adam) on the same data: the same widths (64-256-64 against 64-256-4 and
2-256-64), about the same number of weights.

Both are timed in the same process, alternately, ``--repeats`` times each, and
the median seconds per epoch are compared. The run is made twice: on the
machine as it is ("quiet"), and while a second process keeps one core busy
with a Python busy loop ("one core busy"), which this script starts and stops
itself. A third column times the VAE with BLAS free to use all its threads
(the behaviour before training limited small products to one thread), to
show what that limit does.

Prints the ratios and writes a markdown table to
``benchmarks/results/vae_small.md``::

    python benchmarks/bench_vae_small.py [--epochs 20] [--repeats 5]
"""

import argparse
import multiprocessing
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import threadpoolctl
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from sklearn_em import VAETransformer
from sklearn_em.vae import _vae

REPO_ROOT = Path(__file__).resolve().parent.parent


def busy_loop():
    while True:
        pass


def seconds_per_epoch(make, X, y, epochs):
    estimator = make(epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        estimator.fit(X, y)
        elapsed = time.perf_counter() - start
    assert estimator.n_iter_ == epochs, estimator.n_iter_
    return elapsed / epochs


def vae(epochs):
    return VAETransformer(max_iter=epochs, n_iter_no_change=epochs, random_state=0)


def mlp(epochs):
    return MLPRegressor(
        hidden_layer_sizes=(256,),
        max_iter=epochs,
        n_iter_no_change=epochs,
        random_state=0,
    )


def measure(X, epochs, repeats):
    """Median seconds per epoch of the VAE, the MLP, and the VAE without the
    single-thread limit, timed alternately."""
    times = {"vae": [], "mlp": [], "vae_all_threads": []}
    default_limit = _vae._SMALL_PRODUCT
    for _ in range(repeats):
        times["vae"].append(seconds_per_epoch(vae, X, None, epochs))
        times["mlp"].append(seconds_per_epoch(mlp, X, X, epochs))
        _vae._SMALL_PRODUCT = 0  # never limit the BLAS threads
        try:
            times["vae_all_threads"].append(seconds_per_epoch(vae, X, None, epochs))
        finally:
            _vae._SMALL_PRODUCT = default_limit
    return {name: float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--output", default=str(REPO_ROOT / "benchmarks/results/vae_small.md")
    )
    args = parser.parse_args()

    X = load_digits().data / 16
    # Warm up imports, BLAS and caches.
    seconds_per_epoch(vae, X, None, 2)
    seconds_per_epoch(mlp, X, X, 2)

    rows = []
    for condition in ["quiet", "one core busy"]:
        busy = None
        if condition == "one core busy":
            busy = multiprocessing.get_context("spawn").Process(
                target=busy_loop, daemon=True
            )
            busy.start()
            time.sleep(1.0)
        try:
            load = os.getloadavg()[0]
            result = measure(X, args.epochs, args.repeats)
        finally:
            if busy is not None:
                busy.terminate()
                busy.join()
        ratio = result["vae"] / result["mlp"]
        rows.append((condition, load, result, ratio))
        print(
            f"{condition}: s/epoch VAE {result['vae']:.4f}, MLPRegressor "
            f"{result['mlp']:.4f}, ratio VAE/MLP {ratio:.2f} (VAE with all BLAS "
            f"threads {result['vae_all_threads']:.4f}, ratio "
            f"{result['vae_all_threads'] / result['mlp']:.2f}); "
            f"1-min load average {load:.1f}",
            flush=True,
        )

    blas = ", ".join(
        f"{info.get('internal_api')} {info.get('version')} "
        f"({info.get('num_threads')} threads)"
        for info in threadpoolctl.threadpool_info()
        if info.get("user_api") == "blas"
    )
    lines = [
        "8x8 digits (1,797 x 64, scaled to [0, 1]). Seconds per epoch, median of "
        f"{args.repeats} fits of {args.epochs} epochs each, timed alternately in "
        "one process: `VAETransformer()` (defaults: Gaussian, 64-256-2x2 encoder, "
        "2-256-64 decoder, batch 128) against `MLPRegressor(hidden_layer_sizes="
        "(256,))` fitted on (X, X) (64-256-64, batch 200). 'VAE, all BLAS "
        "threads' lifts the VAE's single-thread limit on small products. "
        "'one core busy': another process runs a Python busy loop meanwhile. "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy "
        f"{np.__version__}, scikit-learn {sklearn.__version__}, {blas}, "
        f"{platform.machine()}.",
        "",
        "| condition | load avg | VAE s/epoch | MLPRegressor s/epoch | VAE / MLP | "
        "VAE, all BLAS threads | its ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for condition, load, result, ratio in rows:
        lines.append(
            f"| {condition} | {load:.1f} | {result['vae']:.4f} | "
            f"{result['mlp']:.4f} | {ratio:.2f} | {result['vae_all_threads']:.4f} | "
            f"{result['vae_all_threads'] / result['mlp']:.2f} |"
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
