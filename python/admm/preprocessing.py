"""Input transforms, the same in training and prediction.

Local. :func:`deskew`, :func:`power_normalize` and :func:`normalize_rows`
transform every sample on its own, so the result does not depend on how the
samples are split over the ranks; :func:`spectral_scaling` builds the matrix
of ``spectral_power`` from the covariance that the network reduces over the
ranks.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from admm_core import shear_images

#: Rows converted to float64 at a time for the moments of :func:`deskew`.
MOMENT_BLOCK = 4096

#: Float64 numbers per image that :func:`deskew` holds besides its result
#: (five moments and the per-image parameters derived from them), an upper
#: bound for the memory model.
SCRATCH_PER_IMAGE = 15


def image_side(n_features: int) -> int:
    """The side of the square image of ``n_features`` pixels (row-major).

    Raises ``ValueError`` when ``n_features`` is not a perfect square.
    """
    side = math.isqrt(int(n_features))
    if side < 1 or side * side != n_features:
        raise ValueError(
            f"deskew needs square images stored row by row: {n_features} input features "
            "is not a perfect square"
        )
    return side


def check_pixels(X: np.ndarray) -> None:
    """Raise ``ValueError`` unless every entry of ``X`` is finite and non-negative.

    Checked ``MOMENT_BLOCK`` rows at a time (no whole-array temporaries).
    """
    for start in range(0, X.shape[0], MOMENT_BLOCK):
        _check_block(X[start : start + MOMENT_BLOCK])


def _check_block(block: np.ndarray) -> None:
    if not np.all(np.isfinite(block)):
        raise ValueError("deskew needs finite pixel intensities; X contains NaN or inf")
    if block.size and np.min(block) < 0:
        raise ValueError(
            f"deskew needs non-negative pixel intensities (ink as weight), but a pixel "
            f"is {float(np.min(block)):g}: deskew raw images, before centring or scaling "
            "them to negative values"
        )


def deskew(X: np.ndarray) -> np.ndarray:
    """Shear every image so that its main axis is vertical, and centre its mass.

    ``X`` is ``(m, side * side)``: one square image per row, stored row by
    row, with non-negative pixel intensities (MNIST's ``[0, 1]`` scale, or
    any other). For each image, with the intensities as weights, let
    ``(r0, c0)`` be the centre of mass (row, column), ``v_rr`` the variance
    of the row index and ``v_rc`` the covariance of row and column. The
    output pixel at ``(r, c)`` is the input, interpolated bilinearly (zero
    outside), at::

        (r0 + (r - k),  c0 + (c - k) + s (r - k)),   s = v_rc / v_rr,  k = (side - 1) / 2

    so the output has its centre of mass at the middle pixel and no
    row-column covariance: a slanted stroke becomes upright. This is the
    deskewing of LeCun et al. (1998), which lowers the error of most
    classifiers on handwritten digits. An image with no ink (all zeros) or
    with all its ink in one row is only shifted (``s = 0``).

    Returns a new C-contiguous array of ``X``'s shape and floating dtype
    (float64 for integer input); ``X`` is not modified. The moments and the
    interpolation are computed in float64 whatever the dtype. Besides the
    result it needs ``MOMENT_BLOCK`` rows of ``X`` in float64 and
    ``SCRATCH_PER_IMAGE`` float64 numbers per image at a time. The
    interpolation is the compiled :func:`admm_core.shear_images`, bit for
    bit ``scipy.ndimage.affine_transform(order=1, mode="grid-constant")``.

    Raises
    ------
    ValueError
        ``X`` not 2-D, its width not a perfect square, a negative, NaN or
        infinite pixel.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"deskew needs a 2-D array of images, got shape {X.shape}")
    side = image_side(X.shape[1])
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float64)
    out = np.empty(X.shape, dtype=dtype)
    if X.shape[0] == 0:
        return out
    rows, cols = np.divmod(np.arange(side * side, dtype=np.float64), side)
    # Moments of every image: mass, sum r, sum c, sum r^2, sum r c; in blocks
    # of rows, so a float32 X is never copied whole to float64. By einsum's
    # own loops, not a BLAS gemm, whose rounding of a row can depend on the
    # row's place in the block (OpenBLAS's Haswell kernels): an image's result
    # must not depend on the images beside it (deterministic=True).
    basis = np.stack([np.ones_like(rows), rows, cols, rows * rows, rows * cols], axis=1)
    moments = np.empty((X.shape[0], 5))
    # The pixels are checked on the same float64 blocks, before any image is moved.
    for start in range(0, X.shape[0], MOMENT_BLOCK):
        block = np.asarray(X[start : start + MOMENT_BLOCK], dtype=np.float64)
        _check_block(block)
        np.einsum("ij,jk->ik", block, basis, out=moments[start : start + len(block)])
    mass = moments[:, 0]
    has_ink = mass > 0
    safe_mass = np.where(has_ink, mass, 1.0)
    r0 = np.where(has_ink, moments[:, 1] / safe_mass, (side - 1) / 2)
    c0 = np.where(has_ink, moments[:, 2] / safe_mass, (side - 1) / 2)
    v_rr = moments[:, 3] / safe_mass - r0 * r0
    v_rc = moments[:, 4] / safe_mass - r0 * c0
    # v_rr is a difference of sums: treat round-off sized values as no spread.
    spread = v_rr > 1e-9 * side * side
    slant = np.where(spread, v_rc / np.where(spread, v_rr, 1.0), 0.0)
    del moments, mass, has_ink, safe_mass, v_rr, v_rc, spread  # within SCRATCH_PER_IMAGE
    k = (side - 1) / 2
    # Input pixel of output (r, c): (r0 - k + r, c0 - k - s k + s r + c).
    offsets = np.empty((X.shape[0], 3))
    offsets[:, 0] = r0 - k
    offsets[:, 1] = c0 - k - slant * k
    offsets[:, 2] = slant
    if out.dtype in (np.float32, np.float64) and X.dtype == out.dtype:
        shear_images(np.ascontiguousarray(X), offsets, out)
        return out
    # Other dtypes (integers, float16): sheared in float64 blocks, then cast.
    for start in range(0, X.shape[0], MOMENT_BLOCK):
        rows_ = slice(start, start + MOMENT_BLOCK)
        block = np.ascontiguousarray(X[rows_], dtype=np.float64)
        out[rows_] = shear_images(block, offsets[rows_], np.empty_like(block))
    return out


