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

# out = scale * h(z), entry-wise (activation 0: clip(., 0, 1), 1: max(., 0)).
cdef void scaled_activation(
    const floating* z, floating* out, Py_ssize_t n, double scale, int activation,
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

# Inverse of a symmetric positive definite A from its Cholesky factor: on entry
# the lower triangle of the column-major (n x n, leading dimension lda) a holds
# L with A = L L^T; on exit a holds the full symmetric A^{-1} (LAPACK potri,
# upper triangle mirrored). Returns potri's info (0: success, > 0: L has a
# zero diagonal entry, a is then partly overwritten).
cdef int cholesky_inverse_lower(floating* a, Py_ssize_t n, Py_ssize_t lda) noexcept nogil
