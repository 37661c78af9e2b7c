"""Running Python under mpiexec from the tests (a module, not conftest, so
test files can import it: bench/ has a conftest.py of its own)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Real MNIST shipped beside the repository (gzip IDX), when present.
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"

#: Seconds before an MPI run counts as hung (mpiexec kills it too).
MPI_TIMEOUT = int(os.environ.get("ADMM_TEST_MPI_TIMEOUT", "240"))


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (the mpich wheel), else on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


def run_mpi(
    ranks: int,
    args: list[str],
    timeout: float = MPI_TIMEOUT,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` on ``ranks`` MPI processes and capture its output.

    One BLAS thread per rank (the machine has two cores); ``MPIEXEC_TIMEOUT``
    and the subprocess timeout turn a deadlock into a failure, not a hang.
    With ``check`` a non-zero exit fails the test, showing stdout and stderr.
    """
    mpiexec = find_mpiexec()
    if mpiexec is None:
        if os.environ.get("ADMM_REQUIRE_MPI"):
            pytest.fail("mpiexec not found, and ADMM_REQUIRE_MPI is set")
        pytest.skip("mpiexec not found (pip install 'admm[mpich]')")
    full_env = dict(os.environ)
    full_env.update(
        {
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MPIEXEC_TIMEOUT": str(int(timeout)),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if env:
        full_env.update(env)
    cmd = [mpiexec, "-n", str(ranks), sys.executable, *args]
    try:
        proc = subprocess.run(
            cmd,
            env=full_env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout + 30,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} hung for {timeout + 30} s:\n{exc.stdout}\n{exc.stderr}")
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited with {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc
