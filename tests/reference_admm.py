"""A plain NumPy implementation of ADMM.md, written from the spec, for testing.

It shares no code with :mod:`admm`: columns are samples (the spec's own
notation), the solves are dense ``numpy.linalg.solve`` calls (equation (2)
directly, no Woodbury identity) and the entry-wise z-updates evaluate the
spec's list of candidates with ``numpy.argmin`` (the first candidate wins a
tie). It is slow and meant for small problems only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def activation_fn(name: str, negative_slope: float = 0.01) -> Callable[[np.ndarray], np.ndarray]:
    """The entry-wise hidden activation ``h`` (ADMM.md's two and issue 15's)."""
    table: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "hardsigmoid": lambda x: np.clip(x, 0.0, 1.0),
        "relu": lambda x: np.maximum(x, 0.0),
        "leaky_relu": lambda x: np.where(x > 0, x, negative_slope * x),
        "step": lambda x: (x > 0).astype(np.float64),
        "sign": lambda x: np.where(x > 0, 1.0, -1.0),
        "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
        "tanh": np.tanh,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}")
    return table[name]


#: The smallest positive float64: the value of ``z`` on the open side of a
#: jump (``z > 0``), the documented choice of the kernels.
TINY = float(np.finfo(np.float64).tiny)


def _smooth_z(a: np.ndarray, m: np.ndarray, gamma: float, beta: float, name: str) -> np.ndarray:
    """Global minimum of ``gamma (a - h(z))^2 + beta (z - m)^2`` for a smooth ``h``,
    entry by entry: the best point of a fine grid over the interval that must
    hold every minimiser, refined by bounded Brent between its neighbours."""
    from scipy.optimize import minimize_scalar

    h = activation_fn(name)
    slope = 0.25 if name == "sigmoid" else 1.0  # max of h'
    out = np.empty_like(m)
    for i, (ai, mi) in enumerate(zip(a.ravel(), m.ravel(), strict=True)):
        reach = gamma * (abs(ai) + 1.0) * slope / beta + 1e-12

        def cost(z: float | np.ndarray, ai: float = ai, mi: float = mi) -> float | np.ndarray:
            return gamma * (ai - h(z)) ** 2 + beta * (z - mi) ** 2

        grid = np.linspace(mi - reach, mi + reach, 4001)
        k = int(np.argmin(cost(grid)))
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
        res = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13})
        out.flat[i] = res.x if cost(res.x) <= cost(grid[k]) else grid[k]
    return out


def hidden_z_closed_form(
    a: np.ndarray,
    m: np.ndarray,
    gamma: float,
    beta: float,
    activation: str,
    negative_slope: float = 0.01,
) -> np.ndarray:
    """``argmin_z gamma (a - h(z))^2 + beta (z - m)^2`` entry-wise.

    The piecewise activations compare the candidates of ADMM.md's "Closed
    forms" (and, for leaky ReLU, step and sign, the clamped minimiser of
    each piece); among equal costs the first candidate wins (``argmin``
    returns the first minimum). The open side ``z > 0`` of a jump takes
    :data:`TINY` when the minimum lies at its edge. Sigmoid and tanh: a grid
    and Brent (:func:`_smooth_z`).
    """
    a = np.asarray(a, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if activation in ("sigmoid", "tanh"):
        return _smooth_z(a, m, gamma, beta, activation)
    mid = (gamma * a + beta * m) / (gamma + beta)
    z1 = np.minimum(m, 0.0)
    c1 = gamma * a**2 + beta * (z1 - m) ** 2
    if activation == "hardsigmoid":
        z2 = np.clip(mid, 0.0, 1.0)
        z3 = np.maximum(m, 1.0)
        c2 = gamma * (a - z2) ** 2 + beta * (z2 - m) ** 2
        c3 = gamma * (a - 1.0) ** 2 + beta * (z3 - m) ** 2
        candidates, costs = np.stack([z1, z2, z3]), np.stack([c1, c2, c3])
    elif activation == "relu":
        z2 = np.maximum(mid, 0.0)
        c2 = gamma * (a - z2) ** 2 + beta * (z2 - m) ** 2
        candidates, costs = np.stack([z1, z2]), np.stack([c1, c2])
    elif activation == "leaky_relu":
        s = negative_slope
        z1 = np.minimum((gamma * s * a + beta * m) / (gamma * s * s + beta), 0.0)
        c1 = gamma * (a - s * z1) ** 2 + beta * (z1 - m) ** 2
        z2 = np.maximum(mid, 0.0)
        c2 = gamma * (a - z2) ** 2 + beta * (z2 - m) ** 2
        candidates, costs = np.stack([z1, z2]), np.stack([c1, c2])
    elif activation in ("step", "sign"):
        low = 0.0 if activation == "step" else -1.0
        c1 = gamma * (a - low) ** 2 + beta * (z1 - m) ** 2
        z2 = np.where(m > 0, m, TINY)
        c2 = gamma * (a - 1.0) ** 2 + beta * (z2 - m) ** 2
        candidates, costs = np.stack([z1, z2]), np.stack([c1, c2])
    else:
        raise ValueError(f"unknown activation {activation!r}")
    best = np.argmin(costs, axis=0)
    return np.take_along_axis(candidates, best[None], axis=0)[0]


def logistic_prox(m: np.ndarray, lam: np.ndarray, y: np.ndarray, beta: float) -> np.ndarray:
    """``argmin_z log(1 + exp(-(2y - 1) z)) + z lam + beta (z - m)^2`` entry-wise
    (convex: bounded Brent on an interval that must hold the minimiser)."""
    from scipy.optimize import minimize_scalar

    out = np.empty_like(m)
    for i, (mi, li, yi) in enumerate(zip(m.ravel(), lam.ravel(), y.ravel(), strict=True)):
        s = 2.0 * yi - 1.0
        center = mi - li / (2.0 * beta)
        reach = 1.0 / (2.0 * beta) + 1e-12  # |dC/dz| <= 1

        def f(z: float, s: float = s, mi: float = mi, li: float = li) -> float:
            return float(np.logaddexp(0.0, -s * z) + li * z + beta * (z - mi) ** 2)

        res = minimize_scalar(
            f, bounds=(center - reach, center + reach), method="bounded",
            options={"xatol": 1e-13},
        )  # fmt: skip
        out.flat[i] = res.x
    return out


def cross_entropy_prox(m: np.ndarray, lam: np.ndarray, Y: np.ndarray, beta: float) -> np.ndarray:
    """Per column (sample): ``argmin_z logsumexp(z) - <z, y> + <z, lam> + beta ||z - m||^2``
    with ``y`` the column's target distribution, one-hot or label-smoothed
    (SciPy's BFGS with the exact gradient)."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp, softmax

    out = np.empty_like(m)
    for j in range(m.shape[1]):
        mj, lj, yj = m[:, j], lam[:, j], Y[:, j]

        def f(z: np.ndarray, mj=mj, lj=lj, yj=yj) -> tuple[float, np.ndarray]:
            value = logsumexp(z) - z @ yj + z @ lj + beta * np.sum((z - mj) ** 2)
            return float(value), softmax(z) - yj + lj + 2.0 * beta * (z - mj)

        res = minimize(f, mj - lj / (2 * beta), jac=True, method="BFGS", options={"gtol": 1e-13})
        out[:, j] = res.x
    return out


def hinge_prox(m: np.ndarray, lam: np.ndarray, onehot: np.ndarray, beta: float) -> np.ndarray:
    """``argmin_z C(z, y) + z lam + beta (z - m)^2`` entry-wise, one-vs-rest hinge.

    The proximal step of ADMM.md with ``v = m - lam / (2 beta)``; ``onehot``
    holds the 0/1 targets ``y``.
    """
    v = m - lam / (2.0 * beta)
    step = 1.0 / (2.0 * beta)
    pos = np.where(v >= 1.0, v, np.where(v + step <= 1.0, v + step, 1.0))
    neg = np.where(v <= 0.0, v, np.where(v - step >= 0.0, v - step, 0.0))
    return np.where(onehot == 1, pos, neg)


def output_prox(
    loss: str, m: np.ndarray, lam: np.ndarray, Y: np.ndarray, beta: float
) -> np.ndarray:
    """``argmin_z C(z, Y) + <z, lam> + beta ||z - m||^2`` for ``loss``, columns as
    samples (``Y`` the 0/1 or one-hot targets, or the squared loss's targets)."""
    if loss == "hinge":
        return hinge_prox(m, lam, Y, beta)
    if loss == "logistic":
        return logistic_prox(m, lam, Y, beta)
    if loss == "cross_entropy":
        return cross_entropy_prox(m, lam, Y, beta)
    return (2.0 * Y - lam + 2.0 * beta * m) / (2.0 + 2.0 * beta)


def hinge_loss(z: np.ndarray, onehot: np.ndarray) -> float:
    """Sum over entries of the one-vs-rest hinge ``C(z, y)`` of ADMM.md."""
    return float(np.sum(np.where(onehot == 1, np.maximum(0.0, 1.0 - z), np.maximum(0.0, z))))


def forward(
    weights: Sequence[np.ndarray], X: np.ndarray, activation: str, negative_slope: float = 0.01
) -> np.ndarray:
    """``W_L h(... h(W_1 x))`` for each row of ``X``: an ``(m, n_L)`` array."""
    h = activation_fn(activation, negative_slope)
    out = np.asarray(X, dtype=np.float64).T
    for i, w in enumerate(weights):
        out = w @ out
        if i < len(weights) - 1:
            out = h(out)
    return out.T


class ReferenceADMM:
    """ADMM.md's Algorithm 1 on the whole data set, in float64, columns as samples.

    ``X`` is ``(m, n_0)`` with samples in rows (it is transposed on entry);
    ``y`` are integer labels (hinge) or an ``(m, n_L)`` target array (squared).
    ``weights`` are the initial ``W_l`` (``(n_l, n_{l-1})``); ``beta`` holds L
    values, ``gamma`` L-1, ``rho`` L absolute ridges. The initial state is a
    forward pass with ``lam = 0`` ("Initialisation").

    Extensions of the accuracy study (docs/accuracy-study.md): ``center``
    subtracts the mean input column; ``beta_growth``/``gamma_growth`` with
    caps ``beta_max``/``gamma_max`` make the penalties of iteration ``t``
    ``min(beta * growth**t, max)``; ``multiplier=False`` never updates lam;
    ``rho_relative`` (with ``rho=()``) sets ``rho_l`` to that multiple of the
    mean diagonal of ``a_{l-1} a_{l-1}^T`` after the initial forward pass;
    ``rho_final`` with ``rho_decay_iterations = T`` makes the ridge of
    iteration ``t`` ``rho_l * rho_final**(min(t, T) / T)``; ``inertia`` ``c``
    replaces every solved ``W_l`` by ``W_l + c (W_l - W_l^prev)`` from
    iteration 1 on; ``backward_sweep`` repeats (2) and (3) for
    ``l = L-1 .. 1`` after the multiplier update, and :meth:`objective` is
    then that of the state before the sweep; ``refit_every`` ``K`` replaces
    the weights by :func:`forward_refit` of the state (with the ridge of the
    iteration) after every K-th iteration (after iterations ``F, F + K, ...``
    with ``refit_first`` ``F``), :meth:`objective` staying that of the
    weights before it.

    ``label_smoothing`` ``s`` (cross-entropy): the target column of label
    ``y`` is ``(1 - s) e_y + s / n_L`` instead of ``e_y``, in the output
    update and the objective alike.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        layers: Sequence[int],
        weights: Sequence[np.ndarray],
        activation: str = "hardsigmoid",
        loss: str = "hinge",
        beta: Sequence[float] = (),
        gamma: Sequence[float] = (),
        rho: Sequence[float] = (),
        warmup: int = 10,
        center: bool = False,
        beta_growth: float = 1.0,
        gamma_growth: float = 1.0,
        beta_max: Sequence[float] | None = None,
        gamma_max: Sequence[float] | None = None,
        multiplier: bool = True,
        rho_relative: float | None = None,
        rho_final: float = 1.0,
        rho_decay_iterations: int = 0,
        inertia: float = 0.0,
        backward_sweep: bool = False,
        negative_slope: float = 0.01,
        refit_every: int = 0,
        refit_first: int = 0,
        label_smoothing: float = 0.0,
        refit_input_layer: bool = True,
        start_from_targets: bool = False,
    ) -> None:
        self.layers = tuple(int(n) for n in layers)
        L = len(self.layers) - 1
        self.L = L
        self.activation = activation
        self.h = activation_fn(activation, negative_slope)
        self.negative_slope = float(negative_slope)
        self.loss = loss
        self.beta0 = [float(b) for b in beta]
        self.gamma0 = [float(g) for g in gamma]
        self.growth = (float(beta_growth), float(gamma_growth))
        self.caps = (
            [np.inf] * L if beta_max is None else [float(v) for v in beta_max],
            [np.inf] * (L - 1) if gamma_max is None else [float(v) for v in gamma_max],
        )
        self.rho = [float(r) for r in rho]
        if len(self.beta0) != L or len(self.gamma0) != L - 1:
            raise ValueError("beta needs L values, gamma L-1")
        if rho_relative is None and len(self.rho) != L:
            raise ValueError("rho needs L values (or give rho_relative)")
        self.warmup = int(warmup)
        self.multiplier = bool(multiplier)
        self.rho_final = float(rho_final)
        self.rho_decay_iterations = int(rho_decay_iterations)
        self.inertia = float(inertia)
        self.backward_sweep = bool(backward_sweep)
        self.refit_every = int(refit_every)
        # Iterations (from 1) after which the weights are refit.
        first = int(refit_first) or self.refit_every
        self.refit_at = range(first, 2**62, self.refit_every) if self.refit_every else range(0)
        self.refit_input_layer = bool(refit_input_layer)
        self.X = np.asarray(X, dtype=np.float64).T.copy()  # n_0 x m
        self.mean = self.X.mean(axis=1, keepdims=True) if center else np.zeros((len(self.X), 1))
        self.X = self.X - self.mean
        m = self.X.shape[1]
        if loss in ("hinge", "cross_entropy", "logistic"):
            labels = np.asarray(y).astype(np.int64)
            if self.layers[-1] == 1:  # one output: its target is the label (0 or 1)
                self.Y = labels[None, :].astype(np.float64)
            else:
                self.Y = np.zeros((self.layers[-1], m))
                self.Y[labels, np.arange(m)] = 1.0
            if label_smoothing:
                if loss != "cross_entropy":
                    raise ValueError("label smoothing is the cross-entropy's")
                self.Y = (1.0 - label_smoothing) * self.Y + label_smoothing / self.layers[-1]
        elif loss == "squared":
            self.Y = np.asarray(y, dtype=np.float64).T.copy()
        else:
            raise ValueError(f"unknown loss {loss!r}")
        self.weights = [np.array(w, dtype=np.float64) for w in weights]
        for l, w in enumerate(self.weights):
            assert w.shape == (self.layers[l + 1], self.layers[l])
        # Initialisation: a forward pass, lam = 0. a[0] is X; a[L] is unused.
        self.a: list[np.ndarray] = [self.X]
        self.z: list[np.ndarray] = []
        for l, w in enumerate(self.weights):
            self.z.append(w @ self.a[-1])
            if l < L - 1:
                self.a.append(self.h(self.z[-1]))
        self.lam = np.zeros((self.layers[-1], m))
        if rho_relative is not None:
            self.rho = [float(rho_relative) * np.sum(a**2) / a.shape[0] for a in self.a]
        self.t = 0
        self._set_penalties()
        if start_from_targets:
            self._output_update()  # (5) on the forward pass, lam = 0
        # Before the first iteration, the objective is taken with its penalties.
        self.last_beta, self.last_gamma, self.last_ridge = self.beta, self.gamma, self.ridge
        self.swept_objective: float | None = None

    def ridges(self, t: int) -> list[float]:
        """The ridge of each layer at iteration ``t``."""
        if self.rho_decay_iterations == 0:
            return list(self.rho)
        T = self.rho_decay_iterations
        return [r * self.rho_final ** (min(t, T) / T) for r in self.rho]

    def _set_penalties(self) -> None:
        """beta_l, gamma_l and the ridges of iteration ``self.t``."""
        t = self.t
        self.ridge = self.ridges(t)
        self.beta = [
            min(b * self.growth[0] ** t, c) for b, c in zip(self.beta0, self.caps[0], strict=True)
        ]
        self.gamma = [
            min(g * self.growth[1] ** t, c) for g, c in zip(self.gamma0, self.caps[1], strict=True)
        ]

    # The sub-steps, equations (1)-(6); l is 1-based as in the spec.

    def _weight_update(self, l: int) -> None:
        """(1)/(4): W_l = z_l a^T (a a^T + rho_l I)^{-1}, a = a_{l-1}."""
        a = self.a[l - 1]
        G = a @ a.T + self.ridge[l - 1] * np.eye(a.shape[0])
        # G is symmetric: W^T = G^{-1} (a z^T).
        w = np.linalg.solve(G, a @ self.z[l - 1].T).T
        if self.t > 0:  # inertia: extrapolate from the previous iteration's W_l
            w = w + self.inertia * (w - self.weights[l - 1])
        self.weights[l - 1] = w

    def _activation_update(self, l: int) -> None:
        """(2) with W_{l+1}, z_{l+1} of the previous iteration, beta_{l+1}, gamma_l."""
        w = self.weights[l]
        b, g = self.beta[l], self.gamma[l - 1]
        lhs = b * w.T @ w + g * np.eye(w.shape[1])
        rhs = b * w.T @ self.z[l] + g * self.h(self.z[l - 1])
        self.a[l] = np.linalg.solve(lhs, rhs)

    def _hidden_z_update(self, l: int) -> None:
        """(3): the entry-wise closed form with m = W_l a_{l-1}."""
        m = self.weights[l - 1] @ self.a[l - 1]
        self.z[l - 1] = hidden_z_closed_form(
            self.a[l], m, self.gamma[l - 1], self.beta[l - 1], self.activation,
            self.negative_slope,
        )  # fmt: skip

    def _output_update(self) -> None:
        """(5): the exact output prox with m = W_L a_{L-1}."""
        m = self.weights[-1] @ self.a[-1]
        self.z[-1] = output_prox(self.loss, m, self.lam, self.Y, self.beta[-1])

    def _multiplier_update(self) -> None:
        """(6): lam += beta_L (z_L - W_L a_{L-1})."""
        self.lam = self.lam + self.beta[-1] * (self.z[-1] - self.weights[-1] @ self.a[-1])

    def step(self, observer: Callable[[str], None] | None = None) -> None:
        """One iteration (1)-(6) in the spec's order; ``observer(name)`` after each sub-step."""
        notify = observer or (lambda name: None)
        for l in range(1, self.L):
            self._weight_update(l)
            notify(f"W{l}")
            self._activation_update(l)
            notify(f"a{l}")
            self._hidden_z_update(l)
            notify(f"z{l}")
        self._weight_update(self.L)
        notify(f"W{self.L}")
        self._output_update()
        notify(f"z{self.L}")
        if self.multiplier and self.t >= self.warmup:
            self._multiplier_update()
            notify("lam")
        # The objective of this iteration is taken with its own penalties.
        self.last_beta, self.last_gamma, self.last_ridge = self.beta, self.gamma, self.ridge
        self.swept_objective = None
        if self.backward_sweep:
            self.swept_objective = self.objective_now()
            for l in range(self.L - 1, 0, -1):
                self._activation_update(l)
                notify(f"a{l}")
                self._hidden_z_update(l)
                notify(f"z{l}")
        if self.t + 1 in self.refit_at:
            # The objective reported stays that of the iteration's own weights.
            self.swept_objective = self.objective()
            keep = None if self.refit_input_layer else self.weights[0]
            self.weights = forward_refit(
                self.X.T, self.z, self.ridge, self.activation, input_weights=keep
            )
            notify("refit")
        self.t += 1
        self._set_penalties()

    def objective(self) -> float:
        """The objective of ADMM.md "Problem" plus sum_l beta_l rho_l ||W_l||_F^2,
        with the penalties of the last iteration done (before its backward
        sweep, with ``backward_sweep``)."""
        if self.swept_objective is not None:
            return self.swept_objective
        return self.objective_now()

    def objective_now(self) -> float:
        """The objective of the current state, with the last iteration's penalties."""
        return self._objective(self.last_beta, self.last_gamma, self.last_ridge)

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Forward pass of ``(m, n_0)`` inputs (centred as in training): ``(m, n_L)``."""
        return forward(
            self.weights, np.asarray(X, dtype=np.float64) - self.mean.T, self.activation
        )

    def _objective(
        self, beta: Sequence[float], gamma: Sequence[float], ridge: Sequence[float]
    ) -> float:
        total = 0.0
        for l in range(1, self.L):
            total += gamma[l - 1] * np.sum((self.a[l] - self.h(self.z[l - 1])) ** 2)
            r = self.z[l - 1] - self.weights[l - 1] @ self.a[l - 1]
            total += beta[l - 1] * np.sum(r**2)
        zL = self.z[-1]
        if self.loss == "hinge":
            total += hinge_loss(zL, self.Y)
        elif self.loss == "logistic":
            total += float(np.sum(np.logaddexp(0.0, -(2.0 * self.Y - 1.0) * zL)))
        elif self.loss == "cross_entropy":
            from scipy.special import logsumexp

            total += float(np.sum(logsumexp(zL, axis=0) - np.sum(zL * self.Y, axis=0)))
        else:
            total += float(np.sum((zL - self.Y) ** 2))
        total += float(np.sum(zL * self.lam))
        total += beta[-1] * np.sum((zL - self.weights[-1] @ self.a[-1]) ** 2)
        for b, r, w in zip(beta, ridge, self.weights, strict=True):
            total += b * r * np.sum(w**2)
        return float(total)

    def residual(self) -> float:
        """The primal residual ``||z_L - W_L a_{L-1}||_F``."""
        return float(np.linalg.norm(self.z[-1] - self.weights[-1] @ self.a[-1]))


def forward_refit(
    X: np.ndarray,
    z: Sequence[np.ndarray],
    rho: Sequence[float],
    activation: str,
    mean: np.ndarray | None = None,
    input_weights: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The forward refit of the weights, columns as samples, in float64.

    ``X`` is ``(m, n_0)`` with samples in rows (transposed on entry, ``mean``
    of shape ``(n_0,)`` subtracted when given); ``z`` are the state's
    ``z_l`` as ``n_l x m`` arrays and ``rho`` the L ridges. For
    ``l = 1..L``: ``W_l = z_l f^T (f f^T + rho_l I)^{-1}`` with ``f = f_{l-1}``,
    ``f_0 = X`` and ``f_l = h(W_l f_{l-1})`` through the refit ``W_l``;
    updates (1)/(4) of ADMM.md with the network's own forward features in
    place of ``a_{l-1}``. Returns the refit ``W_l`` (``n_l x n_{l-1}``).
    With ``input_weights``, ``W_1`` is that matrix, not re-solved.
    """
    h = activation_fn(activation)
    f = np.asarray(X, dtype=np.float64).T
    if mean is not None:
        f = f - np.asarray(mean, dtype=np.float64)[:, None]
    weights = []
    for l, (zl, r) in enumerate(zip(z, rho, strict=True)):
        if l == 0 and input_weights is not None:
            weights.append(np.array(input_weights, dtype=np.float64))
            f = h(weights[0] @ f)
            continue
        G = f @ f.T + r * np.eye(f.shape[0])
        # G is symmetric: W^T = G^{-1} (f z^T).
        w = np.linalg.solve(G, f @ np.asarray(zl, dtype=np.float64).T).T
        weights.append(w)
        if l < len(z) - 1:
            f = h(w @ f)
    return weights


def readout(
    f: np.ndarray,
    z: np.ndarray,
    Y: np.ndarray,
    loss: str,
    beta: float,
    ridge_relative: float,
    iterations: int,
) -> np.ndarray:
    """The read-out of ``W_L`` on fixed features, columns as samples, in float64.

    ``f`` is ``f_{L-1}`` (``n_{L-1} x m``), ``z`` the state's ``z_L`` and ``Y``
    the targets as :func:`output_prox` takes them (``n_L x m``). ADMM on
    ``sum C(W f, Y) + beta rho ||W||^2`` with ``z = W f``, ``rho =
    ridge_relative`` times the mean diagonal of ``f f^T``: from ``W = z f^T
    (f f^T + rho I)^{-1}`` and ``lam = 0``, ``iterations`` times ``z = prox(W
    f)``, ``lam += beta (z - W f)``, ``W = (z + lam / (2 beta)) f^T (f f^T +
    rho I)^{-1}``.
    """
    f = np.asarray(f, dtype=np.float64)
    G = f @ f.T
    G = G + ridge_relative * np.trace(G) / len(G) * np.eye(len(G))
    w = np.linalg.solve(G, f @ np.asarray(z, dtype=np.float64).T).T
    lam = np.zeros_like(w @ f)
    for _ in range(iterations):
        m = w @ f
        zr = output_prox(loss, m, lam, Y, beta)
        lam = lam + beta * (zr - m)
        w = np.linalg.solve(G, f @ (zr + lam / (2.0 * beta)).T).T
    return w


def deskew_images(X: np.ndarray) -> np.ndarray:
    """Deskewing written from its definition, pixel by pixel, in float64.

    ``X`` is ``(m, s*s)``, square images row by row. Per image, with the
    intensities as weights: centre of mass ``(r0, c0)``, ``v_rr`` the
    variance of the row, ``v_rc`` the row-column covariance (both by direct
    sums of squared deviations), slant ``v_rc / v_rr`` (0 when the image has
    no ink or ``v_rr`` is 0). Output pixel ``(r, c)`` is the bilinear
    interpolation of the input at ``(r0 + r - k, c0 + c - k + slant (r - k))``,
    ``k = (s - 1) / 2``, with zero outside the image.
    """
    X = np.asarray(X, dtype=np.float64)
    s = math.isqrt(X.shape[1])
    k = (s - 1) / 2
    out = np.zeros_like(X)
    for i, flat in enumerate(X):
        img = flat.reshape(s, s)
        mass = img.sum()
        r0 = c0 = k
        slant = 0.0
        if mass > 0:
            r0 = sum(r * img[r, c] for r in range(s) for c in range(s)) / mass
            c0 = sum(c * img[r, c] for r in range(s) for c in range(s)) / mass
            v_rr = sum((r - r0) ** 2 * img[r, c] for r in range(s) for c in range(s)) / mass
            v_rc = sum((r - r0) * (c - c0) * img[r, c] for r in range(s) for c in range(s))
            v_rc /= mass
            slant = v_rc / v_rr if v_rr > 1e-9 * s * s else 0.0

        def pixel(r: int, c: int, img: np.ndarray = img) -> float:
            return img[r, c] if 0 <= r < s and 0 <= c < s else 0.0

        for r in range(s):
            for c in range(s):
                y, x = r0 + r - k, c0 + c - k + slant * (r - k)
                y0, x0 = int(np.floor(y)), int(np.floor(x))
                dy, dx = y - y0, x - x0
                out[i, r * s + c] = (
                    (1 - dy) * (1 - dx) * pixel(y0, x0)
                    + (1 - dy) * dx * pixel(y0, x0 + 1)
                    + dy * (1 - dx) * pixel(y0 + 1, x0)
                    + dy * dx * pixel(y0 + 1, x0 + 1)
                )
    return out
