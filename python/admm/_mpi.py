"""The one module of :mod:`admm` that talks to MPI.

Everything else receives a :class:`Communicator`, a private duplicate of the
caller's mpi4py communicator, so our messages never mix with the host
program's. Buffers travel with the uppercase (buffer) calls; only small
metadata (error messages, configuration checks) is pickled.

``MPI.COMM_WORLD`` appears in three places only: :class:`Communicator` with
``comm=None`` (the documented default), :func:`world_rank` (which rank prints
a program's messages) and :func:`abort_on_error`'s ``MPI_Abort``. The last
two serve the programs (``python -m admm.train``), which own the whole job:
an error that only some ranks raise must end every process of the job, not
just a sub-communicator, or ``mpiexec`` would wait for the others forever.
A library caller that passes ``comm`` never reaches them. ``MPI.COMM_SELF``
appears in :meth:`Communicator.local`, the one-process communicator of the
scikit-learn estimators' ``comm=None`` (:mod:`admm.sklearn`).

A communicator of one process is not duplicated: its collectives complete
locally and admm sends nothing on it (the tree sums of
:mod:`admm._blocksum` only send between ranks), so no message can mix with
the caller's, and a duplicate would spend one of the MPI library's context
ids (MPICH has 2048 per process) on every network a process makes.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import numpy as np


def _load_mpi() -> Any:
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:  # no mpi4py, or no libmpi for it
        raise RuntimeError(
            "admm needs mpi4py and an MPI library to train: install the bundled "
            "MPI with `pip install 'admm[mpich]'`, or build mpi4py against your "
            f"site MPI ({exc})"
        ) from exc
    return MPI


T = TypeVar("T")


def error_message(exc: BaseException) -> str:
    """The one-line text of ``exc`` that an agreed error shows. Local.

    A ``ValueError`` or ``OSError`` says what is wrong in its own words (bad
    input, a missing file); any other exception is unexpected there, so its
    type name comes first.
    """
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, ValueError | OSError):
        text = f"{type(exc).__name__}: {text}"
    return text


def attempt(action: Callable[[], T]) -> tuple[T | None, str | None]:
    """Run ``action``; return its value and None, or None and its error's
    :func:`error_message`. Local: for the checks that a rank gathers before
    :meth:`Communicator.raise_if_any` agrees on them."""
    try:
        return action(), None
    except Exception as exc:  # reported to every rank by raise_if_any
        return None, error_message(exc)


def world_rank() -> int:
    """Rank in ``MPI.COMM_WORLD``, or 0 when MPI cannot be loaded. Local."""
    try:
        return _load_mpi().COMM_WORLD.Get_rank()
    except RuntimeError:
        return 0


class Communicator:
    """A duplicate of an mpi4py communicator with the few collectives admm uses.

    Collective on ``comm``: every rank of ``comm`` must construct it together
    (``MPI_Comm_dup``; a communicator of one process is used as it is, see
    the module's notes). ``comm=None`` means ``MPI.COMM_WORLD``.
    """

    def __init__(self, comm: Any = None) -> None:
        mpi = _load_mpi()
        self._mpi = mpi
        base = mpi.COMM_WORLD if comm is None else comm
        if not isinstance(base, mpi.Comm):
            raise TypeError(f"comm must be an mpi4py communicator, not {type(base)}")
        self._owned = base.Get_size() > 1
        self._comm = base.Dup() if self._owned else base
        self.rank: int = self._comm.Get_rank()
        self.size: int = self._comm.Get_size()

    @classmethod
    def local(cls) -> Communicator:
        """The communicator of this process alone (``MPI.COMM_SELF``): training
        without an MPI job. Local."""
        return cls(_load_mpi().COMM_SELF)

    @property
    def mpi_comm(self) -> Any:
        """The mpi4py communicator behind it (our duplicate, or the caller's
        communicator of one process), for code that takes an mpi4py
        communicator (:class:`admm.ADMMNetwork`)."""
        return self._comm

    def free(self) -> None:
        """Release our duplicate (``MPI_Comm_free``); the object is unusable
        afterwards. Collective. A communicator of one process was never
        duplicated: nothing to release."""
        if self._owned:
            self._comm.Free()
            self._owned = False

    def sum_inplace(self, buf: np.ndarray) -> np.ndarray:
        """Replace ``buf`` by its sum over the ranks (one Allreduce). Collective."""
        if self.size > 1:
            self._comm.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
        return buf

    def sum_values(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Sum a short vector of float64 values over the ranks. Collective."""
        buf = np.array(values, dtype=np.float64)
        return self.sum_inplace(buf)

    def max_value(self, value: float) -> float:
        """Maximum of one float over the ranks. Collective."""
        return float(self.max_values([value])[0])

    def max_values(self, values: Sequence[float]) -> np.ndarray:
        """Element-wise maximum of a short float64 vector over the ranks
        (one Allreduce). Collective."""
        buf = np.array(values, dtype=np.float64)
        if self.size > 1:
            self._comm.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.MAX)
        return buf

    def gather_values(self, value: float) -> np.ndarray:
        """All ranks' values of one float, in rank order, on every rank. Collective."""
        out = np.empty(self.size, dtype=np.float64)
        self._comm.Allgather(np.array([value], dtype=np.float64), out)
        return out

    def allgather_rows(self, buf: np.ndarray, starts: Sequence[int]) -> np.ndarray:
        """Assemble ``buf`` (C-contiguous, rows first) from every rank's rows, in place.

        Rank ``r`` contributes rows ``starts[r]:starts[r + 1]`` of its ``buf``
        (``starts`` has ``size + 1`` entries, from 0 to ``buf.shape[0]``); on
        return every rank holds all rows (one Allgatherv). Collective.
        """
        if self.size > 1:
            row = int(np.prod(buf.shape[1:], dtype=np.int64))
            counts = [(starts[r + 1] - starts[r]) * row for r in range(self.size)]
            displs = [starts[r] * row for r in range(self.size)]
            self._comm.Allgatherv(self._mpi.IN_PLACE, [buf, counts, displs, None])
        return buf

    def exchange_rows(
        self, buf: np.ndarray, send_counts: Sequence[int], recv_counts: Sequence[int]
    ) -> np.ndarray:
        """Rows of ``buf`` dealt to the ranks, the rows dealt to this one returned.

        The first ``send_counts[0]`` rows of ``buf`` (C-contiguous, rows first)
        go to rank 0, the next ``send_counts[1]`` to rank 1, and so on; the
        result holds ``recv_counts[r]`` rows from each rank ``r``, in rank
        order (one Alltoallv). Collective.
        """
        out = np.empty((int(sum(recv_counts)), *buf.shape[1:]), dtype=buf.dtype)
        if self.size == 1:
            out[...] = buf[: int(send_counts[0])]
            return out
        row = int(np.prod(buf.shape[1:], dtype=np.int64))

        def layout(counts: Sequence[int]) -> tuple[list[int], list[int]]:
            sizes = [int(c) * row for c in counts]
            return sizes, [int(v) for v in np.cumsum([0, *sizes[:-1]])]

        send, recv = layout(send_counts), layout(recv_counts)
        self._comm.Alltoallv(
            [np.ascontiguousarray(buf), send[0], send[1], None], [out, recv[0], recv[1], None]
        )
        return out

    def agree(self, obj: Any) -> list[Any]:
        """Every rank's small picklable ``obj``, in rank order. Collective."""
        if self.size == 1:
            return [obj]
        return self._comm.allgather(obj)

    def raise_if_any(self, message: str | None, exc_type: type[Exception] = ValueError) -> None:
        """Raise ``exc_type`` on every rank if any rank passes a message. Collective.

        Errors that only some ranks can see (their own data block) reach all
        ranks this way, so no rank is left waiting in a later collective.
        """
        messages = self.agree(message)
        failed = [(r, m) for r, m in enumerate(messages) if m is not None]
        if not failed:
            return
        if len({m for _, m in failed}) == 1 and len(failed) == self.size:
            error = exc_type(failed[0][1])
        else:
            error = exc_type("; ".join(f"rank {r}: {m}" for r, m in failed))
        error.admm_all_ranks = True  # type: ignore[attr-defined]
        raise error

    def agreed(self, action: Callable[[], T], exc_type: type[Exception] = ValueError) -> T:
        """``action()`` on every rank; an exception on any rank raises on all. Collective.

        Returns ``action()``'s value. When it raises (an ``Exception``) on one
        or more ranks, every rank raises ``exc_type`` with the failed
        ranks' :func:`error_message` (see :meth:`raise_if_any`), so a problem
        that only some ranks meet (a full disk on rank 0, a bad data block)
        ends every rank with one message instead of leaving the others
        waiting in the next collective.
        """
        value, message = attempt(action)
        # Raised here, outside attempt's except, so the agreed error carries no
        # one rank's exception as its context (--debug shows it alone).
        self.raise_if_any(message, exc_type)
        return cast(T, value)

    def barrier(self) -> None:
        """Wait for every rank. Collective."""
        self._comm.Barrier()

    # Point-to-point and broadcast for the split-independent tree sums
    # (admm._blocksum): buffers only.

    def isend(self, buf: np.ndarray, dest: int, tag: int) -> Any:
        """Start sending ``buf`` to rank ``dest``; do not touch ``buf`` before :meth:`wait_all`."""
        return self._comm.Isend(buf, dest=dest, tag=tag)

    def recv(self, buf: np.ndarray, source: int, tag: int) -> np.ndarray:
        """Receive into ``buf`` what rank ``source`` sent with ``tag`` (blocking)."""
        self._comm.Recv(buf, source=source, tag=tag)
        return buf

    def wait_all(self, requests: Sequence[Any]) -> None:
        """Wait until the sends started by :meth:`isend` have completed."""
        if requests:
            self._mpi.Request.Waitall(list(requests))

    def broadcast_inplace(self, buf: np.ndarray, root: int) -> np.ndarray:
        """Replace ``buf`` on every rank by rank ``root``'s ``buf``. Collective."""
        if self.size > 1:
            self._comm.Bcast(buf, root=root)
        return buf


