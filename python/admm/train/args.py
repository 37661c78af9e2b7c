"""The command line of ``python -m admm.train``: flags, their types, the presets.

Every rank parses the same command line, so a bad one raises the same
:class:`UsageError` on every rank (no MPI abort). The flags of
:class:`admm.ADMMNetwork`'s options are added by one function,
:func:`add_network_flags`, and read back as the constructor's keywords by
one, :func:`network_options`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import _mpi, config
from .._cli import add_data_flags
from ..presets import PRESET_ITERATIONS, PRESET_RECORDS, PRESET_REFIT, PRESETS
from .stop import TOL_PATIENCE

DEFAULT_LAYERS = (784, 500, 500, 10)
PROG = "python -m admm.train"


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


#: An integer >= 1 from the command line (the parameter table's parser).
positive_int = config.Integer(1).parse


def positive_float(text: str) -> float:
    """A finite float > 0 from the command line."""
    return config.Interval(lambda v: v > 0, "a positive number").parse(text)


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
    add_data_flags(d, "X_train (m, n_0), y_train (m,) and optionally X_test, y_test")
    d.add_argument(
        "--validation",
        type=config.Integer(0).parse,
        default=0,
        metavar="N",
        help="hold out the last N training images (of the data set's order) as a validation "
        "split, dealt over the ranks like the rest; they never enter training. Its accuracy "
        "is evaluated with the test accuracy (--eval-every) and printed and recorded as "
        "val_accuracy; --patience stops on it",
    )
    n = p.add_argument_group("network and ADMM")
    n.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="talk",
        help="a named configuration (admm/presets.py): "
        + ", ".join(f"{p.name} = {p.summary}" for p in PRESET_RECORDS.values()).replace("%", "%%")
        + ". Flags given explicitly override the preset, in any order",
    )
    add_network_flags(n)
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
    _add_stopping_flags(p.add_argument_group("stopping"))
    _add_output_flags(p.add_argument_group("output"))
    return p


def _add_stopping_flags(s: argparse._ArgumentGroup) -> None:
    """``--iterations``, ``--tol`` and ``--patience``."""
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
    s.add_argument(
        "--patience",
        type=positive_int,
        default=None,
        metavar="P",
        help="early stopping (needs --validation): stop once the validation accuracy has "
        "not improved on its best for P evaluations in a row (one every --eval-every "
        "iterations). The run keeps the weights of its last iteration, not of the best "
        "evaluation (then the --refit, if any, --save and the final test accuracy); None: "
        "no early stopping",
    )


def _add_output_flags(o: argparse._ArgumentGroup) -> None:
    """Where the run writes (metrics, model, checkpoints) and how it reports."""
    o.add_argument(
        "--eval-every",
        type=positive_int,
        default=1,
        metavar="E",
        help="test accuracy (and a progress line) every E iterations and at the last; "
        "counted from --refit-first when it is set, so that with E a multiple of "
        "--refit-every every evaluation comes after a refit",
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
    o.add_argument(
        "--resume-if-present",
        default=None,
        metavar="DIR",
        help="continue from the checkpoint in DIR when it holds one (its manifest), else "
        "start from scratch: one command line for a batch job's first submission and every "
        "requeue (with --checkpoint DIR, the run keeps checkpointing there)",
    )
    o.add_argument("--debug", action="store_true", help="print the Python traceback of an error")


def add_network_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--layers`` and a flag for every option of the parameter table
    (:func:`admm.config.add_flags`: names, types, defaults and help all come
    from :class:`admm.config.Config`)."""
    parser.add_argument(
        "--layers",
        type=layer_widths,
        default=",".join(map(str, DEFAULT_LAYERS)),
        metavar="N0,N1,...,NL",
        help="layer widths: input features, hidden widths, outputs (= number of classes)",
    )
    config.add_flags(parser)


def network_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of ``ADMMNetwork(args.layers, **options)``: every option of
    the parameter table among ``args``."""
    return config.options_from_args(args)


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
    if args.patience is not None and args.validation == 0:
        parser.error("--patience needs a validation split (--validation N)")
    try:  # the checks that involve several options (the flags checked each one)
        config.Config(**network_options(args))
    except ValueError as exc:
        parser.error(config.flag_names(str(exc)))
    if args.resume is not None and args.resume_if_present is not None:
        parser.error("--resume and --resume-if-present exclude each other: give one")
    return args
