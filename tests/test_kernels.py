"""Each compiled kernel against NumPy or a brute-force minimiser.

Every kernel is run in float32 and float64 and in each memory order it
accepts; results are compared with a per-dtype relative tolerance in the
style of scikit-learn's ``test_cython_blas.py``. The entry-wise minimisers
(hidden z-updates, output prox) are checked against a fine grid search of the
entry-wise objective, which does not rely on the closed forms at all.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from reference_admm import hidden_z_closed_form, hinge_prox

from admm_core import (
    apply_activation,
    cholesky_factor,
    cholesky_inverse,
    cholesky_solve,
    cross,
    glorot_uniform,
    gram,
    hidden_z_update,
    matmul,
    output_hinge_update,
    output_squared_update,
)

DTYPES = [np.float32, np.float64]
ORDERS = ["C", "F"]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
#: Absolute floor for entries that should be (near) zero.
ATOL = {np.float32: 1e-6, np.float64: 1e-13}
#: Cholesky solves lose a factor of the condition number; ours are below ~10.
SOLVE_RTOL = {np.float32: 1e-4, np.float64: 1e-11}

ACTIVATIONS = ["hardsigmoid", "relu"]
H = {"hardsigmoid": lambda x: np.clip(x, 0.0, 1.0), "relu": lambda x: np.maximum(x, 0.0)}


def as_layout(x: np.ndarray, dtype, order: str) -> np.ndarray:
    """A copy of ``x`` in ``dtype`` and memory ``order``."""
    return np.array(x, dtype=dtype, order=order, copy=True)


def grid_minimum(
    cost, lo: float, hi: float, count: int, extra=()
) -> tuple[np.ndarray, np.ndarray]:
    """Entry-wise minimum and minimiser of ``cost(zgrid)`` over a fine grid.

    ``cost`` maps a ``(k, 1)``-broadcastable grid to a ``(k, n)`` array of
    costs for the ``n`` entries; ``extra`` points (kinks) are added to the grid.
    Returns ``(min_cost, argmin_z)``, each of length ``n``.
    """
    grid = np.union1d(np.linspace(lo, hi, count), np.asarray(extra, dtype=np.float64))
    costs = cost(grid[:, None])
    best = np.argmin(costs, axis=0)
    return costs[best, np.arange(costs.shape[1])], grid[best]


# ---------------------------------------------------------------------------
# hidden z-update


def hidden_cost(z, a, m, gamma, beta, activation):
    return gamma * (a - H[activation](z)) ** 2 + beta * (z - m) ** 2


def hidden_inputs(rng, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, m) spread widely, plus m and a at and just beside the kinks 0, 1."""
    a = rng.uniform(-0.5, 1.5, count)
    m = rng.uniform(-2.5, 3.5, count)
    near = np.array([0.0, 1.0, -1e-7, 1e-7, 1 - 1e-7, 1 + 1e-7, -1e-3, 1e-3, 0.999, 1.001])
    k = near.size
    m[:k] = near
    a[k : 2 * k] = near
    m[2 * k : 3 * k] = near[::-1]
    a[2 * k : 3 * k] = near
    return a, m


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("gamma", "beta"), [(20.0, 0.2), (10.0, 1.0), (1.0, 5.0)])
def test_hidden_z_update_minimises_on_fine_grid(rng, activation, dtype, order, gamma, beta):
    a, m = hidden_inputs(rng, 120)
    a = as_layout(a.reshape(20, 6), dtype, order)
    z = as_layout(m.reshape(20, 6), dtype, order)
    # The kernel sees the rounded inputs: compare in float64 on those.
    a64, m64 = a.astype(np.float64).ravel(), z.astype(np.float64).ravel()
    sums = hidden_z_update(z, a, gamma, beta, activation)
    zk = z.astype(np.float64).ravel()

    best_cost, _ = grid_minimum(
        lambda g: hidden_cost(g, a64, m64, gamma, beta, activation),
        -4.0,
        5.0,
        45001,
        extra=(0.0, 1.0),
    )
    kernel_cost = hidden_cost(zk, a64, m64, gamma, beta, activation)
    scale = gamma + beta
    # float32 storage of z perturbs the cost by about eps * |z - m| * beta.
    slack = (1e-12 if dtype == np.float64 else 1e-5) * scale * (1 + np.abs(m64))
    assert np.all(kernel_cost <= best_cost + slack)
    # and it is the closed form of ADMM.md (same cost, same point)
    closed = hidden_z_closed_form(a64, m64, gamma, beta, activation)
    closed_cost = hidden_cost(closed, a64, m64, gamma, beta, activation)
    np.testing.assert_allclose(
        kernel_cost, closed_cost, rtol=RTOL[dtype], atol=ATOL[dtype] * scale
    )
    np.testing.assert_allclose(zk, closed, rtol=RTOL[dtype], atol=ATOL[dtype])
    # the returned sums are those of the stored z
    hz = H[activation](zk.astype(dtype)).astype(np.float64)
    np.testing.assert_allclose(sums[0], np.sum((a64 - hz) ** 2), rtol=RTOL[dtype])
    np.testing.assert_allclose(sums[1], np.sum((zk - m64) ** 2), rtol=RTOL[dtype])


