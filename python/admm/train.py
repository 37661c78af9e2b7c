"""``python -m admm.train``: train a network by ADMM on MNIST or a user's ``.npz``.

Run it under ``mpiexec -n N``: every rank loads its own block of samples and
all ranks train one network together. This module is a thin shell over
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

The end of a run: the final checkpoint (the plain ADMM state, so that
``--resume`` continues the same trajectory), then with ``--refit``
:meth:`ADMMNetwork.refit` (not after a signal: the run is unfinished and
keeps the weights of its last iteration), then the model (``--save``) and
the final test accuracy, of the refit weights.

Stopping rules: the run ends after ``--iterations`` iterations in total
(counting those of a resumed checkpoint) or, with ``--tol T``, as soon as the
relative change of the objective ``|f_i - f_{i-1}| / max(|f_{i-1}|, 1e-300)``
between consecutive iterations ``i - 1`` and ``i`` has stayed below ``T`` for
``TOL_PATIENCE`` (5) consecutive iterations, where only pairs of iterations
that both update the multiplier count (iteration numbers, counted from 1,
greater than ``--warmup``): the warm-up's objective is not yet the
Lagrangian's, and its jump at the first multiplier update is no sign of
convergence.
"""

from __future__ import annotations

# First, before NumPy loads the BLAS: one BLAS thread per core, not per rank,
# and idle BLAS threads that soon leave the cores to the entry-wise kernels.
from ._cores import share_blas_cores, short_blas_spin

BLAS_THREADS_SET = share_blas_cores()
short_blas_spin()

import argparse
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

from . import _mpi
from ._checks import deskew_mismatch, width_mismatch
from ._files import unwritable_reason
from .checkpoint import (
    array_sha256,
    check_writable_dir,
    load_checkpoint,
    optional_config,
    save_checkpoint,
)
from .data import load_dataset, locate
from .metrics import MB, MetricsWriter, memory_breakdown, peak_rss_bytes
from .network import (
    ACTIVATIONS,
    BLOCK_SIZE,
    DTYPES,
    LOSSES,
    RHO_RELATIVE,
    ADMMNetwork,
    NumericalError,
)
from .presets import PRESET_ITERATIONS, PRESET_REFIT, PRESETS

DEFAULT_LAYERS = (784, 500, 500, 10)
TOL_PATIENCE = 5
PROG = "python -m admm.train"


# ----------------------------------------------------------------- arguments


class UsageError(ValueError):
    """A bad command line. Every rank parses the same one, so every rank
    raises the same error, and the job ends without an MPI abort."""

    admm_all_ranks = True


class _Parser(argparse.ArgumentParser):
    """An argument parser that prints on rank 0 only and raises UsageError."""

    def _print_message(self, message: str, file: Any = None) -> None:
        if message and _mpi.world_rank() == 0:
            super()._print_message(message, file)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    """An integer >= 1 from the command line."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0 from the command line."""
    return _int_at_least(text, 0, "a non-negative integer")


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def _float_where(text: str, accept: Callable[[float], bool], what: str) -> float:
    """A finite float from the command line for which ``accept`` holds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and accept(value)):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0 from the command line."""
    return _float_where(text, lambda v: v > 0, "a positive number")


def positive_floats(text: str) -> float | list[float]:
    """One positive float, or several separated by commas (one per layer)."""
    values = [positive_float(part) for part in text.split(",")]
    return values[0] if len(values) == 1 else values


def growth_factor(text: str) -> float:
    """A finite float >= 1 from the command line (continuation factor)."""
    return _float_where(text, lambda v: v >= 1, "a number >= 1")


def unit_fraction(text: str) -> float:
    """A float in (0, 1] from the command line (the ridge's final fraction)."""
    return _float_where(text, lambda v: 0 < v <= 1, "a number in (0, 1]")


