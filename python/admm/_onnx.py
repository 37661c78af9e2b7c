"""Small builders for the parts' ONNX forms (:mod:`admm.export`). Local.

Never imports onnx: every function receives the ``onnx.helper`` module from
its caller, so the activation and loss modules stay importable without the
``onnx`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def elem_type(helper: Any, dtype: Any) -> int:
    """The ONNX tensor element type (``TensorProto.FLOAT``, ...) of a NumPy dtype."""
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def constant(helper: Any, name: str, value: float, dtype: Any) -> Any:
    """A ``Constant`` node whose output ``name`` is the scalar ``value`` in ``dtype``."""
    tensor = helper.make_tensor(name, elem_type(helper, dtype), [], [value])
    return helper.make_node("Constant", [], [name], name=name, value=tensor)


def label_nodes(
    helper: Any,
    scores: str,
    label: str,
    prefix: str,
    dtype: Any,
    n_out: int,
    threshold: float = 0.5,
) -> list[Any]:
    """Nodes computing ``label`` ``[N]`` int64 from ``scores`` ``[N, n_out]``: the
    arg-max (the first of equal maxima, as ``np.argmax``), or with one output
    ``score > threshold``; every other name starts with ``prefix``."""
    if n_out > 1:
        return [
            helper.make_node(
                "ArgMax", [scores], [label], name=f"{prefix}argmax", axis=1, keepdims=0
            )
        ]
    index, bound = f"{prefix}column", f"{prefix}threshold"
    column, above = f"{prefix}score", f"{prefix}above"
    return [
        constant(helper, index, 0, np.int64),
        constant(helper, bound, threshold, dtype),
        helper.make_node("Gather", [scores, index], [column], name=f"{prefix}gather", axis=1),
        helper.make_node("Greater", [column, bound], [above], name=f"{prefix}greater"),
        helper.make_node(
            "Cast", [above], [label], name=f"{prefix}cast", to=elem_type(helper, np.int64)
        ),
    ]
