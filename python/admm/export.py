"""``python -m admm.export MODEL.npz MODEL.onnx``: a model as an ONNX graph.

:func:`to_onnx` turns a network (or a model file) into an ONNX model that
inference servers and other frameworks run; ``main`` is the program. Local;
needs the ``onnx`` extra (``pip install 'admm[onnx]'``), imported only here,
at first use.

The graph, in the model's dtype ``T`` (float32 or float64) throughout:

- input ``X`` ``[N, n_0]`` of ``T``;
- with ``input_power`` ``P``: ``Sign(X) * Pow(Abs(X), P)``; with
  ``normalize_inputs``: each row divided by its ``ReduceL2`` (an all-zero
  row kept), computed in float64 as the network computes it;
- ``X - input_mean`` (a ``Sub``; the mean rounded to ``T`` as
  :meth:`ADMMNetwork.decision_function` rounds it) when the model was
  trained with ``center``; then ``MatMul`` by ``input_basis`` (rounded to
  ``T``) with ``spectral_power``;
- per weight layer ``l``: ``z_l = Gemm(a_{l-1}, W_l, transB=1)`` without a
  bias, ``W_l`` an ``(n_l, n_{l-1})`` initializer, then the activation's
  nodes (:meth:`admm.activations.Activation.onnx_nodes`) on every hidden layer
  (``HardSigmoid`` alpha 1 beta 0 in float32, ``Clip(x, 0, 1)`` in float64,
  which ONNX Runtime lacks a ``HardSigmoid`` kernel for; ``Relu``), so a
  float64 model computes in float64 with nothing cast;
- outputs ``scores`` ``[N, n_L]`` of ``T`` (:meth:`ADMMNetwork.decision_function`)
  and ``label`` ``[N]`` int64 (:meth:`ADMMNetwork.predict`, from
  :meth:`admm.losses.Loss.onnx_label_nodes`).

Deskewing (``deskew``) has no ONNX form: the graph expects deskewed images,
and ``metadata_props`` say so (``admm.preprocessing``: ``deskew`` or
``none``); apply :func:`admm.preprocessing.deskew` to the images before
feeding them. The other metadata: ``admm.layers`` (``784,64,10``),
``admm.activation``, ``admm.loss``, ``admm.dtype``, ``admm.center``
(``true``/``false``: whether the graph centres), ``admm.input_power``,
``admm.normalize_inputs`` and ``admm.spectral_power`` (the graph applies
them), ``admm.version`` and, when
exported from a file, ``admm.source_sha256`` (the SHA-256 of its bytes).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import __version__
from ._cli import report_error
from ._files import atomic_write, unwritable_reason
from .network import ADMMNetwork, load
from .storage import file_sha256

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "main", "to_onnx"]

PROG = "python -m admm.export"

#: The ONNX opset of :func:`to_onnx` by default: read by ONNX Runtime >= 1.13.
DEFAULT_OPSET = 17
#: The oldest opset the graph can use (Gemm without a bias, Clip's bounds as
#: inputs, ArgMax, Sub and Relu in their current forms).
MIN_OPSET = 13


def _import_onnx() -> Any:
    """The ``onnx`` module, or ``ImportError`` saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'admm[onnx]'") from None
    return onnx


def to_onnx(
    model: ADMMNetwork | str | os.PathLike,
    path: str | os.PathLike | None = None,
    *,
    opset: int = DEFAULT_OPSET,
) -> Any:
    """The network ``model`` (or the model file at that path) as an ``onnx.ModelProto``. Local.

    The graph computes ``scores`` and ``label`` from the input ``X`` exactly
    as :meth:`ADMMNetwork.decision_function` and :meth:`ADMMNetwork.predict`
    do, within the rounding of the model's dtype (layout in the module
    docstring), except deskewing: for a model trained with ``deskew``, feed
    it ``admm.preprocessing.deskew(X)``. With ``path`` the model is also
    written there (atomically). ``opset`` is the ONNX operator set version,
    from ``MIN_OPSET`` to the newest the installed onnx knows.

    Raises
    ------
    ImportError
        onnx is not installed.
    ValueError
        ``model`` is not a readable admm model file, or ``opset`` is out of range.
    OSError
        ``path`` cannot be written.
    NotImplementedError
        The activation or loss has no ONNX form.
    """
    onnx = _import_onnx()
    newest = int(onnx.defs.onnx_opset_version())
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest}, got {opset!r}")
    if path is not None:
        _check_writable(path)
    if isinstance(model, ADMMNetwork):
        net, source = model, None
    else:
        net, source = load(model), file_sha256(model)
    proto = _build_model(onnx, net, opset, source)
    onnx.checker.check_model(proto)
    if path is not None:
        data = proto.SerializeToString()
        atomic_write(path, lambda f: f.write(data))
    return proto


