"""The data-parallel ADMM under real ``mpiexec`` on 1, 2 and 3 ranks.

The programs in ``mpi_programs/`` train on their block of one seeded data
set (m = 301 splits unevenly: 151/150, 101/100/100) and write what the test
compares to a temporary folder. ``run_mpi`` gives every run a timeout, so a
deadlock fails the test instead of hanging it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mpirun import run_mpi
from reference_admm import ReferenceADMM, forward

PROGRAMS = Path(__file__).resolve().parent / "mpi_programs"
RANKS = (1, 2, 3)
M = 301
ITERATIONS = 15
TIMEOUT = 60

pytestmark = pytest.mark.mpi


def run_program(ranks: int, name: str, *args, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    run_mpi(ranks, [str(PROGRAMS / name), str(out), *map(str, args)], timeout=TIMEOUT)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """Largest entry-wise difference relative to the largest entry of ``b``."""
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def fit_runs(tmp_path_factory) -> dict[int, dict[str, np.ndarray]]:
    """The results of ``fit_record.py`` on 1, 2 and 3 ranks."""
    results = {}
    for n in RANKS:
        out = tmp_path_factory.mktemp(f"fit{n}")
        run_program(n, "fit_record.py", M, ITERATIONS, out=out)
        with np.load(out / "result.npz") as f:
            results[n] = {k: f[k] for k in f.files}
    return results


def reference_after(result: dict[str, np.ndarray], steps: int) -> ReferenceADMM:
    L = len(result["layers"]) - 1
    ref = ReferenceADMM(
        result["X"],
        result["y"],
        tuple(int(n) for n in result["layers"]),
        [result[f"init_{l}"] for l in range(L)],
        beta=result["beta"],
        gamma=result["gamma"],
        rho=result["rho"],
        warmup=int(result["warmup"]),
    )
    for _ in range(steps):
        ref.step()
    return ref


def test_splits_are_uneven(fit_runs):
    assert fit_runs[2]["counts"].tolist() == [151, 150]
    assert fit_runs[3]["counts"].tolist() == [101, 100, 100]
    for n in RANKS:
        np.testing.assert_array_equal(fit_runs[n]["X"], fit_runs[1]["X"])


@pytest.mark.parametrize("n", RANKS)
def test_reduced_gram_and_cross_equal_serial(fit_runs, n):
    result = fit_runs[n]
    X = result["X"]
    assert relative(result["gram0"], X.T @ X) <= 1e-12
    z1 = X @ result["init_0"].T
    assert relative(result["cross1"], z1.T @ X) <= 1e-12
    # Every buffer the network reduced in iteration 1 (cross terms, Grams,
    # objective terms) equals the one-process buffer, which is the serial sum.
    names = sorted(k for k in result if k.startswith("reduced_"))
    serial = sorted(k for k in fit_runs[1] if k.startswith("reduced_"))
    assert names == serial and len(names) >= 4
    for k in names:
        assert relative(result[k], fit_runs[1][k]) <= 1e-12, k


@pytest.mark.parametrize("n", RANKS)
def test_weights_after_one_iteration_equal_serial(fit_runs, n):
    result = fit_runs[n]
    L = len(result["layers"]) - 1
    ref = reference_after(result, 1)
    for l in range(L):
        assert relative(result[f"w1_{l}_rank0"], ref.weights[l]) <= 1e-10, f"W_{l + 1}"
        assert relative(result[f"w1_{l}_rank0"], fit_runs[1][f"w1_{l}_rank0"]) <= 1e-10


@pytest.mark.parametrize("n", RANKS)
def test_weights_bit_identical_across_ranks(fit_runs, n):
    result = fit_runs[n]
    L = len(result["layers"]) - 1
    for r in range(1, n):
        for l in range(L):
            for stage in ("w1", "final"):
                a, b = result[f"{stage}_{l}_rank0"], result[f"{stage}_{l}_rank{r}"]
                assert np.array_equal(a, b), f"{stage} W_{l + 1} differs on rank {r}"


@pytest.mark.parametrize("n", RANKS[1:])
def test_long_runs_agree_in_objective_and_accuracy(fit_runs, n):
    # Weights are not compared: a flipped z candidate may separate them.
    serial, result = fit_runs[1], fit_runs[n]
    assert len(result["objective"]) == ITERATIONS
    np.testing.assert_allclose(result["objective"], serial["objective"], rtol=1e-6)
    X, y = serial["X"], serial["y"]
    L = len(serial["layers"]) - 1

    def accuracy(res):
        weights = [res[f"final_{l}_rank0"] for l in range(L)]
        return np.mean(np.argmax(forward(weights, X, "hardsigmoid"), axis=1) == y)

    assert abs(accuracy(result) - accuracy(serial)) <= 0.01
    # and the serial run is the reference's objective
    ref = reference_after(serial, 3)
    np.testing.assert_allclose(serial["objective"][2], ref.objective(), rtol=1e-10)


@pytest.mark.parametrize(
    ("kind", "ranks", "match"),
    [
        ("nan", 3, "rank 1: X contains NaN or inf"),
        ("label", 2, r"rank 1: y holds labels outside 0\.\.2"),
        ("width", 3, r"rank 1: X must have shape \(samples, 5\)"),
    ],
)
def test_error_on_one_rank_raises_on_every_rank(tmp_path, kind, ranks, match):
    run_program(ranks, "bad_one_rank.py", kind, out=tmp_path)
    for r in range(ranks):
        report = (tmp_path / f"rank{r}.txt").read_text()
        assert report.startswith("ValueError: "), f"rank {r}: {report}"
        assert re.search(match, report), f"rank {r}: {report}"


def test_rank_without_samples_trains_correctly(tmp_path):
    # 3 ranks, 2 samples: rank 2 holds none. It must still take part in every
    # reduction and end with the same weights as the others and the reference.
    run_program(3, "fit_record.py", 2, 3, out=tmp_path)
    with np.load(tmp_path / "result.npz") as f:
        result = {k: f[k] for k in f.files}
    assert result["counts"].tolist() == [1, 1, 0]
    ref = reference_after(result, 3)
    L = len(result["layers"]) - 1
    for l in range(L):
        for r in range(3):
            assert np.array_equal(result[f"final_{l}_rank{r}"], result[f"final_{l}_rank0"])
        assert relative(result[f"final_{l}_rank2"], ref.weights[l]) <= 1e-10
    assert np.all(np.isfinite(result["objective"]))
    np.testing.assert_allclose(result["objective"][-1], ref.objective(), rtol=1e-10)
