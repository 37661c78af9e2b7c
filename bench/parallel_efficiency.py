"""Parallel efficiency on one machine: N = 1 rank with T BLAS threads against
N = T ranks with one thread each, full MNIST, interleaved round by round.

Runs ``mpiexec -n N python -m admm.train --data mnist`` through the rank
probe of ``talk_tables.py`` (every rank times ``ADMMNetwork._iterate`` in
wall and process CPU time, and the CPU time spent in the Allreduce), for
each dtype of ``--dtypes`` and each layout, ``--rounds`` times in the order
(N=1 f64, N=T f64, N=1 f32, N=T f32), and prints per layout the median over
rounds of the wall time per iteration (median of iterations 2..), the CPU
time per iteration (N = 1: the process, all its BLAS threads; N = T: the
slowest rank's compute, Allreduce excluded), the ratio N=T / N=1 of each
round, and the speed-up against the published C code's seconds per
iteration of issue 4 (20.4 s at N = 1, 13.5 s at N = 2, float64). Before
and after every run the parent process measures the matrix-multiply floor
of the machine in that dtype: the flop model of ``flop_model.py`` over the
rate of the iteration's ``W_1 a_0`` product, ``(60000 x 784)(784 x 500)``, on
T BLAS threads (``compare_iteration.gemm_rate``, median of 7 products, a few
seconds like the iterations timed), and every layout's wall time is also
given as a multiple of the mean of those two floors. The load average is
printed before and after: on a shared machine read the CPU-time columns.

    python bench/parallel_efficiency.py --data-dir /work/shared/data/mnist --rounds 2
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from compare_iteration import gemm_rate  # noqa: E402
from flop_model import iteration_flops  # noqa: E402

LAYERS = (784, 500, 500, 10)
SAMPLES = 60_000
#: Issue 4: the public C/GSL/MPI code, 784-500-500-10, float64, seconds per
#: iteration on this kind of machine (N = 1 with two BLAS threads).
C_CODE_S = {1: 20.4, 2: 13.5}


def run(n_ranks: int, threads: int, dtype: str, args: argparse.Namespace, work: Path) -> dict:
    tag = f"{n_ranks}_{threads}_{dtype}"
    metrics, prefix = work / f"metrics_{tag}.jsonl", work / f"probe_{tag}"
    train_args = ["--data", "mnist", "--iterations", str(args.iterations),
                  "--eval-every", str(10 * args.iterations), "--dtype", dtype,
                  "--metrics", str(metrics)]  # fmt: skip
    if args.data_dir:
        train_args += ["--data-dir", args.data_dir]
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    cmd = [mpiexec, "-n", str(n_ranks), sys.executable, str(HERE / "talk_tables.py"),
           "--rank-probe", str(prefix), "--", *train_args]  # fmt: skip
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    subprocess.run(cmd, env=env, check=True, timeout=900, stdout=subprocess.DEVNULL)
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    cumulative = [0.0] + [r["time_s"] for r in lines if "event" not in r]
    wall = [b - a for a, b in itertools.pairwise(cumulative)][1:]
    probes = [json.loads(Path(f"{prefix}.{r}.json").read_text()) for r in range(n_ranks)]
    compute = [
        max(p["cpu"][i] - p["comm_cpu"][i] for p in probes) for i in range(1, len(wall) + 1)
    ]
    return {"wall": statistics.median(wall), "cpu": statistics.median(compute)}


@functools.cache
def gemm_operands(dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a_0``, ``W_1`` and the output of the floor's product, made once per dtype."""
    rng = np.random.default_rng(0)
    x = rng.random((SAMPLES, LAYERS[0]), dtype=np.float32).astype(dtype)
    w = rng.random((LAYERS[1], LAYERS[0]), dtype=np.float32).astype(dtype)
    return x, w, np.empty((SAMPLES, LAYERS[1]), dtype=dtype)


def floor_seconds(dtype: str, threads: int) -> float:
    """The iteration's flops over the GEMM rate of ``W_1 a_0`` on ``threads`` threads, now."""
    with threadpool_limits(threads):
        rate = gemm_rate(*gemm_operands(dtype), repeats=7)
    return iteration_flops(LAYERS, SAMPLES) / rate / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
                    before = floor_seconds(d, T)
                    res = run(n, t, d, args, Path(tmp))
                    res["floor"] = floor = (before + floor_seconds(d, T)) / 2
                    results[(d, n)].append(res)
                    print(f"round {r + 1}: {d} N={n} x {t} threads: wall {res['wall']:.2f} s, "
                          f"cpu {res['cpu']:.2f} s, floor {floor:.2f} s, "
                          f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)  # fmt: skip
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    print(f"784-500-500-10, MNIST 60,000, {args.rounds} rounds x {args.iterations} iterations; "
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
