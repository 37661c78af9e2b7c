"""Benchmarks of the compiled kernels, one group per kernel, float32 and float64.

Shapes are those of the 784-500-500-10 iteration at the session's sample
count (``ADMM_BENCH_SIZE``, see ``conftest.py``). Every benchmark checks its
result against NumPy, so a fast wrong kernel fails; ``extra_info`` holds the
flops (BLAS kernels) or the bytes moved (entry-wise kernels), and, when timed,
the rate derived from the mean and the best round.

Kernels that update in place are timed with ``benchmark.pedantic`` and a
``setup`` that restores the input outside the timed region.
"""

from __future__ import annotations

import numpy as np
import pytest

from admm_core import (
    apply_activation,
    cholesky_factor,
    cholesky_solve,
    cross,
    glorot_uniform,
    gram,
    hidden_z_update,
    hidden_z_update_smooth,
    matmul,
    output_cross_entropy_update,
    output_hinge_update,
    output_logistic_update,
)
from bench.common import MNIST_LAYERS
from tests.reference_admm import hidden_z_closed_form, hinge_prox

DTYPES = ["float64", "float32"]
#: Relative tolerance of a result against NumPy in float64, per dtype.
RTOL = {"float64": 1e-10, "float32": 1e-4}
N_IN, N_HIDDEN, _, N_OUT = MNIST_LAYERS
GAMMA, BETA = 20.0, 0.2


def record_rate(benchmark, work: float, unit: str) -> None:
    """Store ``work`` (flops or bytes) and, when timed, its rate per second.

    ``unit`` is ``"flops"`` (rates in GFLOP/s) or ``"bytes"`` (GB/s); the
    rate of the mean round and of the best round are both recorded.
    """
    benchmark.extra_info[unit] = work
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        name = "gflops" if unit == "flops" else "gbytes_per_s"
        benchmark.extra_info[name] = work / stats.stats.mean / 1e9
        benchmark.extra_info[name + "_best"] = work / stats.stats.min / 1e9


def rel_error(result: np.ndarray, expected: np.ndarray) -> float:
    """Largest entry-wise error relative to the largest entry of ``expected``."""
    scale = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(result.astype(np.float64) - expected))) / scale


# --------------------------------------------------------------- z-update


def numpy_hidden_z_update(z: np.ndarray, a: np.ndarray, gamma: float, beta: float, act: str):
    """Plain vectorised NumPy of the hidden z-update (3), in the arrays' dtype.

    The same closed form as the compiled kernel (best of the candidates of
    ADMM.md, first wins ties), written with whole-array temporaries; returns
    the new ``z`` (the input ``z`` holds ``m = W a``) as a new array.
    """
    m = z
    g = z.dtype.type(gamma)
    b = z.dtype.type(beta)
    best = np.minimum(m, 0)
    cost = g * a * a + b * np.square(np.maximum(m, 0))
    mid = (g * a + b * m) / (g + b)
    z2 = np.clip(mid, 0, 1) if act == "hardsigmoid" else np.maximum(mid, 0)
    c2 = g * np.square(a - z2) + b * np.square(z2 - m)
    take = c2 < cost
    best = np.where(take, z2, best)
    if act == "hardsigmoid":
        cost = np.where(take, c2, cost)
        z3 = np.maximum(m, 1)
        c3 = g * np.square(a - 1) + b * np.square(z3 - m)
        best = np.where(c3 < cost, z3, best)
    return best


def z_cost(z, a, m, act: str) -> np.ndarray:
    """Entry-wise ``gamma (a - h(z))^2 + beta (z - m)^2`` in float64."""
    z = np.asarray(z, dtype=np.float64)
    hz = np.clip(z, 0.0, 1.0) if act == "hardsigmoid" else np.maximum(z, 0.0)
    return GAMMA * (a - hz) ** 2 + BETA * (z - m) ** 2