def _check_writable(path: str | os.PathLike) -> None:
    """``OSError`` naming ``path`` when no file can be written there."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise OSError(f"cannot write {name}: it is a folder")
    folder = os.path.dirname(os.path.abspath(name))
    reason = unwritable_reason(folder)
    if reason is not None:
        raise OSError(f"cannot write {name}: {reason}")


def _build_model(onnx: Any, net: ADMMNetwork, opset: int, source: str | None) -> Any:
    """The ONNX model of ``net`` (graph layout in the module docstring)."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    dtype = np.dtype(net.dtype)
    tensor_type = int(helper.np_dtype_to_tensor_dtype(dtype))
    layers = net.layers
    nodes, initializers, x = _input_nodes(onnx, net, opset)
    n_weight = len(layers) - 1
    for i, w in enumerate(net.weights, start=1):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(w, dtype=dtype), f"W{i}"))
        z = "scores" if i == n_weight else f"z{i}"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}"], [z], name=f"layer{i}", transB=1))
        if i < n_weight:
            x = f"a{i}"
            nodes += net._activation.onnx_nodes(helper, z, x, f"layer{i}_", dtype)
    nodes += net._loss.onnx_label_nodes(helper, "scores", "label", "label_", dtype, layers[-1])
    graph = helper.make_graph(
        nodes,
        "admm_network",
        [helper.make_tensor_value_info("X", tensor_type, ["N", layers[0]])],
        [
            helper.make_tensor_value_info("scores", tensor_type, ["N", layers[-1]]),
            helper.make_tensor_value_info("label", onnx.TensorProto.INT64, ["N"]),
        ],
        initializers,
        doc_string=_graph_doc(net),
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph, opset_imports=opsets, producer_name="admm", producer_version=__version__
    )
    # The oldest IR version that holds the opset, so older runtimes read it too.
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    metadata = {
        "admm.preprocessing": "deskew" if net.config.deskew else "none",
        "admm.layers": ",".join(map(str, layers)),
        "admm.activation": net.config.activation,
        "admm.loss": net.config.loss,
        "admm.dtype": dtype.name,
        "admm.center": "true" if net.input_mean_ is not None else "false",
        "admm.input_power": f"{net.config.input_power:g}",
        "admm.normalize_inputs": "true" if net.config.normalize_inputs else "false",
        "admm.spectral_power": f"{net.config.spectral_power:g}",
        "admm.version": __version__,
    }
    if source is not None:
        metadata["admm.source_sha256"] = source
    helper.set_model_props(proto, metadata)
    return proto


