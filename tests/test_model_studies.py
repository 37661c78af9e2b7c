"""The scripts behind ``docs/models.md`` (issue 15): the random-features baseline
of binary-step networks and the results table, at sizes a test can afford, so
that the documented commands keep working."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from admm.testing import find_mpiexec

ROOT = Path(__file__).resolve().parent.parent  # bench/ is a package at the root


@pytest.fixture
def study(monkeypatch):
    """``bench.studies.models.<name>``, imported from the repository root."""
    monkeypatch.syspath_prepend(str(ROOT))
    return lambda name: importlib.import_module(f"bench.studies.models.{name}")


def test_random_step_features_are_binary_and_follow_the_seed(study, rng):
    features = study("random_features")
    X, X_test = rng.random((40, 6)), rng.random((7, 6))
    H, H_test = features.random_step_features(X, X_test, (5, 3), seed=1)
    assert H.shape == (40, 3) and H_test.shape == (7, 3)
    assert set(np.unique(np.concatenate([H.ravel(), H_test.ravel()]))) <= {0.0, 1.0}
    again = features.random_step_features(X, X_test, (5, 3), seed=1)
    np.testing.assert_array_equal(H, again[0])
    np.testing.assert_array_equal(H_test, again[1])
    # One layer by hand: centred by the training mean, thresholded at 0.
    W = np.random.default_rng(2).standard_normal((6, 4))
    one, one_test = features.random_step_features(X, X_test, (4,), seed=2)
    np.testing.assert_array_equal(one, ((X - X.mean(axis=0)) @ W > 0).astype(float))
    np.testing.assert_array_equal(one_test, ((X_test - X.mean(axis=0)) @ W > 0).astype(float))


def test_least_squares_accuracy_is_the_ridge_regression_on_one_hot_targets(study, rng):
    features = study("random_features")
    y = rng.integers(0, 3, 60)
    H = np.eye(3)[y] + 0.01 * rng.standard_normal((60, 3))  # separable features
    train, test = features.least_squares_accuracy(H[:50], y[:50], H[50:], y[50:], ridge=1e-3)
    assert (train, test) == (1.0, 1.0)
    # Against an independent solve, the ridge problem as a stacked least
    # squares, at a ridge small and large enough to change the predictions.
    H = rng.standard_normal((60, 4))
    A = np.hstack([H, np.ones((60, 1))])

    def expected(ridge: float) -> float:
        stacked = np.vstack([A, np.sqrt(ridge) * np.eye(5)])
        targets = np.vstack([np.eye(3)[y], np.zeros((5, 3))])
        coef = np.linalg.lstsq(stacked, targets, rcond=None)[0]
        return float(np.mean(np.argmax(A @ coef, axis=1) == y))

    assert expected(1e-6) != expected(1e4)  # the case tells the ridges apart
    for ridge in (1e-6, 1e4):
        train, _ = features.least_squares_accuracy(H, y, H[:10], y[:10], ridge=ridge)
        assert train == expected(ridge), ridge


def test_random_features_program_prints_one_row_per_width(study, capsys):
    study("random_features").main(["--data", "mnist-sample", "--widths", "30", "20,20"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| hidden widths | training accuracy | test accuracy |"
    rows = [line.split("|")[1:-1] for line in lines[2:]]
    assert [r[0].strip() for r in rows] == ["30", "20-20"]
    for _, train, test in rows:
        assert 0.3 < float(train) <= 1 and 0.3 < float(test) <= 1  # far above chance


def test_models_table_runs_a_binary_row(study, shared_mnist, tmp_path):
    """The table's one-output row on MNIST's 3 against 5, two iterations: the
    program runs under mpiexec and its metrics become one Markdown row."""
    if find_mpiexec() is None:
        if os.environ.get("ADMM_REQUIRE_MPI"):
            pytest.fail("mpiexec not found, and ADMM_REQUIRE_MPI is set")
        pytest.skip("mpiexec not found (pip install 'admm[mpich]')")
    out = tmp_path / "table.md"
    study("table").main(["--data-dir", str(shared_mnist), "--only", "mnist", "--rows",
                         "relu, hinge, one", "--iterations", "2", "--out", str(out)])  # fmt: skip
    header, _rule, *rows = out.read_text().splitlines()
    assert header.startswith("| data | activation, loss | test accuracy | iterations |")
    assert len(rows) == 1
    data, label, accuracy, iterations = (c.strip() for c in rows[0].split("|")[1:5])
    assert (data, label, iterations) == ("mnist 3 vs 5", "relu, hinge, one output", "2")
    assert 0.9 < float(accuracy) <= 1  # after the refit; chance is about 0.5


@pytest.mark.parametrize("options", [{}, {"deskew": True, "center": True}])
def test_readout_study_features_are_the_networks_own(rng, options):
    """The features ``bench.studies.accuracy.readout`` reads out
    (``ADMMNetwork.hidden_features``), times W_L, are the network's outputs
    (deskewed and centred as in training)."""
    import admm

    X, y = rng.random((120, 16)), rng.integers(0, 3, 120)
    net = admm.ADMMNetwork((16, 8, 6, 3), **options).fit(X, y, iterations=3)
    F = net.hidden_features(X)
    assert F.shape == (120, 6)
    expected = net.decision_function(X)
    np.testing.assert_allclose(F @ np.asarray(net.weights[-1]).T, expected, rtol=1e-10, atol=1e-10)
