"""Rates of the entry-wise kernels at the iteration's sizes, optionally of two builds.

Times ``hidden_z_update`` (hard sigmoid and ReLU), ``apply_activation`` and
``output_hinge_update`` on 60,000 x 500 (60,000 x 10 for the output)
arrays in float64 and float32 and prints the median CPU time of the calling
thread (``time.thread_time``: the kernels run on one thread, and CPU time is
far less disturbed by other jobs than wall time) and the GB/s it implies
(bytes that must cross memory at least once: z-update read z and a and
write z; the activation reads z and writes out; the hinge update reads z,
lam, labels and writes z, lam).

``--kernels DIR`` loads ``admm_core`` from ``DIR`` instead (a directory
holding another build's ``admm_core/``), to compare builds side by side in
one run, alternating between them round by round::

    python -m bench.scripts.entrywise_rates --kernels /tmp/old_build_pkg --rounds 7

Local; the arrays are synthetic (z-update inputs spread over every
candidate's region).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from bench.common import M_TRAIN, MNIST_LAYERS


def load_kernels(directory: str | None) -> ModuleType:
    """The kernels of the installed ``admm_core``, or of the build in ``directory/admm_core``.

    Another build is loaded from its compiled ``_kernels`` file (a detail of
    the build: there is no public way to import a second copy of a package).
    """
    if directory is None:
        import admm_core

        return admm_core
    files = sorted(Path(directory, "admm_core").glob("_kernels.*.so"))
    if not files:
        raise ValueError(f"no admm_core/_kernels.*.so under {directory}")
    # A distinct parent name, so both builds can live in one process.
    spec = importlib.util.spec_from_file_location("admm_core_other._kernels", files[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cases(rng: np.random.Generator, dtype: str):
    """(name, bytes, setup, run) of every timed kernel call in ``dtype``."""
    m, n, k = M_TRAIN, MNIST_LAYERS[2], MNIST_LAYERS[3]
    a = np.clip(rng.normal(0.5, 0.6, (m, n)), 0, 1).astype(dtype)
    z0 = rng.normal(0.3, 1.5, (m, n)).astype(dtype)
    z = np.empty_like(z0)
    out = np.empty_like(z0)
    zo0 = rng.normal(0, 1, (m, k)).astype(dtype)
    lam0 = rng.normal(0, 0.1, (m, k)).astype(dtype)
    zo, lam = np.empty_like(zo0), np.empty_like(lam0)
    labels = rng.integers(0, k, m)
    item = np.dtype(dtype).itemsize

    def restore_z():
        np.copyto(z, z0)

    def restore_out():
        np.copyto(zo, zo0)
        np.copyto(lam, lam0)

    def none():
        pass

    return [
        ("hidden_z_update hardsigmoid", 3 * z.size * item, restore_z,
         lambda K: K.hidden_z_update(z, a, 20.0, 0.2, "hardsigmoid")),
        ("hidden_z_update relu", 3 * z.size * item, restore_z,
         lambda K: K.hidden_z_update(z, a, 20.0, 0.2, "relu")),
        ("apply_activation hardsigmoid", 2 * z.size * item, none,
         lambda K: K.apply_activation(z0, out, 20.0, "hardsigmoid")),
        ("output_hinge_update", 4 * zo.size * item + 8 * m, restore_out,
         lambda K: K.output_hinge_update(zo, lam, labels, 0.2, True)),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernels", help="directory holding another build's admm_core/")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    args = parser.parse_args(argv)
    builds = {"this": load_kernels(None)}
    if args.kernels:
        builds["other"] = load_kernels(args.kernels)
    rng = np.random.default_rng(0)
    print("| kernel | dtype | " + " | ".join(f"{b} ms (GB/s)" for b in builds) + " |")
    print("| --- | --- |" + " ---: |" * len(builds))
    for dtype in ("float64", "float32"):
        for name, nbytes, setup, run in cases(rng, dtype):
            times: dict[str, list[float]] = {b: [] for b in builds}
            for _ in range(args.rounds):
                for b, module in builds.items():
                    setup()
                    t = time.thread_time()
                    run(module)
                    times[b].append(time.thread_time() - t)
            cells = []
            for b in builds:
                med = statistics.median(times[b])
                cells.append(f"{med * 1e3:.1f} ({nbytes / med / 1e9:.1f})")
            print(f"| {name} | {dtype} | " + " | ".join(cells) + " |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
