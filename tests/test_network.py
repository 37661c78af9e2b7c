"""ADMMNetwork against the NumPy reference of ADMM.md, in one process.

The reference (``reference_admm.py``) shares no code with the package: it
keeps columns as samples, solves (2) directly where the network may use the
Woodbury identity, and evaluates the closed forms with NumPy. Both start from
the same weights and the same absolute ``rho``.

The piecewise z-update can turn a last-bit difference into a different
candidate, after which the trajectories separate. The problem sizes and
seeds below were checked not to hit such a flip within the compared
iterations; the 1e-10 tolerance is kept as the spec asks, not widened to
absorb one. Measured worst relative weight differences after 6 iterations:
1e-15 to 8e-13, except relu/squared (4, 3, 5) at 2e-11, where the iteration
itself amplifies rounding past warm-up (two references whose initial weights
differ by 1e-15 relative separate the same way), not a difference in method.
"""

from __future__ import annotations

import itertools

import admm
import admm._blocksum as blocksum
import numpy as np
import pytest
from admm import ADMMNetwork
from admm._mpi import Communicator
from admm.network import RHO_RELATIVE
from reference_admm import ReferenceADMM, forward

BETA = {2: [0.7], 3: [0.5, 2.0], 4: [0.5, 1.0, 2.0]}
GAMMA = {2: [], 3: [8.0], 4: [10.0, 5.0]}
RHO = {2: [1e-2], 3: [1e-3, 1e-2], 4: [1e-3, 1e-2, 1e-1]}


def make_data(rng, layers, loss, m):
    """Inputs in [0, 1] and labels (hinge) or targets (squared) for ``layers``."""
    X = rng.random((m, layers[0]))
    if loss == "hinge":
        y = rng.integers(0, layers[-1], m)
    else:
        y = rng.random((m, layers[-1]))
    return X, y


def make_pair(X, y, layers, activation, loss, warmup, seed=3, dtype="float64"):
    """A network and a reference from the same Glorot weights and hyper-parameters."""
    L = len(layers)
    kwargs = dict(beta=BETA[L], gamma=GAMMA[L], rho=RHO[L], warmup=warmup)
    net = ADMMNetwork(layers, activation=activation, loss=loss, seed=seed, dtype=dtype, **kwargs)
    weights = [np.array(w, dtype=np.float64) for w in net.weights]
    ref = ReferenceADMM(X, y, layers, weights, activation=activation, loss=loss, **kwargs)
    return net, ref


def assert_weights_close(actual, expected, rtol):
    """Entry-wise relative agreement, floored by the layer's largest entry."""
    assert len(actual) == len(expected)
    for l, (w, r) in enumerate(zip(actual, expected, strict=True)):
        np.testing.assert_allclose(
            w, r, rtol=rtol, atol=rtol * np.abs(r).max(), err_msg=f"W_{l + 1}"
        )


# (activation, loss, layers): whether each hidden a_l update uses Woodbury
# (next layer narrower) is noted per case.
CASES = [
    ("hardsigmoid", "hinge", (6, 8, 5, 3)),  # a1: 8 > 5 Woodbury, a2: 5 > 3 Woodbury
    ("hardsigmoid", "hinge", (6, 4, 7, 3)),  # a1: 4 < 7 direct, a2: Woodbury
    ("relu", "hinge", (6, 8, 5, 3)),
    ("relu", "hinge", (5, 4, 6, 3)),  # a1 direct
    ("hardsigmoid", "squared", (5, 6, 6, 2)),  # a1: equal widths, direct
    ("relu", "squared", (4, 3, 5)),  # a1: direct
    ("hardsigmoid", "squared", (4, 6, 2)),  # a1: Woodbury
    ("hardsigmoid", "hinge", (5, 3)),  # no hidden layer
]


