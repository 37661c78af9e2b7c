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
from reference_admm import ReferenceADMM, forward_refit
from test_cli import make_npz
from test_extensions import LAYERS, OPTIONS, data, reference

TIMEOUT = 120


@pytest.mark.parametrize(("every", "first"), [(1, 0), (2, 0), (3, 0), (3, 2), (2, 1), (4, 6)])
@pytest.mark.parametrize("backward_sweep", [False, True])
@pytest.mark.parametrize(
    ("refit_input_layer", "start_from_targets"), [(True, False), (False, True)]
)
def test_refit_every_matches_reference(
    rng, every, first, backward_sweep, refit_input_layer, start_from_targets
):
    X, y = data(rng)
    options = {**OPTIONS, "refit_every": every, "refit_first": first,
               "backward_sweep": backward_sweep, "refit_input_layer": refit_input_layer,
               "start_from_targets": start_from_targets}  # fmt: skip
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


def test_refit_first_refits_after_the_iterations_it_names(rng):
    """``refit_every=3, refit_first=2``: the refits after iterations 2, 5 and 8,
    as a loop of ``step`` with ``refit`` at those iterations does, bit for bit."""
    X, y = data(rng)
    config = admm.Config(refit_every=3, refit_first=2)
    assert [i for i in range(1, 12) if config.refits_after(i)] == [2, 5, 8, 11]
    assert [i for i in range(1, 8) if admm.Config(refit_every=3).refits_after(i)] == [3, 6]
    assert not any(admm.Config().refits_after(i) for i in range(1, 8))
    scheduled = ADMMNetwork(LAYERS, seed=2, **OPTIONS, refit_every=3, refit_first=2)
    scheduled.fit(X, y, iterations=8)
    by_hand = ADMMNetwork(LAYERS, seed=2, **OPTIONS).fit(X, y, iterations=0)
    for it in range(1, 9):
        by_hand.step()
        if it in (2, 5, 8):
            by_hand.refit()
    for w, v in zip(scheduled.weights, by_hand.weights, strict=True):
        np.testing.assert_array_equal(w, v)
    assert [h["objective"] for h in scheduled.history] == [h["objective"] for h in by_hand.history]
    # The default (first = K) is not this schedule.
    every3 = ADMMNetwork(LAYERS, seed=2, **OPTIONS, refit_every=3).fit(X, y, iterations=8)
    assert every3.history[2]["objective"] != scheduled.history[2]["objective"]


def test_refit_input_layer_keeps_w1_and_refits_the_rest(rng):
    """Without ``refit_input_layer`` the refit keeps the iteration's W_1 (bit
    for bit) and re-solves W_2 .. W_L on its forward features; the default
    re-solves W_1 too. ``refit()`` and the scheduled refits obey it alike."""
    X, y = data(rng)
    assert admm.Config().refit_input_layer is True
    kept = ADMMNetwork(LAYERS, seed=2, **OPTIONS, refit_input_layer=False).fit(X, y, iterations=3)
    whole = ADMMNetwork(LAYERS, seed=2, **OPTIONS).fit(X, y, iterations=3)
    w1 = np.array(kept.weights[0])
    before = [np.array(w) for w in kept.weights]
    kept.refit()
    whole.refit()
    np.testing.assert_array_equal(kept.weights[0], w1)
    assert not np.allclose(whole.weights[0], w1, rtol=1e-3)  # the default re-solves W_1
    for w, v in zip(kept.weights[1:], before[1:], strict=True):
        assert not np.allclose(w, v, rtol=1e-3)
    # The same as the reference's refit with W_1 given.
    ref = reference(ADMMNetwork(LAYERS, seed=2), X, y, **OPTIONS)
    for _ in range(3):
        ref.step()
    rho = ref.ridges(2)  # the ridge of the last iteration, as the refit uses
    expected = forward_refit(ref.X.T, ref.z, rho, "hardsigmoid", input_weights=ref.weights[0])
    for w, r in zip(kept.weights, expected, strict=True):
        np.testing.assert_allclose(w, r, rtol=1e-9, atol=1e-9 * np.abs(r).max())


