"""A validation error on one rank only: every rank must raise, none may hang.

Usage: python bad_one_rank.py OUTDIR KIND

KIND is ``nan`` (rank 1 gets a NaN in its X block), ``label`` (rank 1 gets a
label out of range) or ``width`` (rank 1's X has a column too many). Each
rank writes ``OUTDIR/rank<r>.txt`` with ``ValueError: <message>`` when fit
raised, or ``no error`` when it returned.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from admm import ADMMNetwork
from mpi4py import MPI


def main() -> None:
    out, kind = Path(sys.argv[1]), sys.argv[2]
    rank = MPI.COMM_WORLD.Get_rank()
    rng = np.random.default_rng(rank)
    X = rng.random((7 + rank, 5))
    y = rng.integers(0, 3, X.shape[0])
    if rank == 1:
        if kind == "nan":
            X[2, 3] = np.nan
        elif kind == "label":
            y[0] = 3
        elif kind == "width":
            X = np.hstack([X, X[:, :1]])
    net = ADMMNetwork((5, 4, 3), rho=1e-3)
    try:
        net.fit(X, y, iterations=2)
        report = "no error"
    except ValueError as exc:
        report = f"ValueError: {exc}"
    (out / f"rank{rank}.txt").write_text(report)
    # A collective after the error proves every rank left fit in step.
    MPI.COMM_WORLD.Barrier()


if __name__ == "__main__":
    main()