@pytest.mark.parametrize(("activation", "loss", "layers"), CASES)
def test_iterations_match_reference(rng, activation, loss, layers):
    X, y = make_data(rng, layers, loss, 60)
    net, ref = make_pair(X, y, layers, activation, loss, warmup=3)
    net.fit(X, y, iterations=6)
    objectives, residuals = [], []
    for _ in range(6):
        ref.step()
        objectives.append(ref.objective())
        residuals.append(ref.residual())
    assert ref.t == 6 and net.n_iter_ == 6
    assert_weights_close(net.weights, ref.weights, 1e-10)
    # Past warm-up the multipliers moved: the comparison covers (6) too.
    assert np.abs(ref.lam).max() > 0
    np.testing.assert_allclose([h["objective"] for h in net.history], objectives, rtol=1e-10)
    np.testing.assert_allclose(
        [h["residual"] for h in net.history], residuals, rtol=1e-8, atol=1e-12
    )
    assert [h["iteration"] for h in net.history] == list(range(1, 7))


def test_products_in_row_chunks_match_reference(rng, monkeypatch):
    """The products of samples' own rows run in calls of at most PRODUCT_ROWS
    rows (60 samples in chunks of 7 here), within the blocks of
    deterministic; the iteration is the reference's all the same."""
    monkeypatch.setattr(blocksum, "PRODUCT_ROWS", 7)
    layers = (5, 6, 6, 3)  # a wide (gemm) and a narrow (Woodbury) activation update
    X, y = make_data(rng, layers, "hinge", 60)
    net, ref = make_pair(X, y, layers, "hardsigmoid", "hinge", warmup=0)
    net.fit(X, y, iterations=4)
    for _ in range(4):
        ref.step()
    assert_weights_close(net.weights, ref.weights, 1e-10)
    comm = Communicator()
    plain = blocksum.SampleReducer(comm, 60, deterministic=False, block_size=16)
    assert plain.product_rows(60)[:2] == [slice(0, 7), slice(7, 14)]
    assert plain.product_rows(60)[-1] == slice(56, 60)
    blocked = blocksum.SampleReducer(comm, 60, deterministic=True, block_size=16)
    starts = [0, 7, 14, 16, 23, 30, 32, 39, 46, 48, 55]  # blocks of 16, chunks of 7
    stops = [*starts[1:], 60]
    assert blocked.product_rows(60) == [slice(a, b) for a, b in zip(starts, stops, strict=True)]


@pytest.mark.parametrize(("activation", "loss", "layers"), CASES[:1] + CASES[4:5])
def test_state_matches_reference(rng, activation, loss, layers):
    # Beyond the weights: activations, outputs and multipliers of the last
    # iteration (samples in rows in the network, columns in the reference).
    X, y = make_data(rng, layers, loss, 40)
    net, ref = make_pair(X, y, layers, activation, loss, warmup=1)
    net.fit(X, y, iterations=3)
    for _ in range(3):
        ref.step()
    state = net.get_state()
    for l, a in enumerate(state["a"], start=1):
        np.testing.assert_allclose(a, ref.a[l].T, rtol=1e-10, atol=1e-12)
    for z, zr in zip(state["z"], ref.z, strict=True):
        np.testing.assert_allclose(z, zr.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state["lam"], ref.lam.T, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("activation", "loss", "layers"), CASES)
def test_objective_never_increases_during_warmup(rng, activation, loss, layers):
    # With no multiplier update every sub-step is an exact block minimisation
    # of the objective including its ridge term.
    X, y = make_data(rng, layers, loss, 50)
    iterations = 8
    net, ref = make_pair(X, y, layers, activation, loss, warmup=iterations)
    net.fit(X, y, iterations=iterations)
    values = [h["objective"] for h in net.history]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(values)), values
    assert values[-1] < values[0]  # it did move

    # Per sub-step in the reference: (1), (2), (3) for each layer, (4), (5).
    steps = []
    previous = ref.objective()
    for _ in range(iterations):

        def check(name, _steps=steps):
            nonlocal previous
            now = ref.objective()
            _steps.append((name, previous, now))
            previous = now

        ref.step(observer=check)
    increases = [(n, p, c) for n, p, c in steps if c > p * (1 + 1e-12) + 1e-14]
    assert not increases
    assert "lam" not in {n for n, _, _ in steps}


