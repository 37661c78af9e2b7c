"""``python -m admm.train``: train a network by ADMM on MNIST or a user's ``.npz``.

Run it under ``mpiexec -n N``: every rank loads its own block of samples and
all ranks train one network together. This package is a thin shell over
:class:`admm.ADMMNetwork`: it parses flags, loads data, prints progress on
rank 0, and writes metrics, models and checkpoints. All MPI goes through
:mod:`admm._mpi`; an exception on any rank ends the whole job with a one-line
message and a non-zero exit (a traceback with ``--debug``).

Failures (``docs/failures.md``): bad input stops every rank before training
with exit status 2; NaN or inf during training (:class:`NumericalError`)
with status 3, leaving the last checkpoint as it was; SIGTERM or SIGINT
stops the run at the end of the current iteration, which is checkpointed
(with ``--checkpoint``) and saved (with ``--save``), with status 128 + the
signal number (143, 130).

The modules: :mod:`~admm.train.args` (the command line),
:mod:`~admm.train.stop` (the stopping rules and signals),
:mod:`~admm.train.report` (what rank 0 prints and writes to ``--metrics``)
and :mod:`~admm.train.run` (the run, from its checks to its summary).

Importing this package sets the BLAS environment of the process and glibc's
mmap threshold (below): library code, such as :mod:`admm.evaluate`, must not
import it.
"""

from __future__ import annotations

# First, before NumPy loads the BLAS: one BLAS thread per core, not per rank,
# and idle BLAS threads that soon leave the cores to the entry-wise kernels.
# And freed temporaries returned to the system, as the memory model assumes.
from .._cores import fixed_mmap_threshold, share_blas_cores, short_blas_spin

BLAS_THREADS_SET = share_blas_cores()
short_blas_spin()
fixed_mmap_threshold()

from .._checks import deskew_mismatch, width_mismatch
from .args import UsageError, build_parser, parse_args
from .run import main, run
from .stop import PatienceRule, RelativeChangeRule, StopSignals, signal_name

__all__ = [
    "BLAS_THREADS_SET",
    "PatienceRule",
    "RelativeChangeRule",
    "StopSignals",
    "UsageError",
    "build_parser",
    "deskew_mismatch",
    "main",
    "parse_args",
    "run",
    "signal_name",
    "width_mismatch",
]
