"""Where the time of one ADMM iteration goes, per kernel and caller.

cProfile cannot see inside the compiled kernels, so this script wraps each
kernel name that ``admm.network`` imported (and the Allreduce) in a timer and
attributes every call to the kernel and the function that made it. The
entry-wise kernels run in chunks on several threads (``admm._threads``):
they are timed around the whole threaded call, named by their kernel. Time
not spent in a wrapped call (NumPy conversions, copies, Python) is "other".
Idle OpenBLAS threads sleep after a short spin, as in ``python -m admm.train``
(``OPENBLAS_THREAD_TIMEOUT``, unless set).

    OPENBLAS_NUM_THREADS=2 python bench/profile_iteration.py --size 60000 --dtype float64

Local, one process; prints a Markdown table (seconds per iteration, share).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

# As python -m admm.train does, before NumPy loads the BLAS: idle BLAS threads
# sleep soon instead of spinning on the cores of the entry-wise kernels.
from admm._cores import short_blas_spin

short_blas_spin()

import admm.network as network  # noqa: E402
from admm import ADMMNetwork  # noqa: E402

# Run as a script, so bench/ (this folder) is first on sys.path; bench_data
# needs tests/ too (the NumPy reference).
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))
from bench_data import mnist_like  # noqa: E402

KERNELS = (
    "matmul",
    "cross",
    "gram",
    "cholesky_factor",
    "cholesky_inverse",
    "cholesky_solve",
)


def instrument(totals: dict) -> None:
    """Replace the kernels in ``admm.network`` by timed wrappers adding to ``totals``."""

    def wrap(name, fn):
        def timed(*args, **kwargs):
            caller = sys._getframe(1).f_code.co_name
            # rowwise(kernel, ...) is named by its kernel, timed over all chunks.
            label = args[0].__name__ if name is None else name
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[label, caller] += time.perf_counter() - start

        return timed

    for name in KERNELS:
        setattr(network, name, wrap(name, getattr(network, name)))
    network.rowwise = wrap(None, network.rowwise)
    comm = network.Communicator
    comm.sum_inplace = wrap("Allreduce (sum_inplace)", comm.sum_inplace)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=60_000, help="samples (default 60000)")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations")
    args = parser.parse_args(argv)

    X, y, source = mnist_like(args.size)
    net = ADMMNetwork((784, 500, 500, 10), dtype=args.dtype, warmup=0)
    net.fit(X.astype(args.dtype), y, iterations=1)
    totals: dict = defaultdict(float)
    instrument(totals)
    start = time.perf_counter()
    for t in range(1, 1 + args.iterations):
        net._iterate(t)
    total = (time.perf_counter() - start) / args.iterations

    print(f"{args.size} samples ({source}), {args.dtype}, {args.iterations} iterations")
    print(f"time per iteration: {total:.3f} s\n")
    print("| kernel | called from | s / iteration | share |")
    print("| --- | --- | ---: | ---: |")
    rows = sorted(totals.items(), key=lambda kv: -kv[1])
    for (name, caller), seconds in rows:
        per = seconds / args.iterations
        print(f"| {name} | {caller} | {per:.3f} | {per / total:.1%} |")
    other = total - sum(totals.values()) / args.iterations
    print(f"| other (copies, conversions, Python) | | {other:.3f} | {other / total:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