@pytest.fixture(scope="module", params=DTYPES)
def z_problem(request, size):
    """``(m, a)`` of a hidden layer, shape (samples, 500), in one dtype.

    ``m`` spreads over [-1.5, 2.5] and ``a`` over [-0.2, 1.2] so that every
    candidate of the closed form wins somewhere.
    """
    rng = np.random.default_rng(1)
    shape = (size.m, N_HIDDEN)
    m = rng.uniform(-1.5, 2.5, shape).astype(request.param)
    a = rng.uniform(-0.2, 1.2, shape).astype(request.param)
    return m, a


@pytest.mark.parametrize("impl", ["compiled", "numpy"])
@pytest.mark.parametrize("act", ["hardsigmoid", "relu"])
def test_hidden_z_update(benchmark, size, z_problem, act, impl):
    m, a = z_problem
    benchmark.group = f"z-update-{act}"
    if impl == "compiled":

        def setup():
            return (m.copy(), a), {}

        def run(z, a):
            hidden_z_update(z, a, GAMMA, BETA, act)
            return z

    else:

        def setup():
            return (m, a), {}

        def run(z, a):
            return numpy_hidden_z_update(z, a, GAMMA, BETA, act)

    result = benchmark.pedantic(run, setup=setup, rounds=size.kernel_rounds, warmup_rounds=1)
    # read z and a, write z
    record_rate(benchmark, 3.0 * m.nbytes, "bytes")
    m64, a64 = m.astype(np.float64), a.astype(np.float64)
    expected = hidden_z_closed_form(a64, m64, GAMMA, BETA, act)
    # Compare costs, not z: near a tie two different z are both minimisers.
    got, best = z_cost(result, a64, m64, act), z_cost(expected, a64, m64, act)
    tol = 1e-12 if m.dtype == np.float64 else 1e-5
    assert result.dtype == m.dtype
    assert np.all(got <= best + tol * (1.0 + best))
    # Not only optimal in cost: the same z nearly everywhere.
    assert np.mean(np.abs(result - expected) > 1e-3) < 1e-3


#: The activations of issue 15 with the parameter they are timed with.
MODEL_ACTS = {"leaky_relu": 0.01, "step": 0.0, "sign": 0.0}


def model_h(z, act: str) -> np.ndarray:
    """The activations of issue 15 in float64, from their definitions."""
    z = np.asarray(z, dtype=np.float64)
    if act == "leaky_relu":
        return np.where(z > 0, z, MODEL_ACTS[act] * z)
    return np.where(z > 0, 1.0, 0.0 if act == "step" else -1.0)


