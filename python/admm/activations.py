"""Hidden activations as pluggable parts, and their registry.

An activation ``h`` is one object: its forward map (:meth:`Activation.forward`),
the exact entry-wise z-update of its constraint ``a_l = h(z_l)`` (update (3)
of ``docs/method.md``: ``argmin_z gamma (a - h(z))^2 + beta (z - m)^2``), and
the points where ``h`` is not smooth, which the tests must probe. Both
methods act in place on arrays of samples in rows and run row by row, so
:func:`admm._threads.rowwise` can split them over threads.

To add an activation: write its compiled kernels (``admm_core``), a class
here registered with :func:`register` with its ONNX form
(:meth:`Activation.onnx_nodes`), and its tests. The solver, the program's
``--activation`` choices, the model files and :mod:`admm.export` find it by
name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from admm_core import (
    apply_activation,
    apply_activation_smooth,
    hidden_z_update,
    hidden_z_update_smooth,
)

from ._onnx import constant, elem_type
from ._registry import Registry

__all__ = ["Activation", "get", "names", "register", "summary"]


_REGISTRY: Registry[Activation] = Registry("activation")
register = _REGISTRY.register


class Activation:
    """An entry-wise hidden activation with an exact z-update (base class)."""

    #: The name in ``ADMMNetwork(activation=...)``, ``--activation`` and model files.
    name: ClassVar[str]
    #: One line for ``--help``: the formula.
    formula: ClassVar[str]
    #: Where ``h`` has a kink or jump: the z-update's cases change there.
    kinks: ClassVar[tuple[float, ...]]

    @classmethod
    def from_options(cls, options: Any) -> Activation:
        """The activation for a :class:`admm.config.Config` (parameters, if any)."""
        return cls()

    def forward(self, z: np.ndarray, out: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """``out = scale * h(z)`` entry-wise; ``out`` has ``z``'s shape, dtype and order."""
        return apply_activation(z, out, scale, self.name)

    def z_update(
        self, z: np.ndarray, a: np.ndarray, gamma: float, beta: float
    ) -> tuple[float, float]:
        """Update (3) in place, entry-wise: ``z`` holds ``m = W_l a_{l-1}`` on entry and
        ``argmin_z gamma (a - h(z))^2 + beta (z - m)^2`` on exit (ties: the first
        candidate of ``docs/method.md`` wins). Returns the unweighted sums
        ``(sum (a - h(z))^2, sum (z - m)^2)``, in an order fixed by the size."""
        return hidden_z_update(z, a, gamma, beta, self.name)

    def onnx_nodes(self, helper: Any, x: str, y: str, prefix: str, dtype: np.dtype) -> list[Any]:
        """The ONNX nodes computing ``y = h(x)`` entry-wise on ``dtype`` tensors
        (:func:`admm.export.to_onnx`). ``helper`` is the ``onnx.helper`` module
        (so this module never imports onnx); every other tensor or node the
        method names starts with ``prefix``. ONNX Runtime must run them in
        float32 and float64 and give :meth:`forward`'s values within rounding.
        Raises ``NotImplementedError`` for an activation without an ONNX form."""
        raise NotImplementedError(
            f"activation {self.name!r} has no ONNX form: its class needs an onnx_nodes method"
        )


@register
class HardSigmoid(Activation):
    """The discrete (hard) sigmoid of the talk: ``clip(z, 0, 1)``; best of three candidates."""

    name = "hardsigmoid"
    formula = "clip(x, 0, 1)"
    kinks = (0.0, 1.0)

    def onnx_nodes(self, helper: Any, x: str, y: str, prefix: str, dtype: np.dtype) -> list[Any]:
        if dtype == np.float32:
            return [
                helper.make_node(
                    "HardSigmoid", [x], [y], name=f"{prefix}hardsigmoid", alpha=1.0, beta=0.0
                )
            ]
        # ONNX Runtime has no float64 HardSigmoid kernel: Clip is the same function.
        low, high = f"{prefix}zero", f"{prefix}one"
        return [
            constant(helper, low, 0.0, dtype),
            constant(helper, high, 1.0, dtype),
            helper.make_node("Clip", [x, low, high], [y], name=f"{prefix}clip"),
        ]


@register
class ReLU(Activation):
    """``max(z, 0)`` (Taylor et al.); best of two candidates."""

    name = "relu"
    formula = "max(x, 0)"
    kinks = (0.0,)

    def onnx_nodes(self, helper: Any, x: str, y: str, prefix: str, dtype: np.dtype) -> list[Any]:
        return [helper.make_node("Relu", [x], [y], name=f"{prefix}relu")]


