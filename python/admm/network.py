"""The ADMM network: state, one iteration in the order of ADMM.md, prediction.

Notation follows ``ADMM.md`` with samples in rows: this rank's activations
``a_l`` are ``(m_local, n_l)`` arrays (the column-major ``n_l x m_local``
matrices of the spec, without a transpose), weights ``W_l`` are
``(n_l, n_{l-1})``. The compiled kernels do the arithmetic (the entry-wise ones
on the threads of :mod:`admm._threads`); the only collectives go through
:mod:`admm._mpi`.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from admm_core import (
    apply_activation,
    cholesky_factor,
    cholesky_inverse,
    cholesky_solve,
    cross,
    glorot_uniform,
    gram,
    hidden_z_update,
    matmul,
    output_hinge_update,
    output_squared_update,
)

from ._blocksum import BlockLayout, TreeSum
from ._files import atomic_savez
from ._mpi import Communicator
from ._threads import rowwise
from .preprocessing import check_pixels, image_side
from .preprocessing import deskew as deskew_images
from .timing import phase

ACTIVATIONS = ("hardsigmoid", "relu")
LOSSES = ("hinge", "squared")
DTYPES = ("float64", "float32")

#: Default ridge, relative to the mean diagonal entry of each layer's Gram
#: matrix at initialisation (the Gram scales with the number of samples, so an
#: absolute default would not fit every data set). The same in both
#: precisions, so float32 solves the same problem: its Grams are factored in
#: float64 (on MNIST float32 Grams stay positive definite with it).
RHO_RELATIVE = 1e-6

#: Model files: version 2 adds ``sha256``, a checksum of all other arrays
#: (names, dtypes, shapes and bytes); version 3 the continuation, multiplier,
#: relative ridge and ``input_mean`` (a reader of version 2 would predict a
#: centred model wrongly); version 4 ``deskew`` (a reader of version 3 would
#: predict a deskewed model on raw images). Versions 1 to 3 are still read.
MODEL_FORMAT_VERSION = 4
_MODEL_VERSIONS_READ = (1, 2, 3, 4)

#: Samples per block of the split-independent sums (``deterministic=True``):
#: ranks must hold whole blocks, so it bounds the load imbalance; smaller
#: blocks cost more tree additions (docs/determinism.md).
BLOCK_SIZE = 256

#: Rows per block of the forward pass in ``decision_function`` and ``refit``
#: and of the finiteness checks of inputs: bounds their temporaries to a few
#: MB whatever the number of samples (both run while every training array is
#: alive, so their blocks add to the peak: two activation blocks, 8 MB in
#: float64 at 784-500-500-10; 4,096 rows took the float64 peak at N = 1 over
#: its 1,500 MB limit, docs/scaling.md).
PREDICT_BLOCK = 1024

#: Most rows per BLAS call of the products of samples' own rows (``W_l a_{l-1}``,
#: the activation updates): as fast as one call on all 60,000 rows of MNIST,
#: and OpenBLAS then touches 4 to 16 MB of its work space per thread instead
#: of 62 MB (float32 and float64 on two threads, docs/performance.md).
PRODUCT_ROWS = 4096

Callback = Callable[["ADMMNetwork", dict], Any]


class NumericalError(ArithmeticError):
    """Training produced NaN or inf, or a Gram matrix that the ridge cannot fix.

    Raised by :meth:`ADMMNetwork.fit` (and :meth:`ADMMNetwork.refit`) on every
    rank at once: it is decided from reduced sums and from the weights, which
    are identical on all ranks, so no rank is left waiting in a collective.
    ``iteration`` (counted from 1; for the refit, the iterations done) and
    ``layer`` (1-based, None when unknown) say where. After ``fit`` the
    network's state is that of the failed iteration: do not continue it with
    ``warm_start``. A failed refit leaves the weights as they were.
    """

    #: Every rank raises it together (see :func:`admm._mpi.abort_on_error`).
    admm_all_ranks = True
    #: Exit status of the programs for a numerical failure.
    admm_exit_status = 3

    def __init__(self, message: str, iteration: int, layer: int | None = None) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.layer = layer


def _per_layer(value: Any, count: int, name: str) -> tuple[float, ...]:
    """A positive finite float per layer from a scalar or a sequence."""
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if values.ndim != 1 or values.size not in (1, count):
        raise ValueError(f"{name} must be a scalar or {count} values, got {value!r}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    if values.size == 1:
        values = np.repeat(values, count)
    return tuple(float(v) for v in values)


class ADMMNetwork:
    """A fully connected network trained by ADMM, data-parallel over MPI.

    Parameters
    ----------
    layers : sequence of int
        Widths ``(n_0, ..., n_L)``: input features, hidden widths, outputs.
    activation : {"hardsigmoid", "relu"}
        Hidden activation ``h``: ``clip(x, 0, 1)`` or ``max(x, 0)``.
    loss : {"hinge", "squared"}
        Output loss: one-vs-rest hinge on integer labels, or least squares on
        an ``(m, n_L)`` target array.
    beta : float or sequence of L floats
        Weight of each constraint ``z_l = W_l a_{l-1}``, ``l = 1..L``.
    gamma : float or sequence of L-1 floats
        Weight of each activation constraint ``a_l = h(z_l)``, ``l = 1..L-1``.
    rho : float, sequence of L floats, or None
        Ridge added to the diagonal of every Gram matrix before its Cholesky
        solve (an absolute value, the same for all ranks). ``None`` (default)
        picks, per layer, ``RHO_RELATIVE`` (1e-6) times the mean diagonal entry
        of that layer's Gram after the initial forward pass, in both dtypes;
        the values used are in ``rho_`` after ``fit``.
    warmup : int
        Iterations ``0 .. warmup-1`` make no multiplier update. With
        ``multiplier=False`` it changes nothing in training (the program's
        ``--tol`` rule still waits for it).
    dtype : {"float64", "float32"}
        Precision of the data, activations and weights. The small Cholesky
        factorisations are always done in float64.
    seed : int
        Seed of the Glorot-uniform initialisation (``numpy.random.PCG64``): the
        same seed gives the same weights on every rank, run and dtype.
    weights : list of arrays, optional
        Initial weights ``W_l`` of shape ``(n_l, n_{l-1})``, replacing Glorot.
    comm : mpi4py communicator, optional
        Communicator of the ranks that train together (default
        ``MPI.COMM_WORLD``). It is duplicated at the first ``fit``, so our
        messages never mix with the caller's.
    deterministic : bool
        Make the results independent of the number of ranks, bit for bit:
        every sum over samples (Gram and cross terms, objective terms, the
        automatic ridge) is formed per block of ``block_size`` consecutive
        global samples and the block sums are added along one fixed binary
        tree, so the rounding no longer depends on the split. The promise
        covers the same data in the same order, seed and parameters, on the
        same machine type, BLAS library and number of BLAS threads per rank
        (OpenBLAS float64 gemm/syrk results change with the thread count).
        Every rank must then hold whole blocks, in rank order (only the last
        block of all may be shorter; ranks may hold none): split with
        ``admm.data.block_range(n, rank, size, block=block_size)``; ``fit``
        raises ``ValueError`` otherwise. Off by default: see
        ``docs/determinism.md`` for its cost. The same seed, data and number of
        ranks give bit-identical results either way.
    block_size : int
        Samples per block for ``deterministic`` (default ``BLOCK_SIZE``, 256).
        Part of the result: a different block size rounds differently.
    rho_relative : float
        The automatic ridge (``rho=None``) as a multiple of each layer's mean
        Gram diagonal; default ``RHO_RELATIVE`` (1e-6). The accuracy study
        (``docs/accuracy-study.md``) found 1e-2 much better on 10,000 MNIST
        images and 3e-3 on 50,000.
    rho_final, rho_decay_iterations : float, int
        Continuation of the ridge: the ridge in force at 0-based iteration
        ``t`` is ``rho_l * rho_final**(min(t, T) / T)`` with
        ``T = rho_decay_iterations``, falling geometrically from ``rho_l``
        (``rho_`` after ``fit``) to ``rho_final * rho_l`` at iteration ``T``
        and staying there; :meth:`ridges` gives it. A strong ridge trains fast
        early, a weaker one fits a large training set better later
        (``--preset best``: 1e-2 down to 2e-3 by iteration 70). Default 1.0
        and 0: a constant ridge (``ADMM.md``). ``rho_final`` must be in
        ``(0, 1]``, and below 1 only with ``rho_decay_iterations >= 1``.
        While the ridge changes, the reduced input Gram (``8 n_0^2`` bytes)
        is kept to be factored again with each new ridge.
    inertia : float
        Extrapolation of the weight updates, as in inertial (heavy-ball)
        alternating minimisation: from iteration 1 on, each solved ``W_l``
        becomes ``W_l + inertia (W_l - W_l^prev)``, ``W_l^prev`` the weights
        of the previous iteration. Not a block minimisation; it speeds the
        early iterations (``docs/accuracy-study.md``). Default 0 (off,
        ``ADMM.md``); must be in ``[0, 1)``.
    backward_sweep : bool
        After the output update, update ``a_l`` (2) and ``z_l`` (3) once more
        for ``l = L-1 .. 1``, with the same penalties: exact block
        minimisations, so the objective only falls, and the output's step
        reaches every hidden layer within the iteration. About 1.5 times the
        work of an iteration at 784-500-500-10 (two more products per hidden
        layer and a second activation solve), no more memory. The
        ``objective`` and ``residual`` in ``history`` are then those of the
        state after the output update, before the sweep. Default False
        (``ADMM.md``).
    multiplier : bool
        Whether the output multiplier ``lam`` is updated at all (equation
        (6)). Off, every iteration is a block-coordinate sweep of the penalty
        objective; on MNIST this trained better than the multiplier
        (``docs/accuracy-study.md``). Default True, as in ``ADMM.md``.
    beta_growth, gamma_growth : float
        Continuation: the penalties in force at 0-based iteration ``t`` are
        ``min(beta_l * beta_growth**t, beta_max_l)`` and likewise for gamma,
        a function of ``t`` alone (a resumed run continues the same path).
        Default 1.0 (constant penalties, ``ADMM.md``); must be >= 1.
    beta_max, gamma_max : float, sequence, or None
        Caps of the continuation per layer (a scalar for all); None (default)
        means no cap.
    center : bool
        Subtract the mean training input (over all ranks' samples) from the
        inputs, in training and prediction; the mean is in ``input_mean_``
        and saved with the model. Costs one centred copy of the input block.
    deskew : bool
        Deskew every input image, in training and prediction, before the
        centring (:func:`admm.preprocessing.deskew`: shear the main axis of
        the ink upright and move its centre of mass to the middle). The
        inputs must be square images stored row by row (``n_0`` a perfect
        square) with non-negative pixels. Per sample, so independent of the
        split over the ranks. On MNIST it added about 2.4 points of
        validation accuracy to ``--preset best`` at iteration 20
        (``docs/accuracy-study.md``). Costs one deskewed copy of the input
        block (centred in place with ``center``) and about 50 microseconds
        per image. Default False.

    Attributes
    ----------
    weights : list of ndarray
        The current ``W_l`` (read-only views), identical on every rank.
    history : list of dict
        One record per iteration: ``iteration``, ``objective``, ``residual``
        (``||z_L - W_L a_{L-1}||`` over all samples), ``val_accuracy`` (None
        when not evaluated) and ``time_s`` (seconds spent in ADMM iterations
        so far, validation and callbacks excluded).
    n_iter_ : int
        Iterations done.
    rho_ : tuple of float
        The ridge of each layer at iteration 0 (:meth:`ridges` gives the one
        in force at each iteration when it decays).
    input_mean_ : ndarray of shape (n_0,) or None
        The mean training input subtracted with ``center`` (float64).
    """

    def __init__(
        self,
        layers: Sequence[int],
        activation: str = "hardsigmoid",
        loss: str = "hinge",
        beta: float | Sequence[float] = 0.2,
        gamma: float | Sequence[float] = 20.0,
        rho: float | Sequence[float] | None = None,
        warmup: int = 10,
        dtype: str | np.dtype = "float64",
        seed: int = 0,
        weights: Sequence[np.ndarray] | None = None,
        comm: Any = None,
        deterministic: bool = False,
        block_size: int = BLOCK_SIZE,
        rho_relative: float = RHO_RELATIVE,
        multiplier: bool = True,
        beta_growth: float = 1.0,
        gamma_growth: float = 1.0,
        beta_max: float | Sequence[float] | None = None,
        gamma_max: float | Sequence[float] | None = None,
        center: bool = False,
        rho_final: float = 1.0,
        rho_decay_iterations: int = 0,
        inertia: float = 0.0,
        backward_sweep: bool = False,
        deskew: bool = False,
    ) -> None:
        layers = tuple(layers)
        if len(layers) < 2 or any(
            not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1 for n in layers
        ):
            raise ValueError(
                f"layers must be at least two positive integer widths, got {layers!r}"
            )
        self.layers: tuple[int, ...] = tuple(int(n) for n in layers)
        n_weight = len(self.layers) - 1
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
        self.activation = activation
        self.loss = loss
        self.beta = _per_layer(beta, n_weight, "beta")
        self.gamma = _per_layer(gamma, n_weight - 1, "gamma") if n_weight > 1 else ()
        self.rho = None if rho is None else _per_layer(rho, n_weight, "rho")
        if isinstance(warmup, bool) or not isinstance(warmup, int | np.integer) or warmup < 0:
            raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
        self.warmup = int(warmup)
        if not (
            isinstance(rho_relative, int | float | np.number)
            and not isinstance(rho_relative, bool)
        ) or not (math.isfinite(float(rho_relative)) and float(rho_relative) > 0):
            raise ValueError(
                f"rho_relative must be a positive finite number, got {rho_relative!r}"
            )
        self.rho_relative = float(rho_relative)
        if not (
            isinstance(rho_final, int | float | np.number)
            and not isinstance(rho_final, bool)
            and math.isfinite(float(rho_final))
            and 0.0 < float(rho_final) <= 1.0
        ):
            raise ValueError(f"rho_final must be a number in (0, 1], got {rho_final!r}")
        if (
            isinstance(rho_decay_iterations, bool)
            or not isinstance(rho_decay_iterations, int | np.integer)
            or rho_decay_iterations < 0
        ):
            raise ValueError(
                f"rho_decay_iterations must be a non-negative integer, got {rho_decay_iterations!r}"
            )
        if float(rho_final) < 1.0 and rho_decay_iterations == 0:
            raise ValueError(
                f"rho_final={rho_final!r} needs rho_decay_iterations >= 1 (the iteration "
                "by which the ridge has fallen to it)"
            )
        self.rho_final = float(rho_final)
        self.rho_decay_iterations = int(rho_decay_iterations)
        if not (
            isinstance(inertia, int | float | np.number)
            and not isinstance(inertia, bool)
            and 0.0 <= float(inertia) < 1.0
        ):
            raise ValueError(f"inertia must be a number in [0, 1), got {inertia!r}")
        self.inertia = float(inertia)
        for name, flag in (
            ("multiplier", multiplier),
            ("center", center),
            ("backward_sweep", backward_sweep),
            ("deskew", deskew),
        ):
            if not isinstance(flag, bool | np.bool_):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        self.multiplier = bool(multiplier)
        self.center = bool(center)
        self.backward_sweep = bool(backward_sweep)
        self.deskew = bool(deskew)
        if self.deskew:
            image_side(self.layers[0])  # raises unless the inputs can be square images
        growths = []
        for name, g in (("beta_growth", beta_growth), ("gamma_growth", gamma_growth)):
            value = _per_layer(g, 1, name)[0]
            if value < 1.0:
                raise ValueError(f"{name} must be at least 1 (continuation tightens), got {g!r}")
            growths.append(value)
        self.beta_growth, self.gamma_growth = growths
        self.beta_max = None if beta_max is None else _per_layer(beta_max, n_weight, "beta_max")
        self.gamma_max = (
            None
            if gamma_max is None or n_weight == 1
            else _per_layer(gamma_max, n_weight - 1, "gamma_max")
        )
        self.input_mean_: np.ndarray | None = None
        try:
            dtype_name = np.dtype(dtype).name
        except TypeError:
            dtype_name = repr(dtype)
        if dtype_name not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.dtype = np.dtype(dtype_name)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        if not isinstance(deterministic, bool | np.bool_):
            raise ValueError(f"deterministic must be True or False, got {deterministic!r}")
        self.deterministic = bool(deterministic)
        if (
            isinstance(block_size, bool)
            or not isinstance(block_size, int | np.integer)
            or block_size < 1
        ):
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        self.block_size = int(block_size)
        self._layout: BlockLayout | None = None
        self._tree: TreeSum | None = None
        self._initial_weights = None if weights is None else self._check_weights(weights)
        self._comm_arg = comm
        self._comm: Communicator | None = None
        self._weights = self._starting_weights()
        self._state: _State | None = None
        self.history: list[dict] = []
        self.n_iter_ = 0
        self.rho_: tuple[float, ...] | None = self.rho

    # ------------------------------------------------------------------ API

    @property
    def weights(self) -> list[np.ndarray]:
        """The weights ``W_l``, shapes ``(n_l, n_{l-1})``, as read-only views."""
        views = []
        for w in self._weights:
            v = w.view()
            v.flags.writeable = False
            views.append(v)
        return views

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        iterations: int = 100,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        callback: Callback | None = None,
        eval_every: int = 1,
        warm_start: bool = False,
    ) -> ADMMNetwork:
        """Train by ADMM on this rank's block of samples. Collective on ``comm``.

        Parameters
        ----------
        X : array, shape (m_local, n_0)
            This rank's samples, one per row. Ranks may hold different numbers
            of samples (none at all, too). The network keeps a reference when
            ``X`` is already C-contiguous in ``dtype`` and ``center`` and
            ``deskew`` are off, a converted, deskewed or centred copy
            otherwise; it never writes to it.
        y : array
            Integer class labels ``(m_local,)`` in ``0..n_L-1`` for the hinge
            loss, an ``(m_local, n_L)`` target array for least squares.
        iterations : int
            Total number of iterations: with ``warm_start`` the run continues
            from ``n_iter_`` up to this count. 0 sets up the state (the
            initial forward pass) without iterating, for :meth:`step`.
        X_val, y_val : arrays, optional
            This rank's block of validation samples; the accuracy over all
            ranks' blocks is recorded every ``eval_every`` iterations and at
            the last one.
        callback : callable, optional
            ``callback(network, record)`` after every iteration, on every rank,
            with the history record. A true return value stops training; it
            must be the same on every rank (records are identical on all).
        eval_every : int
            Validation period in iterations.
        warm_start : bool
            Continue from the current state (after a previous ``fit`` or
            :meth:`set_state`) instead of initialising afresh.

        Returns
        -------
        self
        """
        comm = self._communicator()
        message = self._validate_fit(X, y, iterations, X_val, y_val, eval_every)
        comm.raise_if_any(message)
        # Hyper-parameters must agree across ranks, or the Allreduces would
        # silently sum different problems.
        comm.raise_if_any(self._config_mismatch(comm))
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if self.deskew:
            X = deskew_images(X)  # a copy of our own: centred in place below
        y = self._targets(y, X.shape[0])
        if X_val is not None and y_val is not None:
            X_val = np.ascontiguousarray(X_val, dtype=self.dtype)
            y_val = self._val_labels(y_val)
        self._set_layout(comm, X.shape[0])
        if self.center:
            # A resumed run keeps the mean its state was centred with.
            resuming = warm_start and self._state is not None and self.input_mean_ is not None
            mean = self.input_mean_ if resuming else self._input_mean(X)
            assert mean is not None
            X = self._centred(X, mean, in_place=self.deskew)
            self.input_mean_ = mean
        if warm_start and self._state is not None:
            message = None
            if self._state.X.shape != X.shape:
                message = (
                    f"warm_start needs the data of the saved state: X has shape "
                    f"{X.shape}, the state was built for {self._state.X.shape}"
                )
            comm.raise_if_any(message)
            self._state.X = X
            self._state.targets = y
        else:
            self._initialize(X, y)
            self._check_ridge()
        for _ in range(self.n_iter_, iterations):
            due = (self.n_iter_ + 1) % eval_every == 0 or self.n_iter_ + 1 == iterations
            validation = None
            if X_val is not None and y_val is not None and due:
                validation = (X_val, y_val)
            record = self._advance(validation)
            if callback is not None and callback(self, record):
                break
        return self

    def step(self) -> dict:
        """One more iteration on the training block of the last ``fit``. Collective on ``comm``.

        The loop body of :meth:`fit`: call ``fit(X, y, iterations=0)`` (or
        :meth:`set_state`) first to set up the state, then ``step()`` as
        often as wanted; the result is the same, bit for bit, as ``fit``
        with as many iterations. Appends the iteration's record to
        ``history`` (``val_accuracy`` is None: no validation here) and
        returns it. Time its phases with :class:`admm.PhaseTimer`.

        Raises
        ------
        RuntimeError
            When there is no state yet (before any ``fit`` or ``set_state``).
        NumericalError
            As :meth:`fit`, on every rank at once.
        """
        if self._state is None:
            raise RuntimeError("step needs a state: call fit (iterations=0 sets one up) first")
        if self.deterministic and self._layout is None:  # a state from set_state
            self._set_layout(self._communicator(), self._state.X.shape[0])
        return self._advance(None)

    def _advance(self, validation: tuple[np.ndarray, np.ndarray] | None) -> dict:
        """Iteration ``n_iter_``, its history record, and the validation
        accuracy on ``validation`` (all ranks' blocks) when given. Collective."""
        state = self._state
        assert state is not None
        t = self.n_iter_
        started = time.perf_counter()
        try:
            with phase("iteration"):
                objective, residual = self._iterate(t)
        except np.linalg.LinAlgError as exc:
            # The factored matrices are reduced sums or built from the
            # weights, identical on every rank: every rank fails here.
            raise NumericalError(f"numerical failure at iteration {t + 1}: {exc}", t + 1) from None
        # Training time only: validation and the callback (checkpoints,
        # logging) are not counted.
        state.elapsed += time.perf_counter() - started
        self.n_iter_ = t + 1
        record = {
            "iteration": self.n_iter_,
            "objective": objective,
            "residual": residual,
            "val_accuracy": None if validation is None else self._global_accuracy(*validation),
            "time_s": state.elapsed,
        }
        self.history.append(record)
        return record

    def refit(self) -> ADMMNetwork:
        """Re-solve every weight layer on the network's own forward features.

        Collective on ``comm``. ADMM leaves weights that fit its state
        (``z_l ~ W_l a_{l-1}``), but a forward pass feeds layer ``l`` with
        ``h`` of the previous layer's output, not with ``a_{l-1}``
        (docs/accuracy-study.md). For ``l = 1..L`` in order, with samples in
        rows as everywhere in this class,

            W_l <- (sum z_l^T f_{l-1}) (sum f_{l-1}^T f_{l-1} + rho_l I)^{-1}
            f_l  = h(f_{l-1} W_l^T)        (with the refit W_l)

        the sums running over all ranks' samples: ``z_l`` ``(m, n_l)`` is the
        state's, ``f_0`` ``(m, n_0)`` the training block the state holds
        (deskewed with ``deskew``, centred with ``center``), the products
        ``(n_l, n_{l-1})`` and ``(n_{l-1}, n_{l-1})``. That is updates (1)/(4) of ADMM.md with the
        forward features in place of ``a_{l-1}``, with the ridge of the last
        iteration (:meth:`ridges`; ``rho_`` without a decay) and the same
        sums, float64 Cholesky solve and, without ``deterministic``, the same
        split of ``W_l``'s rows over the ranks. With ``deterministic`` the
        result does not depend on the number of ranks, bit for bit. The
        features are recomputed from ``f_0`` for every layer in blocks of
        ``PREDICT_BLOCK`` rows, never held whole: the memory of a test
        evaluation, and a little less work than one iteration (the forward
        passes through ``1 + ... + (L-1)`` layers plus the products of every
        layer; 0.75 to 0.9 of an iteration measured at 784-500-500-10).

        The weights used by :meth:`predict` and written by :meth:`save` (and
        by :meth:`get_state`) are replaced; the ADMM state (``a``, ``z``,
        ``lam``), ``n_iter_`` and ``history`` are left as they are. A later
        ``fit(warm_start=True)`` continues from the refit weights: ``W_{l+1}``
        of the previous iteration enters update (2), so it does not follow
        the trajectory of an uninterrupted run (a state saved before the
        refit does). The training block is the ``X`` of the last ``fit`` or
        :meth:`set_state`; do not change it in between (the network keeps a
        reference when it needed no conversion).

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            When the network has no ADMM state: neither ``fit`` nor
            :meth:`set_state` ran (a model from :func:`load` has none).
            Raised before any communication, so alike on every rank that
            trained alike.
        NumericalError
            NaN or inf in a refit ``W_l``, or a Gram matrix plus ridge that is
            not positive definite: on every rank at once (decided from
            reduced sums); the weights are left as they were.
        """
        state = self._state
        if state is None:
            raise RuntimeError(
                "refit needs the ADMM state of a fit: call fit (or set_state) first; "
                "a loaded model has no state"
            )
        comm = self._communicator()
        if self.deterministic and self._layout is None:  # a state from set_state
            self._set_layout(comm, state.X.shape[0])
        weights: list[np.ndarray] = []
        rho = self.ridges(self.n_iter_ - 1)  # the ridge of the last iteration
        for l in range(1, len(self.layers)):
            problem = None
            try:
                with phase("refit"):
                    w = state.refit_weights(l, weights, rho[l - 1])
            except np.linalg.LinAlgError as exc:
                problem = str(exc)
            else:
                if not np.all(np.isfinite(w)):
                    problem = f"the refit weights W_{l} contain NaN or inf"
            if problem is not None:
                raise NumericalError(
                    f"numerical failure in the refit after iteration {self.n_iter_}, "
                    f"layer {l}: {problem}; the weights are unchanged",
                    self.n_iter_,
                    l,
                )
            weights.append(w)
        self._weights = weights
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The ``n_L`` outputs of a forward pass, shape ``(m, n_L)``. Local.

        ``W_L h(... h(W_1 x))`` for each row ``x`` of ``X`` (shape
        ``(m, n_0)``), computed in blocks of rows in the network's dtype.
        """
        X = self._check_input(X, "X")
        m = X.shape[0]
        out = np.empty((m, self.layers[-1]), dtype=self.dtype)
        # With deterministic no call crosses a multiple of block_size: on ranks
        # holding whole blocks (as the program splits a test set) a sample is
        # computed in the same call on any number of ranks (_matmul_rows).
        step = self.block_size if self.deterministic else PREDICT_BLOCK
        ranges = [(base, min(base + step, m)) for base in range(0, m, step)]
        for rows in _split_rows(ranges, PREDICT_BLOCK):
            block = np.ascontiguousarray(X[rows], dtype=self.dtype)
            if self.deskew:
                block = deskew_images(block)
            if self.input_mean_ is not None:
                block = self._centred(block, self.input_mean_, in_place=self.deskew)
            hidden = self._features(block, self._weights[:-1])
            matmul(hidden, self._weights[-1], out[rows], transpose_b=True)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class labels ``(m,)``: arg-max of the outputs (one output: > 0.5). Local."""
        scores = self.decision_function(X)
        if scores.shape[1] == 1:
            return (scores[:, 0] > 0.5).astype(np.int64)
        return np.argmax(scores, axis=1).astype(np.int64)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)``, in [0, 1]. Local.

        ``y`` are class labels, or a target array whose arg-max (one output:
        ``> 0.5``) gives them.
        """
        labels = self._val_labels(y)
        if labels.shape[0] != np.shape(X)[0]:
            raise ValueError(f"y has {labels.shape[0]} samples, X has {np.shape(X)[0]}")
        if labels.size == 0:
            raise ValueError("score needs at least one sample")
        return float(np.mean(self.predict(X) == labels))

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and hyper-parameters to an ``.npz`` file. Local.

        The file is written to a temporary name and renamed, so an existing
        model is never left half-written. Call it on one rank.
        """
        arrays: dict[str, Any] = {
            "format_version": np.array(MODEL_FORMAT_VERSION),
            "layers": np.array(self.layers, dtype=np.int64),
            "activation": np.array(self.activation),
            "loss": np.array(self.loss),
            "beta": np.array(self.beta),
            "gamma": np.array(self.gamma, dtype=np.float64),
            "rho": np.array(self.rho_ if self.rho_ is not None else [], dtype=np.float64),
            "warmup": np.array(self.warmup),
            "dtype": np.array(self.dtype.name),
            "seed": np.array(self.seed),
            "n_iter": np.array(self.n_iter_),
            "rho_relative": np.array(self.rho_relative),
            "rho_final": np.array(self.rho_final),
            "rho_decay_iterations": np.array(self.rho_decay_iterations),
            "inertia": np.array(self.inertia),
            "backward_sweep": np.array(self.backward_sweep),
            "deskew": np.array(self.deskew),
            "multiplier": np.array(self.multiplier),
            "beta_growth": np.array(self.beta_growth),
            "gamma_growth": np.array(self.gamma_growth),
            "beta_max": np.array(
                self.beta_max if self.beta_max is not None else [], dtype=np.float64
            ),
            "gamma_max": np.array(
                self.gamma_max if self.gamma_max is not None else [], dtype=np.float64
            ),
            "input_mean": np.array(
                self.input_mean_ if self.input_mean_ is not None else [], dtype=np.float64
            ),
        }
        for i, w in enumerate(self._weights):
            arrays[f"W{i + 1}"] = w
        arrays["sha256"] = np.array(_model_sha256(arrays))
        atomic_savez(path, arrays)

    def get_state(self) -> dict[str, Any]:
        """This rank's full ADMM state, for a checkpoint. Local.

        Keys: ``weights`` (list), ``a`` (hidden activations, list), ``z``
        (list, one per weight layer), ``lam``, ``n_iter``, ``rho``,
        ``elapsed`` and ``history``. Arrays are the live buffers: copy them
        before training on.
        """
        if self._state is None:
            raise RuntimeError("the network has no state yet: call fit first")
        s = self._state
        return {
            "weights": list(self._weights),
            "a": list(s.a[1:]),
            "z": list(s.z),
            "lam": s.lam,
            "n_iter": self.n_iter_,
            "rho": tuple(self.rho_ or ()),
            "elapsed": s.elapsed,
            "history": list(self.history),
            "input_mean": self.input_mean_,
        }

    def set_state(self, state: dict[str, Any], X: np.ndarray, y: np.ndarray) -> None:
        """Restore a state from :meth:`get_state` on this rank's data. Local.

        Follow with ``fit(X, y, iterations, warm_start=True)`` on every rank to
        continue the same trajectory.
        """
        X = self._check_input(X, "X")
        if self.deskew:
            X = deskew_images(np.ascontiguousarray(X, dtype=self.dtype))
        mean = state.get("input_mean")
        if self.center:
            if mean is None or np.shape(mean) != (self.layers[0],):
                raise ValueError(
                    f"a centred network needs the state's input_mean of shape "
                    f"{(self.layers[0],)}, got {None if mean is None else np.shape(mean)}"
                )
            mean = np.asarray(mean, dtype=np.float64)
            X = self._centred(X, mean, in_place=self.deskew)
        elif mean is not None:
            raise ValueError("the state was centred (input_mean), this network has center=False")
        X = np.ascontiguousarray(X, dtype=self.dtype)
        m = X.shape[0]
        L = len(self.layers) - 1
        weights = self._check_weights(state["weights"])
        a = [np.ascontiguousarray(v, dtype=self.dtype) for v in state["a"]]
        z = [np.ascontiguousarray(v, dtype=self.dtype) for v in state["z"]]
        lam = np.ascontiguousarray(state["lam"], dtype=self.dtype)
        if len(a) != L - 1 or len(z) != L:
            raise ValueError(
                f"state has {len(a)} activations and {len(z)} outputs, expected {L - 1} and {L}"
            )
        for i, v in enumerate(a):
            if v.shape != (m, self.layers[i + 1]):
                raise ValueError(
                    f"state a_{i + 1} has shape {v.shape}, expected {(m, self.layers[i + 1])}"
                )
        for i, v in enumerate(z):
            if v.shape != (m, self.layers[i + 1]):
                raise ValueError(
                    f"state z_{i + 1} has shape {v.shape}, expected {(m, self.layers[i + 1])}"
                )
        if lam.shape != (m, self.layers[-1]):
            raise ValueError(f"state lam has shape {lam.shape}, expected {(m, self.layers[-1])}")
        rho = tuple(float(r) for r in state["rho"])
        if len(rho) != L:
            raise ValueError(f"state rho has {len(rho)} values, expected {L}")
        self._weights = weights
        self.rho_ = rho
        self.input_mean_ = mean
        self._layout = None  # summation blocks of other data: fit and refit rebuild them
        self._tree = None
        self._state = _State(self, X, self._targets(y, m), [X, *a], z, lam)
        self._state.elapsed = float(state.get("elapsed", 0.0))
        self.n_iter_ = int(state["n_iter"])
        self.history = list(state.get("history", []))

    # ------------------------------------------------------------ internals

    def penalties(self, t: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(beta, gamma)`` in force at 0-based iteration ``t``. Local.

        ``beta_l(t) = min(beta_l * beta_growth**t, beta_max_l)``, likewise
        gamma; exactly ``(beta, gamma)`` without continuation.
        """

        def schedule(
            base: tuple[float, ...], growth: float, cap: tuple[float, ...] | None
        ) -> tuple[float, ...]:
            if growth == 1.0:
                grown = base
            else:
                factor = growth**t
                grown = tuple(v * factor for v in base)
            if cap is None:
                return grown
            return tuple(min(v, c) for v, c in zip(grown, cap, strict=True))

        return (
            schedule(self.beta, self.beta_growth, self.beta_max),
            schedule(self.gamma, self.gamma_growth, self.gamma_max),
        )

    def ridges(self, t: int) -> tuple[float, ...]:
        """The ridge ``rho_l`` of each weight layer in force at 0-based iteration ``t``. Local.

        ``rho_l * rho_final**(min(t, T) / T)``, ``T = rho_decay_iterations``;
        exactly ``rho_`` without the decay. Known once ``fit`` has chosen
        ``rho_`` (or from construction with an explicit ``rho``).
        """
        if self.rho_ is None:
            raise RuntimeError("the ridge is chosen when training starts")
        if self.rho_final == 1.0:
            return self.rho_
        scale = self.rho_final ** (
            min(max(t, 0), self.rho_decay_iterations) / self.rho_decay_iterations
        )
        return tuple(r * scale for r in self.rho_)

    def _centred(self, X: np.ndarray, mean: np.ndarray, in_place: bool = False) -> np.ndarray:
        """``X - mean`` in the network's dtype (the mean rounded to it first, so
        training and prediction subtract the same values): a new array, or
        ``X`` itself overwritten with ``in_place`` (a copy the network owns)."""
        return np.subtract(
            X, mean.astype(self.dtype), out=X if in_place else None, dtype=self.dtype
        )

    def _input_mean(self, X: np.ndarray) -> np.ndarray:
        """Mean of all ranks' rows of ``X`` in float64, shape ``(n_0,)``. Collective."""
        n0 = X.shape[1]

        def sums(i: int, rows: slice, out: np.ndarray) -> None:
            out[:n0] = X[rows].sum(axis=0, dtype=np.float64)
            out[n0] = X[rows].shape[0]

        total = self._sample_sum(sums, np.empty(n0 + 1))
        if total[n0] <= 0:
            raise ValueError("center needs at least one training sample over all ranks")
        return total[:n0] / total[n0]

    def _features(self, block: np.ndarray, weights: Sequence[np.ndarray]) -> np.ndarray:
        """``h(... h(block W_1^T) ... W_k^T)`` for ``weights = (W_1, ..., W_k)``. Local.

        The forward features of layer ``k`` of the C-contiguous rows
        ``block`` (``(rows, n_0)``, already centred): ``(rows, n_k)``,
        ``block`` itself when ``k = 0``. At most two ``(rows, n)`` arrays are
        alive at a time.
        """
        for w in weights:
            nxt = np.empty((block.shape[0], w.shape[0]), dtype=self.dtype)
            matmul(block, w, nxt, transpose_b=True)
            rowwise(apply_activation, (nxt, nxt), 1.0, self.activation)
            block = nxt
        return block

    def _set_layout(self, comm: Communicator, m_local: int) -> None:
        """The summation blocks of ``deterministic`` for ``m_local`` rows here.

        Collective when ``deterministic`` (a gather of the row counts; every
        rank raises when a rank does not hold whole blocks); otherwise local.
        """
        self._layout = None
        if self.deterministic:
            # Global sample offsets follow from the local counts in rank order.
            counts = [int(c) for c in comm.gather_values(float(m_local))]
            layout = BlockLayout(counts, comm.rank, self.block_size)
            comm.raise_if_any(layout.misaligned())
            self._layout = layout
        self._tree = None  # built for this layout at the first sum

    def _row_blocks(self) -> list[slice]:
        """This rank's rows as summed: all at once, or one slice per global block."""
        if self._layout is None:
            return [slice(None)]
        return [rows for _, rows in self._layout.local_blocks()]

    def _product_rows(self, m: int) -> list[slice]:
        """The row ranges of the products of samples' own rows, ``m`` rows here.

        At most ``PRODUCT_ROWS`` rows each, and never across a summation block
        of ``deterministic``: a row's product must not depend on the rows that
        share its BLAS call, and with some BLAS kernels it does (OpenBLAS's
        Haswell kernels round the rows of a gemm's edge tiles differently,
        docs/determinism.md), while a block's rows, and so the calls inside
        it, are the same on any number of ranks.
        """
        return _split_rows([b.indices(m)[:2] for b in self._row_blocks()], PRODUCT_ROWS)

    def _matmul_rows(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, **kwargs: Any) -> None:
        """``matmul(a, b, out, **kwargs)`` on the rows of ``a`` and ``out``,
        one call per range of :meth:`_product_rows`. Local."""
        for rows in self._product_rows(a.shape[0]):
            matmul(a[rows], b, out[rows], **kwargs)

    def _sample_sum(self, leaf: Callable[[int, slice, np.ndarray], object], out: np.ndarray):
        """Fill ``out`` with a sum over all ranks' samples. Collective.

        ``leaf(i, rows, buf)`` fills ``buf`` (``out``'s shape and dtype) with
        the sum over the local rows ``rows = _row_blocks()[i]``. Without
        ``deterministic`` that is one call on all local rows and one
        Allreduce; with it one call per block of ``block_size`` global
        samples, the block sums added along the fixed tree of
        :mod:`admm._blocksum`, so ``out`` does not depend on the split.
        """
        comm = self._communicator()
        layout = self._layout
        if layout is None:
            leaf(0, slice(None), out)
            with phase("reduce"):
                return comm.sum_inplace(out)
        if self._tree is None or self._tree.layout is not layout:
            self._tree = TreeSum(layout, comm)
        blocks = layout.local_blocks()
        first = layout.first
        # The tree times its own messages as "reduce" (its leaves are compute).
        return self._tree(lambda b, buf: leaf(b - first, blocks[b - first][1], buf), out)

    def _communicator(self) -> Communicator:
        if self._comm is None:
            self._comm = Communicator(self._comm_arg)
        return self._comm

    def _config(self) -> tuple:
        return (
            self.layers,
            self.activation,
            self.loss,
            self.beta,
            self.gamma,
            self.rho,
            self.warmup,
            self.dtype.name,
            self.seed,
            self.deterministic,
            self.block_size,
            self.rho_relative,
            self.rho_final,
            self.rho_decay_iterations,
            self.inertia,
            self.backward_sweep,
            self.deskew,
            self.multiplier,
            self.beta_growth,
            self.gamma_growth,
            self.beta_max,
            self.gamma_max,
            self.center,
        )

    def _config_mismatch(self, comm: Communicator) -> str | None:
        configs = comm.agree(self._config())
        if any(c != configs[0] for c in configs):
            return "the ranks were given different network parameters"
        return None

    def _check_weights(self, weights: Sequence[np.ndarray]) -> list[np.ndarray]:
        weights = list(weights)
        if len(weights) != len(self.layers) - 1:
            raise ValueError(
                f"weights must hold {len(self.layers) - 1} arrays, got {len(weights)}"
            )
        out = []
        for i, w in enumerate(weights):
            w = np.array(w, dtype=self.dtype, order="C", copy=True)
            expected = (self.layers[i + 1], self.layers[i])
            if w.shape != expected:
                raise ValueError(f"weights[{i}] has shape {w.shape}, expected {expected}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"weights[{i}] contains NaN or inf")
            out.append(w)
        return out

    def _starting_weights(self) -> list[np.ndarray]:
        if self._initial_weights is not None:
            return [w.copy() for w in self._initial_weights]
        bit_generator = np.random.PCG64(self.seed)
        weights = []
        for n_in, n_out in zip(self.layers[:-1], self.layers[1:], strict=True):
            w = np.empty((n_out, n_in), dtype=self.dtype)
            glorot_uniform(w, bit_generator)
            weights.append(w)
        return weights

    def _check_input(self, X: np.ndarray, name: str) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.layers[0]:
            raise ValueError(
                f"{name} must have shape (samples, {self.layers[0]}) for layers "
                f"{self.layers}, got {X.shape}"
            )
        if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
            raise ValueError(f"{name} must hold real numbers, not {X.dtype}")
        # In row blocks: a whole-array test would hold one byte per entry
        # (47 MB for MNIST) on top of the training arrays.
        if not all(
            np.isfinite(X[i : i + PREDICT_BLOCK]).all()
            for i in range(0, X.shape[0], PREDICT_BLOCK)
        ):
            raise ValueError(f"{name} contains NaN or inf")
        return X

    def _validate_fit(self, X, y, iterations, X_val, y_val, eval_every) -> str | None:
        """The first problem with fit's arguments on this rank, or None."""
        try:
            if (
                isinstance(iterations, bool)
                or not isinstance(iterations, int | np.integer)
                or iterations < 0
            ):
                raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
            if (
                isinstance(eval_every, bool)
                or not isinstance(eval_every, int | np.integer)
                or eval_every < 1
            ):
                raise ValueError(f"eval_every must be a positive integer, got {eval_every!r}")
            X = self._check_input(X, "X")
            if self.deskew:
                check_pixels(X)
            self._targets(y, X.shape[0])
            if (X_val is None) != (y_val is None):
                raise ValueError("X_val and y_val must be given together")
            if X_val is not None:
                X_val = self._check_input(X_val, "X_val")
                if self.deskew:
                    check_pixels(X_val)
                labels = self._val_labels(y_val)
                if labels.shape[0] != X_val.shape[0]:
                    raise ValueError(
                        f"y_val has {labels.shape[0]} samples, X_val has {X_val.shape[0]}"
                    )
        except ValueError as exc:
            return str(exc)
        return None

    def _targets(self, y: np.ndarray, m: int) -> np.ndarray:
        """Labels (hinge) or targets (least squares) of m samples, checked."""
        n_out = self.layers[-1]
        y = np.asarray(y)
        if self.loss == "hinge":
            if y.shape != (m,):
                raise ValueError(f"y must hold {m} class labels, got shape {y.shape}")
            if y.size and not np.issubdtype(y.dtype, np.integer):
                if not np.issubdtype(y.dtype, np.floating) or np.any(y != np.round(y)):
                    raise ValueError("y must hold integer class labels")
            if y.size and (y.min() < 0 or y.max() >= n_out):
                raise ValueError(
                    f"y holds labels outside 0..{n_out - 1} "
                    f"(min {y.min()}, max {y.max()}) for {n_out} outputs"
                )
            return np.ascontiguousarray(y, dtype=np.int64)
        if y.shape != (m, n_out):
            raise ValueError(f"y must be a target array of shape {(m, n_out)}, got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or inf")
        return np.ascontiguousarray(y, dtype=self.dtype)

    def _val_labels(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        n_out = self.layers[-1]
        if y.ndim == 2:
            if y.shape[1] != n_out:
                raise ValueError(f"targets must have {n_out} columns, got shape {y.shape}")
            return (y[:, 0] > 0.5).astype(np.int64) if n_out == 1 else np.argmax(y, axis=1)
        if y.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {y.shape}")
        return y.astype(np.int64)

    def _global_accuracy(self, X_val: np.ndarray, y_val: np.ndarray) -> float:
        correct = float(np.sum(self.predict(X_val) == y_val))
        total = self._communicator().sum_values([correct, float(y_val.shape[0])])
        return float(total[0] / total[1]) if total[1] > 0 else float("nan")

    def _initialize(self, X: np.ndarray, y: np.ndarray) -> None:
        """Glorot (or given) weights, a forward pass, lam = 0. Collective."""
        self._weights = self._starting_weights()
        m = X.shape[0]
        a = [X]
        z = []
        for layer, w in enumerate(self._weights):
            zl = np.empty((m, w.shape[0]), dtype=self.dtype)
            self._matmul_rows(a[-1], w, zl, transpose_b=True)
            z.append(zl)
            if layer < len(self._weights) - 1:
                a.append(np.empty_like(zl))
                rowwise(apply_activation, (zl, a[-1]), 1.0, self.activation)
        lam = np.zeros((m, self.layers[-1]), dtype=self.dtype)
        if self.rho is None:
            # Mean diagonal of each Gram a_{l-1} a_{l-1}^T is ||a_{l-1}||_F^2 / n_{l-1}.
            def squares(i: int, rows: slice, out: np.ndarray) -> None:
                out[:] = [float(np.vdot(v[rows], v[rows])) for v in a]

            sq = self._sample_sum(squares, np.empty(len(a)))
            self.rho_ = tuple(
                float(self.rho_relative * max(s / n, np.finfo(np.float64).tiny))
                for s, n in zip(sq, self.layers[:-1], strict=True)
            )
        else:
            self.rho_ = self.rho
        self._state = _State(self, X, y, a, z, lam)
        self.n_iter_ = 0
        self.history = []

    def _iterate(self, t: int) -> tuple[float, float]:
        """Iteration ``t`` (0-based) of Algorithm 1. Collective.

        Returns the objective (with its ridge term) and the primal residual
        ``||z_L - W_L a_{L-1}||`` over all ranks.
        """
        s = self._state
        assert s is not None
        L = len(self._weights)
        # Local objective terms: gamma_l ||a_l - h(z_l)||^2 and
        # beta_l ||z_l - W_l a_{l-1}||^2 per hidden layer, the output layer's
        # loss + <z_L, lam> + beta_L ||z_L - W_L a_{L-1}||^2, and that residual.
        # One row of terms per summation block (one row without deterministic).
        # The entry-wise updates run on several threads (admm._threads), each
        # block's sums added in a fixed order of chunks: the same terms on any
        # number of threads.
        # With backward_sweep, one more column, summed only to be checked.
        blocks = self._row_blocks()
        hidden_terms = 2 * (L - 1)
        terms = np.zeros((len(blocks), hidden_terms + 2 + (1 if self.backward_sweep else 0)))
        beta, gamma = self.penalties(t)
        rho = self.ridges(t)

        def hidden_update(l: int) -> tuple[np.ndarray, np.ndarray]:
            """(2) and (3) for hidden layer l; per block gamma and beta terms."""
            zl = s.z[l - 1]
            with phase("activations"):
                s.update_activation(l, beta[l], gamma[l - 1])  # (2)
            with phase("hidden_z"):
                self._matmul_rows(s.a[l - 1], self._weights[l - 1], zl, transpose_b=True)  # (3)
                act, pen = rowwise(
                    hidden_z_update,
                    (zl, s.a[l]),
                    gamma[l - 1],
                    beta[l - 1],
                    self.activation,
                    blocks=blocks,
                    n_sums=2,
                ).T
            return gamma[l - 1] * act, beta[l - 1] * pen

        for l in range(1, L + 1):
            a_prev = s.a[l - 1]
            with phase("weights"):
                w = s.solve_weights(l, rho[l - 1])  # (1), (4)
                if self.inertia and t > 0:
                    w += self.inertia * (w - self._weights[l - 1])
                self._weights[l - 1] = w
            zl = s.z[l - 1]
            if l < L:
                terms[:, 2 * (l - 1)], terms[:, 2 * (l - 1) + 1] = hidden_update(l)
            else:
                with phase("output"):
                    self._matmul_rows(
                        a_prev, self._weights[l - 1], zl, transpose_b=True
                    )  # (5), (6)
                    update = output_hinge_update if self.loss == "hinge" else output_squared_update
                    update_lam = self.multiplier and t >= self.warmup
                    loss, dot, res = rowwise(
                        update,
                        (zl, s.lam, s.targets),
                        beta[-1],
                        update_lam,
                        blocks=blocks,
                        n_sums=3,
                    ).T
                terms[:, -2] = loss + dot + beta[-1] * res
                terms[:, -1] = res
        if self.backward_sweep:
            # The objective and residual above are those of the state after
            # the output update; the sweep only lowers the objective (exact
            # block minimisations), and its terms are summed to be checked.
            for l in range(L - 1, 0, -1):
                act, pen = hidden_update(l)
                terms[:, hidden_terms] += act + pen

        def block_terms(i: int, rows: slice, out: np.ndarray) -> None:
            out[:] = terms[i]

        with phase("objective"):
            total = self._sample_sum(block_terms, np.empty(terms.shape[1]))
        ridges = [beta[i] * rho[i] * float(np.vdot(w, w)) for i, w in enumerate(self._weights)]
        objective = float(total[:hidden_terms].sum() + total[-2] + sum(ridges))
        # One test of a few floats per iteration: NaN or inf anywhere in the
        # weights or in any rank's a, z or lam reaches the objective, the
        # residual or the sweep's terms, which are reduced sums and so agree
        # on every rank.
        if not (math.isfinite(objective) and math.isfinite(total[-1])):
            raise self._numerical_failure(t, total, ridges)
        if self.backward_sweep and not math.isfinite(total[hidden_terms]):
            raise NumericalError(
                f"numerical failure at iteration {t + 1}, in the backward sweep: the hidden "
                f"terms gamma_l ||a_l - h(z_l)||^2 + beta_l ||z_l - W_l a_(l-1)||^2 are "
                f"{'NaN' if math.isnan(total[hidden_terms]) else 'inf'} "
                f"({self.dtype.name} overflow or NaN: scale the data to smaller values, "
                "or lower beta and gamma)",
                t + 1,
            )
        return objective, math.sqrt(max(float(total[-1]), 0.0))

    def _numerical_failure(
        self, t: int, total: np.ndarray, ridges: Sequence[float]
    ) -> NumericalError:
        """The error for a non-finite objective of iteration ``t``, naming the
        first layer (in update order) where NaN or inf shows. Local, but every
        rank reaches the same verdict from the same reduced sums and weights."""
        L = len(self._weights)

        def kind(value: Any) -> str:
            return "NaN" if np.isnan(value).any() else "inf"

        problem = (L, f"the residual ||z_{L} - W_{L} a_{L - 1}||^2 is {kind(total[-1])}")
        for l in range(L, 0, -1):  # the first failing layer wins
            w = self._weights[l - 1]
            parts: list[tuple[float, str]] = []
            if l < L:
                parts += [
                    (total[2 * (l - 1)], f"gamma_{l} ||a_{l} - h(z_{l})||^2"),
                    (total[2 * (l - 1) + 1], f"beta_{l} ||z_{l} - W_{l} a_{l - 1}||^2"),
                ]
            else:
                parts.append(
                    (
                        total[-2],
                        f"the output term (loss + <z_{L}, lam> + beta_{L} "
                        f"||z_{L} - W_{L} a_{L - 1}||^2)",
                    )
                )
            parts.append((ridges[l - 1], f"the ridge term beta_{l} rho_{l} ||W_{l}||^2"))
            for value, name in reversed(parts):
                if not math.isfinite(value):
                    problem = (l, f"{name} is {kind(value)}")
            if not np.all(np.isfinite(w)):
                problem = (l, f"the weights W_{l} contain {kind(w)}")
        layer, what = problem
        return NumericalError(
            f"numerical failure at iteration {t + 1}, layer {layer}: {what} "
            f"({self.dtype.name} overflow or NaN: scale the data to smaller values, "
            "or lower beta and gamma)",
            t + 1,
            layer,
        )

    def _check_ridge(self) -> None:
        """Refuse a ridge that is not finite (the automatic one overflows when
        the squared data do). Every rank decides alike from reduced sums."""
        for l, r in enumerate(self.rho_ or (), start=1):
            if not (math.isfinite(r) and r > 0):
                raise NumericalError(
                    f"numerical failure before iteration 1, layer {l}: the ridge rho_{l} is "
                    f"{r:g} (the squared inputs of layer {l} overflow {self.dtype.name}: scale "
                    "the data to smaller values, or pass a rho)",
                    0,
                    l,
                )


class _State:
    """One rank's ADMM state and work buffers (a, z, lam, Gram factors)."""

    def __init__(
        self,
        net: ADMMNetwork,
        X: np.ndarray,
        targets: np.ndarray,
        a: list[np.ndarray],
        z: list[np.ndarray],
        lam: np.ndarray,
    ) -> None:
        self.net = net
        self.a = a  # a[0] is the input block X
        self.targets = targets
        self.z = z
        self.lam = lam
        self.elapsed = 0.0
        layers = net.layers
        # One reduction buffer per weight layer: the cross term z_l a_{l-1}^T
        # followed by the Gram a_{l-1} a_{l-1}^T (not for l = 1: the input
        # Gram never changes and is reduced and factored once, below).
        self.reduce_buffers = []
        for l in range(1, len(layers)):
            n_out, n_in = layers[l], layers[l - 1]
            size = n_out * n_in + (n_in * n_in if l > 1 else 0)
            self.reduce_buffers.append(np.empty(size, dtype=net.dtype))
        # Factor of a_0 a_0^T + rho_1 I: a_0 never changes, so it is reduced and
        # factored once, at the first weight update, and again (from the kept
        # float64 Gram, no new reduction) only when the ridge decays.
        self.input_factor: np.ndarray | None = None
        self.input_factor_rho: float | None = None
        self.input_gram: np.ndarray | None = None
        # Woodbury work space: (m, n_{l+1}) for each hidden layer whose next
        # layer is narrower.
        m = X.shape[0]
        self.woodbury = [
            np.empty((m, layers[l + 1]), dtype=net.dtype) if self.use_woodbury(l) else None
            for l in range(1, len(layers) - 1)
        ]

    @property
    def X(self) -> np.ndarray:
        return self.a[0]

    @X.setter
    def X(self, value: np.ndarray) -> None:
        self.a[0] = value

    def use_woodbury(self, l: int) -> bool:
        """Whether the a_l update inverts the small ``n_{l+1}`` system instead."""
        return self.net.layers[l + 1] < self.net.layers[l]

    def _input_gram_factor(self, rho: float) -> np.ndarray:
        """Cholesky factor of the reduced input Gram plus ``rho I``.

        Collective the first time (the Gram is reduced then); local when the
        Gram is kept for a decaying ridge and only ``rho`` changed.
        """
        if self.input_factor is not None and self.input_factor_rho == rho:
            return self.input_factor
        self.input_factor = None  # the old factor is freed before the new one is made
        if self.input_gram is None:
            n0 = self.net.layers[0]
            reduced = np.empty((n0, n0), dtype=self.net.dtype)
            self.net._sample_sum(lambda i, rows, out: gram(self.a[0][rows], out), reduced)
            g = reduced.astype(np.float64)
            del reduced
            if self.net.rho_final != 1.0:
                self.input_gram = g
        if self.input_gram is not None:
            g = self.input_gram.copy()  # factored in place
        self.input_factor = _factor_with_ridge(g, rho, layer=1)
        self.input_factor_rho = rho
        return self.input_factor

    def solve_weights(self, l: int, rho: float) -> np.ndarray:
        """W_l = (sum z_l a_{l-1}^T)(sum a_{l-1} a_{l-1}^T + rho I)^{-1}. Collective.

        Updates (1) and (4): :meth:`ridge_solve` of the state's ``z_l`` on
        ``a_{l-1}``, ``rho`` the ridge of layer ``l`` in force.
        """
        z, a = self.z[l - 1], self.a[l - 1]

        def products(rows: slice, c: np.ndarray, g: np.ndarray | None) -> None:
            cross(z[rows], a[rows], c)
            if g is not None:
                gram(a[rows], g)

        return self.ridge_solve(l, products, rho)

    def refit_weights(self, l: int, refit: Sequence[np.ndarray], rho: float) -> np.ndarray:
        """W_l = (sum z_l^T f_{l-1})(sum f_{l-1}^T f_{l-1} + rho I)^{-1}. Collective.

        The step of :meth:`ADMMNetwork.refit` for layer ``l``: ``f_{l-1}`` are
        the forward features of the input block through ``refit`` (the refit
        ``W_1 .. W_{l-1}``), formed ``PREDICT_BLOCK`` rows at a time inside
        the sum and accumulated by the kernels' ``beta`` (with
        ``deterministic`` per summation block, so the rounding still depends
        on the block alone; a default block of 256 rows is one chunk).
        For ``l = 1``, ``f_0 = a_0``: exactly :meth:`solve_weights`, with the
        cached input factor.
        """
        if l == 1:
            return self.solve_weights(1, rho)
        net = self.net
        X, z = self.X, self.z[l - 1]

        def products(rows: slice, c: np.ndarray, g: np.ndarray | None) -> None:
            assert g is not None  # l > 1: the Gram is summed with the cross term
            x, zl = X[rows], z[rows]
            # One block even when there are no rows, so that c and g are set.
            for start in range(0, max(x.shape[0], 1), PREDICT_BLOCK):
                chunk = slice(start, start + PREDICT_BLOCK)
                f = net._features(x[chunk], refit[: l - 1])
                accumulate = 0.0 if start == 0 else 1.0
                cross(zl[chunk], f, c, beta=accumulate)
                gram(f, g, beta=accumulate)

        return self.ridge_solve(l, products, rho)

    def ridge_solve(
        self,
        l: int,
        products: Callable[[slice, np.ndarray, np.ndarray | None], object],
        rho: float,
    ) -> np.ndarray:
        """``W_l = C (G + rho I)^{-1}`` from sums over all samples. Collective.

        ``products(rows, c, g)`` writes the local rows' cross term ``C``
        (``(n_l, n_{l-1})``) into ``c`` and, for ``l > 1``, their Gram ``G``
        (``(n_{l-1}, n_{l-1})``) into ``g``, both in the network's dtype,
        packed in one buffer for one sum over samples
        (:meth:`ADMMNetwork._sample_sum`). For ``l = 1`` ``g`` is None: the
        Gram is the input Gram, reduced and factored once.
        """
        net = self.net
        n_out, n_in = net.layers[l], net.layers[l - 1]
        buf = self.reduce_buffers[l - 1]

        def leaf(i: int, rows: slice, out: np.ndarray) -> None:
            g = out[n_out * n_in :].reshape(n_in, n_in) if l > 1 else None
            products(rows, out[: n_out * n_in].reshape(n_out, n_in), g)

        net._sample_sum(leaf, buf)
        c = buf[: n_out * n_in].reshape(n_out, n_in)
        if l == 1:
            factor = self._input_gram_factor(rho)
        else:
            factor = buf[n_out * n_in :].reshape(n_in, n_in).astype(np.float64)
            factor = _factor_with_ridge(factor, rho, layer=l)
        comm = net._communicator()
        if comm.size == 1 or net.deterministic:
            w = c.astype(np.float64)
            cholesky_solve(factor, w)
            return w.astype(net.dtype, copy=False)
        # The rows of W_l are independent solves with one matrix: each rank
        # solves its share and one Allgather assembles W_l, identical on
        # every rank (the solve is work that N ranks would otherwise repeat,
        # docs/scaling.md). Not with deterministic: OpenBLAS rounds a row
        # differently depending on which other rows share its potrs call,
        # so the split would make W_l depend on the number of ranks.
        starts = [n_out * r // comm.size for r in range(comm.size + 1)]
        rows = slice(starts[comm.rank], starts[comm.rank + 1])
        out = np.empty(c.shape, dtype=net.dtype)
        if rows.stop > rows.start:
            # Only this rank's rows are converted to float64 and solved.
            out[rows] = cholesky_solve(factor, c[rows].astype(np.float64))
        with phase("reduce"):
            return comm.allgather_rows(out, starts)

    def update_activation(self, l: int, b: float, g: float) -> None:
        """a_l <- (b W^T W + g I)^{-1} (b W^T z_{l+1} + g h(z_l)), W = W_{l+1}. Local.

        ``b`` is beta_{l+1} and ``g`` gamma_l in force this iteration.

        Uses ``z_l`` as work space when the next layer is not narrower: call it
        only where (3) overwrites ``z_l`` next.
        """
        net = self.net
        w = net._weights[l]  # W_{l+1}, shape (n_{l+1}, n_l)
        a = self.a[l]
        w64 = w.astype(np.float64)
        if self.use_woodbury(l):
            # Right-hand side, one row per sample: g h(z_l) + b z_{l+1} W_{l+1}.
            rowwise(apply_activation, (self.z[l - 1], a), g, net.activation)
            net._matmul_rows(self.z[l], w, a, alpha=b, beta=1.0)
            # (b W^T W + g I)^{-1} = (I - b W^T (g I + b W W^T)^{-1} W) / g:
            # only an n_{l+1} x n_{l+1} system, when the next layer is narrower.
            small = np.empty((w.shape[0], w.shape[0]))
            gram(w64.T, small, alpha=b)
            cholesky_factor(small, shift=g)
            t = self.woodbury[l - 1]
            assert t is not None  # allocated for every layer that uses Woodbury
            net._matmul_rows(a, w, t, transpose_b=True)
            small = small.astype(net.dtype, copy=False)
            for rows in net._product_rows(t.shape[0]):  # as the products
                cholesky_solve(small, t[rows])
            net._matmul_rows(t, w, a, alpha=-b / g, beta=1.0 / g)
        else:
            # M = b W^T W + g I is applied as an explicit inverse by one gemm
            # (two trsm over all samples run at half the GEMM rate). As
            # accurate as the solve here: M >= g I, so
            # cond(M) <= 1 + b ||W||_2^2 / g is small (gamma is 20 against
            # beta 0.2 in the published setting), and the error of M^{-1}
            # from the Cholesky factor is bounded by cond(M) times the
            # precision, like the solve's. Factored and inverted in float64.
            inverse = np.empty((w.shape[1], w.shape[1]))
            gram(w64, inverse, alpha=b)
            cholesky_factor(inverse, shift=g)
            cholesky_inverse(inverse)
            # The right-hand side goes into z_l, free until (3) overwrites
            # it, so that the product needs no (m, n_l) temporary.
            rhs = self.z[l - 1]
            rowwise(apply_activation, (rhs, rhs), g, net.activation)
            net._matmul_rows(self.z[l], w, rhs, alpha=b, beta=1.0)
            net._matmul_rows(rhs, inverse.astype(net.dtype, copy=False), a)


def _split_rows(ranges: Sequence[tuple[int, int]], size: int) -> list[slice]:
    """Slices of at most ``size`` rows covering each ``(start, stop)`` of
    ``ranges`` in order, none across the end of a range."""
    return [
        slice(lo, min(lo + size, stop))
        for start, stop in ranges
        for lo in range(start, stop, size)
    ]


def _factor_with_ridge(g: np.ndarray, rho: float, layer: int) -> np.ndarray:
    """Cholesky factor of the float64 Gram ``g + rho I``, in place."""
    try:
        return cholesky_factor(g, shift=rho)
    except np.linalg.LinAlgError as exc:
        raise np.linalg.LinAlgError(
            f"the Gram matrix of layer {layer} plus the ridge rho={rho:.3g} is not "
            f"positive definite ({exc}); pass a larger rho"
        ) from None


def _model_sha256(arrays: dict[str, Any]) -> str:
    """Hex SHA-256 of a model's arrays: names, dtypes, shapes and bytes, by name."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{a.dtype.str}{a.shape}:".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def load(path: str | os.PathLike) -> ADMMNetwork:
    """Read a network written by :meth:`ADMMNetwork.save`. Local; needs no MPI.

    Raises ``ValueError`` naming the problem when the file is not an admm
    model (missing arrays, an unknown format version, inconsistent shapes).
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{os.fspath(path)} is not a readable admm model: {exc}") from None
    missing = {"format_version", "layers", "activation", "loss", "beta", "gamma", "dtype"} - set(
        data
    )
    if missing:
        raise ValueError(f"{os.fspath(path)} is not an admm model: missing {sorted(missing)}")
    version = int(data["format_version"])
    if version not in _MODEL_VERSIONS_READ:
        raise ValueError(
            f"{os.fspath(path)} has model format {version}; this admm reads "
            f"{', '.join(map(str, _MODEL_VERSIONS_READ))}"
        )
    if version >= 2:
        if "sha256" not in data:
            raise ValueError(f"{os.fspath(path)} is not an admm model: missing ['sha256']")
        saved = str(data.pop("sha256"))
        if _model_sha256(data) != saved:
            raise ValueError(
                f"{os.fspath(path)} is corrupt: its arrays do not match the checksum "
                "written with them (a damaged or edited model file)"
            )
    layers = tuple(int(n) for n in data["layers"])
    weights = []
    for i in range(len(layers) - 1):
        key = f"W{i + 1}"
        if key not in data:
            raise ValueError(f"{os.fspath(path)} is not an admm model: missing {key}")
        weights.append(data[key])
    rho = data["rho"].tolist() if "rho" in data and data["rho"].size else None

    def optional(key: str) -> list[float] | None:
        return data[key].tolist() if key in data and data[key].size else None

    net = ADMMNetwork(
        layers,
        activation=str(data["activation"]),
        loss=str(data["loss"]),
        beta=data["beta"].tolist(),
        gamma=data["gamma"].tolist() if data["gamma"].size else 1.0,
        rho=rho,
        warmup=int(data.get("warmup", 0)),
        dtype=str(data["dtype"]),
        seed=int(data.get("seed", 0)),
        weights=weights,
        rho_relative=float(data.get("rho_relative", RHO_RELATIVE)),
        rho_final=float(data.get("rho_final", 1.0)),
        rho_decay_iterations=int(data.get("rho_decay_iterations", 0)),
        inertia=float(data.get("inertia", 0.0)),
        backward_sweep=bool(data.get("backward_sweep", False)),
        deskew=bool(data.get("deskew", False)),
        multiplier=bool(data.get("multiplier", True)),
        beta_growth=float(data.get("beta_growth", 1.0)),
        gamma_growth=float(data.get("gamma_growth", 1.0)),
        beta_max=optional("beta_max"),
        gamma_max=optional("gamma_max"),
        center="input_mean" in data and data["input_mean"].size > 0,
    )
    if net.center:
        mean = np.asarray(data["input_mean"], dtype=np.float64)
        if mean.shape != (layers[0],):
            raise ValueError(
                f"{os.fspath(path)} is not an admm model: input_mean has shape {mean.shape}, "
                f"expected {(layers[0],)}"
            )
        net.input_mean_ = mean
    net.n_iter_ = int(data.get("n_iter", 0))
    return net
