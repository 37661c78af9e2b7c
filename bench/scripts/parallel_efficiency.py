"""Parallel efficiency on one machine: N = 1 rank with T BLAS threads against
N = T ranks with one thread each, full MNIST, interleaved round by round.

Runs ``mpiexec -n N python -m admm.train --data mnist`` through the rank
probe of ``bench.scripts.talk_tables`` (an ``admm.PhaseTimer`` on every
rank: process CPU time of the iterations minus that of the Allreduce), for
each dtype of ``--dtypes`` and each layout, ``--rounds`` times in the order
(N=1 f64, N=T f64, N=1 f32, N=T f32), and prints per layout the median over
rounds of the wall time per iteration (median of iterations 2..), the CPU
time per iteration (mean of all iterations; N = 1: the process, all its
BLAS threads; N = T: the slowest rank's compute, Allreduce excluded), the
ratio N=T / N=1 of each round, and the speed-up against the published C
code's seconds per iteration of issue 4 (20.4 s at N = 1, 13.5 s at N = 2,
float64). Before and after every run the parent process measures the
matrix-multiply floor of the machine in that dtype: the flop model of
``bench/flop_model.py`` over the rate of the iteration's ``W_1 a_0``
product, ``(60000 x 784)(784 x 500)``, on T BLAS threads (``bench.common.floor_seconds``, median of 7 products, a few
seconds like the iterations timed), and every layout's wall time is also
given as a multiple of the mean of those two floors. The load average is
printed before and after: on a shared machine read the CPU-time columns.

    python -m bench.scripts.parallel_efficiency --data-dir /work/shared/data/mnist --rounds 2
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
from pathlib import Path

from threadpoolctl import threadpool_limits

from bench.common import floor_operands, floor_seconds
from bench.scripts.talk_tables import probe_run

#: Issue 4: the public C/GSL/MPI code, 784-500-500-10, float64, seconds per
#: iteration on this kind of machine (N = 1 with two BLAS threads).
C_CODE_S = {1: 20.4, 2: 13.5}


def run(n_ranks: int, threads: int, dtype: str, args: argparse.Namespace, work: Path) -> dict:
    """One run of N ranks x T threads: median wall s / iteration (iterations 2..) and
    the slowest rank's compute CPU s / iteration (mean of all, Allreduce excluded)."""
    res = probe_run(
        n_ranks,
        dtype,
        args.iterations,
        work,
        threads=threads,
        data=args.data,
        data_dir=args.data_dir,
    )
    wall = res["time_per_iteration"][1:]
    return {"wall": statistics.median(wall), "cpu": max(res["compute"])}


#: The floor's operands, made once per dtype (47M random numbers each).
operands = functools.cache(floor_operands)


def floor_now(dtype: str, threads: int) -> float:
    """The iteration's floor on ``threads`` threads, now (median of 7 products)."""
    with threadpool_limits(threads):
        return floor_seconds(operands(dtype), repeats=7)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default="mnist", help="the program's --data (mnist-sample: a quick check)"
    )
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files")
    parser.add_argument("--threads", type=int, default=2, help="T (default 2)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=4, help="per run (default 4)")
    parser.add_argument("--dtypes", default="float64,float32")
    args = parser.parse_args(argv)
    dtypes = args.dtypes.split(",")
    T = args.threads
    layouts = ((1, T), (T, 1))
    results: dict = {(d, n): [] for d in dtypes for n, _ in layouts}
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for d in dtypes:
                for n, t in layouts:
                    before = floor_now(d, T)
                    res = run(n, t, d, args, Path(tmp))
                    res["floor"] = floor = (before + floor_now(d, T)) / 2
                    results[(d, n)].append(res)
                    print(f"round {r + 1}: {d} N={n} x {t} threads: wall {res['wall']:.2f} s, "
                          f"cpu {res['cpu']:.2f} s, floor {floor:.2f} s, "
                          f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)  # fmt: skip
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    print(f"784-500-500-10, --data {args.data}, {args.rounds} rounds x {args.iterations} iterations; "
          "medians (iterations 2.. of each run, then over rounds)\n")  # fmt: skip
    print("| dtype | layout | wall s / iter | CPU s / iter | floor s | wall / floor (per round) "
          "| N=T / N=1 wall (per round) | C code / ours (wall) |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for d in dtypes:
        one = results[(d, 1)]
        for n, t in layouts:
            rows = results[(d, n)]
            wall = statistics.median(x["wall"] for x in rows)
            cpu = statistics.median(x["cpu"] for x in rows)
            floor = statistics.median(x["floor"] for x in rows)
            to_floor = [x["wall"] / x["floor"] for x in rows]
            ratios = [x["wall"] / o["wall"] for x, o in zip(rows, one, strict=True)]
            ratio = (f"{statistics.median(ratios):.2f} ({', '.join(f'{v:.2f}' for v in ratios)})"
                     if n > 1 else "")  # fmt: skip
            c = C_CODE_S.get(n)
            speed = f"{c / wall:.1f}" if c else ""
            print(f"| {d} | N={n} x {t} thread(s) | {wall:.2f} | {cpu:.2f} | {floor:.2f} | "
                  f"{statistics.median(to_floor):.2f} ({', '.join(f'{v:.2f}' for v in to_floor)}) "
                  f"| {ratio} | {speed} |")  # fmt: skip


if __name__ == "__main__":
    main()
