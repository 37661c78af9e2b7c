"""``admm.preprocessing.deskew`` against the pixel-by-pixel reference, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from admm.preprocessing import MOMENT_BLOCK, deskew, image_side
from reference_admm import deskew_images


def sparse_images(rng, m: int, side: int) -> np.ndarray:
    """Non-negative images with about 40% ink, like handwriting on a blank page."""
    X = rng.random((m, side * side))
    X[X < 0.6] = 0.0
    return X


def moments(img: np.ndarray) -> tuple[float, float, float]:
    """Centre of mass (row, column) and row-column covariance of one square image."""
    s = img.shape[0]
    r, c = np.mgrid[:s, :s]
    mass = img.sum()
    r0, c0 = (img * r).sum() / mass, (img * c).sum() / mass
    return r0, c0, float((img * (r - r0) * (c - c0)).sum() / mass)


@pytest.mark.parametrize("side", [5, 28])
@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_matches_reference(rng, side, dtype, rtol):
    X = sparse_images(rng, 6, side).astype(dtype)
    out = deskew(X)
    assert out.dtype == dtype and out.shape == X.shape and out.flags.c_contiguous
    expected = deskew_images(X)
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol * expected.max())


def test_a_slanted_stroke_becomes_upright_and_centred():
    # A stroke leaning right (column grows as the row falls), off-centre.
    img = np.zeros((28, 28))
    for r in range(4, 20):
        c = 4 + (19 - r) // 2
        img[r, c : c + 3] = 1.0
    r0, c0, cov = moments(img)
    assert abs(cov) > 5.0 and abs(r0 - 13.5) > 1 and abs(c0 - 13.5) > 3
    out = deskew(img.reshape(1, -1)).reshape(28, 28)
    r0, c0, cov = moments(out)
    assert abs(cov) < 0.1 and abs(r0 - 13.5) < 0.05 and abs(c0 - 13.5) < 0.05
    assert out.sum() == pytest.approx(img.sum(), rel=1e-9)  # no ink lost off the edges


def test_blank_images_integers_and_blocks(rng):
    X = sparse_images(rng, MOMENT_BLOCK + 3, 4)  # more rows than one moment block
    X[1] = 0.0  # a blank image stays blank
    X[2] = 0.0
    X[2, 5:7] = 1.0  # ink in one row only: shifted, not sheared
    out = deskew(X)
    assert not out[1].any()
    np.testing.assert_allclose(out[:8], deskew_images(X[:8]), atol=1e-12)
    np.testing.assert_allclose(out[-4:], deskew_images(X[-4:]), atol=1e-12)
    ints = (X[:5] * 255).astype(np.uint8)
    assert deskew(ints).dtype == np.float64
    np.testing.assert_allclose(deskew(ints), deskew_images(ints), rtol=1e-12, atol=1e-9)
    assert deskew(np.zeros((0, 9))).shape == (0, 9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_image_does_not_depend_on_its_neighbours(rng, dtype):
    """Bit for bit, whatever images share its block: what deterministic=True
    needs when ranks hold different images. A BLAS product for the moments
    failed this in float64 at odd offsets (OpenBLAS's Haswell kernels)."""
    X = sparse_images(rng, 300, 28).astype(dtype)
    out = deskew(X)
    for start in (1, 7, 13, 150):
        np.testing.assert_array_equal(deskew(X[start:]), out[start:])
    np.testing.assert_array_equal(deskew(X[7:8]), out[7:8])


def test_input_is_not_modified(rng):
    X = sparse_images(rng, 4, 5)
    before = X.copy()
    deskew(X)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.ones((2, 10)), "10 input features is not a perfect square"),
        (np.ones(9), "needs a 2-D array"),
        (np.full((2, 9), -0.5), "non-negative pixel intensities .* a pixel is -0.5"),
        (np.full((2, 9), np.nan), "finite pixel intensities"),
    ],
)
def test_bad_input_is_named(X, match):
    with pytest.raises(ValueError, match=match):
        deskew(X)


def test_image_side():
    assert image_side(784) == 28 and image_side(1) == 1
    with pytest.raises(ValueError, match="not a perfect square"):
        image_side(0)
