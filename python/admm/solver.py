"""The ADMM solver: one rank's state and its updates, in the order of ``docs/method.md``.

:class:`Solver` holds this rank's state (activations ``a_l``, outputs
``z_l``, the multiplier ``lam``, the weights) and work buffers, and performs
the updates (1)-(6), the backward sweep, the forward refit and the diagnosis
of numerical failures. Its inputs are explicit: the options
(:class:`admm.config.Config`), the layer widths, the activation and loss
parts, a :class:`admm._blocksum.SampleReducer` (the communicator and how sums
over samples are laid out) and the data. It knows nothing of the estimator
built on it (:class:`admm.ADMMNetwork`).

Notation follows ``docs/method.md`` with samples in rows: this rank's
activations ``a_l`` are ``(m_local, n_l)`` arrays, weights ``W_l`` are
``(n_l, n_{l-1})``. The compiled kernels do the arithmetic (the entry-wise
ones on the threads of :mod:`admm._threads`); the only collectives go
through the reducer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from admm_core import (
    cholesky_factor,
    cholesky_inverse,
    cholesky_solve,
    cross,
    glorot_uniform,
    gram,
    matmul,
)

from ._blocksum import SampleReducer
from ._threads import rowwise
from .activations import Activation
from .config import Config
from .losses import Loss
from .timing import phase

#: Rows per block of the forward pass in ``decision_function`` and ``refit``
#: and of the finiteness checks of inputs: bounds their temporaries to a few
#: MB whatever the number of samples (both run while every training array is
#: alive, so their blocks add to the peak: two activation blocks, 8 MB in
#: float64 at 784-500-500-10; 4,096 rows took the float64 peak at N = 1 over
#: its 1,500 MB limit, docs/scaling.md).
PREDICT_BLOCK = 1024


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


# ------------------------------------------------------------- schedules


def penalties(
    config: Config, n_weight: int, t: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(beta, gamma)`` in force at 0-based iteration ``t``, one per layer. Local.

    ``beta_l(t) = min(beta_l * beta_growth**t, beta_max_l)``, likewise gamma;
    exactly ``(beta, gamma)`` without continuation.
    """

    def schedule(name: str, growth: float, cap: str) -> tuple[float, ...]:
        base = config.per_layer(name, n_weight) or ()
        if growth != 1.0:
            factor = growth**t
            base = tuple(v * factor for v in base)
        caps = config.per_layer(cap, n_weight)
        if caps is None:
            return base
        return tuple(min(v, c) for v, c in zip(base, caps, strict=True))

    return (
        schedule("beta", config.beta_growth, "beta_max"),
        schedule("gamma", config.gamma_growth, "gamma_max"),
    )


def ridges(config: Config, rho: tuple[float, ...], t: int) -> tuple[float, ...]:
    """The ridge of each weight layer in force at 0-based iteration ``t``. Local.

    ``rho_l * rho_final**(min(t, T) / T)``, ``T = rho_decay_iterations``;
    exactly ``rho`` (the ridges chosen at iteration 0) without the decay.
    """
    if config.rho_final == 1.0:
        return rho
    T = config.rho_decay_iterations
    scale = config.rho_final ** (min(max(t, 0), T) / T)
    return tuple(r * scale for r in rho)


# ------------------------------------------------------------- helpers


def glorot_weights(layers: Sequence[int], dtype: np.dtype, seed: int) -> list[np.ndarray]:
    """Glorot-uniform ``W_l`` of shapes ``(n_l, n_{l-1})`` from ``PCG64(seed)``. Local."""
    bit_generator = np.random.PCG64(seed)
    weights = []
    for n_in, n_out in itertools.pairwise(layers):
        w = np.empty((n_out, n_in), dtype=dtype)
        glorot_uniform(w, bit_generator)
        weights.append(w)
    return weights


def forward_features(
    block: np.ndarray, weights: Sequence[np.ndarray], activation: Activation
) -> np.ndarray:
    """``h(... h(block W_1^T) ... W_k^T)`` for ``weights = (W_1, ..., W_k)``. Local.

    The forward features of layer ``k`` of the C-contiguous rows ``block``
    (``(rows, n_0)``, already centred): ``(rows, n_k)``, ``block`` itself when
    ``k = 0``. At most two ``(rows, n)`` arrays are alive at a time.
    """
    for w in weights:
        nxt = np.empty((block.shape[0], w.shape[0]), dtype=block.dtype)
        matmul(block, w, nxt, transpose_b=True)
        rowwise(activation.forward, (nxt, nxt), 1.0)
        block = nxt
    return block


