"""Draw the prototypes a BernoulliMixtureEM learns on binarised MNIST.

As in Bishop's *Pattern Recognition and Machine Learning*, Figure 9.10: a
mixture of three Bernoulli components fitted to images of the digits 2, 3 and
4 (left), whose means ``means_`` (theta, one probability per pixel) are shown
as 28x28 images, next to a mixture of 20 components fitted to all digits
(right). Training images only (the first 8,000), pixels thresholded at 0.5.
Writes ``docs/images/bernoulli_prototypes.png``::

    python benchmarks/plot_bernoulli_prototypes.py [MNIST_DIR] [--out PATH]
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _mnist import DEFAULT_MNIST_DIR, load_binarized_mnist  # noqa: E402

from sklearn_em import BernoulliMixtureEM  # noqa: E402
from sklearn_em.plotting import PrototypeDisplay  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist_dir", nargs="?", default=str(DEFAULT_MNIST_DIR))
    parser.add_argument(
        "--out", default=str(REPO_ROOT / "docs" / "images" / "bernoulli_prototypes.png")
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    X, _, y, _ = load_binarized_mnist(args.mnist_dir)
    X234 = X[np.isin(y, [2, 3, 4])]
    bishop = BernoulliMixtureEM(3, binarize=None, n_init=3, random_state=args.seed).fit(
        X234
    )
    all_digits = BernoulliMixtureEM(
        20, binarize=None, n_init=1, random_state=args.seed
    ).fit(X)

    fig, (ax_left, ax_right) = plt.subplots(
        1, 2, figsize=(10, 2.7), gridspec_kw={"width_ratios": [3, 5]}
    )
    PrototypeDisplay.from_estimator(bishop, ax=ax_left, n_cols=3, vmin=0, vmax=1)
    ax_left.set_title(
        f"K = 3, digits 2, 3, 4 ({len(X234):,} images)\n"
        f"training log-likelihood {bishop.score(X234):.1f} / image",
        fontsize="small",
    )
    PrototypeDisplay.from_estimator(all_digits, ax=ax_right, n_cols=10, vmin=0, vmax=1)
    ax_right.set_title(
        f"K = 20, all digits ({len(X):,} images)\n"
        f"training log-likelihood {all_digits.score(X):.1f} / image",
        fontsize="small",
    )
    fig.suptitle(
        "BernoulliMixtureEM on binarised MNIST: means_ as 28x28 images "
        "(cf. Bishop, PRML Fig. 9.10); numbers are mixture weights",
        fontsize="medium",
    )
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