@register
class LeakyReLU(Activation):
    """``z`` for ``z > 0``, ``negative_slope * z`` otherwise (PyTorch's name and default
    0.01; any finite slope >= 0); best of the clamped minimisers of the two
    pieces, the ``z <= 0`` piece winning ties."""

    name = "leaky_relu"
    formula = "max(x, 0) + negative_slope min(x, 0)"
    kinks = (0.0,)

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = float(negative_slope)

    @classmethod
    def from_options(cls, options: Any) -> Activation:
        return cls(0.01 if options is None else options.negative_slope)

    def forward(self, z: np.ndarray, out: np.ndarray, scale: float = 1.0) -> np.ndarray:
        return apply_activation(z, out, scale, self.name, self.negative_slope)

    def z_update(
        self, z: np.ndarray, a: np.ndarray, gamma: float, beta: float
    ) -> tuple[float, float]:
        return hidden_z_update(z, a, gamma, beta, self.name, self.negative_slope)

    def onnx_nodes(self, helper: Any, x: str, y: str, prefix: str, dtype: np.dtype) -> list[Any]:
        if dtype == np.float32:
            return [
                helper.make_node(
                    "LeakyRelu", [x], [y], name=f"{prefix}leaky_relu", alpha=self.negative_slope
                )
            ]
        # LeakyRelu's alpha is a float32 attribute: in float64, x > 0 ? x : slope x.
        zero, slope, above, scaled = (f"{prefix}{n}" for n in ("zero", "slope", "above", "scaled"))
        return [
            constant(helper, zero, 0.0, dtype),
            constant(helper, slope, self.negative_slope, dtype),
            helper.make_node("Greater", [x, zero], [above], name=f"{prefix}greater"),
            helper.make_node("Mul", [x, slope], [scaled], name=f"{prefix}mul"),
            helper.make_node("Where", [above, x, scaled], [y], name=f"{prefix}where"),
        ]


@register
class Step(Activation):
    """The binary step ``1[z > 0]`` (so ``h(0) = 0``): no useful gradient, an exact update.

    Candidates ``min(m, 0)`` (``h = 0``) and, for ``h = 1``, ``m`` when
    ``m > 0``; where the open side ``z > 0`` wins with ``m <= 0`` the update
    returns the smallest positive normal number of the dtype (``tiny``), the
    minimiser over representable ``z``. Ties: the ``z <= 0`` candidate wins.
    """

    name = "step"
    formula = "1[x > 0]"
    kinks = (0.0,)

    def onnx_nodes(self, helper: Any, x: str, y: str, prefix: str, dtype: np.dtype) -> list[Any]:
        zero, above = f"{prefix}zero", f"{prefix}above"
        return [
            constant(helper, zero, 0.0, dtype),
            helper.make_node("Greater", [x, zero], [above], name=f"{prefix}greater"),
            helper.make_node(
                "Cast", [above], [y], name=f"{prefix}cast", to=elem_type(helper, dtype)
            ),
        ]


@register
class Sign(Activation):
    """``1`` for ``z > 0``, ``-1`` otherwise (``2 step(z) - 1``: the same jump,
    closed on the same side, so ``h(0) = -1``); updated as :class:`Step`."""

    name = "sign"
    formula = "1 if x > 0 else -1"
    kinks = (0.0,)

    def onnx_nodes(self, helper: Any, x: str, y: str, prefix: str, dtype: np.dtype) -> list[Any]:
        # Not ONNX's Sign, which gives 0 at 0.
        zero, one, minus = f"{prefix}zero", f"{prefix}one", f"{prefix}minus_one"
        above = f"{prefix}above"
        return [
            constant(helper, zero, 0.0, dtype),
            constant(helper, one, 1.0, dtype),
            constant(helper, minus, -1.0, dtype),
            helper.make_node("Greater", [x, zero], [above], name=f"{prefix}greater"),
            helper.make_node("Where", [above, one, minus], [y], name=f"{prefix}where"),
        ]


class _Smooth(Activation):
    """A smooth activation whose entry-wise update is a non-convex 1-D problem.

    Solved exactly (``admm_core.hidden_z_update_smooth``): every stationary
    point is bracketed within ``m +- gamma (|a| + 1) / (4 beta)``, the
    inflection points come from a quartic, and each monotone piece of the
    derivative gets one safeguarded Newton root; the best root wins (ties:
    the smallest ``z``). About 0.5 to 0.7 microseconds per entry, some 200
    times the hard sigmoid's (docs/performance.md).
    """

    #: No kink; the tests probe around the inflection of ``h`` at 0.
    kinks = (0.0,)

    def forward(self, z: np.ndarray, out: np.ndarray, scale: float = 1.0) -> np.ndarray:
        return apply_activation_smooth(z, out, scale, self.name)

    def z_update(
        self, z: np.ndarray, a: np.ndarray, gamma: float, beta: float
    ) -> tuple[float, float]:
        return hidden_z_update_smooth(z, a, gamma, beta, self.name)


@register
class Sigmoid(_Smooth):
    """The logistic sigmoid ``1 / (1 + exp(-z))``."""

    name = "sigmoid"
    formula = "1 / (1 + exp(-x))"

    def onnx_nodes(self, helper: Any, x: str, y: str, prefix: str, dtype: np.dtype) -> list[Any]:
        return [helper.make_node("Sigmoid", [x], [y], name=f"{prefix}sigmoid")]


@register
class Tanh(_Smooth):
    """``tanh(z)`` (``2 sigmoid(2z) - 1``, solved as the sigmoid's problem in ``2z``)."""

    name = "tanh"
    formula = "tanh(x)"

    def onnx_nodes(self, helper: Any, x: str, y: str, prefix: str, dtype: np.dtype) -> list[Any]:
        return [helper.make_node("Tanh", [x], [y], name=f"{prefix}tanh")]


def names() -> tuple[str, ...]:
    """The registered activation names, in registration order."""
    return _REGISTRY.names()


def summary() -> str:
    """``"hardsigmoid = clip(x, 0, 1), relu = max(x, 0), ..."``: every one, for ``--help``."""
    return ", ".join(f"{cls.name} = {cls.formula}" for cls in _REGISTRY.classes())


def get(name: str, options: Any = None) -> Activation:
    """The activation called ``name``, with its parameters from ``options``."""
    return _REGISTRY.get(name, options)