@pytest.mark.parametrize("loss", ["hinge", "cross_entropy", "squared"])
def test_start_from_targets_is_the_output_update_of_the_forward_pass(rng, loss):
    """``start_from_targets``: before iteration 1, ``z_L`` is update (5) of the
    forward pass (the reference's prox) and ``lam`` stays 0; the iterations
    then follow the reference."""
    X, y = data(rng)
    targets = np.eye(LAYERS[-1])[y] if loss == "squared" else y
    options = {**OPTIONS, "loss": loss, "start_from_targets": True}
    net = ADMMNetwork(LAYERS, seed=2, **options).fit(X, targets, iterations=0)
    plain = ADMMNetwork(LAYERS, seed=2, **{**options, "start_from_targets": False})
    plain.fit(X, targets, iterations=0)
    ref = reference(ADMMNetwork(LAYERS, seed=2), X, targets, **options)
    state, forward_state = net.get_state(), plain.get_state()
    tol = 1e-6 if loss == "cross_entropy" else 1e-9  # the reference's prox is a SciPy solve
    np.testing.assert_allclose(state["z"][-1], ref.z[-1].T, rtol=tol, atol=tol)
    assert not np.allclose(state["z"][-1], forward_state["z"][-1], atol=1e-3)
    np.testing.assert_array_equal(state["z"][0], forward_state["z"][0])
    assert not np.any(state["lam"])
    net.fit(X, targets, iterations=3, warm_start=True)
    for _ in range(3):
        ref.step()
    for w, r in zip(net.weights, ref.weights, strict=True):
        np.testing.assert_allclose(w, r, rtol=100 * tol, atol=100 * tol * np.abs(r).max())


def test_start_from_targets_is_a_flag_and_in_the_header():
    assert admm.Config().start_from_targets is False
    assert parse_args(["--start-from-targets"]).start_from_targets is True
    assert "started from the targets" in admm.Config(start_from_targets=True).describe(3)
    assert "targets" not in admm.Config().describe(3)


@pytest.mark.parametrize("options", [{}, {"deterministic": True, "block_size": 16}])
def test_scheduled_refit_keeping_w1_reuses_the_iterations_features(rng, options):
    """The scheduled refits that keep W_1 take h(a_0 W_1^T) from the iteration
    before them (no second product, PhaseTimer shows one refit call per
    re-solved layer); the weights are those of ``step()`` + ``refit()``, which
    compute the features afresh, bit for bit."""
    X, y = data(rng)
    kept = {**OPTIONS, **options, "refit_input_layer": False, "start_from_targets": True}
    scheduled = ADMMNetwork(LAYERS, seed=2, **kept, refit_every=3, refit_first=1)
    scheduled.fit(X, y, iterations=0)
    with admm.PhaseTimer() as timer:
        for _ in range(7):
            scheduled.step()
    assert timer.calls["refit"] == 3 * (len(LAYERS) - 2)  # after 1, 4 and 7: W_2, W_3
    by_hand = ADMMNetwork(LAYERS, seed=2, **kept).fit(X, y, iterations=0)
    for it in range(1, 8):
        by_hand.step()
        if it in (1, 4, 7):
            with admm.PhaseTimer() as timer:
                by_hand.refit()
            assert timer.calls["refit"] == len(LAYERS) - 1  # the features, then W_2, W_3
    for w, v in zip(scheduled.weights, by_hand.weights, strict=True):
        np.testing.assert_array_equal(w, v)
    assert [h["objective"] for h in scheduled.history] == [h["objective"] for h in by_hand.history]


@pytest.mark.parametrize("refit_every", [0, 2])
def test_subset_start_is_a_run_on_every_fth_sample_then_all(rng, refit_every):
    """``subset_iterations=K, subset_stride=F``: K iterations of the reference
    on rows 0, F, 2F, ... from the Glorot weights, then the reference on all
    rows from the weights they leave; ``history`` holds the second run only."""
    X, y = data(rng, m=90)
    options = {**OPTIONS, "refit_every": refit_every, "start_from_targets": True}
    net = ADMMNetwork(LAYERS, seed=2, **options, subset_iterations=3, subset_stride=3)
    net.fit(X, y, iterations=4)
    start = reference(ADMMNetwork(LAYERS, seed=2), X[::3], y[::3], **options)
    for _ in range(3):
        start.step()
    ref = ReferenceADMM(X, y, LAYERS, start.weights, activation="hardsigmoid", **options)
    for _ in range(4):
        ref.step()
    for w, r in zip(net.weights, ref.weights, strict=True):
        np.testing.assert_allclose(w, r, rtol=1e-8, atol=1e-8 * np.abs(r).max())
    assert [h["iteration"] for h in net.history] == [1, 2, 3, 4]
    # Not the plain run from the Glorot weights.
    plain = ADMMNetwork(LAYERS, seed=2, **options).fit(X, y, iterations=4)
    assert not np.allclose(plain.weights[0], net.weights[0], rtol=1e-3)


def test_subset_start_only_on_a_fresh_fit(rng):
    """The subset run happens once, in the set-up of a fresh fit (so also
    before ``step()``: ``fit(X, y, 0)`` and N steps are ``fit(X, y, N)``, bit
    for bit); its iterations show in PhaseTimer, not in ``history``; a warm
    start continues."""
    X, y = data(rng, m=90)
    net = ADMMNetwork(LAYERS, seed=2, **OPTIONS, subset_iterations=2)
    with admm.PhaseTimer() as timer:
        net.fit(X, y, iterations=0)
    assert timer.calls["iteration"] == 2 and net.history == []
    stepped = [net.step() for _ in range(3)]
    fitted = ADMMNetwork(LAYERS, seed=2, **OPTIONS, subset_iterations=2)
    with admm.PhaseTimer() as timer:
        fitted.fit(X, y, iterations=3)
    assert timer.calls["iteration"] == 2 + 3 and len(fitted.history) == 3
    for w, v in zip(net.weights, fitted.weights, strict=True):
        np.testing.assert_array_equal(w, v)
    assert [r["objective"] for r in stepped] == [r["objective"] for r in fitted.history]
    with admm.PhaseTimer() as timer:
        fitted.fit(X, y, iterations=5, warm_start=True)
    assert timer.calls["iteration"] == 2 and len(fitted.history) == 5


