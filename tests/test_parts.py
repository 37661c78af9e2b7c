"""Every registered activation and loss, through the part's own interface.

These tests are driven by the registries (``admm.activations``,
``admm.losses``): a part added there is tested here without a line more.
The z-update of an activation must be the global minimum of its entry-wise
problem, checked against a fine grid that always holds the part's kinks
(``Activation.kinks``), its neighbours and points next to them; a loss's
update must minimise its per-sample problem, checked against SciPy, and
return the objective terms its ``value`` gives. Kernel-level tests of each
compiled update (exact ties, memory orders, corner cases) are in
``test_kernels*.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from admm import activations, losses
from admm.config import Config
from scipy.optimize import minimize

DTYPES = [np.float32, np.float64]
#: Agreement of the part's cost with the best grid or SciPy cost, relative to
#: the cost's scale: float32 candidates are computed in float32.
RTOL = {np.float32: 2e-5, np.float64: 1e-9}


def problems(rng: np.random.Generator, kinks: tuple[float, ...], n: int = 400):
    """Entry-wise problems ``(a, m, gamma, beta)``: random ones, and ``m`` at,
    just below and just above every kink, with ``a`` around the kink's values."""
    tiny = [0.0, 1e-7, -1e-7, 1e-3, -1e-3, 0.05, -0.05]
    m = [k + d for k in kinks for d in tiny]
    m = np.array(m * 8 + list(rng.uniform(-3, 3, n)))
    a = rng.uniform(-1.5, 2.5, m.size)
    gamma = rng.choice([0.1, 1.0, 20.0], m.size)
    beta = rng.choice([0.05, 0.2, 1.0, 30.0], m.size)
    return a, m, gamma, beta


@pytest.mark.parametrize("name", activations.names())
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_z_update_is_the_global_minimum(rng, name, dtype):
    act = activations.get(name, Config(activation=name))
    a, m, gamma, beta = problems(rng, act.kinks)

    def h(z: np.ndarray) -> np.ndarray:
        z = np.ascontiguousarray(z, dtype=np.float64)
        return act.forward(z, np.empty_like(z))

    def cost(z, a, m, g, b):
        return g * (a - h(z)) ** 2 + b * (z - m) ** 2

    # One scalar gamma/beta per call, as the solver calls it.
    for g in np.unique(gamma):
        for b in np.unique(beta):
            sel = (gamma == g) & (beta == b)
            if not sel.any():
                continue
            z = m[sel].astype(dtype)
            m_stored = z.copy()
            sums = act.z_update(z, a[sel].astype(dtype), float(g), float(b))
            a64, m64 = a[sel].astype(dtype).astype(np.float64), m_stored.astype(np.float64)
            got = cost(z.astype(np.float64), a64, m64, g, b)
            # The minimiser lies within |z - m| <= sqrt(cost at z = m / beta).
            reach = np.sqrt(cost(m64, a64, m64, g, b) / b) + 1e-9
            base = np.linspace(-1.0, 1.0, 4001)
            grid = m64[:, None] + reach[:, None] * base[None, :]
            extra = np.array([k + d for k in act.kinks for d in (0.0, 1e-9, -1e-9)])
            grid = np.concatenate([grid, np.broadcast_to(extra, (grid.shape[0], extra.size))], 1)
            best = cost(grid, a64[:, None], m64[:, None], g, b).min(axis=1)
            scale = np.maximum(cost(m64, a64, m64, g, b), 1e-12)
            assert np.all(got <= best + RTOL[dtype] * scale), (name, g, b)
            # The returned sums are those of the stored result.
            np.testing.assert_allclose(
                sums,
                (np.sum((a64 - h(z)) ** 2), np.sum((z.astype(np.float64) - m64) ** 2)),
                rtol=1e-10,
                atol=1e-12,
            )


def loss_problem(rng, loss, m: int, k: int, n_classes: int):
    """Targets of ``loss`` for ``m`` samples of ``n_classes`` classes and ``k`` outputs."""
    labels = rng.integers(0, n_classes, m)
    return loss.targets(loss.encode_labels(labels, k, np.dtype(np.float64)), m, k, np.float64)


#: Every loss with every output width it accepts for 2 and for 4 classes.
LOSS_CASES = [
    (name, n_classes, k)
    for name in losses.names()
    for n_classes in (2, 4)
    for k in losses.get(name).outputs_for(n_classes)
]


