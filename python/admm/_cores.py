"""Cores, ranks per node, BLAS threads and the allocator, from the standard library only.

Kept free of NumPy so that the training program can decide the BLAS thread
count before the BLAS library is loaded (OpenBLAS reads its thread count
from the environment once, when it loads).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping, MutableMapping

#: Environment variables of the BLAS thread count, in OpenBLAS's order of
#: precedence (MKL's before the OpenMP one).
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")

#: OpenBLAS's variables for how long an idle BLAS thread spins before it
#: sleeps: ``2**n`` CPU cycles, 28 unless set (about 0.1 s at 2.6 GHz).
BLAS_SPIN_ENV = ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")

#: The spin the training program asks for: 2**20 cycles, under a millisecond,
#: longer than the Python between two BLAS calls of an iteration.
SHORT_BLAS_SPIN = 20

#: glibc's variable for the size from which malloc serves blocks by mmap
#: (read at start-up; setting it also stops the threshold's adjustment).
MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"

#: The threshold the training program asks for: glibc's initial one, 128 KiB.
MMAP_THRESHOLD = 128 * 1024

#: ``M_MMAP_THRESHOLD`` of glibc's ``mallopt``.
_M_MMAP_THRESHOLD = -3

#: Environment variables in which MPI launchers give the ranks on this node
#: (MPICH/Intel MPI hydra, Open MPI).
LOCAL_RANKS_ENV = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")


def positive_int(text: str) -> int | None:
    """The leading positive integer of an environment value (``"4"``, ``"4,2"``)."""
    head = text.split(",")[0].strip()
    return int(head) if head.isdigit() and int(head) > 0 else None


def usable_cores() -> int | None:
    """Cores this process may run on (its affinity mask), or None if unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def local_ranks(environ: MutableMapping[str, str] | None = None) -> int:
    """Ranks on this node as the MPI launcher says, 1 outside ``mpiexec``."""
    env = os.environ if environ is None else environ
    for name in LOCAL_RANKS_ENV:
        count = positive_int(env.get(name, ""))
        if count is not None:
            return count
    return 1


def core_share(environ: MutableMapping[str, str] | None = None) -> int | None:
    """This rank's share of the usable cores, ``max(1, cores // ranks on the
    node)``, or None when the cores are unknown."""
    cores = usable_cores()
    return max(1, cores // local_ranks(environ)) if cores else None


def share_blas_cores(environ: MutableMapping[str, str] | None = None) -> int | None:
    """Give the BLAS this rank's share of the cores, unless the user chose.

    When the MPI launcher started several ranks on this node and none of
    ``BLAS_ENV`` is set, sets ``OPENBLAS_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` to ``max(1, cores // ranks on the node)`` and returns
    that number; otherwise changes nothing and returns None. OpenBLAS would
    otherwise start one thread per core in every rank: with 2 ranks on 2
    cores the ranks' threads spin against each other, and an iteration took
    up to 8x longer than with one thread each. Only the training program
    calls this, first thing, before NumPy loads the BLAS: a library must not
    change the threads of the code that imports it.
    """
    env = os.environ if environ is None else environ
    if local_ranks(env) < 2 or any(env.get(name, "").strip() for name in BLAS_ENV):
        return None
    threads = core_share(env)
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return threads


def short_blas_spin(environ: MutableMapping[str, str] | None = None) -> bool:
    """Let idle OpenBLAS threads sleep after ``2**SHORT_BLAS_SPIN`` cycles, unless the user chose.

    When neither of ``BLAS_SPIN_ENV`` is set, sets ``OPENBLAS_THREAD_TIMEOUT``
    and returns True; otherwise changes nothing and returns False. After a
    product on several threads OpenBLAS's own threads otherwise spin for
    about 0.1 s, taking the cores from the entry-wise kernels that follow on
    the same cores (the hidden z-update took twice as long right after a
    product as after a pause, docs/performance.md). The products, which take
    milliseconds to seconds, do not notice the cost of waking a sleeping
    thread. Only the training program calls this, before NumPy loads the
    BLAS, for the reason given in :func:`share_blas_cores`.
    """
    env = os.environ if environ is None else environ
    if any(env.get(name, "").strip() for name in BLAS_SPIN_ENV):
        return False
    env["OPENBLAS_THREAD_TIMEOUT"] = str(SHORT_BLAS_SPIN)
    return True


def fixed_mmap_threshold(environ: Mapping[str, str] | None = None) -> bool:
    """Keep glibc's mmap threshold at ``MMAP_THRESHOLD``, unless the user chose.

    When ``MALLOC_MMAP_THRESHOLD_`` is not set and the C library has glibc's
    ``mallopt``, sets ``M_MMAP_THRESHOLD`` and returns True; otherwise
    changes nothing and returns False. glibc raises its threshold to the
    size of each large block freed (up to 32 MB), so that later temporaries
    below it come from the heap and stay resident after they are freed: the
    peak memory of ``--preset fast`` was 1.10 times the memory model's,
    1.01 times with the threshold kept (docs/performance.md). Only the
    training program calls this, for the reason given in
    :func:`share_blas_cores`.
    """
    env = os.environ if environ is None else environ
    if env.get(MMAP_THRESHOLD_ENV, "").strip():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
