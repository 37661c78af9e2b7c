"""Where the seconds of a preset's iterations go, by phase, under mpiexec (issue 16).

Trains ``admm.ADMMNetwork`` with ``--preset``'s arguments on all 60,000
MNIST training images (the seed-0 permutation, dealt over the ranks) and
times ``--iterations`` calls of ``step()`` inside an ``admm.PhaseTimer``:
prints, on rank 0, the slowest rank's seconds of every iteration and this
rank's seconds per phase. ``iteration`` holds the ADMM updates (weights,
hidden_z, activations, output, objective, and the reductions within them);
``refit`` and ``readout`` (its ``W_L`` with ``readout_iterations``), the
forward refit of ``refit_every``, run after it and are not part of it. From the repository root::

    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m bench.studies.speed.phases --preset fast
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import admm
from mpi4py import MPI

from bench.common import MNIST_LAYERS, SHARED_MNIST, mnist_validation_split


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=SHARED_MNIST, help="the MNIST IDX files")
    p.add_argument("--preset", default="fast", choices=sorted(admm.PRESETS))
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--train", type=int, default=60000)
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD
    options = admm.PRESETS[args.preset]
    X, y, _, _ = mnist_validation_split(
        args.data_dir, args.train, 0, comm.rank, comm.size, dtype=options.get("dtype", "float64")
    )
    net = admm.ADMMNetwork(MNIST_LAYERS, **options, comm=comm)
    net.fit(X, y, iterations=0)
    timer = admm.PhaseTimer()
    seconds, refits = [], []
    with timer:
        for it in range(1, args.iterations + 1):
            comm.Barrier()
            started = time.perf_counter()
            before = timer.calls["refit"] + timer.calls["readout"]
            net.step()
            seconds.append(comm.allreduce(time.perf_counter() - started, op=MPI.MAX))
            if timer.calls["refit"] + timer.calls["readout"] > before:
                refits.append(it)
    if comm.rank == 0:
        print("seconds per iteration:", " ".join(f"{s:.2f}" for s in seconds))
        print("refits after iterations:", " ".join(map(str, refits)) or "none")
        print(f"total {sum(seconds):.2f} s over {args.iterations} iterations (rank 0's phases):")
        for name, s in sorted(timer.seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {name:12s} {s:7.2f} s  in {timer.calls[name]} calls")


if __name__ == "__main__":
    main()
