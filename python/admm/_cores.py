"""Cores, ranks per node and BLAS threads, from the standard library only.

Kept free of NumPy so that the training program can decide the BLAS thread
count before the BLAS library is loaded (OpenBLAS reads its thread count
from the environment once, when it loads).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: Environment variables of the BLAS thread count, in OpenBLAS's order of
#: precedence (MKL's before the OpenMP one).
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")

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
