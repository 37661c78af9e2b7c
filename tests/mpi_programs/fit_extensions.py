"""Train with the accuracy-study options on this rank's block; record the result.

Usage: python fit_extensions.py OUTDIR M ITERATIONS DETERMINISTIC

Every rank builds the same seeded data set of M samples (3 x 3 "images"
with pixels in [0, 1], not centred, so that ``center`` matters) and trains
9-10-6-3 with ``deskew``, ``center``, a relative ridge that decays, inertia,
the backward sweep, continuation of beta and gamma with caps that are
reached, and no output multiplier. The split is
``admm.data.block_range`` with blocks of ``BLOCK`` samples (uneven across
ranks). Rank 0 writes ``OUTDIR/result.npz``: ``X``, ``y``, ``counts``, the
initial weights ``init_<l>``, each rank's final weights
``final_<l>_rank<r>``, the mean ``input_mean``, the ridge ``rho`` (and
``rho_last``, the one of the last iteration), the
histories ``objective`` and ``residual``, and ``scores``: the rank's
``decision_function`` of the whole data set. Then every rank refits
(:meth:`ADMMNetwork.refit`): ``z_<l>`` are the state's ``z_l`` of all ranks
(rows in rank order) that it fits, ``refit_<l>_rank<r>`` each rank's refit
weights; then refits again with ``READOUT`` read-out iterations:
``readout_rank<r>`` each rank's ``W_L`` of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from admm import ADMMNetwork
from admm.data import block_range
from mpi4py import MPI

LAYERS = (9, 10, 6, 3)
BLOCK = 16
#: Read-out iterations of the second refit (the options' beta and ridge).
READOUT = 8
OPTIONS = dict(
    beta=[0.5, 1.0, 2.0],
    gamma=[4.0, 2.0],
    rho_relative=1e-2,
    warmup=2,
    multiplier=False,
    beta_growth=1.2,
    gamma_growth=1.1,
    beta_max=[1.0, 2.0, 3.0],
    gamma_max=[5.0, 3.0],
    center=True,
    rho_final=0.3,
    rho_decay_iterations=6,
    inertia=0.3,
    backward_sweep=True,
    deskew=True,
)


def make_data(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs in [0, 1] and labels of a random linear teacher."""
    rng = np.random.default_rng(77)
    X = rng.random((m, LAYERS[0]))
    y = np.argmax((X - 0.5) @ rng.standard_normal((LAYERS[0], LAYERS[-1])), axis=1)
    return X, y


def main() -> None:
    out, m, iterations = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    deterministic = sys.argv[4] == "1"
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    X, y = make_data(m)
    start, stop = block_range(m, rank, size, block=BLOCK)
    net = ADMMNetwork(LAYERS, seed=4, deterministic=deterministic, block_size=BLOCK, **OPTIONS)
    init = [np.array(w) for w in net.weights]
    net.fit(np.ascontiguousarray(X[start:stop]), y[start:stop], iterations=iterations)
    counts = world.gather(stop - start, root=0)
    finals = world.gather([np.array(w) for w in net.weights], root=0)
    scores = net.decision_function(X)
    z = world.gather([np.array(v) for v in net.get_state()["z"]], root=0)
    net.refit()
    refits = world.gather([np.array(w) for w in net.weights], root=0)
    net.refit(readout_iterations=READOUT)
    readouts = world.gather(np.array(net.weights[-1]), root=0)
    if rank == 0:
        assert net.input_mean_ is not None and net.rho_ is not None
        arrays = {
            "X": X,
            "y": y,
            "counts": np.array(counts),
            "input_mean": net.input_mean_,
            "rho": np.array(net.rho_),
            "rho_last": np.array(net.ridges(net.n_iter_ - 1)),
            "objective": np.array([h["objective"] for h in net.history]),
            "residual": np.array([h["residual"] for h in net.history]),
            "scores": scores,
        }
        for l, w in enumerate(init):
            arrays[f"init_{l}"] = w
        for r in range(size):
            for l, w in enumerate(finals[r]):
                arrays[f"final_{l}_rank{r}"] = w
            for l, w in enumerate(refits[r]):
                arrays[f"refit_{l}_rank{r}"] = w
            arrays[f"readout_rank{r}"] = readouts[r]
        for l in range(len(LAYERS) - 1):
            arrays[f"z_{l}"] = np.concatenate([blocks[l] for blocks in z])
        np.savez(out / "result.npz", **arrays)


if __name__ == "__main__":
    main()