def test_subset_options_are_validated_flags_and_in_the_header():
    with pytest.raises(ValueError, match="subset_stride must be at least 2"):
        ADMMNetwork(LAYERS, subset_iterations=2, subset_stride=1)
    with pytest.raises(ValueError, match="subset_stride 3 must divide block_size 16"):
        ADMMNetwork(LAYERS, subset_iterations=2, subset_stride=3, deterministic=True,
                    block_size=16)  # fmt: skip
    ADMMNetwork(LAYERS, subset_iterations=2, subset_stride=4, deterministic=True, block_size=16)
    args = parse_args(["--subset-iterations", "4", "--subset-stride", "3"])
    assert (args.subset_iterations, args.subset_stride) == (4, 3)
    assert parse_args([]).subset_iterations == 0
    described = admm.Config(subset_iterations=4).describe(3)
    assert "started by 4 iterations on every 4th sample" in described
    assert "started by" not in admm.Config().describe(3)


def test_refit_input_layer_is_a_flag_and_in_the_header():
    assert parse_args(["--no-refit-input-layer"]).refit_input_layer is False
    assert parse_args([]).refit_input_layer is True
    with pytest.raises(ValueError, match="refit_input_layer must be True or False"):
        ADMMNetwork(LAYERS, refit_input_layer="no")
    described = admm.Config(refit_every=3, refit_input_layer=False).describe(3)
    assert "refit every 3 iterations (W_1 kept)" in described
    assert "W_1 kept" not in admm.Config(refit_every=3).describe(3)


def test_refit_first_is_validated_a_flag_and_in_the_header():
    with pytest.raises(ValueError, match="refit_first 2 needs refit_every of at least 1"):
        ADMMNetwork(LAYERS, refit_first=2)
    with pytest.raises(ValueError, match="refit_first must be a non-negative integer"):
        ADMMNetwork(LAYERS, refit_every=2, refit_first=-1)
    assert parse_args(["--refit-every", "3", "--refit-first", "2"]).refit_first == 2
    assert parse_args([]).refit_first == 0
    described = admm.Config(refit_every=3, refit_first=2).describe(3)
    assert "refit every 3 iterations from iteration 2" in described
    assert "refit every 3 iterations" in admm.Config(refit_every=3).describe(3)


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


@pytest.mark.mpi
def test_phase_profile_shows_the_refits_of_the_fast_preset(shared_mnist):
    """``bench.studies.speed.phases`` on 2,000 images: the refits of ``--preset
    fast`` after iterations 1 and 4 (one call for W_2, one read-out of W_3;
    W_1 is kept), none other."""
    repo = Path(__file__).resolve().parent.parent
    args = ["-m", "bench.studies.speed.phases", "--data-dir", str(shared_mnist)]
    args += ["--preset", "fast", "--train", "2000", "--iterations", "6"]
    lines = run_mpi(2, args, timeout=TIMEOUT, cwd=repo).stdout.splitlines()
    assert len(lines[0].split(":")[1].split()) == 6  # seconds of six iterations
    assert lines[1] == "refits after iterations: 1 4"
    phases = {line.split()[0]: int(line.split()[-2]) for line in lines[3:]}
    assert phases["refit"] == 2 and phases["readout"] == 2
    assert phases["iteration"] == 6 and phases["weights"] == 18


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_fast_preset_is_the_same_on_any_number_of_ranks(tmp_path: Path, ranks: int):
    """``--preset fast`` (started from the targets, refits keeping W_1 with the
    iteration's features and reading W_L out) and a final ``--refit`` with
    a longer read-out, with ``--deterministic``: the weights of 2 and 3
    ranks are those of one, bit for bit."""
    path = make_npz(tmp_path / "d.npz")
    models = []
    for n in (1, ranks):
        model = tmp_path / f"m{n}.npz"
        args = ["-m", "admm.train", "--data", str(path), "--layers", "20,16,12,3"]
        args += ["--preset", "fast", "--no-deskew", "--deterministic", "--block-size", "8"]
        args += ["--iterations", "5", "--refit", "--readout-iterations", "10"]
        args += ["--save", str(model)]
        run_mpi(n, args, timeout=TIMEOUT)
        models.append(admm.load(model))
    for w, v in zip(models[0].weights, models[1].weights, strict=True):
        np.testing.assert_array_equal(w, v)
