"""Where an iteration's time goes: a phase timer for benchmarks and profiling.

The solver marks its phases with :func:`phase`; nothing is recorded unless a
:class:`PhaseTimer` is active in the calling context, so the marks cost one
context-variable look-up each when nobody listens::

    with admm.PhaseTimer() as timer:
        net.step()
    timer.seconds["weights"], timer.seconds["reduce"]

Phases (times are inclusive, and phases nest):

- ``iteration``: one whole :meth:`ADMMNetwork.step`;
- ``weights``: the weight updates (1) and (4) of ``docs/method.md``, their
  products, reduction and solve;
- ``activations``: the activation updates (2);
- ``hidden_z``: the hidden z-updates (3);
- ``output``: the output update (5) with the multiplier update (6);
- ``objective``: the reduction of the objective terms and its checks;
- ``refit``: :meth:`ADMMNetwork.refit` (the refit of every layer but,
  with ``readout_iterations``, the last);
- ``readout``: the read-out of ``W_L`` in a refit (``readout_iterations``:
  forming ``f_{L-1}``, its Gram and the read-out's iterations);
- ``reduce``: every sum over the samples of all ranks (the Allreduce, or the
  fixed tree of ``deterministic=True``), nested inside the phases above:
  ``seconds["iteration"] - seconds["reduce"]`` is the compute of a step.

Only the thread that entered the timer records (the entry-wise kernels'
worker threads run inside the phases of the thread that called them).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections import defaultdict
from collections.abc import Iterator
from types import TracebackType

__all__ = ["PhaseTimer", "phase"]

_active: contextvars.ContextVar[PhaseTimer | None] = contextvars.ContextVar(
    "admm_phase_timer", default=None
)


class PhaseTimer:
    """Accumulates wall and CPU seconds per phase while active. Local.

    Attributes
    ----------
    seconds : dict of str to float
        Wall-clock seconds (``time.perf_counter``) spent in each phase.
    cpu_seconds : dict of str to float
        CPU seconds of this process (``time.process_time``, all its threads)
        spent in each phase.
    calls : dict of str to int
        How many times each phase was entered.

    A timer can be entered several times; it keeps adding up until
    :meth:`reset`. Timers nest: only the innermost active one records.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._tokens: list[contextvars.Token] = []

    def reset(self) -> None:
        """Forget every recorded phase."""
        self.seconds.clear()
        self.cpu_seconds.clear()
        self.calls.clear()

    def __enter__(self) -> PhaseTimer:
        self._tokens.append(_active.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _active.reset(self._tokens.pop())

    def _add(self, name: str, wall: float, cpu: float) -> None:
        self.seconds[name] += wall
        self.cpu_seconds[name] += cpu
        self.calls[name] += 1


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the body as phase ``name`` in the active :class:`PhaseTimer`, if any."""
    timer = _active.get()
    if timer is None:
        yield
        return
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        timer._add(name, time.perf_counter() - wall, time.process_time() - cpu)
