"""Whether a network fits a data set: the checks that the programs share.

Plain functions of widths and flags, with no MPI and no import of the
programs, so that :mod:`admm.evaluate` can use them without
:mod:`admm.train` (which sets the BLAS environment when imported).
"""

from __future__ import annotations

from collections.abc import Sequence

from . import losses
from .preprocessing import image_side


def width_mismatch(
    layers: Sequence[int],
    n_features: int,
    n_classes: int,
    loss: str = "hinge",
    what: str = "classes",
) -> str | None:
    """Why ``layers`` cannot fit data of ``n_features`` and ``n_classes`` with
    ``loss`` (whose ``outputs_for`` gives the output widths it accepts), or
    None; ``what`` names the outputs' counterpart (``"targets"`` for real
    targets, one output each)."""
    problems = []
    if layers[0] != n_features:
        problems.append(f"{layers[0]} inputs but the data has {n_features} features")
    outputs = losses.get(loss).outputs_for(n_classes)
    if not outputs:
        return f"the {loss} loss cannot fit {n_classes} {what}"
    if layers[-1] not in outputs:
        problems.append(f"{layers[-1]} outputs but the data has {n_classes} {what}")
    if not problems:
        return None
    suggestion = ",".join(str(v) for v in (n_features, *layers[1:-1], outputs[0]))
    return (
        f"layers {','.join(map(str, layers))} have {' and '.join(problems)} "
        f"(e.g. --layers {suggestion})"
    )


def deskew_mismatch(deskew: bool, n_features: int) -> str | None:
    """Why ``--deskew`` cannot apply to data of ``n_features``, or None."""
    if not deskew:
        return None
    try:
        image_side(n_features)
    except ValueError:
        return (
            f"--deskew (part of --preset digits and fast) needs square images stored row by row, but "
            f"the data has {n_features} features, not a perfect square: add --no-deskew"
        )
    return None
