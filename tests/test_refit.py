"""The forward refit (``ADMMNetwork.refit``, ``--refit``) against the NumPy reference.

``reference_admm.forward_refit`` is written from the formula (columns as
samples, dense ``numpy.linalg.solve``) and fed the network's own state, so
these tests check the refit alone, whatever the trajectory of ``fit``. The
runs on 1, 2 and 3 ranks read ``mpi_programs/fit_extensions.py``'s results
in ``test_extensions.py``; here: one process, a rank without samples, the
program, and an accuracy check on the embedded MNIST sample.
"""

from __future__ import annotations

from pathlib import Path

import admm
import numpy as np
import pytest
from admm import ADMMNetwork
from admm.network import NumericalError
from admm.train import parse_args, run
from mpirun import run_mpi
from reference_admm import forward, forward_refit
from test_checkpoint import state_arrays
from test_cli import make_npz, read_metrics, train
from test_extensions import LAYERS, PROGRAM, assert_refit_matches_reference, copied
from test_extensions import OPTIONS as EXTENSION_OPTIONS

# The accuracy-study options of test_extensions, with center a parameter here.
OPTIONS = {k: v for k, v in EXTENSION_OPTIONS.items() if k != "center"}


def data(rng, m=80):
    # Inputs in [2, 5]: far from centred, so that center changes the problem,
    # and wide enough that hidden units pass 1 (hard sigmoid is not ReLU).
    return 2.0 + 3.0 * rng.random((m, LAYERS[0])), rng.integers(0, LAYERS[-1], m)


def reference_refit(net: ADMMNetwork, X: np.ndarray) -> list[np.ndarray]:
    """``forward_refit`` of the network's current state."""
    state = net.get_state()
    assert net.rho_ is not None
    return forward_refit(
        X,
        [np.asarray(z, dtype=np.float64).T for z in state["z"]],
        net.ridges(net.n_iter_ - 1),  # the ridge of the last iteration
        net.activation,
        mean=net.input_mean_,
    )


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("activation", ["hardsigmoid", "relu"])
@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-10), ("float32", 1e-3)])
def test_refit_matches_reference(rng, monkeypatch, dtype, rtol, activation, center):
    # Forward features in blocks of 32 rows: the 80 samples take three, so
    # the products are accumulated across blocks.
    monkeypatch.setattr(admm.network, "PREDICT_BLOCK", 32)
    X, y = data(rng)
    net = ADMMNetwork(
        LAYERS, activation=activation, center=center, dtype=dtype, seed=5, **OPTIONS
    ).fit(X, y, iterations=6)
    before = copied(net.get_state())
    expected = reference_refit(net, X)
    assert net.refit() is net
    # Measured: at most 2e-13 (float64) and 3e-5 (float32) of each layer's
    # largest entry.
    for l, (w, r) in enumerate(zip(net.weights, expected, strict=True)):
        assert w.dtype == np.dtype(dtype) and w.shape == r.shape
        np.testing.assert_allclose(
            w, r, rtol=rtol, atol=rtol * np.abs(r).max(), err_msg=f"W_{l + 1}"
        )
    # The refit moves the weights by far more than the tolerance (measured:
    # by 10% to 190% of the largest entry in the last two layers).
    moved = [
        np.abs(old - r).max() / np.abs(r).max()
        for old, r in zip(before["weights"], expected, strict=True)
    ]
    assert max(moved) > 0.05, moved
    # The ADMM state is left as it is; the refit depends on it alone.
    after = net.get_state()
    for key in ("a", "z"):
        for u, v in zip(before[key], after[key], strict=True):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(before["lam"], after["lam"])
    assert net.n_iter_ == 6 and len(net.history) == 6
    refit = [np.array(w) for w in net.weights]
    net.refit()
    for u, v in zip(refit, net.weights, strict=True):
        np.testing.assert_array_equal(u, v)
    # Prediction uses the refit weights (centred as in training).
    np.testing.assert_allclose(
        net.decision_function(X),
        forward(expected, X - (net.input_mean_ if center else 0.0), activation),
        rtol=10 * rtol,
        atol=10 * rtol * np.abs(forward(expected, X, activation)).max(),
    )


def test_refit_needs_a_state(tmp_path):
    net = ADMMNetwork(LAYERS)
    with pytest.raises(RuntimeError, match="call fit"):
        net.refit()
    net.save(tmp_path / "m.npz")
    with pytest.raises(RuntimeError, match="a loaded model has no state"):
        admm.load(tmp_path / "m.npz").refit()