def inertia_factor(text: str) -> float:
    """A float in [0, 1) from the command line (the weights' extrapolation)."""
    return _float_where(text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def layer_widths(text: str) -> tuple[int, ...]:
    """Layer widths ``n_0,n_1,...,n_L`` (at least two positive integers)."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) < 2 or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"must be at least two positive integers separated by commas, got {text!r}"
        )
    return widths


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m admm.train``."""
    p = _Parser(
        prog=PROG,
        description=(
            "Train a fully connected network by ADMM (Taylor et al. 2016), data-parallel "
            "over MPI: run under `mpiexec -n N`. The defaults reproduce the published "
            "MNIST experiment: 784-500-500-10, hard sigmoid, hinge loss, beta 0.2, "
            "gamma 20, 10 warm-up iterations, float64."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--data",
        default=None,
        metavar="NAME|PATH.npz",
        help="mnist, fashion-mnist, mnist-sample (the 6000-image MNIST sample shipped "
        "with the package) or an .npz file with X_train (m, n_0), y_train (m,) and "
        "optionally X_test, y_test; None: full MNIST when its files are found locally, "
        "otherwise the embedded sample",
    )
    d.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder with the IDX files, searched before $ADMM_DATA_DIR and the user "
        "cache (~/.cache/admm)",
    )
    n = p.add_argument_group("network and ADMM")
    n.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="talk",
        help="a named configuration (admm/presets.py): talk = the published one (the "
        "defaults shown here), best = the best of docs/accuracy-study.md (deskewed, centred "
        "inputs, ridge 1e-2 -> 2e-3 by iteration 70, penalties 1 -> x1.03 per iteration -> 30, no "
        "output multiplier, inertia 0.3, backward sweep, 100 "
        "iterations, --refit). Flags given explicitly override the preset, in any order",
    )
    n.add_argument(
        "--layers",
        type=layer_widths,
        default=",".join(map(str, DEFAULT_LAYERS)),
        metavar="N0,N1,...,NL",
        help="layer widths: input features, hidden widths, outputs (= number of classes)",
    )
    n.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default="hardsigmoid",
        help="hidden activation: clip(x, 0, 1) or max(x, 0)",
    )
    n.add_argument(
        "--loss",
        choices=LOSSES,
        default="hinge",
        help="output loss: one-vs-rest hinge on the labels, or least squares on one-hot targets",
    )
    n.add_argument(
        "--beta",
        type=positive_floats,
        default=0.2,
        metavar="B[,B...]",
        help="weight of each constraint z_l = W_l a_{l-1}: one value, or one per weight layer",
    )
    n.add_argument(
        "--gamma",
        type=positive_floats,
        default=20.0,
        metavar="G[,G...]",
        help="weight of each constraint a_l = h(z_l): one value, or one per hidden layer",
    )
    n.add_argument(
        "--rho",
        type=positive_floats,
        default=None,
        metavar="R[,R...]",
        help="ridge added to every Gram matrix before its Cholesky solve; None: "
        "--rho-relative times the mean diagonal of each layer's Gram at initialisation",
    )
    n.add_argument(
        "--rho-relative",
        type=positive_float,
        default=RHO_RELATIVE,
        metavar="R",
        help="the automatic ridge (without --rho), relative to each Gram's mean diagonal",
    )
    n.add_argument(
        "--rho-final",
        type=unit_fraction,
        default=1.0,
        metavar="F",
        help="continuation of the ridge: it falls geometrically to F times its starting "
        "value (--rho or --rho-relative) by iteration --rho-decay-iterations, then stays; "
        "1: a constant ridge",
    )
    n.add_argument(
        "--rho-decay-iterations",
        type=non_negative_int,
        default=0,
        metavar="T",
        help="the iteration (from 0) at which the ridge reaches --rho-final: the ridge of "
        "iteration t is rho F^(min(t, T)/T)",
    )
    n.add_argument(
        "--inertia",
        type=inertia_factor,
        default=0.0,
        metavar="C",
        help="extrapolate every weight update from iteration 1 on: W_l <- W_l + C (W_l - "
        "W_l of the previous iteration), C in [0, 1); 0: off (ADMM.md)",
    )
    n.add_argument(
        "--backward-sweep",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="after the output update, update a_l and z_l once more for l = L-1 .. 1 (exact "
        "block minimisations; about 1.5 times the work per iteration); the objective shown "
        "is then the one before the sweep",
    )
    n.add_argument(
        "--beta-growth",
        type=growth_factor,
        default=1.0,
        metavar="F",
        help="continuation: beta_l at iteration t (from 0) is min(beta_l F^t, --beta-max)",
    )
    n.add_argument(
        "--gamma-growth",
        type=growth_factor,
        default=1.0,
        metavar="F",
        help="continuation: gamma_l at iteration t (from 0) is min(gamma_l F^t, --gamma-max)",
    )
    n.add_argument(
        "--beta-max",
        type=positive_floats,
        default=None,
        metavar="B[,B...]",
        help="cap of the beta continuation, one value or one per weight layer; None: no cap",
    )
    n.add_argument(
        "--gamma-max",
        type=positive_floats,
        default=None,
        metavar="G[,G...]",
        help="cap of the gamma continuation, one value or one per hidden layer; None: no cap",
    )
    n.add_argument(
        "--center",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="subtract the mean training input (over all ranks) in training and prediction",
    )
    n.add_argument(
        "--deskew",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="deskew every image (square images, non-negative pixels) before the centring, in "
        "training and prediction: shear its main axis upright, centre its mass",
    )
    n.add_argument(
        "--multiplier",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="update the output multiplier lam after the warm-up (equation (6))",
    )
    n.add_argument(
        "--warmup",
        type=non_negative_int,
        default=10,
        help="iterations (from 0) without a multiplier update; --tol also waits for them. "
        "With --no-multiplier (as in --preset best) that delay of --tol is all it does",
    )
    n.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float64",
        help="precision of data, activations and weights",
    )
    n.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the Glorot-uniform initial weights",
    )
    n.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="results independent of the number of ranks, bit for bit (same machine "
        f"type, BLAS and BLAS threads per rank): sums over samples in blocks of {BLOCK_SIZE}, "
        "added along one fixed tree; see docs/determinism.md",
    )
    n.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="after the last iteration, re-solve every W_l as the ridge regression of the "
        "state's z_l on the network's own forward features (ADMMNetwork.refit; a little "
        "less work than one iteration): after the final checkpoint, so --resume continues "
        "plain ADMM, and before --save and the final test accuracy; skipped when a signal "
        "stops the run",
    )
    s = p.add_argument_group("stopping")
    s.add_argument(
        "--iterations",
        type=positive_int,
        default=100,
        metavar="K",
        help="total number of iterations (a resumed run continues up to K)",
    )
    s.add_argument(
        "--tol",
        type=positive_float,
        default=None,
        metavar="T",
        help="stop once |f_i - f_{i-1}| / max(|f_{i-1}|, 1e-300) < T for "
        f"{TOL_PATIENCE} consecutive iterations i, where f_i is the objective after "
        "iteration i (counted from 1) and only pairs with i - 1 > --warmup count; "
        "None: run all iterations",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--eval-every",
        type=positive_int,
        default=1,
        metavar="E",
        help="test accuracy (and a progress line) every E iterations and at the last",
    )
    o.add_argument(
        "--metrics",
        default=None,
        metavar="FILE.jsonl",
        help="write a JSON object per line: a start event with the configuration, one "
        "per iteration, a done event",
    )
    o.add_argument(
        "--save",
        default=None,
        metavar="MODEL.npz",
        help="write the trained model (read by admm.load and admm.evaluate)",
    )
    o.add_argument(
        "--checkpoint",
        default=None,
        metavar="DIR",
        help="keep the full ADMM state in DIR (created if needed) every --checkpoint-every "
        "iterations and at the end",
    )
    o.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=10,
        metavar="K",
        help="checkpoint period in iterations",
    )
    o.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue from the checkpoint in DIR (same data, network and number of ranks)",
    )
    o.add_argument("--debug", action="store_true", help="print the Python traceback of an error")
    return p