def test_objective_is_the_problem_objective_after_warmup(rng):
    # Past warm-up lam != 0: the reported objective includes <z_L, lam>.
    layers = (6, 5, 3)
    X, y = make_data(rng, layers, "hinge", 40)
    net, ref = make_pair(X, y, layers, "hardsigmoid", "hinge", warmup=0)
    net.fit(X, y, iterations=4)
    for _ in range(4):
        ref.step()
    assert np.abs(np.sum(ref.z[-1] * ref.lam)) > 1e-6
    np.testing.assert_allclose(net.history[-1]["objective"], ref.objective(), rtol=1e-10)


@pytest.mark.parametrize("activation", ["hardsigmoid", "relu"])
def test_float32_tracks_float64(rng, activation):
    layers = (6, 8, 5, 3)
    X, y = make_data(rng, layers, "hinge", 80)
    net64, _ = make_pair(X, y, layers, activation, "hinge", warmup=3)
    net32, _ = make_pair(X, y, layers, activation, "hinge", warmup=3, dtype="float32")
    net64.fit(X, y, iterations=6)
    net32.fit(X, y, iterations=6)
    assert all(w.dtype == np.float32 for w in net32.weights)
    obj64 = np.array([h["objective"] for h in net64.history])
    obj32 = np.array([h["objective"] for h in net32.history])
    np.testing.assert_allclose(obj32, obj64, rtol=1e-3)
    for w32, w64 in zip(net32.weights, net64.weights, strict=True):
        assert np.linalg.norm(w32 - w64) <= 1e-3 * np.linalg.norm(w64)
    assert abs(net32.score(X, y) - net64.score(X, y)) <= 0.05


# ---------------------------------------------------------------------------
# initialisation


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_glorot_initialisation(dtype):
    layers = (7, 5, 4, 3)
    a = ADMMNetwork(layers, seed=11, dtype=dtype)
    b = ADMMNetwork(layers, seed=11, dtype=dtype)
    c = ADMMNetwork(layers, seed=12, dtype=dtype)
    # One PCG64 stream over the layers in order, s (2u - 1) in float64.
    gen = np.random.Generator(np.random.PCG64(11))
    for l, (wa, wb, wc) in enumerate(zip(a.weights, b.weights, c.weights, strict=True)):
        shape = (layers[l + 1], layers[l])
        s = np.sqrt(6.0 / (shape[0] + shape[1]))
        expected = (s * (2 * gen.random(shape) - 1)).astype(dtype)
        assert wa.shape == shape and wa.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(wa, expected)
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)


def test_glorot_same_in_both_dtypes():
    w64 = ADMMNetwork((5, 4, 2), seed=3).weights
    w32 = ADMMNetwork((5, 4, 2), seed=3, dtype="float32").weights
    for a, b in zip(w64, w32, strict=True):
        np.testing.assert_array_equal(a.astype(np.float32), b)


def test_given_weights_are_honoured(rng):
    layers = (4, 3, 2)
    weights = [rng.standard_normal((3, 4)), rng.standard_normal((2, 3))]
    net = ADMMNetwork(layers, weights=weights, seed=0)
    for w, given in zip(net.weights, weights, strict=True):
        np.testing.assert_array_equal(w, given)
    # copied: changing the caller's arrays later changes nothing
    original = [w.copy() for w in weights]
    weights[0][...] = 0.0
    np.testing.assert_array_equal(net.weights[0], original[0])
    # and fit starts from them, not from Glorot: compare with the reference
    X, y = make_data(rng, layers, "hinge", 30)
    net = ADMMNetwork(layers, weights=original, beta=[0.5, 2.0], gamma=8.0, rho=[1e-3, 1e-2])
    net.fit(X, y, iterations=2)
    ref = ReferenceADMM(
        X, y, layers, original, beta=[0.5, 2.0], gamma=[8.0], rho=[1e-3, 1e-2], warmup=10
    )
    ref.step()
    ref.step()
    assert_weights_close(net.weights, ref.weights, 1e-10)
    # a second fit starts again from the given weights
    net.fit(X, y, iterations=2)
    assert_weights_close(net.weights, ref.weights, 1e-10)


