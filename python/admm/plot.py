"""``python -m admm.plot RUN.jsonl [MORE.jsonl ...] -o curves.png``: curves of training runs.

Reads the metrics files written by ``python -m admm.train --metrics`` (JSON
lines: a ``start`` event, one object per iteration with ``iteration``,
``time_s``, ``objective``, ``residual``, ``test_accuracy``, ``peak_rss_mb``,
then a ``done`` event; ``null`` where a value was not measured or not finite)
and draws test accuracy, objective and residual against the iteration (top
row) and against the seconds of training (bottom row), every run overlaid
with its label (the file's stem unless given). Objective and residual use a
log scale. Runs on one process, no MPI, no display: matplotlib draws with its
Agg renderer (needs the ``plot`` extra: ``pip install 'admm[plot]'``). A
problem with a file ends the program with a one-line message and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._cli import report_error

__all__ = ["PlotError", "Run", "main", "plot_runs", "read_metrics"]

PROG = "python -m admm.plot"
#: The curves, in column order: (key in the metrics file, axis label, log scale).
CURVES = (
    ("test_accuracy", "test accuracy", False),
    ("objective", "objective", True),
    ("residual", "residual", True),
)
#: Size of the figure in inches and its resolution: 1200 x 700 pixels by default.
FIGSIZE = (12.0, 7.0)
DPI = 100


class PlotError(ValueError):
    """A problem with a metrics file or the plot; the message is one line naming the file."""


@dataclass
class Run:
    """The iterations of one metrics file as float arrays of equal length (NaN: not measured)."""

    path: Path
    label: str
    iteration: np.ndarray
    time_s: np.ndarray
    objective: np.ndarray
    residual: np.ndarray
    test_accuracy: np.ndarray
    start: dict[str, Any] | None = None
    done: dict[str, Any] | None = None


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def read_metrics(path: str | os.PathLike, label: str | None = None) -> Run:
    """Read one metrics file of ``python -m admm.train --metrics``. Local.

    ``label`` defaults to the file's stem. Raises :class:`PlotError` with a
    one-line message for a missing or unreadable file, a line that is not a
    JSON object, or a file without iteration records (not a metrics file).
    """
    path = Path(path)
    hint = "not a metrics file of python -m admm.train --metrics"
    if not path.exists():
        raise PlotError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise PlotError(f"{path}: cannot read: {reason}") from None
    rows: list[dict[str, Any]] = []
    start = done = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PlotError(f"{path}: line {number} is not JSON ({exc.msg}): {hint}") from None
        if not isinstance(record, dict):
            raise PlotError(f"{path}: line {number} is not a JSON object: {hint}")
        if record.get("event") == "start":
            start = start or record
        elif record.get("event") == "done":
            done = record
        elif "event" in record:
            continue  # an event of a newer program: not a curve
        elif isinstance(record.get("iteration"), int):
            rows.append(record)
        else:
            raise PlotError(f"{path}: line {number} has no iteration number: {hint}")
    if not rows:
        raise PlotError(f"{path}: no iteration records: {hint}")
    columns = {
        key: np.array([_number(r.get(key)) for r in rows])
        for key in ("iteration", "time_s", "objective", "residual", "test_accuracy")
    }
    return Run(
        path=path, label=path.stem if label is None else label, start=start, done=done, **columns
    )


def plot_runs(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    labels: Sequence[str] | None = None,
    *,
    figsize: tuple[float, float] = FIGSIZE,
    dpi: int = DPI,
) -> Path:
    """Draw the runs of the metrics files ``paths`` into the image file ``out``. Local.

    A 2 x 3 grid: test accuracy, objective and residual (log scale) against
    the iteration (top row) and the seconds of training (bottom row), one line
    per run, labelled ``labels[i]`` or the file's stem. The format follows the
    suffix of ``out`` (``.png``, ``.pdf``, ``.svg``, ...); the image is
    ``figsize * dpi`` pixels. Returns ``out`` as a Path. Raises
    :class:`PlotError` for a bad file or argument, ``OSError`` when ``out``
    cannot be written.
    """
    if not paths:
        raise PlotError("no metrics files given")
    if labels is not None and len(labels) != len(paths):
        raise PlotError(f"{len(labels)} labels given for {len(paths)} metrics files")
    runs = [read_metrics(p, None if labels is None else labels[i]) for i, p in enumerate(paths)]
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise PlotError("plotting needs matplotlib: pip install 'admm[plot]'") from None

    out = Path(out)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)  # draws without a display, whatever backend the user configured
    axes = fig.subplots(2, len(CURVES), squeeze=False)
    for row, (x_key, x_label) in enumerate((("iteration", "iteration"), ("time_s", "seconds"))):
        for col, (key, name, log) in enumerate(CURVES):
            ax = axes[row][col]
            positive = False
            for run in runs:
                x, y = getattr(run, x_key), getattr(run, key)
                keep = np.isfinite(x) & np.isfinite(y)
                marker = "." if keep.sum() < 30 else None
                ax.plot(x[keep], y[keep], marker=marker, label=run.label)
                positive |= bool((y[keep] > 0).any())
            if log and positive:
                ax.set_yscale("log")
            if x_key == "iteration":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(x_label)
            ax.set_ylabel(name)
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize="small")
    try:
        fig.savefig(out, dpi=dpi)
    except ValueError as exc:  # an unknown image format
        raise PlotError(f"{out}: {exc}") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m admm.plot``."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Plot test accuracy, objective and residual of runs written by "
        "`python -m admm.train --metrics RUN.jsonl`, against iterations and seconds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("metrics", nargs="+", metavar="RUN.jsonl", help="metrics files")
    p.add_argument("-o", "--output", default="curves.png", metavar="FILE", help="image file")
    p.add_argument(
        "--label",
        action="append",
        default=None,
        metavar="TEXT",
        help="label of a run, once per file in order (default: the file names without suffix)",
    )
    p.add_argument("--debug", action="store_true", help="print the Python traceback of an error")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m admm.plot`` (and ``admm-plot``)."""
    args = build_parser().parse_args(argv)
    try:
        out = plot_runs(args.metrics, args.output, args.label)
    except Exception as exc:  # any failure: one line, the traceback only with --debug
        return report_error("admm.plot", exc, args.debug)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
