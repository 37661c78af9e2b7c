"""Record what the cross-entropy output kernel computes, for bit-for-bit checks.

Run once on the code *before* a change of the kernel (it was first run on
commit d24f555, before label smoothing, whose ``label_smoothing=0`` must
compute the same numbers)::

    python tests/golden/make_cross_entropy_golden.py

It writes ``tests/golden/cross_entropy.npz``: the inputs of every case of
:func:`cases` (``m``, ``lam0``, ``labels``; ``m`` and ``lam0`` in float64,
rounded to each dtype when run) and, per dtype, what ``output_cross_entropy_update`` left in ``z`` and
``lam`` and returned. The kernel calls only ``exp`` and ``log`` of the C
library, no BLAS, so the numbers are those of any x86-64 host with the same
libm.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "cross_entropy.npz"


def cases() -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray, float, bool, str]]:
    """``(key, m, lam, labels, beta, update_multiplier, order)`` for every case,
    with ``m`` and ``lam`` in float64 (the caller rounds them to the dtype)."""
    rng = np.random.default_rng(20160605)
    for k in (3, 10):
        n = 20
        m = rng.uniform(-3.0, 3.0, (n, k))
        lam = rng.uniform(-1.5, 1.5, (n, k))
        m[0], lam[0] = 0.0, 0.0  # all classes tied
        m[1] = 40.0 * np.sign(rng.standard_normal(k))  # exp saturates
        m[2] = 500.0 * rng.standard_normal(k)  # logits far apart
        labels = rng.integers(0, k, n)
        for beta in (1e-3, 0.2, 50.0):
            for update in (False, True):
                order = "F" if beta == 0.2 else "C"
                yield f"k{k}-b{beta:g}-u{int(update)}", m, lam, labels, beta, update, order


def run(
    m: np.ndarray,
    lam: np.ndarray,
    labels: np.ndarray,
    beta: float,
    update: bool,
    order: str,
    dtype: type,
    **kwargs: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z, lam, sums)`` after the kernel on copies of ``m`` and ``lam`` in ``dtype``."""
    from admm_core import output_cross_entropy_update

    z = np.array(m, dtype=dtype, order=order)
    lam = np.array(lam, dtype=dtype, order=order)
    sums = output_cross_entropy_update(z, lam, labels, beta, update, **kwargs)
    return z, lam, np.array(sums)


def main() -> None:
    arrays = {}
    for key, m, lam, labels, beta, update, order in cases():
        arrays[f"{key}/m"], arrays[f"{key}/lam0"], arrays[f"{key}/labels"] = m, lam, labels
        for dtype in (np.float32, np.float64):
            name = f"{key}/{np.dtype(dtype).name}"
            z, lam_out, sums = run(m, lam, labels, beta, update, order, dtype)
            arrays[f"{name}/z"], arrays[f"{name}/lam"], arrays[f"{name}/sums"] = z, lam_out, sums
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({len(arrays)} arrays)", file=sys.stderr)


if __name__ == "__main__":
    main()
