"""Shared fixtures of the benchmark suites: problem size, BLAS threads, data.

Sizes (``ADMM_BENCH_SIZE``):

- ``small`` (default): 2,000 samples. Each benchmark file runs in seconds,
  so CI can run them once as tests with ``--benchmark-disable``.
- ``mnist``: the published problem, 60,000 samples of 784 pixels through
  784-500-500-10; real MNIST when ``../shared/data/mnist`` holds it, otherwise
  synthetic data of the same shape and pixel range.

BLAS threads (``ADMM_BENCH_THREADS``, default 1) are pinned for the whole
session with threadpoolctl, for every BLAS loaded (NumPy's and SciPy's
OpenBLAS are separate libraries in the wheels), so kernels and NumPy are
compared on the same number of cores; the network's entry-wise kernels get
as many threads (``admm.set_num_threads``). The kernel benchmarks call the
compiled kernels directly, on one thread. Idle OpenBLAS threads sleep after
a short spin, as in ``python -m admm.train`` (``OPENBLAS_THREAD_TIMEOUT``,
unless set; it only acts when this file is imported before NumPy, as with
``python -m pytest bench``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from admm import short_blas_spin

short_blas_spin()

import pytest  # noqa: E402

from bench.common import M_TRAIN, MNIST_LAYERS  # noqa: E402


@dataclass(frozen=True)
class BenchSize:
    """Problem size of a benchmark session.

    ``m`` samples of a ``layers`` network; ``rounds`` timed rounds of the
    fixed-round benchmarks (kernels done in place, the whole iteration).
    """

    name: str
    m: int
    layers: tuple[int, ...]
    kernel_rounds: int
    iteration_rounds: int


SIZES = {
    "small": BenchSize("small", 2_000, MNIST_LAYERS, kernel_rounds=10, iteration_rounds=3),
    "mnist": BenchSize("mnist", M_TRAIN, MNIST_LAYERS, kernel_rounds=5, iteration_rounds=3),
}


def bench_size() -> BenchSize:
    """The size named by ``ADMM_BENCH_SIZE`` (default ``small``)."""
    name = os.environ.get("ADMM_BENCH_SIZE", "small")
    if name not in SIZES:
        raise ValueError(f"ADMM_BENCH_SIZE must be one of {sorted(SIZES)}, got {name!r}")
    return SIZES[name]


def bench_threads() -> int:
    """BLAS threads of the session, from ``ADMM_BENCH_THREADS`` (default 1)."""
    value = os.environ.get("ADMM_BENCH_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"ADMM_BENCH_THREADS must be a positive integer, got {value!r}")
    return int(value)


@pytest.fixture(scope="session")
def size() -> BenchSize:
    return bench_size()


@pytest.fixture(scope="session", autouse=True)
def blas_threads():
    """Pin every loaded BLAS, and admm's entry-wise kernels, to ``ADMM_BENCH_THREADS``."""
    # admm imports the kernels, so SciPy's OpenBLAS is loaded and limited too.
    import admm
    from threadpoolctl import threadpool_limits

    threads = bench_threads()
    previous = admm.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield threads
    finally:
        admm.set_num_threads(previous)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the size and thread count in the saved JSON (for the report)."""
    machine_info["admm_bench_size"] = bench_size().name
    machine_info["admm_bench_threads"] = bench_threads()
    machine_info["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE")
