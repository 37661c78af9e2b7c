"""Train on this rank's block-aligned share of a fixed data set; record the result.

Usage: python fit_determinism.py OUTDIR M ITERATIONS DTYPES DETERMINISTIC [SPLIT]

Every rank builds the same seeded data set of M samples and trains one
network per dtype in DTYPES (comma-separated, e.g. ``float64,float32``). ``DETERMINISTIC``
is ``1`` or ``0`` (the ``deterministic`` option). ``SPLIT`` is ``even``
(default: ``admm.data.block_range`` with ``block=BLOCK``) or comma-separated
block counts per rank, e.g. ``0,7,0,12`` (ranks may hold no block), or
``rows:`` and comma-separated sample counts per rank (e.g. ``rows:150,150``,
not whole blocks: fit must refuse it in deterministic mode). Rank 0
writes ``OUTDIR/result.npz`` with ``counts`` (samples per rank) and, per
dtype, ``<dtype>_w<l>_rank<r>`` (each rank's final weights), ``<dtype>_rho``
and the history ``<dtype>_objective``, ``_residual``, ``_val_accuracy``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from admm import ADMMNetwork
from admm.data import block_range
from mpi4py import MPI

LAYERS = (12, 16, 8, 4)
BLOCK = 16


def make_data(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs in [0, 1] and the labels of a random two-layer teacher."""
    rng = np.random.default_rng(2024)
    X = rng.random((m, LAYERS[0]))
    hidden = np.tanh((X - 0.5) @ rng.standard_normal((LAYERS[0], 6)))
    y = np.argmax(hidden @ rng.standard_normal((6, LAYERS[-1])), axis=1)
    return X, y


def main() -> None:
    out, m, iterations = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    dtypes, deterministic = sys.argv[4].split(","), sys.argv[5] == "1"
    split = sys.argv[6] if len(sys.argv) > 6 else "even"
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()

    X, y = make_data(m)
    if split == "even":
        start, stop = block_range(m, rank, size, block=BLOCK)
    elif split.startswith("rows:"):  # samples per rank, not necessarily whole blocks
        rows = np.cumsum([0, *(int(c) for c in split[5:].split(","))])
        start, stop = int(rows[rank]), int(rows[rank + 1])
    else:
        blocks = [int(b) for b in split.split(",")]
        assert len(blocks) == size, "one block count per rank"
        edges = np.minimum(np.cumsum([0, *blocks]) * BLOCK, m)
        start, stop = int(edges[rank]), int(edges[rank + 1])
    counts = world.gather(stop - start, root=0)
    arrays: dict[str, np.ndarray] = {"counts": np.array(counts)}
    for dtype in dtypes:
        net = ADMMNetwork(
            LAYERS,
            beta=[1.0, 1.0, 1.0],
            gamma=[10.0, 10.0],
            warmup=5,
            dtype=dtype,
            seed=3,
            deterministic=deterministic,
            block_size=BLOCK,
        )
        net.fit(
            X[start:stop],
            y[start:stop],
            iterations=iterations,
            X_val=X[start:stop],
            y_val=y[start:stop],
        )
        weights = world.gather([np.array(w) for w in net.weights], root=0)
        history = {
            key: np.array([h[key] for h in net.history])
            for key in ("objective", "residual", "val_accuracy")
        }
        arrays.update({f"{dtype}_{k}": v for k, v in history.items()})
        arrays[f"{dtype}_rho"] = np.array(net.rho_)
        if rank == 0:
            for r in range(size):
                for l, w in enumerate(weights[r]):
                    arrays[f"{dtype}_w{l}_rank{r}"] = w
    if rank == 0:
        np.savez(out / "result.npz", **arrays)


if __name__ == "__main__":
    main()