@pytest.mark.parametrize(
    ("method", "options", "layer"),
    [("refit_weights", {}, 2), ("readout_weights", {"readout_iterations": 3}, 3)],
)
def test_refit_failure_leaves_the_weights(rng, monkeypatch, method, options, layer):
    """NaN in a refit W_l (a least-squares layer, or the read-out's W_L): a
    :class:`NumericalError` naming the layer, the weights unchanged."""
    X, y = data(rng)
    net = ADMMNetwork(LAYERS, **OPTIONS, **options).fit(X, y, iterations=3)
    before = [np.array(w) for w in net.weights]
    real = getattr(admm.solver.Solver, method)

    def poisoned(self, *args):
        w = real(self, *args)
        if method == "readout_weights" or args[0] == layer:
            w[0, 0] = np.nan
        return w

    monkeypatch.setattr(admm.solver.Solver, method, poisoned)
    with pytest.raises(NumericalError, match=f"refit after iteration 3, layer {layer}") as info:
        net.refit()
    assert (info.value.iteration, info.value.layer) == (3, layer)
    for u, v in zip(before, net.weights, strict=True):
        np.testing.assert_array_equal(u, v)


def test_warm_start_continues_from_the_refit_weights(rng):
    X, y = data(rng)
    refit = ADMMNetwork(LAYERS, seed=1, **OPTIONS).fit(X, y, iterations=3)
    state = copied(refit.get_state())
    refit.refit()
    state["weights"] = [np.array(w) for w in refit.weights]
    refit.fit(X, y, iterations=6, warm_start=True)
    # The same as a state whose weights were replaced by the refit ones ...
    replaced = ADMMNetwork(LAYERS, seed=1, **OPTIONS)
    replaced.set_state(state, X, y)
    replaced.fit(X, y, iterations=6, warm_start=True)
    for u, v in zip(refit.weights, replaced.weights, strict=True):
        np.testing.assert_array_equal(u, v)
    # ... and not the trajectory of an uninterrupted run.
    straight = ADMMNetwork(LAYERS, seed=1, **OPTIONS).fit(X, y, iterations=6)
    assert refit.history[-1]["objective"] != straight.history[-1]["objective"]


def test_refit_of_a_restored_deterministic_state(rng):
    # set_state does not build the summation blocks; refit must, or it would
    # sum in one piece and round differently from the fitted network.
    X, y = data(rng, m=100)
    options = {**OPTIONS, "deterministic": True, "block_size": 16, "center": True}
    fitted = ADMMNetwork(LAYERS, **options).fit(X, y, iterations=4)
    restored = ADMMNetwork(LAYERS, **options)
    restored.set_state(copied(fitted.get_state()), X, y)
    fitted.refit()
    restored.refit()
    for u, v in zip(fitted.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(u, v)


# ------------------------------------------------------------------ MPI


@pytest.mark.mpi
def test_refit_with_a_rank_without_samples(tmp_path):
    # 20 samples in blocks of 16 on 3 ranks: rank 2 holds none, and its
    # share of every sum must be zero (the reduction buffers are reused).
    run_mpi(3, [str(PROGRAM), str(tmp_path), "20", "4", "0"])
    with np.load(tmp_path / "result.npz") as f:
        result = {k: f[k] for k in f.files}
    assert result["counts"].tolist() == [16, 4, 0]
    assert_refit_matches_reference(result, 3)


# -------------------------------------------------------------- the program

#: Two hidden layers, so that the last refit runs features through two.
WIDE = (20, 16, 12, 3)


@pytest.fixture(scope="module")
def data_npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("data") / "small.npz")


def run_best(data: Path, *args: str):
    """``--preset best`` (which refits) on 2 ranks with two hidden layers.

    Without its deskewing: these 20 features are not square images
    (``test_checkpoint`` runs the whole preset on square ones).
    """
    layers = ",".join(map(str, WIDE))
    return train(
        2, data, "--layers", layers, "--preset", "best", "--no-deskew", "--warmup", "3", *args
    )


