"""What the benchmark suites, scripts and studies share: one place for each.

- paths: :data:`REPO`, :data:`SHARED_MNIST`;
- the standard problem: :data:`MNIST_LAYERS` (784-500-500-10),
  :data:`M_TRAIN` (60,000 training images), :data:`PARAMS` (the published
  configuration, timed from the first iteration on);
- data: :func:`mnist_like`, the first ``m`` MNIST images or look-alikes;
- the NumPy reference after one step, :func:`reference_after_one_step`;
- timing: :func:`median_seconds`;
- the matrix-multiply floor: :func:`floor_operands`, :func:`gemm_rate`,
  :func:`floor_seconds` (the flop counts are in :mod:`bench.flop_model`);
- MPI: :func:`run_python_mpi`, ``python ARGS`` on N ranks through
  :func:`admm.testing.run_mpi`.

Scripts import it as ``bench.common`` and run from the repository root as
``python -m bench.scripts.NAME``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from admm.data import block_range, load_dataset
from admm.testing import run_mpi

from bench.flop_model import gemm_flops, iteration_flops

if TYPE_CHECKING:
    from tests.reference_admm import ReferenceADMM

#: The repository.
REPO = Path(__file__).resolve().parent.parent
#: Real MNIST (gzip IDX) beside the repository, when present.
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"

#: The published network: MNIST pixels, two hidden layers of 500, ten classes.
MNIST_LAYERS = (784, 500, 500, 10)
#: MNIST's training images.
M_TRAIN = 60_000

#: The published configuration, timed from the first iteration on (no warm-up),
#: shared by the iteration benchmark and ``compare_iteration``.
PARAMS = {"activation": "hardsigmoid", "loss": "hinge", "beta": 0.2, "gamma": 20.0, "warmup": 0}


def mnist_like(m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``m`` training samples ``(X (m, 784) float64 in [0, 1], labels (m,), source)``.

    The first ``m`` real MNIST training images when available, otherwise
    synthetic digits: sparse non-negative pixels (about 19% non-zero, like
    MNIST) whose class shifts the mean of a block of pixels, so that the
    iteration sees data of MNIST's shape and value range.
    """
    if (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists() and m <= M_TRAIN:
        # Rank 0 of ceil(60000 / m) ranks holds the first >= m images: the
        # loader then converts only those to floats.
        data = load_dataset("mnist", SHARED_MNIST, rank=0, size=-(-M_TRAIN // m), download=False)
        return data.X_train[:m], data.y_train[:m], "mnist"
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=m)
    X = rng.random((m, 784)) * (rng.random((m, 784)) < 0.19)
    X[np.arange(m)[:, None], 70 * y[:, None] + np.arange(64)] += 0.5
    return np.clip(X, 0.0, 1.0), y, "synthetic"


def reference_after_one_step(
    X: np.ndarray, y: np.ndarray, layers: tuple[int, ...], weights: list, rho: tuple
) -> ReferenceADMM:
    """The plain NumPy ADMM (``tests/reference_admm.py``) of :data:`PARAMS`, one step taken."""
    from tests.reference_admm import ReferenceADMM

    L = len(layers) - 1
    reference = ReferenceADMM(
        X,
        y,
        layers,
        weights,
        activation=PARAMS["activation"],
        loss=PARAMS["loss"],
        beta=[PARAMS["beta"]] * L,
        gamma=[PARAMS["gamma"]] * (L - 1),
        rho=list(rho),
        warmup=PARAMS["warmup"],
    )
    reference.step()
    return reference


def median_seconds(
    call: Callable[[], object],
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
    setup: Callable[[], object] | None = None,
) -> float:
    """The median of ``repeats`` times of ``call()`` on ``clock``; ``setup()`` untimed before each."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = clock()
        call()
        times.append(clock() - start)
    return statistics.median(times)


def floor_operands(
    dtype: str, m: int = M_TRAIN, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random ``a_0`` (m x 784), ``W_1`` (500 x 784) and the output of the floor's product."""
    rng = np.random.default_rng(seed)
    n_in, n_out = MNIST_LAYERS[0], MNIST_LAYERS[1]
    x = rng.random((m, n_in), dtype=np.float32).astype(dtype)
    w = rng.random((n_out, n_in), dtype=np.float32).astype(dtype)
    return x, w, np.empty((m, n_out), dtype=dtype)


def gemm_rate(
    x: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    clock: Callable[[], float] = time.perf_counter,
    repeats: int = 3,
) -> float:
    """GFLOP/s of ``out = x w^T`` (the iteration's ``W_1 a_0``), median of ``repeats``.

    Through ``admm_core.matmul``, the BLAS the iteration uses; the rate of
    this shape, ``(m x 784)(784 x 500)``, is the floor's (docs/performance.md).
    """
    from admm_core import matmul

    seconds = median_seconds(lambda: matmul(x, w, out, transpose_b=True), repeats, clock)
    return gemm_flops(x.shape[0], w.shape[0], x.shape[1]) / seconds / 1e9


def floor_seconds(
    operands: tuple[np.ndarray, np.ndarray, np.ndarray],
    layers: Sequence[int] = MNIST_LAYERS,
    clock: Callable[[], float] = time.perf_counter,
    repeats: int = 3,
) -> float:
    """The matrix-multiply floor: one iteration's flops over the GEMM rate of ``operands``.

    ``operands`` is ``(a_0, W_1, out)`` as from :func:`floor_operands`; its
    number of rows is the iteration's number of samples.
    """
    rate = gemm_rate(*operands, clock=clock, repeats=repeats)
    return iteration_flops(layers, operands[0].shape[0]) / rate / 1e9


def run_python_mpi(
    ranks: int, args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 900
) -> str:
    """Run ``python ARGS`` on ``ranks`` MPI ranks (one BLAS thread each unless ``env``
    says otherwise) and return its stdout; a failed run raises
    :class:`subprocess.CalledProcessError` carrying stdout and stderr."""
    proc = run_mpi(ranks, args, timeout=timeout, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc.stdout


# ------------------------------------------------------------- the studies


def parse_overrides(items: Sequence[str]) -> dict:
    """``--set NAME=JSON`` items as option overrides (``rho_relative=0.003``)."""
    overrides = {}
    for item in items:
        name, _, value = item.partition("=")
        overrides[name] = json.loads(value)
    return overrides


def mnist_validation_split(
    data_dir: str | None, n_train: int, n_val: int, rank: int, size: int, *,
    seed: int = 0, dtype: str = "float64",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """This rank's blocks ``X, y, X_val, y_val`` of a split of MNIST's training
    images: a permutation by ``seed``, its first ``n_train`` to train and the
    next ``n_val`` to validate, each dealt over the ranks by ``block_range``
    (the test set is not read)."""
    ds = load_dataset("mnist", data_dir, download=False, dtype=dtype)
    perm = np.random.default_rng(seed).permutation(ds.X_train.shape[0])
    if n_train + n_val > perm.size:
        raise SystemExit(f"--train + --val exceeds the {perm.size} training images")
    train, val = perm[:n_train], perm[n_train : n_train + n_val]
    lo, hi = block_range(train.size, rank, size)
    vlo, vhi = block_range(val.size, rank, size)
    return (
        ds.X_train[train[lo:hi]],
        ds.y_train[train[lo:hi]],
        ds.X_train[val[vlo:vhi]],
        ds.y_train[val[vlo:vhi]],
    )


def global_accuracy(net: object, X: np.ndarray, y: np.ndarray, comm: object) -> float:
    """Accuracy of ``net.predict`` over every rank's block ``(X, y)`` (an mpi4py
    communicator's ``allreduce``). Collective on ``comm``."""
    correct, total = comm.allreduce(  # type: ignore[attr-defined]
        np.array([np.sum(net.predict(X) == y), y.size], dtype=np.float64)  # type: ignore[attr-defined]
    )
    return float(correct / total)


def timed_steps(
    net: object,
    X: np.ndarray,
    y: np.ndarray,
    iterations: int,
    comm: object,
    after: Callable[[int], object] | None = None,
) -> Iterator[tuple[int, float]]:
    """``net.fit(X, y, iterations=0)``, then ``net.step()`` ``iterations``
    times, each followed by ``after(iteration)`` when given (a refit): yields
    ``(iteration, seconds)`` after each, the training seconds so far (the
    slowest rank's, set-up included; whatever the caller does between
    yields is not counted). Collective on ``comm`` (an mpi4py communicator)."""
    from mpi4py import MPI

    def timed(action: Callable[[], object]) -> float:
        comm.Barrier()  # type: ignore[attr-defined]
        started = time.perf_counter()
        action()
        return comm.allreduce(time.perf_counter() - started, op=MPI.MAX)  # type: ignore[attr-defined]

    seconds = timed(lambda: net.fit(X, y, iterations=0))  # type: ignore[attr-defined]
    for it in range(1, iterations + 1):

        def advance(it: int = it) -> None:
            net.step()  # type: ignore[attr-defined]
            if after is not None:
                after(it)

        seconds += timed(advance)
        yield it, seconds


def emit(line: str, out: Path | None) -> None:
    """Print a JSON line and append it to ``out`` when given."""
    print(line, flush=True)
    if out is not None:
        with out.open("a") as f:
            f.write(line + "\n")
