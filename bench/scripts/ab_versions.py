"""Two installed versions of admm side by side: time per iteration and peak memory, interleaved.

For a refactor that must change no speed or memory: give the Python
interpreters of two environments (say one with the code before the change
installed, one with the code after) and this script runs one iteration
probe in each, alternately, round after round, so both see the same load
on a shared machine. Each probe is a fresh process (one BLAS thread, one
entry-wise thread) that loads real MNIST (or the embedded sample),
trains 784-500-500-10 for one iteration, then times ``--iterations`` more,
one ``fit(..., warm_start=True)`` call each (API both versions have), and
reports the median wall and CPU seconds per iteration and its peak
resident memory. The table gives the medians and the per-round ratios
B / A::

    python -m bench.scripts.ab_versions --a /path/to/old/venv/bin/python \\
        --b /path/to/new/venv/bin/python --rounds 3 --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from bench.common import MNIST_LAYERS

PROBE = """
import json, resource, statistics, sys, time
import numpy as np
import admm
from admm.data import load_dataset

dtype, iterations, data, data_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
d = load_dataset(data, data_dir or None, dtype=dtype, download=False)
net = admm.ADMMNetwork({layers}, dtype=dtype, warmup=0)
net.fit(d.X_train, d.y_train, iterations=1)
wall, cpu = [], []
for i in range(iterations):
    w0, c0 = time.perf_counter(), time.process_time()
    net.fit(d.X_train, d.y_train, iterations=net.n_iter_ + 1, warm_start=True)
    wall.append(time.perf_counter() - w0)
    cpu.append(time.process_time() - c0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"wall": statistics.median(wall), "cpu": statistics.median(cpu),
                  "peak_mb": peak / 2**20, "m": d.X_train.shape[0],
                  "objective": net.history[-1]["objective"]}}))
"""


def probe(python: str, dtype: str, args: argparse.Namespace) -> dict:
    """One fresh process of ``python`` timing ``args.iterations`` iterations."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "ADMM_NUM_THREADS": "1"}
    env["OPENBLAS_THREAD_TIMEOUT"] = "20"
    code = PROBE.format(layers=tuple(MNIST_LAYERS))
    out = subprocess.run(
        [python, "-c", code, dtype, str(args.iterations), args.data, args.data_dir or ""],
        env=env,
        cwd="/",  # import the installed version, not a source tree
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="Python of version A (before)")
    p.add_argument("--b", default=sys.executable, help="Python of version B (after)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=3, help="timed iterations per probe")
    p.add_argument("--data", default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dtypes", default="float64,float32")
    args = p.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    rows = {}
    for dtype in args.dtypes.split(","):
        runs: dict[str, list[dict]] = {"A": [], "B": []}
        for r in range(args.rounds):
            for name, python in (("A", args.a), ("B", args.b)):
                runs[name].append(probe(python, dtype, args))
            a, b = runs["A"][-1], runs["B"][-1]
            print(
                f"{dtype} round {r + 1}: A wall {a['wall']:.3f} cpu {a['cpu']:.3f} "
                f"peak {a['peak_mb']:.1f} MB | B wall {b['wall']:.3f} cpu {b['cpu']:.3f} "
                f"peak {b['peak_mb']:.1f} MB | objective equal: {a['objective'] == b['objective']}",
                flush=True,
            )
        rows[dtype] = runs
    print(f"load average after: {os.getloadavg()}")
    m = rows[next(iter(rows))]["A"][0]["m"]
    print(
        f"\n784-500-500-10, m = {m}, one BLAS and one entry-wise thread per probe, "
        f"{args.rounds} rounds of {args.iterations} iterations, medians\n"
    )
    print(
        "| dtype | A wall s | B wall s | B/A wall | A cpu s | B cpu s | B/A cpu | "
        "A peak MB | B peak MB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for dtype, runs in rows.items():

        def med(name: str, key: str, runs: dict = runs) -> float:
            return statistics.median(x[key] for x in runs[name])

        def ratio(key: str, runs: dict = runs) -> float:
            return statistics.median(
                b[key] / a[key] for a, b in zip(runs["A"], runs["B"], strict=True)
            )

        print(
            f"| {dtype} | {med('A', 'wall'):.3f} | {med('B', 'wall'):.3f} | {ratio('wall'):.3f} "
            f"| {med('A', 'cpu'):.3f} | {med('B', 'cpu'):.3f} | {ratio('cpu'):.3f} "
            f"| {med('A', 'peak_mb'):.1f} | {med('B', 'peak_mb'):.1f} |"
        )


if __name__ == "__main__":
    main()
