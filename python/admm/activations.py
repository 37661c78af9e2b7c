"""Hidden activations as pluggable parts, and their registry.

An activation ``h`` is one object: its forward map (:meth:`Activation.forward`),
the exact entry-wise z-update of its constraint ``a_l = h(z_l)`` (update (3)
of ``docs/method.md``: ``argmin_z gamma (a - h(z))^2 + beta (z - m)^2``), and
the points where ``h`` is not smooth, which the tests must probe. Both
methods act in place on arrays of samples in rows and run row by row, so
:func:`admm._threads.rowwise` can split them over threads.

To add an activation: write its compiled kernels (``admm_core``), a class
here registered with :func:`register`, and its tests. The solver, the
program's ``--activation`` choices and the model files find it by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from admm_core import apply_activation, hidden_z_update

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


@register
class HardSigmoid(Activation):
    """The discrete (hard) sigmoid of the talk: ``clip(z, 0, 1)``; best of three candidates."""

    name = "hardsigmoid"
    formula = "clip(x, 0, 1)"
    kinks = (0.0, 1.0)


@register
class ReLU(Activation):
    """``max(z, 0)`` (Taylor et al.); best of two candidates."""

    name = "relu"
    formula = "max(x, 0)"
    kinks = (0.0,)


def names() -> tuple[str, ...]:
    """The registered activation names, in registration order."""
    return _REGISTRY.names()


def summary() -> str:
    """``"clip(x, 0, 1) or max(x, 0)"``: every formula, for ``--help``."""
    formulas: Sequence[str] = [cls.formula for cls in _REGISTRY.classes()]
    return ", ".join(formulas[:-1]) + " or " + formulas[-1] if len(formulas) > 1 else formulas[0]


def get(name: str, options: Any = None) -> Activation:
    """The activation called ``name``, with its parameters from ``options``."""
    return _REGISTRY.get(name, options)
