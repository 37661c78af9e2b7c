"""The read-out refit (``readout_iterations``, issue 16) against the NumPy reference.

In every forward refit, ``W_L`` is fitted to the loss itself on the refit's
last hidden features ``f_{L-1}`` by ADMM on fixed features instead of by least
squares to the state's ``z_L``. ``reference_admm.readout`` is written from the
formula (columns as samples, dense ``numpy.linalg.solve``) and fed the
network's own state; the squared loss, whose read-out problem has a closed
form, checks that the iteration converges to the right minimiser. The runs
under ``mpiexec`` on 1, 2 and 3 ranks are in ``tests/test_extensions.py``
(every rank's read-out the same and the reference's) and, with
``--deterministic``, those of ``--preset fast`` (whose refits read out) in
``tests/test_speed_options.py``; a failing read-out is in
``tests/test_refit.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from admm import ADMMNetwork
from admm.metrics import memory_breakdown
from reference_admm import activation_fn, forward_refit, hinge_loss, readout
from test_extensions import LAYERS, OPTIONS, data

READOUT = {"readout_iterations": 25, "readout_beta": 0.7, "readout_ridge": 1e-3}


def targets(loss: str, y: np.ndarray, n_out: int) -> np.ndarray:
    """``fit``'s ``y`` for ``loss``: labels, or one-hot rows for the squared loss."""
    return np.eye(n_out)[y] if loss == "squared" else y


def scalar_penalties() -> dict:
    """OPTIONS and READOUT with one beta and gamma for every layer (OPTIONS'
    are per layer of LAYERS), for networks of other depths' widths."""
    return {**OPTIONS, **READOUT, "beta": 1.0, "beta_max": None, "gamma": 2.0, "gamma_max": None}


def reference_weights(net: ADMMNetwork, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The reference refit of ``net``'s current state with the read-out ``W_L``."""
    state = net.get_state()
    z = [np.asarray(v, dtype=np.float64).T for v in state["z"]]
    keep = None if net.config.refit_input_layer else np.array(net.weights[0], np.float64)
    mean = net.input_mean_
    weights = forward_refit(
        X, z, net.ridges(net.n_iter_ - 1), net.activation, mean=mean, input_weights=keep
    )
    h = activation_fn(net.activation)
    f = (X - (0.0 if mean is None else mean)).T
    for w in weights[:-1]:
        f = h(w @ f)
    # One output: the targets themselves (0/1 labels, or real values);
    # otherwise one-hot columns of the labels.
    Y = (
        np.asarray(y, np.float64).reshape(1, -1)
        if net.layers[-1] == 1
        else np.eye(net.layers[-1])[y].T
    )
    c = net.config
    weights[-1] = readout(
        f, z[-1], Y, c.loss, c.readout_beta, c.readout_ridge, c.readout_iterations
    )
    return weights


@pytest.mark.parametrize("loss", ["hinge", "squared", "cross_entropy"])
@pytest.mark.parametrize("refit_input_layer", [True, False])
@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-12), ("float32", 1e-4)])
def test_readout_matches_reference(rng, loss, refit_input_layer, dtype, rtol):
    if loss == "cross_entropy":
        # The reference's prox is SciPy's BFGS (gradient to 1e-13), the
        # library's a Newton iteration: 25 read-out iterations carry their
        # difference to about 3e-9 of W_L.
        rtol = max(rtol, 1e-7)
    X, y = data(rng)
    options = {**OPTIONS, **READOUT, "loss": loss, "dtype": dtype,
               "refit_input_layer": refit_input_layer}  # fmt: skip
    net = ADMMNetwork(LAYERS, seed=2, **options).fit(X, targets(loss, y, 3), iterations=5)
    least_squares = forward_refit(
        X,
        [np.asarray(v, dtype=np.float64).T for v in net.get_state()["z"]],
        net.ridges(net.n_iter_ - 1),
        net.activation,
        mean=net.input_mean_,
        input_weights=None if refit_input_layer else np.array(net.weights[0], np.float64),
    )
    expected = reference_weights(net, X, y)
    net.refit()
    # Measured: at most 5e-15 (float64; 3e-9 with cross_entropy) and 5e-6
    # (float32) of each layer's largest entry.
    for l, (w, r) in enumerate(zip(net.weights, expected, strict=True)):
        assert w.dtype == np.dtype(dtype)
        np.testing.assert_allclose(
            w, r, rtol=rtol, atol=rtol * np.abs(r).max(), err_msg=f"W_{l + 1}"
        )
    # The read-out moves W_L far from the least-squares refit (measured: by
    # 45% to 90% of its largest entry), far beyond the tolerance.
    moved = np.abs(least_squares[-1] - expected[-1]).max() / np.abs(expected[-1]).max()
    assert moved > 0.1, moved


