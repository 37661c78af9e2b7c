"""Regression end to end (issue 15): real targets in a user's file, through the
data layer, the program on 2 ranks (RMSE and R^2 instead of accuracy in the
header, the lines, the metrics and the summary) and ``admm.evaluate``."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from admm import data as data_module
from admm.data import DataError, load_dataset
from admm.metrics import regression_scores, regression_sums
from mpirun import run_mpi


def smooth_targets(rng: np.random.Generator, m: int, outputs: int = 1) -> tuple:
    """Inputs in [0, 1]^8 and a smooth function of them (one or two targets)."""
    X = rng.random((m, 8))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2 - X[:, 2] * X[:, 3]
    if outputs == 2:
        y = np.stack([y, np.cos(2 * X[:, 4])], axis=1)
    return X, y


def write(path, X, y, n_train):
    np.savez(path, X_train=X[:n_train], y_train=y[:n_train], X_test=X[n_train:],
             y_test=y[n_train:])  # fmt: skip
    return path


@pytest.mark.parametrize("outputs", [1, 2])
def test_real_targets_are_read_as_regression(rng, tmp_path, outputs):
    X, y = smooth_targets(rng, 100, outputs)
    path = write(tmp_path / "r.npz", X, y, 80)
    whole = load_dataset(str(path))
    assert (whole.task, whole.n_targets, whole.n_classes) == ("regression", outputs, 0)
    np.testing.assert_array_equal(whole.y_train, y[:80])
    # Each rank holds its rows of the targets, as of the inputs.
    parts = [load_dataset(str(path), rank=r, size=3, dtype="float32") for r in range(3)]
    np.testing.assert_array_equal(
        np.concatenate([p.y_train for p in parts]), y[:80].astype(np.float32)
    )
    assert all(p.y_train.dtype == np.float32 for p in parts)


def test_integer_labels_stay_classification_and_task_overrides(rng, tmp_path):
    X = rng.random((50, 4))
    labels = rng.integers(0, 3, 50).astype(np.float64)  # integral floats: labels, as before
    path = write(tmp_path / "c.npz", X, labels, 40)
    assert load_dataset(str(path)).task == "classification"
    forced = load_dataset(str(path), task="regression")
    assert forced.task == "regression" and forced.y_train.dtype == np.float64
    with pytest.raises(DataError, match="labels must be integers"):
        load_dataset(str(write(tmp_path / "r.npz", X, labels + 0.5, 40)), task="classification")
    with pytest.raises(ValueError, match="task must be one of"):
        load_dataset(str(path), task="ranking")


def test_bad_real_targets_give_one_line(rng, tmp_path):
    X, y = smooth_targets(rng, 60)
    y[7] = np.nan
    with pytest.raises(DataError, match=r"targets contain NaN or inf \(row 7\)"):
        load_dataset(str(write(tmp_path / "nan.npz", X, y, 50)))
    X, y2 = smooth_targets(rng, 60, outputs=2)
    np.savez(tmp_path / "mixed.npz", X_train=X[:50], y_train=y2[:50], X_test=X[50:],
             y_test=y2[50:, 0])  # fmt: skip
    with pytest.raises(DataError, match="y_test has shape"):
        load_dataset(str(tmp_path / "mixed.npz"))
    assert data_module.TASKS == ("auto", "classification", "regression")


def test_regression_scores_match_their_definitions(rng):
    pred, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    # Summed over two "ranks".
    sums = regression_sums(pred[:15], y[:15]) + regression_sums(pred[15:], y[15:])
    rmse, r2 = regression_scores(sums)
    assert rmse == pytest.approx(np.sqrt(np.mean((pred - y) ** 2)))
    per_target = 1 - ((pred - y) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    assert r2 == pytest.approx(per_target.mean())


@pytest.mark.mpi
@pytest.mark.parametrize("outputs", [1, 2])
def test_the_program_trains_real_targets_and_reports_rmse_and_r2(rng, tmp_path, outputs):
    X, y = smooth_targets(rng, 1500, outputs)
    path = write(tmp_path / "r.npz", X, y, 1200)
    model, metrics = tmp_path / "m.npz", tmp_path / "run.jsonl"
    proc = run_mpi(2, ["-m", "admm.train", "--data", str(path), "--layers", f"8,64,{outputs}",
                       "--loss", "squared", "--activation", "relu", "--beta", "1",
                       "--gamma", "1", "--no-multiplier", "--center", "--iterations", "15",
                       "--eval-every", "5", "--refit", "--save", str(model),
                       "--metrics", str(metrics)])  # fmt: skip
    out = proc.stdout
    assert f"task: regression on {outputs} real target" in out
    assert "test_rmse  test_r2" in out and "test_acc" not in out
    assert "final test RMSE and R^2: " in out and "final test accuracy" not in out
    events = [json.loads(line) for line in metrics.read_text().splitlines()]
    iterations = [e for e in events if "iteration" in e and "event" not in e]
    assert all("test_rmse" in e and "test_accuracy" not in e for e in iterations)
    assert [e["iteration"] for e in iterations if e["test_rmse"] is not None] == [5, 10, 15]
    done = events[-1]
    assert "final_test_accuracy" not in done
    # Better than predicting the training mean (R^2 = 0 on the test set).
    assert done["final_test_r2"] > 0.5, done
    baseline = np.sqrt(np.mean((y[1200:] - y[:1200].mean(axis=0)) ** 2))
    assert done["final_test_rmse"] < baseline
    # admm.evaluate scores the saved model alike, on one process.
    result = subprocess.run(
        [sys.executable, "-m", "admm.evaluate", str(model), "--data", str(path), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    scores = json.loads(result.stdout)
    assert scores["task"] == "regression" and "accuracy" not in scores
    assert scores["rmse"] == pytest.approx(done["final_test_rmse"], rel=1e-9)
    assert scores["r2"] == pytest.approx(done["final_test_r2"], rel=1e-9)


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--layers", "8,16,1"], "need --loss squared, not --loss hinge"),
        (["--layers", "8,16,3", "--loss", "squared"], "3 outputs but the data has 1 targets"),
    ],
)
def test_regression_flags_that_cannot_fit_stop_every_rank(rng, tmp_path, flags, message):
    X, y = smooth_targets(rng, 100)
    path = write(tmp_path / "r.npz", X, y, 80)
    proc = run_mpi(2, ["-m", "admm.train", "--data", str(path), *flags], check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("admm: error") == 1


def test_the_regression_study_beats_the_linear_fit_on_validation(monkeypatch):
    """``bench.studies.models.regression`` at a tiny size: the teacher's data is
    as its docstring says (a linear fit explains clearly less than the teacher),
    and the ADMM network with the chosen settings beats the linear fit on the
    validation samples, without coming below the noise floor."""
    monkeypatch.syspath_prepend(Path(__file__).resolve().parent.parent)  # bench/, at the root
    study = importlib.import_module("bench.studies.models.regression")
    m, iterations, width = study.QUICK
    train, val, _ = study.splits(m)
    linear_rmse, linear_r2 = study.scores(study.linear_fit(train)(val.X), val.y)
    floor_rmse, floor_r2 = study.scores(val.clean, val.y)
    assert linear_r2 < 0.75 and floor_r2 > 0.95, (linear_r2, floor_r2)
    predict, _ = study.network_fit(
        train, width, iterations, {**study.CHOSEN, "activation": "relu"}
    )
    rmse, r2 = study.scores(predict(val.X), val.y)
    assert floor_rmse < rmse < 0.85 * linear_rmse, (rmse, linear_rmse, floor_rmse)
    assert r2 > linear_r2 + 0.08
