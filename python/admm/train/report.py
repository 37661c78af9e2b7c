"""What a run says: the header, a line per evaluated iteration, the summary,
and the events of ``--metrics`` (start, one per iteration, error, done).

Rank 0 prints and writes; the texts are built here from plain values, so
that the run loop (:mod:`admm.train.run`) only decides when. The two parts
that describe the network's options, :func:`describe_network` (the header's
lines) and :func:`run_config` (the configuration a checkpoint must match),
each read every option in one place.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import format_floats
from ..data import Dataset
from ..metrics import MB, MetricsWriter
from ..network import ADMMNetwork, NumericalError
from .stop import PatienceRule, RelativeChangeRule, Stop, signal_name

#: The column titles above the progress lines.
COLUMNS = f"{'iter':>6} {'time_s':>9} {'objective':>14} {'residual':>12} {'test_acc':>9}"
#: The same with a validation split (``--validation``).
COLUMNS_VALIDATION = f"{COLUMNS} {'val_acc':>9}"
#: The per-iteration columns for real targets: the test RMSE and R^2.
COLUMNS_REGRESSION = (
    f"{'iter':>6} {'time_s':>9} {'objective':>14} {'residual':>12} {'test_rmse':>10} "
    f"{'test_r2':>8}"
)


def columns(regression: bool, validation: bool) -> str:
    """The header of the per-iteration lines."""
    if regression:
        return COLUMNS_REGRESSION
    return COLUMNS_VALIDATION if validation else COLUMNS


@dataclass
class Memory:
    """The predicted memory per rank: the arrays of the largest block
    (:func:`admm.metrics.memory_breakdown`, bytes by kind) and the largest
    resident size before any data (interpreter, NumPy, MPI), over the ranks."""

    breakdown: dict[str, int]
    baseline: float

    @property
    def arrays(self) -> int:
        """Bytes of the arrays."""
        return sum(self.breakdown.values())

    @property
    def total_mb(self) -> float:
        """The prediction in MB: arrays and baseline."""
        return (self.arrays + self.baseline) / MB


@dataclass
class Outcome:
    """How a run ended, for the done event and the summary.

    ``start_iter`` is the iteration the run started from (that of a resumed
    checkpoint), ``elapsed`` the training time of all iterations (seconds),
    ``peak`` the largest resident size over the ranks (bytes); the accuracies
    are on the whole test set (None: no test set); ``refit_time`` is the
    refit's seconds when ``refitted``; ``val_accuracy`` is the final one on
    the validation split (None: no ``--validation``), ``patience`` the
    ``--patience`` rule, if any.
    """

    stop: Stop
    reason: str
    start_iter: int
    accuracy: float | None
    accuracy_before_refit: float | None
    refit_time: float | None
    refitted: bool
    elapsed: float
    peak: float
    val_accuracy: float | None = None
    patience: PatienceRule | None = None
    #: Real targets: the test RMSE and R^2 at the end (after the refit) and before it.
    scores: tuple[float, float] | None = None
    scores_before_refit: tuple[float, float] | None = None
    #: Whether the targets are real values (scores instead of accuracies).
    regression: bool = False


def describe_network(net: ADMMNetwork, args: argparse.Namespace) -> list[str]:
    """The header's lines on the network and its options (as printed): the
    fragments of the parameter table (:meth:`admm.config.Config.describe`),
    with the layers, the preset and the refit, which are the program's."""
    line1, line2, line3 = (net.config.describe(line) for line in (1, 2, 3))
    return [
        "  " + ", ".join([f"layers {'-'.join(map(str, net.layers))}", *line1]),
        "  " + ", ".join(line2),
        f"  preset {args.preset}: "
        + ", ".join([*line3, f"refit {'yes' if args.refit else 'no'}"]),
    ]


def run_config(net: ADMMNetwork, dataset: Dataset) -> dict[str, Any]:
    """The configuration a checkpoint records and a resume must match:
    everything that shapes the trajectory (the table's
    :meth:`admm.config.Config.run_config`), and the data set's sizes."""
    return {
        "layers": list(net.layers),
        **net.config.run_config(len(net.layers) - 1),
        # The data set itself is identified by each rank's block checksum
        # (rank_info), so a moved or renamed file can still be resumed.
        "n_train": dataset.n_train,
        "n_features": dataset.n_features,
        "n_classes": dataset.n_classes,
    }


