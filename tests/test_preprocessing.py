"""``admm.preprocessing.deskew`` against the pixel-by-pixel reference, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from admm.preprocessing import MOMENT_BLOCK, deskew, image_side
from reference_admm import deskew_images

from admm_core import shear_images


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


def ndimage_deskew(X: np.ndarray) -> np.ndarray:
    """The deskewing as first written (until issue 16): the moments of
    :func:`deskew`, one ``scipy.ndimage.affine_transform`` per image."""
    from scipy import ndimage

    out = np.empty(X.shape, dtype=X.dtype if X.dtype.kind == "f" else np.float64)
    side = image_side(X.shape[1])
    k = (side - 1) / 2
    for i, image in enumerate(np.asarray(X, dtype=np.float64)):
        img = image.reshape(side, side)
        r, c = np.mgrid[:side, :side].astype(np.float64)
        basis = np.stack(
            [np.ones(side * side), r.ravel(), c.ravel(), (r * r).ravel(), (r * c).ravel()],
            axis=1,
        )
        m = np.einsum("j,jk->k", image, basis)
        r0 = m[1] / m[0] if m[0] > 0 else k
        c0 = m[2] / m[0] if m[0] > 0 else k
        mass = m[0] if m[0] > 0 else 1.0
        v_rr, v_rc = m[3] / mass - r0 * r0, m[4] / mass - r0 * c0
        slant = v_rc / v_rr if v_rr > 1e-9 * side * side else 0.0
        out[i] = ndimage.affine_transform(
            img,
            np.array([[1.0, 0.0], [slant, 1.0]]),
            offset=np.array([r0 - k, c0 - k - slant * k]),
            order=1,
            mode="grid-constant",
            cval=0.0,
        ).ravel()
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("side", [1, 4, 5, 28])
def test_shear_kernel_is_ndimage_bit_for_bit(rng, dtype, side):
    """The compiled interpolation against scipy.ndimage, including offsets
    that put part or all of an image outside, negative coordinates, exact
    integer shifts and steep slants."""
    from scipy import ndimage

    m = 64
    X = sparse_images(rng, m, side).astype(dtype)
    offsets = np.column_stack(
        [
            rng.uniform(-side - 2, side + 2, m),
            rng.uniform(-side - 2, side + 2, m),
            rng.normal(0.0, 1.5, m),
        ]
    )
    offsets[:8, :2] = rng.integers(-3, 4, (8, 2))  # whole-pixel shifts: weights 1 and 0
    offsets[:4, 2] = 0.0
    # Coordinates in (-1, 1), where 1 - (1 - f) and f differ in the last bits.
    offsets[8:32, :2] = rng.uniform(-1.0, 1.0, (24, 2))
    offsets[8:32, 2] = rng.uniform(-1e-3, 1e-3, 24)
    out = shear_images(X, offsets, np.empty_like(X))
    for i in range(m):
        expected = ndimage.affine_transform(
            X[i].astype(np.float64).reshape(side, side),
            np.array([[1.0, 0.0], [offsets[i, 2], 1.0]]),
            offset=offsets[i, :2],
            order=1,
            mode="grid-constant",
            cval=0.0,
        )
        np.testing.assert_array_equal(out[i], expected.ravel().astype(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.uint8])
def test_deskew_is_the_ndimage_deskew_bit_for_bit(rng, dtype):
    """A refactor that changes no result: the compiled deskewing gives the
    pixels of the scipy.ndimage one it replaced, in every dtype."""
    X = sparse_images(rng, 40, 28)
    X[3] = 0.0
    X[4] = 0.0
    X[4, 30:40] = 1.0
    X = (X * 255).astype(dtype) if dtype == np.uint8 else X.astype(dtype)
    np.testing.assert_array_equal(deskew(X), ndimage_deskew(X))


def test_deskew_of_mnist_is_the_ndimage_deskew(shared_mnist):
    """The same on 2,000 real MNIST training images, in float32."""
    from admm.data import load_dataset

    X = load_dataset("mnist", shared_mnist, rank=0, size=30, dtype="float32", download=False)
    X = X.X_train
    np.testing.assert_array_equal(deskew(X), ndimage_deskew(X))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.ones((2, 9), np.int64), np.zeros((2, 3)), np.ones((2, 9))), "float32 or float64"),
        ((np.ones((2, 10)), np.zeros((2, 3)), np.ones((2, 10))), "not the pixels of a square"),
        ((np.ones((2, 9)), np.zeros((2, 2)), np.ones((2, 9))), r"offsets must be .* \(2, 3\)"),
        ((np.ones((2, 9)), np.zeros((2, 3)), np.ones((2, 9), np.float32)), "out has dtype"),
        ((np.ones((2, 9)), np.zeros((2, 3)), np.ones((3, 9))), "out has shape"),
    ],
)
def test_shear_kernel_errors_name_the_problem(args, match):
    with pytest.raises(ValueError, match=match):
        shear_images(*args)
