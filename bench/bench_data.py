"""Benchmark data: the first ``m`` MNIST training images, or look-alikes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from admm.data import load_dataset
from reference_admm import ReferenceADMM

#: Real MNIST (gzip IDX) beside the repository, when present.
SHARED_MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def mnist_like(m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``m`` training samples ``(X (m, 784) float64 in [0, 1], labels (m,), source)``.

    The first ``m`` real MNIST training images when available, otherwise
    synthetic digits: sparse non-negative pixels (about 19% non-zero, like
    MNIST) whose class shifts the mean of a block of pixels, so that the
    iteration sees data of MNIST's shape and value range.
    """
    if (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists() and m <= 60_000:
        # Rank 0 of ceil(60000 / m) ranks holds the first >= m images: the
        # loader then converts only those to floats.
        data = load_dataset("mnist", SHARED_MNIST, rank=0, size=-(-60_000 // m), download=False)
        return data.X_train[:m], data.y_train[:m], "mnist"
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=m)
    X = rng.random((m, 784)) * (rng.random((m, 784)) < 0.19)
    X[np.arange(m)[:, None], 70 * y[:, None] + np.arange(64)] += 0.5
    return np.clip(X, 0.0, 1.0), y, "synthetic"


#: The published configuration, timed from the first iteration on (no warm-up),
#: shared by the iteration benchmark and bench/compare_iteration.py.
PARAMS = {"activation": "hardsigmoid", "loss": "hinge", "beta": 0.2, "gamma": 20.0, "warmup": 0}


def reference_after_one_step(
    X: np.ndarray, y: np.ndarray, layers: tuple[int, ...], weights: list, rho: tuple
) -> ReferenceADMM:
    """The plain NumPy ADMM (tests/reference_admm.py) of PARAMS, one step taken."""
    L = len(layers) - 1
    reference = ReferenceADMM(
        X,
        y,
        layers,
        weights,
        activation=PARAMS["activation"],
        loss=PARAMS["loss"],
        beta=[PARAMS["beta"]] * L,
        gamma=[PARAMS["gamma"]] * (L - 1),
        rho=list(rho),
        warmup=PARAMS["warmup"],
    )
    reference.step()
    return reference