# (a, m, gamma, beta, winner): two candidates of ADMM.md tie exactly in binary
# arithmetic; the first must be chosen. With gamma = 3, beta = 1 every value is
# dyadic, so the costs are computed without rounding.
TIES = {
    "hardsigmoid": [
        # z1 = m = -1 (cost 3) ties z2 = 0.5 (cost 0.75 + 2.25): z1 wins.
        (1.0, -1.0, 3.0, 1.0, -1.0),
        # z2 = 0.5 (cost 0.75 + 2.25) ties z3 = m = 2 (cost 3): z2 wins.
        (0.0, 2.0, 3.0, 1.0, 0.5),
    ],
    "relu": [
        # z1 = m = -1 ties z2 = 0.5: z1 wins.
        (1.0, -1.0, 3.0, 1.0, -1.0),
        (2.0, -2.0, 3.0, 1.0, -2.0),
    ],
}


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
def test_hidden_z_update_tie_goes_to_first_candidate(activation, dtype, order):
    for a, m, gamma, beta, winner in TIES[activation]:
        # Check the tie is real, so the test exercises tie-breaking at all.
        z1 = min(m, 0.0)
        z2 = min(
            max((gamma * a + beta * m) / (gamma + beta), 0.0),
            1.0 if activation == "hardsigmoid" else np.inf,
        )
        costs = [hidden_cost(v, a, m, gamma, beta, activation) for v in (z1, z2)]
        if activation == "hardsigmoid":
            costs.append(hidden_cost(max(m, 1.0), a, m, gamma, beta, activation))
        assert sorted(costs)[0] == sorted(costs)[1]
        za = as_layout(np.full((3, 2), m), dtype, order)
        aa = as_layout(np.full((3, 2), a), dtype, order)
        hidden_z_update(za, aa, gamma, beta, activation)
        np.testing.assert_array_equal(za, np.full((3, 2), winner, dtype=dtype))
        assert hidden_z_closed_form(np.array(a), np.array(m), gamma, beta, activation) == winner


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_hidden_z_update_independent_of_layout(rng, activation, dtype):
    # Dyadic inputs produce many exact ties; the result must not depend on order.
    a = rng.integers(-8, 17, (30, 7)) / 8.0
    m = rng.integers(-24, 32, (30, 7)) / 8.0
    results = []
    for order in ORDERS:
        z = as_layout(m, dtype, order)
        sums = hidden_z_update(z, as_layout(a, dtype, order), 3.0, 1.0, activation)
        results.append((np.ascontiguousarray(z), sums))
    flat = as_layout(m.ravel(), dtype, "C")
    hidden_z_update(flat, as_layout(a.ravel(), dtype, "C"), 3.0, 1.0, activation)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][0].ravel(), flat)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-15)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [511, 512, 513, 3 * 512 + 7])
def test_hidden_z_update_across_blocks(rng, activation, dtype, size):
    # The kernel works in blocks of 512 entries with 512 partial sums: every
    # entry of full and partial blocks must be the closed form, and the sums
    # those of all entries.
    a = rng.uniform(-0.5, 1.5, size).astype(dtype)
    z = rng.uniform(-2.5, 3.5, size).astype(dtype)
    a64, m64 = a.astype(np.float64), z.astype(np.float64)
    act, pen = hidden_z_update(z, a, 20.0, 0.2, activation)
    closed = hidden_z_closed_form(a64, m64, 20.0, 0.2, activation)
    np.testing.assert_allclose(z, closed, rtol=RTOL[dtype], atol=ATOL[dtype])
    zk = z.astype(np.float64)
    np.testing.assert_allclose(act, np.sum((a64 - H[activation](zk)) ** 2), rtol=1e-12)
    np.testing.assert_allclose(pen, np.sum((zk - m64) ** 2), rtol=1e-12)


