"""Shared fixtures: random numbers and the real MNIST folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mpirun import SHARED_MNIST


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20161605)


@pytest.fixture(scope="session")
def shared_mnist() -> Path:
    """Folder of the real MNIST IDX files; skips the test when absent."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found in {SHARED_MNIST}")
    return SHARED_MNIST
