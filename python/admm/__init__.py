"""Gradient-free training of fully connected networks by ADMM, over MPI.

The method is Taylor et al. (2016), "Training Neural Networks Without
Gradients: A Scalable ADMM Approach", in the data-parallel form with
transpose reduction. See :class:`ADMMNetwork`.
"""

from ._threads import get_num_threads, set_num_threads
from .network import ADMMNetwork, load
from .presets import PRESET_ITERATIONS, PRESET_REFIT, PRESETS

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "PRESET_ITERATIONS",
    "PRESET_REFIT",
    "ADMMNetwork",
    "__version__",
    "get_num_threads",
    "load",
    "set_num_threads",
]