@pytest.mark.parametrize(("name", "n_classes", "k"), LOSS_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multiplier", [False, True])
def test_loss_update_minimises_its_problem(rng, name, n_classes, k, dtype, multiplier):
    loss = losses.get(name, Config(loss=name))
    m, beta = 12, 0.7
    targets = loss_problem(rng, loss, m, k, n_classes)
    if np.issubdtype(targets.dtype, np.floating):
        targets = targets.astype(dtype)
    W_a = rng.normal(0, 1.5, (m, k)).astype(dtype)  # W_L a_{L-1}
    lam = rng.normal(0, 0.5, (m, k)).astype(dtype)
    lam_before = lam.copy()
    z = W_a.copy()
    value, dot, res = loss.update(z, lam, targets, beta, multiplier)
    for j in range(m):

        def objective(v, j=j):
            return (
                loss.value(v[None, :], targets[j : j + 1])
                + float(v @ lam_before[j])
                + beta * float(np.sum((v - W_a[j]) ** 2))
            )

        best = minimize(
            objective,
            W_a[j].astype(np.float64),
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
        )
        got = objective(z[j].astype(np.float64))
        assert got <= best.fun + RTOL[dtype] * max(1.0, abs(best.fun)), (name, j)
    expected_lam = lam_before + beta * (z - W_a) if multiplier else lam_before
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(lam, expected_lam, **tol)
    z64 = z.astype(np.float64)
    np.testing.assert_allclose(value, loss.value(z64, targets), rtol=1e-6)
    np.testing.assert_allclose(dot, np.sum(z64 * lam.astype(np.float64)), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(res, np.sum((z64 - W_a) ** 2), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(("name", "n_classes", "k"), LOSS_CASES)
def test_loss_predicts_the_labels_it_was_trained_towards(rng, name, n_classes, k):
    """Outputs at the minimiser of the loss alone (no coupling) predict the labels."""
    loss = losses.get(name, Config(loss=name))
    labels = rng.integers(0, n_classes, 50)
    targets = loss_problem(rng, loss, 50, k, n_classes)
    targets = loss.targets(loss.encode_labels(labels, k, np.dtype(np.float64)), 50, k, np.float64)
    z = np.zeros((50, k))
    lam = np.zeros((50, k))
    for _ in range(30):  # prox steps with a small coupling walk towards the minimiser
        loss.update(z, lam, targets, 0.05, False)
    np.testing.assert_array_equal(loss.predict(z), labels)
    np.testing.assert_array_equal(loss.labels(labels, k), labels)
    if hasattr(loss, "proba"):
        proba = loss.proba(z)
        assert proba.shape == (50, n_classes)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_array_equal(np.argmax(proba, axis=1), labels)


def test_probabilities_are_scipy_s_without_overflow(rng):
    from scipy.special import expit, softmax

    scores = np.concatenate([rng.normal(0, 3, (20, 4)), [[1000.0, -1000.0, 0.0, 999.0]]])
    proba = losses.get("cross_entropy").proba(scores)
    np.testing.assert_allclose(proba, softmax(scores, axis=1), rtol=1e-12, atol=1e-300)
    one = np.array([[-1000.0], [-3.0], [0.0], [2.5], [1000.0]])
    proba = losses.get("logistic").proba(one)
    np.testing.assert_allclose(proba[:, 1], expit(one[:, 0]), rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(proba))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3, 0.9])
def test_cross_entropy_value_with_label_smoothing(rng, smoothing):
    """``value`` is ``sum_j logsumexp(z_j) - <t_j, z_j>`` with the smoothed targets
    ``t_j = (1 - s) e_{y_j} + s / n_L``, written out directly; ``proba`` ignores s."""
    from scipy.special import logsumexp, softmax

    k = 5
    loss = losses.get("cross_entropy", Config(loss="cross_entropy", label_smoothing=smoothing))
    assert loss.label_smoothing == smoothing
    z = np.concatenate([rng.normal(0, 3, (30, k)), [[800.0, -700.0, 0.0, 799.0, 5.0]]])
    labels = rng.integers(0, k, z.shape[0])
    t = np.full(z.shape, smoothing / k)
    t[np.arange(z.shape[0]), labels] += 1.0 - smoothing
    expected = sum(logsumexp(z[j]) - t[j] @ z[j] for j in range(z.shape[0]))
    np.testing.assert_allclose(loss.value(z, labels), expected, rtol=1e-13)
    if smoothing:
        plain = losses.get("cross_entropy").value(z, labels)
        assert abs(loss.value(z, labels) - plain) > 1e-3 * abs(plain)
    np.testing.assert_array_equal(loss.proba(z), losses.get("cross_entropy").proba(z))
    np.testing.assert_allclose(loss.proba(z), softmax(z, axis=1), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_update_returns_the_smoothed_value(rng, dtype):
    """The update's loss term is ``value`` of its result, both smoothed alike."""
    loss = losses.get("cross_entropy", Config(loss="cross_entropy", label_smoothing=0.3))
    z = rng.normal(0, 2, (40, 4)).astype(dtype)
    lam = rng.normal(0, 0.5, (40, 4)).astype(dtype)
    labels = rng.integers(0, 4, 40)
    value, _, _ = loss.update(z, lam, labels, 0.5, True)
    np.testing.assert_allclose(value, loss.value(z, labels), rtol=1e-12)
