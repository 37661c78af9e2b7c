"""Time per iteration against the matrix-multiply floor and plain NumPy, interleaved.

On a shared machine a GEMM rate measured minutes before an iteration says
little about the iteration's conditions. This script alternates, round by
round: one float64 iteration of ``ADMMNetwork`` between two GEMM rate
measurements in float64, the same in float32, and (unless
``--no-reference``) one iteration of the plain NumPy
``tests/reference_admm.ReferenceADMM``. An iteration of ours is
``ADMMNetwork.step()``. Each iteration is divided by the floor of its own
round (the flop model of ``bench/flop_model.py`` over the GEMM
rate measured around it, same precision, same BLAS), and the table reports
medians over the rounds of these ratios and of the times (the GEMM rate of
a round is the mean of the rates before and after, each the median of 3
products). The load average before and after is printed: read ratios, not
seconds, when it exceeds the core count. With one BLAS thread,
``--cpu-time`` times everything in process CPU time, which waiting for a
core does not inflate. The entry-wise kernels run on as many threads as the
BLAS (``admm.set_num_threads``), unless ``--entrywise-threads`` says
otherwise (``--entrywise-threads 1``: all on the calling thread, as before
they were threaded). Idle OpenBLAS threads sleep after a short spin, as in
``python -m admm.train`` (``OPENBLAS_THREAD_TIMEOUT``, unless set).

    OPENBLAS_NUM_THREADS=2 python -m bench.scripts.compare_iteration --threads 2 --rounds 5
    OPENBLAS_NUM_THREADS=1 python -m bench.scripts.compare_iteration --threads 1 --cpu-time

Prints a Markdown table. Local (no MPI).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# As python -m admm.train does, before NumPy loads the BLAS: idle BLAS threads
# sleep soon instead of spinning on the cores of the entry-wise kernels.
from admm import short_blas_spin

short_blas_spin()

import admm  # noqa: E402
import numpy as np  # noqa: E402
from admm import ADMMNetwork  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bench.common import (  # noqa: E402
    M_TRAIN,
    MNIST_LAYERS,
    PARAMS,
    gemm_rate,
    mnist_like,
    reference_after_one_step,
)
from bench.flop_model import iteration_flops  # noqa: E402

#: The clock of every measurement: wall time, or with ``--cpu-time`` the CPU
#: time of the process (meaningful with one BLAS thread on a loaded machine:
#: time spent waiting for a core is not counted).
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(step, clock=time.perf_counter) -> float:
    t = clock()
    step()
    return clock() - t


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=M_TRAIN, help=f"samples (default {M_TRAIN})")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument(
        "--entrywise-threads",
        type=int,
        default=None,
        help="threads of the entry-wise kernels (default: --threads)",
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the NumPy reference")
    parser.add_argument(
        "--cpu-time", action="store_true", help="time in process CPU time (use with --threads 1)"
    )
    args = parser.parse_args(argv)
    layers = MNIST_LAYERS
    flops = iteration_flops(layers, args.m)
    clock = CLOCK["cpu" if args.cpu_time else "wall"]
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    entrywise = args.entrywise_threads or args.threads
    admm.set_num_threads(entrywise)
    with threadpool_limits(args.threads):
        X, y, source = mnist_like(args.m)
        nets = {"float32": ADMMNetwork(layers, dtype="float32", **PARAMS)}
        nets["float32"].fit(X.astype(np.float32), y, iterations=1)
        rho = nets["float32"].rho_
        nets["float64"] = ADMMNetwork(layers, dtype="float64", rho=rho, **PARAMS)
        start = nets["float64"].weights
        nets["float64"].fit(X, y, iterations=1)
        inputs = {dt: np.ascontiguousarray(X, dtype=dt) for dt in nets}
        gemm_w = {dt: np.array(start[0], dtype=dt) for dt in nets}
        gemm_out = {dt: np.empty((args.m, layers[1]), dtype=dt) for dt in nets}
        reference = None
        if not args.no_reference:
            reference = reference_after_one_step(X, y, layers, start, rho)
        rows: dict[str, list[float]] = {}
        for r in range(args.rounds):
            for dt, net in nets.items():
                before = gemm_rate(inputs[dt], gemm_w[dt], gemm_out[dt], clock)
                t = timed(net.step, clock)
                rate = (before + gemm_rate(inputs[dt], gemm_w[dt], gemm_out[dt], clock)) / 2
                rows.setdefault(f"gemm {dt}", []).append(rate)
                rows.setdefault(f"ours {dt}", []).append(t)
                rows.setdefault(f"ratio {dt}", []).append(t / (flops / rate / 1e9))
            if reference is not None:
                t = timed(reference.step, clock)
                rows.setdefault("reference", []).append(t)
                for dt in nets:
                    rows.setdefault(f"ref/ours {dt}", []).append(t / rows[f"ours {dt}"][-1])
            print(
                f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3g}" for k, v in rows.items()),
                file=sys.stderr,
            )
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(
        f"{'-'.join(map(str, layers))}, m = {args.m} ({source}), {args.threads} BLAS thread(s), "
        f"{entrywise} entry-wise thread(s), "
        f"{args.rounds} rounds, medians of {'CPU' if args.cpu_time else 'wall'} time; "
        f"flop model {flops:.3g}\n"
    )
    print(
        "| dtype | ours s | GEMM GFLOP/s | floor s | ours / floor | NumPy reference s "
        "| reference / ours |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for dt in ("float64", "float32"):
        ref = (
            f"{med['reference']:.2f} | {med[f'ref/ours {dt}']:.2f}"
            if reference is not None
            else "- | -"
        )
        print(
            f"| {dt} | {med[f'ours {dt}']:.2f} | {med[f'gemm {dt}']:.0f} | "
            f"{flops / med[f'gemm {dt}'] / 1e9:.2f} | {med[f'ratio {dt}']:.2f} | {ref} |"
        )
    print(f"\nfloat32 / float64 time: {med['ours float32'] / med['ours float64']:.2f}")


if __name__ == "__main__":
    main()