# ---------------------------------------------------------------------------
# activation


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_apply_activation(rng, activation, dtype, order, scale):
    z = as_layout(rng.uniform(-2, 3, (9, 5)), dtype, order)
    out = as_layout(np.full((9, 5), np.nan), dtype, order)
    apply_activation(z, out, scale, activation)
    expected = scale * H[activation](z.astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype])
    # in place, as the network uses it
    apply_activation(z, z, scale, activation)
    np.testing.assert_array_equal(z, out)


# ---------------------------------------------------------------------------
# output updates


def hinge_cost(z, onehot, lam, m, beta):
    loss = np.where(onehot == 1, np.maximum(0.0, 1.0 - z), np.maximum(0.0, z))
    return loss + z * lam + beta * (z - m) ** 2


def output_inputs(rng, m_samples: int, k: int, beta: float):
    """m = W a, lam and labels, including v = m - lam/(2 beta) on case boundaries."""
    m = rng.uniform(-2.0, 3.0, (m_samples, k))
    lam = rng.uniform(-1.5, 1.5, (m_samples, k))
    labels = rng.integers(0, k, m_samples)
    half = 0.5 / beta
    # rows 0..3: lam = 0 and v exactly on the boundaries 0, 1, 1 - half, half
    lam[:4] = 0.0
    m[0], m[1], m[2], m[3] = 0.0, 1.0, 1.0 - half, half
    return m, lam, labels


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("beta", [0.2, 1.0, 3.0])
@pytest.mark.parametrize("update_multiplier", [False, True])
def test_output_hinge_update_is_the_prox(rng, dtype, order, beta, update_multiplier):
    k = 3
    m, lam, labels = output_inputs(rng, 30, k, beta)
    z = as_layout(m, dtype, order)
    lam_arr = as_layout(lam, dtype, order)
    m64, lam64 = z.astype(np.float64), lam_arr.astype(np.float64)
    onehot = np.zeros((30, k))
    onehot[np.arange(30), labels] = 1.0

    sums = output_hinge_update(z, lam_arr, labels, beta, update_multiplier)
    zk = z.astype(np.float64)

    best_cost, best_z = grid_minimum(
        lambda g: hinge_cost(g, onehot.ravel(), lam64.ravel(), m64.ravel(), beta),
        -6.0,
        7.0,
        65001,
        extra=(0.0, 1.0),
    )
    kernel_cost = hinge_cost(zk.ravel(), onehot.ravel(), lam64.ravel(), m64.ravel(), beta)
    slack = 1e-12 if dtype == np.float64 else 1e-5 * (1 + np.abs(m64.ravel()))
    assert np.all(kernel_cost <= best_cost + slack)
    # strictly convex: the minimiser is within a grid step of the grid's
    assert np.max(np.abs(zk.ravel() - best_z)) <= 4e-4
    np.testing.assert_allclose(
        zk, hinge_prox(m64, lam64, onehot, beta), rtol=RTOL[dtype], atol=ATOL[dtype]
    )
    lam_new = lam64 + beta * (zk - m64) if update_multiplier else lam64
    np.testing.assert_allclose(lam_arr, lam_new, rtol=RTOL[dtype], atol=ATOL[dtype])
    loss = np.sum(np.where(onehot == 1, np.maximum(0, 1 - zk), np.maximum(0, zk)))
    expected = (loss, np.sum(zk * lam_arr.astype(np.float64)), np.sum((zk - m64) ** 2))
    np.testing.assert_allclose(sums, expected, rtol=RTOL[dtype], atol=ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("update_multiplier", [False, True])
def test_output_squared_update(rng, dtype, order, update_multiplier):
    beta = 0.7
    m = rng.uniform(-2, 3, (30, 3))
    lam = rng.uniform(-1, 1, (30, 3))
    targets = rng.uniform(0, 1, (30, 3))
    z = as_layout(m, dtype, order)
    lam_arr = as_layout(lam, dtype, order)
    y = as_layout(targets, dtype, order)
    m64, lam64, y64 = (v.astype(np.float64) for v in (z, lam_arr, y))

    sums = output_squared_update(z, lam_arr, y, beta, update_multiplier)
    zk = z.astype(np.float64)

    def cost(g):
        return (g - y64.ravel()) ** 2 + g * lam64.ravel() + beta * (g - m64.ravel()) ** 2

    best_cost, best_z = grid_minimum(cost, -6.0, 7.0, 130001)
    assert np.all(cost(zk.ravel()) <= best_cost + (1e-12 if dtype == np.float64 else 1e-5))
    assert np.max(np.abs(zk.ravel() - best_z)) <= 2e-4
    closed = (2 * y64 - lam64 + 2 * beta * m64) / (2 + 2 * beta)
    np.testing.assert_allclose(zk, closed, rtol=RTOL[dtype], atol=ATOL[dtype])
    lam_new = lam64 + beta * (zk - m64) if update_multiplier else lam64
    np.testing.assert_allclose(lam_arr, lam_new, rtol=RTOL[dtype], atol=ATOL[dtype])
    expected = (
        np.sum((zk - y64) ** 2),
        np.sum(zk * lam_arr.astype(np.float64)),
        np.sum((zk - m64) ** 2),
    )
    np.testing.assert_allclose(sums, expected, rtol=RTOL[dtype], atol=ATOL[dtype])


# ---------------------------------------------------------------------------
# Glorot initialisation


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("shape", [(5, 7), (1, 3), (10, 1)])
def test_glorot_uniform_matches_numpy_generator(dtype, order, shape):
    seed = 1234
    out = np.empty(shape, dtype=dtype, order=order)
    glorot_uniform(out, np.random.PCG64(seed))
    s = np.sqrt(6.0 / (shape[0] + shape[1]))
    expected = s * (2 * np.random.Generator(np.random.PCG64(seed)).random(shape) - 1)
    np.testing.assert_array_equal(out, expected.astype(dtype))
    assert np.all(np.abs(out) <= s)


@pytest.mark.parametrize("dtype", DTYPES)
def test_glorot_uniform_same_seed_same_weights_any_order(dtype):
    outs = []
    for order in ORDERS:
        bg = np.random.PCG64(7)
        first = np.empty((6, 4), dtype=dtype, order=order)
        second = np.empty((3, 6), dtype=dtype, order=order)
        glorot_uniform(first, bg)
        glorot_uniform(second, bg)  # continues the same stream
        outs.append((first, second))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    gen = np.random.Generator(np.random.PCG64(7))
    gen.random((6, 4))
    np.testing.assert_array_equal(
        outs[0][1], (np.sqrt(6.0 / 9) * (2 * gen.random((3, 6)) - 1)).astype(dtype)
    )
    # a different seed gives different weights
    other = np.empty((6, 4), dtype=dtype)
    glorot_uniform(other, np.random.PCG64(8))
    assert not np.array_equal(other, outs[0][0])


# ---------------------------------------------------------------------------
# matrix products


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("order_a", "order_b", "order_out"), list(itertools.product(ORDERS, repeat=3))
)
@pytest.mark.parametrize(("trans_a", "trans_b"), list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (-0.5, 2.0)])
def test_matmul(rng, dtype, order_a, order_b, order_out, trans_a, trans_b, alpha, beta):
    m, k, n = 7, 5, 4
    a = rng.standard_normal((k, m) if trans_a else (m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    c0 = rng.standard_normal((m, n))
    A, B = as_layout(a, dtype, order_a), as_layout(b, dtype, order_b)
    out = as_layout(c0, dtype, order_out)
    if beta == 0.0:
        out[...] = np.nan  # beta = 0 must ignore the old content
    result = matmul(A, B, out, transpose_a=trans_a, transpose_b=trans_b, alpha=alpha, beta=beta)
    assert result is out
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    expected = alpha * op_a @ op_b + (beta * c0 if beta else 0.0)
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype], atol=10 * ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("order_z", "order_a", "order_out"), list(itertools.product(ORDERS, repeat=3))
)
def test_cross_accumulates_blocks(rng, dtype, order_z, order_a, order_out):
    z = rng.standard_normal((23, 4))
    a = rng.standard_normal((23, 6))
    out = as_layout(np.full((4, 6), np.nan), dtype, order_out)
    # Two row blocks accumulated with beta = 1 give the product over all rows.
    cross(as_layout(z[:9], dtype, order_z), as_layout(a[:9], dtype, order_a), out)
    cross(as_layout(z[9:], dtype, order_z), as_layout(a[9:], dtype, order_a), out, beta=1.0)
    np.testing.assert_allclose(out, z.T @ a, rtol=RTOL[dtype], atol=10 * ATOL[dtype])
    cross(as_layout(z, dtype, order_z), as_layout(a, dtype, order_a), out, alpha=2.0, beta=-1.0)
    np.testing.assert_allclose(out, z.T @ a, rtol=RTOL[dtype], atol=10 * ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order_a", ORDERS)
@pytest.mark.parametrize("order_out", ORDERS)
def test_gram_accumulates_blocks(rng, dtype, order_a, order_out):
    a = rng.standard_normal((23, 6))
    out = as_layout(np.full((6, 6), np.nan), dtype, order_out)
    gram(as_layout(a[:10], dtype, order_a), out)
    gram(as_layout(a[10:], dtype, order_a), out, beta=1.0)
    expected = a.T @ a
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype], atol=10 * ATOL[dtype])
    np.testing.assert_array_equal(out, out.T)  # both triangles filled
    gram(as_layout(a, dtype, order_a), out, alpha=0.5, beta=0.5)
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype], atol=10 * ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
def test_zero_samples(dtype, order):
    # A rank may hold no samples: its local Gram and cross term are zero
    # (beta = 0) or leave the accumulator unchanged (beta = 1).
    a = np.empty((0, 5), dtype=dtype, order=order)
    z = np.empty((0, 3), dtype=dtype, order=order)
    g = as_layout(np.full((5, 5), np.nan), dtype, order)
    c = as_layout(np.full((3, 5), np.nan), dtype, order)
    gram(a, g)
    cross(z, a, c)
    np.testing.assert_array_equal(g, 0.0)
    np.testing.assert_array_equal(c, 0.0)
    g[...] = 2.0
    c[...] = 3.0
    gram(a, g, beta=1.0)
    cross(z, a, c, beta=1.0)
    np.testing.assert_array_equal(g, 2.0)
    np.testing.assert_array_equal(c, 3.0)
    # the entry-wise kernels accept empty blocks too
    assert hidden_z_update(z.copy(), z.copy(), 1.0, 1.0) == (0.0, 0.0)
    lam = np.empty((0, 3), dtype=dtype, order=order)
    assert output_hinge_update(z.copy(), lam, np.empty(0, np.int64), 1.0, True) == (0, 0, 0)