# -------------------------------------------------------------- helpers


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line and apply ``--preset``. Local.

    A preset sets every network flag (and ``--iterations`` and ``--refit``)
    that is not given explicitly on the command line; an explicit flag wins
    whatever its place relative to ``--preset``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    # Which flags were given: parse again with every default suppressed.
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        explicit = set(vars(parser.parse_args(argv)))
    finally:
        for action, default in saved:
            action.default = default
    settings = {
        **PRESETS[args.preset],
        "iterations": PRESET_ITERATIONS[args.preset],
        "refit": PRESET_REFIT[args.preset],
    }
    for key, value in settings.items():
        if key not in explicit:
            setattr(args, key, value)
    if args.rho_final < 1.0 and args.rho_decay_iterations == 0:
        parser.error(
            f"--rho-final {args.rho_final:g} needs --rho-decay-iterations of at least 1 "
            "(the iteration by which the ridge has fallen to it)"
        )
    return args


def check_output_file(path: str, flag: str) -> str | None:
    """Why a file cannot be written at ``path`` (probing its folder), or None. Local."""
    if os.path.isdir(path):
        return f"{flag} {path} is a folder, not a file"
    folder = os.path.dirname(os.path.abspath(path))
    reason = unwritable_reason(folder)
    return reason and f"cannot write {flag} {path}: {reason} ({folder})"


