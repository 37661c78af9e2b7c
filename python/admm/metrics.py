"""Run metrics: the JSON-lines writer, peak memory, the memory model, regression scores.

Nothing here talks to MPI: the training program reduces the values itself.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from . import losses
from .preprocessing import MOMENT_BLOCK, SCRATCH_PER_IMAGE
from .solver import PREDICT_BLOCK, Solver

MB = 1024.0 * 1024.0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes. Local.

    ``ru_maxrss`` counts kibibytes on Linux and bytes on macOS.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def memory_breakdown(
    layers: Sequence[int],
    m_local: int,
    dtype: str | np.dtype = "float64",
    loss: str = "hinge",
    n_test_local: int = 0,
    center: bool = False,
    deskew: bool = False,
    refit: bool = False,
    ridge_decay: bool = False,
    input_features: bool = False,
    readout: bool = False,
    transform: bool = False,
    spectral: bool = False,
) -> dict[str, int]:
    """Bytes of every array one rank holds while training, by kind. Local.

    ``layers`` are the widths ``n_0 .. n_L``, ``m_local`` this rank's training
    samples, ``n_test_local`` its test samples, ``s`` the item size of
    ``dtype``. Persistent arrays (alive for the whole run):

    - ``input``: the training block ``X``, ``m n_0 s``, twice with ``center``,
      ``deskew`` or ``transform`` (``input_power`` or ``normalize_inputs``:
      the caller's block and the network's transformed copy), and with
      ``spectral`` (``spectral_power``) the float64 ``(n_0, n_0)`` matrix
      ``input_basis_``;
    - ``labels``: the class labels, ``8 m`` (int64), plus the loss's own
      targets (``Loss.target_bytes``: the squared loss's one-hot
      ``(m, n_L)``);
    - ``activations``, ``outputs``, ``multiplier``, ``woodbury``,
      ``weights``, ``reduce`` and ``input_factor``: the solver's arrays, as
      :meth:`admm.solver.Solver.memory_model` derives them from the buffers
      it allocates;
    - ``test``: the test block and its labels, ``n_test (n_0 s + 8)`` (the
      training program counts the ``--validation`` block in ``n_test_local``
      too: it is held and scored alike).

    ``transient`` is the largest set of temporaries alive at one time, the
    maximum over these phases: the finiteness checks of ``X`` and the test
    block (one byte per entry of a ``PREDICT_BLOCK``-row block); building the input factor (the reduced Gram
    and its float64 copy); a weight solve (float64 copies of the cross term
    and of the Gram, the new weights beside the old); an a-update (float64
    ``W_{l+1}``, the float64 system matrix and its copy in ``dtype``); a test
    evaluation (two ``PREDICT_BLOCK``-row activation blocks, the outputs,
    labels and comparison); with ``refit``, the refit (the new weights beside
    the old, with a weight solve or two ``PREDICT_BLOCK``-row feature blocks);
    with ``input_features`` (refits that keep ``W_1``: ``refit_input_layer``
    off), ``h(a_0 W_1^T)`` whole, ``m n_1 s``, beside the temporaries of the
    iteration before the refit and of the refit;
    with ``readout`` (``readout_iterations``, with ``refit``), the read-out's
    ``f_{L-1}`` whole, its own ``z`` and ``lam`` and the ``(m, n_L)`` term
    ``lam / (2 beta)``: ``m (n_{L-1} + 3 n_L) s``,
    beside the refit's temporaries (and ``h(a_0 W_1^T)`` with
    ``input_features``, which ``f_{L-1}`` overwrites when ``n_{L-1} = n_1``:
    then ``m 3 n_L s`` only);
    with ``deskew``, deskewing the training block (``MOMENT_BLOCK`` rows in
    float64 and ``SCRATCH_PER_IMAGE`` float64 numbers per sample) and a test
    block (the same for ``PREDICT_BLOCK`` rows, beside a test evaluation);
    with ``transform``, one ``MOMENT_BLOCK``-row block in float64 (and a test
    block's copy beside a test evaluation); with ``spectral``, building the
    matrix (six float64 ``(n_0, n_0)`` arrays: the reduced covariance, its
    eigenvectors and LAPACK's workspace, the products; and a
    ``MOMENT_BLOCK``-row block in float64) and applying it (a
    ``PREDICT_BLOCK``-row block and the matrix in ``dtype``).

    The start of ``subset_iterations`` (a network on every ``subset_stride``-th
    sample, freed before the full state exists) needs less than the full
    state it precedes, so it does not change the peak.

    Not counted: the interpreter and its libraries (a few tens of MB, measured
    at start-up by the training program), MPI's own buffers, and whatever the
    data loader needs while it reads the files.
    """
    L = len(layers) - 1
    if L < 1 or m_local < 0 or n_test_local < 0:
        raise ValueError(
            f"need at least two layer widths and non-negative sample counts, got "
            f"layers={tuple(layers)}, m_local={m_local}, n_test_local={n_test_local}"
        )
    s = np.dtype(dtype).itemsize
    f8 = 8
    n = [int(v) for v in layers]
    m = int(m_local)
    # The solver's own arrays, from the buffers it allocates.
    solver = Solver.memory_model(n, m, dtype, ridge_decay)
    parts = {
        "input": m * n[0] * s * (2 if center or deskew or transform else 1)
        + (n[0] * n[0] * f8 if spectral else 0),
        "labels": m * 8 + losses.get(loss).target_bytes(m, n[L], s),
        **{k: solver[k] for k in ("activations", "outputs", "multiplier", "woodbury")},
        **{k: solver[k] for k in ("weights", "reduce", "input_factor")},
        "test": n_test_local * (n[0] * s + 8),
    }
    temporaries = Solver.transient_bytes(n, dtype)
    widest = max(n)
    rows = min(PREDICT_BLOCK, n_test_local)
    evaluate = (rows * 2 * widest * s + n_test_local * (n[L] * s + 8 + 1)) if n_test_local else 0
    features = min(PREDICT_BLOCK, m) * 2 * max(n[1:L], default=0) * s
    refitting = parts["weights"] + max(temporaries["solve"], features) if refit else 0
    deskewing = 0
    if deskew:
        deskewing = min(MOMENT_BLOCK, m) * n[0] * f8 + SCRATCH_PER_IMAGE * m * f8
        rows_deskewed = min(PREDICT_BLOCK, n_test_local)
        evaluate += (
            rows_deskewed * (n[0] * s + SCRATCH_PER_IMAGE * f8)
            + min(MOMENT_BLOCK, rows_deskewed) * n[0] * f8
        )
    preparing = 0
    if transform or spectral:
        rows_test = min(PREDICT_BLOCK, n_test_local)
        block = min(MOMENT_BLOCK, max(m, rows_test)) * n[0] * f8
        applying = min(PREDICT_BLOCK, max(m, rows_test)) * n[0] * s + n[0] * n[0] * s
        building = 6 * n[0] * n[0] * f8 + block if spectral else 0
        preparing = max(block + applying, building)
        if rows_test:
            evaluate += rows_test * n[0] * s + preparing
    held = m * n[1] * s if input_features and refit and L > 1 else 0
    # f_{L-1} is the input block itself without a hidden layer, and overwrites
    # the held f_1 when their widths agree; the read-out's solve has the
    # temporaries of a weight solve.
    formed = n[L - 1] if L > 1 and not (input_features and n[L - 1] == n[1]) else 0
    readout_arrays = m * (formed + 3 * n[L]) * s
    reading_out = held + readout_arrays + refitting if readout and refit else 0
    parts["transient"] = max(
        min(PREDICT_BLOCK, max(m, n_test_local)) * n[0],
        *temporaries.values(),
        evaluate,
        refitting,
        deskewing,
        preparing,
        held + max(*temporaries.values(), refitting) if held else 0,
        reading_out,
    )
    return parts


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class MetricsWriter:
    """Writes one JSON object per line to ``path`` and flushes each. Local.

    The file is created (truncated) at construction, so an unwritable path
    fails before training starts. Non-finite floats are written as ``null``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._file: IO[str] | None = open(self.path, "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line and flush it to the OS."""
        if self._file is None:
            raise ValueError(f"metrics file {self.path} is closed")
        self._file.write(json.dumps(_json_safe(record), allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def regression_sums(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """What RMSE and R^2 need of one block of targets, to be summed over ranks. Local.

    ``pred`` and ``y`` are ``(m, k)`` (or ``(m,)``, one target); returns the
    float64 vector ``[m, SSE_1..SSE_k, sum y_1..y_k, sum y_1^2..y_k^2]``.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    return np.concatenate(
        [[float(len(y))], ((pred - y) ** 2).sum(axis=0), y.sum(axis=0), (y**2).sum(axis=0)]
    )


def regression_scores(sums: np.ndarray) -> tuple[float, float]:
    """RMSE over every target entry and R^2 (the mean over targets of
    ``1 - SSE / SST``, as scikit-learn's default) from :func:`regression_sums`
    added over all ranks. Local."""
    m = sums[0]
    k = (len(sums) - 1) // 3
    sse, total, squares = sums[1 : 1 + k], sums[1 + k : 1 + 2 * k], sums[1 + 2 * k :]
    rmse = math.sqrt(float(sse.sum()) / (m * k)) if m > 0 else math.nan
    sst = squares - total**2 / m if m > 0 else np.zeros(k)
    r2 = float(np.mean(1.0 - sse / np.where(sst > 0, sst, np.nan))) if m > 0 else math.nan
    return rmse, r2
