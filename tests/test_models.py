"""The activations and losses of issue 15 through whole iterations of the network.

Every part against the plain NumPy implementation of ``tests/reference_admm.py``
(same initial weights, through and past the warm-up), the objective never
increasing while each step is an exact block minimisation (the warm-up), and
model files of every part loading and predicting without MPI.
"""

from __future__ import annotations

import itertools

import admm
import numpy as np
import pytest
from admm import ADMMNetwork
from reference_admm import ReferenceADMM

#: (activation, loss, layers): every new activation with the hinge, every new
#: loss with a piecewise activation, binary tasks with one output.
CASES = [
    ("leaky_relu", "hinge", (5, 6, 4, 3)),
    ("step", "hinge", (5, 6, 4, 3)),
    ("sign", "squared", (5, 4, 6, 3)),
    ("sigmoid", "hinge", (4, 5, 3)),
    ("tanh", "squared", (4, 3, 5, 2)),
    ("relu", "cross_entropy", (5, 6, 4, 3)),
    ("hardsigmoid", "cross_entropy", (5, 4, 6, 4)),
    ("relu", "logistic", (5, 6, 1)),
    ("hardsigmoid", "hinge", (5, 6, 4, 1)),  # binary hinge, one output
]
OPTIONS = {"beta": 1.0, "gamma": 2.0, "rho": 0.05, "negative_slope": 0.1}


def make_data(rng, layers, loss, m):
    X = rng.random((m, layers[0]))
    n_classes = 2 if layers[-1] == 1 else layers[-1]
    labels = rng.integers(0, n_classes, m)
    if loss == "squared":
        return X, np.eye(layers[-1])[labels]
    return X, labels


def make_pair(X, y, layers, activation, loss, warmup, dtype="float64", **extra):
    """A network and the reference from its initial weights; ``extra`` options
    (such as ``label_smoothing``) go to both under the same names."""
    net = ADMMNetwork(layers, activation=activation, loss=loss, warmup=warmup, seed=3, dtype=dtype,
                      **OPTIONS, **extra)  # fmt: skip
    weights = [np.array(w, dtype=np.float64) for w in net.weights]
    ref = ReferenceADMM(
        X, y, layers, weights, activation=activation, loss=loss, warmup=warmup,
        beta=[OPTIONS["beta"]] * (len(layers) - 1), gamma=[OPTIONS["gamma"]] * (len(layers) - 2),
        rho=[OPTIONS["rho"]] * (len(layers) - 1), negative_slope=OPTIONS["negative_slope"],
        **extra,
    )  # fmt: skip
    return net, ref


#: Weight agreement with the reference: rounding for the closed forms (1e-9);
#: the smooth activations' and losses' references are SciPy minimisers
#: (Brent, BFGS), accurate to about 1e-10 in z; a sign network's W_L amplifies
#: rounding about 30-fold per iteration here (a nearly singular Gram of +-1
#: activations), which the ridge of OPTIONS keeps small.
RTOL = {"sigmoid": 1e-7, "tanh": 1e-7, "cross_entropy": 1e-7, "logistic": 1e-7, "sign": 1e-6}


def assert_matches_reference(rng, activation, loss, layers, **extra):
    """Four iterations (warm-up 2) of the network and of the reference agree."""
    X, y = make_data(rng, layers, loss, 40)
    net, ref = make_pair(X, y, layers, activation, loss, warmup=2, **extra)
    net.fit(X, y, iterations=4)
    for _ in range(4):
        ref.step()
    rtol = max(RTOL.get(activation, 1e-9), RTOL.get(loss, 1e-9))
    for l, (w, r) in enumerate(zip(net.weights, ref.weights, strict=True)):
        np.testing.assert_allclose(
            w, r, rtol=rtol, atol=rtol * np.abs(r).max(), err_msg=f"W{l + 1}"
        )
    np.testing.assert_allclose(net.history[-1]["objective"], ref.objective(), rtol=1e3 * rtol)


def assert_warmup_descends(rng, activation, loss, layers, **extra):
    """The objective never increases over six warm-up iterations, and falls."""
    X, y = make_data(rng, layers, loss, 50)
    iterations = 6
    net = ADMMNetwork(layers, activation=activation, loss=loss, warmup=iterations, seed=1,
                      **OPTIONS, **extra)  # fmt: skip
    net.fit(X, y, iterations=iterations)
    values = [h["objective"] for h in net.history]
    assert all(b <= a * (1 + 1e-10) for a, b in itertools.pairwise(values)), values
    assert values[-1] < values[0]


@pytest.mark.parametrize(("activation", "loss", "layers"), CASES)
def test_iterations_match_reference_through_and_past_the_warmup(rng, activation, loss, layers):
    assert_matches_reference(rng, activation, loss, layers)


