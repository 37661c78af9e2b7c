"""One whole ADMM iteration: ``ADMMNetwork`` against the plain NumPy reference.

Group ``iteration``: our iteration in float64 and float32, and the same
iteration of ``tests/reference_admm.ReferenceADMM`` (float64 only, columns
as samples, dense ``numpy.linalg.solve``), on the session's problem
(``ADMM_BENCH_SIZE``: 2,000 samples by default, all 60,000 MNIST images with
``mnist``; layers 784-500-500-10, hard sigmoid, hinge, beta 0.2, gamma 20).

Our iteration is ``ADMMNetwork.step()`` after a first
``fit(X, y, iterations=1)``: exactly the loop body of ``fit`` (the weight,
activation and z-updates, the multiplier update and the one Allreduce of
the objective terms), without ``fit``'s argument checks, which scan the
whole input block. ``warmup=0``, so every timed iteration updates the
multiplier.

The iteration contains collectives, so it runs a fixed number of rounds
after a barrier (automatic calibration could deadlock under ``mpiexec``).
``extra_info`` holds the flop count of the model in ``bench/flop_model.py``
and, when timed, the GFLOP/s it implies; ``bench.scripts.report`` divides it
by the GEMM rate of the same run to get the floor.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from admm import ADMMNetwork
from mpi4py import MPI

from bench.common import PARAMS, mnist_like, reference_after_one_step
from bench.flop_model import iteration_flops

#: Agreement of the weights after one iteration with the float64 reference,
#: relative to each weight matrix's largest entry. float32's W_1 comes from a
#: nearly singular input Gram (seen: 5e-3 at 2,000 samples); a wrong
#: iteration is off by O(1).
WEIGHT_RTOL = {"float64": 1e-6, "float32": 3e-2}
#: The reference takes about a minute per iteration at the MNIST size on a
#: loaded machine: more than pytest-timeout's default for the project.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def problem(size):
    """Data, networks after one iteration, and the reference after one step.

    The float32 network picks its default ridge; the float64 network and the
    reference reuse it, so all three solve the same problem from the same
    Glorot weights, and their weights after iteration 0 can be compared.
    """
    X, y, source = mnist_like(size.m)
    layers = size.layers
    nets = {"float32": ADMMNetwork(layers, dtype="float32", **PARAMS)}
    nets["float32"].fit(X.astype(np.float32), y, iterations=1)
    rho = nets["float32"].rho_
    nets["float64"] = ADMMNetwork(layers, dtype="float64", rho=rho, **PARAMS)
    start = nets["float64"].weights  # before fit: the Glorot weights of seed 0
    nets["float64"].fit(X, y, iterations=1)
    reference = reference_after_one_step(X, y, layers, start, rho)
    expected = [w.copy() for w in reference.weights]
    return {
        "source": source,
        "nets": nets,
        "reference": reference,
        "expected": expected,
        "first": {k: [w.copy() for w in net.weights] for k, net in nets.items()},
    }


def _record(benchmark, size, source: str) -> None:
    flops = iteration_flops(size.layers, size.m)
    benchmark.extra_info.update(
        {"flops": flops, "m": size.m, "layers": list(size.layers), "data": source}
    )
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["gflops"] = flops / stats.stats.mean / 1e9
        benchmark.extra_info["gflops_best"] = flops / stats.stats.min / 1e9


def _assert_close(weights, expected, rtol: float) -> None:
    for l, (w, e) in enumerate(zip(weights, expected, strict=True), start=1):
        err = float(np.max(np.abs(np.asarray(w, dtype=np.float64) - e)))
        scale = float(np.max(np.abs(e)))
        assert err <= rtol * scale, f"W_{l} differs from the reference by {err:.3g}"


@pytest.mark.benchmark(group="iteration")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_iteration_admm(benchmark, size, problem, dtype):
    net = problem["nets"][dtype]
    # The first iteration (in the fixture) must agree with the reference's.
    _assert_close(problem["first"][dtype], problem["expected"], WEIGHT_RTOL[dtype])

    start = net.n_iter_
    MPI.COMM_WORLD.Barrier()
    record = benchmark.pedantic(net.step, rounds=size.iteration_rounds, iterations=1)
    _record(benchmark, size, problem["source"])
    # One round with --benchmark-disable, iteration_rounds when timed.
    assert net.n_iter_ > start and record is net.history[-1]
    assert record["iteration"] == net.n_iter_
    assert math.isfinite(record["objective"]) and math.isfinite(record["residual"])


@pytest.mark.benchmark(group="iteration")
def test_iteration_numpy_reference(benchmark, size, problem):
    reference = problem["reference"]
    benchmark.pedantic(reference.step, rounds=size.iteration_rounds, iterations=1)
    _record(benchmark, size, problem["source"])
    assert math.isfinite(reference.objective())


@pytest.mark.benchmark(group="refit")
@pytest.mark.parametrize("readout", [0, 5])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_refit(benchmark, size, problem, dtype, readout):
    """``ADMMNetwork.refit()`` of the state after the iterations above, with
    the least-squares ``W_L`` (``readout`` 0) or 5 read-out iterations: the
    read-out's cost is the ratio of the two in one run (it holds ``f_{L-1}``
    and runs two ``(m, n_{L-1}) x n_L`` products an iteration). Runs after
    the iteration benchmarks, whose networks it refits."""
    net = problem["nets"][dtype]
    MPI.COMM_WORLD.Barrier()
    benchmark.pedantic(
        net.refit, kwargs={"readout_iterations": readout}, rounds=size.iteration_rounds
    )
    benchmark.extra_info.update({"m": size.m, "layers": list(size.layers), "readout": readout})
    refit = [np.array(w) for w in net.weights]
    assert all(np.all(np.isfinite(w)) for w in refit)
    # The refit depends on the state alone: the least-squares one again
    # differs from the read-out in W_L only when there is a read-out.
    net.refit(readout_iterations=0)
    for w, v in zip(refit[:-1], net.weights[:-1], strict=True):
        np.testing.assert_array_equal(w, v)
    assert (readout > 0) == (not np.array_equal(refit[-1], net.weights[-1]))
