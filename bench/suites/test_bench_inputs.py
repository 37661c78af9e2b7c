"""The set-up of ``fit`` with and without ``--preset best``'s input transforms.

Group ``setup``: ``ADMMNetwork.fit(X, y, iterations=0)`` (conversion, the
input transforms, the centring, the initial forward pass) on the session's
problem (``ADMM_BENCH_SIZE``), with centring alone and with
``input_power`` 0.5, ``normalize_inputs`` and ``spectral_power`` 0.5 too,
in float64 and float32: the transforms' cost is the ratio of the two in
one run (a covariance of the inputs, summed in float64 and reduced, its
eigen-decomposition, and one ``(m, n_0) x (n_0, n_0)`` product).

Group ``input-transforms``: the per-sample steps alone
(:func:`admm.preprocessing.power_normalize`,
:func:`admm.preprocessing.normalize_rows`) on the input block, their rate
in bytes moved (read once, written once); and
:func:`admm.preprocessing.spectral_scaling` of the inputs' covariance.

Every benchmark checks its result against NumPy written out directly.
"""

from __future__ import annotations

import numpy as np
import pytest
from admm import ADMMNetwork
from admm.preprocessing import normalize_rows, power_normalize, spectral_scaling
from mpi4py import MPI

from bench.common import PARAMS, mnist_like
from bench.suites.test_bench_kernels import record_rate

TRANSFORMS = {"input_power": 0.5, "normalize_inputs": True, "spectral_power": 0.5}


@pytest.fixture(scope="module")
def inputs(size):
    X, y, source = mnist_like(size.m)
    return {"X": X, "y": y, "source": source}


def covariance_by_numpy(X: np.ndarray) -> np.ndarray:
    """The covariance of the transformed, centred inputs in float64, by NumPy."""
    T = np.sqrt(X)
    T = T / np.maximum(np.linalg.norm(T, axis=1, keepdims=True), np.finfo(float).tiny)
    T = T - T.mean(axis=0)
    return T.T @ T / T.shape[0]


@pytest.mark.benchmark(group="setup")
@pytest.mark.parametrize("transforms", [False, True], ids=["centred", "best-transforms"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_setup(benchmark, size, inputs, dtype, transforms):
    X = inputs["X"].astype(dtype)
    options = {**PARAMS, "center": True, "dtype": dtype, **(TRANSFORMS if transforms else {})}

    def setup() -> ADMMNetwork:
        return ADMMNetwork(size.layers, **options).fit(X, inputs["y"], iterations=0)

    MPI.COMM_WORLD.Barrier()
    net = benchmark.pedantic(setup, rounds=size.iteration_rounds, iterations=1)
    benchmark.extra_info.update({"m": size.m, "data": inputs["source"], "transforms": transforms})
    assert (net.input_basis_ is not None) == transforms
    if transforms:
        expected = spectral_scaling(covariance_by_numpy(inputs["X"]), 0.5)
        tol = 1e-6 if dtype == "float64" else 1e-2
        assert np.max(np.abs(net.input_basis_ - expected)) <= tol * np.max(np.abs(expected))


@pytest.mark.benchmark(group="input-transforms")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_power_normalize(benchmark, inputs, dtype):
    X = inputs["X"].astype(dtype)
    out = np.empty_like(X)
    benchmark(power_normalize, X, 0.5, out)
    record_rate(benchmark, 2 * X.nbytes, "bytes")
    np.testing.assert_allclose(out, np.sqrt(X), rtol=1e-6 if dtype == "float32" else 1e-15)


@pytest.mark.benchmark(group="input-transforms")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_normalize_rows(benchmark, inputs, dtype):
    X = inputs["X"].astype(dtype)
    out = np.empty_like(X)
    benchmark(normalize_rows, X, out)
    record_rate(benchmark, 2 * X.nbytes, "bytes")
    norms = np.linalg.norm(inputs["X"], axis=1, keepdims=True)
    expected = inputs["X"] / np.where(norms > 0, norms, 1.0)
    np.testing.assert_allclose(out, expected, rtol=1e-6 if dtype == "float32" else 1e-14)


@pytest.mark.benchmark(group="input-transforms")
def test_spectral_scaling(benchmark, inputs):
    covariance = covariance_by_numpy(inputs["X"])
    P = benchmark(spectral_scaling, covariance, 0.5)
    # Its square scales the covariance's eigenvalues v to v (v / mean v)^0.5.
    v, V = np.linalg.eigh(covariance)
    v = np.where(v > v.size * np.finfo(float).eps * v.max(), v, 0.0)
    want = (V * (v * np.sqrt(v / v.mean()))) @ V.T
    got = P @ covariance @ P
    assert np.max(np.abs(got - want)) <= 1e-10 * np.max(np.abs(want))
