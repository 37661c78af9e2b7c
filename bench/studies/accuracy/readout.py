"""Is the least-squares read-out of the forward refit the best linear read-out
of a trained network's last hidden features? (issue 16, the eighth and ninth rounds)

Trains ``--preset`` (in float32) under ``mpiexec`` on the accuracy study's
split (the seed-0 permutation of MNIST's training images: the first 50,000
train, the next 10,000 validate; the test set is not read) and compares, by
validation accuracy, read-outs of its last hidden features ``f_{L-1}`` (the
network's own forward pass, ``ADMMNetwork.hidden_features``): the least-squares
refit (``refit(readout_iterations=0)``), the library's read-out refits
(``refit(readout_iterations=K, readout_beta=B)``, every ``K`` of
``--iterations-list`` and ``B`` of ``--betas`` with the option's ridge), a
ridge least-squares fit to one-hot targets, and on rank 0 scikit-learn's
``LinearSVC`` (squared hinge, one against the rest) and ``LogisticRegression``
(the ``peers`` extra). Prints one line per read-out::

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m bench.studies.accuracy.readout --preset digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import admm
import numpy as np
from mpi4py import MPI

from bench.common import MNIST_LAYERS, SHARED_MNIST, mnist_validation_split


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=SHARED_MNIST, help="the MNIST IDX files")
    p.add_argument("--preset", default="digits", choices=sorted(admm.PRESETS))
    p.add_argument("--iterations", type=int, default=None, help="default: the preset's")
    p.add_argument("--iterations-list", default="10,30,100", help="read-out iterations K")
    p.add_argument("--betas", default="0.1,1", help="read-out penalties beta")
    p.add_argument("--no-sklearn", action="store_true", help="skip LinearSVC and logistic")
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD
    X, y, Xv, yv = mnist_validation_split(args.data_dir, 50000, 10000, comm.rank, comm.size,
                                          dtype="float32")  # fmt: skip
    net = admm.ADMMNetwork(MNIST_LAYERS, **{**admm.PRESETS[args.preset], "dtype": "float32"},
                           comm=comm)  # fmt: skip
    net.fit(X, y, iterations=args.iterations or admm.PRESET_ITERATIONS[args.preset])

    def validation_accuracy() -> float:
        correct = comm.allreduce(int(np.sum(net.predict(Xv) == yv)))
        return correct / comm.allreduce(len(yv))

    def report(line: str) -> None:
        if comm.rank == 0:
            print(line, flush=True)

    net.refit(readout_iterations=0)
    report(f"{args.preset}: least-squares refit {validation_accuracy():.4f}")
    for beta in (float(b) for b in args.betas.split(",")):
        for k in (int(v) for v in args.iterations_list.split(",")):
            net.refit(readout_iterations=k, readout_beta=beta)
            report(f"read-out refit, beta {beta:g}, {k} iterations {validation_accuracy():.4f}")
    net.refit(readout_iterations=0)
    F, Fv = net.hidden_features(X), net.hidden_features(Xv)
    parts = comm.gather((F, y, Fv, yv), root=0)
    if comm.rank != 0:
        return
    F = np.concatenate([q[0] for q in parts]).astype(np.float64)
    y = np.concatenate([q[1] for q in parts])
    Fv = np.concatenate([q[2] for q in parts]).astype(np.float64)
    yv = np.concatenate([q[3] for q in parts])
    Y = np.eye(MNIST_LAYERS[-1])[y]
    gram = F.T @ F
    for ridge in (1e-5, 1e-4):
        wls = np.linalg.solve(gram + ridge * len(F) * np.eye(len(gram)), F.T @ Y)
        print(
            f"ridge {ridge:g}, one-hot least squares {np.mean(np.argmax(Fv @ wls, 1) == yv):.4f}"
        )
    if args.no_sklearn:
        return
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
