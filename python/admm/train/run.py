"""The run of ``python -m admm.train``, from the checks of its inputs to its summary.

Every function here is collective on the run's communicator unless it says
Local: all ranks call them in the same order. The steps of :func:`run`:

1. :func:`check_outputs`: the files to write and the data to find, agreed
   before any other collective, so a bad path stops every rank with one
   message (exit status 2);
2. :func:`load_data`, :func:`split_validation`, :func:`build_network`:
   this rank's block of samples (and of the ``--validation`` split) and the
   network, both checked against each other;
3. :func:`predict_memory`: the prediction of the header;
4. :func:`resume` from ``--resume``'s checkpoint;
5. :class:`Training`: ``fit`` with a callback for the progress, the
   metrics, the checkpoints and the stop (``--tol``, signals); then the final
   checkpoint (the plain ADMM state, so that ``--resume`` continues the same
   trajectory), the refit (``--refit``; not after a signal: the run is
   unfinished and keeps the weights of its last iteration), the model
   (``--save``) and the final test accuracy, of the refit weights;
6. the done event and the summary (:mod:`admm.train.report`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _mpi, losses
from .._checks import deskew_mismatch, width_mismatch
from .._files import unwritable_reason
from ..checkpoint import (
    MANIFEST,
    array_sha256,
    check_writable_dir,
    load_checkpoint,
    save_checkpoint,
)
from ..data import Dataset, block_range, load_dataset, locate
from ..metrics import (
    MetricsWriter,
    memory_breakdown,
    peak_rss_bytes,
    regression_scores,
    regression_sums,
)
from ..network import ADMMNetwork, NumericalError
from . import report
from .args import network_options, parse_args
from .report import Memory, Outcome, Report
from .stop import PatienceRule, RelativeChangeRule, Stop, StopSignals


def check_output_file(path: str, flag: str) -> str | None:
    """Why a file cannot be written at ``path`` (probing its folder), or None. Local."""
    if os.path.isdir(path):
        return f"{flag} {path} is a folder, not a file"
    folder = os.path.dirname(os.path.abspath(path))
    reason = unwritable_reason(folder)
    return reason and f"cannot write {flag} {path}: {reason} ({folder})"


def check_outputs(args: argparse.Namespace, comm: _mpi.Communicator) -> MetricsWriter | None:
    """Check the outputs and find the data; returns rank 0's metrics writer
    (None elsewhere, or without ``--metrics``). Collective.

    A problem on any rank raises on every rank, before any other collective.
    """
    messages: list[str | None] = []
    writer = None
    if comm.rank == 0:
        if args.save is not None:
            messages.append(check_output_file(args.save, "--save"))
        if args.metrics is not None:
            messages.append(check_output_file(args.metrics, "--metrics"))
            if messages[-1] is None:
                writer, message = _mpi.attempt(lambda: MetricsWriter(args.metrics))
                messages.append(message and f"cannot write --metrics {args.metrics}: {message}")
    if args.checkpoint is not None:
        messages.append(check_writable_dir(args.checkpoint))
    if comm.rank == 0 and args.data in ("mnist", "fashion-mnist"):
        # Rank 0 finds (or downloads) the files first, so N ranks do not
        # download at once; the others then find them, unless their cache is
        # node-local, where they download their own copy.
        _, message = _mpi.attempt(lambda: locate(args.data, args.data_dir, download=True))
        messages.append(message)
    comm.raise_if_any("; ".join(m for m in messages if m) or None)
    return writer


def load_data(args: argparse.Namespace, comm: _mpi.Communicator) -> Dataset:
    """This rank's block of ``--data``, checked against ``--layers`` and ``--deskew``. Collective."""
    dataset = comm.agreed(
        lambda: load_dataset(
            args.data,
            args.data_dir,
            rank=comm.rank,
            size=comm.size,
            dtype=args.dtype,
            download=True,
            block=args.block_size if args.deterministic else 1,
            names=args.data_names,
            task=args.task,
        )
    )
    if dataset.task == "regression":
        comm.raise_if_any(regression_mismatch(args, dataset))
    else:
        comm.raise_if_any(
            width_mismatch(args.layers, dataset.n_features, dataset.n_classes, args.loss)
        )
    comm.raise_if_any(deskew_mismatch(args.deskew, dataset.n_features))
    return dataset


