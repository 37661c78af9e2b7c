"""Time one ADMM iteration with and without ``deterministic``, interleaved.

Usage: mpiexec -n N python determinism_cost.py [DTYPE] [ROUNDS] [BLOCK_SIZE] [DATA]

Not a test (it takes minutes): the measurement behind ``docs/determinism.md``.
Two networks (784-500-500-10, same seed) train on this rank's block-aligned
share of DATA (default ``mnist``, all 60,000 training images); after one
untimed iteration each, they take turns for ROUNDS iterations each, so both
see the same machine load. Rank 0 prints the best and median seconds per
iteration of each and the relative cost of ``deterministic=True``.
"""

from __future__ import annotations

import statistics
import sys

from admm import ADMMNetwork
from admm.data import load_dataset
from mpi4py import MPI


def main() -> None:
    dtype = sys.argv[1] if len(sys.argv) > 1 else "float64"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    block = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    data = sys.argv[4] if len(sys.argv) > 4 else "mnist"
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    ds = load_dataset(data, rank=rank, size=size, dtype=dtype, download=False, block=block)
    nets = {
        flag: ADMMNetwork(
            (784, 500, 500, 10), dtype=dtype, deterministic=flag, block_size=block, comm=world
        )
        for flag in (False, True)
    }
    times: dict[bool, list[float]] = {False: [], True: []}
    for step in range(rounds + 1):
        for flag, net in nets.items():
            net.fit(ds.X_train, ds.y_train, iterations=step + 1, warm_start=step > 0)
            if step > 0:  # the first iteration also factors the input Gram
                h = net.history
                times[flag].append(h[-1]["time_s"] - h[-2]["time_s"])
    if rank == 0:
        print(f"{size} rank(s), {dtype}, {ds.n_train} samples, block_size {block}")
        for flag in (False, True):
            t = times[flag]
            print(
                f"deterministic={flag}: best {min(t):.3f} s, median {statistics.median(t):.3f} s "
                f"per iteration ({', '.join(f'{x:.3f}' for x in t)})"
            )
        best = min(times[True]) / min(times[False]) - 1
        med = statistics.median(times[True]) / statistics.median(times[False]) - 1
        print(f"cost of deterministic: {100 * best:+.1f}% (best), {100 * med:+.1f}% (median)")


if __name__ == "__main__":
    main()