@pytest.mark.parametrize("act", sorted(MODEL_ACTS))
def test_hidden_z_update_models(benchmark, size, z_problem, act):
    m, a = z_problem
    benchmark.group = f"z-update-{act}"

    def setup():
        return (m.copy(), a), {}

    def run(z, a):
        hidden_z_update(z, a, GAMMA, BETA, act, MODEL_ACTS[act])
        return z

    result = benchmark.pedantic(run, setup=setup, rounds=size.kernel_rounds, warmup_rounds=1)
    record_rate(benchmark, 3.0 * m.nbytes, "bytes")
    m64, a64 = m.astype(np.float64), a.astype(np.float64)
    got = GAMMA * (a64 - model_h(result, act)) ** 2 + BETA * (result - m64) ** 2
    # No candidate of either side does better (each side's best point:
    # the clamped quadratic minimiser, or the point of the side nearest m).
    s = MODEL_ACTS[act]
    if act == "leaky_relu":
        sides = [
            np.minimum((GAMMA * s * a64 + BETA * m64) / (GAMMA * s * s + BETA), 0.0),
            np.maximum((GAMMA * a64 + BETA * m64) / (GAMMA + BETA), 0.0),
        ]
    else:
        sides = [np.minimum(m64, 0.0), np.maximum(m64, 1e-300)]
    best = np.minimum.reduce(
        [GAMMA * (a64 - model_h(zs, act)) ** 2 + BETA * (zs - m64) ** 2 for zs in sides]
    )
    tol = 1e-12 if m.dtype == np.float64 else 1e-5
    assert np.all(got <= best + tol * (1.0 + best))


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_hidden_z_update_smooth(benchmark, size, z_problem, act):
    m, a = z_problem
    benchmark.group = f"z-update-{act}"

    def setup():
        return (m.copy(), a), {}

    def run(z, a):
        hidden_z_update_smooth(z, a, GAMMA, BETA, act)
        return z

    result = benchmark.pedantic(run, setup=setup, rounds=size.kernel_rounds, warmup_rounds=1)
    record_rate(benchmark, 3.0 * m.nbytes, "bytes")
    # Every z is a local minimum (zero derivative, curvature >= 0) no worse
    # than z = m; the global claim is tests/test_kernels_models.py's.
    z64, m64, a64 = result.astype(np.float64), m.astype(np.float64), a.astype(np.float64)
    if act == "sigmoid":
        u = 1.0 / (1.0 + np.exp(-z64))
        hz, dh, d2h = u, u * (1 - u), u * (1 - u) * (1 - 2 * u)
        hm = 1.0 / (1.0 + np.exp(-m64))
    else:
        hz = np.tanh(z64)
        dh, d2h, hm = 1 - hz**2, -2 * hz * (1 - hz**2), np.tanh(m64)
    grad = -2 * GAMMA * (a64 - hz) * dh + 2 * BETA * (z64 - m64)
    curv = 2 * GAMMA * (dh**2 - (a64 - hz) * d2h) + 2 * BETA
    tol = 1e-9 if m.dtype == np.float64 else 1e-3
    assert np.max(np.abs(grad)) < tol * (GAMMA + BETA)
    assert np.min(curv) > -tol * (GAMMA + BETA)
    cost = GAMMA * (a64 - hz) ** 2 + BETA * (z64 - m64) ** 2
    assert np.all(cost <= GAMMA * (a64 - hm) ** 2 * (1 + tol) + tol)


def output_problem(size, dtype, k: int):
    """``(m, lam, labels)`` of an output layer with ``k`` columns (k = 1: binary)."""
    rng = np.random.default_rng(5)
    m0 = rng.uniform(-3.0, 3.0, (size.m, k)).astype(dtype)
    lam0 = rng.normal(0.0, 0.5, (size.m, k)).astype(dtype)
    labels = rng.integers(0, max(k, 2), size.m)
    return m0, lam0, labels


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["logistic", "cross_entropy"])
def test_output_smooth_update(benchmark, size, dtype, loss):
    benchmark.group = f"output_{loss}_update"
    k = 1 if loss == "logistic" else N_OUT
    m0, lam0, labels = output_problem(size, dtype, k)
    kernel = output_logistic_update if loss == "logistic" else output_cross_entropy_update

    def setup():
        return (m0.copy(), lam0.copy()), {}

    def run(z, lam):
        kernel(z, lam, labels, BETA, False)
        return z

    z = benchmark.pedantic(run, setup=setup, rounds=size.kernel_rounds, warmup_rounds=1)
    record_rate(benchmark, 4.0 * m0.nbytes + labels.nbytes, "bytes")
    # The gradient of the (strictly convex) objective vanishes at z.
    z64, m64, lam64 = z.astype(np.float64), m0.astype(np.float64), lam0.astype(np.float64)
    if loss == "logistic":
        t = (2.0 * labels - 1.0)[:, None]
        grad = -t / (1.0 + np.exp(t * z64))
    else:
        e = np.exp(z64 - z64.max(axis=1, keepdims=True))
        grad = e / e.sum(axis=1, keepdims=True)
        grad[np.arange(size.m), labels] -= 1.0
    grad += lam64 + 2.0 * BETA * (z64 - m64)
    assert np.max(np.abs(grad)) < (1e-12 if dtype == "float64" else 1e-5)


