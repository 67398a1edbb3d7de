"""Benchmark VAETransformer against the same VAE written in PyTorch (CPU).

Binarised MNIST (the 10,000 test images: the first 8,000 train, the last 2,000
are held out), one hidden layer of 400 ReLU units, 20 latent dimensions,
Bernoulli decoder, analytic-KL ELBO with one draw, minibatches of 128, Adam
with learning rate 1e-3, float32, ``--epochs`` epochs (10 by default). Both
implementations start from the same kind of initialisation (Glorot uniform,
decoder output biases at the logits of the pixel means).

Both models are trained in the same run, alternating per seed, and their
held-out bounds are computed by the same evaluator (the PyTorch weights are
copied into a VAETransformer): the ELBO with 100 draws per image, and the
importance-weighted bound with ``--iwae-draws`` draws (5,000 by default, the
number papers report; 0 skips it), with PyTorch's own ELBO estimate printed
as a cross-check. Prints seconds per epoch (the median of the epochs' times,
which one burst of load from other processes on this shared machine cannot
move), their ratio and the bounds, and
writes a markdown table to ``--output``.

For context, Burda et al. (2016, Table 1 and appendix D) report IWAE-5000
test log-likelihoods of -86.76 nats (dynamically binarised MNIST) and
-88.71 nats (statically binarised) for a VAE with two hidden layers of 200
units and 50 latent dimensions, trained for 3,280 epochs on 60,000 images;
these models train on 8,000 images.

``--baseline TREE`` also times the NumPy VAE of another checkout of this
project in the same run, for example the version an issue was filed against
(``git worktree add /tmp/baseline 09e2a81``): its epochs and this
checkout's are both timed as ``(T(n) - T(1)) / (n - 1)`` from whole fits of
``n`` and of one epoch in fresh interpreters (an older version may not report
its epochs' times), and their ratios to PyTorch's epoch are printed side by
side, which shows whether this checkout's ratio has fallen.

PyTorch is an optional, benchmark-only dependency::

    pip install torch
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/bench_vae_torch.py [MNIST_DIR] [--seeds 0 1 2] \\
        [--epochs 10] [--iwae-draws 5000] [--baseline TREE] \\
        [--baseline-label TEXT] [--output FILE]
"""

import argparse
import contextlib
import copy
import io
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _mnist import DEFAULT_MNIST_DIR, load_binarized_mnist
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import VAETransformer

REPO_ROOT = Path(__file__).resolve().parent.parent

CONFIG = dict(
    n_components=20,
    hidden=400,
    batch_size=128,
    learning_rate=1e-3,
    n_epochs=10,
    n_eval_draws=100,
    n_iwae_draws=5000,
)


def fit_numpy(X_train, seed):
    vae = VAETransformer(
        n_components=CONFIG["n_components"],
        hidden_layer_sizes=(CONFIG["hidden"],),
        likelihood="bernoulli",
        batch_size=CONFIG["batch_size"],
        learning_rate=CONFIG["learning_rate"],
        max_iter=CONFIG["n_epochs"],
        n_iter_no_change=CONFIG["n_epochs"],
        random_state=seed,
        verbose=True,
    )
    progress = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(progress):
        # A fixed number of epochs, as for PyTorch.
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(X_train)
    assert vae.n_iter_ == CONFIG["n_epochs"]
    # The time of every epoch, from the progress lines ("..., time = 0.3s").
    epoch_seconds = [
        float(match) for match in re.findall(r"time = ([0-9.]+)s", progress.getvalue())
    ]
    assert len(epoch_seconds) == CONFIG["n_epochs"]
    return vae, float(np.median(epoch_seconds))


def fit_torch(X_train, seed):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    n_features = X_train.shape[1]
    d, h = CONFIG["n_components"], CONFIG["hidden"]

    def linear(n_in, n_out):
        layer = nn.Linear(n_in, n_out)
        bound = np.sqrt(6.0 / (n_in + n_out))
        nn.init.uniform_(layer.weight, -bound, bound)
        nn.init.uniform_(layer.bias, -bound, bound)
        return layer

    encoder = nn.Sequential(linear(n_features, h), nn.ReLU(), linear(h, 2 * d))
    decoder = nn.Sequential(linear(d, h), nn.ReLU(), linear(h, n_features))
    mean = np.clip(X_train.mean(axis=0), 1e-3, 1 - 1e-3)
    with torch.no_grad():
        decoder[-1].bias.copy_(torch.from_numpy(np.log(mean / (1 - mean))))
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=CONFIG["learning_rate"])
    X = torch.from_numpy(X_train)
    n_samples = X.shape[0]

    epoch_seconds = []
    for _ in range(CONFIG["n_epochs"]):
        start = time.perf_counter()
        permutation = torch.randperm(n_samples)
        for i in range(0, n_samples, CONFIG["batch_size"]):
            x = X[permutation[i : i + CONFIG["batch_size"]]]
            mu, log_var = encoder(x).chunk(2, dim=1)
            log_var = log_var.clamp(-20, 20)
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            logits = decoder(z)
            reconstruction = nn.functional.binary_cross_entropy_with_logits(
                logits, x, reduction="sum"
            )
            kl = 0.5 * (mu.square() + log_var.exp() - log_var - 1).sum()
            loss = (reconstruction + kl) / x.shape[0]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        epoch_seconds.append(time.perf_counter() - start)
    return (encoder, decoder), float(np.median(epoch_seconds))