@pytest.mark.parametrize(("activation", "loss", "layers"), CASES)
def test_objective_never_increases_during_warmup(rng, activation, loss, layers):
    assert_warmup_descends(rng, activation, loss, layers)


#: The cross-entropy's cases of CASES, run with label smoothing.
SMOOTHED = [(a, layers) for a, loss, layers in CASES if loss == "cross_entropy"]


@pytest.mark.parametrize(("activation", "layers"), SMOOTHED)
def test_label_smoothing_iterations_match_reference(rng, activation, layers):
    assert_matches_reference(rng, activation, "cross_entropy", layers, label_smoothing=0.3)


@pytest.mark.parametrize(("activation", "layers"), SMOOTHED)
def test_label_smoothing_objective_never_increases_during_warmup(rng, activation, layers):
    assert_warmup_descends(rng, activation, "cross_entropy", layers, label_smoothing=0.3)


def test_label_smoothing_changes_the_training(rng):
    """Smoothing is not ignored: the weights and objective differ from s = 0."""
    X, y = make_data(rng, (5, 6, 3), "cross_entropy", 40)
    plain = ADMMNetwork((5, 6, 3), loss="cross_entropy", seed=1).fit(X, y, 3)
    smooth = ADMMNetwork((5, 6, 3), loss="cross_entropy", seed=1, label_smoothing=0.3).fit(X, y, 3)
    assert not np.allclose(plain.weights[-1], smooth.weights[-1], rtol=1e-6, atol=0)
    assert plain.history[-1]["objective"] != smooth.history[-1]["objective"]


@pytest.mark.parametrize("loss", ["hinge", "squared", "logistic"])
def test_label_smoothing_needs_the_cross_entropy_loss(loss):
    with pytest.raises(
        ValueError, match=rf"label_smoothing 0\.3 needs loss cross_entropy, not '{loss}'"
    ):
        ADMMNetwork((5, 6, 3), loss=loss, label_smoothing=0.3)
    assert ADMMNetwork((5, 6, 3), loss=loss, label_smoothing=0.0).label_smoothing == 0.0
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\)"):
            ADMMNetwork((5, 6, 3), loss="cross_entropy", label_smoothing=bad)


def test_label_smoothing_flag_and_run_header():
    from admm.config import Config
    from admm.train import UsageError, parse_args

    args = parse_args(["--loss", "cross_entropy", "--label-smoothing", "0.3"])
    assert args.label_smoothing == 0.3
    assert parse_args([]).label_smoothing == 0.0
    with pytest.raises(UsageError, match=r"--label-smoothing 0\.3 needs --loss cross_entropy"):
        parse_args(["--label-smoothing", "0.3"])  # the default loss is the hinge
    with pytest.raises(UsageError, match=r"must be a number in \[0, 1\)"):
        parse_args(["--loss", "cross_entropy", "--label-smoothing", "1"])
    line = Config(loss="cross_entropy", label_smoothing=0.3).describe(1)
    assert line[line.index("loss cross_entropy") + 1] == "label smoothing 0.3"
    assert not any("smoothing" in text for text in Config(loss="cross_entropy").describe(1))


def test_label_smoothing_model_files(rng, tmp_path):
    """A model keeps its label smoothing; one without any is the file an older
    admm wrote (no such array) and an old file loads with none."""
    X, y = make_data(rng, (5, 6, 3), "cross_entropy", 40)
    net = ADMMNetwork((5, 6, 3), loss="cross_entropy", label_smoothing=0.3).fit(X, y, 2)
    net.save(tmp_path / "s.npz")
    assert float(np.load(tmp_path / "s.npz")["label_smoothing"]) == 0.3
    loaded = admm.load(tmp_path / "s.npz")
    assert loaded.label_smoothing == 0.3
    np.testing.assert_array_equal(loaded.decision_function(X), net.decision_function(X))
    ADMMNetwork((5, 6, 3), loss="cross_entropy").fit(X, y, 2).save(tmp_path / "plain.npz")
    assert "label_smoothing" not in np.load(tmp_path / "plain.npz").files
    assert admm.load(tmp_path / "plain.npz").label_smoothing == 0.0


