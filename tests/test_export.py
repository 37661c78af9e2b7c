"""ONNX export (admm.export): the exported graph run in ONNX Runtime against
the network's own forward pass, the program, and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import admm  # noqa: E402
from admm import activations, export, losses  # noqa: E402
from admm.data import load_dataset  # noqa: E402
from admm.preprocessing import deskew  # noqa: E402
from admm.storage import file_sha256  # noqa: E402

TIMEOUT = 120
N_TRAIN = 2000


@pytest.fixture(scope="module")
def sample() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The embedded MNIST sample in both dtypes: a training block and the test images."""
    out = {}
    for dtype in ("float32", "float64"):
        ds = load_dataset("mnist-sample", dtype=dtype)
        assert ds.X_test is not None and ds.y_test is not None
        out[dtype] = (ds.X_train[:N_TRAIN], ds.y_train[:N_TRAIN], ds.X_test, ds.y_test)
    return out


def session(model) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, label = session(model).run(["scores", "label"], {"X": X})
    return scores, label


def feed(net: admm.ADMMNetwork, X: np.ndarray) -> np.ndarray:
    """What the exported graph takes for the raw images ``X``: deskewed ones
    when the model deskews (its metadata says so), in the model's dtype."""
    X = np.ascontiguousarray(X, dtype=net.dtype)
    return deskew(X) if net.deskew else X


def assert_same_outputs(net: admm.ADMMNetwork, model, X: np.ndarray) -> None:
    """Labels exactly ``net.predict``'s; scores ``net.decision_function``'s within
    the rounding of a Gemm that sums in another order (a few tens of eps of
    the dtype, relative to the largest score)."""
    scores, label = run(model, feed(net, X))
    expected = net.decision_function(X)
    assert scores.dtype == net.dtype and scores.shape == expected.shape
    assert label.dtype == np.int64 and label.shape == (X.shape[0],)
    np.testing.assert_array_equal(label, net.predict(X))
    tol = 64 * np.finfo(net.dtype).eps * np.abs(expected).max()
    np.testing.assert_allclose(scores, expected, rtol=0, atol=tol)


CASES = [
    # dtype, layers, activation, loss, center, deskew
    ("float32", (784, 64, 10), "hardsigmoid", "hinge", False, False),
    ("float32", (784, 64, 10), "relu", "hinge", True, True),
    ("float64", (784, 64, 10), "hardsigmoid", "hinge", True, True),
    ("float64", (784, 64, 10), "relu", "hinge", True, False),
    ("float32", (784, 32, 32, 10), "hardsigmoid", "squared", True, False),
    ("float64", (784, 16, 16, 10), "hardsigmoid", "squared", False, True),
]


@pytest.mark.parametrize(("dtype", "layers", "activation", "loss", "center", "deskew_"), CASES)
def test_round_trip_matches_the_network(
    sample, dtype, layers, activation, loss, center, deskew_
) -> None:
    X, y, X_test, _ = sample[dtype]
    net = admm.ADMMNetwork(
        layers, activation, loss, dtype=dtype, center=center, deskew=deskew_, seed=0
    )
    if loss == "squared":
        y = np.eye(layers[-1], dtype=dtype)[y]
    net.fit(X, y, iterations=3)
    assert_same_outputs(net, export.to_onnx(net), X_test)