def header_lines(
    args: argparse.Namespace,
    net: ADMMNetwork,
    dataset: Dataset,
    samples: np.ndarray,
    n_test: int,
    blas_threads: int | None,
    rule: RelativeChangeRule | None,
    memory: Memory,
) -> list[str]:
    """What the run prints before training. ``samples``: every rank's number of
    training samples; ``n_test``: the test samples in all (0: no test set);
    ``blas_threads``: the BLAS threads per rank that the program set (None:
    the user's or the BLAS's choice)."""
    size = len(samples)
    lines = [
        f"admm.train: {size} rank{'s' if size > 1 else ''}, "
        f"{int(samples.min())}-{int(samples.max())} training samples per rank "
        f"({dataset.n_train} in all), {n_test} test samples"
        + (f", {args.validation} validation samples" if args.validation else ""),
        f"  data: {dataset.name} ({dataset.source})",
    ]
    if dataset.task == "regression":
        lines.append(
            f"  task: regression on {dataset.n_targets} real target"
            f"{'s' if dataset.n_targets > 1 else ''} (scored by the test RMSE and R^2)"
        )
    if blas_threads is not None:
        lines.append(
            f"  BLAS threads per rank: {blas_threads} (set by admm.train for the ranks "
            "sharing this node's cores; set OPENBLAS_NUM_THREADS to choose)"
        )
    lines += describe_network(net, args)
    if args.resume is not None:
        lines.append(f"  resumed from {args.resume} at iteration {net.n_iter_}")
    lines += [
        f"  iterations {args.iterations}, "
        f"stop {'on ' + rule.describe() if rule else 'at the iteration limit only'}",
        f"  predicted memory per rank: {memory.total_mb:.1f} MB "
        f"({memory.arrays / MB:.1f} MB of arrays + {memory.baseline / MB:.1f} MB interpreter "
        "and libraries at start)",
    ]
    return lines


def start_event(
    args: argparse.Namespace,
    config: dict[str, Any],
    dataset: Dataset,
    samples: np.ndarray,
    n_test: int,
    memory: Memory,
) -> dict[str, Any]:
    """The metrics' first event: the configuration, the data and the prediction."""
    return {
        "event": "start",
        **config,
        "rho": args.rho,
        "tol": args.tol,
        "iterations": args.iterations,
        "eval_every": args.eval_every,
        "ranks": len(samples),
        "data": dataset.name,
        "data_source": dataset.source,
        "n_test": n_test,
        "samples_per_rank": [int(v) for v in samples],
        "predicted_bytes_per_rank": memory.arrays,
        "predicted_breakdown": memory.breakdown,
        "baseline_rss_mb": memory.baseline / MB,
        "resume": args.resume,
        # Not in config: the refit comes after the last checkpoint, so a
        # run may be resumed with or without it.
        "refit": args.refit,
        **({"validation": args.validation, "patience": args.patience} if args.validation else {}),
    }


def iteration_event(
    record: dict[str, Any],
    peak: float,
    test_accuracy: float | None = None,
    validation: bool = False,
) -> dict[str, Any]:
    """The metrics' event of one iteration (``record``: the network's history
    entry; ``peak``: the largest resident size over the ranks, bytes). Without
    a ``validation`` split the record's ``val_accuracy`` is the test
    accuracy; with one it is the split's, recorded as ``val_accuracy``
    beside ``test_accuracy``."""
    event = {
        "iteration": record["iteration"],
        "time_s": record["time_s"],
        "objective": record["objective"],
        "residual": record["residual"],
        "test_accuracy": test_accuracy if validation else record["val_accuracy"],
        "peak_rss_mb": peak / MB,
    }
    if validation:
        event["val_accuracy"] = record["val_accuracy"]
    return event


def regression_iteration_event(
    record: dict[str, Any], peak: float, scores: tuple[float, float] | None
) -> dict[str, Any]:
    """The metrics' event of one iteration on real targets: ``test_rmse`` and
    ``test_r2`` (None when not evaluated) instead of ``test_accuracy``."""
    rmse, r2 = scores if scores is not None else (None, None)
    return {
        "iteration": record["iteration"],
        "time_s": record["time_s"],
        "objective": record["objective"],
        "residual": record["residual"],
        "test_rmse": rmse,
        "test_r2": r2,
        "peak_rss_mb": peak / MB,
    }


def regression_progress_line(record: dict[str, Any], scores: tuple[float, float] | None) -> str:
    """The line of one iteration on real targets, under :data:`COLUMNS_REGRESSION`."""
    cells = f"{'-':>10} {'-':>8}" if scores is None else f"{scores[0]:10.4e} {scores[1]:8.4f}"
    return (
        f"{record['iteration']:6d} {record['time_s']:9.2f} {record['objective']:14.6e} "
        f"{record['residual']:12.4e} {cells}"
    )


