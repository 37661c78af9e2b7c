"""Nanoseconds per entry of the issue-15 kernels against hardsigmoid's z-update.

Times every hidden z-update (hardsigmoid and relu for reference, leaky_relu,
step, sign, sigmoid, tanh) on ``--rows`` x 500 arrays (default 2,000: one
million entries; sigmoid costs about a microsecond per entry) and the output
updates (one-vs-rest hinge, binary hinge, logistic, cross-entropy) on
60,000 x 10 (60,000 x 1 for the binary ones), in float64 and float32. The
calls alternate round by round and the median CPU time of the calling thread
(``time.thread_time``: the kernels run on one thread) is printed per entry
(per sample and per entry for cross-entropy), with the ratio to hardsigmoid
of the same round set::

    python -m bench.scripts.model_rates --rounds 5

Inputs as in ``test_bench_kernels.py``: m over [-1.5, 2.5], a over
[-0.2, 1.2], gamma = 20, beta = 0.2 (the talk's values, where sigmoid is
not convex).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from admm_core import (
    hidden_z_update,
    hidden_z_update_smooth,
    output_cross_entropy_update,
    output_hinge_update,
    output_logistic_update,
)

GAMMA, BETA = 20.0, 0.2


def cases(rows: int, dtype: str):
    """(name, entries, setup, run) of every timed call in ``dtype``."""
    rng = np.random.default_rng(1)
    m = rng.uniform(-1.5, 2.5, (rows, 500)).astype(dtype)
    a = rng.uniform(-0.2, 1.2, (rows, 500)).astype(dtype)
    z = np.empty_like(m)
    mo = rng.uniform(-3.0, 3.0, (60_000, 10)).astype(dtype)
    lo = rng.normal(0.0, 0.5, (60_000, 10)).astype(dtype)
    labels = rng.integers(0, 10, 60_000)
    bits = labels % 2
    zo, lam = np.empty_like(mo), np.empty_like(lo)
    zb, lamb = np.empty((60_000, 1), dtype), np.empty((60_000, 1), dtype)

    def restore_z():
        z[...] = m

    def restore_out():
        zo[...] = mo
        lam[...] = lo

    def restore_bin():
        zb[...] = mo[:, :1]
        lamb[...] = lo[:, :1]

    out = []
    for act, slope in [("hardsigmoid", 0), ("relu", 0), ("leaky_relu", 0.01), ("step", 0)]:
        out.append(
            (
                act,
                z.size,
                restore_z,
                lambda act=act, s=slope: hidden_z_update(z, a, GAMMA, BETA, act, s),
            )
        )
    out.append(("sign", z.size, restore_z, lambda: hidden_z_update(z, a, GAMMA, BETA, "sign")))
    for act in ("sigmoid", "tanh"):
        out.append(
            (
                act,
                z.size,
                restore_z,
                lambda act=act: hidden_z_update_smooth(z, a, GAMMA, BETA, act),
            )
        )
    out += [
        ("hinge", zo.size, restore_out, lambda: output_hinge_update(zo, lam, labels, BETA, True)),
        (
            "binary hinge",
            zb.size,
            restore_bin,
            lambda: output_hinge_update(zb, lamb, bits, BETA, True, binary=True),
        ),
        (
            "logistic",
            zb.size,
            restore_bin,
            lambda: output_logistic_update(zb, lamb, bits, BETA, True),
        ),
        (
            "cross_entropy",
            zo.size,
            restore_out,
            lambda: output_cross_entropy_update(zo, lam, labels, BETA, True),
        ),
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2_000)
    args = parser.parse_args()
    for dtype in ("float64", "float32"):
        table = cases(args.rows, dtype)
        times: dict[str, list[float]] = {name: [] for name, *_ in table}
        for _ in range(args.rounds):
            for name, _, setup, run in table:
                setup()
                t0 = time.thread_time()
                run()
                times[name].append(time.thread_time() - t0)
        ref = statistics.median(times["hardsigmoid"]) / table[0][1]
        print(f"{dtype}: median of {args.rounds} rounds, ns per entry (x hardsigmoid)")
        for name, entries, *_ in table:
            per = statistics.median(times[name]) / entries
            print(f"  {name:14s} {per * 1e9:9.1f} ns  {per / ref:8.1f}x")


if __name__ == "__main__":
    main()
