"""The entry-wise kernels on several threads, with results independent of their number.

The compiled entry-wise kernels (the z-updates, the activation) release the
GIL, so a small pool of Python threads can run them on several cores, as the
BLAS runs the products; no OpenMP, nothing that knows of MPI. :func:`rowwise`
splits the rows of the ``(m, n)`` arrays into contiguous chunks and calls the
kernel on each chunk concurrently.

Results do not depend on the number of threads, bit for bit: the chunks are a
function of the array's shape alone (:func:`row_chunks`), entries are updated
element-wise, and the sums the kernels return are added per block in chunk
order, whichever thread computed them. The thread count only decides who
computes which chunk.

Thread count (:func:`get_num_threads`): ``set_num_threads(n)`` if called, else
``$ADMM_NUM_THREADS``, else the BLAS's own thread count (SciPy's, asked through
threadpoolctl when it is installed, or read from ``OPENBLAS_NUM_THREADS``,
``GOTO_NUM_THREADS``, ``MKL_NUM_THREADS`` or ``OMP_NUM_THREADS``), at most the
usable cores divided by the ranks that ``mpiexec`` started on this node
(``MPI_LOCALNRANKS``, ``OMPI_COMM_WORLD_LOCAL_SIZE``); 1 when nothing can be
determined. The default is decided at first use and kept.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ._cores import BLAS_ENV as _BLAS_ENV
from ._cores import core_share as _core_share
from ._cores import positive_int as _positive_int

#: Environment variable that sets the thread count explicitly.
ENV_VAR = "ADMM_NUM_THREADS"

#: Fewest entries per chunk: an array of fewer than twice this is one chunk.
#: 65,536 float32 entries of the hidden z-update are about 90 microseconds of
#: one core (docs/performance.md), well above a hand-off between threads.
MIN_CHUNK = 1 << 16

#: Most chunks per array (per summation block): 64 kernel calls of a few
#: microseconds of Python each, against about 40 ms of work at 60,000 x 500.
MAX_CHUNKS = 64

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_explicit: int | None = None  # set_num_threads
_default: int | None = None  # decided at first use
_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_local = threading.local()  # .worker is true in the pool's threads


def _blas_threads() -> int | None:
    """Threads of SciPy's BLAS (the one the kernels call), or None if unknown."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        try:
            blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        except Exception:  # an unusual BLAS must not stop training
            blas = []
        # SciPy's own copy (in scipy.libs/ or scipy/.dylibs/): NumPy's wheels
        # bring another one, whose file name also says "scipy_openblas".
        scipy_blas = [
            i
            for i in blas
            if any(p.lower().startswith("scipy") for p in Path(i.get("filepath", "")).parent.parts)
        ]
        counts = [int(i["num_threads"]) for i in scipy_blas or blas if i.get("num_threads")]
        if counts:
            return max(1, min(counts))
    for name in _BLAS_ENV:
        count = _positive_int(os.environ.get(name, ""))
        if count is not None:
            return count
    return None


def default_num_threads() -> int:
    """The thread count used unless :func:`set_num_threads` says otherwise.

    ``$ADMM_NUM_THREADS`` when set; else the BLAS's thread count (when it is
    not known, every usable core, as OpenBLAS would take), at most the usable
    cores divided by the MPI ranks on this node (see the module docstring);
    1 when neither is known. Raises ``ValueError`` when ``$ADMM_NUM_THREADS``
    is not a positive integer.
    """
    explicit = os.environ.get(ENV_VAR, "").strip()
    if explicit:
        if not explicit.isdigit() or int(explicit) < 1:
            raise ValueError(f"{ENV_VAR} must be a positive integer, got {explicit!r}")
        return int(explicit)
    share = _core_share()
    blas = _blas_threads()
    if blas is None:
        return share or 1
    return max(1, min(blas, share)) if share else blas


def get_num_threads() -> int:
    """Threads that run the entry-wise kernels (1: all on the calling thread)."""
    global _default
    if _explicit is not None:
        return _explicit
    if _default is None:
        _default = default_num_threads()
    return _default


def set_num_threads(n: int | None) -> int | None:
    """Run the entry-wise kernels on ``n`` threads (None: the default again).

    Results are the same bit for bit whatever ``n``; only the time changes.
    Returns the previous explicit setting (None when the default was in
    force), so that a caller can restore it.
    """
    global _explicit, _default
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
        raise ValueError(f"the thread count must be a positive integer or None, got {n!r}")
    previous = _explicit
    _explicit = None if n is None else int(n)
    _default = None  # decided again at the next use
    return previous