def _factor_with_ridge(g: np.ndarray, rho: float, layer: int) -> np.ndarray:
    """Cholesky factor of the float64 Gram ``g + rho I``, in place."""
    try:
        return cholesky_factor(g, shift=rho)
    except np.linalg.LinAlgError as exc:
        raise np.linalg.LinAlgError(
            f"the Gram matrix of layer {layer} plus the ridge rho={rho:.3g} is not "
            f"positive definite ({exc}); pass a larger rho"
        ) from None


def _uses_woodbury(layers: Sequence[int], l: int) -> bool:
    """Whether the a_l update inverts the small ``n_{l+1}`` system instead."""
    return layers[l + 1] < layers[l]


# ------------------------------------------------------------- the solver


class Solver:
    """One rank's ADMM state and work buffers, and the updates that change them.

    Build it with :meth:`start` (the initial forward pass) or the constructor
    (a saved state, with the reducer set later when it needs the
    communicator). ``X`` is this rank's input block ``(m, n_0)`` as the
    network feeds it (converted, deskewed, centred: the solver never writes
    it), ``targets`` what ``loss.targets`` made of the labels. ``weights``
    (a list of ``(n_l, n_{l-1})`` arrays, identical on every rank) is the
    solver's own: it replaces its entries at every weight update.
    """

    def __init__(
        self,
        config: Config,
        layers: Sequence[int],
        activation: Activation,
        loss: Loss,
        reducer: SampleReducer | None,
        X: np.ndarray,
        targets: np.ndarray,
        weights: list[np.ndarray],
        a: list[np.ndarray],
        z: list[np.ndarray],
        lam: np.ndarray,
        rho: tuple[float, ...],
    ) -> None:
        self.config = config
        self.layers = tuple(layers)
        self.dtype = np.dtype(config.dtype)
        self.activation = activation
        self.loss = loss
        self._reducer = reducer
        self.weights = weights
        self.a = [X, *a]  # a[0] is the input block X
        self.targets = targets
        self.z = z
        self.lam = lam
        self.rho = rho
        self.elapsed = 0.0
        #: h(a_0 W_1^T) held by step() for the refit that follows it (or None).
        self.input_features: np.ndarray | None = None
        shapes = self.buffer_shapes(self.layers, X.shape[0])
        self.reduce_buffers = [np.empty(n, dtype=self.dtype) for n in shapes["reduce"]]
        self.woodbury = [
            np.empty(shape, dtype=self.dtype) if shape is not None else None
            for shape in shapes["woodbury"]
        ]
        # Factor of a_0 a_0^T + rho_1 I: a_0 never changes, so it is reduced and
        # factored once, at the first weight update, and again (from the kept
        # float64 Gram, no new reduction) only when the ridge decays.
        self.input_factor: np.ndarray | None = None
        self.input_factor_rho: float | None = None
        self.input_gram: np.ndarray | None = None

    # ---------------------------------------------------------- building

    @staticmethod
    def buffer_shapes(layers: Sequence[int], m: int) -> dict[str, list]:
        """The work buffers a solver allocates for ``m`` local samples: the
        sizes of the reduction buffers (one per weight layer: the cross term
        ``z_l a_{l-1}^T`` followed, for ``l > 1``, by the Gram
        ``a_{l-1} a_{l-1}^T``: the input Gram never changes and is reduced and
        factored once) and the shapes of the Woodbury work arrays (one
        ``(m, n_{l+1})`` per hidden layer whose next layer is narrower, None
        for the others). Read by the constructor and :meth:`memory_model`."""
        reduce = [
            layers[l] * layers[l - 1] + (layers[l - 1] ** 2 if l > 1 else 0)
            for l in range(1, len(layers))
        ]
        woodbury = [
            (m, layers[l + 1]) if _uses_woodbury(layers, l) else None
            for l in range(1, len(layers) - 1)
        ]
        return {"reduce": reduce, "woodbury": woodbury}

    @classmethod
    def start(
        cls,
        config: Config,
        layers: Sequence[int],
        activation: Activation,
        loss: Loss,
        reducer: SampleReducer,
        X: np.ndarray,
        targets: np.ndarray,
        weights: list[np.ndarray],
    ) -> Solver:
        """The state of ``docs/method.md``'s initialisation: a forward pass from
        ``weights``, ``lam = 0``, and the ridge (``config.rho``, or
        ``rho_relative`` times each layer's mean Gram diagonal over all ranks);
        with ``start_from_targets``, ``z_L`` then takes the output update (5)
        with iteration 1's ``beta_L`` (``lam`` stays 0).
        Collective on the reducer's communicator (the automatic ridge's sum).
        Raises :class:`NumericalError` on every rank when the ridge is not finite.
        """
        dtype = np.dtype(config.dtype)
        m = X.shape[0]
        a = [X]
        z = []
        for layer, w in enumerate(weights):
            zl = np.empty((m, w.shape[0]), dtype=dtype)
            cls._matmul_rows(reducer, a[-1], w, zl, transpose_b=True)
            z.append(zl)
            if layer < len(weights) - 1:
                a.append(np.empty_like(zl))
                rowwise(activation.forward, (zl, a[-1]), 1.0)
        lam = np.zeros((m, layers[-1]), dtype=dtype)
        if config.start_from_targets:
            beta, _ = penalties(config, len(weights), 0)
            update = (z[-1], lam, targets)
            rowwise(loss.update, update, beta[-1], False, blocks=reducer.blocks, n_sums=3)
        rho = config.per_layer("rho", len(layers) - 1)
        if rho is None:
            # Mean diagonal of each Gram a_{l-1} a_{l-1}^T is ||a_{l-1}||_F^2 / n_{l-1}.
            def squares(i: int, rows: slice, out: np.ndarray) -> None:
                out[:] = [float(np.vdot(v[rows], v[rows])) for v in a]

            sq = reducer.sum(squares, np.empty(len(a)))
            rho = tuple(
                float(config.rho_relative * max(s / n, np.finfo(np.float64).tiny))
                for s, n in zip(sq, layers[:-1], strict=True)
            )
        solver = cls(
            config, layers, activation, loss, reducer, X, targets, weights, a[1:], z, lam, rho
        )
        solver.check_ridge()
        return solver

    def check_ridge(self) -> None:
        """Refuse a ridge that is not finite (the automatic one overflows when
        the squared data do). Every rank decides alike from reduced sums."""
        for l, r in enumerate(self.rho, start=1):
            if not (math.isfinite(r) and r > 0):
                raise NumericalError(
                    f"numerical failure before iteration 1, layer {l}: the ridge rho_{l} is "
                    f"{r:g} (the squared inputs of layer {l} overflow {self.dtype.name}: scale "
                    "the data to smaller values, or pass a rho)",
                    0,
                    l,
                )

    @property
    def reducer(self) -> SampleReducer:
        """The sums over samples (given at construction, or set before the
        first update of a solver built without one)."""
        if self._reducer is None:
            raise RuntimeError("the solver has no sample reducer yet")
        return self._reducer

    @reducer.setter
    def reducer(self, value: SampleReducer) -> None:
        self._reducer = value

    @property
    def reducer_or_none(self) -> SampleReducer | None:
        """The reducer, or None before it is set."""
        return self._reducer

    @property
    def X(self) -> np.ndarray:
        """This rank's input block ``a_0``."""
        return self.a[0]

    @X.setter
    def X(self, value: np.ndarray) -> None:
        self.a[0] = value
        self.input_features = None  # features of the former block

    @staticmethod
    def _matmul_rows(
        reducer: SampleReducer, a: np.ndarray, b: np.ndarray, out: np.ndarray, **kwargs: Any
    ) -> None:
        """``matmul(a, b, out, **kwargs)`` on the rows of ``a`` and ``out``,
        one call per range of the reducer's ``product_rows``. Local."""
        for rows in reducer.product_rows(a.shape[0]):
            matmul(a[rows], b, out[rows], **kwargs)

    def matmul_rows(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, **kwargs: Any) -> None:
        """``matmul`` in the row ranges of :meth:`SampleReducer.product_rows`. Local."""
        self._matmul_rows(self.reducer, a, b, out, **kwargs)

    # ---------------------------------------------------------- iteration

    def step(self, t: int, hold_input_features: bool = False) -> tuple[float, float]:
        """Iteration ``t`` (0-based) of Algorithm 1 (``docs/method.md``). Collective.

        Returns the objective (with its ridge term) and the primal residual
        ``||z_L - W_L a_{L-1}||`` over all ranks. With ``hold_input_features``
        (and a hidden layer), keeps ``h(a_0 W_1^T)`` of the iteration's
        ``W_1`` in ``input_features`` for a :meth:`refit` that keeps ``W_1``
        (it would compute the same array, bit for bit). Raises
        :class:`NumericalError` (every rank) on NaN or inf, and
        ``numpy.linalg.LinAlgError`` (every rank) on a Gram that the ridge
        cannot make positive definite.
        """
        config = self.config
        L = len(self.weights)
        # Local objective terms: gamma_l ||a_l - h(z_l)||^2 and
        # beta_l ||z_l - W_l a_{l-1}||^2 per hidden layer, the output layer's
        # loss + <z_L, lam> + beta_L ||z_L - W_L a_{L-1}||^2, and that residual.
        # One row of terms per summation block (one row without deterministic).
        # The entry-wise updates run on several threads (admm._threads), each
        # block's sums added in a fixed order of chunks: the same terms on any
        # number of threads.
        # With backward_sweep, one more column, summed only to be checked.
        blocks = self.reducer.blocks
        hidden_terms = 2 * (L - 1)
        terms = np.zeros((len(blocks), hidden_terms + 2 + (1 if config.backward_sweep else 0)))
        beta, gamma = penalties(config, L, t)
        rho = ridges(config, self.rho, t)

        self.input_features = None

        def hidden_update(l: int) -> tuple[np.ndarray, np.ndarray]:
            hold = l == 1 and hold_input_features and self.input_features is None
            return self.hidden_update(l, beta, gamma, hold)

        for l in range(1, L + 1):
            a_prev = self.a[l - 1]
            with phase("weights"):
                w = self.solve_weights(l, rho[l - 1])  # (1), (4)
                if config.inertia and t > 0:
                    w += config.inertia * (w - self.weights[l - 1])
                self.weights[l - 1] = w
            zl = self.z[l - 1]
            if l < L:
                terms[:, 2 * (l - 1)], terms[:, 2 * (l - 1) + 1] = hidden_update(l)
            else:
                with phase("output"):
                    self.matmul_rows(a_prev, self.weights[l - 1], zl, transpose_b=True)  # (5), (6)
                    update_lam = config.multiplier and t >= config.warmup
                    loss, dot, res = rowwise(
                        self.loss.update,
                        (zl, self.lam, self.targets),
                        beta[-1],
                        update_lam,
                        blocks=blocks,
                        n_sums=3,
                    ).T
                terms[:, -2] = loss + dot + beta[-1] * res
                terms[:, -1] = res
        if config.backward_sweep:
            # The objective and residual above are those of the state after
            # the output update; the sweep only lowers the objective (exact
            # block minimisations), and its terms are summed to be checked.
            for l in range(L - 1, 0, -1):
                act, pen = hidden_update(l)
                terms[:, hidden_terms] += act + pen

        def block_terms(i: int, rows: slice, out: np.ndarray) -> None:
            out[:] = terms[i]

        with phase("objective"):
            total = self.reducer.sum(block_terms, np.empty(terms.shape[1]))
        ridge_terms = [beta[i] * rho[i] * float(np.vdot(w, w)) for i, w in enumerate(self.weights)]
        objective = float(total[:hidden_terms].sum() + total[-2] + sum(ridge_terms))
        # One test of a few floats per iteration: NaN or inf anywhere in the
        # weights or in any rank's a, z or lam reaches the objective, the
        # residual or the sweep's terms, which are reduced sums and so agree
        # on every rank.
        if not (math.isfinite(objective) and math.isfinite(total[-1])):
            raise self.numerical_failure(t, total, ridge_terms)
        if config.backward_sweep and not math.isfinite(total[hidden_terms]):
            raise NumericalError(
                f"numerical failure at iteration {t + 1}, in the backward sweep: the hidden "
                f"terms gamma_l ||a_l - h(z_l)||^2 + beta_l ||z_l - W_l a_(l-1)||^2 are "
                f"{'NaN' if math.isnan(total[hidden_terms]) else 'inf'} "
                f"({self.dtype.name} overflow or NaN: scale the data to smaller values, "
                "or lower beta and gamma)",
                t + 1,
            )
        return objective, math.sqrt(max(float(total[-1]), 0.0))

    def hidden_update(
        self, l: int, beta: Sequence[float], gamma: Sequence[float], hold: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Updates (2) and (3) of hidden layer ``l`` with the penalties in force.
        Local: this rank's rows only.

        Returns the per-summation-block terms ``gamma_l ||a_l - h(z_l)||^2``
        and ``beta_l ||z_l - W_l a_{l-1}||^2``. With ``hold`` (layer 1),
        ``h(a_0 W_1^T)`` is kept in ``input_features`` before (3) moves ``z_1``
        (as :meth:`input_features_of` computes it, bit for bit).
        """
        zl = self.z[l - 1]
        with phase("activations"):
            self.update_activation(l, beta[l], gamma[l - 1])  # (2)
        with phase("hidden_z"):
            self.matmul_rows(self.a[l - 1], self.weights[l - 1], zl, transpose_b=True)  # (3)
            if hold:
                self.input_features = np.empty_like(zl)
                rowwise(self.activation.forward, (zl, self.input_features), 1.0)
            act, pen = rowwise(
                self.activation.z_update,
                (zl, self.a[l]),
                gamma[l - 1],
                beta[l - 1],
                blocks=self.reducer.blocks,
                n_sums=2,
            ).T
        return gamma[l - 1] * act, beta[l - 1] * pen

    def numerical_failure(
        self, t: int, total: np.ndarray, ridge_terms: Sequence[float]
    ) -> NumericalError:
        """The error for a non-finite objective of iteration ``t``, naming the
        first layer (in update order) where NaN or inf shows. Local, but every
        rank reaches the same verdict from the same reduced sums and weights."""
        L = len(self.weights)

        def kind(value: Any) -> str:
            return "NaN" if np.isnan(value).any() else "inf"

        problem = (L, f"the residual ||z_{L} - W_{L} a_{L - 1}||^2 is {kind(total[-1])}")
        for l in range(L, 0, -1):  # the first failing layer wins
            w = self.weights[l - 1]
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
            parts.append((ridge_terms[l - 1], f"the ridge term beta_{l} rho_{l} ||W_{l}||^2"))
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

    # ---------------------------------------------------------- updates

    def _input_gram_factor(self, rho: float) -> np.ndarray:
        """Cholesky factor of the reduced input Gram plus ``rho I``.

        Collective the first time (the Gram is reduced then); local when the
        Gram is kept for a decaying ridge and only ``rho`` changed.
        """
        if self.input_factor is not None and self.input_factor_rho == rho:
            return self.input_factor
        self.input_factor = None  # the old factor is freed before the new one is made
        if self.input_gram is None:
            n0 = self.layers[0]
            reduced = np.empty((n0, n0), dtype=self.dtype)
            self.reducer.sum(lambda i, rows, out: gram(self.a[0][rows], out), reduced)
            g = reduced.astype(np.float64)
            del reduced
            if self.config.rho_final != 1.0:
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

    def input_features_of(self, w1: np.ndarray) -> np.ndarray:
        """``h(a_0 W_1^T)``, ``(m, n_1)``, whole, by the row ranges of
        :meth:`matmul_rows` (the products of update (3)). Local."""
        f1 = np.empty((self.X.shape[0], w1.shape[0]), dtype=self.dtype)
        self.matmul_rows(self.X, w1, f1, transpose_b=True)
        rowwise(self.activation.forward, (f1, f1), 1.0)
        return f1

    def refit_weights(
        self,
        l: int,
        refit: Sequence[np.ndarray],
        rho: float,
        input_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """W_l = (sum z_l^T f_{l-1})(sum f_{l-1}^T f_{l-1} + rho I)^{-1}. Collective.

        The step of :meth:`refit` for layer ``l``: ``f_{l-1}`` are the forward
        features of the input block through ``refit`` (the refit
        ``W_1 .. W_{l-1}``), formed ``PREDICT_BLOCK`` rows at a time inside
        the sum and accumulated by the kernels' ``beta`` (with
        ``deterministic`` per summation block, so the rounding still depends
        on the block alone; a default block of 256 rows is one chunk).
        For ``l = 1``, ``f_0 = a_0``: exactly :meth:`solve_weights`, with the
        cached input factor. With ``input_features`` (``f_1`` whole, of
        ``refit[0]``) the features start from it instead of from ``a_0``.
        """
        if l == 1:
            return self.solve_weights(1, rho)
        z = self.z[l - 1]
        first, through = self._features_source(refit[: l - 1], input_features)

        def products(rows: slice, c: np.ndarray, g: np.ndarray | None) -> None:
            assert g is not None  # l > 1: the Gram is summed with the cross term
            x, zl = first[rows], z[rows]
            # One block even when there are no rows, so that c and g are set.
            for start in range(0, max(x.shape[0], 1), PREDICT_BLOCK):
                chunk = slice(start, start + PREDICT_BLOCK)
                f = forward_features(x[chunk], through, self.activation)
                accumulate = 0.0 if start == 0 else 1.0
                cross(zl[chunk], f, c, beta=accumulate)
                gram(f, g, beta=accumulate)

        return self.ridge_solve(l, products, rho)

    def refit(
        self, rho: Sequence[float], iteration: int, readout: Config | None = None
    ) -> list[np.ndarray]:
        """Every ``W_l`` re-solved on the network's own forward features. Collective.

        For ``l = 1..L`` in order, :meth:`refit_weights` through the refit
        ``W_1 .. W_{l-1}``, ``rho`` the ridges to use; without
        ``refit_input_layer``, ``W_1`` is kept (a copy) and ``l`` runs from 2.
        With ``readout_iterations`` (of ``readout``, default the solver's
        options), ``W_L`` is :meth:`readout_weights` of :meth:`last_features`
        instead (``f_1``, when held, is released once ``f_{L-1}`` is formed
        from it).
        Returns the new weights without installing them. Raises
        :class:`NumericalError` (every rank) naming the layer, after
        ``iteration`` iterations, on NaN or inf or a Gram the ridge cannot fix.
        """
        readout = readout or self.config
        weights: list[np.ndarray] = []
        features = None
        if not self.config.refit_input_layer:
            weights.append(self.weights[0].copy())
            if len(self.layers) > 2:
                # f_1 whole, once for every layer: held by step() when it
                # knew a refit would follow, computed alike otherwise.
                features = self.input_features
                if features is None:
                    with phase("refit"):
                        features = self.input_features_of(weights[0])
        self.input_features = None
        L = len(self.layers) - 1
        for l in range(len(weights) + 1, L + 1):
            problem = None
            try:
                if l == L and readout.readout_iterations:
                    with phase("readout"):
                        last = self.last_features(weights, features)
                        features = None  # f_1 is not needed beside f_{L-1} any more
                        w = self.readout_weights(last, readout)
                else:
                    with phase("refit"):
                        w = self.refit_weights(l, weights, rho[l - 1], features)
            except np.linalg.LinAlgError as exc:
                problem = str(exc)
            else:
                if not np.all(np.isfinite(w)):
                    problem = f"the refit weights W_{l} contain NaN or inf"
            if problem is not None:
                raise NumericalError(
                    f"numerical failure in the refit after iteration {iteration}, "
                    f"layer {l}: {problem}; the weights are unchanged",
                    iteration,
                    l,
                )
            weights.append(w)
        return weights

    def _features_source(
        self, refit: Sequence[np.ndarray], input_features: np.ndarray | None
    ) -> tuple[np.ndarray, Sequence[np.ndarray]]:
        """Where the forward features through ``refit`` (``W_1 .. W_k``) start:
        the input block and all of ``refit``, or ``input_features`` (``f_1`` of
        ``refit[0]``) and the layers after it."""
        if input_features is None:
            return self.X, refit
        return input_features, refit[1:]

    def last_features(
        self, refit: Sequence[np.ndarray], input_features: np.ndarray | None = None
    ) -> np.ndarray:
        """``f_{L-1}`` whole, ``(m, n_{L-1})``: the forward features of the input
        block through ``refit`` (``W_1 .. W_{L-1}``), or from ``input_features``
        (``f_1`` of ``refit[0]``) when given. Formed ``PREDICT_BLOCK`` rows at a
        time; the input block (or ``input_features``) itself when there is no
        layer to pass. When ``n_{L-1} = n_1``, ``f_{L-1}`` overwrites
        ``input_features`` block by block (each block of rows depends on the
        same rows of ``f_1`` alone): the caller gives it up. Local."""
        first, through = self._features_source(refit, input_features)
        if not through:
            return first
        width = through[-1].shape[0]
        # A fresh (m, n_{L-1}) array costs this VM 0.17 s of first-touch page
        # faults a refit (30,000 x 500 float32) besides its memory.
        reuse = input_features is not None and width == input_features.shape[1]
        features = first if reuse else np.empty((first.shape[0], width), dtype=self.dtype)
        for start in range(0, first.shape[0], PREDICT_BLOCK):
            chunk = slice(start, start + PREDICT_BLOCK)
            features[chunk] = forward_features(first[chunk], through, self.activation)
        return features

    def readout_weights(self, features: np.ndarray, readout: Config | None = None) -> np.ndarray:
        """``W_L`` fitted to the loss on the fixed features ``f = f_{L-1}``. Collective.

        ``features`` is this rank's ``f`` ``(m, n_{L-1})``; the read-out
        options are those of ``readout`` (default: the solver's). Minimises the
        convex ``sum_samples C(W_L f, y) + beta rho ||W_L||^2`` (``beta =
        readout_beta``, ``rho = readout_ridge`` times the mean diagonal of
        ``G = sum f^T f``) by ``readout_iterations`` iterations of ADMM on
        ``z = f W_L^T``, from ``W_L = (sum z_L^T f)(G + rho I)^{-1}`` (the
        least-squares read-out of the state's ``z_L``) and a zero multiplier:

            z   <- argmin C(z, y) + <z, lam> + beta ||z - f W_L^T||^2   (5)
            lam <- lam + beta (z - f W_L^T)                             (6)
            W_L <- (sum (z + lam / (2 beta))^T f) (G + rho I)^{-1}

        the last the exact minimiser over ``W_L`` of the augmented Lagrangian
        (the network's own update (4) leaves the multiplier out). ``G + rho I``
        is reduced and factored once; each iteration sums one ``(n_L,
        n_{L-1})`` cross term over all ranks (with ``deterministic``, by
        summation block: the result does not depend on the number of ranks).
        ``z`` and ``lam`` are the read-out's own, the state's are not touched.
        """
        config = readout or self.config
        n_out, n_in = self.layers[-1], self.layers[-2]
        beta = config.readout_beta
        # The cross term and the Gram, packed as in the layer's own reduction
        # buffer (which has room for the Gram when there is a hidden layer).
        size = n_out * n_in + n_in * n_in
        reduce = self.reduce_buffers[-1]
        buf = reduce if reduce.size == size else np.empty(size, dtype=self.dtype)
        zl = self.z[-1]

        def products(i: int, rows: slice, out: np.ndarray) -> None:
            cross(zl[rows], features[rows], out[: n_out * n_in].reshape(n_out, n_in))
            gram(features[rows], out[n_out * n_in :].reshape(n_in, n_in))

        self.reducer.sum(products, buf)
        g = buf[n_out * n_in :].reshape(n_in, n_in).astype(np.float64)
        ridge = config.readout_ridge * max(float(np.trace(g)) / n_in, np.finfo(np.float64).tiny)
        factor = _factor_with_ridge(g, ridge, layer=len(self.layers) - 1)
        cross_term = buf[: n_out * n_in].reshape(n_out, n_in)

        def solve() -> np.ndarray:
            # Every rank solves the same float64 system: n_L right-hand sides.
            w = cross_term.astype(np.float64)
            cholesky_solve(factor, w)
            return w.astype(self.dtype, copy=False)

        w = solve()
        m = features.shape[0]
        z = np.empty((m, n_out), dtype=self.dtype)
        lam = np.zeros((m, n_out), dtype=self.dtype)
        half_inverse = self.dtype.type(1.0 / (2.0 * beta))

        def readout_cross(i: int, rows: slice, buf: np.ndarray) -> None:
            cross(z[rows], features[rows], buf)

        for _ in range(config.readout_iterations):
            self.matmul_rows(features, w, z, transpose_b=True)
            rowwise(self.loss.update, (z, lam, self.targets), beta, True)
            z += lam * half_inverse  # (z + lam / (2 beta))
            self.reducer.sum(readout_cross, cross_term)
            w = solve()
        return w

    def ridge_solve(
        self,
        l: int,
        products: Callable[[slice, np.ndarray, np.ndarray | None], object],
        rho: float,
    ) -> np.ndarray:
        """``W_l = C (G + rho I)^{-1}`` from sums over all samples. Collective.

        ``products(rows, c, g)`` writes the local rows' cross term ``C``
        (``(n_l, n_{l-1})``) into ``c`` and, for ``l > 1``, their Gram ``G``
        (``(n_{l-1}, n_{l-1})``) into ``g``, both in the solver's dtype,
        packed in one buffer for one sum over samples. For ``l = 1`` ``g`` is
        None: the Gram is the input Gram, reduced and factored once.
        """
        n_out, n_in = self.layers[l], self.layers[l - 1]
        buf = self.reduce_buffers[l - 1]

        def leaf(i: int, rows: slice, out: np.ndarray) -> None:
            g = out[n_out * n_in :].reshape(n_in, n_in) if l > 1 else None
            products(rows, out[: n_out * n_in].reshape(n_out, n_in), g)

        self.reducer.sum(leaf, buf)
        c = buf[: n_out * n_in].reshape(n_out, n_in)
        if l == 1:
            factor = self._input_gram_factor(rho)
        else:
            factor = buf[n_out * n_in :].reshape(n_in, n_in).astype(np.float64)
            factor = _factor_with_ridge(factor, rho, layer=l)
        comm = self.reducer.comm
        if comm.size == 1 or self.reducer.layout is not None:
            w = c.astype(np.float64)
            cholesky_solve(factor, w)
            return w.astype(self.dtype, copy=False)
        # The rows of W_l are independent solves with one matrix: each rank
        # solves its share and one Allgather assembles W_l, identical on
        # every rank (the solve is work that N ranks would otherwise repeat,
        # docs/scaling.md). Not with deterministic: OpenBLAS rounds a row
        # differently depending on which other rows share its potrs call,
        # so the split would make W_l depend on the number of ranks.
        starts = [n_out * r // comm.size for r in range(comm.size + 1)]
        rows = slice(starts[comm.rank], starts[comm.rank + 1])
        out = np.empty(c.shape, dtype=self.dtype)
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
        w = self.weights[l]  # W_{l+1}, shape (n_{l+1}, n_l)
        a = self.a[l]
        w64 = w.astype(np.float64)
        if _uses_woodbury(self.layers, l):
            # Right-hand side, one row per sample: g h(z_l) + b z_{l+1} W_{l+1}.
            rowwise(self.activation.forward, (self.z[l - 1], a), g)
            self.matmul_rows(self.z[l], w, a, alpha=b, beta=1.0)
            # (b W^T W + g I)^{-1} = (I - b W^T (g I + b W W^T)^{-1} W) / g:
            # only an n_{l+1} x n_{l+1} system, when the next layer is narrower.
            small = np.empty((w.shape[0], w.shape[0]))
            gram(w64.T, small, alpha=b)
            cholesky_factor(small, shift=g)
            t = self.woodbury[l - 1]
            assert t is not None  # allocated for every layer that uses Woodbury
            self.matmul_rows(a, w, t, transpose_b=True)
            small = small.astype(self.dtype, copy=False)
            for rows in self.reducer.product_rows(t.shape[0]):  # as the products
                cholesky_solve(small, t[rows])
            self.matmul_rows(t, w, a, alpha=-b / g, beta=1.0 / g)
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
            rowwise(self.activation.forward, (rhs, rhs), g)
            self.matmul_rows(self.z[l], w, rhs, alpha=b, beta=1.0)
            self.matmul_rows(rhs, inverse.astype(self.dtype, copy=False), a)

    # ---------------------------------------------------------- memory

    def allocated_bytes(self) -> dict[str, int]:
        """Bytes of the arrays this solver holds now, by kind (as :meth:`memory_model`)."""
        return {
            "activations": sum(v.nbytes for v in self.a[1:]),
            "outputs": sum(v.nbytes for v in self.z),
            "multiplier": self.lam.nbytes,
            "woodbury": sum(v.nbytes for v in self.woodbury if v is not None),
            "weights": sum(w.nbytes for w in self.weights),
            "reduce": sum(v.nbytes for v in self.reduce_buffers),
            "input_factor": sum(
                v.nbytes for v in (self.input_factor, self.input_gram) if v is not None
            ),
        }

    @classmethod
    def memory_model(
        cls, layers: Sequence[int], m: int, dtype: Any, ridge_decay: bool
    ) -> dict[str, int]:
        """Bytes of the arrays a solver holds for ``m`` local samples, by kind.

        ``activations`` (``a_l``, ``l = 1..L-1``), ``outputs`` (``z_l``),
        ``multiplier`` (``lam``), ``woodbury`` and ``reduce``
        (:meth:`buffer_shapes`), ``weights``, and ``input_factor`` (the
        float64 Cholesky factor of the input Gram, ``8 n_0^2``, and with
        ``ridge_decay`` the float64 input Gram kept to be factored again,
        ``8 n_0^2`` more), as :meth:`allocated_bytes` counts them after the
        first iteration.
        """
        s = np.dtype(dtype).itemsize
        n = [int(v) for v in layers]
        L = len(n) - 1
        shapes = cls.buffer_shapes(n, m)
        return {
            "activations": m * sum(n[1:L]) * s,
            "outputs": m * sum(n[1:]) * s,
            "multiplier": m * n[L] * s,
            "woodbury": sum(math.prod(x) for x in shapes["woodbury"] if x is not None) * s,
            "weights": sum(n[l] * n[l - 1] for l in range(1, L + 1)) * s,
            "reduce": sum(shapes["reduce"]) * s,
            "input_factor": n[0] ** 2 * 8 * (2 if ridge_decay else 1),
        }

    @staticmethod
    def transient_bytes(layers: Sequence[int], dtype: Any) -> dict[str, int]:
        """The largest temporaries of the solver's phases (besides the data's):
        ``input_factor`` (reducing and factoring the input Gram), ``solve`` (a
        weight solve: float64 copies of the cross term and of the Gram, the new
        weights beside the old), ``a_update`` (float64 ``W_{l+1}``, the
        float64 system matrix and its copy in ``dtype``)."""
        s = np.dtype(dtype).itemsize
        f8 = 8
        n = [int(v) for v in layers]
        L = len(n) - 1
        narrow = s < f8  # float32 solves convert back to dtype: one more copy
        solve = max(
            n[l] * n[l - 1] * (f8 + s + (s if narrow else 0)) + n[l - 1] ** 2 * f8
            for l in range(1, L + 1)
        )
        a_update = 0
        for l in range(1, L):
            k = min(n[l], n[l + 1])
            a_update = max(a_update, n[l + 1] * n[l] * f8 + k * k * (f8 + (s if narrow else 0)))
        return {"input_factor": n[0] ** 2 * (s + f8), "solve": solve, "a_update": a_update}
