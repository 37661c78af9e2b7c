"""The a_1 update's operator applied two ways, interleaved: solve vs explicit inverse.

For ``m`` samples of width ``n`` (60,000 x 500, the a_1 update of
784-500-500-10) and ``M = b W^T W + g I`` with a Glorot ``W`` (500 x 500),
alternates round by round: the GEMM of the same size (``2 m n^2`` flops,
for scale), the Cholesky factor of ``M`` plus ``cholesky_solve`` (two trsm,
what ``update_activation`` did before), and the factor plus
``cholesky_inverse`` plus one gemm into a second buffer (what it does now).
Process CPU time, medians over rounds; run with one BLAS thread:

    OPENBLAS_NUM_THREADS=1 python -m bench.scripts.activation_solve --rounds 5

Also prints the largest difference between the two results relative to the
largest entry. Local (no MPI).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from admm_core import (
    cholesky_factor,
    cholesky_inverse,
    cholesky_solve,
    glorot_uniform,
    gram,
    matmul,
)
from bench.common import M_TRAIN


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=M_TRAIN)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--beta", type=float, default=0.2)
    parser.add_argument("--gamma", type=float, default=20.0)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    rng = np.random.default_rng(0)
    w = np.empty((args.n, args.n))
    glorot_uniform(w, np.random.PCG64(0))
    clock = time.process_time
    rows = []
    for dtype in (np.float64, np.float32):
        rhs = rng.random((args.m, args.n)).astype(dtype)
        work = np.empty_like(rhs)
        out = np.empty_like(rhs)
        times: dict[str, list[float]] = {"gemm": [], "solve": [], "inverse": []}
        diff = 0.0
        for _ in range(args.rounds):
            t = clock()
            matmul(rhs, rhs[: args.n], out)
            times["gemm"].append(clock() - t)

            work[...] = rhs
            t = clock()
            f = np.empty((args.n, args.n))
            gram(w, f, alpha=args.beta)
            cholesky_factor(f, shift=args.gamma)
            cholesky_solve(f.astype(dtype, copy=False), work)
            times["solve"].append(clock() - t)

            t = clock()
            f = np.empty((args.n, args.n))
            gram(w, f, alpha=args.beta)
            cholesky_factor(f, shift=args.gamma)
            cholesky_inverse(f)
            matmul(rhs, f.astype(dtype, copy=False), out)
            times["inverse"].append(clock() - t)
            diff = max(diff, float(np.max(np.abs(out - work)) / np.max(np.abs(work))))
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        ratios = [s / i for s, i in zip(times["solve"], times["inverse"], strict=True)]
        rows.append(
            f"| {np.dtype(dtype).name} | {med['gemm']:.0f} | {med['solve']:.0f} | "
            f"{med['inverse']:.0f} | {statistics.median(ratios):.2f} | {diff:.1e} |"
        )
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    print(f"m = {args.m}, n = {args.n}, {args.rounds} rounds, medians of CPU time (ms)\n")
    print(
        "| dtype | gemm (scale) | factor + solve | factor + inverse + gemm | solve / inverse | max rel. diff |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    with threadpool_limits(limits=int(os.environ.get("OPENBLAS_NUM_THREADS", "1"))):
        main()