@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-12), ("float32", 1e-4)])
def test_readout_over_the_held_input_features(rng, dtype, rtol):
    """Keeping ``W_1`` with ``n_2 = n_1``: ``f_2`` is formed over the held
    ``f_1`` in place, block by block; the weights are still the reference's."""
    X, y = data(rng)
    layers = (LAYERS[0], 8, 8, LAYERS[-1])
    options = {**scalar_penalties(), "dtype": dtype, "refit_input_layer": False}
    net = ADMMNetwork(layers, seed=2, refit_every=2, **options).fit(X, y, iterations=3)
    expected = reference_weights(net, X, y)
    net.refit()
    for w, r in zip(net.weights, expected, strict=True):
        np.testing.assert_allclose(w, r, rtol=rtol, atol=rtol * np.abs(r).max())


@pytest.mark.parametrize("loss", ["hinge", "logistic", "squared"])
def test_readout_with_one_output(rng, loss):
    """One output unit: the binary hinge and logistic losses on 0/1 labels,
    and least squares on real targets (regression), against the reference."""
    X, labels = data(rng)
    y = labels % 2 if loss != "squared" else X[:, :2].sum(axis=1) - 5.0
    layers = (LAYERS[0], 8, 5, 1)
    options = {**scalar_penalties(), "loss": loss}
    net = ADMMNetwork(layers, seed=2, **options).fit(X, y, iterations=4)
    expected = reference_weights(net, X, y)
    net.refit()
    # The logistic prox of the reference is a bounded Brent search (to 1e-13).
    rtol = 1e-7 if loss == "logistic" else 1e-12
    for w, r in zip(net.weights, expected, strict=True):
        np.testing.assert_allclose(w, r, rtol=rtol, atol=rtol * np.abs(r).max())


def test_readout_is_the_same_per_summation_block(rng):
    """With ``deterministic`` the read-out's sums run by summation block (the
    same tree as the iteration's); the weights agree with the reference."""
    X, y = data(rng, m=70)
    options = {**OPTIONS, **READOUT, "deterministic": True, "block_size": 16}
    net = ADMMNetwork(LAYERS, seed=2, **options).fit(X, y, iterations=4)
    expected = reference_weights(net, X, y)
    net.refit()
    for w, r in zip(net.weights, expected, strict=True):
        np.testing.assert_allclose(w, r, rtol=1e-9, atol=1e-9 * np.abs(r).max())


def test_squared_readout_converges_to_the_ridge_solution(rng):
    """With the squared loss the read-out problem is ridge regression on the
    network's own last hidden features: ``W_L^T = (F^T F + beta rho I)^{-1}
    F^T Y``. The read-out's ADMM must reach it, whatever ``z_L`` it starts from."""
    X, y = data(rng, m=90)
    Y = np.eye(3)[y]
    beta, ridge = 0.5, 1e-2
    options = {**OPTIONS, "loss": "squared", "readout_beta": beta, "readout_ridge": ridge}
    net = ADMMNetwork(LAYERS, seed=4, **options, readout_iterations=400).fit(X, Y, iterations=3)
    net.refit()
    F = net.hidden_features(X)
    gram = F.T @ F
    rho = ridge * np.trace(gram) / len(gram)
    closed_form = np.linalg.solve(gram + beta * rho * np.eye(len(gram)), F.T @ Y).T
    np.testing.assert_allclose(net.weights[-1], closed_form, rtol=1e-8, atol=1e-10)
    # Few iterations are visibly short of it: the comparison is not met by the start.
    short = ADMMNetwork(LAYERS, seed=4, **options, readout_iterations=2).fit(X, Y, iterations=3)
    short.refit()
    assert np.abs(short.weights[-1] - closed_form).max() > 1e-4 * np.abs(closed_form).max()


