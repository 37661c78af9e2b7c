"""When a run stops: the ``--tol`` rule, SIGTERM and SIGINT, and the reason given.

A run ends after ``--iterations`` iterations in total (counting those of a
resumed checkpoint) or, with ``--tol T``, as soon as the relative change of
the objective ``|f_i - f_{i-1}| / max(|f_{i-1}|, 1e-300)`` between
consecutive iterations ``i - 1`` and ``i`` has stayed below ``T`` for
``TOL_PATIENCE`` (5) consecutive iterations, where only pairs of iterations
that both update the multiplier count (iteration numbers, counted from 1,
greater than ``--warmup``): the warm-up's objective is not yet the
Lagrangian's, and its jump at the first multiplier update is no sign of
convergence. With ``--patience P`` (and a ``--validation`` split) it ends
once the validation accuracy has not improved for ``P`` evaluations in a
row. A signal stops it at the end of the current iteration.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TOL_PATIENCE = 5


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


class PatienceRule:
    """The ``--patience`` rule (early stopping on the validation split). Local.

    Fed the validation accuracy of every evaluation (:meth:`update`); true
    once ``patience`` evaluations in a row have not improved on the best
    one so far (a tie is no improvement).
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -float("inf")
        self.best_iteration = 0
        self.since_best = 0

    def update(self, iteration: int, accuracy: float) -> bool:
        """Note the evaluation of ``iteration``; true when training should stop."""
        if accuracy > self.best:
            self.best, self.best_iteration, self.since_best = accuracy, iteration, 0
        else:
            self.since_best += 1
        return self.since_best >= self.patience

    def describe(self) -> str:
        return (
            f"patience: no better validation accuracy for {self.patience} evaluations "
            f"(best {self.best:.4f} at iteration {self.best_iteration})"
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


@dataclass
class Stop:
    """Why training stopped, as the iteration callback saw it. Local.

    ``signum`` is the signal that stopped the run (0: none); ``by_tol`` is
    true when the ``--tol`` rule held at the last iteration, ``by_patience``
    the ``--patience`` rule (then the rule itself).
    """

    by_tol: bool = False
    signum: int = 0
    by_patience: PatienceRule | None = None

    @property
    def key(self) -> str:
        """The done event's ``stop_reason``."""
        if self.signum:
            return "signal"
        if self.by_patience is not None:
            return "patience"
        return "tolerance" if self.by_tol else "iterations"

    def reason(self, rule: RelativeChangeRule | None, start_iter: int, iterations: int) -> str:
        """The sentence after "stopped by" (and the done event's ``stop_rule``)."""
        if self.signum:
            return signal_name(self.signum)
        if self.by_patience is not None:
            return self.by_patience.describe()
        if self.by_tol and rule is not None:
            return rule.describe()
        if start_iter >= iterations:
            return f"iteration limit ({iterations}) already reached by the checkpoint"
        return f"iteration limit ({iterations})"

    def kind(self) -> str:
        """What the run's time was the time to (in "time to ...")."""
        if self.signum:
            return signal_name(self.signum)
        if self.by_patience is not None:
            return "the early stop"
        return "convergence" if self.by_tol else "the iteration limit"
