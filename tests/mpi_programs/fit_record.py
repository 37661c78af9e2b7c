"""Train on this rank's block of a fixed data set and record what the ranks share.

Usage: python fit_record.py OUTDIR M ITERATIONS [ACTIVATION LOSS]

Every rank builds the same data set of M samples (seeded) and keeps its block
of ``numpy.array_split`` (uneven when M does not divide by the rank count).
Rank 0 writes ``OUTDIR/result.npz`` with:

- ``X``, ``y``: the full data set; ``layers``, ``beta``, ``gamma``, ``rho``,
  ``warmup``: the configuration; ``counts``: samples per rank;
- ``gram0``, ``cross1``: the input Gram ``sum_r X_r^T X_r`` and the initial
  cross term ``sum_r z_1^T X_r`` (``z_1 = X W_1^T``), formed by the kernels on
  each block and reduced by ``Communicator.sum_inplace``;
- ``reduced_<k>``: every buffer the network summed over the ranks during
  iteration 1, in call order;
- ``w1_<l>_rank<r>``: each rank's weights after iteration 1;
- ``final_<l>_rank<r>``: each rank's weights after the last iteration;
- ``objective``, ``residual``: the history.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from admm import ADMMNetwork
from admm._mpi import Communicator
from mpi4py import MPI

from admm_core import cross, gram, matmul

LAYERS = (8, 10, 6, 3)
BETA = [0.5, 1.0, 2.0]
GAMMA = [10.0, 5.0]
RHO = [1e-3, 1e-2, 1e-2]
WARMUP = 3


def make_data(m: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs in [0, 1] and labels of a random linear teacher (learnable)."""
    rng = np.random.default_rng(301)
    X = rng.random((m, LAYERS[0]))
    teacher = rng.standard_normal((LAYERS[0], n_out))
    scores = (X - 0.5) @ teacher
    y = np.argmax(scores, axis=1) if n_out > 1 else (scores[:, 0] > 0).astype(np.int64)
    return X, y


def main() -> None:
    out, m, iterations = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    activation = sys.argv[4] if len(sys.argv) > 4 else "hardsigmoid"
    loss = sys.argv[5] if len(sys.argv) > 5 else "hinge"
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()

    X, y = make_data(m, LAYERS[-1])
    targets = np.eye(LAYERS[-1])[y] if loss == "squared" else y
    parts = np.array_split(np.arange(m), size)
    X_local = np.ascontiguousarray(X[parts[rank]])
    y_local = targets[parts[rank]]

    net = ADMMNetwork(
        LAYERS,
        activation=activation,
        loss=loss,
        beta=BETA,
        gamma=GAMMA,
        rho=RHO,
        warmup=WARMUP,
        seed=5,
    )
    w_init = [np.array(w) for w in net.weights]

    # The kernels plus one Allreduce, as each weight update does.
    comm = Communicator(world)
    gram0 = np.empty((LAYERS[0], LAYERS[0]))
    gram(X_local, gram0)
    comm.sum_inplace(gram0)
    z1 = np.empty((X_local.shape[0], LAYERS[1]))
    matmul(X_local, w_init[0], z1, transpose_b=True)
    cross1 = np.empty((LAYERS[1], LAYERS[0]))
    cross(z1, X_local, cross1)
    comm.sum_inplace(cross1)

    # Record every buffer the network reduces during iteration 1.
    reduced: list[np.ndarray] = []
    recording = [True]
    original = Communicator.sum_inplace

    def recorded(self, buf):
        result = original(self, buf)
        if recording[0]:
            reduced.append(np.array(result, copy=True))
        return result

    Communicator.sum_inplace = recorded
    after_first: list[np.ndarray] = []

    def callback(network, record):
        if record["iteration"] == 1:
            recording[0] = False
            after_first.extend(np.array(w) for w in network.weights)

    net.fit(X_local, y_local, iterations=iterations, callback=callback)
    Communicator.sum_inplace = original

    gathered_first = world.gather(after_first, root=0)
    gathered_final = world.gather([np.array(w) for w in net.weights], root=0)
    if rank == 0:
        arrays = {
            "X": X,
            "y": y,
            "layers": np.array(LAYERS),
            "beta": np.array(BETA),
            "gamma": np.array(GAMMA),
            "rho": np.array(RHO),
            "warmup": np.array(WARMUP),
            "counts": np.array([len(p) for p in parts]),
            "gram0": gram0,
            "cross1": cross1,
            "objective": np.array([h["objective"] for h in net.history]),
            "residual": np.array([h["residual"] for h in net.history]),
        }
        for l, w in enumerate(w_init):
            arrays[f"init_{l}"] = w
        for k, buf in enumerate(reduced):
            arrays[f"reduced_{k}"] = buf
        for r in range(size):
            for l, w in enumerate(gathered_first[r]):
                arrays[f"w1_{l}_rank{r}"] = w
            for l, w in enumerate(gathered_final[r]):
                arrays[f"final_{l}_rank{r}"] = w
        np.savez(out / "result.npz", **arrays)


if __name__ == "__main__":
    main()