@contextlib.contextmanager
def abort_on_error(debug: bool = False) -> Iterator[None]:
    """End the whole MPI job when the body raises on any rank.

    An unhandled exception under ``mpiexec`` leaves the other ranks waiting
    in a collective forever. This prints a one-line message (the traceback
    with ``debug``) to stderr and calls ``MPI_Abort`` when more than one
    process runs, or exits with status 1 otherwise. ``SystemExit`` (argparse
    usage errors, explicit exits) keeps its own status.

    An exception with a true ``admm_all_ranks`` attribute was raised by every
    rank together (an agreed error): rank 0 prints it and every rank exits
    normally with the exception's ``admm_exit_status`` (default 2), with no
    abort. Only errors that every rank raises may carry it: a rank that exits
    while the others wait in a collective leaves the job hanging.
    """
    try:
        yield
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if code != 0:
            _abort_job(code)
        raise
    except BaseException as exc:
        rank = world_rank()
        if getattr(exc, "admm_all_ranks", False):
            # Every rank raised the same error: say it once and exit normally,
            # so no rank is killed before the message is out.
            if rank == 0:
                if debug:
                    traceback.print_exc()
                sys.stderr.write(f"admm: error: {exc}\n")
                sys.stderr.flush()
            raise SystemExit(getattr(exc, "admm_exit_status", 2)) from None
        if debug:
            traceback.print_exc()
        name = "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
        sys.stderr.write(f"admm: error on rank {rank}: {name}: {exc}\n")
        sys.stderr.flush()
        _abort_job(1)
        raise SystemExit(1) from None


def _abort_job(code: int) -> None:
    try:
        mpi = _load_mpi()
    except RuntimeError:
        return
    if mpi.Is_initialized() and not mpi.Is_finalized() and mpi.COMM_WORLD.Get_size() > 1:
        mpi.COMM_WORLD.Abort(code)