@pytest.mark.parametrize("activation", ["hardsigmoid", "relu"])
def test_default_rho_is_relative_to_gram_diagonal(rng, activation):
    layers = (6, 5, 4, 3)
    X, y = make_data(rng, layers, "hinge", 50)
    X *= 7.0  # the default must scale with the data
    net = ADMMNetwork(layers, activation=activation, rho=None, seed=4)
    assert net.rho_ is None
    weights = [w.copy() for w in net.weights]
    net.fit(X, y, iterations=2)
    # RHO_RELATIVE times the mean diagonal of a_{l-1} a_{l-1}^T after the
    # initial forward pass: ||a_{l-1}||_F^2 / n_{l-1}.
    h = (
        (lambda v: np.clip(v, 0, 1))
        if activation == "hardsigmoid"
        else (lambda v: np.maximum(v, 0))
    )
    a = X.T
    expected = []
    for l, w in enumerate(weights):
        expected.append(RHO_RELATIVE * np.trace(a @ a.T) / layers[l])
        a = h(w @ a)
    np.testing.assert_allclose(net.rho_, expected, rtol=1e-12)
    # and the run equals one given those values explicitly
    explicit = ADMMNetwork(layers, activation=activation, rho=list(net.rho_), seed=4)
    explicit.fit(X, y, iterations=2)
    for w, v in zip(net.weights, explicit.weights, strict=True):
        np.testing.assert_array_equal(w, v)


# ---------------------------------------------------------------------------
# prediction and persistence


@pytest.fixture
def trained(rng):
    layers = (6, 7, 5, 3)
    X, y = make_data(rng, layers, "hinge", 90)
    net = ADMMNetwork(layers, beta=1.0, gamma=10.0, rho=1e-3, warmup=2, seed=2)
    net.fit(X, y, iterations=5)
    return net, X, y


def test_predict_decision_function_score(trained, rng):
    net, X, y = trained
    X_test = rng.random((17, 6))
    scores = net.decision_function(X_test)
    assert scores.shape == (17, 3)
    np.testing.assert_allclose(
        scores, forward(net.weights, X_test, "hardsigmoid"), rtol=1e-12, atol=1e-14
    )
    labels = net.predict(X_test)
    assert labels.shape == (17,)
    np.testing.assert_array_equal(labels, np.argmax(scores, axis=1))
    y_test = rng.integers(0, 3, 17)
    assert net.score(X_test, y_test) == pytest.approx(np.mean(labels == y_test))
    # score is the accuracy of the forward pass's arg-max on any labelled data
    train_labels = np.argmax(forward(net.weights, X, "hardsigmoid"), axis=1)
    assert net.score(X, y) == pytest.approx(np.mean(train_labels == y))
    # empty input gives empty output
    assert net.decision_function(np.empty((0, 6))).shape == (0, 3)


def test_predict_single_output_thresholds_at_half(rng):
    layers = (3, 4, 1)
    X, y = make_data(rng, layers, "squared", 30)
    net = ADMMNetwork(layers, loss="squared", rho=1e-3, seed=1)
    net.fit(X, y, iterations=3)
    scores = net.decision_function(X)
    assert scores.shape == (30, 1)
    np.testing.assert_array_equal(net.predict(X), (scores[:, 0] > 0.5).astype(int))


def test_save_load_round_trip(trained, tmp_path, rng):
    net, X, _ = trained
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = admm.load(path)
    X_test = np.vstack([X, rng.random((25, 6))])
    np.testing.assert_array_equal(loaded.predict(X_test), net.predict(X_test))
    np.testing.assert_array_equal(loaded.decision_function(X_test), net.decision_function(X_test))
    for a, b in zip(loaded.weights, net.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.layers == net.layers
    assert loaded.activation == net.activation and loaded.loss == net.loss
    assert loaded.beta == net.beta and loaded.gamma == net.gamma
    assert loaded.dtype == net.dtype and loaded.n_iter_ == net.n_iter_


def test_load_rejects_non_model_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="not a readable admm model"):
        admm.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="not an admm model"):
        admm.load(other)


