"""The kernels of issue 15 (new activations and losses) against independent minimisers.

Each exact block minimiser is checked against a reference that does not use
its closed form or its iteration: a fine grid search of the objective plus a
local refinement of the best grid point by ``scipy.optimize.minimize_scalar``
(the 1-D updates), or ``scipy.optimize.minimize`` (the cross-entropy
vectors), in float32 and float64 and both memory orders. Random cases are
mixed with adversarial ones: points next to every kink and jump, m exactly
at 0 and +-tiny, and ties constructed in exact binary arithmetic whose
documented winner is checked. The returned sums are checked against NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference_admm import hinge_prox
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_expit, logsumexp, softmax
from test_kernels import ATOL, DTYPES, ORDERS, RTOL, as_layout

from admm_core import (
    apply_activation,
    apply_activation_smooth,
    hidden_z_update,
    hidden_z_update_smooth,
    output_cross_entropy_update,
    output_hinge_update,
    output_logistic_update,
)

#: The dtypes, orders, tolerances and as_layout are test_kernels.py's. Relative slack of a cost against the reference minimum: the kernel
#: compares its candidates in the arrays' precision and stores z in it.
COST_RTOL = {np.float32: 4e-6, np.float64: 1e-13}

#: (activation, negative_slope) pairs of the hidden z-update under test;
#: slopes 0 (ReLU's shape), the PyTorch default, a large one, 1 (identity)
#: and one above 1, all accepted.
HIDDEN = [
    ("leaky_relu", 0.0),
    ("leaky_relu", 0.01),
    ("leaky_relu", 0.3),
    ("leaky_relu", 1.0),
    ("leaky_relu", 2.5),
    ("step", 0.01),
    ("sign", 0.01),
]
#: All activations of issue 15, the smooth ones too (their minimiser has its
#: own test: its stationary points spread over m +- gamma (|a| + 1) / beta).
ALL = [*HIDDEN, ("sigmoid", 0.01), ("tanh", 0.01)]


def h(name: str, slope: float, z):
    """The activation of ``hidden_z_update`` written from its definition."""
    z = np.asarray(z, dtype=np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z)
    if name == "step":
        return np.where(z > 0, 1.0, 0.0)
    if name == "sign":
        return np.where(z > 0, 1.0, -1.0)
    if name == "sigmoid":
        return expit(z)
    if name == "tanh":
        return np.tanh(z)
    raise ValueError(name)


def z_update(z, a, gamma, beta, activation, slope):
    """``hidden_z_update``, or its ``_smooth`` twin for sigmoid and tanh."""
    if activation in ("sigmoid", "tanh"):
        return hidden_z_update_smooth(z, a, gamma, beta, activation)
    return hidden_z_update(z, a, gamma, beta, activation, slope)


def activate(z, out, scale, activation, slope):
    """``apply_activation``, or its ``_smooth`` twin for sigmoid and tanh."""
    if activation in ("sigmoid", "tanh"):
        return apply_activation_smooth(z, out, scale, activation)
    return apply_activation(z, out, scale, activation, slope)


def refined_minimum(cost, lo: float, hi: float, count: int, extra=()) -> np.ndarray:
    """Entry-wise minimum of ``cost`` by a grid search, then a local refinement.

    ``cost(z, i)`` is the objective of entry ``i`` (``i`` a slice or index,
    ``z`` broadcastable against it). The best point of a grid of ``count``
    points on ``[lo, hi]`` plus ``extra`` is refined by a bounded
    ``minimize_scalar`` over the two grid cells around it; the smaller of
    the two values is returned (an upper bound on the true minimum that is
    tight to the refinement's tolerance).
    """
    grid = np.union1d(np.linspace(lo, hi, count), np.asarray(extra, dtype=np.float64))
    costs = cost(grid[:, None], slice(None))
    best = np.argmin(costs, axis=0)
    out = costs[best, np.arange(costs.shape[1])]
    step = (hi - lo) / (count - 1)
    for i, g in enumerate(grid[best]):
        res = minimize_scalar(
            lambda t, i=i: float(cost(np.float64(t), i)),
            bounds=(g - step, g + step),
            method="bounded",
            options={"xatol": 1e-13},
        )
        out[i] = min(out[i], res.fun)
    return out


# ---------------------------------------------------------------------------
# hidden z-updates


def hidden_inputs(rng, count: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(a, m) spread widely (a also outside h's range), plus kink neighbours."""
    a = rng.uniform(-2.0, 2.0, count)
    m = rng.uniform(-3.0, 3.0, count)
    tiny = float(np.finfo(dtype).tiny)
    near = np.array([0.0, -0.0, tiny, -tiny, 1e-7, -1e-7, 1e-3, -1e-3, 0.5, -0.5, 1.0, -1.0])
    k = near.size
    m[:k] = near
    a[k : 2 * k] = near
    m[2 * k : 3 * k] = near[::-1]
    a[2 * k : 3 * k] = near
    return a, m


def hidden_cost(name, slope, z, a, m, gamma, beta):
    return gamma * (a - h(name, slope, z)) ** 2 + beta * (z - m) ** 2


@pytest.mark.parametrize(("activation", "slope"), HIDDEN)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("gamma", "beta"), [(20.0, 0.2), (1.0, 5.0), (0.05, 0.01)])
def test_hidden_z_update_is_a_global_minimiser(rng, activation, slope, dtype, order, gamma, beta):
    a, m = hidden_inputs(rng, 60, dtype)
    a_arr = as_layout(a.reshape(10, 6), dtype, order)
    z = as_layout(m.reshape(10, 6), dtype, order)
    a64, m64 = a_arr.astype(np.float64).ravel(), z.astype(np.float64).ravel()
    sums = hidden_z_update(z, a_arr, gamma, beta, activation, negative_slope=slope)
    zk = z.astype(np.float64).ravel()

    def cost(t, i):
        return hidden_cost(activation, slope, t, a64[i], m64[i], gamma, beta)

    tiny = float(np.finfo(np.float64).tiny)
    reference = refined_minimum(cost, -6.0, 6.0, 24001, extra=(0.0, tiny, 1e-300))
    kernel = cost(zk, slice(None))
    scale = gamma * (1 + a64**2) + beta * (1 + m64**2)
    assert np.all(kernel <= reference + COST_RTOL[dtype] * scale)
    # the sums are those of the stored z
    np.testing.assert_allclose(
        sums[0], np.sum((a64 - h(activation, slope, zk)) ** 2), rtol=RTOL[dtype]
    )
    np.testing.assert_allclose(sums[1], np.sum((zk - m64) ** 2), rtol=RTOL[dtype])


