"""``python -m admm.train --validation N --patience P`` (issue 16), under MPI.

The validation split is the last N training samples; it must never enter
training (a deterministic run with it trains exactly the network of a run on
the other samples alone), its accuracy is the one recorded, and the
patience rule stops where the recorded accuracies say it should.
"""

from __future__ import annotations

import json
from pathlib import Path

import admm
import numpy as np
import pytest
from admm.data import block_range
from admm.train import PatienceRule, UsageError, parse_args
from mpirun import run_mpi
from test_cli import LAYERS, make_npz

TIMEOUT = 120
N_VAL = 120


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("data") / "small.npz", n_train=400)


def train(ranks: int, data: Path, folder: Path, *args: str) -> list[dict]:
    metrics = folder / "run.jsonl"
    proc = run_mpi(
        ranks,
        [
            "-m",
            "admm.train",
            "--data",
            str(data),
            "--layers",
            LAYERS,
            "--metrics",
            str(metrics),
            *list(args),
        ],
        timeout=TIMEOUT,
    )
    assert "Traceback" not in proc.stderr
    return [json.loads(line) for line in metrics.read_text().splitlines()]


@pytest.mark.mpi
def test_validation_split_never_trains_and_is_what_is_scored(data, tmp_path):
    common = ["--deterministic", "--block-size", "16", "--iterations", "4", "--beta", "1"]
    events = train(
        2, data, tmp_path, "--validation", str(N_VAL), *common, "--save", str(tmp_path / "v.npz")
    )
    with np.load(data) as f:
        arrays = dict(f)
    n = arrays["y_train"].size
    first = {
        **arrays,
        "X_train": arrays["X_train"][: n - N_VAL],
        "y_train": arrays["y_train"][: n - N_VAL],
    }
    np.savez(tmp_path / "first.npz", **first)
    # One rank, on the training part alone: the same weights, bit for bit.
    alone = tmp_path / "alone"
    alone.mkdir()
    train(1, tmp_path / "first.npz", alone, *common, "--save", str(alone / "a.npz"))
    split, plain = admm.load(tmp_path / "v.npz"), admm.load(alone / "a.npz")
    for w_split, w_plain in zip(split.weights, plain.weights, strict=True):
        np.testing.assert_array_equal(w_split, w_plain)
    start, *iterations, done = events
    assert start["validation"] == N_VAL and start["n_train"] == n - N_VAL
    X_val, y_val = arrays["X_train"][n - N_VAL :], arrays["y_train"][n - N_VAL :]
    last = iterations[-1]
    assert last["val_accuracy"] == pytest.approx(split.score(X_val, y_val))
    assert last["test_accuracy"] == pytest.approx(split.score(arrays["X_test"], arrays["y_test"]))
    assert done["final_val_accuracy"] == last["val_accuracy"]
    assert all("val_accuracy" in e for e in iterations)
    # The memory prediction counts the validation block like the test block
    # (the test set dealt in blocks of 16 here): float64 rows and a label.
    rows = max(
        np.subtract(*block_range(arrays["y_test"].size, r, 2, 16)[::-1])
        + np.subtract(*block_range(N_VAL, r, 2)[::-1])
        for r in range(2)
    )
    assert start["predicted_breakdown"]["test"] == rows * (arrays["X_test"].shape[1] * 8 + 8)


@pytest.mark.mpi
def test_patience_stops_where_the_validation_accuracy_says(data, tmp_path):
    events = train(
        2,
        data,
        tmp_path,
        "--validation",
        str(N_VAL),
        "--patience",
        "2",
        "--eval-every",
        "2",
        "--iterations",
        "60",
    )
    iterations = [e for e in events if "event" not in e]
    done = events[-1]
    evaluated = [e for e in iterations if e["val_accuracy"] is not None]
    assert [e["iteration"] for e in evaluated] == list(
        range(2, iterations[-1]["iteration"] + 1, 2)
    )
    rule = PatienceRule(2)
    stops = [rule.update(e["iteration"], e["val_accuracy"]) for e in evaluated]
    # On these data the validation accuracy stops improving within 20 iterations.
    assert done["stop_reason"] == "patience"
    assert stops[-1] and not any(stops[:-1])
    assert done["best_val_iteration"] == rule.best_iteration
    assert done["best_val_accuracy"] == rule.best
    assert done["iterations"] == iterations[-1]["iteration"] < 60


def test_patience_rule_counts_evaluations_without_improvement():
    rule = PatienceRule(2)
    assert [rule.update(i, a) for i, a in enumerate([0.5, 0.6, 0.6, 0.7, 0.65, 0.7], 1)] == [
        False,
        False,
        False,
        False,
        False,
        True,
    ]
    assert (rule.best, rule.best_iteration) == (0.7, 4)


def test_patience_needs_a_validation_split():
    with pytest.raises(UsageError, match="--patience needs a validation split"):
        parse_args(["--patience", "3"])
    assert parse_args(["--validation", "10", "--patience", "3"]).patience == 3


@pytest.mark.mpi
def test_validation_leaving_no_training_samples_fails_on_every_rank(data, tmp_path):
    proc = run_mpi(
        2,
        ["-m", "admm.train", "--data", str(data), "--layers", LAYERS, "--validation", "400"],
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode != 0
    assert "--validation 400 leaves no training samples (the data set has 400)" in proc.stderr


@pytest.mark.parametrize(
    ("options", "every", "expected"),
    [
        ({}, 3, [3, 6, 8]),
        ({"refit_every": 3}, 3, [3, 6, 8]),
        ({"refit_every": 3, "refit_first": 1}, 3, [1, 4, 7, 8]),
        ({"refit_every": 2, "refit_first": 3}, 2, [1, 3, 5, 7, 8]),
        ({"refit_every": 3, "refit_first": 1}, 1, list(range(1, 9))),
    ],
)
def test_evaluations_follow_the_refits(rng, options, every, expected):
    """``fit``'s validation every ``eval_every`` iterations is counted from
    ``refit_first``: with the refits after 1, 4, 7 (``--preset fast``'s
    schedule) and ``eval_every`` 3, every evaluation comes after a refit;
    without ``refit_first`` the period starts at 0 as before. The last
    iteration is always evaluated."""
    X, y = rng.random((40, 5)), rng.integers(0, 3, 40)
    net = admm.ADMMNetwork((5, 6, 3), **options)
    net.fit(X, y, iterations=8, X_val=X, y_val=y, eval_every=every)
    assert [h["iteration"] for h in net.history if h["val_accuracy"] is not None] == expected
    if options.get("refit_first") == 1 and every == 3:
        assert all(net.config.refits_after(it) for it in expected[:-1])  # 8: the last