def test_hinge_readout_lowers_the_read_out_objective(rng):
    """The read-out minimises ``sum C(W_L f) + beta rho ||W_L||^2``: more
    iterations give a lower value than the least-squares start, and then
    settle (the difference between 400 and 800 iterations is small)."""
    X, y = data(rng, m=90)
    beta, ridge = 1.0, 1e-3
    onehot = np.eye(3)[y].T

    def objective(iterations: int) -> float:
        options = {**OPTIONS, "readout_beta": beta, "readout_ridge": ridge,
                   "readout_iterations": iterations}  # fmt: skip
        net = ADMMNetwork(LAYERS, seed=4, **options).fit(X, y, iterations=4).refit()
        F = net.hidden_features(X)
        rho = ridge * np.sum(F * F) / F.shape[1]
        w = net.weights[-1]
        return hinge_loss(w @ F.T, onehot) + beta * rho * float(np.sum(w * w))

    start, some, many, more = (objective(k) for k in (0, 20, 400, 800))
    assert some < start and many < some
    assert abs(many - more) <= 1e-3 * more, (many, more)
    assert many < 0.95 * start, (start, many)


def test_refit_overrides_the_readout_for_one_refit(rng):
    """``refit(readout_iterations=..., ...)`` is the refit of a network built
    with those options, bit for bit, and leaves the network's options alone;
    a value the option refuses raises before anything changes."""
    X, y = data(rng)
    net = ADMMNetwork(LAYERS, seed=2, **OPTIONS).fit(X, y, iterations=4)
    configured = ADMMNetwork(LAYERS, seed=2, **OPTIONS, **READOUT).fit(X, y, iterations=4)
    configured.refit()
    least_squares = [np.array(w) for w in net.refit().weights]
    net.refit(**READOUT)
    for w, v in zip(net.weights, configured.weights, strict=True):
        np.testing.assert_array_equal(w, v)
    assert net.readout_iterations == 0
    with pytest.raises(ValueError, match="readout_beta must be a positive"):
        net.refit(readout_beta=-1.0)
    net.refit()  # the options' read-out (none): the least-squares refit again
    for w, v in zip(net.weights, least_squares, strict=True):
        np.testing.assert_array_equal(w, v)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("readout_iterations", -1, "non-negative integer"),
        ("readout_beta", 0.0, "positive finite"),
        ("readout_ridge", float("inf"), "positive finite"),
    ],
)
def test_readout_options_are_checked(name, value, problem):
    with pytest.raises(ValueError, match=f"{name} must be a {problem}"):
        ADMMNetwork(LAYERS, **{name: value})


def test_memory_model_counts_the_readout(rng):
    """The read-out holds ``f_{L-1}`` whole, its own ``z`` and ``lam`` and one
    more ``(m, n_L)`` term beside the refit's temporaries."""
    layers, m = (20, 30, 8, 3), 57
    base = memory_breakdown(layers, m, "float32", refit=True)
    held = memory_breakdown(layers, m, "float32", refit=True, readout=True)
    arrays = m * (layers[-2] + 3 * layers[-1]) * 4
    assert held["transient"] >= arrays + base["weights"]
    assert {k: v for k, v in held.items() if k != "transient"} == {
        k: v for k, v in base.items() if k != "transient"
    }
    # Keeping W_1: f_1 is held too while f_{L-1} is formed from it.
    both = memory_breakdown(layers, m, "float32", refit=True, readout=True, input_features=True)
    assert both["transient"] >= held["transient"] + m * layers[1] * 4 - base["weights"]
    assert memory_breakdown(layers, m, "float32", readout=True) == memory_breakdown(
        layers, m, "float32"
    )  # no refit, no read-out
    # Equal widths: f_2 overwrites the held f_1; only z, lam and the term
    # lam / (2 beta) are new (n_L = 3 each), no (m, n_{L-1}) array.
    square = (20, 30, 30, 3)
    kept = memory_breakdown(square, m, "float32", refit=True, input_features=True)
    over = memory_breakdown(square, m, "float32", refit=True, readout=True, input_features=True)
    assert 0 < over["transient"] - kept["transient"] <= m * 3 * 3 * 4