def _attempt(action: Callable[[], Any]) -> tuple[Any, str | None]:
    """Run ``action``; return its value and None, or None and its error message."""
    try:
        return action(), None
    except Exception as exc:  # reported to every rank by raise_if_any
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, ValueError | OSError):
            text = f"{type(exc).__name__}: {text}"
        return None, text


def _agreed(comm: _mpi.Communicator, action: Callable[[], Any]) -> Any:
    """``action()`` on every rank; an error on any rank raises on all. Collective."""
    value, message = _attempt(action)
    comm.raise_if_any(message)
    return value


class RelativeChangeRule:
    """The ``--tol`` stopping rule (see the module docstring). Local.

    Called with the run's history (records with ``iteration`` and
    ``objective``); true when the last ``patience`` relative changes after the
    warm-up are all below ``tol``.
    """

    def __init__(self, tol: float, warmup: int, patience: int = TOL_PATIENCE) -> None:
        self.tol = tol
        self.warmup = warmup
        self.patience = patience

    def __call__(self, history: Sequence[dict]) -> bool:
        count = 0
        for prev, cur in zip(history[-2::-1], history[::-1], strict=False):
            if prev["iteration"] <= self.warmup or cur["iteration"] != prev["iteration"] + 1:
                break
            f0, f1 = prev["objective"], cur["objective"]
            if not abs(f1 - f0) / max(abs(f0), 1e-300) < self.tol:
                break
            count += 1
            if count >= self.patience:
                return True
        return False

    def describe(self) -> str:
        return (
            f"tolerance: relative objective change below {self.tol:g} for "
            f"{self.patience} consecutive iterations after the warm-up"
        )


