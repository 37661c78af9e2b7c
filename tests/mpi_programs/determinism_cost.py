"""Time one ADMM iteration with and without ``deterministic``, interleaved.

Usage: mpiexec -n N python determinism_cost.py [DTYPE] [ROUNDS] [BLOCK_SIZE] [DATA]

Not a test (it takes minutes): the measurement behind ``docs/determinism.md``.
Two networks (784-500-500-10, same seed) train on this rank's block-aligned
share of DATA (default ``mnist``, all 60,000 training images); after one
untimed iteration each, they take turns for ROUNDS iterations each, so both
see the same machine load, and after each iteration the weight updates
(where the option changes the work) are timed again on their own. Rank 0
prints the best times and the cost of ``deterministic=True`` relative to an
iteration: best against best, and the extra weight-update time (the more
robust figure on a busy machine).
"""

from __future__ import annotations

import sys
import time

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
    iteration: dict[bool, list[float]] = {False: [], True: []}
    sums: dict[bool, list[float]] = {False: [], True: []}
    for step in range(rounds + 1):
        for flag, net in nets.items():
            net.fit(ds.X_train, ds.y_train, iterations=step + 1, warm_start=step > 0)
            if step == 0:  # the first iteration also factors the input Gram
                continue
            h = net.history
            iteration[flag].append(h[-1]["time_s"] - h[-2]["time_s"])
            # The weight updates alone (sums over samples, then the solves):
            # all the option changes apart from the objective terms.
            state = net._state
            assert state is not None
            world.Barrier()
            started = time.perf_counter()
            rho = net.ridges(net.n_iter_ - 1)  # the ridges of the last iteration
            for l in range(1, len(net.layers)):
                state.solve_weights(l, rho[l - 1])
            sums[flag].append(world.allreduce(time.perf_counter() - started, op=MPI.MAX))
    if rank == 0:
        print(f"{size} rank(s), {dtype}, {ds.n_train} samples, block_size {block}")
        for flag in (False, True):
            print(
                f"deterministic={flag}: iteration best {min(iteration[flag]):.3f} s "
                f"(all: {', '.join(f'{x:.2f}' for x in iteration[flag])}); weight updates "
                f"best {min(sums[flag]):.3f} s (all: {', '.join(f'{x:.2f}' for x in sums[flag])})"
            )
        whole = min(iteration[True]) / min(iteration[False]) - 1
        extra = (min(sums[True]) - min(sums[False])) / min(iteration[False])
        print(f"cost of deterministic, best iteration against best iteration: {100 * whole:+.1f}%")
        print(f"cost of deterministic, extra weight-update time / iteration: {100 * extra:+.1f}%")


if __name__ == "__main__":
    main()