@pytest.mark.mpi
def test_train_refit_saves_the_refit_weights(tmp_path, data_npz):
    model, metrics, saved = tmp_path / "m.npz", tmp_path / "run.jsonl", tmp_path / "ck"
    proc = run_best(
        data_npz, "--iterations", "8", "--checkpoint", str(saved), "--save", str(model),
        "--metrics", str(metrics),
    )  # fmt: skip
    start, done = read_metrics(metrics)[0], read_metrics(metrics)[-1]
    assert start["refit"] is True and done["refit"] is True and done["refit_time_s"] >= 0
    assert "refit yes" in proc.stdout and "refit: every W_l re-solved" in proc.stdout
    # The library on one process: the same fit, then refit().
    with np.load(data_npz) as f:
        X, y, X_test, y_test = f["X_train"], f["y_train"], f["X_test"], f["y_test"]
    options = {**admm.PRESETS["best"], "warmup": 3, "deskew": False}
    net = ADMMNetwork(WIDE, **options).fit(X, y, iterations=8)
    plain = [np.array(w) for w in net.weights]
    before = net.score(X_test, y_test)
    net.refit()
    loaded = admm.load(model)
    state = state_arrays(saved)
    for l, (w, p) in enumerate(zip(net.weights, plain, strict=True)):
        # The model holds the refit weights, the checkpoint those of iteration 8.
        np.testing.assert_allclose(loaded.weights[l], w, rtol=1e-9, atol=1e-9 * np.abs(w).max())
        np.testing.assert_allclose(state[f"0/weights{l + 1}"], p, rtol=1e-9, atol=1e-9)
    assert not np.allclose(loaded.weights[-1], plain[-1], rtol=1e-3)
    assert done["final_test_accuracy"] == loaded.score(X_test, y_test)
    assert done["test_accuracy_before_refit"] == before
    assert f"test accuracy {before:.4f} -> {done['final_test_accuracy']:.4f}" in proc.stdout


@pytest.mark.mpi
def test_resume_after_a_refit_run_continues_plain_admm(tmp_path, data_npz):
    # The first run refits after its final checkpoint: resuming from that
    # checkpoint must continue the ADMM trajectory, not the refit weights.
    full, part, rest = tmp_path / "full", tmp_path / "part", tmp_path / "rest"
    run_best(data_npz, "--iterations", "10", "--checkpoint", str(full),
             "--save", str(tmp_path / "full.npz"))  # fmt: skip
    run_best(data_npz, "--iterations", "5", "--checkpoint", str(part),
             "--save", str(tmp_path / "part.npz"))  # fmt: skip
    proc = run_best(
        data_npz, "--iterations", "10", "--resume", str(part), "--checkpoint", str(rest),
        "--save", str(tmp_path / "rest.npz"),
    )  # fmt: skip
    assert "at iteration 5" in proc.stdout
    whole, resumed = state_arrays(full), state_arrays(rest)
    assert whole.keys() == resumed.keys()
    for key in whole:
        np.testing.assert_array_equal(whole[key], resumed[key], err_msg=key)
    with np.load(tmp_path / "full.npz") as a, np.load(tmp_path / "rest.npz") as b:
        for key in ("W1", "W2", "W3"):
            np.testing.assert_array_equal(a[key], b[key])
    # The first run's model was refit: not the weights of its checkpoint.
    with np.load(tmp_path / "part.npz") as f:
        assert not np.array_equal(f["W3"], state_arrays(part)["0/weights3"])


def test_train_refit_failure_keeps_the_checkpoint_and_saves_no_model(
    tmp_path, data_npz, monkeypatch
):
    # In this process (one rank): a refit that fails as NaN would.
    def failing(self):
        raise NumericalError("numerical failure in the refit after iteration 4, layer 2: x", 4, 2)

    monkeypatch.setattr(ADMMNetwork, "refit", failing)
    model, metrics, saved = tmp_path / "m.npz", tmp_path / "run.jsonl", tmp_path / "ck"
    args = parse_args(
        ["--data", str(data_npz), "--layers", "20,16,3", "--iterations", "4", "--refit",
         "--checkpoint", str(saved), "--save", str(model), "--metrics", str(metrics)]
    )  # fmt: skip
    with pytest.raises(NumericalError, match=f"checkpoint of iteration 4 in {saved} is kept"):
        run(args)
    assert not model.exists()
    assert state_arrays(saved)["0/weights1"].shape == (16, 20)
    error = read_metrics(metrics)[-1]
    assert error["event"] == "error" and (error["iteration"], error["layer"]) == (4, 2)