def row_chunks(rows: int, row_size: int) -> list[slice]:
    """Contiguous row ranges covering ``rows`` rows of ``row_size`` entries each.

    A function of the shape alone, never of the thread count: the number of
    chunks is the largest power of two (so that 2, 4, 8 threads share them
    evenly) not above ``rows * row_size / MIN_CHUNK``, ``rows`` and
    ``MAX_CHUNKS``; rows are dealt out evenly. Arrays of fewer than
    ``2 * MIN_CHUNK`` entries (or no rows) are one chunk.
    """
    count = min(MAX_CHUNKS, rows, rows * row_size // MIN_CHUNK)
    if count <= 1:
        return [slice(0, rows)]
    count = 1 << (count.bit_length() - 1)
    return [slice(rows * j // count, rows * (j + 1) // count) for j in range(count)]


def _mark_worker() -> None:
    _local.worker = True


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool, with at least ``workers`` threads (created once, lazily)."""
    global _pool, _pool_workers
    with _lock:
        if _pool is None or _pool_workers < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="admm-entrywise", initializer=_mark_worker
            )
            _pool_workers = workers
        return _pool


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start afresh."""
    global _lock, _pool, _pool_workers
    _lock = threading.Lock()
    _pool = None
    _pool_workers = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def parallel_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]``, spread over :func:`get_num_threads` threads.

    The calling thread works too; the others take items in turn until none
    are left. Returns once every call has ended; the first exception raised
    (after which no new item is started) is raised again. Called from one of
    the pool's own threads it runs serially, so nesting cannot deadlock.
    """
    n = len(items)
    threads = min(get_num_threads(), n)
    if threads <= 1 or getattr(_local, "worker", False):
        return [fn(x) for x in items]
    results: list[Any] = [None] * n
    lock = threading.Lock()
    position = 0

    def work() -> None:
        nonlocal position
        try:
            while True:
                with lock:
                    i = position
                    position += 1
                if i >= n:
                    return
                results[i] = fn(items[i])
        except BaseException:
            with lock:
                position = n  # the others start nothing new
            raise

    futures = [_executor(threads - 1).submit(work) for _ in range(threads - 1)]
    error: BaseException | None = None
    try:
        work()
    except BaseException as exc:
        error = exc
    for future in futures:  # never return while a worker still writes
        failure = future.exception()
        if error is None:
            error = failure
    if error is not None:
        raise error
    return results


def rowwise(
    kernel: Callable[..., Any],
    arrays: Sequence[np.ndarray],
    *args: Any,
    blocks: Sequence[slice] | None = None,
    n_sums: int = 0,
) -> np.ndarray:
    """Call ``kernel(*(x[rows] for x in arrays), *args)`` on chunks of rows, concurrently.

    ``arrays`` share their number of rows (the first axis); the kernel must
    work row by row (an entry-wise kernel on ``(m, n)`` arrays, or one that
    also takes per-row labels) and return ``n_sums`` floats that add over
    rows (its return value is ignored when ``n_sums`` is 0). ``blocks``
    (default: all rows as one block) are the row slices whose sums are
    wanted separately, as the summation blocks of ``deterministic=True``.
    Each block is split by :func:`row_chunks` of its own shape; arrays that
    are not C-contiguous are not split.

    Returns a ``(len(blocks), n_sums)`` float64 array: per block, the chunks'
    sums added in chunk order, the same bits on any number of threads.
    """
    m = arrays[0].shape[0]
    row_size = math.prod(arrays[0].shape[1:])
    split = all(x.flags.c_contiguous for x in arrays)
    if blocks is None:
        blocks = [slice(None)]
    pieces: list[tuple[int, slice]] = []
    for i, block in enumerate(blocks):
        start, stop, step = block.indices(m)
        if step != 1:
            raise ValueError(f"blocks must be contiguous row slices, got {block!r}")
        stop = max(start, stop)
        chunks = row_chunks(stop - start, row_size) if split else [slice(0, stop - start)]
        pieces += [(i, slice(start + c.start, start + c.stop)) for c in chunks]
    results = parallel_map(lambda piece: kernel(*(x[piece[1]] for x in arrays), *args), pieces)
    sums = np.zeros((len(blocks), n_sums))
    if n_sums:
        for (i, _), result in zip(pieces, results, strict=True):
            sums[i] += result
    return sums
