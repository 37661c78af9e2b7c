"""Prototype ADMM variants for the accuracy study (issue 5), single process.

A self-contained re-implementation of ADMM.md's Algorithm 1 with samples in
rows (``a_l`` is ``(m, n_l)``, ``W_l`` is ``(n_l, n_{l-1})``, plus a bias
column when ``bias`` is on), extended by options that keep every step an
exact block minimisation of the (extended) objective

    C(z_L, Y) + <z_L, lam> + beta_L ||z_L - W_L [a_{L-1}; 1]||^2
    + sum_{l<L} gamma_l ||a_l - h(z_l)||^2 + beta_l ||z_l - W_l [a_{l-1}; 1]||^2
    + sum_l beta_l rho_l ||W_l D||^2

where ``[a; 1]`` appends a constant one when ``bias`` is on and ``D`` drops
the bias column from the ridge unless ``bias_ridge``. The penalties
``beta_l(t)``, ``gamma_l(t)`` may follow a continuation schedule: each is
multiplied by a growth factor after every iteration up to a cap; each
iteration is then an exact block-coordinate sweep of the objective with that
iteration's penalties.

The entry-wise z-updates reuse the compiled kernels of ``admm_core``; the
rest is NumPy/SciPy (one BLAS thread is expected: set OPENBLAS_NUM_THREADS=1).
This is research code for ``study.py``; the options that work are meant to
move into :class:`admm.ADMMNetwork`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.linalg as sla

from admm_core import hidden_z_update, output_hinge_update, output_squared_update


@dataclasses.dataclass
class Config:
    """One ADMM variant. Penalties are per layer: L values for beta, L-1 for gamma."""

    layers: tuple[int, ...] = (784, 500, 500, 10)
    activation: str = "hardsigmoid"  # or "relu"
    loss: str = "hinge"  # "hinge", "squared" (one-hot targets) or "sqhinge"
    beta: Sequence[float] = (0.2, 0.2, 0.2)
    gamma: Sequence[float] = (20.0, 20.0)
    # Continuation: after each iteration beta_l *= beta_growth (up to
    # beta_max_l), gamma_l *= gamma_growth (up to gamma_max_l).
    beta_growth: float = 1.0
    gamma_growth: float = 1.0
    beta_max: Sequence[float] | None = None
    gamma_max: Sequence[float] | None = None
    # ridge relative to each Gram's mean diagonal at init (one value, or one per layer)
    rho_rel: float | Sequence[float] = 1e-6
    bias: bool = False
    bias_ridge: bool = False  # whether the bias column is in the ridge
    center: bool = False  # subtract the training mean pixel from the inputs
    init: str = "glorot"  # "glorot" (forward pass) or "random" (Taylor: random a, z)
    multipliers: bool = True  # the output multiplier lam (equation (6))
    warmup: int = 10
    seed: int = 0
    # Multipliers mu_l on the hidden constraints z_l = W_l [a_{l-1}; 1] too
    # (full ADMM): the term beta_l ||z_l - W_l a + mu_l / (2 beta_l)||^2, and
    # mu_l += beta_l (z_l - W_l a) from iteration hidden_multipliers_start on.
    hidden_multipliers: bool = False
    hidden_multipliers_start: int = 10
    # Inertia (extrapolation, as in inertial alternating minimisation):
    # W_l <- W_l + inertia (W_l - W_l of the previous iteration) after each
    # weight update. Not a block minimisation; measured to see if it helps.
    inertia: float = 0.0
    # Every restart_every iterations (0: never) reset the hidden a_l, z_l and
    # z_L to the forward pass of the current weights (the initialisation step).
    restart_every: int = 0
    # Proximal weight updates: add prox_l ||W_l - W_l^{prev}||^2 (prox_l =
    # prox_rel times the initial mean Gram diagonal, like rho_l) to the
    # weight block, so (1)/(4) become
    # W_l = (z a^T + prox W_prev)(a a^T + (rho + prox) I)^{-1}.
    prox_rel: float = 0.0
    # Ridge continuation: the ridge of iteration t is rho_l * max(rho_decay**t,
    # rho_floor) (rho_decay <= 1): a strong ridge early, a weaker one later.
    rho_decay: float = 1.0
    rho_floor: float = 1.0
    # After the forward sweep, update a_l and z_l again for l = L-1 .. 1 (same
    # penalties): the output prox step reaches every hidden layer in the same
    # iteration instead of one layer per iteration. Exact block minimisations.
    # An integer k > 1 makes k such passes (block coordinate descent of the
    # hidden a and z with the weights fixed).
    backward_sweep: bool | int = False
    # One sweep in another order: the weights W_1 .. W_L (each on the a_{l-1}
    # of the previous iteration), then z_L, then a_l and z_l for l = L-1 .. 1.
    # The same blocks and cost as ADMM.md's order; the output's prox step
    # reaches every hidden layer within the iteration.
    reverse_sweep: bool = False


def _hardsigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    # Module-level functions, not lambdas, so that a Variant can be pickled.
    if name == "hardsigmoid":
        return _hardsigmoid
    if name == "relu":
        return _relu
    raise ValueError(f"unknown activation {name!r}")


def _per_layer(values: Sequence[float] | float, count: int, name: str) -> np.ndarray:
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if v.size == 1:
        v = np.repeat(v, count)
    if v.shape != (count,):
        raise ValueError(f"{name} needs {count} values, got {values!r}")
    return v.copy()


class Variant:
    """ADMM training state for one :class:`Config` on an ``(m, n_0)`` training set.

    ``fit_step()`` does one iteration; ``predict(X)`` is the forward pass
    ``W_L h(... h(W_1 [x; 1]))`` arg-max.
    """

    def __init__(self, cfg: Config, X: np.ndarray, y: np.ndarray) -> None:
        self.cfg = cfg
        L = len(cfg.layers) - 1
        self.L = L
        self.h = _activation(cfg.activation)
        self.beta = _per_layer(cfg.beta, L, "beta")
        self.gamma = _per_layer(cfg.gamma, L - 1, "gamma")
        self.beta_max = _per_layer(
            cfg.beta_max if cfg.beta_max is not None else np.inf, L, "beta_max"
        )
        self.gamma_max = _per_layer(
            cfg.gamma_max if cfg.gamma_max is not None else np.inf, L - 1, "gamma_max"
        )
        self.mean = X.mean(axis=0) if cfg.center else np.zeros(X.shape[1])
        X = np.ascontiguousarray(X - self.mean, dtype=np.float64)
        m = X.shape[0]
        self.labels = np.ascontiguousarray(y, dtype=np.int64)
        self.onehot = np.zeros((m, cfg.layers[-1]))
        self.onehot[np.arange(m), self.labels] = 1.0
        rng = np.random.default_rng(cfg.seed)
        self.W: list[np.ndarray] = []
        nb = 1 if cfg.bias else 0
        for n_in, n_out in zip(cfg.layers[:-1], cfg.layers[1:], strict=True):
            s = np.sqrt(6.0 / (n_in + n_out))
            w = np.zeros((n_out, n_in + nb))
            w[:, :n_in] = rng.uniform(-s, s, size=(n_out, n_in))
            self.W.append(w)
        self.a: list[np.ndarray] = [X]
        self.z: list[np.ndarray] = []
        if cfg.init == "glorot":
            for l in range(1, L + 1):
                self.z.append(self._affine(l, self.a[l - 1]))
                if l < L:
                    self.a.append(np.ascontiguousarray(self.h(self.z[-1])))
        elif cfg.init == "random":
            for l in range(1, L + 1):
                self.z.append(rng.standard_normal((m, cfg.layers[l])))
                if l < L:
                    self.a.append(np.ascontiguousarray(self.h(self.z[-1])))
        else:
            raise ValueError(f"unknown init {cfg.init!r}")
        self.lam = np.zeros((m, cfg.layers[-1]))
        self.mu = [np.zeros_like(z) for z in self.z[:-1]]
        self.rho = []
        rho_rel = _per_layer(cfg.rho_rel, L, "rho_rel")
        for a, rel in zip(self.a, rho_rel, strict=True):
            mean_diag = float(np.vdot(a, a)) / a.shape[1]
            self.rho.append(rel * max(mean_diag, 1e-300))
        self.prox = [cfg.prox_rel * r / rel for r, rel in zip(self.rho, rho_rel, strict=True)]
        self.input_factor: Any = None
        self.t = 0
        self.elapsed = 0.0

    # -- helpers ---------------------------------------------------------

    def _affine(self, l: int, a: np.ndarray) -> np.ndarray:
        """``[a; 1] W_l^T``: the ``(m, n_l)`` pre-activation target of layer l."""
        w = self.W[l - 1]
        n_in = a.shape[1]
        out = a @ w[:, :n_in].T
        if self.cfg.bias:
            out += w[:, n_in]
        return out

    def _coupled(self, l: int) -> np.ndarray:
        """What ``W_l [a_{l-1}; 1]`` is pulled towards: ``z_l`` (+ ``mu_l / (2 beta_l)``)."""
        z = self.z[l - 1]
        if self.cfg.hidden_multipliers and l < self.L:
            return z + self.mu[l - 1] / (2.0 * self.beta[l - 1])
        return z

    def _gram_factor(self, a: np.ndarray, rho: float) -> Any:
        """Cholesky factor of ``[a;1]^T [a;1] + rho D``."""
        n = a.shape[1]
        nb = 1 if self.cfg.bias else 0
        g = np.empty((n + nb, n + nb))
        g[:n, :n] = a.T @ a
        if nb:
            s = a.sum(axis=0)
            g[:n, n] = s
            g[n, :n] = s
            g[n, n] = a.shape[0]
        g[np.diag_indices(n)] += rho
        if nb and self.cfg.bias_ridge:
            g[n, n] += rho
        return sla.cho_factor(g, lower=True, check_finite=False)

    def _ridge_scale(self, t: int) -> float:
        """The factor of the ridge at iteration ``t`` (the ``rho_decay`` continuation)."""
        return max(self.cfg.rho_decay**t, self.cfg.rho_floor)

    def _cross(self, a: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``[a;1]^T z``: the right-hand side of the weight update."""
        n = a.shape[1]
        c = np.empty((n + (1 if self.cfg.bias else 0), z.shape[1]))
        c[:n] = a.T @ z
        if self.cfg.bias:
            c[n] = z.sum(axis=0)
        return c

    def _weight_update(self, l: int) -> None:
        """(1)/(4): W_l = z_l^T [a;1] ([a;1]^T [a;1] + rho D)^{-1}."""
        a = self.a[l - 1]
        z = self._coupled(l)
        ridge = self.rho[l - 1] * self._ridge_scale(self.t) + self.prox[l - 1]
        if l == 1:
            # The input Gram never changes: factored again only when its ridge does.
            if self.input_factor is None or self.input_factor[0] != ridge:
                self.input_factor = (ridge, self._gram_factor(a, ridge))
            factor = self.input_factor[1]
        else:
            factor = self._gram_factor(a, ridge)
        n = a.shape[1]
        c = self._cross(a, z)
        previous = self.W[l - 1]
        if self.prox[l - 1]:
            c[:n] += self.prox[l - 1] * previous[:, :n].T
        self.W[l - 1] = sla.cho_solve(factor, c, check_finite=False).T.copy()
        if self.cfg.inertia and self.t > 0:
            self.W[l - 1] += self.cfg.inertia * (self.W[l - 1] - previous)

    def _activation_update(self, l: int) -> None:
        """(2): a_l = (b V^T V + g I)^{-1} (b V^T (z_{l+1} - c) + g h(z_l)), W_{l+1} = [V c]."""
        w = self.W[l]
        n = self.cfg.layers[l]
        V = w[:, :n]
        b, g = self.beta[l], self.gamma[l - 1]
        target = self._coupled(l + 1) - w[:, n] if self.cfg.bias else self._coupled(l + 1)
        rhs = g * self.h(self.z[l - 1]) + b * (target @ V)
        if V.shape[0] < n:
            # Woodbury: (b V^T V + g I)^{-1} = (I - b V^T (g I + b V V^T)^{-1} V) / g.
            small = b * (V @ V.T)
            small[np.diag_indices_from(small)] += g
            t = sla.cho_solve(sla.cho_factor(small, lower=True), (rhs @ V.T).T).T
            self.a[l] = np.ascontiguousarray((rhs - b * (t @ V)) / g)
        else:
            big = b * (V.T @ V)
            big[np.diag_indices_from(big)] += g
            self.a[l] = np.ascontiguousarray(
                sla.cho_solve(sla.cho_factor(big, lower=True), rhs.T, check_finite=False).T
            )

    def _hidden_z_update(self, l: int, multipliers: bool) -> None:
        """(3): the entry-wise closed form with m = W_l [a_{l-1}; 1] (minus
        mu_l / (2 beta_l), and then the update of mu_l, with ``multipliers``)."""
        m = np.ascontiguousarray(self._affine(l, self.a[l - 1]))
        if multipliers:
            zl = np.ascontiguousarray(m - self.mu[l - 1] / (2.0 * self.beta[l - 1]))
        else:
            zl = m.copy()
        hidden_z_update(
            zl, self.a[l], float(self.gamma[l - 1]), float(self.beta[l - 1]), self.cfg.activation
        )
        self.z[l - 1] = zl
        if multipliers and self.t >= self.cfg.hidden_multipliers_start:
            self.mu[l - 1] += self.beta[l - 1] * (zl - m)

    def _output_update(self) -> float:
        """(5) and (6): the exact output prox, then lam += beta_L (z_L - W_L a_{L-1})."""
        b = float(self.beta[-1])
        z = np.ascontiguousarray(self._affine(self.L, self.a[-1]))
        update = self.cfg.multipliers and self.t >= self.cfg.warmup
        if self.cfg.loss == "hinge":
            _, _, res = output_hinge_update(z, self.lam, self.labels, b, update)
        elif self.cfg.loss == "squared":
            _, _, res = output_squared_update(z, self.lam, self.onehot, b, update)
        elif self.cfg.loss == "sqhinge":
            # C(z,1) = max(0, 1-z)^2, C(z,0) = max(0, z)^2; with v = m - lam/(2b):
            # y=1: z = v if v >= 1 else (1 + b v)/(1 + b); y=0: z = v if v <= 0 else b v/(1 + b).
            m_ = z.copy()
            v = m_ - self.lam / (2 * b)
            pos = np.where(v >= 1.0, v, (1.0 + b * v) / (1.0 + b))
            neg = np.where(v <= 0.0, v, b * v / (1.0 + b))
            z = np.where(self.onehot == 1, pos, neg)
            res = float(np.sum((z - m_) ** 2))
            if update:
                self.lam += b * (z - m_)
        else:
            raise ValueError(f"unknown loss {self.cfg.loss!r}")
        self.z[-1] = z
        return float(np.sqrt(res))

    # -- public ----------------------------------------------------------

    def restart(self) -> None:
        """Reset the hidden ``a_l``, ``z_l`` and ``z_L`` to the forward pass (keeps lam)."""
        for l in range(1, self.L + 1):
            self.z[l - 1] = np.ascontiguousarray(self._affine(l, self.a[l - 1]))
            if l < self.L:
                self.a[l] = np.ascontiguousarray(self.h(self.z[l - 1]))
        for mu in self.mu:
            mu[:] = 0.0

    def features(self, X: np.ndarray) -> np.ndarray:
        """The forward pass up to the last hidden layer, ``h(... h(W_1 [x;1]))``."""
        out = np.asarray(X, dtype=np.float64) - self.mean
        for l in range(1, self.L):
            out = self.h(self._affine(l, out))
        return out

    def refit_readout(self, iterations: int) -> None:
        """Re-solve the output layer on the network's own features (the forward pass).

        Sets ``a_{L-1}`` to the forward features of the training set, keeping
        the hidden weights, and runs ``iterations`` sweeps of (4), (5), (6)
        only: ADMM on the convex problem ``min C(W_L [a_{L-1}; 1]) + ridge``
        in ``(W_L, z_L, lam)``. Makes ``W_L`` fit what the network computes
        rather than the ADMM state.
        """
        self.a[-1] = np.ascontiguousarray(self.features(self.a[0] + self.mean))
        self.z[-1] = np.ascontiguousarray(self._affine(self.L, self.a[-1]))
        t = self.t
        self.t = max(t, self.cfg.warmup)  # multiplier updates on
        for _ in range(iterations):
            self._weight_update(self.L)
            self._output_update()
        self.t = t

    def forward_refit(
        self, scale: float = 1.0, out_scale: float = 1.0, stack: float = 0.0, mix: float = 0.0
    ) -> None:
        """Re-solve every ``W_l`` on the network's own forward features.

        For ``l = 1..L`` in turn: ``W_l = argmin ||z_l - W [f_{l-1}; 1]||^2 +
        rho_l ||W D||^2`` with ``f_0`` the (centred) inputs and ``f_l =
        h(W_l [f_{l-1}; 1])`` computed with the re-solved ``W_l``: update
        (1)/(4) with the forward pass in place of the state's ``a_{l-1}``.
        The state (a, z, lam) is kept; meant for a copy that is scored.

        The variants of round 6 (``from_state.py``; all off by default):
        ``scale`` multiplies every ridge, ``out_scale`` the output layer's
        too; ``stack`` adds the state's ``a_{l-1}`` as more rows of the
        regression, with weight ``stack``; ``mix`` regresses on
        ``(1 - mix) f_{l-1} + mix a_{l-1}``.
        """
        f = self.a[0]
        # The ridge in force at the last iteration (t - 1).
        ridge_scale = self._ridge_scale(max(self.t - 1, 0)) * scale
        for l in range(1, self.L + 1):
            rho = self.rho[l - 1] * ridge_scale * (out_scale if l == self.L else 1.0)
            rows = f if not mix else (1 - mix) * f + mix * self.a[l - 1]
            targets = self.z[l - 1]
            if stack:
                if self.cfg.bias:  # the stacked rows' bias column would need sqrt(stack) too
                    raise ValueError("stack with bias units is not implemented")
                weight = np.sqrt(stack)
                rows = np.concatenate([rows, weight * self.a[l - 1]])
                targets = np.concatenate([targets, weight * targets])
                rho *= 1 + stack
            factor = self._gram_factor(rows, rho)
            c = self._cross(rows, targets)
            self.W[l - 1] = sla.cho_solve(factor, c, check_finite=False).T.copy()
            if l < self.L:
                f = self.h(self._affine(l, f))

    def fit_step(self) -> dict:
        """One iteration of Algorithm 1 (extended); returns a record."""
        started = time.perf_counter()
        if self.cfg.restart_every and self.t > 0 and self.t % self.cfg.restart_every == 0:
            self.restart()
        if self.cfg.reverse_sweep:
            for l in range(1, self.L + 1):
                self._weight_update(l)
            residual = self._output_update()
            for l in range(self.L - 1, 0, -1):
                self._activation_update(l)
                self._hidden_z_update(l, multipliers=self.cfg.hidden_multipliers)
        else:
            for l in range(1, self.L):
                self._weight_update(l)
                self._activation_update(l)
                self._hidden_z_update(l, multipliers=self.cfg.hidden_multipliers)
            self._weight_update(self.L)
            residual = self._output_update()
        for _ in range(int(self.cfg.backward_sweep)):
            for l in range(self.L - 1, 0, -1):
                self._activation_update(l)
                self._hidden_z_update(l, multipliers=False)
        self.t += 1
        # Continuation: tighten the penalties for the next iteration.
        self.beta = np.minimum(self.beta * self.cfg.beta_growth, self.beta_max)
        self.gamma = np.minimum(self.gamma * self.cfg.gamma_growth, self.gamma_max)
        self.elapsed += time.perf_counter() - started
        return {"iteration": self.t, "residual": residual, "time_s": self.elapsed}

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Forward pass ``W_L h(... h(W_1 [x;1]))`` of ``(m, n_0)`` inputs: ``(m, n_L)``."""
        out = np.asarray(X, dtype=np.float64) - self.mean
        for l in range(1, self.L + 1):
            out = self._affine(l, out)
            if l < self.L:
                out = self.h(out)
        return out

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy of the forward pass arg-max on ``(X, y)``."""
        return float(np.mean(np.argmax(self.decision_function(X), axis=1) == y))

    def train_state_score(self) -> float:
        """Accuracy of the arg-max of the training state's ``W_L [a_{L-1}; 1]``."""
        return self.score_from(self._affine(self.L, self.a[-1]))

    def score_from(self, scores: np.ndarray) -> float:
        return float(np.mean(np.argmax(scores, axis=1) == self.labels))
