"""The options of issue 16 (time to accuracy) against the NumPy reference,
one process and through the program under ``mpiexec``.

``refit_every``: the forward refit of the weights after every K-th
iteration (``ADMMNetwork.refit`` inside the iteration).
"""

from __future__ import annotations

import json
from pathlib import Path

import admm
import numpy as np
import pytest
from admm import ADMMNetwork
from admm.train import parse_args
from mpirun import run_mpi
from test_cli import make_npz
from test_extensions import LAYERS, OPTIONS, data, reference

TIMEOUT = 120


@pytest.mark.parametrize("every", [1, 2, 3])
@pytest.mark.parametrize("backward_sweep", [False, True])
def test_refit_every_matches_reference(rng, every, backward_sweep):
    X, y = data(rng)
    options = {**OPTIONS, "refit_every": every, "backward_sweep": backward_sweep}
    net = ADMMNetwork(LAYERS, seed=2, **options).fit(X, y, iterations=7)
    ref = reference(net.__class__(LAYERS, seed=2), X, y, **options)
    objectives = []
    for _ in range(7):
        ref.step()
        objectives.append(ref.objective())
    for w, r in zip(net.weights, ref.weights, strict=True):
        np.testing.assert_allclose(w, r, rtol=1e-9, atol=1e-9 * np.abs(r).max())
    # The objective is that of the iteration, before its refit.
    np.testing.assert_allclose([h["objective"] for h in net.history], objectives, rtol=1e-9)


def test_refit_every_changes_the_trajectory_and_off_is_the_default(rng):
    X, y = data(rng)
    assert admm.Config().refit_every == 0
    plain = ADMMNetwork(LAYERS, seed=2, **OPTIONS).fit(X, y, iterations=4)
    refit = ADMMNetwork(LAYERS, seed=2, **OPTIONS, refit_every=2).fit(X, y, iterations=4)
    # Iteration 1 is the same; the refit after iteration 2 changes what follows.
    assert plain.history[0]["objective"] == refit.history[0]["objective"]
    assert plain.history[2]["objective"] != refit.history[2]["objective"]
    # After iteration 4 the weights are the refit of the state.
    again = refit.__class__(LAYERS, seed=2, **OPTIONS, refit_every=2).fit(X, y, iterations=4)
    again.refit()
    for w, v in zip(refit.weights, again.weights, strict=True):
        np.testing.assert_allclose(w, v, rtol=1e-12, atol=1e-12)


def test_refit_every_is_validated_and_a_flag():
    with pytest.raises(ValueError, match="refit_every must be a non-negative integer"):
        ADMMNetwork(LAYERS, refit_every=-1)
    assert parse_args(["--refit-every", "3"]).refit_every == 3
    assert parse_args([]).refit_every == 0


@pytest.mark.mpi
def test_refit_every_through_the_program_matches_the_library(tmp_path: Path):
    path = make_npz(tmp_path / "d.npz")
    flags = ["--beta", "1", "--gamma", "2", "--rho-relative", "0.01", "--center"]
    run_mpi(
        2,
        [
            "-m",
            "admm.train",
            "--data",
            str(path),
            "--layers",
            "20,16,3",
            *flags,
            "--refit-every",
            "2",
            "--iterations",
            "5",
            "--save",
            str(tmp_path / "m.npz"),
            "--metrics",
            str(tmp_path / "m.jsonl"),
        ],
        timeout=TIMEOUT,
    )
    start = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert start["refit_every"] == 2
    with np.load(path) as f:
        X, y = f["X_train"], f["y_train"]
    net = ADMMNetwork(
        (20, 16, 3), beta=1.0, gamma=2.0, rho_relative=0.01, center=True, refit_every=2
    ).fit(X, y, iterations=5)
    saved = admm.load(tmp_path / "m.npz")
    for w, v in zip(saved.weights, net.weights, strict=True):
        np.testing.assert_allclose(w, v, rtol=1e-8, atol=1e-8 * np.abs(v).max())