@pytest.mark.parametrize("activation", ["step", "sign"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_step_open_side_returns_the_smallest_normal(activation, dtype):
    tiny = np.finfo(dtype).tiny
    sub = tiny / 4  # a positive subnormal m lies on the open side itself
    m = np.array([0.0, -0.0, -tiny, -1e-3, -1.0, sub, tiny, 2.0], dtype=dtype)
    a = np.ones_like(m)
    z = m.copy()
    hidden_z_update(z, a, 10.0, 1.0, activation)
    # a = 1 is h's value on z > 0: the open side wins wherever it is near m
    np.testing.assert_array_equal(z, np.array([tiny] * 5 + [sub, tiny, 2.0], dtype=dtype))
    assert np.all(z > 0)
    # far on the negative side the closed side wins: z = m
    z = np.array([-10.0, -0.0, 0.0], dtype=dtype)
    hidden_z_update(z, np.ones_like(z), 1.0, 10.0, activation)
    assert z[0] == -10.0
    np.testing.assert_array_equal(z[1:], [tiny, tiny])


# (a, m, gamma, beta, slope, winner): the two candidates cost the same in
# exact binary arithmetic (every quantity is dyadic and every divisor a power
# of two: gamma + beta and gamma slope^2 + beta), and the first (z <= 0) wins.
TIES = {
    "leaky_relu": [
        # slope 0: z1 = m = -1 (cost 3) and z2 = 0.5 (0.75 + 2.25)
        (1.0, -1.0, 3.0, 1.0, 0.0, -1.0),
        # slope 5: z1 = -0.25 (1.75^2 + 7 * 1.25^2 = 14), z2 = 0.5 (3.5^2 + 7/4)
        (-3.0, 1.0, 1.0, 7.0, 5.0, -0.25),
    ],
    "step": [
        (0.5, 0.0, 4.0, 1.0, 0.0, 0.0),  # h = 0 at z = 0 vs h = 1 at 0+
        (0.625, -1.0, 4.0, 1.0, 0.0, -1.0),  # 4 a^2 = 4 (a - 1)^2 + 1
        (0.375, 1.0, 4.0, 1.0, 0.0, 0.0),  # 4 a^2 + 1 = 4 (a - 1)^2
    ],
    "sign": [
        (0.0, 0.0, 4.0, 1.0, 0.0, 0.0),
        (0.0625, -1.0, 4.0, 1.0, 0.0, -1.0),  # 4 (a + 1)^2 = 4 (a - 1)^2 + 1
        (-0.25, 2.0, 4.0, 1.0, 0.0, 0.0),  # 4 (a + 1)^2 + 4 = 4 (a - 1)^2
    ],
}


@pytest.mark.parametrize("activation", sorted(TIES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
def test_hidden_z_update_tie_goes_to_the_nonpositive_side(activation, dtype, order):
    for a, m, gamma, beta, slope, winner in TIES[activation]:
        # the tie is real: the minima of the two sides are equal
        if activation == "leaky_relu":
            z1 = min((gamma * slope * a + beta * m) / (gamma * slope**2 + beta), 0.0)
            z2 = max((gamma * a + beta * m) / (gamma + beta), 0.0)
            c1 = hidden_cost(activation, slope, z1, a, m, gamma, beta)
            c2 = hidden_cost(activation, slope, z2, a, m, gamma, beta)
        else:
            low = 0.0 if activation == "step" else -1.0
            c1 = gamma * (a - low) ** 2 + beta * max(m, 0.0) ** 2
            c2 = gamma * (a - 1.0) ** 2 + beta * min(m, 0.0) ** 2
        assert c1 == c2
        z = as_layout(np.full((3, 2), m), dtype, order)
        hidden_z_update(
            z, as_layout(np.full((3, 2), a), dtype, order), gamma, beta, activation, slope
        )
        np.testing.assert_array_equal(z, np.full((3, 2), winner, dtype=dtype))


@pytest.mark.parametrize(("activation", "slope"), ALL)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [511, 512, 513, 3 * 512 + 7])
def test_hidden_z_update_layouts_and_blocks(rng, activation, slope, dtype, size):
    # Dyadic inputs (many exact ties) in C, F and flat order give the same
    # bits; across 512-entry blocks the sums are those of all entries.
    a = rng.integers(-16, 17, size) / 8.0
    m = rng.integers(-24, 25, size) / 8.0
    zs = []
    for order in ORDERS:
        z = as_layout(m.reshape(size, 1), dtype, order)
        z_update(z, as_layout(a.reshape(size, 1), dtype, order), 3.0, 1.0, activation, slope)
        zs.append(z.ravel())
    flat = m.astype(dtype)
    act, pen = z_update(flat, a.astype(dtype), 3.0, 1.0, activation, slope)
    np.testing.assert_array_equal(zs[0], flat)
    np.testing.assert_array_equal(zs[1], flat)
    zk = flat.astype(np.float64)
    m64 = m.astype(dtype).astype(np.float64)
    np.testing.assert_allclose(act, np.sum((a - h(activation, slope, zk)) ** 2), rtol=1e-12)
    np.testing.assert_allclose(pen, np.sum((zk - m64) ** 2), rtol=1e-12)


SMOOTH = {"sigmoid": expit, "tanh": np.tanh}


@pytest.mark.parametrize("activation", sorted(SMOOTH))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
def test_smooth_z_update_is_a_global_minimiser(rng, activation, dtype, order):
    # Random problems, most of them non-convex (small beta / gamma), with a
    # outside h's range, against a grid over all stationary points (within
    # m +- R, R = gamma (|a| + 1) / (4 beta) for sigmoid, 4x for tanh in z)
    # refined by bounded Brent around the best grid point.
    h_fn = SMOOTH[activation]
    for _ in range(6):
        gamma = 10 ** rng.uniform(-2, 3)
        beta = 10 ** rng.uniform(-3, 1)
        a = rng.uniform(-2.0, 3.0, 40)
        m = rng.uniform(-8.0, 8.0, 40)
        m[:4] = [0.0, 1e-7, -1e-7, 40.0]
        a[4:8] = [0.0, 1.0, -1.0, 0.5]
        a_arr = as_layout(a.reshape(8, 5), dtype, order)
        z = as_layout(m.reshape(8, 5), dtype, order)
        a64, m64 = a_arr.astype(np.float64).ravel(), z.astype(np.float64).ravel()
        sums = hidden_z_update_smooth(z, a_arr, gamma, beta, activation)
        zk = z.astype(np.float64).ravel()

        def cost(t, i, a64=a64, m64=m64, gamma=gamma, beta=beta):
            return gamma * (a64[i] - h_fn(t)) ** 2 + beta * (t - m64[i]) ** 2

        radius = gamma * (np.abs(a64) + 1) / (4 * beta) * (1 if activation == "sigmoid" else 4)
        reference = np.empty(40)
        for i in range(40):
            grid = m64[i] + np.linspace(-1.0, 1.0, 8001) * (radius[i] + 1.0)
            costs = cost(grid, i)
            g = int(np.argmin(costs))
            step = grid[1] - grid[0]
            res = minimize_scalar(
                cost,
                bounds=(grid[g] - step, grid[g] + step),
                args=(i,),
                method="bounded",
                options={"xatol": 1e-13 * (1 + abs(grid[g]))},
            )
            reference[i] = min(costs[g], res.fun)
        kernel = cost(zk, slice(None))
        scale = gamma * (1 + a64**2) + beta * (1 + m64**2)
        assert np.all(kernel <= reference + COST_RTOL[dtype] * scale)
        np.testing.assert_allclose(sums[0], np.sum((a64 - h_fn(zk)) ** 2), rtol=RTOL[dtype])
        np.testing.assert_allclose(sums[1], np.sum((zk - m64) ** 2), rtol=RTOL[dtype])


@pytest.mark.parametrize("activation", sorted(SMOOTH))
def test_smooth_z_update_extreme_weights(activation):
    # beta / gamma so large that m +- R rounds to m: z = m; and so small that
    # the stationary range is huge: z is where h(z) = a, or stays where h is flat.
    m = np.array([0.3, -2.0, 1e8])
    a = np.array([0.7, 0.2, 1e6])
    z = m.copy()
    hidden_z_update_smooth(z, a, 1e-12, 1e6, activation)
    np.testing.assert_array_equal(z, m)
    z = m[:2].copy()
    hidden_z_update_smooth(z, a[:2], 1e6, 1e-12, activation)
    np.testing.assert_allclose(SMOOTH[activation](z), a[:2], rtol=1e-9)
    z = np.array([np.nan, np.inf])
    hidden_z_update_smooth(z, np.zeros(2), 1.0, 1.0, activation)
    assert np.isnan(z[0]) and not np.isfinite(z[1])


def test_smooth_activations_have_their_own_wrappers():
    z = np.zeros(3)
    with pytest.raises(ValueError, match="unknown activation"):
        hidden_z_update_smooth(z, z.copy(), 1.0, 1.0, "relu")
    with pytest.raises(ValueError, match="unknown activation"):
        apply_activation_smooth(z, z.copy(), 1.0, "step")


@pytest.mark.parametrize("bad", [-0.1, np.inf, np.nan])
def test_leaky_relu_rejects_bad_slope(bad):
    z = np.zeros(3)
    with pytest.raises(ValueError, match="negative_slope"):
        hidden_z_update(z, z.copy(), 1.0, 1.0, "leaky_relu", negative_slope=bad)
    with pytest.raises(ValueError, match="negative_slope"):
        apply_activation(z, z.copy(), 1.0, "leaky_relu", negative_slope=bad)
    # other activations ignore the slope
    hidden_z_update(z, z.copy(), 1.0, 1.0, "step", negative_slope=bad)


@pytest.mark.parametrize(("activation", "slope"), ALL)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_apply_activation(rng, activation, slope, dtype, order, scale):
    z = rng.uniform(-2, 3, (9, 5))
    z[0, :3] = [0.0, -0.0, np.finfo(dtype).tiny]
    z = as_layout(z, dtype, order)
    out = as_layout(np.full((9, 5), np.nan), dtype, order)
    activate(z, out, scale, activation, slope)
    expected = scale * h(activation, slope, z.astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype], atol=ATOL[dtype])
    activate(z, z, scale, activation, slope)  # in place
    np.testing.assert_array_equal(z, out)


# ---------------------------------------------------------------------------
# output updates


def output_inputs(rng, m_samples: int, k: int, beta: float):
    """m = W a, lam and labels, spread widely, with a few extreme rows."""
    m = rng.uniform(-3.0, 3.0, (m_samples, k))
    lam = rng.uniform(-1.5, 1.5, (m_samples, k))
    m[0], lam[0] = 0.0, 0.0
    m[1], lam[1] = 40.0, 0.0  # far on one side: exp saturates
    m[2], lam[2] = -40.0, 0.0
    m[3], lam[3] = 0.0, 2.0 * beta  # v = m - lam / (2 beta) = -1
    return m, lam


def check_sums(sums, loss, zk, lam_arr, m64, dtype):
    expected = (loss, np.sum(zk * lam_arr.astype(np.float64)), np.sum((zk - m64) ** 2))
    np.testing.assert_allclose(sums, expected, rtol=RTOL[dtype], atol=ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("beta", [0.2, 1.0, 3.0])
@pytest.mark.parametrize("update_multiplier", [False, True])
def test_binary_hinge_is_the_prox(rng, dtype, order, beta, update_multiplier):
    m, lam = output_inputs(rng, 40, 1, beta)
    labels = rng.integers(0, 2, 40)
    half = 0.5 / beta
    m[4:8, 0] = [0.0, 1.0, 1.0 - half, half]  # v on the case boundaries
    lam[4:8] = 0.0
    z, lam_arr = as_layout(m, dtype, order), as_layout(lam, dtype, order)
    m64, lam64 = z.astype(np.float64), lam_arr.astype(np.float64)
    sums = output_hinge_update(z, lam_arr, labels, beta, update_multiplier, binary=True)
    zk = z.astype(np.float64)
    y = labels.reshape(-1, 1).astype(np.float64)
    np.testing.assert_allclose(
        zk, hinge_prox(m64, lam64, y, beta), rtol=RTOL[dtype], atol=ATOL[dtype]
    )

    def cost(t, i):
        loss = np.where(y.ravel()[i] == 1, np.maximum(0, 1 - t), np.maximum(0, t))
        return loss + t * lam64.ravel()[i] + beta * (t - m64.ravel()[i]) ** 2

    reference = refined_minimum(cost, -45.0, 45.0, 90001, extra=(0.0, 1.0))
    assert np.all(
        cost(zk.ravel(), slice(None)) <= reference + COST_RTOL[dtype] * (1 + m64.ravel() ** 2)
    )
    lam_new = lam64 + beta * (zk - m64) if update_multiplier else lam64
    np.testing.assert_allclose(lam_arr, lam_new, rtol=RTOL[dtype], atol=ATOL[dtype])
    loss = np.sum(np.where(y == 1, np.maximum(0, 1 - zk), np.maximum(0, zk)))
    check_sums(sums, loss, zk, lam_arr, m64, dtype)


def test_binary_hinge_is_one_vs_rest_with_the_positive_class_one(rng):
    # Two one-vs-rest columns for classes 0 and 1: column 1 is the binary hinge.
    m, lam = output_inputs(rng, 30, 2, 0.7)
    labels = rng.integers(0, 2, 30)
    z2, lam2 = m.copy(), lam.copy()
    s2 = output_hinge_update(z2, lam2, labels, 0.7, True)
    z1, lam1 = m[:, 1:].copy(), lam[:, 1:].copy()
    output_hinge_update(z1, lam1, labels, 0.7, True, binary=True)
    np.testing.assert_array_equal(z1[:, 0], z2[:, 1])
    np.testing.assert_array_equal(lam1[:, 0], lam2[:, 1])
    assert np.isfinite(s2).all()


@pytest.mark.parametrize("kernel", [output_logistic_update, "binary_hinge"])
def test_binary_outputs_check_their_arguments(kernel):
    if kernel == "binary_hinge":

        def kernel(z, lam, labels, beta, update):
            return output_hinge_update(z, lam, labels, beta, update, binary=True)

    with pytest.raises(ValueError, match="one output column"):
        kernel(np.zeros((3, 2)), np.zeros((3, 2)), [0, 1, 0], 1.0, False)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        kernel(np.zeros((3, 1)), np.zeros((3, 1)), [0, 2, 0], 1.0, False)
    with pytest.raises(ValueError, match="beta must be positive"):
        kernel(np.zeros((3, 1)), np.zeros((3, 1)), [0, 1, 0], 0.0, False)


def logistic_cost(t, y, lam, m, beta):
    return -log_expit((2 * y - 1) * t) + t * lam + beta * (t - m) ** 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("beta", [1e-3, 0.2, 1.0, 50.0])
@pytest.mark.parametrize("update_multiplier", [False, True])
def test_logistic_update_minimises(rng, dtype, order, beta, update_multiplier):
    m, lam = output_inputs(rng, 40, 1, beta)
    labels = rng.integers(0, 2, 40)
    z, lam_arr = as_layout(m, dtype, order), as_layout(lam, dtype, order)
    m64, lam64 = z.astype(np.float64).ravel(), lam_arr.astype(np.float64).ravel()
    sums = output_logistic_update(z, lam_arr, labels, beta, update_multiplier)
    zk = z.astype(np.float64).ravel()
    # The reference: bounded Brent on the bracket [v - 1/(2 beta) - 1, v + ...].
    v = m64 - lam64 / (2 * beta)
    ref = np.array(
        [
            minimize_scalar(
                logistic_cost,
                bounds=(v[i] - 0.5 / beta - 1, v[i] + 0.5 / beta + 1),
                args=(labels[i], lam64[i], m64[i], beta),
                method="bounded",
                options={"xatol": 1e-14 * (1 + abs(v[i]) + 0.5 / beta)},
            ).x
            for i in range(40)
        ]
    )
    # strictly convex with curvature >= 2 beta: the minimiser is unique and
    # the kernel's is at least as good as Brent's
    kernel = logistic_cost(zk, labels, lam64, m64, beta)
    best = logistic_cost(ref, labels, lam64, m64, beta)
    assert np.all(kernel <= best + COST_RTOL[dtype] * (1 + np.abs(best)))
    if dtype == np.float64:
        # full precision: the derivative vanishes to rounding
        grad = -(2 * labels - 1) * np.exp(log_expit(-(2 * labels - 1) * zk))
        grad += lam64 + 2 * beta * (zk - m64)
        scale = 1 + np.abs(lam64) + 2 * beta * (np.abs(zk) + np.abs(m64))
        assert np.all(np.abs(grad) <= 1e-14 * scale)
    else:
        np.testing.assert_allclose(zk, ref, rtol=1e-5, atol=1e-5 * (1 + 0.5 / beta))
    lam_new = lam64 + beta * (zk - m64) if update_multiplier else lam64
    np.testing.assert_allclose(lam_arr.ravel(), lam_new, rtol=RTOL[dtype], atol=ATOL[dtype])
    loss = np.sum(-log_expit((2 * labels - 1) * zk))
    check_sums(sums, loss, zk, lam_arr.ravel(), m64, dtype)


def ce_target(y, k, s=0.0):
    """The target distribution of label ``y``: ``(1 - s) e_y + s / k``."""
    return (1.0 - s) * np.eye(k)[y] + s / k


def ce_objective(x, y, lam, m, beta, s=0.0):
    return logsumexp(x) - x @ ce_target(y, x.size, s) + x @ lam + beta * np.sum((x - m) ** 2)


def ce_gradient(x, y, lam, m, beta, s=0.0):
    return softmax(x) - ce_target(y, x.size, s) + lam + 2 * beta * (x - m)


def check_cross_entropy_update(rng, dtype, order, beta, k, update_multiplier, smoothing):
    """The kernel's z is the minimiser of BFGS (to its rounding level), with
    label smoothing ``smoothing`` (none: the kernel's default), on random
    rows and extreme ones (tied, saturated and far-apart logits)."""
    n = 25
    m, lam = output_inputs(rng, n, k, beta)
    m[4] = 0.0  # all classes tied in m
    lam[4] = 0.0
    m[5, :] = 500.0 * rng.standard_normal(k)  # logits far apart
    m[6, :] = 60.0 * np.sign(rng.standard_normal(k)) + rng.standard_normal(k)  # large, close
    labels = rng.integers(0, k, n)
    z, lam_arr = as_layout(m, dtype, order), as_layout(lam, dtype, order)
    m64, lam64 = z.astype(np.float64), lam_arr.astype(np.float64)
    kwargs = {} if smoothing is None else {"label_smoothing": smoothing}
    s = smoothing or 0.0
    sums = output_cross_entropy_update(z, lam_arr, labels, beta, update_multiplier, **kwargs)
    zk = z.astype(np.float64)
    for j in range(n):
        args = (labels[j], lam64[j], m64[j], beta, s)
        ref = minimize(
            ce_objective,
            m64[j] - lam64[j] / (2 * beta),
            args=args,
            jac=ce_gradient,
            method="BFGS",
            options={"gtol": 1e-13, "maxiter": 10000},
        )
        fk = ce_objective(zk[j], *args)
        assert fk <= ref.fun + COST_RTOL[dtype] * (1 + abs(ref.fun)) * k
        grad = ce_gradient(zk[j], *args)
        scale = 1 + np.abs(lam64[j]) + 2 * beta * (np.abs(zk[j]) + np.abs(m64[j]))
        if dtype == np.float64:
            # Newton in double to the rounding level of the gradient
            assert np.all(np.abs(grad) <= 1e-14 * scale), (j, grad)
        else:
            # rounding z to float32 (by eps/2 |z|) moves the gradient by at most
            # the Hessian's norm 2 beta + 1/2 times that
            bound = 1.2e-7 * (2 * beta + 0.5) * (np.max(np.abs(zk[j])) + 1)
            assert np.all(np.abs(grad) <= 2 * bound + 1e-14 * scale), (j, grad)
    lam_new = lam64 + beta * (zk - m64) if update_multiplier else lam64
    np.testing.assert_allclose(lam_arr, lam_new, rtol=RTOL[dtype], atol=ATOL[dtype])
    targets = np.stack([ce_target(y, k, s) for y in labels])
    loss = np.sum(logsumexp(zk, axis=1) - np.sum(zk * targets, axis=1))
    check_sums(sums, loss, zk, lam_arr, m64, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("beta", [1e-3, 0.2, 1.0, 50.0])
@pytest.mark.parametrize("k", [2, 10])
@pytest.mark.parametrize("update_multiplier", [False, True])
def test_cross_entropy_update_minimises(rng, dtype, order, beta, k, update_multiplier):
    check_cross_entropy_update(rng, dtype, order, beta, k, update_multiplier, None)


@pytest.mark.parametrize("smoothing", [0.1, 0.3, 0.9])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("beta", [1e-3, 1.0, 50.0])
@pytest.mark.parametrize("k", [3, 10])
@pytest.mark.parametrize("update_multiplier", [False, True])
def test_cross_entropy_update_with_label_smoothing_minimises(
    rng, smoothing, dtype, order, beta, k, update_multiplier
):
    check_cross_entropy_update(rng, dtype, order, beta, k, update_multiplier, smoothing)


def test_label_smoothing_zero_computes_the_golden_numbers():
    """``label_smoothing=0`` (given or not) gives, bit for bit, what the kernel
    computed before label smoothing existed (``tests/golden/cross_entropy.npz``,
    recorded by ``make_cross_entropy_golden.py`` on commit d24f555)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
    from make_cross_entropy_golden import OUT, cases, run

    golden = np.load(OUT)
    count = 0
    for key, _, _, _, beta, update, order in cases():
        inputs = (golden[f"{key}/m"], golden[f"{key}/lam0"], golden[f"{key}/labels"])
        for dtype in DTYPES:
            name = f"{key}/{np.dtype(dtype).name}"
            expected = [golden[f"{name}/{part}"] for part in ("z", "lam", "sums")]
            for kwargs in ({}, {"label_smoothing": 0.0}):
                got = run(*inputs, beta, update, order, dtype, **kwargs)
                for part, a, b in zip(("z", "lam", "sums"), got, expected, strict=True):
                    assert a.dtype == b.dtype
                    np.testing.assert_array_equal(a, b, err_msg=f"{name}/{part} {kwargs}")
                count += 1
            # The comparison can tell: a little smoothing moves z.
            z, _, _ = run(*inputs, beta, update, order, dtype, label_smoothing=1e-3)
            assert not np.array_equal(z, expected[0]), name
    assert count == 2 * 2 * 12


@pytest.mark.parametrize("bad", [-0.1, 1.0, np.nan])
def test_cross_entropy_rejects_bad_label_smoothing(bad):
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=rf"label_smoothing must be .*\[0, 1\), got {bad!r}"):
        output_cross_entropy_update(z, z.copy(), [0, 1], 1.0, False, label_smoothing=bad)


def test_cross_entropy_with_two_classes_is_logistic_of_the_difference(rng):
    # With k = 2, lam = 0 and m = (-m1/2, m1/2), write z = ((s - w)/2, (s + w)/2):
    # the objective is s^2/2 + softplus(-(2y - 1) w) + (beta/2) (w - m1)^2, so
    # s = 0 and w is the logistic update with beta/2: two kernels, one answer.
    n, beta = 30, 0.3
    m1 = rng.uniform(-4, 4, n)
    labels = rng.integers(0, 2, n)
    z = np.stack([-m1 / 2, m1 / 2], axis=1)
    output_cross_entropy_update(z, np.zeros_like(z), labels, beta, False)
    np.testing.assert_allclose(z[:, 0] + z[:, 1], 0.0, atol=1e-14)
    w = m1.reshape(-1, 1).copy()
    output_logistic_update(w, np.zeros_like(w), labels, beta / 2, False)
    np.testing.assert_allclose(z[:, 1] - z[:, 0], w.ravel(), rtol=1e-13, atol=1e-14)


def test_cross_entropy_checks_labels():
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        output_cross_entropy_update(np.zeros((2, 3)), np.zeros((2, 3)), [0, 3], 1.0, False)
    # an empty block is a no-op
    assert output_cross_entropy_update(np.zeros((0, 3)), np.zeros((0, 3)), [], 1.0, True) == (
        0.0,
        0.0,
        0.0,
    )
