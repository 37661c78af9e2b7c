"""Is the least-squares read-out of the forward refit the best linear read-out
of a trained network's last hidden features? (issue 16, a lead)

Trains ``--preset`` (in float32) under ``mpiexec`` on the accuracy study's
split (the seed-0 permutation of MNIST's training images: the first 50,000
train, the next 10,000 validate; the test set is not read), refits it, and
on rank 0 compares read-outs of its last hidden features ``f_{L-1}`` (the
network's own forward pass, ``ADMMNetwork.hidden_features``) on the validation
images: the refit's ``W_L``, a ridge least-squares fit to one-hot targets,
the hinge read-out solved by ADMM with the library's output update (a
sketch of what the library could do), and scikit-learn's ``LinearSVC``
(squared hinge, one against the rest) and ``LogisticRegression`` (the
``peers`` extra). Prints one line per read-out::

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m bench.studies.accuracy.readout --preset digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import admm
import numpy as np
from mpi4py import MPI

from admm_core import output_hinge_update
from bench.common import MNIST_LAYERS, SHARED_MNIST, mnist_validation_split


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=SHARED_MNIST, help="the MNIST IDX files")
    p.add_argument("--preset", default="digits", choices=sorted(admm.PRESETS))
    p.add_argument("--iterations", type=int, default=None, help="default: the preset's")
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD
    X, y, Xv, yv = mnist_validation_split(args.data_dir, 50000, 10000, comm.rank, comm.size,
                                          dtype="float32")  # fmt: skip
    net = admm.ADMMNetwork(MNIST_LAYERS, **{**admm.PRESETS[args.preset], "dtype": "float32"},
                           comm=comm)  # fmt: skip
    net.fit(X, y, iterations=args.iterations or admm.PRESET_ITERATIONS[args.preset])
    net.refit()
    F, Fv = net.hidden_features(X), net.hidden_features(Xv)
    parts = comm.gather((F, y, Fv, yv), root=0)
    if comm.rank != 0:
        return
    F = np.concatenate([q[0] for q in parts]).astype(np.float64)
    y = np.concatenate([q[1] for q in parts])
    Fv = np.concatenate([q[2] for q in parts]).astype(np.float64)
    yv = np.concatenate([q[3] for q in parts])
    W = np.asarray(net.weights[-1], dtype=np.float64)
    print(f"{args.preset}: refit read-out {np.mean(np.argmax(Fv @ W.T, 1) == yv):.4f}")
    Y = np.eye(W.shape[0])[y]
    gram = F.T @ F
    for ridge in (1e-5, 1e-4):
        wls = np.linalg.solve(gram + ridge * len(F) * np.eye(len(gram)), F.T @ Y)
        print(
            f"ridge {ridge:g}, one-hot least squares {np.mean(np.argmax(Fv @ wls, 1) == yv):.4f}"
        )
    # The same problem by ADMM with the library's own hinge update: (5) and
    # (6) on z = F W^T, the W-update with the multiplier, on the fixed Gram.
    ridge = 1e-4 * np.trace(gram) / len(gram)
    factor = np.linalg.cholesky(gram + ridge * np.eye(len(gram)))
    w, beta = W.copy(), 1.0
    z, lam = np.empty((len(F), W.shape[0])), np.zeros((len(F), W.shape[0]))
    for it in range(1, 301):
        np.matmul(F, w.T, out=z)
        output_hinge_update(z, lam, y.astype(np.int64), beta, True)
        rhs = F.T @ (z + lam / (2 * beta))
        w = np.linalg.solve(factor.T, np.linalg.solve(factor, rhs)).T
        if it in (30, 100, 300):
            print(
                f"ADMM hinge read-out, {it} iterations {np.mean(np.argmax(Fv @ w.T, 1) == yv):.4f}"
            )
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    for C in (0.1, 1.0):
        svc = LinearSVC(C=C, dual=False).fit(F, y)
        print(f"LinearSVC C={C:g} {svc.score(Fv, yv):.4f}", flush=True)
    for C in (1.0, 10.0):
        logistic = LogisticRegression(C=C, max_iter=300).fit(F, y)
        print(f"logistic C={C:g} {logistic.score(Fv, yv):.4f}", flush=True)


if __name__ == "__main__":
    main()