# ---------------------------------------------------------------------------
# continuing a run


def fresh_network(layers):
    """The network of the restart tests, before any fit."""
    return ADMMNetwork(layers, beta=[0.5, 1.0, 2.0], gamma=[10.0, 5.0], rho=1e-3, warmup=2, seed=9)


def run_uninterrupted(X, y, layers, iterations):
    return fresh_network(layers).fit(X, y, iterations=iterations)


def assert_same_run(net, full):
    """Bit-for-bit the same weights and objective history."""
    for a, b in zip(net.weights, full.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [h["objective"] for h in net.history] == [h["objective"] for h in full.history]


def test_warm_start_equals_uninterrupted_run(rng):
    layers = (6, 8, 5, 3)
    X, y = make_data(rng, layers, "hinge", 50)
    full = run_uninterrupted(X, y, layers, 6)
    net = run_uninterrupted(X, y, layers, 3)
    net.fit(X, y, iterations=6, warm_start=True)
    assert net.n_iter_ == 6
    assert_same_run(net, full)


def test_set_state_continues_bit_for_bit(rng, tmp_path):
    layers = (6, 8, 5, 3)
    X, y = make_data(rng, layers, "hinge", 50)
    full = run_uninterrupted(X, y, layers, 6)
    first = run_uninterrupted(X, y, layers, 3)
    # Through a file, as a checkpoint would be (get_state returns live buffers).
    state = first.get_state()
    arrays = {f"W{i}": w for i, w in enumerate(state["weights"])}
    arrays |= {f"a{i}": v for i, v in enumerate(state["a"])}
    arrays |= {f"z{i}": v for i, v in enumerate(state["z"])}
    np.savez(tmp_path / "state.npz", lam=state["lam"], rho=state["rho"], **arrays)
    with np.load(tmp_path / "state.npz") as f:
        restored = {
            "weights": [f[f"W{i}"] for i in range(3)],
            "a": [f[f"a{i}"] for i in range(2)],
            "z": [f[f"z{i}"] for i in range(3)],
            "lam": f["lam"],
            "rho": f["rho"],
            "n_iter": state["n_iter"],
            "history": state["history"],
        }
    second = fresh_network(layers)
    second.set_state(restored, X, y)
    second.fit(X, y, iterations=6, warm_start=True)
    assert_same_run(second, full)
    # The warm-up boundary (iteration 2) was crossed inside the first part;
    # a restart across it (at 1) must also match.
    early = run_uninterrupted(X, y, layers, 1)
    third = fresh_network(layers)
    state = early.get_state()
    third.set_state(state, X, y)
    third.fit(X, y, iterations=6, warm_start=True)
    assert_same_run(third, full)


def test_set_state_rejects_wrong_shapes(rng):
    layers = (6, 8, 5, 3)
    X, y = make_data(rng, layers, "hinge", 20)
    net = run_uninterrupted(X, y, layers, 1)
    state = net.get_state()
    other = ADMMNetwork(layers)
    with pytest.raises(ValueError, match="a_1 has shape"):
        other.set_state(state, X[:10], y[:10])


def test_one_process_networks_do_not_use_up_communicators():
    """A communicator of one process is used as it is, not duplicated: MPICH
    has 2048 context ids per process, and a test suite or a grid search
    trains more networks than that in one process."""
    from mpi4py import MPI

    X = np.random.default_rng(0).standard_normal((8, 2))
    y = np.arange(8) % 2
    for i in range(2100):
        comm = (None, MPI.COMM_SELF)[i % 2]  # COMM_WORLD of one process, COMM_SELF
        ADMMNetwork((2, 2), comm=comm).fit(X, y, iterations=1)
    local = Communicator.local()
    assert local.size == 1 and local.mpi_comm == MPI.COMM_SELF
    local.free()  # nothing to release: COMM_SELF stays usable
    assert MPI.COMM_SELF.Get_size() == 1
