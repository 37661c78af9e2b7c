"""Two networks trained at once on disjoint sub-communicators of one job.

Usage: python split_comms.py OUTDIR MODE

MODE ``split`` (4 ranks): ``COMM_WORLD.Split`` makes two pairs; pair ``c``
trains on data set ``c`` (different seeds and sizes) with a communicator of
its own, while ``MPI.COMM_WORLD`` is poisoned inside :mod:`admm._mpi`, so any
use of it behind the caller's back fails. Rank 0 of pair ``c`` writes
``OUTDIR/split<c>.npz`` with the weights.

MODE ``alone`` (2 ranks): the same two trainings one after the other on all
of ``COMM_WORLD``; rank 0 writes ``OUTDIR/alone<c>.npz``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from admm import ADMMNetwork, _mpi
from admm.data import block_range
from mpi4py import MPI

ITERATIONS = 6


def dataset(c: int) -> tuple[np.ndarray, np.ndarray]:
    """Data set ``c``: 90 or 111 samples, 6 features, 3 classes."""
    rng = np.random.default_rng(100 + c)
    m = 90 + 21 * c
    return rng.random((m, 6)), rng.integers(0, 3, m)


def train(c: int, comm: Any) -> list[np.ndarray]:
    X, y = dataset(c)
    start, stop = block_range(X.shape[0], comm.Get_rank(), comm.Get_size())
    net = ADMMNetwork((6, 5, 3), warmup=2, seed=c, comm=comm)
    net.fit(X[start:stop], y[start:stop], iterations=ITERATIONS)
    return net.weights


class _NoWorld:
    """mpi4py's MPI module without COMM_WORLD."""

    def __getattr__(self, name: str) -> Any:
        if name == "COMM_WORLD":
            raise AssertionError("admm used MPI.COMM_WORLD although a communicator was given")
        return getattr(MPI, name)


def save(path: Path, weights: list[np.ndarray]) -> None:
    np.savez(path, **{f"W{i + 1}": w for i, w in enumerate(weights)})


def main() -> None:
    out, mode = Path(sys.argv[1]), sys.argv[2]
    world = MPI.COMM_WORLD
    if mode == "split":
        assert world.Get_size() == 4
        color = world.Get_rank() // 2
        pair = world.Split(color, world.Get_rank())
        _mpi._load_mpi = lambda: _NoWorld()  # type: ignore[assignment]
        weights = train(color, pair)
        if pair.Get_rank() == 0:
            save(out / f"split{color}.npz", weights)
    else:
        assert world.Get_size() == 2
        for c in (0, 1):
            weights = train(c, world)
            if world.Get_rank() == 0:
                save(out / f"alone{c}.npz", weights)


if __name__ == "__main__":
    main()