# ------------------------------------------------------------ other kernels


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["hardsigmoid", "relu"])
def test_apply_activation(benchmark, size, dtype, act):
    benchmark.group = "apply_activation"
    z = np.random.default_rng(2).uniform(-1.0, 2.0, (size.m, N_HIDDEN)).astype(dtype)
    out = np.empty_like(z)
    benchmark(apply_activation, z, out, GAMMA, act)
    record_rate(benchmark, 2.0 * z.nbytes, "bytes")
    h = np.clip(z, 0, 1) if act == "hardsigmoid" else np.maximum(z, 0)
    assert rel_error(out, GAMMA * h.astype(np.float64)) < RTOL[dtype]


@pytest.mark.benchmark(group="output_hinge_update")
@pytest.mark.parametrize("dtype", DTYPES)
def test_output_hinge_update(benchmark, size, dtype):
    rng = np.random.default_rng(3)
    m0 = rng.uniform(-1.0, 2.0, (size.m, N_OUT)).astype(dtype)
    lam0 = rng.normal(0.0, 0.5, (size.m, N_OUT)).astype(dtype)
    labels = rng.integers(0, N_OUT, size.m)

    def setup():
        return (m0.copy(), lam0.copy()), {}

    def run(z, lam):
        output_hinge_update(z, lam, labels, BETA, True)
        return z, lam

    z, lam = benchmark.pedantic(run, setup=setup, rounds=size.kernel_rounds, warmup_rounds=1)
    # read and write z and lam, read the labels
    record_rate(benchmark, 4.0 * m0.nbytes + labels.nbytes, "bytes")
    onehot = np.zeros((size.m, N_OUT))
    onehot[np.arange(size.m), labels] = 1.0
    m64, lam64 = m0.astype(np.float64), lam0.astype(np.float64)
    z_expected = hinge_prox(m64, lam64, onehot, BETA)
    lam_expected = lam64 + BETA * (z_expected - m64)
    assert rel_error(z, z_expected) < RTOL[dtype]
    assert rel_error(lam, lam_expected) < RTOL[dtype]


@pytest.mark.benchmark(group="glorot_uniform")
@pytest.mark.parametrize("dtype", DTYPES)
def test_glorot_uniform(benchmark, dtype):
    out = np.empty((N_HIDDEN, N_IN), dtype=dtype)
    benchmark(glorot_uniform, out, np.random.PCG64(0))
    record_rate(benchmark, float(out.nbytes), "bytes")
    glorot_uniform(out, np.random.PCG64(7))
    s = np.sqrt(6.0 / (N_HIDDEN + N_IN))
    expected = s * (2.0 * np.random.Generator(np.random.PCG64(7)).random(out.shape) - 1.0)
    assert rel_error(out, expected) < RTOL[dtype]


def _blocks(size, dtype, *widths):
    """Random ``(samples, width)`` blocks in [0, 1) of one dtype."""
    rng = np.random.default_rng(4)
    return [rng.random((size.m, w)).astype(dtype) for w in widths]


@pytest.mark.benchmark(group="gram")
@pytest.mark.parametrize("dtype", DTYPES)
def test_gram(benchmark, size, dtype):
    (a,) = _blocks(size, dtype, N_HIDDEN)
    out = np.empty((N_HIDDEN, N_HIDDEN), dtype=dtype)
    benchmark(gram, a, out)
    record_rate(benchmark, float(N_HIDDEN) ** 2 * size.m, "flops")
    a64 = a.astype(np.float64)
    assert rel_error(out, a64.T @ a64) < RTOL[dtype]


@pytest.mark.benchmark(group="cross")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross(benchmark, size, dtype):
    z, a = _blocks(size, dtype, N_HIDDEN, N_IN)
    out = np.empty((N_HIDDEN, N_IN), dtype=dtype)
    benchmark(cross, z, a, out)
    record_rate(benchmark, 2.0 * N_HIDDEN * N_IN * size.m, "flops")
    assert rel_error(out, z.astype(np.float64).T @ a.astype(np.float64)) < RTOL[dtype]


