"""Bad arguments raise a ValueError that names the problem, in one process.

The same checks on only one of several ranks are tested in ``test_mpi.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from admm import ADMMNetwork

LAYERS = (4, 3, 2)


@pytest.fixture
def data(rng):
    return rng.random((10, 4)), rng.integers(0, 2, 10)


@pytest.mark.parametrize("name", ["beta", "gamma", "rho"])
@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf, [1.0, -0.5], [1.0, np.nan]])
def test_non_positive_or_non_finite_hyper_parameters(name, value):
    if name == "gamma" and isinstance(value, list):
        value = value[1:]  # one hidden layer: one gamma
    with pytest.raises(ValueError, match=f"{name} must be positive and finite"):
        ADMMNetwork(LAYERS, **{name: value})


@pytest.mark.parametrize(
    ("name", "value", "count"),
    [
        ("beta", [1.0, 2.0, 3.0], 2),
        ("beta", [1.0], None),
        ("gamma", [1.0, 2.0], 1),
        ("rho", [1e-3] * 3, 2),
    ],
)
def test_wrong_number_of_per_layer_values(name, value, count):
    if count is None:  # a single value is a scalar for every layer: allowed
        ADMMNetwork(LAYERS, **{name: value})
        return
    with pytest.raises(ValueError, match=f"{name} must be a scalar or {count} values"):
        ADMMNetwork(LAYERS, **{name: value})


def test_per_layer_values_are_kept():
    net = ADMMNetwork((4, 3, 3, 2), beta=[1.0, 2.0, 3.0], gamma=[5.0, 6.0], rho=0.5)
    assert net.beta == (1.0, 2.0, 3.0)
    assert net.gamma == (5.0, 6.0)
    assert net.rho == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"loss": "poisson"}, "unknown loss 'poisson'"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"dtype": "int64"}, "dtype must be one of"),
        ({"dtype": "no-such-type"}, "dtype must be one of"),
        ({"warmup": -1}, "warmup must be a non-negative integer"),
        ({"warmup": 1.5}, "warmup must be a non-negative integer"),
        ({"seed": -3}, "seed must be a non-negative integer"),
    ],
)
def test_unknown_names_and_bad_scalars(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ADMMNetwork(LAYERS, **kwargs)


@pytest.mark.parametrize("layers", [(4,), (4, 0, 2), (4, -1, 2), (4, 2.5, 2), (4, True, 2)])
def test_bad_layers(layers):
    with pytest.raises(ValueError, match="layers must be at least two positive integer widths"):
        ADMMNetwork(layers)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([np.zeros((3, 4))], "weights must hold 2 arrays, got 1"),
        (
            [np.zeros((4, 3)), np.zeros((2, 3))],
            r"weights\[0\] has shape \(4, 3\), expected \(3, 4\)",
        ),
        (
            [np.zeros((3, 4)), np.zeros((2, 4))],
            r"weights\[1\] has shape \(2, 4\), expected \(2, 3\)",
        ),
        ([np.full((3, 4), np.nan), np.zeros((2, 3))], r"weights\[0\] contains NaN or inf"),
    ],
)
def test_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        ADMMNetwork(LAYERS, weights=weights)


def test_widths_must_match_X(data):
    X, y = data
    net = ADMMNetwork(LAYERS)
    with pytest.raises(ValueError, match=r"X must have shape \(samples, 4\).*got \(10, 5\)"):
        net.fit(np.hstack([X, X[:, :1]]), y, iterations=1)
    with pytest.raises(ValueError, match=r"X must have shape \(samples, 4\)"):
        net.fit(X[:, 0], y, iterations=1)
    with pytest.raises(ValueError, match=r"X must have shape \(samples, 4\)"):
        net.predict(np.zeros((3, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X(data, bad):
    X, y = data
    X = X.copy()
    X[3, 2] = bad
    net = ADMMNetwork(LAYERS)
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        net.fit(X, y, iterations=1)
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        net.decision_function(X)
    with pytest.raises(ValueError, match="X_val contains NaN or inf"):
        net.fit(X[:3] * 0 + 1, y[:3], iterations=1, X_val=X, y_val=y)


def test_X_must_be_real(data):
    _, y = data
    with pytest.raises(ValueError, match="X must hold real numbers"):
        ADMMNetwork(LAYERS).fit(np.zeros((10, 4), dtype=complex), y, iterations=1)


@pytest.mark.parametrize("labels", [[0, 1, 2], [-1, 0, 1]])
def test_labels_outside_range(data, labels):
    X, _ = data
    y = np.resize(np.array(labels), 10)
    with pytest.raises(ValueError, match=r"labels outside 0\.\.1"):
        ADMMNetwork(LAYERS).fit(X, y, iterations=1)


def test_labels_shape_and_type(data):
    X, y = data
    net = ADMMNetwork(LAYERS)
    with pytest.raises(ValueError, match="y must hold 10 class labels"):
        net.fit(X, y[:9], iterations=1)
    with pytest.raises(ValueError, match="y must hold integer class labels"):
        net.fit(X, y + 0.5, iterations=1)
    # integral floats are accepted
    net.fit(X, y.astype(float), iterations=1)


def test_squared_loss_targets(data):
    X, _ = data
    net = ADMMNetwork(LAYERS, loss="squared")
    with pytest.raises(ValueError, match=r"target array of shape \(10, 2\)"):
        net.fit(X, np.zeros(10), iterations=1)
    targets = np.zeros((10, 2))
    targets[0, 1] = np.nan
    with pytest.raises(ValueError, match="y contains NaN or inf"):
        net.fit(X, targets, iterations=1)


@pytest.mark.parametrize("iterations", [-2, 1.0, True])
def test_iterations_must_be_non_negative_integer(data, iterations):
    X, y = data
    with pytest.raises(ValueError, match="iterations must be a non-negative integer"):
        ADMMNetwork(LAYERS).fit(X, y, iterations=iterations)


def test_validation_arguments(data):
    X, y = data
    net = ADMMNetwork(LAYERS)
    with pytest.raises(ValueError, match="X_val and y_val must be given together"):
        net.fit(X, y, iterations=1, X_val=X)
    with pytest.raises(ValueError, match="y_val has 9 samples, X_val has 10"):
        net.fit(X, y, iterations=1, X_val=X, y_val=y[:9])
    with pytest.raises(ValueError, match="eval_every must be a positive integer"):
        net.fit(X, y, iterations=1, X_val=X, y_val=y, eval_every=0)
    with pytest.raises(ValueError, match="y has 9 samples, X has 10"):
        net.score(X, y[:9])


def test_failed_validation_leaves_network_usable(data):
    # A rejected fit must not half-initialise the network.
    X, y = data
    net = ADMMNetwork(LAYERS, rho=1e-3)
    before = [w.copy() for w in net.weights]
    with pytest.raises(ValueError):
        net.fit(X, y + 5, iterations=1)
    assert net.n_iter_ == 0 and net.history == []
    for a, b in zip(net.weights, before, strict=True):
        np.testing.assert_array_equal(a, b)
    net.fit(X, y, iterations=2)
    assert net.n_iter_ == 2
