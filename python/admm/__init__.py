"""Gradient-free training of fully connected networks by ADMM, over MPI.

The method is Taylor et al. (2016), "Training Neural Networks Without
Gradients: A Scalable ADMM Approach", in the data-parallel form with
transpose reduction. See :class:`ADMMNetwork`.

The names that need NumPy are imported at first use, so that
``python -m admm.train`` can set the BLAS thread count before the BLAS
loads (:func:`admm._cores.share_blas_cores`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._cores import short_blas_spin
from .presets import PRESET_ITERATIONS, PRESET_REFIT, PRESETS

if TYPE_CHECKING:
    from ._threads import get_num_threads, set_num_threads
    from .config import Config
    from .network import ADMMNetwork, load
    from .solver import NumericalError
    from .timing import PhaseTimer

__version__ = "0.1.0"

_LAZY = {
    "ADMMNetwork": ".network",
    "load": ".network",
    "get_num_threads": "._threads",
    "set_num_threads": "._threads",
    "PhaseTimer": ".timing",
    "Config": ".config",
    "NumericalError": ".solver",
}

__all__ = [
    "PRESETS",
    "PRESET_ITERATIONS",
    "PRESET_REFIT",
    "ADMMNetwork",
    "Config",
    "NumericalError",
    "PhaseTimer",
    "__version__",
    "get_num_threads",
    "load",
    "set_num_threads",
    "short_blas_spin",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
