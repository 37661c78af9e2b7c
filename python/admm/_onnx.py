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
