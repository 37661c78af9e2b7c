"""Time to validation accuracy of one configuration, under mpiexec (issue 16).

Trains ``admm.ADMMNetwork`` with ``--preset``'s arguments plus ``--set``
overrides on the first ``--train`` images of the seed-0 permutation of
MNIST's 60,000 training images (the split of ``bench/studies/accuracy``;
the test set is not read), steps one iteration at a time, and after every
iteration records the training seconds so far (the slowest rank's, the
iterations' and refits' only) and the accuracy on the next ``--val``
images. ``--refit-at K,K,...`` applies ``refit()`` after those iterations
(counted in the training seconds), ``--refit-end`` after the last. Prints
one JSON line on rank 0 (and appends it to ``--out``). From the
repository root:

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m bench.studies.speed.screen \\
        --preset best --set dtype='"float32"' --iterations 12 --out bench/studies/speed/screen.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import admm
from mpi4py import MPI

from bench.common import (
    MNIST_LAYERS,
    SHARED_MNIST,
    emit,
    global_accuracy,
    mnist_validation_split,
    parse_overrides,
    timed_steps,
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=SHARED_MNIST, help="the MNIST IDX files")
    p.add_argument("--preset", default="best", choices=sorted(admm.PRESETS))
    p.add_argument("--name", default=None, help="a label for the record")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="override one ADMMNetwork argument, e.g. rho_relative=0.003 (repeatable)",
    )
    p.add_argument("--train", type=int, default=50000)
    p.add_argument("--val", type=int, default=10000)
    p.add_argument("--iterations", type=int, default=12)
    p.add_argument("--refit-at", default="", help="iterations after which refit() runs")
    p.add_argument("--refit-end", action="store_true", help="refit() after the last iteration")
    p.add_argument("--out", type=Path, default=None, help="append the JSON line here too")
    args = p.parse_args(argv)
    overrides = parse_overrides(args.set)
    refit_at = {int(v) for v in args.refit_at.split(",") if v}

    comm = MPI.COMM_WORLD
    options = {**admm.PRESETS[args.preset], **overrides}
    dtype = options.get("dtype", "float64")
    X, y, X_val, y_val = mnist_validation_split(
        args.data_dir, args.train, args.val, comm.rank, comm.size, dtype=dtype
    )

    net = admm.ADMMNetwork(MNIST_LAYERS, **options, comm=comm)

    def accuracy() -> float:
        return global_accuracy(net, X_val, y_val, comm)

    refits = {it for it in range(1, args.iterations + 1)
              if it in refit_at or (args.refit_end and it == args.iterations)}  # fmt: skip

    def refit_if_due(it: int) -> None:
        if it in refits:
            net.refit()

    curve = [
        [it, round(seconds, 3), accuracy(), it in refits]
        for it, seconds in timed_steps(net, X, y, args.iterations, comm, refit_if_due)
    ]
    if comm.rank == 0:
        line = json.dumps(
            {
                "name": args.name,
                "preset": args.preset,
                "overrides": overrides,
                "refit_at": sorted(refit_at),
                "refit_end": args.refit_end,
                "train": args.train,
                "val": args.val,
                "ranks": comm.size,
                "curve": curve,
            }
        )
        emit(line, args.out)


if __name__ == "__main__":
    main()
