"""Flop count of one ADMM iteration (the model of ADMM.md, "Cost per iteration").

The count is of the matrix products the iteration cannot avoid, as the
library does them: a general product ``(p x q)(q x r)`` is ``2 p q r``
flops, a Gram ``a^T a`` of an ``(m, n)`` block by a symmetric rank-k update
``n^2 m``, a Cholesky solve with ``k`` right-hand sides of order ``n``
``2 n^2 k``, a Cholesky factorisation ``n^3 / 3``. Entry-wise updates (the
z-updates, ``h``) are not counted: their cost is memory traffic, not flops,
and the floor ``flops / GEMM rate`` deliberately leaves them out.

Per weight layer ``l = 1..L`` over ``m`` samples (widths ``n_0..n_L``):

- (1)/(4) weights: cross term ``z_l a_{l-1}^T`` (``2 n_l n_{l-1} m``), the
  Gram ``a_{l-1} a_{l-1}^T`` (``n_{l-1}^2 m``, not for ``l = 1``: the input
  Gram is reduced and factored once), its factorisation (``n_{l-1}^3 / 3``,
  again not for ``l = 1``)
  and the solve for ``W_l`` (``2 n_{l-1}^2 n_l``);
- (3)/(5) the product ``W_l a_{l-1}`` (``2 n_l n_{l-1} m``);
- (2) for a hidden layer: ``W_{l+1}^T z_{l+1}`` (``2 n_{l+1} n_l m``); then
  either the direct form (``W^T W``: ``n_{l+1} n_l^2``, factor ``n_l^3/3``,
  its explicit inverse by potri ``2 n_l^3/3``, applied by one gemm
  ``2 n_l^2 m``), or when ``n_{l+1} < n_l`` the Woodbury form
  (``W W^T``: ``n_l n_{l+1}^2``, factor ``n_{l+1}^3/3``, ``a W^T`` and
  ``t W``: ``4 n_l n_{l+1} m``, solve ``2 n_{l+1}^2 m``).

For 784-500-500-10 on 60,000 samples this is 2.48e11 flops (ADMM.md: "about
2.5e11").
"""

from __future__ import annotations

from collections.abc import Sequence


def iteration_flops_by_term(layers: Sequence[int], m: int, ranks: int = 1) -> dict[str, float]:
    """Flops of one iteration for widths ``layers`` and ``m`` samples, per term.

    Keys name the phase and layer (``"cross_1"``, ``"gram_2"``, ``"Wa_3"``,
    ``"act_1"``, ...); the values are floats. Local arithmetic only: with
    ``N`` ranks each rank does the ``m``-proportional terms for its own
    samples and every rank repeats the small ``n^3`` terms, except that
    with ``ranks > 1`` each rank solves only its ``ceil(n_l / ranks)`` rows
    of ``W_l`` (the ``solve_W`` terms; the Gram factors stay whole, in the
    ``factor_W`` terms), as the library does outside ``deterministic`` mode.
    """
    n = [int(v) for v in layers]
    if len(n) < 2 or any(v < 1 for v in n) or m < 0 or ranks < 1:
        raise ValueError(f"need at least two positive widths and m >= 0, got {layers!r}, {m}")
    L = len(n) - 1
    terms: dict[str, float] = {}
    for l in range(1, L + 1):
        n_out, n_in = n[l], n[l - 1]
        terms[f"cross_{l}"] = 2.0 * n_out * n_in * m
        if l > 1:
            terms[f"gram_{l}"] = float(n_in) ** 2 * m
        # The input Gram (l = 1) is factored once, not every iteration.
        terms[f"factor_W_{l}"] = n_in**3 / 3.0 if l > 1 else 0.0
        terms[f"solve_W_{l}"] = 2.0 * n_in**2 * -(-n_out // ranks)
        terms[f"Wa_{l}"] = 2.0 * n_out * n_in * m
        if l < L:
            n_next = n[l + 1]
            act = 2.0 * n_next * n_out * m  # W_{l+1}^T z_{l+1}
            if n_next < n_out:  # Woodbury: only an n_{l+1} system
                act += n_out * n_next**2 + n_next**3 / 3.0
                act += 4.0 * n_out * n_next * m + 2.0 * n_next**2 * m
            else:
                act += n_next * n_out**2 + n_out**3 / 3.0 + 2.0 * n_out**3 / 3.0
                act += 2.0 * n_out**2 * m
            terms[f"act_{l}"] = act
    return terms


def iteration_flops(layers: Sequence[int], m: int, ranks: int = 1) -> float:
    """Total flops of one iteration (see :func:`iteration_flops_by_term`)."""
    return sum(iteration_flops_by_term(layers, m, ranks).values())


def gemm_flops(m: int, n: int, k: int) -> float:
    """Flops of one ``(m x k)(k x n)`` matrix product: ``2 m n k``."""
    return 2.0 * m * n * k
