"""Input transforms applied by hand before training (issue 16, tenth round).

The prototype that chose ``best``'s input transforms: it transforms
MNIST's images outside the library (each statistic over all ranks' training
rows), trains ``admm.ADMMNetwork`` on them with ``--preset``'s options (its
deskewing and input transforms off) and ``--set`` overrides (the 50,000 / 10,000 validation split of
``bench.common.mnist_validation_split``; the test set is not read), records
the validation accuracy after the iterations of ``--eval``, and after a
final ``refit()``. ``--transform`` chains steps with ``+``, in order:

- ``sqrt``: the square root of every pixel (``input_power=0.5``);
- ``l2``: every image to unit Euclidean norm (``normalize_inputs``);
- ``std``: every pixel standardised (its standard deviation floored at
  ``--floor`` times the mean one);
- ``zca`` / ``pcaw``: ZCA / PCA whitening, eigenvalues plus ``--floor``
  times their mean;
- ``pcakK``: the projection on the top ``K`` principal directions;
- ``powQ``: after centring, each principal direction scaled by
  ``(variance / mean variance)^(Q/2)`` (``spectral_power=Q``).

One JSON line on rank 0, appended to ``--out``. From the repository root:

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m bench.studies.speed.input_transforms \\
        --set dtype='"float32"' --iterations 20 --eval 5,10,20 --transform sqrt+l2+pow0.5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import admm
import numpy as np
from mpi4py import MPI

from bench.common import (
    SHARED_MNIST,
    emit,
    global_accuracy,
    mnist_validation_split,
    parse_overrides,
    timed_steps,
)

#: The library's input options, off.
LIBRARY_TRANSFORMS_OFF = {
    "deskew": False,
    "input_power": 1.0,
    "normalize_inputs": False,
    "spectral_power": 0.0,
}


def transformed(steps: str, floor: float, X: np.ndarray, X_val: np.ndarray, comm) -> tuple:
    """``X`` and ``X_val`` (float64) through the ``+``-separated ``steps``. Collective."""
    n = comm.allreduce(X.shape[0])

    def moments(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = comm.allreduce(A.sum(axis=0)) / n
        return mean, comm.allreduce((A - mean).T @ (A - mean)) / n

    for step in steps.split("+"):
        if step == "none":
            continue
        if step == "sqrt":
            X, X_val = np.sqrt(X), np.sqrt(X_val)
        elif step == "l2":
            X, X_val = (A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
                        for A in (X, X_val))  # fmt: skip
        elif step == "std":
            mean = comm.allreduce(X.sum(axis=0)) / n
            sd = np.sqrt(comm.allreduce(((X - mean) ** 2).sum(axis=0)) / n)
            sd = np.maximum(sd, floor * sd.mean())
            X, X_val = (X - mean) / sd, (X_val - mean) / sd
        elif step in ("zca", "pcaw"):
            mean, cov = moments(X)
            v, V = np.linalg.eigh(cov)
            P = V / np.sqrt(v + floor * v.mean())
            if step == "zca":
                P = P @ V.T
            X, X_val = (X - mean) @ P, (X_val - mean) @ P
        elif step.startswith("pcak"):
            mean, cov = moments(X)
            Vk = np.linalg.eigh(cov)[1][:, -int(step[4:]) :]
            X, X_val = ((A - mean) @ Vk @ Vk.T + mean for A in (X, X_val))
        elif step.startswith("pow"):
            mean, cov = moments(X)
            v, V = np.linalg.eigh(cov)
            v = np.maximum(v, 0.0)
            P = (V * (v / v.mean()) ** (float(step[3:]) / 2)) @ V.T
            X, X_val = ((A - mean) @ P + mean for A in (X, X_val))
        else:
            raise SystemExit(f"unknown step {step!r}")
    return X, X_val


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=SHARED_MNIST, help="the MNIST IDX files")
    p.add_argument("--preset", default="best", choices=sorted(admm.PRESETS))
    p.add_argument("--name", default=None, help="a label for the record")
    p.add_argument("--set", action="append", default=[], metavar="NAME=JSON")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--eval", default="", help="iterations to evaluate after (default: all)")
    p.add_argument("--transform", default="none")
    p.add_argument("--floor", type=float, default=0.1)
    p.add_argument("--out", type=Path, default=None, help="append the JSON line here too")
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD
    overrides = parse_overrides(args.set)
    # The library's own transforms off: the prototype's are the only ones
    # (``best`` then is ``best`` as it was before the tenth round).
    options = {**admm.PRESETS[args.preset], **LIBRARY_TRANSFORMS_OFF, **overrides}
    dtype = options.get("dtype", "float64")
    X, y, X_val, y_val = mnist_validation_split(args.data_dir, 50000, 10000, comm.rank, comm.size)
    X, X_val = transformed(args.transform, args.floor, X, X_val, comm)
    X, X_val = X.astype(dtype), X_val.astype(dtype)
    net = admm.ADMMNetwork([X.shape[1], 500, 500, 10], **options, comm=comm)
    due = {int(v) for v in args.eval.split(",") if v} or set(range(1, args.iterations + 1))
    curve = [
        [it, round(seconds, 1), global_accuracy(net, X_val, y_val, comm)]
        for it, seconds in timed_steps(net, X, y, args.iterations, comm)
        if it in due or it == args.iterations
    ]
    net.refit()
    record = {
        "name": args.name,
        "transform": args.transform,
        "floor": args.floor,
        "preset": args.preset,
        "overrides": overrides,
        "curve": curve,
        "after_refit": global_accuracy(net, X_val, y_val, comm),
        "train_after_refit": global_accuracy(net, X, y, comm),
    }
    if comm.rank == 0:
        emit(json.dumps(record), args.out)


if __name__ == "__main__":
    main()