@pytest.mark.parametrize("opset", [export.MIN_OPSET, export.DEFAULT_OPSET, 18])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_input_transforms_export(sample, dtype, opset) -> None:
    # input_power, normalize_inputs and spectral_power are part of the graph
    # (ReduceL2 takes its axes as an input from opset 18).
    X, y, X_test, _ = sample[dtype]
    X_test = X_test.copy()
    X_test[0] = 0.0  # an all-zero image stays zero through the normalisation
    options = dict(input_power=0.5, normalize_inputs=True, center=True, spectral_power=0.5)
    net = admm.ADMMNetwork((784, 64, 10), dtype=dtype, seed=0, **options)
    net.fit(X, y, iterations=3)
    model = export.to_onnx(net, opset=opset)
    assert_same_outputs(net, model, X_test)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["admm.input_power"] == "0.5" and props["admm.normalize_inputs"] == "true"
    assert props["admm.spectral_power"] == "0.5"
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(weights["input_basis"], net.input_basis_.astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_output_labels_by_threshold(sample, dtype) -> None:
    # One output: the label is score > 0.5 (Gather, Greater, Cast), not an arg-max.
    X, y, X_test, _ = sample[dtype]
    net = admm.ADMMNetwork((784, 16, 1), "relu", "squared", dtype=dtype, center=True, seed=0)
    # (m, 1) targets with the strides of a fresh array: the kernel compares strides.
    net.fit(X, (y >= 5).astype(dtype).reshape(-1, 1), iterations=3)
    predicted = net.predict(X_test)
    assert 0 < predicted.sum() < len(predicted)  # both labels occur
    assert_same_outputs(net, export.to_onnx(net), X_test)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", activations.names())
def test_every_activation_exports(activation, dtype, rng) -> None:
    # Every registered activation, so one added to the registry must give its
    # ONNX form: Glorot weights on inputs spread over the kinks, and rows of
    # zeros, where every hidden z is exactly 0 (a kink of most activations).
    net = admm.ADMMNetwork((12, 9, 7, 5), activation, dtype=dtype, seed=1)
    X = np.vstack([rng.normal(scale=3.0, size=(400, 12)), np.zeros((3, 12))])
    assert_same_outputs(net, export.to_onnx(net), X)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activation_parameters_reach_the_graph(dtype, rng) -> None:
    # leaky_relu's slope, not its default, and exactly in float64.
    net = admm.ADMMNetwork((12, 9, 5), "leaky_relu", dtype=dtype, negative_slope=0.3, seed=1)
    X = rng.normal(scale=3.0, size=(400, 12))
    assert_same_outputs(net, export.to_onnx(net), X)


@pytest.mark.parametrize("n_out", [1, 10])
@pytest.mark.parametrize("loss", losses.names())
def test_every_loss_exports_its_labels(loss, n_out, rng) -> None:
    net = admm.ADMMNetwork((6, 8, n_out), "relu", loss, dtype="float64", seed=2)
    X = rng.normal(scale=3.0, size=(500, 6))
    assert_same_outputs(net, export.to_onnx(net), X)


def test_oldest_opset_gives_the_same_outputs(sample) -> None:
    X, y, X_test, _ = sample["float32"]
    net = admm.ADMMNetwork((784, 16, 10), dtype="float32", center=True, seed=0).fit(X, y, 2)
    model = export.to_onnx(net, opset=export.MIN_OPSET)
    assert model.opset_import[0].version == export.MIN_OPSET
    assert_same_outputs(net, model, X_test)


def test_graph_layout_and_metadata(sample, tmp_path) -> None:
    X, y, _, _ = sample["float64"]
    net = admm.ADMMNetwork((784, 16, 10), dtype="float64", center=True, deskew=True, seed=0)
    net.fit(X, y, iterations=1)
    net.save(tmp_path / "model.npz")
    model = export.to_onnx(tmp_path / "model.npz", tmp_path / "model.onnx")
    onnx.checker.check_model(onnx.load(tmp_path / "model.onnx"), full_check=True)
    graph = model.graph
    assert [i.name for i in graph.input] == ["X"]
    assert [o.name for o in graph.output] == ["scores", "label"]
    assert graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 2 and all(len(n.input) == 2 for n in gemms)  # no bias
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    np.testing.assert_array_equal(weights["W1"], net.weights[0])  # (n_out, n_in): transB=1
    np.testing.assert_array_equal(weights["input_mean"], net.input_mean_)
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {
        "admm.preprocessing": "deskew",
        "admm.layers": "784,16,10",
        "admm.activation": "hardsigmoid",
        "admm.loss": "hinge",
        "admm.dtype": "float64",
        "admm.center": "true",
        "admm.input_power": "1",
        "admm.normalize_inputs": "false",
        "admm.spectral_power": "0",
        "admm.version": admm.__version__,
        "admm.source_sha256": file_sha256(tmp_path / "model.npz"),
    }
    # A network exported directly has no source file: no checksum.
    plain = export.to_onnx(admm.ADMMNetwork((4, 3, 2)))
    props = {p.key: p.value for p in plain.metadata_props}
    assert "admm.source_sha256" not in props
    assert props["admm.preprocessing"] == "none" and props["admm.center"] == "false"


def test_real_mnist_test_set(sample, shared_mnist) -> None:
    # The 10,000 real test images through a deskewed, centred float32 model:
    # exactly the network's predictions.
    X, y, _, _ = sample["float32"]
    net = admm.ADMMNetwork((784, 64, 10), dtype="float32", center=True, deskew=True, seed=0)
    net.fit(X, y, iterations=3)
    test = load_dataset("mnist", shared_mnist, dtype="float32", download=False)
    assert test.X_test is not None and test.X_test.shape == (10000, 784)
    assert_same_outputs(net, export.to_onnx(net), test.X_test)


def test_no_onnx_on_import() -> None:
    code = "import sys, admm, admm.export, admm.activations, admm.losses; print('onnx' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert proc.stdout.strip() == "False"


def test_parts_without_an_onnx_form() -> None:
    class Wavy(activations.Activation):
        name = "wavy"

    with pytest.raises(NotImplementedError, match="'wavy'"):
        Wavy().onnx_nodes(onnx.helper, "z", "a", "p_", np.dtype(np.float32))

    class Ranked(losses.Loss):
        name = "ranked"

        def predict(self, scores: np.ndarray) -> np.ndarray:
            return np.argmin(scores, axis=1)

    with pytest.raises(NotImplementedError, match="'ranked'"):
        Ranked().onnx_label_nodes(onnx.helper, "s", "l", "p_", np.dtype(np.float32), 10)


# ---------------------------------------------------------------- the program


def export_program(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "admm.export", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.npz"
    admm.ADMMNetwork((784, 16, 10), dtype="float32", deskew=True, seed=3).save(path)
    return path


def test_program_writes_a_checked_model(model_file, tmp_path) -> None:
    out = tmp_path / "model.onnx"
    proc = export_program(str(model_file), str(out))
    assert proc.returncode == 0, proc.stderr
    assert "admm.preprocessing.deskew" in proc.stdout and proc.stderr == ""
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    net = admm.load(model_file)
    assert_same_outputs(net, model, load_dataset("mnist-sample", dtype="float32").X_train[:500])


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("admm.export: error: "), proc.stderr
    return lines[0]


def test_program_errors_are_one_line(model_file, tmp_path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    assert "junk.npz" in one_line_error(export_program(str(junk), str(tmp_path / "a.onnx")))
    missing = tmp_path / "missing.npz"
    assert "missing.npz" in one_line_error(export_program(str(missing), str(tmp_path / "b.onnx")))
    nowhere = tmp_path / "no" / "such" / "folder" / "model.onnx"
    line = one_line_error(export_program(str(model_file), str(nowhere)))
    assert f"cannot write {nowhere}" in line
    assert "it is a folder" in one_line_error(export_program(str(model_file), str(tmp_path)))
    assert "opset" in one_line_error(export_program(str(model_file), "c.onnx", "--opset", "7"))
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".tmp-*"))
    # --debug adds the traceback before the line.
    proc = export_program(str(junk), str(tmp_path / "a.onnx"), "--debug")
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_program_without_onnx(model_file, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    assert export.main([str(model_file), str(tmp_path / "model.onnx")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "pip install 'admm[onnx]'" in err[0]
    assert not (tmp_path / "model.onnx").exists()
