"""BLAS rates of the iteration's long-K products against the floor's GEMM shape.

The floor of docs/performance.md divides the iteration's flops by the rate of
``(m x 784)(784 x 500)``. The sums over samples (the cross terms ``z^T a``
and the Grams ``a^T a``) are products whose inner dimension is ``m``; this
script measures how fast the BLAS runs them, and whether a different memory
layout or splitting the samples into chunks (accumulated with ``beta = 1``)
helps. Best of ``--reps`` wall times per case, after one warm-up call::

    OPENBLAS_NUM_THREADS=2 python -m bench.scripts.product_shapes --dtype float32

Local; synthetic data; prints a Markdown table (GFLOP/s; a Gram's rate counts
the ``n^2 m`` flops of a symmetric rank-k update, also when it is done by a
full GEMM).

With ``--halves`` (and two BLAS threads) three more cases split the samples
the other way: two Python threads, each calling the BLAS on one thread for
half of the samples at the same time (the two partial sums added after), as
two MPI ranks would. They tell whether a long-K product's rate on two cores
is OpenBLAS's way of threading it or the machine's::

    OPENBLAS_NUM_THREADS=2 python -m bench.scripts.product_shapes --dtype float32 --halves
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from admm_core import cross, gram, matmul
from bench.common import M_TRAIN as M


def best_time(call: Callable[[], object], reps: int) -> float:
    """The shortest of ``reps`` wall times of ``call()``, after one warm-up call."""
    call()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def chunked_cross(z: np.ndarray, a: np.ndarray, out: np.ndarray, rows: int) -> Callable:
    """``out = z^T a`` as a sum over blocks of ``rows`` samples."""

    def call() -> None:
        for start in range(0, z.shape[0], rows):
            block = slice(start, start + rows)
            cross(z[block], a[block], out, beta=0.0 if start == 0 else 1.0)

    return call


def halves(first: Callable[[], object], second: Callable[[], object]) -> Callable:
    """Run ``first`` here and ``second`` on another thread, the BLAS on one thread each."""
    pool = ThreadPoolExecutor(1)

    def call() -> None:
        with threadpool_limits(1):
            other = pool.submit(second)
            first()
            other.result()

    return call


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float32")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument(
        "--halves", action="store_true", help="also two one-thread calls on half the samples each"
    )
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    x = rng.random((M, 784)).astype(dtype)
    z = rng.standard_normal((M, 500)).astype(dtype)
    a = rng.random((M, 500)).astype(dtype)
    w = rng.standard_normal((500, 784)).astype(dtype)
    x_t, z_t = np.ascontiguousarray(x.T), np.ascontiguousarray(z.T)
    products = np.empty((M, 500), dtype)
    c = np.empty((500, 784), dtype)
    g = np.empty((500, 500), dtype)
    cross_flops = 2.0 * M * 784 * 500
    gram_flops = float(M) * 500 * 500
    cases = [
        ("floor shape: x W^T, (m x 784)(784 x 500)", cross_flops,
         lambda: matmul(x, w, products, transpose_b=True)),
        ("cross z^T x as stored (samples in rows), one call", cross_flops,
         lambda: cross(z, x, c)),
        ("cross z^T x, 4 blocks of 15,000 samples", cross_flops, chunked_cross(z, x, c, 15_000)),
        ("cross z^T x, 15 blocks of 4,000 samples", cross_flops, chunked_cross(z, x, c, 4_000)),
        ("cross with z stored transposed", cross_flops, lambda: matmul(z_t, x, c)),
        ("cross with x stored transposed", cross_flops,
         lambda: matmul(z, x_t, c, transpose_a=True, transpose_b=True)),
        ("Gram a^T a (500) by syrk, as the library does", gram_flops, lambda: gram(a, g)),
        ("Gram a^T a (500) by a full gemm", gram_flops,
         lambda: matmul(a, a, g, transpose_a=True)),
    ]  # fmt: skip
    if args.halves:
        h = M // 2
        c2, g2 = np.empty_like(c), np.empty_like(g)

        def summed(first, second, out, part):
            call = halves(first, second)
            return lambda: (call(), np.add(out, part, out=out))

        cases += [
            ("floor shape, two one-thread halves side by side", cross_flops,
             halves(lambda: matmul(x[:h], w, products[:h], transpose_b=True),
                    lambda: matmul(x[h:], w, products[h:], transpose_b=True))),
            ("cross z^T x, two one-thread halves side by side", cross_flops,
             summed(lambda: cross(z[:h], x[:h], c), lambda: cross(z[h:], x[h:], c2), c, c2)),
            ("Gram by syrk, two one-thread halves side by side", gram_flops,
             summed(lambda: gram(a[:h], g), lambda: gram(a[h:], g2), g, g2)),
        ]  # fmt: skip
    print(f"{args.dtype}, m = {M}, best of {args.reps}")
    print()
    print("| product | ms | GFLOP/s | / floor rate |")
    print("| --- | ---: | ---: | ---: |")
    floor_rate = None
    for name, flops, call in cases:
        seconds = best_time(call, args.reps)
        rate = flops / seconds / 1e9
        floor_rate = floor_rate or rate
        print(f"| {name} | {seconds * 1e3:.0f} | {rate:.0f} | {rate / floor_rate:.2f} |")


if __name__ == "__main__":
    main()
