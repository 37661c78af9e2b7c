"""Running Python under mpiexec from the tests (a module, not conftest, so
test files can import it), with the suite's skip and failure rules around
:func:`admm.testing.run_mpi`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from admm.testing import find_mpiexec, mpiexec_command
from admm.testing import run_mpi as _run_mpi

__all__ = [
    "MPI_TIMEOUT",
    "REPO",
    "SHARED_MNIST",
    "find_mpiexec",
    "load_program",
    "program_runs",
    "run_mpi",
]

REPO = Path(__file__).resolve().parent.parent
#: Real MNIST shipped beside the repository (gzip IDX), when present.
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"

#: Seconds before an MPI run counts as hung (mpiexec kills it too).
MPI_TIMEOUT = int(os.environ.get("ADMM_TEST_MPI_TIMEOUT", "240"))


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
    Without mpiexec the test is skipped (failed with ``ADMM_REQUIRE_MPI``).
    With ``check`` a non-zero exit fails the test, showing stdout and stderr.
    """
    if find_mpiexec() is None:
        if os.environ.get("ADMM_REQUIRE_MPI"):
            pytest.fail("mpiexec not found, and ADMM_REQUIRE_MPI is set")
        pytest.skip("mpiexec not found (pip install 'admm[mpich]')")
    cmd = " ".join(mpiexec_command(ranks, args))
    try:
        proc = _run_mpi(ranks, args, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{cmd} hung for {timeout + 30} s:\n{exc.stdout}\n{exc.stderr}")
    if check and proc.returncode != 0:
        pytest.fail(
            f"{cmd} exited with {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def load_program(path: Path) -> ModuleType:
    """An MPI program of ``tests/mpi_programs`` as a module (for its constants)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    return program


def program_runs(
    tmp_path_factory: Any, program: Path, *args: str
) -> dict[tuple[int, int], dict[str, Any]]:
    """``python PROGRAM OUTDIR *ARGS DETERMINISTIC`` on 1, 2 and 3 ranks, with
    ``DETERMINISTIC`` 0 and 1: each run's ``OUTDIR/result.npz`` by ``(ranks,
    deterministic)``."""
    results = {}
    for deterministic in (0, 1):
        for n in (1, 2, 3):
            out = tmp_path_factory.mktemp(f"{program.stem}{n}_{deterministic}")
            run_mpi(n, [str(program), str(out), *args, str(deterministic)])
            with np.load(out / "result.npz") as f:
                results[n, deterministic] = {k: f[k] for k in f.files}
    return results
