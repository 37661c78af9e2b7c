"""Where the time of one ADMM iteration goes, per phase of the update.

Times ``--iterations`` calls of ``ADMMNetwork.step()`` inside an
``admm.PhaseTimer`` and prints, per phase, the wall and CPU seconds per
iteration and the share of the iteration's wall time: the weight updates
(1)/(4) with their products, reduction and solves; the activation updates
(2); the hidden z-updates (3); the output update (5) with the multiplier
(6); the reduction of the objective terms; and, nested inside those, the
sums over samples across ranks ("reduce": the Allreduce, a no-op copy on one
rank). Time of the iteration in none of the phases is "other".

Before issue 14 this script replaced the kernels that ``admm.network``
imported by timed wrappers and reported per kernel and caller (``matmul``
from the activation update, ...). The library now marks its phases itself,
so nothing is replaced, but the split is per phase of ADMM.md, not per BLAS
call: a phase's time includes its products, solves and entry-wise kernels
(run on ``admm.set_num_threads`` threads) together. For per-kernel rates
see ``bench.scripts.product_shapes`` and ``bench.scripts.entrywise_rates``.

Idle OpenBLAS threads sleep after a short spin, as in ``python -m
admm.train`` (``OPENBLAS_THREAD_TIMEOUT``, unless set).

    OPENBLAS_NUM_THREADS=2 python -m bench.scripts.profile_iteration --size 60000 --dtype float64

Local, one process; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time

# As python -m admm.train does, before NumPy loads the BLAS: idle BLAS threads
# sleep soon instead of spinning on the cores of the entry-wise kernels.
from admm import short_blas_spin

short_blas_spin()

import admm  # noqa: E402

from bench.common import M_TRAIN, MNIST_LAYERS, mnist_like  # noqa: E402

#: The phases that make up an iteration (not nested in one another), in order.
PHASES = ("weights", "activations", "hidden_z", "output", "objective")


def profile(net: admm.ADMMNetwork, iterations: int) -> admm.PhaseTimer:
    """A timer of ``iterations`` calls of ``net.step()``. Collective."""
    with admm.PhaseTimer() as timer:
        for _ in range(iterations):
            net.step()
    if timer.calls["iteration"] != iterations:
        raise RuntimeError(f"timed {timer.calls['iteration']} iterations, ran {iterations}")
    return timer


def table(timer: admm.PhaseTimer, iterations: int) -> str:
    """Markdown: seconds per iteration by phase, wall and CPU, and the share of the wall time."""
    total = timer.seconds["iteration"] / iterations
    rows = [
        "| phase | wall s / iteration | CPU s / iteration | share |",
        "| --- | ---: | ---: | ---: |",
    ]

    def row(name: str, wall: float, cpu: float) -> None:
        rows.append(f"| {name} | {wall:.3f} | {cpu:.3f} | {wall / total:.1%} |")

    for name in PHASES:
        row(name, timer.seconds[name] / iterations, timer.cpu_seconds[name] / iterations)
    row(
        "other (none of the above)",
        total - sum(timer.seconds[p] for p in PHASES) / iterations,
        (timer.cpu_seconds["iteration"] - sum(timer.cpu_seconds[p] for p in PHASES)) / iterations,
    )
    row("iteration", total, timer.cpu_seconds["iteration"] / iterations)
    row(
        "of which reduce (inside the phases)",
        timer.seconds["reduce"] / iterations,
        timer.cpu_seconds["reduce"] / iterations,
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=M_TRAIN, help=f"samples (default {M_TRAIN})")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations")
    args = parser.parse_args(argv)

    X, y, source = mnist_like(args.size)
    net = admm.ADMMNetwork(MNIST_LAYERS, dtype=args.dtype, warmup=0)
    # The first iteration touches its buffers for the first time: not timed.
    net.fit(X.astype(args.dtype), y, iterations=1)
    start = time.perf_counter()
    timer = profile(net, args.iterations)
    elapsed = (time.perf_counter() - start) / args.iterations

    print(f"{args.size} samples ({source}), {args.dtype}, {args.iterations} iterations")
    print(f"time per iteration: {elapsed:.3f} s\n")
    print(table(timer, args.iterations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