def regression_mismatch(args: argparse.Namespace, dataset: Dataset) -> str | None:
    """Why the flags cannot fit a data set of real targets, or None. Local."""
    if args.loss != "squared":
        return (
            f"the data holds real targets (regression), which need --loss squared, not "
            f"--loss {args.loss} (or --task classification for integer labels)"
        )
    if args.validation:
        return "--validation scores accuracy: it needs class labels, not real targets"
    return width_mismatch(
        args.layers, dataset.n_features, dataset.n_targets, "squared", what="targets"
    )


@dataclass
class Validation:
    """This rank's block of the validation split (``--validation``) and its
    size over all ranks."""

    X: np.ndarray
    labels: np.ndarray
    n: int


def split_validation(
    args: argparse.Namespace, comm: _mpi.Communicator, dataset: Dataset
) -> tuple[Dataset, Validation | None]:
    """This rank's training block and validation block after holding out the
    last ``--validation`` training samples. Collective.

    Of the ``n`` training samples in the data set's order, the first
    ``n - N`` train and the last ``N`` validate, each dealt over the ranks as
    :func:`admm.data.block_range` deals a data set (the training part in
    blocks of ``--block-size`` with ``--deterministic``), so the result does
    not depend on how the loader had split the samples; the rows move
    between ranks in one exchange per array. The returned data set is
    ``dataset`` with its training arrays, ``n_train`` and ``train_range``
    those of the training part.
    """
    n_val = args.validation
    if n_val == 0:
        return dataset, None
    n = dataset.n_train
    comm.raise_if_any(
        None
        if n_val < n
        else f"--validation {n_val} leaves no training samples (the data set has {n})"
    )
    block = args.block_size if args.deterministic else 1
    held = [block_range(n, r, comm.size, block) for r in range(comm.size)]
    train = [block_range(n - n_val, r, comm.size, block) for r in range(comm.size)]
    val = [
        (n - n_val + a, n - n_val + b)
        for a, b in (block_range(n_val, r, comm.size) for r in range(comm.size))
    ]

    def overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
        return max(0, min(a[1], b[1]) - max(a[0], b[0]))

    start = held[comm.rank][0]

    def moved(parts: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        send = [overlap(held[comm.rank], part) for part in parts]
        recv = [overlap(h, parts[comm.rank]) for h in held]
        first = max(start, parts[0][0]) - start if sum(send) else 0
        rows = slice(first, first + sum(send))
        return (
            comm.exchange_rows(dataset.X_train[rows], send, recv),
            comm.exchange_rows(dataset.y_train[rows], send, recv),
        )

    X, y = moved(train)
    X_val, y_val = moved(val)
    kept = dataclasses.replace(
        dataset, X_train=X, y_train=y, n_train=n - n_val, train_range=train[comm.rank]
    )
    return kept, Validation(X_val, y_val, n_val)


def build_network(args: argparse.Namespace, comm: _mpi.Communicator) -> ADMMNetwork:
    """The network the flags describe (a bad option fails on every rank). Collective."""
    return comm.agreed(lambda: ADMMNetwork(args.layers, **network_options(args)))


@dataclass
class Data:
    """This rank's training and test samples as the network takes them.

    ``y`` are the training targets the loss makes of ``labels``
    (:meth:`admm.losses.Loss.encode_labels`: the labels themselves for the
    hinge loss, their one-hot rows for least squares); ``X_test`` and
    ``y_test`` are None without a test set; ``validation`` is None without
    ``--validation``.
    """

    dataset: Dataset
    X: np.ndarray
    labels: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    validation: Validation | None = None

    @classmethod
    def of(
        cls, args: argparse.Namespace, dataset: Dataset, validation: Validation | None = None
    ) -> Data:
        """The samples of ``dataset`` for the loss of ``args``. Local."""
        X, labels = dataset.X_train, dataset.y_train
        loss = losses.get(args.loss)
        if dataset.task == "regression":  # real targets: the loss takes them as they are
            y = labels
        else:
            y = loss.encode_labels(labels, args.layers[-1], np.dtype(args.dtype))
        has_test = dataset.X_test is not None and dataset.n_test > 0
        return cls(
            dataset,
            X,
            labels,
            y,
            dataset.X_test if has_test else None,
            dataset.y_test if has_test else None,
            validation,
        )

    @property
    def regression(self) -> bool:
        """Whether the targets are real values (scored by RMSE and R^2). Local."""
        return self.dataset.task == "regression"

    @property
    def n_test(self) -> int:
        """Test samples in all ranks' blocks (0: no test set). Local."""
        return self.dataset.n_test if self.X_test is not None else 0

    @property
    def n_test_local(self) -> int:
        """Test samples in this rank's block. Local."""
        return self.X_test.shape[0] if self.X_test is not None else 0


def predict_memory(
    args: argparse.Namespace,
    comm: _mpi.Communicator,
    net: ADMMNetwork,
    data: Data,
    baseline: float,
) -> tuple[Memory, np.ndarray]:
    """The memory prediction per rank, and every rank's number of training
    samples (``baseline``: this rank's resident bytes before the data). Collective."""
    samples = comm.gather_values(float(data.X.shape[0]))
    # The --validation block is held and scored like the test block.
    held_out = data.n_test_local + (0 if data.validation is None else data.validation.X.shape[0])
    n_test_max = int(comm.max_value(float(held_out)))
    breakdown = memory_breakdown(
        args.layers,
        int(samples.max()),
        args.dtype,
        args.loss,
        n_test_max,
        center=args.center,
        deskew=args.deskew,
        refit=args.refit or net.config.refit_every > 0,
        ridge_decay=net.rho_final != 1.0,
        input_features=not net.config.refit_input_layer,
        readout=net.config.readout_iterations > 0,
        transform=net.config.input_power != 1.0 or net.config.normalize_inputs,
        spectral=net.config.spectral_power > 0,
    )
    return Memory(breakdown, comm.max_value(float(baseline))), samples


def checkpoint_identity(args: argparse.Namespace, data: Data) -> dict[str, Any]:
    """What a checkpoint records of this rank's block (empty when none is
    written or read: the checksum reads every sample). Local."""
    if args.checkpoint is None and args.resume is None:
        return {}
    return {
        "train_range": list(data.dataset.train_range),
        "sha256": array_sha256(data.X, data.labels),
    }


def find_checkpoint(args: argparse.Namespace, comm: _mpi.Communicator) -> str | None:
    """``--resume``'s folder, or ``--resume-if-present``'s when it holds a
    checkpoint (its manifest; rank 0 looks, every rank follows). Collective."""
    if args.resume_if_present is None:
        return args.resume
    present = os.path.exists(os.path.join(args.resume_if_present, MANIFEST))
    return args.resume_if_present if comm.agree(present)[0] else None


def pending_signal(comm: _mpi.Communicator, signals: StopSignals) -> int:
    """The signal any rank received so far (0: none), on every rank. Collective."""
    return int(comm.max_value(float(signals.signum)))


def resume(
    args: argparse.Namespace,
    comm: _mpi.Communicator,
    net: ADMMNetwork,
    data: Data,
    config: dict[str, Any],
    rank_info: dict[str, Any],
) -> None:
    """Put the state of ``--resume``'s checkpoint into ``net``. Collective."""
    state = load_checkpoint(args.resume, comm, config, rank_info)
    comm.agreed(lambda: net.set_state(state, data.X, data.y))


class Training:
    """``fit`` with the program's callback, and the end of the run. Collective.

    Owns what the callback learns as training goes: the last checkpoint
    written and why training stopped.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        comm: _mpi.Communicator,
        net: ADMMNetwork,
        data: Data,
        out: Report,
        signals: StopSignals,
        config: dict[str, Any],
        rank_info: dict[str, Any],
    ) -> None:
        self.args, self.comm, self.net, self.data, self.out = args, comm, net, data, out
        self.signals = signals
        self.config, self.rank_info = config, rank_info
        self.rule = RelativeChangeRule(args.tol, args.warmup) if args.tol is not None else None
        self.patience = PatienceRule(args.patience) if args.patience is not None else None
        self.stop = Stop()
        self.last_checkpoint = -1
        self.last_accuracy: float | None = None
        self.last_scores: tuple[float, float] | None = None  # regression: RMSE, R^2

    def checkpoint(self) -> None:
        """Write the state of the last iteration to ``--checkpoint``. Collective."""
        save_checkpoint(
            self.args.checkpoint, self.comm, self.net.get_state(), self.config, self.rank_info
        )
        self.last_checkpoint = self.net.n_iter_

    def callback(self, network: ADMMNetwork, record: dict) -> bool:
        """After every iteration: the stop, the checkpoint, the event, the line. Collective."""
        args = self.args
        # One small Allreduce: the peak memory and whether any rank got a signal.
        peak, signum = self.comm.max_values([float(peak_rss_bytes()), float(self.signals.signum)])
        it = record["iteration"]
        stop = self.rule is not None and self.rule(network.history)
        self.stop.by_tol = stop
        if self.data.regression:
            return self.regression_callback(record, peak, signum, stop)
        evaluated = record["val_accuracy"] is not None
        # With a validation split, fit evaluates it; the test set is scored here.
        validated = self.data.validation is not None
        test = self.test_accuracy() if validated and evaluated else None
        if (
            self.patience is not None
            and evaluated
            and self.patience.update(it, record["val_accuracy"])
            and not stop
        ):
            self.stop.by_patience = self.patience
            stop = True
        stop = self.signal_and_checkpoint(it, signum, stop)
        self.out.event(report.iteration_event(record, peak, test, validated))
        if evaluated or (
            self.data.X_test is None
            and not validated
            and (self.net.config.evaluation_due(it, args.eval_every) or it == args.iterations)
        ):
            self.out.say(report.progress_line(record, test, validated), flush=True)
        shown = test if validated else record["val_accuracy"]  # the test accuracy, if scored
        if shown is not None:
            self.last_accuracy = shown
        self.out.progress(report.live_line(record, args.iterations, self.last_accuracy))
        return stop

    def signal_and_checkpoint(self, it: int, signum: float, stop: bool) -> bool:
        """Stop on a signal any rank got (unless already stopping) and write
        the checkpoint that is due; returns whether to stop. Collective."""
        if signum and not stop:
            self.stop.signum = int(signum)
            stop = True
        if self.args.checkpoint is not None and it % self.args.checkpoint_every == 0:
            self.checkpoint()
        return stop

    def regression_callback(self, record: dict, peak: float, signum: float, stop: bool) -> bool:
        """:meth:`callback` for real targets: the test set scored by RMSE and R^2
        every ``--eval-every`` iterations and at the last. Collective."""
        args, it = self.args, record["iteration"]
        stop = self.signal_and_checkpoint(it, signum, stop)
        due = self.net.config.evaluation_due(it, args.eval_every) or it == args.iterations or stop
        scores = self.test_regression() if due else None
        self.out.event(report.regression_iteration_event(record, peak, scores))
        if due:
            self.out.say(report.regression_progress_line(record, scores), flush=True)
        self.last_scores = scores or self.last_scores
        self.out.progress(report.live_line(record, args.iterations, None, self.last_scores))
        return stop

    def test_regression(self) -> tuple[float, float] | None:
        """Test RMSE and R^2 of the current weights over all ranks (None: no
        test set). Collective."""
        X_test, y_test = self.data.X_test, self.data.y_test
        if X_test is None or y_test is None:
            return None
        sums = regression_sums(self.net.decision_function(X_test), y_test)
        return regression_scores(self.comm.sum_values(sums))

    def numerical_failure(self, exc: NumericalError) -> NumericalError:
        """``exc`` saying what was kept, after an ``error`` event. Every rank
        is here; nothing of the failed state (or refit) is written."""
        args = self.args
        if args.checkpoint is not None and self.last_checkpoint >= 0:
            kept = (
                f"the checkpoint of iteration {self.last_checkpoint} in {args.checkpoint} is kept"
            )
        elif args.resume is not None:
            kept = f"no new checkpoint; {args.resume} is unchanged"
        else:
            kept = "no checkpoint was written" + (
                "" if args.checkpoint is not None else " (no --checkpoint)"
            )
        self.out.event(report.error_event(exc, self.last_checkpoint), last=True)
        return NumericalError(f"{exc}; {kept}", exc.iteration, exc.layer)

    def _accuracy(self, X: np.ndarray, labels: np.ndarray) -> float:
        correct = float(np.sum(self.net.predict(X) == labels))
        total = self.comm.sum_values([correct, float(X.shape[0])])
        return float(total[0] / total[1])

    def test_accuracy(self) -> float | None:
        """Accuracy of the current weights on all ranks' test blocks. Collective."""
        X_test, y_test = self.data.X_test, self.data.y_test
        if X_test is None or y_test is None:
            return None
        return self._accuracy(X_test, y_test)

    def val_accuracy(self) -> float | None:
        """Accuracy of the current weights on the validation split (None: no
        ``--validation``). Collective."""
        validation = self.data.validation
        return None if validation is None else self._accuracy(validation.X, validation.labels)

    def fit(self) -> None:
        """Train up to ``--iterations`` (none when a resumed checkpoint is there). Collective."""
        args, data = self.args, self.data
        if self.net.n_iter_ >= args.iterations:
            return
        X_val, y_val = data.X_test, data.y_test
        if data.validation is not None:
            X_val, y_val = data.validation.X, data.validation.labels
        if data.regression:  # fit scores accuracy; the callback scores RMSE and R^2
            X_val = y_val = None
        try:
            self.net.fit(
                data.X,
                data.y,
                iterations=args.iterations,
                X_val=X_val,
                y_val=y_val,
                callback=self.callback,
                eval_every=args.eval_every,
                warm_start=args.resume is not None,
            )
        except NumericalError as exc:
            raise self.numerical_failure(exc) from None

    def finish(self, start_iter: int) -> Outcome:
        """The final checkpoint, the refit and the model, after :meth:`fit`. Collective."""
        args, net, comm = self.args, self.net, self.comm
        history = net.history
        # Stopped by a signal before the first iteration of a new run: no
        # state, so nothing to checkpoint, refit, save or score.
        untrained = net.n_iter_ == 0
        accuracy = None
        if history and self.data.validation is None:
            accuracy = history[-1]["val_accuracy"]  # fit's validation is the test set
        if accuracy is None and not untrained and not self.data.regression:
            accuracy = self.test_accuracy()
        scores = self.test_regression() if self.data.regression and not untrained else None
        val_accuracy = None if untrained else self.val_accuracy()
        if args.checkpoint is not None and self.last_checkpoint != net.n_iter_ and not untrained:
            self.checkpoint()
        # After the final checkpoint (the plain ADMM state), before the model.
        refitted = args.refit and not self.stop.signum
        accuracy_before_refit: float | None = None
        scores_before_refit: tuple[float, float] | None = None
        refit_time: float | None = None
        if refitted:
            started = time.perf_counter()
            try:
                net.refit()
            except NumericalError as exc:
                raise self.numerical_failure(exc) from None
            refit_time = comm.max_value(time.perf_counter() - started)
            if self.data.regression:
                scores_before_refit, scores = scores, self.test_regression()
            else:
                accuracy_before_refit, accuracy = accuracy, self.test_accuracy()
            val_accuracy = self.val_accuracy()
        # Agreed, so a full disk on rank 0 ends every rank with one message.
        comm.agreed(
            lambda: (
                net.save(args.save)
                if comm.rank == 0 and args.save is not None and not untrained
                else None
            )
        )
        return Outcome(
            stop=self.stop,
            reason=self.stop.reason(self.rule, start_iter, args.iterations),
            start_iter=start_iter,
            accuracy=accuracy,
            accuracy_before_refit=accuracy_before_refit,
            refit_time=refit_time,
            refitted=refitted,
            elapsed=history[-1]["time_s"] if history else 0.0,
            peak=comm.max_value(float(peak_rss_bytes())),
            val_accuracy=val_accuracy,
            patience=self.patience,
            scores=scores,
            scores_before_refit=scores_before_refit,
            regression=self.data.regression,
        )


def run(args: argparse.Namespace, signals: StopSignals | None = None) -> dict[str, Any]:
    """Train as the flags say; returns the done record. Collective on MPI_COMM_WORLD.

    With ``signals`` (installed by :func:`main`), a SIGTERM or SIGINT stops
    training at the end of the current iteration; the done record then has
    ``stop_reason`` ``"signal"`` and ``signal`` its number. Raises
    :class:`NumericalError` (on every rank) when training produces NaN or inf,
    without writing a checkpoint or model of that state.
    """
    # Read when called: the package sets it on import, before this module loads.
    from . import BLAS_THREADS_SET

    comm = _mpi.Communicator()
    signals = signals or StopSignals()
    baseline = peak_rss_bytes()  # interpreter, numpy, MPI: before any data
    out = Report(comm.rank, check_outputs(args, comm))
    args.resume = find_checkpoint(args, comm)
    dataset, validation = split_validation(args, comm, load_data(args, comm))
    net = build_network(args, comm)
    data = Data.of(args, dataset, validation)
    memory, samples = predict_memory(args, comm, net, data, baseline)
    config = report.run_config(net, dataset)
    rank_info = checkpoint_identity(args, data)
    if args.resume is not None:
        resume(args, comm, net, data, config, rank_info)
    training = Training(args, comm, net, data, out, signals, config, rank_info)
    out.say(
        *report.header_lines(
            args, net, dataset, samples, data.n_test, BLAS_THREADS_SET, training.rule, memory
        )
    )
    if args.resume_if_present is not None and args.resume is None:
        out.say(f"  no checkpoint in {args.resume_if_present} yet: starting from scratch")
    out.event(report.start_event(args, config, dataset, samples, data.n_test, memory))
    out.say(report.columns(data.regression, validation is not None))
    start_iter = net.n_iter_
    # A signal while the data were read stops the job now, not after an iteration.
    training.stop.signum = pending_signal(comm, signals)
    if not training.stop.signum:
        training.fit()
    outcome = training.finish(start_iter)
    done = report.done_event(args, net, outcome, memory)
    out.event(done, last=True)
    out.say(*report.summary_lines(args, net, outcome, memory))
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
