"""Benchmark data: the first ``m`` MNIST training images, or look-alikes."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

#: Real MNIST (gzip IDX) beside the repository, when present.
SHARED_MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or plain) as a uint8 array of its stated shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist_like(m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``m`` training samples ``(X (m, 784) float64 in [0, 1], labels (m,), source)``.

    The first ``m`` real MNIST training images when available, otherwise
    synthetic digits: sparse non-negative pixels (about 19% non-zero, like
    MNIST) whose class shifts the mean of a block of pixels, so that the
    iteration sees data of MNIST's shape and value range.
    """
    images = SHARED_MNIST / "train-images-idx3-ubyte.gz"
    labels = SHARED_MNIST / "train-labels-idx1-ubyte.gz"
    if images.exists() and labels.exists() and m <= 60_000:
        X = _read_idx(images)[:m].reshape(m, -1).astype(np.float64) / 255.0
        y = _read_idx(labels)[:m].astype(np.int64)
        return X, y, "mnist"
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=m)
    X = rng.random((m, 784)) * (rng.random((m, 784)) < 0.19)
    X[np.arange(m)[:, None], 70 * y[:, None] + np.arange(64)] += 0.5
    return np.clip(X, 0.0, 1.0), y, "synthetic"
