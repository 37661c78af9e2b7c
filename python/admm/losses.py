"""Output losses as pluggable parts, and their registry.

A loss ``C(z_L, Y)`` is one object: how training targets are checked and
stored (:meth:`Loss.targets`), its exact output update fused with the
multiplier update (updates (5) and (6) of ``docs/method.md``,
:meth:`Loss.update`), which also returns its objective term, and how the
network's outputs become predictions (:meth:`Loss.predict`). The update acts
in place on arrays of samples in rows and runs row by row, so
:func:`admm._threads.rowwise` can split it over threads.

To add a loss: write its compiled kernel (``admm_core``), a class here
registered with :func:`register` (with its own :meth:`Loss.predict`, its
ONNX form too: :meth:`Loss.onnx_label_nodes`), and its tests. The solver,
the program's ``--loss`` choices, the model files and :mod:`admm.export`
find it by name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from admm_core import (
    output_cross_entropy_update,
    output_hinge_update,
    output_logistic_update,
    output_squared_update,
)

from ._onnx import label_nodes
from ._registry import Registry

__all__ = ["Loss", "get", "names", "register", "summary"]


_REGISTRY: Registry[Loss] = Registry("loss")
register = _REGISTRY.register


class Loss:
    """An output loss with an exact output update (base class)."""

    #: The name in ``ADMMNetwork(loss=...)``, ``--loss`` and model files.
    name: ClassVar[str]
    #: For ``--help``: what it fits.
    description: ClassVar[str]

    @classmethod
    def from_options(cls, options: Any) -> Loss:
        """The loss for a :class:`admm.config.Config` (parameters, if any)."""
        return cls()

    def targets(self, y: Any, m: int, n_out: int, dtype: np.dtype) -> np.ndarray:
        """The training targets of ``m`` samples as the update reads them,
        checked (``ValueError`` naming the problem). Local."""
        raise NotImplementedError

    def outputs_for(self, n_classes: int) -> tuple[int, ...]:
        """The output widths ``n_L`` this loss can fit ``n_classes`` classes with."""
        return (n_classes,)

    def encode_labels(self, labels: np.ndarray, n_out: int, dtype: np.dtype) -> np.ndarray:
        """Training targets from integer class labels ``(m,)`` (the program's data)."""
        return labels

    def target_bytes(self, m: int, n_out: int, itemsize: int) -> int:
        """Bytes of the targets beyond the ``(m,)`` int64 labels (memory model)."""
        return 0

    def update(
        self, z: np.ndarray, lam: np.ndarray, targets: np.ndarray, beta: float, multiplier: bool
    ) -> tuple[float, float, float]:
        """Updates (5) and (6) in place on ``(m, n_L)`` arrays: ``z`` holds
        ``W_L a_{L-1}`` on entry and ``argmin_z C(z, Y) + <z, lam> + beta ||z - W_L a_{L-1}||^2``
        on exit; with ``multiplier``, ``lam += beta (z - W_L a_{L-1})``. Returns
        ``(C(z, Y), <z, lam>, ||z - W_L a_{L-1}||^2)`` with the new ``lam``."""
        raise NotImplementedError

    def value(self, z: np.ndarray, targets: np.ndarray) -> float:
        """The objective term ``C(z, Y)``, summed over all samples, in float64
        (NumPy; the reference the update's returned loss is tested against)."""
        raise NotImplementedError

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Class labels ``(m,)`` int64 from the outputs ``(m, n_L)``: the arg-max
        (one output: ``> 0.5``)."""
        if scores.shape[1] == 1:
            return (scores[:, 0] > 0.5).astype(np.int64)
        return np.argmax(scores, axis=1).astype(np.int64)

    def onnx_label_nodes(
        self, helper: Any, scores: str, label: str, prefix: str, dtype: np.dtype, n_out: int
    ) -> list[Any]:
        """The ONNX nodes computing :meth:`predict`: ``label`` ``[N]`` int64 from
        ``scores`` ``[N, n_out]`` in ``dtype`` (:func:`admm.export.to_onnx`).
        ``helper`` is the ``onnx.helper`` module; every other tensor or node
        the method names starts with ``prefix``. A loss with its own
        :meth:`predict` must give its own form too (``NotImplementedError``
        otherwise: ``admm._onnx.label_nodes`` builds an arg-max or threshold)."""
        if type(self).predict is not Loss.predict:
            raise NotImplementedError(
                f"loss {self.name!r} predicts its own way and has no ONNX form: "
                "its class needs an onnx_label_nodes method"
            )
        return label_nodes(helper, scores, label, prefix, dtype, n_out, threshold=0.5)

    def labels(self, y: Any, n_out: int) -> np.ndarray:
        """The class labels of ``y`` for scoring: labels ``(m,)`` as given, or
        the arg-max (one output: ``> 0.5``) of a target array ``(m, n_out)``."""
        y = np.asarray(y)
        if y.ndim == 2:
            if y.shape[1] != n_out:
                raise ValueError(f"targets must have {n_out} columns, got shape {y.shape}")
            return (y[:, 0] > 0.5).astype(np.int64) if n_out == 1 else np.argmax(y, axis=1)
        if y.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {y.shape}")
        return y.astype(np.int64)


@register
class Hinge(Loss):
    """One-vs-rest hinge on integer labels: ``C(z, 1) = max(0, 1 - z)``, ``C(z, 0) = max(0, z)``."""

    name = "hinge"
    description = "one-vs-rest hinge on the labels"

    def targets(self, y: Any, m: int, n_out: int, dtype: np.dtype) -> np.ndarray:
        # One output: a binary task, labels 0 and 1 (the target of the one unit).
        return _class_labels(y, m, 2 if n_out == 1 else n_out)

    def outputs_for(self, n_classes: int) -> tuple[int, ...]:
        return (n_classes, 1) if n_classes == 2 else (n_classes,)

    def update(
        self, z: np.ndarray, lam: np.ndarray, targets: np.ndarray, beta: float, multiplier: bool
    ) -> tuple[float, float, float]:
        return output_hinge_update(z, lam, targets, beta, multiplier, binary=z.shape[1] == 1)

    def value(self, z: np.ndarray, targets: np.ndarray) -> float:
        z = np.asarray(z, dtype=np.float64)
        labels = np.asarray(targets)[:, None]
        # One output: the unit's target is the label itself (1 positive, 0 not).
        positive = labels == 1 if z.shape[1] == 1 else np.arange(z.shape[1])[None, :] == labels
        return float(np.sum(np.where(positive, np.maximum(0.0, 1.0 - z), np.maximum(0.0, z))))


@register
class Squared(Loss):
    """Least squares ``C(z, y) = (z - y)^2`` on a target array ``(m, n_L)``."""

    name = "squared"
    description = "least squares on one-hot targets"

    def targets(self, y: Any, m: int, n_out: int, dtype: np.dtype) -> np.ndarray:
        y = np.asarray(y)
        if n_out == 1 and y.shape == (m,):  # one real target per sample (regression)
            y = y.reshape(m, 1)
        if y.shape != (m, n_out):
            raise ValueError(f"y must be a target array of shape {(m, n_out)}, got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or inf")
        y = np.ascontiguousarray(y, dtype=dtype)
        if y.strides != (n_out * y.itemsize, y.itemsize):
            # A view such as y[:, None] is "contiguous" with a zero stride on
            # its length-1 axis; the kernels need the outputs' own strides.
            y = y.copy()
        return y

    def encode_labels(self, labels: np.ndarray, n_out: int, dtype: np.dtype) -> np.ndarray:
        return np.eye(n_out, dtype=dtype)[labels]

    def target_bytes(self, m: int, n_out: int, itemsize: int) -> int:
        return m * n_out * itemsize

    def update(
        self, z: np.ndarray, lam: np.ndarray, targets: np.ndarray, beta: float, multiplier: bool
    ) -> tuple[float, float, float]:
        return output_squared_update(z, lam, targets, beta, multiplier)

    def value(self, z: np.ndarray, targets: np.ndarray) -> float:
        return float(np.sum((np.asarray(z, dtype=np.float64) - targets) ** 2))


@register
class CrossEntropy(Loss):
    """Softmax cross-entropy on integer labels, ``logsumexp(z) - <t, z>`` per sample.

    The target of label ``y`` is ``t = (1 - s) e_y + s / n_L`` with
    ``label_smoothing`` ``s`` in ``[0, 1)`` (PyTorch's name and meaning; 0,
    the default: ``logsumexp(z) - z_y``). The output update minimises, per
    sample, a smooth strictly convex function of the ``n_L`` outputs
    (safeguarded Newton in double precision, the Hessian a diagonal plus a
    rank-one term, solved by Sherman-Morrison). :meth:`proba` is the softmax
    of the outputs.
    """

    name = "cross_entropy"
    description = "softmax cross-entropy on the labels"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = float(label_smoothing)

    @classmethod
    def from_options(cls, options: Any) -> Loss:
        return cls(0.0 if options is None else options.label_smoothing)

    def targets(self, y: Any, m: int, n_out: int, dtype: np.dtype) -> np.ndarray:
        return _class_labels(y, m, n_out)

    def update(
        self, z: np.ndarray, lam: np.ndarray, targets: np.ndarray, beta: float, multiplier: bool
    ) -> tuple[float, float, float]:
        return output_cross_entropy_update(
            z, lam, targets, beta, multiplier, label_smoothing=self.label_smoothing
        )

    def value(self, z: np.ndarray, targets: np.ndarray) -> float:
        z = np.asarray(z, dtype=np.float64)
        picked = z[np.arange(z.shape[0]), np.asarray(targets)]
        loss = _logsumexp(z) - picked
        if self.label_smoothing:
            # logsumexp(z) - <t, z> = (logsumexp(z) - z_y) + s (z_y - mean(z))
            loss = loss + self.label_smoothing * (picked - z.mean(axis=1))
        return float(np.sum(loss))

    def proba(self, scores: np.ndarray) -> np.ndarray:
        """Class probabilities ``(m, n_L)``: the softmax of the outputs."""
        return _softmax(np.asarray(scores, dtype=np.float64))


@register
class Logistic(Loss):
    """Binary logistic loss on one output and labels 0, 1: ``log(1 + exp(-(2y - 1) z))``.

    Prediction by sign (``z > 0``: label 1); :meth:`proba` gives
    ``(1 - sigmoid(z), sigmoid(z))``.
    """

    name = "logistic"
    description = "logistic on two classes with one output"

    def targets(self, y: Any, m: int, n_out: int, dtype: np.dtype) -> np.ndarray:
        if n_out != 1:
            raise ValueError(f"the logistic loss needs one output, the network has {n_out}")
        return _class_labels(y, m, 2)

    def outputs_for(self, n_classes: int) -> tuple[int, ...]:
        return (1,) if n_classes == 2 else ()

    def update(
        self, z: np.ndarray, lam: np.ndarray, targets: np.ndarray, beta: float, multiplier: bool
    ) -> tuple[float, float, float]:
        return output_logistic_update(z, lam, targets, beta, multiplier)

    def value(self, z: np.ndarray, targets: np.ndarray) -> float:
        margin = (2.0 * np.asarray(targets, dtype=np.float64) - 1.0) * np.asarray(z)[:, 0]
        return float(np.sum(np.logaddexp(0.0, -margin)))

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return (scores[:, 0] > 0).astype(np.int64)

    def onnx_label_nodes(
        self, helper: Any, scores: str, label: str, prefix: str, dtype: np.dtype, n_out: int
    ) -> list[Any]:
        return label_nodes(helper, scores, label, prefix, dtype, 1, threshold=0.0)

    def labels(self, y: Any, n_out: int) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            return (y[:, 0] > 0.5).astype(np.int64)
        return super().labels(y, n_out)

    def proba(self, scores: np.ndarray) -> np.ndarray:
        """Class probabilities ``(m, 2)``: ``1 - sigmoid(z)`` and ``sigmoid(z)``."""
        p = _expit(np.asarray(scores, dtype=np.float64)[:, 0])
        return np.stack([1.0 - p, p], axis=1)


# Three small functions in NumPy rather than scipy.special, whose compiled
# modules would add about 10 MB to every rank of the program at start-up.


def _logsumexp(z: np.ndarray) -> np.ndarray:
    """``log(sum(exp(z)))`` of every row, without overflow."""
    top = z.max(axis=1)
    return top + np.log(np.exp(z - top[:, None]).sum(axis=1))


def _softmax(z: np.ndarray) -> np.ndarray:
    """The softmax of every row, without overflow."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _expit(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow on either side."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _class_labels(y: Any, m: int, n_classes: int) -> np.ndarray:
    """``m`` integer labels in ``0..n_classes-1`` as int64, checked."""
    y = np.asarray(y)
    if y.shape != (m,):
        raise ValueError(f"y must hold {m} class labels, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or np.any(y != np.round(y)):
            raise ValueError("y must hold integer class labels")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"y holds labels outside 0..{n_classes - 1} "
            f"(min {y.min()}, max {y.max()}) for {n_classes} classes"
        )
    return np.ascontiguousarray(y, dtype=np.int64)


def names() -> tuple[str, ...]:
    """The registered loss names, in registration order."""
    return _REGISTRY.names()


def summary() -> str:
    """Every loss's description, for ``--help``."""
    texts = [cls.description for cls in _REGISTRY.classes()]
    return ", ".join(texts[:-1]) + ", or " + texts[-1] if len(texts) > 1 else texts[0]


def get(name: str, options: Any = None) -> Loss:
    """The loss called ``name``, with its parameters from ``options``."""
    return _REGISTRY.get(name, options)