def _input_nodes(onnx: Any, net: ADMMNetwork, opset: int) -> tuple[list[Any], list[Any], str]:
    """The graph's nodes and initializers from ``X`` to what the first layer
    reads (the input transforms, the centring), and that tensor's name."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    dtype = np.dtype(net.dtype)
    tensor_type = int(helper.np_dtype_to_tensor_dtype(dtype))
    config = net.config
    nodes: list[Any] = []
    initializers: list[Any] = []
    x = "X"
    if config.input_power != 1.0:
        power = np.array(config.input_power, dtype=dtype)
        initializers.append(numpy_helper.from_array(power, "input_power"))
        nodes += [
            helper.make_node("Abs", [x], ["X_abs"], name="power_abs"),
            helper.make_node("Pow", ["X_abs", "input_power"], ["X_pow"], name="power"),
            helper.make_node("Sign", [x], ["X_sign"], name="power_sign"),
            helper.make_node("Mul", ["X_sign", "X_pow"], ["X_powered"], name="power_signed"),
        ]
        x = "X_powered"
    if config.normalize_inputs:
        # In float64, as admm.preprocessing.normalize_rows sums and divides.
        double = int(onnx.TensorProto.DOUBLE)
        initializers += [
            numpy_helper.from_array(np.array(0.0), "zero_norm"),
            numpy_helper.from_array(np.array(1.0), "unit_norm"),
        ]
        nodes += [
            helper.make_node("Cast", [x], ["X_double"], name="norm_cast", to=double),
            helper.make_node(
                "ReduceL2", ["X_double"], ["row_norm"], name="norm", axes=[1], keepdims=1
            )
            if opset < 18
            else helper.make_node(
                "ReduceL2", ["X_double", "norm_axes"], ["row_norm"], name="norm", keepdims=1
            ),
            helper.make_node("Equal", ["row_norm", "zero_norm"], ["row_zero"], name="norm_zero"),
            helper.make_node(
                "Where", ["row_zero", "unit_norm", "row_norm"], ["row_divisor"], name="norm_keep"
            ),
            helper.make_node("Div", ["X_double", "row_divisor"], ["X_unit_double"], name="unit"),
            helper.make_node(
                "Cast", ["X_unit_double"], ["X_unit"], name="unit_cast", to=tensor_type
            ),
        ]
        if opset >= 18:
            initializers.append(
                numpy_helper.from_array(np.array([1], dtype=np.int64), "norm_axes")
            )
        x = "X_unit"
    if net.input_mean_ is not None:
        # Rounded to the dtype first, as ADMMNetwork._centred does.
        initializers.append(numpy_helper.from_array(net.input_mean_.astype(dtype), "input_mean"))
        nodes.append(helper.make_node("Sub", [x, "input_mean"], ["X_centred"], name="centre"))
        x = "X_centred"
    if net.input_basis_ is not None:
        basis = net.input_basis_.astype(dtype)  # as ADMMNetwork._spectral rounds it
        initializers.append(numpy_helper.from_array(basis, "input_basis"))
        nodes.append(
            helper.make_node("MatMul", [x, "input_basis"], ["X_spectral"], name="spectral")
        )
        x = "X_spectral"
    return nodes, initializers, x


def _graph_doc(net: ADMMNetwork) -> str:
    """The graph's description: what it computes and what to feed it."""
    dtype = np.dtype(net.dtype).name
    first = (
        "X: deskewed images (admm.preprocessing.deskew), "
        if net.config.deskew
        else "X: the raw inputs, "
    )
    return (
        f"{first}{dtype} [N, {net.layers[0]}]; scores: the outputs W_L h(... h(W_1 x)) "
        f"[N, {net.layers[-1]}]; label: the predicted class [N] (int64). "
        f"admm {'-'.join(map(str, net.layers))} network, {net.config.activation} "
        f"activation, {net.config.loss} loss."
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m admm.export``."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write a model of `python -m admm.train --save` as an ONNX model. "
        "A model trained with --deskew expects deskewed images "
        "(admm.preprocessing.deskew): its metadata say so.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL.npz", help="model file")
    p.add_argument("output", metavar="MODEL.onnx", help="ONNX file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX operator set version")
    p.add_argument("--debug", action="store_true", help="print the Python traceback of an error")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m admm.export`` (and ``admm-export``)."""
    args = build_parser().parse_args(argv)
    try:
        proto = to_onnx(args.model, args.output, opset=args.opset)
    except Exception as exc:  # any failure: one line, the traceback only with --debug
        return report_error("admm.export", exc, args.debug)
    props = {p.key: p.value for p in proto.metadata_props}
    note = (
        "; feed it admm.preprocessing.deskew(X)" if props["admm.preprocessing"] == "deskew" else ""
    )
    print(
        f"wrote {args.output}: {props['admm.layers'].replace(',', '-')} network, "
        f"{props['admm.dtype']} input X, outputs scores and label{note}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