def _floating(X: np.ndarray) -> np.ndarray:
    """``X`` as an array of floats (integers and booleans converted to float64)."""
    X = np.asarray(X)
    return X if np.issubdtype(X.dtype, np.floating) else X.astype(np.float64)


def power_normalize(X: np.ndarray, power: float, out: np.ndarray | None = None) -> np.ndarray:
    """``sign(x) |x|^power`` for every entry ``x`` of ``X`` (rows first), in its
    float dtype (integers become float64).

    The power normalisation of Perronnin, Sánchez and Mensink (2010, "Improving
    the Fisher kernel for large-scale image classification"): with ``power <
    1`` it compresses large values and spreads small ones. ``out`` may be
    ``X`` itself. Works ``MOMENT_BLOCK`` rows at a time (a temporary of one
    block).
    """
    X = _floating(X)
    out = np.empty_like(X) if out is None else out
    for start in range(0, X.shape[0], MOMENT_BLOCK):
        rows = slice(start, start + MOMENT_BLOCK)
        with np.errstate(over="ignore"):  # the network names an overflow
            magnitude = np.power(np.abs(X[rows]), X.dtype.type(power))
        np.copysign(magnitude, X[rows], out=out[rows])
    return out


def normalize_rows(X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Every row of ``X`` ``(m, n)`` divided by its Euclidean norm, in its float
    dtype (integers become float64).

    The norm is summed in float64, row by row, so a row's result does not
    depend on the other rows; an all-zero row stays zero. ``out`` may be
    ``X`` itself. Works ``MOMENT_BLOCK`` rows at a time.
    """
    X = _floating(X)
    out = np.empty_like(X) if out is None else out
    for start in range(0, X.shape[0], MOMENT_BLOCK):
        rows = slice(start, start + MOMENT_BLOCK)
        norms = np.sqrt(np.sum(np.square(X[rows], dtype=np.float64), axis=1))
        norms[norms == 0.0] = 1.0
        np.divide(X[rows], norms[:, None], out=out[rows], casting="same_kind")
    return out


def spectral_scaling(covariance: np.ndarray, power: float) -> np.ndarray:
    """The symmetric ``(n, n)`` float64 matrix ``V diag((v / mean(v))^(power / 2)) V^T``.

    ``covariance = V diag(v) V^T`` is the (symmetric, positive semi-definite)
    covariance of centred inputs; eigenvalues within rounding of 0 (``n``
    float64 epsilons of the largest) count as 0. Multiplying centred inputs
    by it scales their variance along each principal direction from ``v`` to
    ``v (v / mean(v))^power``: with ``power > 0`` the main directions gain
    against the weak ones, so that a ridge on the weights that read the
    inputs shrinks those on the main directions less and those on the weak
    ones more. Raises ``ValueError`` when every variance is 0
    (inputs that never vary) or the scales overflow (a huge ``power``).
    """
    variances, directions = scipy.linalg.eigh(covariance)
    # Eigenvalues within rounding of 0 are 0: a positive power of rounding
    # noise would give the constant directions arbitrary scales.
    noise = variances.size * np.finfo(np.float64).eps * max(variances.max(), 0.0)
    variances = np.where(variances > noise, variances, 0.0)
    mean = variances.mean()
    if not mean > 0.0:
        raise ValueError(
            "spectral_power needs training inputs that vary: every centred input is 0"
        )
    with np.errstate(over="ignore"):
        scale = (variances / mean) ** (0.5 * power)
    if not np.all(np.isfinite(scale)):
        raise ValueError(
            f"spectral_power {power:g} overflows: the largest scale, (variance / mean "
            "variance)^(power / 2), is not a float64; use a smaller power"
        )
    return np.ascontiguousarray((directions * scale) @ directions.T)