@pytest.mark.parametrize(("activation", "loss", "layers"), CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_model_files_of_every_part_load_and_predict(
    rng, tmp_path, activation, loss, layers, dtype
):
    X, y = make_data(rng, layers, loss, 60)
    net = ADMMNetwork(layers, activation=activation, loss=loss, dtype=dtype, **OPTIONS)
    net.fit(X, y, iterations=2)
    net.save(tmp_path / "m.npz")
    loaded = admm.load(tmp_path / "m.npz")
    assert (loaded.activation, loaded.loss) == (activation, loss)
    assert loaded.negative_slope == net.negative_slope
    np.testing.assert_array_equal(loaded.decision_function(X), net.decision_function(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    if loss in ("cross_entropy", "logistic"):
        proba = loaded.predict_proba(X)
        assert proba.shape == (60, max(layers[-1], 2))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_array_equal(np.argmax(proba, axis=1), net.predict(X))
    else:
        with pytest.raises(AttributeError, match="predict_proba needs a loss"):
            loaded.predict_proba(X)


def test_negative_slope_shapes_the_leaky_relu(rng):
    X, y = make_data(rng, (5, 6, 3), "hinge", 40)
    a = ADMMNetwork((5, 6, 3), activation="leaky_relu", negative_slope=0.0).fit(X, y, 2)
    b = ADMMNetwork((5, 6, 3), activation="relu").fit(X, y, 2)
    # Slope 0 is ReLU: the same minimiser, the z <= 0 piece winning ties in both.
    for wa, wb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="negative_slope must be a non-negative finite number"):
        ADMMNetwork((5, 6, 3), activation="leaky_relu", negative_slope=-0.5)


def test_binary_tasks_need_labels_zero_and_one(rng):
    X = rng.random((20, 5))
    with pytest.raises(ValueError, match=r"labels outside 0\.\.1"):
        ADMMNetwork((5, 4, 1), loss="logistic").fit(X, np.full(20, 2), 1)
    with pytest.raises(ValueError, match="the logistic loss needs one output"):
        ADMMNetwork((5, 4, 2), loss="logistic").fit(X, np.zeros(20, int), 1)


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("flags", "classes", "header"),
    [
        (["--loss", "logistic", "--layers", "20,16,1"], 2, "loss logistic"),
        (["--layers", "20,16,1"], 2, "loss hinge"),  # binary hinge
        (["--loss", "cross_entropy", "--layers", "20,16,3"], 3, "loss cross_entropy"),
        (
            ["--activation", "leaky_relu", "--negative-slope", "0.05", "--layers", "20,16,3"],
            3,
            "activation leaky_relu, negative slope 0.05",
        ),
        (["--activation", "step", "--layers", "20,16,3"], 3, "activation step"),
        (
            ["--loss", "cross_entropy", "--label-smoothing", "0.1", "--layers", "20,16,3"],
            3,
            "loss cross_entropy, label smoothing 0.1",
        ),
    ],
)
def test_the_program_trains_and_evaluates_every_part(tmp_path, flags, classes, header):
    from mpirun import run_mpi

    rng = np.random.default_rng(5)
    centers = rng.normal(size=(classes, 20)) * 2
    y = rng.integers(0, classes, 400)
    X = centers[y] + rng.normal(size=(400, 20))
    np.savez(tmp_path / "d.npz", X_train=X[:300], y_train=y[:300], X_test=X[300:], y_test=y[300:])
    model = tmp_path / "m.npz"
    proc = run_mpi(
        2,
        ["-m", "admm.train", "--data", str(tmp_path / "d.npz"), *flags, "--iterations", "8",
         "--save", str(model)],
    )  # fmt: skip
    assert header in proc.stdout
    accuracy = float(proc.stdout.split("final test accuracy: ")[1].split()[0])
    assert accuracy > 0.8, proc.stdout
    net = admm.load(model)
    assert net.score(X[300:], y[300:]) == pytest.approx(accuracy)


def test_squared_loss_takes_one_real_target_per_sample(rng):
    """Regression with one output: targets ``(m,)`` are the column ``(m, 1)``."""
    X = rng.random((80, 5))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    a = ADMMNetwork((5, 8, 1), loss="squared", seed=2).fit(X, y, 3)
    b = ADMMNetwork((5, 8, 1), loss="squared", seed=2).fit(X, y[:, None], 3)
    for wa, wb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match=r"target array of shape \(80, 2\)"):
        ADMMNetwork((5, 8, 2), loss="squared").fit(X, y, 1)


def test_read_only_inputs_train_and_predict(rng):
    """A memory-mapped or otherwise read-only block (np.load(..., mmap_mode="r"))
    is read, never written: the kernels take their inputs as const."""
    X, y = make_data(rng, (5, 6, 3), "hinge", 60)
    X.setflags(write=False)
    net = ADMMNetwork((5, 6, 3)).fit(X, y, 2)
    reference = ADMMNetwork((5, 6, 3)).fit(X.copy(), y, 2)
    np.testing.assert_array_equal(net.predict(X), reference.predict(X))
    for a, b in zip(net.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(a, b)
