"""What the command-line programs share: their data flags and one-line error report. Local."""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any

from .data import ARRAY_KEYS, TASKS


def report_error(prog: str, exc: BaseException, debug: bool = False) -> int:
    """Write ``exc`` to stderr as one line ``prog: error: ...`` and return the exit status 1.

    ``ValueError`` (``DataError``, ``PlotError``) and ``OSError`` messages are
    shown as they are, an ``OSError`` with a file as ``file: reason``, any
    other exception with its type; ``debug`` prints the traceback first.
    """
    if debug:
        traceback.print_exception(exc)
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, ValueError | OSError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    sys.stderr.write(f"{prog}: error: {' '.join(text.split())}\n")
    return 1


def array_names(text: str) -> dict[str, str]:
    """``--data-names`` (``X_train=images,y_train=labels``): the file's names of our arrays."""
    names = {}
    for part in filter(None, text.split(",")):
        key, sep, name = part.partition("=")
        if not sep or key not in ARRAY_KEYS or not name:
            raise argparse.ArgumentTypeError(
                f"must be KEY=NAME pairs separated by commas, KEY one of "
                f"{', '.join(ARRAY_KEYS)}, got {text!r}"
            )
        names[key] = name
    return names


def add_data_flags(parser: Any, files: str) -> None:
    """``--data``, ``--data-dir`` and ``--data-names`` on ``parser`` (a parser or
    group); ``files`` says which arrays a user file must hold."""
    parser.add_argument(
        "--data",
        default=None,
        metavar="NAME|PATH",
        help="mnist, fashion-mnist, mnist-sample (the 6000-image MNIST sample shipped "
        f"with the package) or an .npz, .h5 or .hdf5 file with {files}; None: full MNIST "
        "when its files are found locally, otherwise the embedded sample",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder with the IDX files, searched before $ADMM_DATA_DIR and the user "
        "cache (~/.cache/admm)",
    )
    parser.add_argument(
        "--data-names",
        type=array_names,
        default=None,
        metavar="KEY=NAME[,...]",
        help="the names of the arrays in an .npz or HDF5 file when they are not "
        f"{', '.join(ARRAY_KEYS)} (an HDF5 name may be a path such as train/images)",
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="auto",
        help="what a user file's y_train holds: class labels, or real targets (m,) or "
        "(m, T) for least squares (regression: scored by RMSE and R^2); auto: real values "
        "that are not all integers, or 2-D targets, are regression",
    )