class StopSignals:
    """Handlers for SIGTERM and SIGINT that only note the signal. Local.

    A scheduler's time limit (SIGTERM) or Ctrl-C (SIGINT, which ``mpiexec``
    forwards to every rank) then ends the run at the end of the current
    iteration, when the ranks agree on it (:meth:`signum` is reduced with a
    maximum in the iteration callback, so a signal that reaches one rank only
    stops all of them). A second signal ends the process at once, with the
    signal's default action.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Install the handlers (main thread only; elsewhere a no-op)."""
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._note)
            except ValueError:  # not the main thread of the interpreter
                return

    def restore(self) -> None:
        """Put back the handlers found by :meth:`install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _note(self, signum: int, frame: Any) -> None:
        if self.signum:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _fmt_floats(value: float | Sequence[float] | None) -> str:
    if value is None:
        return "auto"
    if isinstance(value, float | int):
        return f"{value:g}"
    return ",".join(f"{v:g}" for v in value)


def _fmt_cap(value: float | Sequence[float] | None) -> str:
    return "no cap" if value is None else _fmt_floats(value)


# ------------------------------------------------------------------ the run


def run(args: argparse.Namespace, signals: StopSignals | None = None) -> dict[str, Any]:
    """Train as the flags say; returns the done record. Collective on MPI_COMM_WORLD.

    With ``signals`` (installed by :func:`main`), a SIGTERM or SIGINT stops
    training at the end of the current iteration; the done record then has
    ``stop_reason`` ``"signal"`` and ``signal`` its number. Raises
    :class:`NumericalError` (on every rank) when training produces NaN or inf,
    without writing a checkpoint or model of that state.
    """
    signals = signals or StopSignals()
    comm = _mpi.Communicator()
    rank, size = comm.rank, comm.size
    baseline = peak_rss_bytes()  # interpreter, numpy, MPI: before any data

    # Local problems first (outputs, data), agreed before any other collective.
    messages: list[str | None] = []
    writer = None
    if rank == 0:
        if args.save is not None:
            messages.append(check_output_file(args.save, "--save"))
        if args.metrics is not None:
            messages.append(check_output_file(args.metrics, "--metrics"))
            if messages[-1] is None:
                writer, message = _attempt(lambda: MetricsWriter(args.metrics))
                messages.append(message and f"cannot write --metrics {args.metrics}: {message}")
    if args.checkpoint is not None:
        messages.append(check_writable_dir(args.checkpoint))
    if rank == 0 and args.data in ("mnist", "fashion-mnist"):
        # Rank 0 finds (or downloads) the files first, so N ranks do not
        # download at once; the others then find them, unless their cache is
        # node-local, where they download their own copy.
        _, message = _attempt(lambda: locate(args.data, args.data_dir, download=True))
        messages.append(message)
    comm.raise_if_any("; ".join(m for m in messages if m) or None)
    messages = []
    dataset, message = _attempt(
        lambda: load_dataset(
            args.data,
            args.data_dir,
            rank=rank,
            size=size,
            dtype=args.dtype,
            download=True,
            block=BLOCK_SIZE if args.deterministic else 1,
        )
    )
    messages.append(message)
    found = [m for m in messages if m]
    comm.raise_if_any("; ".join(found) if found else None)

    comm.raise_if_any(width_mismatch(args.layers, dataset.n_features, dataset.n_classes))
    comm.raise_if_any(deskew_mismatch(args.deskew, dataset.n_features))
    net = _agreed(
        comm,
        lambda: ADMMNetwork(
            args.layers,
            activation=args.activation,
            loss=args.loss,
            beta=args.beta,
            gamma=args.gamma,
            rho=args.rho,
            warmup=args.warmup,
            dtype=args.dtype,
            seed=args.seed,
            deterministic=args.deterministic,
            rho_relative=args.rho_relative,
            rho_final=args.rho_final,
            rho_decay_iterations=args.rho_decay_iterations,
            inertia=args.inertia,
            backward_sweep=args.backward_sweep,
            multiplier=args.multiplier,
            beta_growth=args.beta_growth,
            gamma_growth=args.gamma_growth,
            beta_max=args.beta_max,
            gamma_max=args.gamma_max,
            center=args.center,
            deskew=args.deskew,
        ),
    )
    X, labels = dataset.X_train, dataset.y_train
    if args.loss == "squared":
        y = np.eye(args.layers[-1], dtype=args.dtype)[labels]
    else:
        y = labels
    has_test = dataset.X_test is not None and dataset.n_test > 0
    X_test = dataset.X_test if has_test else None
    y_test = dataset.y_test if has_test else None

    m_local = comm.gather_values(float(X.shape[0]))
    n_test_local = X_test.shape[0] if X_test is not None else 0
    n_test_max = int(comm.max_value(float(n_test_local)))
    breakdown = memory_breakdown(
        args.layers,
        int(m_local.max()),
        args.dtype,
        args.loss,
        n_test_max,
        center=args.center,
        deskew=args.deskew,
        refit=args.refit,
        ridge_decay=net.rho_final != 1.0,
    )
    predicted = sum(breakdown.values())
    baseline_max = comm.max_value(float(baseline))

    config = {
        "layers": list(net.layers),
        "activation": net.activation,
        "loss": net.loss,
        "beta": list(net.beta),
        "gamma": list(net.gamma),
        "rho": None if net.rho is None else list(net.rho),
        "warmup": net.warmup,
        "rho_relative": net.rho_relative,
        "multiplier": net.multiplier,
        "beta_growth": net.beta_growth,
        "gamma_growth": net.gamma_growth,
        "beta_max": None if net.beta_max is None else list(net.beta_max),
        "gamma_max": None if net.gamma_max is None else list(net.gamma_max),
        "center": net.center,
        "dtype": net.dtype.name,
        "seed": net.seed,
        # Part of the trajectory: a resume must sum the same way.
        "deterministic": net.deterministic,
        "block_size": net.block_size,
        # The data set itself is identified by each rank's block checksum
        # (rank_info), so a moved or renamed file can still be resumed.
        "n_train": dataset.n_train,
        "n_features": dataset.n_features,
        "n_classes": dataset.n_classes,
    }
    config.update(
        optional_config(
            {
                "rho_final": net.rho_final,
                # Without a decay its length plays no part in the trajectory.
                "rho_decay_iterations": net.rho_decay_iterations if net.rho_final != 1.0 else 0,
                "inertia": net.inertia,
                "backward_sweep": net.backward_sweep,
                "deskew": net.deskew,
            }
        )
    )
    rank_info: dict[str, Any] = {}
    if args.checkpoint is not None or args.resume is not None:
        rank_info = {
            "train_range": list(dataset.train_range),
            "sha256": array_sha256(X, labels),
        }

    if args.resume is not None:
        state = load_checkpoint(args.resume, comm, config, rank_info)
        _agreed(comm, lambda: net.set_state(state, X, y))
        del state

    rule = RelativeChangeRule(args.tol, args.warmup) if args.tol is not None else None
    say = print if rank == 0 else (lambda *a, **k: None)
    say(
        f"admm.train: {size} rank{'s' if size > 1 else ''}, "
        f"{int(m_local.min())}-{int(m_local.max())} training samples per rank "
        f"({dataset.n_train} in all), {dataset.n_test if has_test else 0} test samples"
    )
    say(f"  data: {dataset.name} ({dataset.source})")
    if BLAS_THREADS_SET is not None:
        say(
            f"  BLAS threads per rank: {BLAS_THREADS_SET} (set by admm.train for the ranks "
            "sharing this node's cores; set OPENBLAS_NUM_THREADS to choose)"
        )
    say(
        f"  layers {'-'.join(map(str, net.layers))}, activation {net.activation}, "
        f"loss {net.loss}, dtype {net.dtype.name}"
    )
    say(
        f"  beta {_fmt_floats(args.beta)}, gamma {_fmt_floats(args.gamma)}, "
        f"rho {_fmt_floats(args.rho)}, warmup {net.warmup}, seed {net.seed}"
    )
    say(
        f"  preset {args.preset}: rho-relative {net.rho_relative:g}"
        + (
            f" falling to x{net.rho_final:g} by iteration {net.rho_decay_iterations}"
            if net.rho_final != 1.0
            else ""
        )
        + ", "
        f"multiplier {'on' if net.multiplier else 'off'}, "
        f"centred inputs {'yes' if net.center else 'no'}, "
        + ("deskewed inputs, " if net.deskew else "")
        + "continuation "
        + (
            f"beta x{net.beta_growth:g} up to {_fmt_cap(args.beta_max)}, "
            f"gamma x{net.gamma_growth:g} up to {_fmt_cap(args.gamma_max)}"
            if net.beta_growth != 1.0 or net.gamma_growth != 1.0
            else "none"
        )
        + (f", inertia {net.inertia:g}" if net.inertia else "")
        + (", backward sweep" if net.backward_sweep else "")
        + f", refit {'yes' if args.refit else 'no'}"
    )
    if args.resume is not None:
        say(f"  resumed from {args.resume} at iteration {net.n_iter_}")
    say(
        f"  iterations {args.iterations}, "
        f"stop {'on ' + rule.describe() if rule else 'at the iteration limit only'}"
    )
    say(
        f"  predicted memory per rank: {(predicted + baseline_max) / MB:.1f} MB "
        f"({predicted / MB:.1f} MB of arrays + {baseline_max / MB:.1f} MB interpreter "
        "and libraries at start)"
    )
    if writer is not None:
        writer.write(
            {
                "event": "start",
                **config,
                "rho": args.rho,
                "tol": args.tol,
                "iterations": args.iterations,
                "eval_every": args.eval_every,
                "ranks": size,
                "data": dataset.name,
                "data_source": dataset.source,
                "n_test": dataset.n_test if has_test else 0,
                "samples_per_rank": [int(v) for v in m_local],
                "predicted_bytes_per_rank": predicted,
                "predicted_breakdown": breakdown,
                "baseline_rss_mb": baseline_max / MB,
                "resume": args.resume,
                # Not in config: the refit comes after the last checkpoint, so a
                # run may be resumed with or without it.
                "refit": args.refit,
            }
        )

    say(f"{'iter':>6} {'time_s':>9} {'objective':>14} {'residual':>12} {'test_acc':>9}")
    last_checkpoint = -1
    stopped_by_tol = False
    stopped_by_signal = 0

    def checkpoint() -> None:
        nonlocal last_checkpoint
        save_checkpoint(args.checkpoint, comm, net.get_state(), config, rank_info)
        last_checkpoint = net.n_iter_

    def callback(network: ADMMNetwork, record: dict) -> bool:
        nonlocal stopped_by_tol, stopped_by_signal
        # One small Allreduce: the peak memory and whether any rank got a signal.
        peak, signum = comm.max_values([float(peak_rss_bytes()), float(signals.signum)])
        it = record["iteration"]
        stop = rule is not None and rule(network.history)
        stopped_by_tol = stop
        if signum and not stop:
            stopped_by_signal = int(signum)
            stop = True
        if args.checkpoint is not None and it % args.checkpoint_every == 0:
            checkpoint()
        if writer is not None:
            writer.write(
                {
                    "iteration": it,
                    "time_s": record["time_s"],
                    "objective": record["objective"],
                    "residual": record["residual"],
                    "test_accuracy": record["val_accuracy"],
                    "peak_rss_mb": peak / MB,
                }
            )
        if record["val_accuracy"] is not None or (
            not has_test and (it % args.eval_every == 0 or it == args.iterations)
        ):
            acc = record["val_accuracy"]
            say(
                f"{it:6d} {record['time_s']:9.2f} {record['objective']:14.6e} "
                f"{record['residual']:12.4e} {'-' if acc is None else f'{acc:.4f}':>9}",
                flush=True,
            )
        return stop

    def numerical_failure(exc: NumericalError) -> NumericalError:
        """``exc`` saying what was kept, after an ``error`` event. Every rank
        is here; nothing of the failed state (or refit) is written."""
        if args.checkpoint is not None and last_checkpoint >= 0:
            kept = f"the checkpoint of iteration {last_checkpoint} in {args.checkpoint} is kept"
        elif args.resume is not None:
            kept = f"no new checkpoint; {args.resume} is unchanged"
        else:
            kept = "no checkpoint was written" + (
                "" if args.checkpoint is not None else " (no --checkpoint)"
            )
        if writer is not None:
            writer.write(
                {
                    "event": "error",
                    "error": "numerical",
                    "iteration": exc.iteration,
                    "layer": exc.layer,
                    "message": str(exc),
                    "last_checkpoint": last_checkpoint if last_checkpoint >= 0 else None,
                }
            )
            writer.close()
        return NumericalError(f"{exc}; {kept}", exc.iteration, exc.layer)

    def test_accuracy() -> float | None:
        """Accuracy of the current weights on all ranks' test blocks. Collective."""
        if not has_test:
            return None
        correct = float(np.sum(net.predict(X_test) == y_test))
        total = comm.sum_values([correct, float(n_test_local)])
        return float(total[0] / total[1])

    start_iter = net.n_iter_
    if net.n_iter_ < args.iterations:
        try:
            net.fit(
                X,
                y,
                iterations=args.iterations,
                X_val=X_test,
                y_val=y_test,
                callback=callback,
                eval_every=args.eval_every,
                warm_start=args.resume is not None,
            )
        except NumericalError as exc:
            raise numerical_failure(exc) from None
    history = net.history
    if stopped_by_signal:
        reason = signal_name(stopped_by_signal)
    elif stopped_by_tol and rule is not None:
        reason = rule.describe()
    elif start_iter >= args.iterations:
        reason = f"iteration limit ({args.iterations}) already reached by the checkpoint"
    else:
        reason = f"iteration limit ({args.iterations})"

    accuracy = history[-1]["val_accuracy"] if history else None
    if accuracy is None:
        accuracy = test_accuracy()
    if args.checkpoint is not None and last_checkpoint != net.n_iter_:
        checkpoint()
    # After the final checkpoint (the plain ADMM state), before the model.
    refitted = args.refit and not stopped_by_signal
    accuracy_before_refit: float | None = None
    refit_time: float | None = None
    if refitted:
        started = time.perf_counter()
        try:
            net.refit()
        except NumericalError as exc:
            raise numerical_failure(exc) from None
        refit_time = comm.max_value(time.perf_counter() - started)
        accuracy_before_refit, accuracy = accuracy, test_accuracy()
    # Agreed, so a full disk on rank 0 ends every rank with one message.
    _agreed(comm, lambda: net.save(args.save) if rank == 0 and args.save is not None else None)
    peak = comm.max_value(float(peak_rss_bytes()))
    elapsed = history[-1]["time_s"] if history else 0.0
    done_iters = net.n_iter_ - start_iter
    last_ridge = net.ridges(net.n_iter_ - 1) if net.rho_ is not None else ()
    done = {
        "event": "done",
        "iterations": net.n_iter_,
        "stop_reason": (
            "signal" if stopped_by_signal else "tolerance" if stopped_by_tol else "iterations"
        ),
        "signal": signal_name(stopped_by_signal) if stopped_by_signal else None,
        "stop_rule": reason,
        "final_test_accuracy": accuracy,
        "refit": refitted,
        "test_accuracy_before_refit": accuracy_before_refit,
        "refit_time_s": refit_time,
        "time_s": elapsed,
        "peak_rss_mb": peak / MB,
        "predicted_mb": (predicted + baseline_max) / MB,
        "rho": list(net.rho_ or ()),
        "rho_last": list(last_ridge),
        "model": args.save,
        "checkpoint": args.checkpoint,
    }
    if writer is not None:
        writer.write(done)
        writer.close()
    say(f"stopped by {reason} after iteration {net.n_iter_}")
    if refitted:
        change = (
            f"; test accuracy {accuracy_before_refit:.4f} -> {accuracy:.4f}"
            if accuracy_before_refit is not None and accuracy is not None
            else ""
        )
        say(f"refit: every W_l re-solved on the forward features in {refit_time:.2f} s{change}")
    elif args.refit:
        say(f"refit skipped: stopped by {reason} (a run resumed to its end with --refit refits)")
    say(
        "final test accuracy: "
        + ("n/a (no test set)" if accuracy is None else f"{accuracy:.4f}")
        + (" (refit weights)" if refitted else "")
    )
    per_iter = f" ({elapsed / net.n_iter_:.3f} s per iteration)" if net.n_iter_ else ""
    run_note = f", {done_iters} in this run" if start_iter else ""
    kind = (
        signal_name(stopped_by_signal)
        if stopped_by_signal
        else "convergence"
        if stopped_by_tol
        else "the iteration limit"
    )
    say(f"time to {kind}: {elapsed:.2f} s{per_iter}{run_note}")
    if net.rho_final != 1.0 and net.n_iter_ > 0:
        say(
            f"rho used: {_fmt_floats(net.rho_)} at first, {_fmt_floats(last_ridge)} "
            "at the last iteration"
        )
    else:
        say(f"rho used: {_fmt_floats(net.rho_)}")
    say(
        f"peak memory per rank: {peak / MB:.1f} MB (max over ranks; "
        f"predicted {(predicted + baseline_max) / MB:.1f} MB)"
    )
    if args.save is not None:
        say(f"model saved to {args.save}")
    if args.checkpoint is not None:
        say(f"checkpoint of iteration {net.n_iter_} in {args.checkpoint}")
    if stopped_by_signal:
        resume = (
            f"continue with --resume {args.checkpoint}"
            if args.checkpoint is not None
            else "no --checkpoint: this run cannot be resumed"
        )
        say(
            f"interrupted by {signal_name(stopped_by_signal)} after iteration {net.n_iter_}: "
            f"{resume}; exit status {128 + stopped_by_signal}"
        )
    sys.stdout.flush()
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m admm.train`` (and ``admm-train``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    signals = StopSignals()
    signals.install()
    try:
        with _mpi.abort_on_error(debug="--debug" in argv):
            args = parse_args(argv)
            done = run(args, signals)
    finally:
        signals.restore()
    # 128 + N is the shell's status of a process killed by signal N: the run
    # did stop because of it, but cleanly, with its checkpoint written.
    return 128 + int(signal.Signals[done["signal"]]) if done["signal"] else 0


if __name__ == "__main__":
    sys.exit(main())
