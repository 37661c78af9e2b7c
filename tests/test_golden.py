"""The redesign changed no result: today's code against the golden results of the old one.

``tests/golden/<family>/`` holds what the code before the parameter table
and the solver split (commit 99e7d7d) computed, per OpenBLAS kernel family
(``make_golden.py`` says how). On a host of a recorded family every weight,
objective and output must be the same bit for bit; on another family only
to rounding (the BLAS kernels round differently), and the test says so.
Runs go through ``mpiexec`` with one BLAS thread, as the goldens were made
(OpenBLAS's float64 products round differently on other thread counts).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from mpirun import run_mpi

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

from make_golden import CONFIGS, DATA, family  # noqa: E402

pytestmark = pytest.mark.mpi
ENV = {"ADMM_NUM_THREADS": "1"}


def golden_folder() -> tuple[Path, bool]:
    """The golden folder of this host's kernel family, and whether it is exact."""
    folder = GOLDEN / family()
    if folder.is_dir():
        return folder, True
    return GOLDEN / "SkylakeX", False


def assert_same(actual: np.ndarray, expected: np.ndarray, exact: bool, what: str) -> None:
    if exact:
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        rtol = 1e-4 if actual.dtype == np.float32 else 1e-8
        scale = max(float(np.max(np.abs(expected))), 1e-30)
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


@pytest.mark.parametrize("ranks", [1, 3])
def test_library_runs_match_the_golden_results(tmp_path, ranks):
    folder, exact = golden_folder()
    out = tmp_path / "library.npz"
    run_mpi(ranks, [str(GOLDEN / "make_golden.py"), "--worker", str(out)], env=ENV)
    actual, expected = np.load(out), np.load(folder / f"library-{ranks}.npz")
    assert set(actual.files) == set(expected.files)
    assert {k.split("/")[0] for k in expected.files} == set(CONFIGS)
    for key in expected.files:
        assert_same(actual[key], expected[key], exact, key)


MODEL_SCRIPT = """
import sys, numpy as np, admm
model, data, out = sys.argv[1:]
net = admm.load(model)
net.save(out + ".npz")
np.save(out, net.decision_function(np.load(data)["X_test"]))
"""


@pytest.mark.parametrize("name", ["talk32", "best64"])
def test_old_model_files_load_predict_and_save_alike(tmp_path, name):
    folder, exact = golden_folder()
    script = tmp_path / "model.py"
    script.write_text(MODEL_SCRIPT)
    out = tmp_path / "scores.npy"
    run_mpi(1, [str(script), str(folder / f"model-{name}.npz"), str(DATA), str(out)], env=ENV)
    golden = np.load(folder / "library-1.npz")
    key = f"{name}/refit_scores" if f"{name}/refit_scores" in golden.files else f"{name}/scores"
    assert_same(np.load(out), golden[key], exact, key)
    # Written again, a model holds the same arrays as the old file.
    old, new = np.load(folder / f"model-{name}.npz"), np.load(str(out) + ".npz")
    assert set(old.files) == set(new.files)
    for k in old.files:
        np.testing.assert_array_equal(new[k], old[k], err_msg=k)
