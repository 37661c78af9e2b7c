"""Train with the input transforms on this rank's block; record the result.

Usage: python fit_inputs.py OUTDIR M ITERATIONS DETERMINISTIC

Every rank builds the same seeded data set of M samples (signed inputs of
unequal scales, so that every transform matters) and trains 12-10-3 with
``input_power``, ``normalize_inputs``, ``center`` and ``spectral_power``,
the split ``admm.data.block_range`` with blocks of ``BLOCK`` samples (uneven
across ranks). Rank 0 writes ``OUTDIR/result.npz``: ``X``, ``y``,
``counts``, ``input_mean`` and ``input_basis`` of every rank
(``input_mean_rank<r>``, ``input_basis_rank<r>``), each rank's final
weights ``final_<l>_rank<r>`` and ``scores``, its ``decision_function`` of
the whole data set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from admm import ADMMNetwork
from admm.data import block_range
from mpi4py import MPI

LAYERS = (12, 10, 3)
BLOCK = 16
OPTIONS = dict(
    input_power=0.5,
    normalize_inputs=True,
    center=True,
    spectral_power=0.5,
    rho_relative=1e-2,
    seed=2,
)


def make_data(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed inputs, the columns on scales from 0.1 to 10, and a linear teacher's labels."""
    rng = np.random.default_rng(31)
    X = rng.standard_normal((m, LAYERS[0])) * np.logspace(-1, 1, LAYERS[0])
    y = np.argmax(X @ rng.standard_normal((LAYERS[0], LAYERS[-1])), axis=1)
    return X, y


def main() -> None:
    out, m, iterations = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    deterministic = sys.argv[4] == "1"
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    X, y = make_data(m)
    start, stop = block_range(m, rank, size, block=BLOCK)
    net = ADMMNetwork(LAYERS, deterministic=deterministic, block_size=BLOCK, **OPTIONS)
    net.fit(np.ascontiguousarray(X[start:stop]), y[start:stop], iterations=iterations)
    gathered = world.gather(
        (stop - start, net.input_mean_, net.input_basis_, [np.array(w) for w in net.weights]),
        root=0,
    )
    scores = net.decision_function(X)
    if rank == 0:
        assert gathered is not None
        result = {"X": X, "y": y, "counts": np.array([g[0] for g in gathered]), "scores": scores}
        for r, (_, mean, basis, weights) in enumerate(gathered):
            result[f"input_mean_rank{r}"] = mean
            result[f"input_basis_rank{r}"] = basis
            for l, w in enumerate(weights):
                result[f"final_{l}_rank{r}"] = w
        np.savez(out / "result.npz", **result)


if __name__ == "__main__":
    main()
