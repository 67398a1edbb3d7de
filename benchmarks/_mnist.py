"""The MNIST test set as the benchmarks use it: binarised, 8,000 / 2,000 split.

Shared by the benchmark scripts; the package itself never reads MNIST.
"""

import gzip
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MNIST_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"


def load_binarized_mnist(directory=DEFAULT_MNIST_DIR, dtype=np.float64):
    """Pixels thresholded at 0.5, split into the first 8,000 and last 2,000.

    Returns
    -------
    X_train : ndarray of shape (8000, 784)
    X_test : ndarray of shape (2000, 784)
    y_train : ndarray of shape (8000,)
    y_test : ndarray of shape (2000,)
    """
    directory = Path(directory)
    with gzip.open(directory / "t10k-images-idx3-ubyte.gz") as f:
        X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(directory / "t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    X = (X > 127.5).astype(dtype)  # X / 255 > 0.5
    return X[:8000], X[-2000:], y[:8000], y[-2000:]
