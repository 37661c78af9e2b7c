"""The estimator: :class:`ADMMNetwork`, a thin layer over :class:`admm.solver.Solver`.

It checks the data, prepares the input block (conversion, deskewing, power
normalisation, unit rows, centring, spectral scaling), builds the sample
reducer and the solver, drives the iterations (:meth:`ADMMNetwork.fit`,
:meth:`ADMMNetwork.step`), predicts, and reads and writes model files (:mod:`admm.storage`). Its options are those of the
parameter table, :class:`admm.config.Config`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from admm_core import matmul

from . import activations, losses
from ._blocksum import PRODUCT_ROWS, SampleReducer, split_rows
from ._mpi import Communicator
from .config import BLOCK_SIZE, RHO_RELATIVE, Config, options_doc
from .preprocessing import (
    MOMENT_BLOCK,
    check_pixels,
    image_side,
    normalize_rows,
    power_normalize,
    spectral_scaling,
)
from .preprocessing import deskew as deskew_images
from .solver import (
    PREDICT_BLOCK,
    NumericalError,
    Solver,
    forward_features,
    glorot_weights,
    penalties,
    ridges,
)
from .storage import MODEL_FORMAT_VERSION, read_model, write_model
from .timing import phase

__all__ = [
    "BLOCK_SIZE",
    "MODEL_FORMAT_VERSION",
    "PREDICT_BLOCK",
    "PRODUCT_ROWS",
    "RHO_RELATIVE",
    "ADMMNetwork",
    "NumericalError",
    "load",
]

Callback = Callable[["ADMMNetwork", dict], Any]

#: Options that hold one value per layer: read back as tuples of that length.
_PER_LAYER = ("beta", "gamma", "rho", "beta_max", "gamma_max")


class ADMMNetwork:
    """A fully connected network trained by ADMM, data-parallel over MPI.

    ``ADMMNetwork(layers, **options)``: ``layers`` are the widths
    ``(n_0, ..., n_L)`` (input features, hidden widths, outputs); every other
    option is a keyword of the parameter table :class:`admm.config.Config`
    (listed below with its default; ``config=`` passes a whole ``Config``,
    keywords override it). ``activation`` and ``loss`` may also be given by
    position. Options are read back as attributes (``net.beta``, per-layer
    options as one value per layer; ``net.dtype`` as a NumPy dtype) and as
    ``net.config``.

    Besides the options:

    - ``weights``: initial ``W_l`` of shape ``(n_l, n_{l-1})``, replacing the
      Glorot-uniform draw of ``seed``;
    - ``comm``: the mpi4py communicator of the ranks that train together
      (default ``MPI.COMM_WORLD``), duplicated at the first ``fit`` so our
      messages never mix with the caller's.

    ``docs/method.md`` explains every option; ``docs/determinism.md`` the
    promise and cost of ``deterministic``.

    Attributes
    ----------
    weights : list of ndarray
        The current ``W_l`` (read-only views), identical on every rank.
    history : list of dict
        One record per iteration: ``iteration``, ``objective``, ``residual``
        (``||z_L - W_L a_{L-1}||`` over all samples), ``val_accuracy`` (None
        when not evaluated) and ``time_s`` (training seconds so far: the
        set-up of each ``fit`` (conversion, deskewing, centring, the initial
        forward pass), the ADMM iterations and their refits; validation and
        callbacks excluded).
    n_iter_ : int
        Iterations done.
    rho_ : tuple of float
        The ridge of each layer at iteration 0 (:meth:`ridges` gives the one
        in force at each iteration when it decays).
    input_mean_ : ndarray of shape (n_0,) or None
        The mean training input subtracted with ``center`` (float64).
    input_basis_ : ndarray of shape (n_0, n_0) or None
        The symmetric matrix that multiplies the centred inputs with
        ``spectral_power`` (float64; :func:`admm.preprocessing.spectral_scaling`
        of the training inputs' covariance over all ranks).

    Options
    -------
    """

    def __init__(
        self,
        layers: Sequence[int],
        activation: str | None = None,
        loss: str | None = None,
        *,
        weights: Sequence[np.ndarray] | None = None,
        comm: Any = None,
        config: Config | None = None,
        **options: Any,
    ) -> None:
        layers = tuple(layers)
        if len(layers) < 2 or any(
            not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1 for n in layers
        ):
            raise ValueError(
                f"layers must be at least two positive integer widths, got {layers!r}"
            )
        self.layers: tuple[int, ...] = tuple(int(n) for n in layers)
        if activation is not None:
            options["activation"] = activation
        if loss is not None:
            options["loss"] = loss
        unknown = sorted(set(options) - set(Config.__dataclass_fields__))
        if unknown:
            raise TypeError(
                f"ADMMNetwork got unknown option {unknown[0]!r}; the options are those of "
                "admm.config.Config"
            )
        self.config = (config or Config()).replace(**options)
        n_weight = len(self.layers) - 1
        for name in _PER_LAYER:  # the counts need the layers
            self.config.per_layer(name, n_weight, options.get(name))
        if self.config.deskew:
            image_side(self.layers[0])  # raises unless the inputs can be square images
        self._activation = activations.get(self.config.activation, self.config)
        self._loss = losses.get(self.config.loss, self.config)
        self._initial_weights = None if weights is None else self._check_weights(weights)
        self._comm_arg = comm
        self._comm: Communicator | None = None
        self._weights = self._starting_weights()
        self._solver: Solver | None = None
        self.history: list[dict] = []
        self.n_iter_ = 0
        self.rho_: tuple[float, ...] | None = self.config.per_layer("rho", n_weight)
        self.input_mean_: np.ndarray | None = None
        self.input_basis_: np.ndarray | None = None

    def __getattr__(self, name: str) -> Any:
        # Options read back as attributes (only called for names not found
        # otherwise; "config" itself missing means __init__ has not set it).
        if name == "config" or name not in Config.__dataclass_fields__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        if name in _PER_LAYER:
            return self.config.per_layer(name, len(self.layers) - 1)
        if name == "dtype":
            return np.dtype(self.config.dtype)
        return getattr(self.config, name)

    # ------------------------------------------------------------------ API

    @property
    def weights(self) -> list[np.ndarray]:
        """The weights ``W_l``, shapes ``(n_l, n_{l-1})``, as read-only views."""
        views = []
        for w in self._current_weights():
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
            The training targets as the loss takes them: integer class labels
            ``(m_local,)`` in ``0..n_L-1`` for the hinge loss, an
            ``(m_local, n_L)`` target array for least squares.
        iterations : int
            Total number of iterations: with ``warm_start`` the run continues
            from ``n_iter_`` up to this count. 0 sets up the state (the
            initial forward pass; with ``subset_iterations``, after the run
            on the subset) without iterating, for :meth:`step`.
        X_val, y_val : arrays, optional
            This rank's block of validation samples; the accuracy over all
            ranks' blocks is recorded every ``eval_every`` iterations (counted
            from ``refit_first`` when it is set: after the refits when
            ``eval_every`` is a multiple of ``refit_every``,
            :meth:`Config.evaluation_due`) and at the last one.
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
        comm.agreed(lambda: self._check_fit(X, y, iterations, X_val, y_val, eval_every))
        # The set-up below (conversion, the input transforms, the initial
        # forward pass) is training time too: counted in ``time_s``.
        setup_started = time.perf_counter()
        # Hyper-parameters must agree across ranks, or the Allreduces would
        # silently sum different problems.
        comm.raise_if_any(self._config_mismatch(comm))
        resuming = warm_start and self._solver is not None
        start_weights = None
        if self.config.subset_iterations and not resuming:
            start_weights = self._subset_weights(X, y)
        y = self._loss.targets(y, np.shape(X)[0], self.layers[-1], self.dtype)
        if X_val is not None and y_val is not None:
            X_val = np.ascontiguousarray(X_val, dtype=self.dtype)
            y_val = self._loss.labels(y_val, self.layers[-1])
        reducer = SampleReducer(
            comm, np.shape(X)[0], self.config.deterministic, self.config.block_size
        )
        X = self._training_inputs(X, reducer, comm, resuming)
        if resuming:
            assert self._solver is not None
            message = None
            if self._solver.X.shape != X.shape:
                message = (
                    f"warm_start needs the data of the saved state: X has shape "
                    f"{X.shape}, the state was built for {self._solver.X.shape}"
                )
            comm.raise_if_any(message)
            self._solver.X = X
            self._solver.targets = y
            self._solver.reducer = reducer
        else:
            self._solver = Solver.start(
                self.config,
                self.layers,
                self._activation,
                self._loss,
                reducer,
                X,
                y,
                self._starting_weights() if start_weights is None else start_weights,
            )
            self.rho_ = self._solver.rho
            self.n_iter_ = 0
            self.history = []
        self._solver.elapsed += time.perf_counter() - setup_started
        for _ in range(self.n_iter_, iterations):
            due = (
                self.config.evaluation_due(self.n_iter_ + 1, eval_every)
                or self.n_iter_ + 1 == iterations
            )
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
        return self._advance(None)

    def _advance(self, validation: tuple[np.ndarray, np.ndarray] | None) -> dict:
        """Iteration ``n_iter_``, its history record, and the validation
        accuracy on ``validation`` (all ranks' blocks) when given. Collective."""
        solver = self._ready_solver("step")
        t = self.n_iter_
        started = time.perf_counter()
        refit = self.config.refits_after(t + 1)
        try:
            with phase("iteration"):
                # A refit that keeps W_1 reuses the iteration's h(a_0 W_1^T).
                hold = refit and not self.config.refit_input_layer
                objective, residual = solver.step(t, hold_input_features=hold)
        except np.linalg.LinAlgError as exc:
            # The factored matrices are reduced sums or built from the
            # weights, identical on every rank: every rank fails here.
            raise NumericalError(f"numerical failure at iteration {t + 1}: {exc}", t + 1) from None
        if refit:
            # The forward refit as part of the iteration (and of its time),
            # with the ridge of this iteration.
            solver.weights = solver.refit(self.ridges(t), t + 1)
        # Training time only: validation and the callback (checkpoints,
        # logging) are not counted.
        solver.elapsed += time.perf_counter() - started
        self.n_iter_ = t + 1
        record = {
            "iteration": self.n_iter_,
            "objective": objective,
            "residual": residual,
            "val_accuracy": None if validation is None else self._global_accuracy(*validation),
            "time_s": solver.elapsed,
        }
        self.history.append(record)
        return record

    def refit(
        self,
        *,
        readout_iterations: int | None = None,
        readout_beta: float | None = None,
        readout_ridge: float | None = None,
    ) -> ADMMNetwork:
        """Re-solve every weight layer on the network's own forward features.

        Collective on ``comm``. ADMM leaves weights that fit its state
        (``z_l ~ W_l a_{l-1}``), but a forward pass feeds layer ``l`` with
        ``h`` of the previous layer's output, not with ``a_{l-1}``
        (docs/accuracy-study.md). For ``l = 1..L`` in order, with samples in
        rows,

            W_l <- (sum z_l^T f_{l-1}) (sum f_{l-1}^T f_{l-1} + rho_l I)^{-1}
            f_l  = h(f_{l-1} W_l^T)        (with the refit W_l)

        (from ``l = 2``, ``W_1`` kept, without ``refit_input_layer``)

        the sums running over all ranks' samples: ``z_l`` ``(m, n_l)`` is the
        state's, ``f_0`` ``(m, n_0)`` the training block the state holds
        (deskewed with ``deskew``, centred with ``center``). That is updates
        (1)/(4) of ``docs/method.md`` with the forward features in place of
        ``a_{l-1}``, with the ridge of the last iteration (:meth:`ridges`)
        and the same sums and float64 Cholesky solve; with ``deterministic``
        the result does not depend on the number of ranks, bit for bit. The
        features are recomputed from ``f_0`` for every layer in blocks of
        ``PREDICT_BLOCK`` rows, never held whole (except the read-out's
        ``f_{L-1}``): the memory of a test evaluation, and a little less work
        than one iteration.

        With ``readout_iterations`` K, ``W_L`` is instead fitted to the loss
        itself on ``f_{L-1}``: K iterations of ADMM on the convex problem
        ``sum C(W_L f_{L-1}) + readout_beta rho ||W_L||^2`` (``rho`` is
        ``readout_ridge`` times the mean diagonal of the Gram of ``f_{L-1}``),
        from the least-squares fit to ``z_L`` with that ridge
        (:meth:`admm.solver.Solver.readout_weights`); ``f_{L-1}`` is then held
        whole, ``(m, n_{L-1})``, beside the read-out's own ``z`` and ``lam``.
        The keyword arguments override those three options for this refit
        only (checked as the options are, ``ValueError`` naming the option,
        before any communication); the refit depends on the state alone, so
        one trained network can be refit with several read-outs.

        The weights used by :meth:`predict` and written by :meth:`save` (and
        by :meth:`get_state`) are replaced; the ADMM state (``a``, ``z``,
        ``lam``), ``n_iter_`` and ``history`` are left as they are. A later
        ``fit(warm_start=True)`` continues from the refit weights, so it does
        not follow the trajectory of an uninterrupted run (a state saved
        before the refit does). The training block is the ``X`` of the last
        ``fit`` or :meth:`set_state`; do not change it in between.

        Raises
        ------
        ValueError
            A read-out override that its option would refuse.
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
        if self._solver is None:
            raise RuntimeError(
                "refit needs the ADMM state of a fit: call fit (or set_state) first; "
                "a loaded model has no state"
            )
        given = {"readout_iterations": readout_iterations, "readout_beta": readout_beta,
                 "readout_ridge": readout_ridge}  # fmt: skip
        readout = self.config.replace(**{k: v for k, v in given.items() if v is not None})
        solver = self._ready_solver("refit")
        rho = self.ridges(self.n_iter_ - 1)  # the ridge of the last iteration
        solver.weights = solver.refit(rho, self.n_iter_, readout)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The ``n_L`` outputs of a forward pass, shape ``(m, n_L)``. Local.

        ``W_L h(... h(W_1 x))`` for each row ``x`` of ``X`` (shape
        ``(m, n_0)``), computed in blocks of rows in the network's dtype.
        """
        return self._forward(X, outputs=True)

    def hidden_features(self, X: np.ndarray) -> np.ndarray:
        """The last hidden layer's activations, shape ``(m, n_{L-1})``. Local.

        ``h(W_{L-1} ... h(W_1 x))`` for each row ``x`` of ``X`` (prepared as
        in training: deskewed, centred), the features the output weights
        ``W_L`` read (``decision_function`` is them times ``W_L^T``); the
        prepared ``X`` itself when the network has no hidden layer. Computed
        in blocks of rows in the network's dtype.
        """
        return self._forward(X, outputs=False)

    def _forward(self, X: np.ndarray, outputs: bool) -> np.ndarray:
        """The forward pass of :meth:`decision_function` (``outputs``) or of
        :meth:`hidden_features`, block by block. Local."""
        X = self._check_input(X, "X")
        m = X.shape[0]
        weights = self._current_weights()
        out = np.empty((m, self.layers[-1 if outputs else -2]), dtype=self.dtype)
        # With deterministic no call crosses a multiple of block_size: on ranks
        # holding whole blocks (as the program splits a test set) a sample is
        # computed in the same call on any number of ranks.
        step = self.config.block_size if self.config.deterministic else PREDICT_BLOCK
        ranges = [(base, min(base + step, m)) for base in range(0, m, step)]
        for rows in split_rows(ranges, PREDICT_BLOCK):
            block = self._prepared(X[rows], self.input_mean_, self.input_basis_)
            hidden = forward_features(block, weights[:-1], self._activation)
            if outputs:
                matmul(hidden, weights[-1], out[rows], transpose_b=True)
            else:
                out[rows] = hidden
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class labels ``(m,)`` from the outputs (see the loss's ``predict``). Local."""
        return self._loss.predict(self.decision_function(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(m, n_classes)`` of the loss (the softmax of the
        outputs for ``cross_entropy``, ``(1 - sigmoid, sigmoid)`` of the one
        output for ``logistic``). Local.

        Raises ``AttributeError`` for a loss that defines no probabilities
        (hinge, squared).
        """
        proba = getattr(self._loss, "proba", None)
        if proba is None:
            raise AttributeError(
                f"predict_proba needs a loss that defines probabilities (cross_entropy, "
                f"logistic), not {self.config.loss!r}"
            )
        return proba(self.decision_function(X))

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)``, in [0, 1]. Local.

        ``y`` are class labels, or a target array whose arg-max (one output:
        ``> 0.5``) gives them.
        """
        labels = self._loss.labels(y, self.layers[-1])
        if labels.shape[0] != np.shape(X)[0]:
            raise ValueError(f"y has {labels.shape[0]} samples, X has {np.shape(X)[0]}")
        if labels.size == 0:
            raise ValueError("score needs at least one sample")
        return float(np.mean(self.predict(X) == labels))

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and options to an ``.npz`` model file. Local.

        The file is written to a temporary name and renamed, so an existing
        model is never left half-written. Call it on one rank.
        """
        write_model(
            path,
            self.layers,
            self.config,
            self._current_weights(),
            self.rho_,
            self.n_iter_,
            self.input_mean_,
            self.input_basis_,
        )

    def get_state(self) -> dict[str, Any]:
        """This rank's full ADMM state, for a checkpoint. Local.

        Keys: ``weights`` (list), ``a`` (hidden activations, list), ``z``
        (list, one per weight layer), ``lam``, ``n_iter``, ``rho``,
        ``elapsed``, ``history``, ``input_mean`` and ``input_basis``. Arrays
        are the live buffers: copy them before training on.
        """
        if self._solver is None:
            raise RuntimeError("the network has no state yet: call fit first")
        s = self._solver
        return {
            "weights": list(s.weights),
            "a": list(s.a[1:]),
            "z": list(s.z),
            "lam": s.lam,
            "n_iter": self.n_iter_,
            "rho": tuple(self.rho_ or ()),
            "elapsed": s.elapsed,
            "history": list(self.history),
            "input_mean": self.input_mean_,
            "input_basis": self.input_basis_,
        }

    def set_state(self, state: dict[str, Any], X: np.ndarray, y: np.ndarray) -> None:
        """Restore a state from :meth:`get_state` on this rank's data. Local.

        Follow with ``fit(X, y, iterations, warm_start=True)`` on every rank
        (or :meth:`step`) to continue the same trajectory.
        """
        X = self._check_input(X, "X")
        mean = state.get("input_mean")
        if self.config.center:
            if mean is None or np.shape(mean) != (self.layers[0],):
                raise ValueError(
                    f"a centred network needs the state's input_mean of shape "
                    f"{(self.layers[0],)}, got {None if mean is None else np.shape(mean)}"
                )
            mean = np.asarray(mean, dtype=np.float64)
        elif mean is not None:
            raise ValueError("the state was centred (input_mean), this network has center=False")
        basis = state.get("input_basis")
        if self.config.spectral_power:
            n0 = self.layers[0]
            if basis is None or np.shape(basis) != (n0, n0):
                raise ValueError(
                    f"a network with spectral_power needs the state's input_basis of shape "
                    f"{(n0, n0)}, got {None if basis is None else np.shape(basis)}"
                )
            basis = np.asarray(basis, dtype=np.float64)
        elif basis is not None:
            raise ValueError(
                "the state has an input_basis (spectral_power), this network has spectral_power 0"
            )
        X = np.ascontiguousarray(self._prepared(X, mean, basis), dtype=self.dtype)
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
        for name, arrays in (("a", a), ("z", z)):
            for i, v in enumerate(arrays):
                if v.shape != (m, self.layers[i + 1]):
                    raise ValueError(
                        f"state {name}_{i + 1} has shape {v.shape}, "
                        f"expected {(m, self.layers[i + 1])}"
                    )
        if lam.shape != (m, self.layers[-1]):
            raise ValueError(f"state lam has shape {lam.shape}, expected {(m, self.layers[-1])}")
        rho = tuple(float(r) for r in state["rho"])
        if len(rho) != L:
            raise ValueError(f"state rho has {len(rho)} values, expected {L}")
        targets = self._loss.targets(y, m, self.layers[-1], self.dtype)
        # The reducer needs the communicator (collective): the next fit, step
        # or refit makes it.
        self._solver = Solver(
            self.config,
            self.layers,
            self._activation,
            self._loss,
            None,
            X,
            targets,
            weights,
            a,
            z,
            lam,
            rho,
        )
        self._solver.elapsed = float(state.get("elapsed", 0.0))
        self.rho_ = rho
        self.input_mean_ = mean
        self.input_basis_ = basis
        self.n_iter_ = int(state["n_iter"])
        self.history = list(state.get("history", []))

    def allocated_bytes(self) -> dict[str, int]:
        """Bytes of the arrays the network holds now, by kind. Local.

        The kinds of :func:`admm.metrics.memory_breakdown`: with a state, the
        solver's arrays (``activations``, ``outputs``, ``multiplier``,
        ``woodbury``, ``weights``, ``reduce``, ``input_factor``), ``input``
        (the block the state holds: the caller's own when it needed no
        conversion) and ``targets`` (the training targets the loss keeps);
        without one, only ``weights``.
        """
        if self._solver is None:
            return {"weights": sum(w.nbytes for w in self._weights)}
        s = self._solver
        return {**s.allocated_bytes(), "input": s.X.nbytes, "targets": s.targets.nbytes}

    def penalties(self, t: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(beta, gamma)`` in force at 0-based iteration ``t``, one per layer. Local.

        ``beta_l(t) = min(beta_l * beta_growth**t, beta_max_l)``, likewise
        gamma; exactly ``(beta, gamma)`` without continuation.
        """
        return penalties(self.config, len(self.layers) - 1, t)

    def ridges(self, t: int) -> tuple[float, ...]:
        """The ridge ``rho_l`` of each weight layer in force at 0-based iteration ``t``. Local.

        ``rho_l * rho_final**(min(t, T) / T)``, ``T = rho_decay_iterations``;
        exactly ``rho_`` without the decay. Known once ``fit`` has chosen
        ``rho_`` (or from construction with an explicit ``rho``).
        """
        if self.rho_ is None:
            raise RuntimeError("the ridge is chosen when training starts")
        return ridges(self.config, self.rho_, t)

    # ------------------------------------------------------------ internals

    def _current_weights(self) -> list[np.ndarray]:
        return self._solver.weights if self._solver is not None else self._weights

    def _ready_solver(self, what: str) -> Solver:
        """The solver, with its reducer (collective the first time after
        :meth:`set_state`, when ``deterministic``)."""
        if self._solver is None:
            raise RuntimeError(f"{what} needs a state: call fit (iterations=0 sets one up) first")
        if self._solver.reducer_or_none is None:
            self._solver.reducer = SampleReducer(
                self._communicator(),
                self._solver.X.shape[0],
                self.config.deterministic,
                self.config.block_size,
            )
        return self._solver

    def _centred(self, X: np.ndarray, mean: np.ndarray, in_place: bool = False) -> np.ndarray:
        """``X - mean`` in the network's dtype (the mean rounded to it first, so
        training and prediction subtract the same values): a new array, or
        ``X`` itself overwritten with ``in_place`` (a copy the network owns)."""
        return np.subtract(
            X, mean.astype(self.dtype), out=X if in_place else None, dtype=self.dtype
        )

    def _input_mean(self, X: np.ndarray, reducer: SampleReducer) -> np.ndarray:
        """Mean of all ranks' rows of ``X`` in float64, shape ``(n_0,)``. Collective."""
        n0 = X.shape[1]

        def sums(i: int, rows: slice, out: np.ndarray) -> None:
            out[:n0] = X[rows].sum(axis=0, dtype=np.float64)
            out[n0] = X[rows].shape[0]

        total = reducer.sum(sums, np.empty(n0 + 1))
        if total[n0] <= 0:
            raise ValueError("center needs at least one training sample over all ranks")
        return total[:n0] / total[n0]

    def _training_inputs(
        self, X: np.ndarray, reducer: SampleReducer, comm: Communicator, resuming: bool
    ) -> np.ndarray:
        """The training block as the first layer sees it: converted, through
        the per-sample steps, centred on the mean of all ranks' samples and
        multiplied by the ``spectral_power`` matrix, each when on. A resumed
        run keeps the mean and matrix its state was built with. Collective."""
        X, owned = self._per_sample(np.ascontiguousarray(X, dtype=self.dtype))
        if self.config.input_power != 1.0:
            # Finite inputs may overflow under a large power: name it on every rank.
            finite = all(
                np.isfinite(X[i : i + PREDICT_BLOCK]).all()
                for i in range(0, X.shape[0], PREDICT_BLOCK)
            )
            comm.raise_if_any(
                None
                if finite
                else f"input_power {self.config.input_power:g} overflows an input value of "
                f"X to inf in {self.dtype}: use a smaller power or scale the inputs"
            )
        if self.config.center:
            keep = resuming and self.input_mean_ is not None
            mean = self.input_mean_ if keep else self._input_mean(X, reducer)
            assert mean is not None
            X = self._centred(X, mean, in_place=owned)
            self.input_mean_ = mean
        if self.config.spectral_power:
            keep = resuming and self.input_basis_ is not None
            basis = self.input_basis_ if keep else self._input_basis(X, reducer, comm)
            assert basis is not None
            X = self._spectral(X, basis)  # in place: the centred copy is ours
            self.input_basis_ = basis
        return X

    def _prepared(
        self, X: np.ndarray, mean: np.ndarray | None, basis: np.ndarray | None
    ) -> np.ndarray:
        """``X`` in the network's dtype through the per-sample steps, centred on
        ``mean`` and multiplied by ``basis``, each when given (``basis`` only
        with ``mean``, as ``spectral_power`` needs ``center``): the inputs as
        the first layer sees them, from statistics already known. Local."""
        X, owned = self._per_sample(np.ascontiguousarray(X, dtype=self.dtype))
        if mean is not None:
            X = self._centred(X, mean, in_place=owned)
        if basis is not None:
            X = self._spectral(X, basis)  # in place: the centred copy is ours
        return X

    def _per_sample(self, X: np.ndarray) -> tuple[np.ndarray, bool]:
        """``X`` (in the network's dtype) after the options' per-sample steps,
        in order: ``deskew``, ``input_power``, ``normalize_inputs``; and
        whether the result is a copy the network owns (then later steps may
        overwrite it). Local."""
        owned = False
        if self.config.deskew:
            X, owned = deskew_images(X), True
        if self.config.input_power != 1.0:
            X = power_normalize(X, self.config.input_power, out=X if owned else None)
            owned = True
        if self.config.normalize_inputs:
            X, owned = normalize_rows(X, out=X if owned else None), True
        return X, owned

    def _input_basis(
        self, X: np.ndarray, reducer: SampleReducer, comm: Communicator
    ) -> np.ndarray:
        """The ``spectral_power`` matrix of the centred rows ``X`` of all ranks,
        ``(n_0, n_0)`` float64: their covariance, summed in float64, then
        :func:`admm.preprocessing.spectral_scaling` (its error raised as one
        error of all ranks). Collective."""
        n0 = X.shape[1]

        def sums(i: int, rows: slice, out: np.ndarray) -> None:
            gram = out[: n0 * n0].reshape(n0, n0)
            gram[...] = 0.0
            block = X[rows]
            for start in range(0, block.shape[0], MOMENT_BLOCK):
                part = np.asarray(block[start : start + MOMENT_BLOCK], dtype=np.float64)
                gram += part.T @ part
            out[n0 * n0] = block.shape[0]

        total = reducer.sum(sums, np.empty(n0 * n0 + 1))
        covariance = total[: n0 * n0].reshape(n0, n0) / total[n0 * n0]
        return comm.agreed(lambda: spectral_scaling(covariance, self.config.spectral_power))

    def _spectral(self, X: np.ndarray, basis: np.ndarray) -> np.ndarray:
        """``X`` times ``basis`` (symmetric), overwriting ``X`` (a copy the
        network owns), row block by row block so that a sample's result does
        not depend on the other rows: blocks of ``block_size`` from row 0 with
        ``deterministic`` (ranks hold whole blocks), else of ``PREDICT_BLOCK``. Local."""
        basis_t = basis.astype(self.dtype)
        step = self.config.block_size if self.config.deterministic else PREDICT_BLOCK
        scratch = np.empty((min(step, X.shape[0]), X.shape[1]), dtype=self.dtype)
        for start in range(0, X.shape[0], step):
            rows = slice(start, start + step)
            product = scratch[: X[rows].shape[0]]
            np.matmul(X[rows], basis_t, out=product)
            X[rows] = product
        return X

    def _communicator(self) -> Communicator:
        if self._comm is None:
            self._comm = Communicator(self._comm_arg)
        return self._comm

    def _config_mismatch(self, comm: Communicator) -> str | None:
        configs = comm.agree((self.layers, self.config.options()))
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

    def _subset_weights(self, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """The weights of ``subset_iterations`` iterations on every
        ``subset_stride``-th local row (the global multiples of the stride
        when ranks start at such multiples, as whole blocks of
        ``deterministic`` do), from the starting weights; the subset's own
        input mean and ``spectral_power`` matrix prepare its inputs (a start
        only: the full run computes its own). Collective."""
        stride = self.config.subset_stride
        config = self.config.replace(
            subset_iterations=0, block_size=max(1, self.config.block_size // stride)
        )
        start = ADMMNetwork(
            self.layers, config=config, weights=self._starting_weights(), comm=self._comm_arg
        )
        start.fit(X[::stride], y[::stride], iterations=self.config.subset_iterations)
        return [np.array(w) for w in start.weights]

    def _starting_weights(self) -> list[np.ndarray]:
        if self._initial_weights is not None:
            return [w.copy() for w in self._initial_weights]
        return glorot_weights(self.layers, self.dtype, self.config.seed)

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

    def _check_fit(self, X, y, iterations, X_val, y_val, eval_every) -> None:
        """Raise ``ValueError`` naming the first problem with fit's arguments on this rank."""
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
        if self.config.deskew:
            check_pixels(X)
        self._loss.targets(y, X.shape[0], self.layers[-1], self.dtype)
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together")
        if X_val is not None:
            X_val = self._check_input(X_val, "X_val")
            if self.config.deskew:
                check_pixels(X_val)
            labels = self._loss.labels(y_val, self.layers[-1])
            if labels.shape[0] != X_val.shape[0]:
                raise ValueError(
                    f"y_val has {labels.shape[0]} samples, X_val has {X_val.shape[0]}"
                )

    def _global_accuracy(self, X_val: np.ndarray, y_val: np.ndarray) -> float:
        correct = float(np.sum(self.predict(X_val) == y_val))
        total = self._communicator().sum_values([correct, float(y_val.shape[0])])
        return float(total[0] / total[1]) if total[1] > 0 else float("nan")


ADMMNetwork.__doc__ = (
    (ADMMNetwork.__doc__ or "")
    + "\n".join("    " + line if line else line for line in options_doc().splitlines())
    + "\n"
)


def load(path: str | os.PathLike) -> ADMMNetwork:
    """Read a network written by :meth:`ADMMNetwork.save`. Local; needs no MPI.

    Raises ``ValueError`` naming the problem when the file is not an admm
    model (missing arrays, an unknown format version, inconsistent shapes).
    """
    model = read_model(path)
    net = ADMMNetwork(model["layers"], weights=model["weights"], config=model["config"])
    net.input_mean_ = model["input_mean"]
    net.input_basis_ = model["input_basis"]
    net.n_iter_ = model["n_iter"]
    return net