def _accuracy_cell(acc: float | None) -> str:
    return f"{'-' if acc is None else f'{acc:.4f}':>9}"


def progress_line(
    record: dict[str, Any], test_accuracy: float | None = None, validation: bool = False
) -> str:
    """The line of one iteration, under :data:`COLUMNS` (:data:`COLUMNS_VALIDATION`
    with a ``validation`` split; see :func:`iteration_event`)."""
    line = (
        f"{record['iteration']:6d} {record['time_s']:9.2f} {record['objective']:14.6e} "
        f"{record['residual']:12.4e} "
    )
    if not validation:
        return line + _accuracy_cell(record["val_accuracy"])
    return line + _accuracy_cell(test_accuracy) + " " + _accuracy_cell(record["val_accuracy"])


def error_event(exc: NumericalError, last_checkpoint: int) -> dict[str, Any]:
    """The metrics' event of a numerical failure (``last_checkpoint``: -1 for none)."""
    return {
        "event": "error",
        "error": "numerical",
        "iteration": exc.iteration,
        "layer": exc.layer,
        "message": str(exc),
        "last_checkpoint": last_checkpoint if last_checkpoint >= 0 else None,
    }


def done_event(
    args: argparse.Namespace, net: ADMMNetwork, outcome: Outcome, memory: Memory
) -> dict[str, Any]:
    """The metrics' last event, also what :func:`admm.train.run` returns."""
    stop = outcome.stop
    return {
        "event": "done",
        "iterations": net.n_iter_,
        "stop_reason": stop.key,
        "signal": signal_name(stop.signum) if stop.signum else None,
        "stop_rule": outcome.reason,
        **_final_scores(outcome),
        "refit": outcome.refitted,
        "refit_time_s": outcome.refit_time,
        "time_s": outcome.elapsed,
        "peak_rss_mb": outcome.peak / MB,
        "predicted_mb": memory.total_mb,
        "rho": list(net.rho_ or ()),
        "rho_last": list(_last_ridge(net)),
        "model": args.save if net.n_iter_ else None,
        "checkpoint": args.checkpoint if net.n_iter_ else None,
        **(_validation_summary(outcome) if args.validation else {}),
    }


def _final_scores(outcome: Outcome) -> dict[str, Any]:
    """The done event's test scores: the accuracy, or for real targets the RMSE
    and R^2, at the end and before the refit."""
    if not outcome.regression:
        return {
            "final_test_accuracy": outcome.accuracy,
            "test_accuracy_before_refit": outcome.accuracy_before_refit,
        }
    final = outcome.scores or (None, None)
    before = outcome.scores_before_refit or (None, None)
    return {
        "final_test_rmse": final[0],
        "final_test_r2": final[1],
        "test_rmse_before_refit": before[0],
        "test_r2_before_refit": before[1],
    }


def _validation_summary(outcome: Outcome) -> dict[str, Any]:
    """The done event's keys of a validation split: its final accuracy (after
    the refit, if any) and, with ``--patience``, its best evaluation."""
    patience = outcome.patience
    return {
        "final_val_accuracy": outcome.val_accuracy,
        "best_val_accuracy": patience.best if patience is not None else None,
        "best_val_iteration": patience.best_iteration if patience is not None else None,
    }


def _last_ridge(net: ADMMNetwork) -> Sequence[float]:
    return net.ridges(net.n_iter_ - 1) if net.rho_ is not None else ()