@pytest.mark.benchmark(group="matmul")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["a_Wt", "z_W_accumulate"])
def test_matmul(benchmark, size, dtype, form):
    """The iteration's two product forms: ``a W^T`` (3) and ``b z W + out`` (2)."""
    rng = np.random.default_rng(5)
    w = rng.uniform(-0.1, 0.1, (N_HIDDEN, N_IN if form == "a_Wt" else N_HIDDEN)).astype(dtype)
    if form == "a_Wt":
        (a,) = _blocks(size, dtype, N_IN)
        out = np.empty((size.m, N_HIDDEN), dtype=dtype)
        benchmark(matmul, a, w, out, transpose_b=True)
        expected = a.astype(np.float64) @ w.astype(np.float64).T
    else:
        # alpha = BETA, beta = 0: the accumulating form, without drift from rounds.
        (a,) = _blocks(size, dtype, N_HIDDEN)
        out = np.empty((size.m, N_HIDDEN), dtype=dtype)
        benchmark(matmul, a, w, out, alpha=BETA, beta=0.0)
        expected = BETA * (a.astype(np.float64) @ w.astype(np.float64))
    record_rate(benchmark, 2.0 * size.m * w.shape[0] * w.shape[1], "flops")
    assert rel_error(out, expected) < RTOL[dtype]


@pytest.mark.benchmark(group="cholesky")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cholesky_factor_solve(benchmark, size, dtype):
    """Factor ``G + shift I`` (500 x 500) and solve for all samples' rows."""
    rng = np.random.default_rng(6)
    w = rng.uniform(-0.1, 0.1, (N_OUT * 5, N_HIDDEN))
    g = BETA * (w.T @ w)
    (b0,) = _blocks(size, dtype, N_HIDDEN)

    def setup():
        return (g.astype(dtype), b0.copy()), {}

    def run(factor, b):
        cholesky_factor(factor, shift=GAMMA)
        cholesky_solve(factor, b)
        return b

    b = benchmark.pedantic(run, setup=setup, rounds=size.kernel_rounds, warmup_rounds=1)
    n = N_HIDDEN
    record_rate(benchmark, n**3 / 3.0 + 2.0 * n * n * size.m, "flops")
    # b A = b0 with A = G + shift I: multiply back rather than solve again.
    assert (
        rel_error(b.astype(np.float64) @ (g + GAMMA * np.eye(n)), b0.astype(np.float64))
        < RTOL[dtype]
    )


# ------------------------------------------------------------ GEMM rate


@pytest.mark.benchmark(group="gemm-rate")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("blas", ["admm_core", "numpy"])
def test_gemm_rate(benchmark, size, dtype, blas):
    """The matrix-multiply floor's rate: ``(m x 784)(784 x 500)``, as in (3).

    ``admm_core`` goes through SciPy's BLAS like the iteration; ``numpy``
    through NumPy's own copy of OpenBLAS, which the NumPy reference uses.
    ``gflops`` in ``extra_info`` divides the iteration's flop count into the
    floor (see ``report.py``).
    """
    rng = np.random.default_rng(8)
    (a,) = _blocks(size, dtype, N_IN)
    w = rng.uniform(-0.1, 0.1, (N_HIDDEN, N_IN)).astype(dtype)
    out = np.empty((size.m, N_HIDDEN), dtype=dtype)
    if blas == "admm_core":
        benchmark(matmul, a, w, out, transpose_b=True)
    else:
        benchmark(np.matmul, a, w.T, out=out)
    record_rate(benchmark, 2.0 * size.m * N_HIDDEN * N_IN, "flops")
    assert rel_error(out, a.astype(np.float64) @ w.astype(np.float64).T) < RTOL[dtype]
