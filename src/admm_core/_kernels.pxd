# Cython declarations of the admm compiled kernels, for other Cython codes:
#
#     from admm_core._kernels cimport hardsigmoid_z_update
#
# The cores are `noexcept nogil` and know nothing of Python or MPI. Arrays are
# raw pointers with explicit sizes; matrices are column-major (Fortran) with a
# leading dimension, as BLAS sees them. Sums of the objective terms are
# accumulated in double into the caller's `sums` array.
from cython cimport floating
from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "numpy/random/bitgen.h":
    struct bitgen:
        void *state
        uint64_t (*next_uint64)(void *st) nogil
        uint32_t (*next_uint32)(void *st) nogil
        double (*next_double)(void *st) nogil
        uint64_t (*next_raw)(void *st) nogil

    ctypedef bitgen bitgen_t


# Hidden z-update (3), entry-wise, in place: on entry z holds m = W_l a_{l-1},
# on exit the exact minimiser of gamma (a - h(z))^2 + beta (z - m)^2.
# sums[0] += sum (a - h(z))^2, sums[1] += sum (z - m)^2.
cdef void hardsigmoid_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    double* sums,
) noexcept nogil
cdef void relu_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    double* sums,
) noexcept nogil

# leaky_relu, h(z) = z if z > 0 else negative_slope z (negative_slope finite,
# >= 0): best of the clamped minimisers on z <= 0 and z >= 0, the first
# winning a tie.
cdef void leaky_relu_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    double negative_slope, double* sums,
) noexcept nogil
# h(z) = 1 if z > 0 else low (step: low = 0, sign: low = -1). Candidates
# min(m, 0) and (if m > 0) m, the first winning a tie; where the open side
# z > 0 wins with m <= 0, z is the smallest positive normal (FLT_MIN/DBL_MIN).
cdef void step_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    double low, double* sums,
) noexcept nogil
# Any of the above by activation code: 0 hardsigmoid, 1 relu, 2 leaky_relu
# (with negative_slope), 3 step, 4 sign, 5 sigmoid, 6 tanh (the last two: the
# global minimum of the smooth non-convex problem, all local minima
# bracketed, in double); negative_slope is ignored but by 2.
cdef void hidden_activation_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    int activation, double negative_slope, double* sums,
) noexcept nogil

# out = scale * h(z), entry-wise (activation 0: clip(., 0, 1), 1: max(., 0)).
cdef void scaled_activation(
    const floating* z, floating* out, Py_ssize_t n, double scale, int activation,
) noexcept nogil
# The same for every activation code above (leaky_relu: (scale slope) z for
# z <= 0; step and sign: scale times 1, 0 or -1).
cdef void scaled_activation_slope(
    const floating* z, floating* out, Py_ssize_t n, double scale, int activation,
    double negative_slope,
) noexcept nogil

# Output z-update (5) fused with the multiplier update (6), in place. The
# (m, k) blocks z, lam (and targets) share element strides s_sample, s_class.
# On entry z holds W_L a_{L-1}. sums[0] += loss, sums[1] += <z, lam>,
# sums[2] += ||z - W_L a_{L-1}||^2 (lam after its update).
cdef void hinge_output_update(
    floating* z, floating* lam, const int64_t* labels, Py_ssize_t m, Py_ssize_t k,
    Py_ssize_t s_sample, Py_ssize_t s_class, double beta, bint update_multiplier,
    double* sums,
) noexcept nogil
# One output column (n_L = 1), labels[j] in {0, 1} is the target y itself
# (hinge: C(z, 1) = max(0, 1 - z), C(z, 0) = max(0, z); logistic:
# C(z, y) = log(1 + exp(-(2 y - 1) z)), solved in double by safeguarded Newton).
cdef void binary_hinge_output_update(
    floating* z, floating* lam, const int64_t* labels, Py_ssize_t m, Py_ssize_t s_sample,
    double beta, bint update_multiplier, double* sums,
) noexcept nogil
cdef void logistic_output_update(
    floating* z, floating* lam, const int64_t* labels, Py_ssize_t m, Py_ssize_t s_sample,
    double beta, bint update_multiplier, double* sums,
) noexcept nogil
# Softmax cross-entropy over k classes, labels in 0..k-1, with label smoothing
# s in [0, 1) (targets (1 - s) e_y + s / k; 0: none), per sample by Newton in
# double (Sherman-Morrison solves); work holds 6 k doubles of scratch.
cdef void cross_entropy_output_update(
    floating* z, floating* lam, const int64_t* labels, Py_ssize_t m, Py_ssize_t k,
    Py_ssize_t s_sample, Py_ssize_t s_class, double beta, bint update_multiplier,
    double label_smoothing, double* work, double* sums,
) noexcept nogil
cdef void squared_output_update(
    floating* z, floating* lam, const floating* targets, Py_ssize_t m, Py_ssize_t k,
    Py_ssize_t s_sample, Py_ssize_t s_class, double beta, bint update_multiplier,
    double* sums,
) noexcept nogil

# Glorot uniform: out[i, j] = s * (2 u - 1), u the next double of rng, drawn
# in row-major order of the logical (n_out, n_in) matrix whatever its strides.
cdef void glorot_uniform_fill(
    floating* out, Py_ssize_t n_out, Py_ssize_t n_in, Py_ssize_t s_row,
    Py_ssize_t s_col, bitgen_t* rng,
) noexcept nogil

# One square image (side x side, row-major) sheared and shifted: out[r, c] is
# x interpolated bilinearly (zero outside) at (row_offset + r,
# col_offset + slant r + c), in double, rounded to floating; bit for bit
# scipy.ndimage.affine_transform(order=1, mode="grid-constant").
cdef void shear_image(
    const floating* x, floating* out, Py_ssize_t side, double row_offset,
    double col_offset, double slant,
) noexcept nogil

# Inverse of a symmetric positive definite A from its Cholesky factor: on entry
# the lower triangle of the column-major (n x n, leading dimension lda) a holds
# L with A = L L^T; on exit a holds the full symmetric A^{-1} (LAPACK potri,
# upper triangle mirrored). Returns potri's info (0: success, > 0: L has a
# zero diagonal entry, a is then partly overwritten).
cdef int cholesky_inverse_lower(floating* a, Py_ssize_t n, Py_ssize_t lda) noexcept nogil