def summary_lines(
    args: argparse.Namespace, net: ADMMNetwork, outcome: Outcome, memory: Memory
) -> list[str]:
    """What the run prints after training."""
    stop, accuracy = outcome.stop, outcome.accuracy
    lines = [f"stopped by {outcome.reason} after iteration {net.n_iter_}"]
    if outcome.refitted:
        before = outcome.accuracy_before_refit
        change = (
            f"; test accuracy {before:.4f} -> {accuracy:.4f}"
            if before is not None and accuracy is not None
            else ""
        )
        if outcome.scores is not None and outcome.scores_before_refit is not None:
            change = f"; test RMSE {outcome.scores_before_refit[0]:.4e} -> {outcome.scores[0]:.4e}"
        lines.append(
            "refit: every W_l re-solved on the forward features in "
            f"{outcome.refit_time:.2f} s{change}"
        )
    elif args.refit:
        lines.append(
            f"refit skipped: stopped by {outcome.reason} "
            "(a run resumed to its end with --refit refits)"
        )
    if outcome.regression:
        scores = outcome.scores
        lines.append(
            "final test RMSE and R^2: "
            + ("n/a (no test set)" if scores is None else f"{scores[0]:.4e}, {scores[1]:.4f}")
            + (" (refit weights)" if outcome.refitted else "")
        )
    else:
        lines.append(
            "final test accuracy: "
            + ("n/a (no test set)" if accuracy is None else f"{accuracy:.4f}")
            + (" (refit weights)" if outcome.refitted else "")
        )
    if outcome.val_accuracy is not None:
        lines.append(f"final validation accuracy: {outcome.val_accuracy:.4f}")
    elapsed, done_iters = outcome.elapsed, net.n_iter_ - outcome.start_iter
    per_iter = f" ({elapsed / net.n_iter_:.3f} s per iteration)" if net.n_iter_ else ""
    run_note = f", {done_iters} in this run" if outcome.start_iter else ""
    lines.append(f"time to {stop.kind()}: {elapsed:.2f} s{per_iter}{run_note}")
    if net.rho_final != 1.0 and net.n_iter_ > 0:
        lines.append(
            f"rho used: {format_floats(net.rho_)} at first, {format_floats(_last_ridge(net))} "
            "at the last iteration"
        )
    else:
        lines.append(f"rho used: {format_floats(net.rho_)}")
    lines.append(
        f"peak memory per rank: {outcome.peak / MB:.1f} MB (max over ranks; "
        f"predicted {memory.total_mb:.1f} MB)"
    )
    if net.n_iter_ == 0:  # stopped by a signal while the run started
        lines.append(
            f"interrupted by {signal_name(stop.signum)} before the first iteration: nothing "
            f"was trained or written; exit status {128 + stop.signum}"
        )
        return lines
    if args.save is not None:
        lines.append(f"model saved to {args.save}")
    if args.checkpoint is not None:
        lines.append(f"checkpoint of iteration {net.n_iter_} in {args.checkpoint}")
    if stop.signum:
        resume = (
            f"continue with --resume {args.checkpoint}"
            if args.checkpoint is not None
            else "no --checkpoint: this run cannot be resumed"
        )
        lines.append(
            f"interrupted by {signal_name(stop.signum)} after iteration {net.n_iter_}: "
            f"{resume}; exit status {128 + stop.signum}"
        )
    return lines


def live_line(
    record: dict[str, Any],
    total: int,
    accuracy: float | None,
    scores: tuple[float, float] | None = None,
) -> str:
    """The live progress line: iteration i of N, seconds per iteration, time
    left at that pace, and the last test accuracy (for real targets, the last
    test RMSE and R^2)."""
    it = record["iteration"]
    per = record["time_s"] / it if it else 0.0
    left = per * max(total - it, 0)
    text = f"iteration {it} of {total}, {per:.2f} s per iteration, {left:.0f} s left"
    if scores is not None:
        return text + f", test RMSE {scores[0]:.4g}, R^2 {scores[1]:.4f}"
    return text + ("" if accuracy is None else f", test accuracy {accuracy:.4f}")


class Report:
    """Prints on rank 0 and writes the metrics (rank 0's ``writer``, or None). Local.

    When rank 0's output is a terminal, a live progress line (:func:`live_line`)
    is redrawn in place after every iteration, below the permanent lines; when
    it is redirected to a file, as in a batch job's log, only the permanent
    lines are written, as always.
    """

    def __init__(self, rank: int, writer: MetricsWriter | None, stream: Any = None) -> None:
        self.printing = rank == 0
        self.writer = writer
        self.stream = sys.stdout if stream is None else stream
        self.live = self.printing and bool(getattr(self.stream, "isatty", lambda: False)())
        self._live_width = 0  # characters of the live line on screen (0: none)

    def say(self, *lines: str, flush: bool = False) -> None:
        """Print ``lines`` on rank 0 (above the live line, which is cleared first)."""
        if self.printing:
            self._clear_live()
            for line in lines:
                print(line, file=self.stream, flush=flush)

    def progress(self, text: str) -> None:
        """Redraw the live progress line on a terminal (nothing otherwise)."""
        if not self.live:
            return
        self.stream.write("\r" + text.ljust(self._live_width))
        self.stream.flush()
        self._live_width = len(text)

    def _clear_live(self) -> None:
        if self._live_width:
            self.stream.write("\r" + " " * self._live_width + "\r")
            self._live_width = 0

    def event(self, record: dict[str, Any], last: bool = False) -> None:
        """Write ``record`` to the metrics, if any; ``last`` closes the file."""
        if self.writer is not None:
            self.writer.write(record)
            if last:
                self.writer.close()