def _run(job, mnist, seed, n_epochs, torch_threads=None):
    """Train one model in a fresh process (see ``in_fresh_process``)."""
    CONFIG["n_epochs"] = n_epochs
    if job == "torch" and torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    X_train, X_test, _, _ = load_binarized_mnist(mnist, np.float32)
    if job == "numpy":
        return fit_numpy(X_train, seed)
    model, seconds = fit_torch(X_train, seed)
    own_elbo = torch_elbo(model, X_test, CONFIG["n_eval_draws"], seed)
    weights = [
        [
            (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
            for m in sequential
            if hasattr(m, "weight")
        ]
        for sequential in model
    ]
    return (weights, own_elbo), seconds


def in_fresh_process(job, mnist, seed, n_epochs, torch_threads=None):
    """Run ``_run`` in a new interpreter.

    PyTorch's OpenMP threads and OpenBLAS's threads both spin while waiting
    for work: in one process, whichever library runs second competes with the
    idle threads of the first and can be several times slower.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(_run, job, mnist, seed, n_epochs, torch_threads).result()


# Run by ``python -c`` with PYTHONPATH naming a checkout: the seconds of whole
# fits of 1 and of ``n_epochs`` epochs of that checkout's VAETransformer.
_TREE_TIMING = """
import sys, time, warnings
import numpy as np
sys.path.insert(1, {benchmarks!r})
from _mnist import load_binarized_mnist
import sklearn_em
from sklearn_em import VAETransformer
X_train, _, _, _ = load_binarized_mnist({mnist!r}, np.float32)
warnings.simplefilter("ignore")
seconds = []
for n_epochs in (1, {n_epochs}):
    vae = VAETransformer(n_components={n_components}, hidden_layer_sizes=({hidden},),
        likelihood="bernoulli", batch_size={batch_size},
        learning_rate={learning_rate}, max_iter=n_epochs,
        n_iter_no_change=n_epochs, random_state={seed})
    start = time.perf_counter()
    vae.fit(X_train)
    seconds.append(time.perf_counter() - start)
    assert vae.n_iter_ == n_epochs
print(sklearn_em.__file__)
print(seconds[0], seconds[1])
"""


def tree_epoch_seconds(tree, mnist, seed, n_epochs):
    """Seconds per epoch of the VAETransformer of the checkout ``tree``.

    ``(T(n) - T(1)) / (n - 1)`` from whole fits in a fresh interpreter that
    imports ``sklearn_em`` from ``tree``.
    """
    tree = Path(tree).resolve()
    code = _TREE_TIMING.format(
        benchmarks=str(REPO_ROOT / "benchmarks"),
        mnist=str(mnist),
        n_epochs=n_epochs,
        seed=seed,
        **{k: CONFIG[k] for k in ("n_components", "hidden", "batch_size")},
        learning_rate=CONFIG["learning_rate"],
    )
    env = dict(os.environ, PYTHONPATH=str(tree))
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tree, capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(f"timing the VAE of {tree} failed:\n{result.stderr}")
    module, times = result.stdout.strip().splitlines()[-2:]
    if not Path(module).resolve().is_relative_to(tree):
        raise RuntimeError(f"{tree} did not provide sklearn_em (got {module})")
    one, many = map(float, times.split())
    return (many - one) / (n_epochs - 1)


def torch_elbo(model, X, n_draws, seed):
    """PyTorch's own held-out ELBO estimate (cross-check of the evaluator)."""
    import torch
    from torch import nn

    encoder, decoder = model
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = torch.from_numpy(X)
        mu, log_var = encoder(x).chunk(2, dim=1)
        log_var = log_var.clamp(-20, 20)
        reconstruction = 0.0
        for _ in range(n_draws):
            eps = torch.randn(mu.shape, generator=generator)
            logits = decoder(mu + torch.exp(0.5 * log_var) * eps)
            reconstruction += -nn.functional.binary_cross_entropy_with_logits(
                logits, x, reduction="none"
            ).sum(dim=1)
        kl = 0.5 * (mu.square() + log_var.exp() - log_var - 1).sum(dim=1)
        return float((reconstruction / n_draws - kl).mean())


def torch_to_vae(weights, template):
    """A VAETransformer carrying the weights of the PyTorch model."""
    vae = copy.deepcopy(template)
    (encoder, decoder) = weights
    vae.encoder_coefs_ = [coef for coef, _ in encoder]
    vae.encoder_intercepts_ = [intercept for _, intercept in encoder]
    vae.decoder_coefs_ = [coef for coef, _ in decoder]
    vae.decoder_intercepts_ = [intercept for _, intercept in decoder]
    vae.decoder_log_var_ = None
    return vae


def torch_version():
    from importlib.metadata import version

    return version("torch")


def _commit(tree):
    """The short commit hash of a git checkout, or its path."""
    result = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or str(tree)


def baseline_table(baseline_rows, baseline, label=None):
    """Markdown lines comparing this checkout's epoch with the baseline's."""
    this, base = _commit(REPO_ROOT), _commit(baseline)
    described = f"{base} ({label})" if label else base
    lines = [
        f"Against an earlier version, in the same run: the NumPy epoch of this "
        f"checkout ({this}) and of {described}, both as (T(n) - T(1)) / (n - 1) from "
        "whole fits in fresh interpreters, each divided by the PyTorch epoch "
        "above.",
        "",
        f"| seed | {this} s/epoch | {base} s/epoch | PyTorch s/epoch | "
        f"{this} / PyTorch | {base} / PyTorch |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for seed, this_s, base_s, torch_s in baseline_rows:
        lines.append(
            f"| {seed} | {this_s:.3f} | {base_s:.3f} | {torch_s:.3f} | "
            f"{this_s / torch_s:.2f} | {base_s / torch_s:.2f} |"
        )
    this_s, base_s, torch_s = np.mean([row[1:] for row in baseline_rows], axis=0)
    lines.append(
        f"| mean | {this_s:.3f} | {base_s:.3f} | {torch_s:.3f} | "
        f"{this_s / torch_s:.2f} | {base_s / torch_s:.2f} |"
    )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mnist", nargs="?", default=str(DEFAULT_MNIST_DIR))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=CONFIG["n_epochs"])
    parser.add_argument("--iwae-draws", type=int, default=CONFIG["n_iwae_draws"])
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="threads of PyTorch's training (its default if not given)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="another checkout of this project whose VAE epoch is timed too",
    )
    parser.add_argument(
        "--baseline-label",
        default=None,
        help="words after the baseline's commit in the table's caption",
    )
    parser.add_argument(
        "--output", default=str(REPO_ROOT / "benchmarks/results/vae_torch.md")
    )
    args = parser.parse_args()
    CONFIG["n_epochs"] = args.epochs
    CONFIG["n_iwae_draws"] = args.iwae_draws

    import threadpoolctl

    _, X_test, _, _ = load_binarized_mnist(args.mnist, np.float32)
    rows, baseline_rows = [], []
    for i, seed in enumerate(args.seeds):
        # Alternate the order so that neither always runs on a warmer machine.
        results = {}
        for job in ["numpy", "torch"][:: 1 if i % 2 == 0 else -1]:
            results[job] = in_fresh_process(
                job, args.mnist, seed, args.epochs, args.torch_threads
            )
        vae, numpy_time = results["numpy"]
        (torch_weights, torch_elbo_own), torch_time = results["torch"]
        if args.baseline:
            trees = [REPO_ROOT, args.baseline][:: 1 if i % 2 == 0 else -1]
            tree_seconds = {
                str(tree): tree_epoch_seconds(tree, args.mnist, seed, args.epochs)
                for tree in trees
            }
            baseline_rows.append(
                (
                    seed,
                    tree_seconds[str(REPO_ROOT)],
                    tree_seconds[str(args.baseline)],
                    torch_time,
                )
            )
            print(
                f"seed {seed}: s/epoch by whole fits: this checkout "
                f"{baseline_rows[-1][1]:.3f}, baseline {baseline_rows[-1][2]:.3f}",
                flush=True,
            )
        # Evaluation on one BLAS thread: on a shared machine threads waiting
        # for each other can make it many times slower.
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            # The same evaluator for both: the analytic-KL ELBO with
            # n_eval_draws draws per image, then the importance-weighted bound.
            vae.set_params(n_score_draws=CONFIG["n_eval_draws"], random_state=seed)
            torch_as_vae = torch_to_vae(torch_weights, vae)
            numpy_elbo = vae.score(X_test)
            torch_elbo_same_evaluator = torch_as_vae.score(X_test)
            numpy_iwae = torch_iwae = np.nan
            if CONFIG["n_iwae_draws"]:
                for model in (vae, torch_as_vae):
                    model.set_params(
                        score_bound="iwae", n_score_draws=CONFIG["n_iwae_draws"]
                    )
                start = time.perf_counter()
                numpy_iwae = vae.score(X_test)
                iwae_seconds = time.perf_counter() - start
                torch_iwae = torch_as_vae.score(X_test)
                print(
                    f"  (one IWAE-{CONFIG['n_iwae_draws']} evaluation: "
                    f"{iwae_seconds:.0f} s)",
                    flush=True,
                )
        rows.append(
            (
                seed,
                numpy_time,
                torch_time,
                numpy_elbo,
                torch_elbo_same_evaluator,
                torch_elbo_own,
                numpy_iwae,
                torch_iwae,
            )
        )
        print(
            f"seed {seed}: s/epoch numpy {numpy_time:.3f} torch {torch_time:.3f} "
            f"(ratio {numpy_time / torch_time:.2f}); held-out ELBO numpy "
            f"{numpy_elbo:.2f} torch {torch_elbo_same_evaluator:.2f} "
            f"(torch's own estimate {torch_elbo_own:.2f}); IWAE-"
            f"{CONFIG['n_iwae_draws']} numpy {numpy_iwae:.2f} torch {torch_iwae:.2f}",
            flush=True,
        )

    data = np.array([row[1:] for row in rows])
    (
        numpy_time,
        torch_time,
        numpy_elbo,
        torch_elbo_,
        torch_own,
        numpy_iwae,
        torch_iwae,
    ) = data.mean(axis=0)
    ratio = numpy_time / torch_time
    difference = numpy_elbo - torch_elbo_
    print(
        f"mean over seeds {args.seeds}: s/epoch numpy {numpy_time:.3f}, torch "
        f"{torch_time:.3f}, ratio numpy/torch {ratio:.2f}; held-out ELBO numpy "
        f"{numpy_elbo:.2f}, torch {torch_elbo_:.2f}, difference {difference:+.2f} "
        f"nats; IWAE numpy {numpy_iwae:.2f}, torch {torch_iwae:.2f}"
    )

    blas = threadpoolctl.threadpool_info()
    blas = ", ".join(
        f"{info.get('internal_api')} {info.get('version')} "
        f"({info.get('num_threads')} threads)"
        for info in blas
        if info.get("user_api") == "blas"
    )
    k = CONFIG["n_iwae_draws"]
    lines = [
        "| seed | NumPy s/epoch | PyTorch s/epoch | ratio | NumPy ELBO | "
        f"PyTorch ELBO | difference | NumPy IWAE-{k} | PyTorch IWAE-{k} |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for seed, nt, tt, ne, te, _, ni, ti in rows:
        lines.append(
            f"| {seed} | {nt:.3f} | {tt:.3f} | {nt / tt:.2f} | {ne:.2f} | "
            f"{te:.2f} | {ne - te:+.2f} | {ni:.2f} | {ti:.2f} |"
        )
    lines.append(
        f"| mean | {numpy_time:.3f} | {torch_time:.3f} | {ratio:.2f} | "
        f"{numpy_elbo:.2f} | {torch_elbo_:.2f} | {difference:+.2f} | "
        f"{numpy_iwae:.2f} | {torch_iwae:.2f} |"
    )
    header = [
        "Binarised MNIST (pixels thresholded at 0.5), 8,000 training and 2,000 "
        "held-out images, 784-400-20 VAE, Bernoulli decoder, batch 128, Adam lr "
        f"1e-3, float32, {CONFIG['n_epochs']} epochs; s/epoch is the median "
        "of the epochs' times. Held-out bounds in nats, "
        "the same evaluator for both: the ELBO with "
        f"{CONFIG['n_eval_draws']} draws per image and the importance-weighted "
        f"bound with {k} draws per image. "
        f"Python {platform.python_version()}, NumPy {np.__version__} ({blas}), "
        f"PyTorch {torch_version()} "
        f"({args.torch_threads or 'default number of'} training threads), "
        f"{platform.machine()}; 1-min load average at the end "
        f"{os.getloadavg()[0]:.1f}.",
        "",
        "For context: Burda et al. (2016, Table 1 and appendix D) report "
        "IWAE-5000 test log-likelihoods of -86.76 nats on dynamically and "
        "-88.71 nats on statically binarised MNIST for a VAE with two hidden "
        "layers of 200 units and 50 latent dimensions, trained for 3,280 epochs "
        "on 60,000 images (IWAE-trained with k=50: -84.78 and -87.10).",
        "",
    ]
    if baseline_rows:
        lines += [
            "",
            *baseline_table(baseline_rows, args.baseline, args.baseline_label),
        ]
        print("\n".join(lines[-len(baseline_rows) - 4 :]))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(header + lines) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
