"""Helpers for running code under MPI from tests, benchmarks and scripts.

Like :mod:`numpy.testing`, a small public module for code that checks or
measures the library, not for training. It has no pytest dependency: the
test suite wraps :func:`run_mpi` with its own skip and failure rules.

    from admm.testing import find_mpiexec, run_mpi

    proc = run_mpi(2, ["-m", "admm.train", "--iterations", "3"], timeout=120)
    print(proc.stdout)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["find_mpiexec", "mpiexec_command", "run_mpi"]

#: Environment of every rank started by :func:`run_mpi`: one BLAS thread per
#: rank (ranks, not threads, share the cores) and unbuffered output.
ONE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


def find_mpiexec() -> str | None:
    """The ``mpiexec`` beside this Python (the mpich wheel's), else the one on PATH.

    Returns None when there is none. The one beside ``sys.executable`` comes
    first because it belongs to the MPI library that mpi4py was built
    against in a virtual environment; another on PATH may not.
    """
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


def mpiexec_command(ranks: int, args: Sequence[str], mpiexec: str | None = None) -> list[str]:
    """``[mpiexec, "-n", ranks, sys.executable, *args]``: run ``python ARGS`` on ``ranks``.

    ``mpiexec`` defaults to :func:`find_mpiexec`; ``FileNotFoundError`` when
    there is none.
    """
    if ranks < 1:
        raise ValueError(f"ranks must be at least 1, got {ranks}")
    if mpiexec is None:
        mpiexec = find_mpiexec()
        if mpiexec is None:
            raise FileNotFoundError("mpiexec not found (pip install 'admm[mpich]')")
    return [mpiexec, "-n", str(ranks), sys.executable, *map(str, args)]


def run_mpi(
    ranks: int,
    args: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    capture: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` on ``ranks`` MPI processes and wait for it.

    Every rank gets :data:`ONE_THREAD_ENV` over this process's environment,
    then ``env`` over that. With ``timeout`` (seconds), ``MPIEXEC_TIMEOUT``
    is set to it too, so a deadlocked run is killed by mpiexec, and
    :class:`subprocess.TimeoutExpired` is raised 30 s later if mpiexec
    itself hangs. With ``capture`` stdout and stderr are captured as text.
    A non-zero exit is returned, not raised: check ``returncode``.
    ``FileNotFoundError`` when there is no mpiexec.
    """
    full_env = {**os.environ, **ONE_THREAD_ENV}
    if timeout is not None:
        full_env["MPIEXEC_TIMEOUT"] = str(max(1, int(timeout)))
    if env:
        full_env.update(env)
    return subprocess.run(
        mpiexec_command(ranks, args),
        env=full_env,
        cwd=cwd,
        capture_output=capture,
        text=True,
        timeout=None if timeout is None else timeout + 30,
        check=False,
    )