# ---------------------------------------------------------------------------
# Cholesky


def spd(rng, n: int) -> np.ndarray:
    """A well-conditioned symmetric positive definite matrix."""
    q = rng.standard_normal((n, n))
    return q @ q.T / n + np.eye(n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order_f", ORDERS)
@pytest.mark.parametrize("order_b", ORDERS)
@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_cholesky_factor_and_solve(rng, dtype, order_f, order_b, shift):
    n, k = 6, 9
    A = spd(rng, n)
    b = rng.standard_normal((k, n))
    f = as_layout(A, dtype, order_f)
    assert cholesky_factor(f, shift=shift) is f
    x = as_layout(b, dtype, order_b)
    assert cholesky_solve(f, x) is x
    expected = np.linalg.solve(A + shift * np.eye(n), b.T).T
    np.testing.assert_allclose(x, expected, rtol=SOLVE_RTOL[dtype], atol=SOLVE_RTOL[dtype])
    # the factor's lower triangle (column-major view) is numpy's Cholesky factor
    lower = np.tril(f) if order_f == "F" else np.tril(f.T)
    np.testing.assert_allclose(
        lower,
        np.linalg.cholesky(A + shift * np.eye(n)),
        rtol=SOLVE_RTOL[dtype],
        atol=SOLVE_RTOL[dtype],
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n", [1, 7, 70])
def test_cholesky_inverse(rng, dtype, order, n):
    A = spd(rng, n)
    f = as_layout(A, dtype, order)
    cholesky_factor(f, shift=0.5)
    assert cholesky_inverse(f) is f
    assert f.dtype == dtype and f.flags[f"{order}_CONTIGUOUS"]
    expected = np.linalg.inv(A + 0.5 * np.eye(n))
    np.testing.assert_allclose(f, expected, rtol=SOLVE_RTOL[dtype], atol=SOLVE_RTOL[dtype])
    # exactly symmetric (one triangle is a copy of the other), so b A^{-1} by
    # gemm does not depend on the memory order
    np.testing.assert_array_equal(f, f.T)
    # applied by one gemm it gives the solve's result
    b = rng.standard_normal((9, n))
    x = matmul(as_layout(b, dtype, "C"), f, np.empty((9, n), dtype))
    expected = np.linalg.solve(A + 0.5 * np.eye(n), b.T).T
    np.testing.assert_allclose(x, expected, rtol=SOLVE_RTOL[dtype], atol=SOLVE_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cholesky_inverse_rejects_bad_input(dtype):
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        cholesky_inverse(np.diag([1.0, 0.0, 2.0]).astype(dtype))
    with pytest.raises(ValueError, match="square"):
        cholesky_inverse(np.eye(3, 4, dtype=dtype))
    with pytest.raises(ValueError, match="float32 or float64"):
        cholesky_inverse(np.eye(3, dtype=np.int64))
    empty = np.empty((0, 0), dtype)
    assert cholesky_inverse(empty) is empty


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
def test_cholesky_factor_rejects_non_positive_definite(dtype, order):
    A = as_layout(np.diag([1.0, -1.0, 2.0]), dtype, order)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        cholesky_factor(A)
    # singular (rank one) without a ridge fails, with one it succeeds
    v = np.arange(1.0, 5.0)
    with pytest.raises(np.linalg.LinAlgError):
        cholesky_factor(as_layout(np.outer(v, v), dtype, order))
    cholesky_factor(as_layout(np.outer(v, v), dtype, order), shift=1.0)


# ---------------------------------------------------------------------------
# argument checks


def test_bad_arguments_raise_value_error():
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match="unknown activation"):
        hidden_z_update(z, z.copy(), 1.0, 1.0, "tanh")
    with pytest.raises(ValueError, match="unknown activation"):
        apply_activation(z, z.copy(), 1.0, "sigmoid")
    with pytest.raises(ValueError, match="float32 or float64"):
        hidden_z_update(np.zeros((4, 3), np.int64), np.zeros((4, 3), np.int64), 1.0, 1.0)
    with pytest.raises(ValueError, match="dtype"):
        hidden_z_update(z, np.zeros((4, 3), np.float32), 1.0, 1.0)
    with pytest.raises(ValueError, match="shape"):
        hidden_z_update(z, np.zeros((4, 2)), 1.0, 1.0)
    with pytest.raises(ValueError, match="memory order"):
        hidden_z_update(z, np.zeros((4, 3), order="F"), 1.0, 1.0)
    with pytest.raises(ValueError, match="contiguous"):
        hidden_z_update(np.zeros((4, 6))[:, ::2], np.zeros((4, 6))[:, ::2], 1.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        hidden_z_update(z, z.copy(), 0.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        hidden_z_update(z, z.copy(), 1.0, -1.0)

    lam = np.zeros((4, 3))
    with pytest.raises(ValueError, match="labels must lie"):
        output_hinge_update(z, lam, np.array([0, 1, 2, 3]), 1.0, False)
    with pytest.raises(ValueError, match="labels must lie"):
        output_hinge_update(z, lam, np.array([0, -1, 2, 0]), 1.0, False)
    with pytest.raises(ValueError, match="labels has shape"):
        output_hinge_update(z, lam, np.array([0, 1]), 1.0, False)
    with pytest.raises(ValueError, match="memory order"):
        output_hinge_update(z, np.zeros((4, 3), order="F"), np.zeros(4, int), 1.0, False)
    with pytest.raises(ValueError, match="beta must be positive"):
        output_hinge_update(z, lam, np.zeros(4, int), 0.0, False)
    with pytest.raises(ValueError, match="2-D"):
        output_squared_update(np.zeros(4), np.zeros(4), np.zeros(4), 1.0, False)
    with pytest.raises(ValueError, match="shape"):
        output_squared_update(z, lam, np.zeros((4, 2)), 1.0, False)

    with pytest.raises(ValueError, match="shapes do not match"):
        matmul(np.zeros((3, 4)), np.zeros((5, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="shapes do not match"):
        matmul(np.zeros((3, 4)), np.zeros((4, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="dtype"):
        matmul(np.zeros((3, 4), np.float32), np.zeros((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="2-D"):
        matmul(np.zeros(3), np.zeros((3, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="float32 or float64"):
        matmul(np.zeros((3, 4), int), np.zeros((4, 2), int), np.zeros((3, 2), int))
    with pytest.raises(ValueError, match="shape"):
        gram(np.zeros((5, 3)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="shapes do not match"):
        cross(np.zeros((5, 3)), np.zeros((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="square"):
        cholesky_factor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="columns"):
        cholesky_solve(np.eye(3), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="dtype"):
        cholesky_solve(np.eye(3), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        glorot_uniform(np.zeros(3), np.random.PCG64(0))
