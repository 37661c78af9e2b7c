"""The scikit-learn estimators trained with a communicator: ``fit`` is collective.

Usage: python sklearn_fit.py OUTDIR

Every rank builds the same data set (seeded; 64 samples per rank, string
labels) and fits on its own block of 64 samples: rank 0 holds the classes
``"a"`` and ``"b"`` only, the other ranks also ``"c"``, so ``classes_`` must be
the union. The classifier runs with ``deterministic=True`` and blocks of 32
samples (whole blocks on every rank), so its weights are those of one process
on all the data, bit for bit. Rank 0 writes ``OUTDIR/result.npz``: the data,
every rank's ``classes_`` and weights of both estimators, the
regressor's predictions on every rank, and the error every rank raised when
only the last rank's block held a NaN (none may hang in a collective).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from admm.sklearn import ADMMClassifier, ADMMRegressor
from mpi4py import MPI

PER_RANK = 64


def main() -> None:
    out = Path(sys.argv[1])
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    rng = np.random.default_rng(7)
    m = PER_RANK * size
    X = rng.standard_normal((m, 5))
    names = np.array(["a", "b", "c"])
    y = names[np.argmax(X[:, :3], axis=1)]
    y[:PER_RANK][y[:PER_RANK] == "c"] = "a"  # rank 0 sees no "c"
    target = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2
    rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)

    clf = ADMMClassifier(
        hidden_layer_sizes=(8,), max_iter=10, deterministic=True, block_size=32, comm=world
    ).fit(X[rows], y[rows])
    reg = ADMMRegressor(hidden_layer_sizes=(8,), max_iter=10, comm=world).fit(
        X[rows], target[rows]
    )
    bad = X[rows].copy()
    if rank == size - 1:
        bad[0, 0] = np.nan
    try:
        ADMMClassifier(hidden_layer_sizes=(8,), max_iter=2, comm=world).fit(bad, y[rows])
        error = "no error"
    except ValueError as exc:
        error = str(exc)
    gathered = world.gather(
        (list(clf.classes_), clf.coefs_, reg.coefs_, reg.predict(X), clf.n_features_in_, error)
    )
    if rank == 0:
        result = {"X": X, "y": y, "target": target, "size": size}
        for r, (classes, clf_w, reg_w, pred, n_features, error) in enumerate(gathered):
            result[f"classes_{r}"] = np.array(classes)
            result[f"error_{r}"] = error
            result[f"n_features_{r}"] = n_features
            result[f"reg_pred_{r}"] = pred
            for i, w in enumerate(clf_w):
                result[f"clf_{r}_{i}"] = w
            for i, w in enumerate(reg_w):
                result[f"reg_{r}_{i}"] = w
        np.savez(out / "result.npz", **result)


if __name__ == "__main__":
    main()
