"""The library on a split of MNIST's training images, under mpiexec (issue 5).

Trains ``admm.ADMMNetwork`` with ``--preset``'s arguments (plus overrides)
on the first ``--train`` images of the seed-0 (``--split-seed``) permutation
of MNIST's 60,000 training images and validates on the next ``--val`` (with
seed 0 the split of ``study``; the test set is not read), then applies
``refit()``. Prints one JSON line on rank 0: validation accuracy by
iteration, after the refit, and the forward pass's accuracy on its own
training images before and after. From the repository root:

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m bench.studies.accuracy.library_split \\
        --set rho_relative=0.003 --out bench/studies/accuracy/library_split.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import admm
import numpy as np
from mpi4py import MPI

from bench.common import (
    MNIST_LAYERS,
    SHARED_MNIST,
    emit,
    global_accuracy,
    mnist_validation_split,
    parse_overrides,
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=SHARED_MNIST, help="the MNIST IDX files")
    p.add_argument("--preset", default="best", choices=sorted(admm.PRESETS))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="override one ADMMNetwork argument, e.g. rho_relative=0.003 (repeatable)",
    )
    p.add_argument(
        "--split-seed", type=int, default=0, help="seed of the permutation of the training images"
    )
    p.add_argument("--train", type=int, default=50000)
    p.add_argument("--val", type=int, default=10000)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--out", type=Path, default=None, help="append the JSON line here too")
    args = p.parse_args(argv)
    overrides = parse_overrides(args.set)
    comm = MPI.COMM_WORLD
    X, y, X_val, y_val = mnist_validation_split(
        args.data_dir, args.train, args.val, comm.rank, comm.size, seed=args.split_seed
    )

    net = admm.ADMMNetwork(MNIST_LAYERS, **{**admm.PRESETS[args.preset], **overrides}, comm=comm)
    started = time.perf_counter()
    net.fit(X, y, iterations=args.iterations, X_val=X_val, y_val=y_val, eval_every=args.eval_every)
    fit_s = time.perf_counter() - started

    def accuracy(X_block: np.ndarray, y_block: np.ndarray) -> float:
        return global_accuracy(net, X_block, y_block, comm)

    train_before = accuracy(X, y)
    started = time.perf_counter()
    net.refit()
    refit_s = time.perf_counter() - started
    record = {
        "preset": args.preset,
        "overrides": overrides,
        "split_seed": args.split_seed,
        "train": args.train,
        "val": args.val,
        "ranks": comm.size,
        "val_accuracy": [
            (h["iteration"], h["val_accuracy"])
            for h in net.history
            if h["val_accuracy"] is not None
        ],
        "val_accuracy_refit": accuracy(X_val, y_val),
        "train_accuracy": train_before,
        "train_accuracy_refit": accuracy(X, y),
        "fit_s": fit_s,
        "refit_s": refit_s,
    }
    if comm.rank == 0:
        emit(json.dumps(record), args.out)


if __name__ == "__main__":
    main()
