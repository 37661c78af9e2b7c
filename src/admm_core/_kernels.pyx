"""Compiled kernels of the ADMM solver, for float32 and float64.

Each ``noexcept nogil`` core (declared in ``_kernels.pxd``) has a small Python
wrapper taking NumPy arrays; the wrappers check shapes, dtypes and memory
order, then release the GIL. BLAS and LAPACK are reached only through
``scipy.linalg.cython_blas`` / ``cython_lapack``: nothing is linked at build
time. These kernels know nothing of MPI.

Conventions of the wrappers: samples are rows, so a block of activations is an
``(m, n)`` array, and the matrix products are written in NumPy terms. Row-major
arrays reach the column-major BLAS by swapping operands (C^T = B^T A^T), never
by copying.
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from libc.math cimport exp, fabs, floor, isfinite, log, log1p, sqrt, tanh
from libc.stdint cimport int64_t

from scipy.linalg.cython_blas cimport dgemm, dsyrk, dtrsm, sgemm, ssyrk, strsm
from scipy.linalg.cython_lapack cimport dpotrf, dpotri, dpotrs, spotrf, spotri, spotrs

import numpy as np

include "_blas_int.pxi"

cdef extern from *:
    """
    /* Branch-free clip to [0, 1]: C ternaries become min/max instructions
       and the loop vectorises; Cython's if/else temporaries did not, and
       ran 15x slower than the ReLU loop. */
    static inline double admm_clip01(double v) { v = v > 0.0 ? v : 0.0; return v < 1.0 ? v : 1.0; }
    static inline float admm_clip01f(float v) { v = v > 0.0f ? v : 0.0f; return v < 1.0f ? v : 1.0f; }
    """
    double admm_clip01(double v) noexcept nogil
    float admm_clip01f(float v) noexcept nogil

cdef extern from "_entrywise.h":
    # Hidden z-updates, one per storage type (see the header for why C); p is
    # the activation's parameter (leaky_relu: the slope, step: the level of
    # z <= 0), ignored by hardsigmoid and relu.
    void admm_hardsigmoid_z_d(double* z, const double* a, Py_ssize_t n, double gamma,
                              double beta, double p, double* sums) noexcept nogil
    void admm_hardsigmoid_z_f(float* z, const float* a, Py_ssize_t n, double gamma,
                              double beta, double p, double* sums) noexcept nogil
    void admm_relu_z_d(double* z, const double* a, Py_ssize_t n, double gamma,
                       double beta, double p, double* sums) noexcept nogil
    void admm_relu_z_f(float* z, const float* a, Py_ssize_t n, double gamma,
                       double beta, double p, double* sums) noexcept nogil
    void admm_leaky_relu_z_d(double* z, const double* a, Py_ssize_t n, double gamma,
                             double beta, double p, double* sums) noexcept nogil
    void admm_leaky_relu_z_f(float* z, const float* a, Py_ssize_t n, double gamma,
                             double beta, double p, double* sums) noexcept nogil
    void admm_step_z_d(double* z, const double* a, Py_ssize_t n, double gamma,
                       double beta, double p, double* sums) noexcept nogil
    void admm_step_z_f(float* z, const float* a, Py_ssize_t n, double gamma,
                       double beta, double p, double* sums) noexcept nogil
    void admm_sigmoid_z_d(double* z, const double* a, Py_ssize_t n, double gamma,
                          double beta, double p, double* sums) noexcept nogil
    void admm_sigmoid_z_f(float* z, const float* a, Py_ssize_t n, double gamma,
                          double beta, double p, double* sums) noexcept nogil
    void admm_tanh_z_d(double* z, const double* a, Py_ssize_t n, double gamma,
                       double beta, double p, double* sums) noexcept nogil
    void admm_tanh_z_f(float* z, const float* a, Py_ssize_t n, double gamma,
                       double beta, double p, double* sums) noexcept nogil
    double admm_sigmoid_s(double z) noexcept nogil

# Activation codes of scaled_activation and hidden_activation_z_update (_kernels.pxd).
cdef int HARDSIGMOID = 0
cdef int RELU = 1
cdef int LEAKY_RELU = 2
cdef int STEP = 3
cdef int SIGN = 4
cdef int SIGMOID = 5
cdef int TANH = 6

_ACTIVATIONS = {
    "hardsigmoid": HARDSIGMOID,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "step": STEP,
    "sign": SIGN,
}
# The smooth activations have their own wrappers for now: the names
# "sigmoid" and "tanh" are still the examples of unknown names in
# tests/test_kernels.py. Merging this table into _ACTIVATIONS is all it
# takes to serve them through hidden_z_update and apply_activation.
_SMOOTH_ACTIVATIONS = {"sigmoid": SIGMOID, "tanh": TANH}


# ---------------------------------------------------------------------------
# BLAS / LAPACK dispatch on the fused type (written once for both precisions)

cdef inline void _gemm(char transa, char transb, blas_int m, blas_int n, blas_int k,
                       floating alpha, const floating* a, blas_int lda,
                       const floating* b, blas_int ldb, floating beta,
                       floating* c, blas_int ldc) noexcept nogil:
    if floating is float:
        sgemm(&transa, &transb, &m, &n, &k, &alpha, <float*>a, &lda,
              <float*>b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&transa, &transb, &m, &n, &k, &alpha, <double*>a, &lda,
              <double*>b, &ldb, &beta, c, &ldc)


cdef inline void _syrk(char uplo, char trans, blas_int n, blas_int k, floating alpha,
                       const floating* a, blas_int lda, floating beta,
                       floating* c, blas_int ldc) noexcept nogil:
    if floating is float:
        ssyrk(&uplo, &trans, &n, &k, &alpha, <float*>a, &lda, &beta, c, &ldc)
    else:
        dsyrk(&uplo, &trans, &n, &k, &alpha, <double*>a, &lda, &beta, c, &ldc)


cdef inline void _trsm(char side, char uplo, char transa, char diag, blas_int m,
                       blas_int n, floating alpha, const floating* a, blas_int lda,
                       floating* b, blas_int ldb) noexcept nogil:
    if floating is float:
        strsm(&side, &uplo, &transa, &diag, &m, &n, &alpha, <float*>a, &lda, b, &ldb)
    else:
        dtrsm(&side, &uplo, &transa, &diag, &m, &n, &alpha, <double*>a, &lda, b, &ldb)


cdef inline blas_int _potrf(char uplo, blas_int n, floating* a, blas_int lda) noexcept nogil:
    cdef blas_int info = 0
    if floating is float:
        spotrf(&uplo, &n, a, &lda, &info)
    else:
        dpotrf(&uplo, &n, a, &lda, &info)
    return info


cdef inline blas_int _potri(char uplo, blas_int n, floating* a, blas_int lda) noexcept nogil:
    cdef blas_int info = 0
    if floating is float:
        spotri(&uplo, &n, a, &lda, &info)
    else:
        dpotri(&uplo, &n, a, &lda, &info)
    return info


cdef inline blas_int _potrs(char uplo, blas_int n, blas_int nrhs, const floating* a,
                            blas_int lda, floating* b, blas_int ldb) noexcept nogil:
    cdef blas_int info = 0
    if floating is float:
        spotrs(&uplo, &n, &nrhs, <float*>a, &lda, b, &ldb, &info)
    else:
        dpotrs(&uplo, &n, &nrhs, <double*>a, &lda, b, &ldb, &info)
    return info


# ---------------------------------------------------------------------------
# Entry-wise cores

cdef void hardsigmoid_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    double* sums,
) noexcept nogil:
    # Best of three candidates (ADMM.md, "Closed forms"), first wins ties; the
    # vectorised loops are C, in _entrywise.h.
    if floating is float:
        admm_hardsigmoid_z_f(z, a, n, gamma, beta, 0.0, sums)
    else:
        admm_hardsigmoid_z_d(z, a, n, gamma, beta, 0.0, sums)


cdef void relu_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    double* sums,
) noexcept nogil:
    if floating is float:
        admm_relu_z_f(z, a, n, gamma, beta, 0.0, sums)
    else:
        admm_relu_z_d(z, a, n, gamma, beta, 0.0, sums)


cdef void leaky_relu_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    double negative_slope, double* sums,
) noexcept nogil:
    # Best of the two clamped piece minimisers, first (z <= 0) wins ties.
    if floating is float:
        admm_leaky_relu_z_f(z, a, n, gamma, beta, negative_slope, sums)
    else:
        admm_leaky_relu_z_d(z, a, n, gamma, beta, negative_slope, sums)


cdef void step_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    double low, double* sums,
) noexcept nogil:
    # h(z) = 1 if z > 0 else low: step (low = 0) and sign (low = -1) share the
    # core. The z > 0 side is open at 0; its infimum is returned as the
    # smallest positive normal number of the type.
    if floating is float:
        admm_step_z_f(z, a, n, gamma, beta, low, sums)
    else:
        admm_step_z_d(z, a, n, gamma, beta, low, sums)


cdef void hidden_activation_z_update(
    floating* z, const floating* a, Py_ssize_t n, double gamma, double beta,
    int activation, double negative_slope, double* sums,
) noexcept nogil:
    if activation == HARDSIGMOID:
        hardsigmoid_z_update(z, a, n, gamma, beta, sums)
    elif activation == RELU:
        relu_z_update(z, a, n, gamma, beta, sums)
    elif activation == LEAKY_RELU:
        leaky_relu_z_update(z, a, n, gamma, beta, negative_slope, sums)
    elif activation == STEP:
        step_z_update(z, a, n, gamma, beta, 0.0, sums)
    elif activation == SIGN:
        step_z_update(z, a, n, gamma, beta, -1.0, sums)
    elif activation == SIGMOID:
        # Non-convex and smooth: every local minimum bracketed (_entrywise.h).
        if floating is float:
            admm_sigmoid_z_f(z, a, n, gamma, beta, 0.0, sums)
        else:
            admm_sigmoid_z_d(z, a, n, gamma, beta, 0.0, sums)
    else:
        if floating is float:
            admm_tanh_z_f(z, a, n, gamma, beta, 0.0, sums)
        else:
            admm_tanh_z_d(z, a, n, gamma, beta, 0.0, sums)


cdef void scaled_activation(
    const floating* z, floating* out, Py_ssize_t n, double scale, int activation,
) noexcept nogil:
    scaled_activation_slope(z, out, n, scale, activation, 0.0)


cdef void scaled_activation_slope(
    const floating* z, floating* out, Py_ssize_t n, double scale, int activation,
    double negative_slope,
) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    cdef floating s = <floating>scale
    cdef floating ps = <floating>(scale * negative_slope)
    cdef floating low = -s if activation == SIGN else 0
    if activation == HARDSIGMOID:
        for i in range(n):
            if floating is float:
                out[i] = s * admm_clip01f(z[i])
            else:
                out[i] = s * admm_clip01(z[i])
    elif activation == RELU:
        for i in range(n):
            v = z[i]
            out[i] = s * (v if v > 0 else 0)
    elif activation == LEAKY_RELU:
        # s * (p v) as (s p) * v: one product per entry.
        for i in range(n):
            v = z[i]
            out[i] = s * v if v > 0 else ps * v
    elif activation == SIGMOID:
        for i in range(n):
            out[i] = <floating>(scale * admm_sigmoid_s(z[i]))
    elif activation == TANH:
        for i in range(n):
            out[i] = <floating>(scale * tanh(z[i]))
    else:
        for i in range(n):
            out[i] = s if z[i] > 0 else low


cdef inline double _hinge_prox(double v, double half_step, bint positive) noexcept nogil:
    # argmin_z C(z, y) + beta (z - v)^2 with half_step = 1 / (2 beta).
    if positive:
        if v >= 1.0:
            return v
        if v + half_step <= 1.0:
            return v + half_step
        return 1.0
    if v <= 0.0:
        return v
    if v - half_step >= 0.0:
        return v - half_step
    return 0.0


cdef void hinge_output_update(
    floating* z, floating* lam, const int64_t* labels, Py_ssize_t m, Py_ssize_t k,
    Py_ssize_t s_sample, Py_ssize_t s_class, double beta, bint update_multiplier,
    double* sums,
) noexcept nogil:
    _hinge_core(z, lam, labels, m, k, s_sample, s_class, beta, update_multiplier, 0, sums)


cdef void binary_hinge_output_update(
    floating* z, floating* lam, const int64_t* labels, Py_ssize_t m, Py_ssize_t s_sample,
    double beta, bint update_multiplier, double* sums,
) noexcept nogil:
    # One column, y = labels[j] in {0, 1}: column 0 is positive where label 1.
    _hinge_core(z, lam, labels, m, 1, s_sample, 1, beta, update_multiplier, 1, sums)


cdef inline void _hinge_core(
    floating* z, floating* lam, const int64_t* labels, Py_ssize_t m, Py_ssize_t k,
    Py_ssize_t s_sample, Py_ssize_t s_class, double beta, bint update_multiplier,
    int64_t positive_offset, double* sums,
) noexcept nogil:
    # Entry (j, c) has y = 1 where labels[j] == c + positive_offset: offset 0
    # is one-vs-rest over k classes, offset 1 with k = 1 the binary hinge.
    cdef Py_ssize_t j, c, idx
    cdef double mv, lv, v, zv, r
    cdef double half_step = 0.5 / beta
    cdef double s_loss = 0.0, s_dot = 0.0, s_res = 0.0
    cdef bint positive
    for j in range(m):
        for c in range(k):
            idx = j * s_sample + c * s_class
            mv = z[idx]
            lv = lam[idx]
            positive = labels[j] == c + positive_offset
            v = mv - lv * half_step
            z[idx] = <floating>_hinge_prox(v, half_step, positive)
            zv = z[idx]
            r = zv - mv
            if update_multiplier:
                lam[idx] = <floating>(lv + beta * r)
                lv = lam[idx]
            if positive:
                s_loss += (1.0 - zv) if zv < 1.0 else 0.0
            else:
                s_loss += zv if zv > 0.0 else 0.0
            s_dot += zv * lv
            s_res += r * r
    sums[0] += s_loss
    sums[1] += s_dot
    sums[2] += s_res


cdef void squared_output_update(
    floating* z, floating* lam, const floating* targets, Py_ssize_t m, Py_ssize_t k,
    Py_ssize_t s_sample, Py_ssize_t s_class, double beta, bint update_multiplier,
    double* sums,
) noexcept nogil:
    cdef Py_ssize_t j, c, idx
    cdef double mv, lv, yv, zv, r
    cdef double inv = 1.0 / (2.0 + 2.0 * beta)
    cdef double s_loss = 0.0, s_dot = 0.0, s_res = 0.0
    for j in range(m):
        for c in range(k):
            idx = j * s_sample + c * s_class
            mv = z[idx]
            lv = lam[idx]
            yv = targets[idx]
            z[idx] = <floating>((2.0 * yv - lv + 2.0 * beta * mv) * inv)
            zv = z[idx]
            r = zv - mv
            if update_multiplier:
                lam[idx] = <floating>(lv + beta * r)
                lv = lam[idx]
            s_loss += (zv - yv) * (zv - yv)
            s_dot += zv * lv
            s_res += r * r
    sums[0] += s_loss
    sums[1] += s_dot
    sums[2] += s_res


cdef inline double _softplus(double x) noexcept nogil:
    # log(1 + exp(x)) without overflow or cancellation.
    return (x if x > 0.0 else 0.0) + log1p(exp(-fabs(x)))


cdef inline double _logistic_prox(double u, double beta) noexcept nogil:
    # argmin_w softplus(-w) + beta (w - u)^2. The derivative
    # g(w) = -1 / (1 + exp(w)) + 2 beta (w - u) increases strictly, is < 0 at
    # u and > 0 at u + 1 / (2 beta): Newton's steps are kept inside that
    # shrinking bracket (a step leaving it is replaced by bisection).
    cdef double lo = u, hi = u + 0.5 / beta
    cdef double w, wn, q, g
    cdef int it
    q = 1.0 / (1.0 + exp(u))
    w = u + q * (0.5 / beta)  # one fixed-point step from u: inside the bracket
    for it in range(200):
        q = 1.0 / (1.0 + exp(w))  # sigma(-w)
        g = 2.0 * beta * (w - u) - q
        if g == 0.0:
            return w
        if g < 0.0:
            lo = w
        else:
            hi = w
        wn = w - g / (q * (1.0 - q) + 2.0 * beta)
        if not (lo < wn < hi):
            wn = 0.5 * (lo + hi)
            if wn == lo or wn == hi:  # bracket at adjacent doubles
                return wn
        # A step at the rounding level of w, or of the data (u and the
        # bracket width): near w = 0 a relative test alone would go on
        # bisecting down to subnormal widths.
        if fabs(wn - w) <= 2.2e-16 * (fabs(w) + fabs(u) + 0.5 / beta):
            return wn
        w = wn
    return w


cdef void logistic_output_update(
    floating* z, floating* lam, const int64_t* labels, Py_ssize_t m, Py_ssize_t s_sample,
    double beta, bint update_multiplier, double* sums,
) noexcept nogil:
    cdef Py_ssize_t j, idx
    cdef double mv, lv, t, zv, r
    cdef double s_loss = 0.0, s_dot = 0.0, s_res = 0.0
    for j in range(m):
        idx = j * s_sample
        mv = z[idx]
        lv = lam[idx]
        # C(z, y) = softplus(-t z), t = 2 y - 1: in w = t z the problem is
        # that of y = 1 with u = t (m - lam / (2 beta)).
        t = 1.0 if labels[j] == 1 else -1.0
        z[idx] = <floating>(t * _logistic_prox(t * (mv - lv * (0.5 / beta)), beta))
        zv = z[idx]
        r = zv - mv
        if update_multiplier:
            lam[idx] = <floating>(lv + beta * r)
            lv = lam[idx]
        s_loss += _softplus(-t * zv)
        s_dot += zv * lv
        s_res += r * r
    sums[0] += s_loss
    sums[1] += s_dot
    sums[2] += s_res


cdef inline double _logsumexp(const double* x, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t i
    cdef double mx = x[0], acc = 0.0
    for i in range(1, k):
        if x[i] > mx:
            mx = x[i]
    for i in range(k):
        acc += exp(x[i] - mx)
    return mx + log(acc)


# Label smoothing s in [0, 1): the target of label y over k classes is
# t = (1 - s) e_y + s / k, and C(x, y) = logsumexp(x) - <t, x>. The helpers
# below give t_c and C so that s = 0 computes the unsmoothed numbers to the
# bit (t_c exactly 1 or 0; C the old logsumexp(x) - x_y plus an exact 0).


cdef inline double _ce_target(Py_ssize_t c, Py_ssize_t y, Py_ssize_t k,
                              double s) noexcept nogil:
    # t_c = (1 - s) [c == y] + s / k
    return (1.0 - s if c == y else 0.0) + s / <double>k


cdef inline double _ce_smoothing(const double* x, Py_ssize_t y, Py_ssize_t k,
                                 double s) noexcept nogil:
    # C(x, y) - (logsumexp(x) - x_y) = x_y - <t, x> = s (x_y - mean(x)); 0 at s = 0.
    cdef Py_ssize_t i
    cdef double acc = 0.0
    if s == 0.0:
        return 0.0
    for i in range(k):
        acc += x[i]
    return s * (x[y] - acc / <double>k)


cdef inline double _ce_loss(const double* x, Py_ssize_t y, Py_ssize_t k,
                            double s) noexcept nogil:
    # C(x, y) = logsumexp(x) - <t, x>, the label-smoothed cross-entropy
    return (_logsumexp(x, k) - x[y]) + _ce_smoothing(x, y, k, s)


cdef inline double _ce_objective(const double* x, const double* mv, const double* lv,
                                 Py_ssize_t y, Py_ssize_t k, double beta,
                                 double s) noexcept nogil:
    # C(x, y) + <x, lam> + beta ||x - m||^2
    cdef Py_ssize_t i
    cdef double f = 0.0, d
    for i in range(k):
        d = x[i] - mv[i]
        f += x[i] * lv[i] + beta * d * d
    return f + _ce_loss(x, y, k, s)


cdef void _ce_prox(double* x, const double* mv, const double* lv, Py_ssize_t y,
                   Py_ssize_t k, double beta, double s, double* p, double* d,
                   double* xt) noexcept nogil:
    # Newton's method on the strictly convex F(x) = C(x, y) + <x, lam>
    # + beta ||x - m||^2 from x = m (x holds m on entry), C smoothed by s:
    # its gradient is softmax(x) - t, its Hessian that of s = 0 (t does not
    # depend on x). The Hessian diag(p) - p p^T + 2 beta I = D - p p^T is
    # solved by Sherman-Morrison in O(k):
    # 1 - p^T D^{-1} p >= 2 beta / (1 + 2 beta) > 0.
    # Steps are damped by backtracking (Armijo) while the objective can
    # still tell them apart; once the predicted decrease is at the rounding
    # level of F, plain Newton steps polish x for as long as they shrink,
    # and the iteration stops at a step below the rounding level of x.
    cdef Py_ssize_t i
    cdef int it
    cdef double f, ft, lse, mx, acc, gi, di, pa, pb, gd, dn, xn, t
    cdef double last_dn = 1e308
    cdef bint polish = False
    cdef double eps = 2.220446049250313e-16
    for it in range(200):
        mx = x[0]
        for i in range(1, k):
            if x[i] > mx:
                mx = x[i]
        acc = 0.0
        for i in range(k):
            p[i] = exp(x[i] - mx)
            acc += p[i]
        lse = mx + log(acc)
        f = (lse - x[y]) + _ce_smoothing(x, y, k, s)
        pa = 0.0
        pb = 0.0
        xn = 1.0
        for i in range(k):
            p[i] /= acc
            f += x[i] * lv[i] + beta * (x[i] - mv[i]) * (x[i] - mv[i])
            gi = p[i] - _ce_target(i, y, k, s) + lv[i] + 2.0 * beta * (x[i] - mv[i])
            di = p[i] + 2.0 * beta
            d[i] = gi / di  # D^{-1} g, for now
            pa += p[i] * d[i]
            pb += p[i] * p[i] / di
            if fabs(x[i]) > xn:
                xn = fabs(x[i])
        gd = 0.0
        dn = 0.0
        for i in range(k):
            di = p[i] + 2.0 * beta
            gi = d[i] * di
            d[i] = -(d[i] + (p[i] / di) * pa / (1.0 - pb))
            gd += gi * d[i]
            if fabs(d[i]) > dn:
                dn = fabs(d[i])
        if dn <= 2.0 * eps * xn:
            for i in range(k):
                x[i] += d[i]
            return
        if polish or -gd <= 64.0 * eps * (fabs(f) + 1.0):
            if polish and dn >= last_dn:
                return
            polish = True
            last_dn = dn
            for i in range(k):
                x[i] += d[i]
            continue
        t = 1.0
        while True:
            for i in range(k):
                xt[i] = x[i] + t * d[i]
            ft = _ce_objective(xt, mv, lv, y, k, beta, s)
            if ft <= f + 1e-4 * t * gd:
                break
            t *= 0.5
            if t < 1e-12:
                break
        if t < 1e-12:
            # No decrease the objective can see: polish from here.
            polish = True
            continue
        for i in range(k):
            x[i] = xt[i]


cdef void cross_entropy_output_update(
    floating* z, floating* lam, const int64_t* labels, Py_ssize_t m, Py_ssize_t k,
    Py_ssize_t s_sample, Py_ssize_t s_class, double beta, bint update_multiplier,
    double label_smoothing, double* work, double* sums,
) noexcept nogil:
    cdef Py_ssize_t j, c, idx, y
    cdef double* x = work
    cdef double* mv = work + k
    cdef double* lv = work + 2 * k
    cdef double zv, r
    cdef double s_loss = 0.0, s_dot = 0.0, s_res = 0.0
    for j in range(m):
        y = <Py_ssize_t>labels[j]
        for c in range(k):
            idx = j * s_sample + c * s_class
            mv[c] = z[idx]
            lv[c] = lam[idx]
            x[c] = mv[c]
        _ce_prox(x, mv, lv, y, k, beta, label_smoothing, work + 3 * k, work + 4 * k,
                 work + 5 * k)
        for c in range(k):
            idx = j * s_sample + c * s_class
            z[idx] = <floating>x[c]
            x[c] = z[idx]  # the loss is that of the stored z
            r = x[c] - mv[c]
            if update_multiplier:
                lam[idx] = <floating>(lv[c] + beta * r)
            zv = x[c]
            s_dot += zv * lam[idx]
            s_res += r * r
        s_loss += _ce_loss(x, y, k, label_smoothing)
    sums[0] += s_loss
    sums[1] += s_dot
    sums[2] += s_res


cdef void glorot_uniform_fill(
    floating* out, Py_ssize_t n_out, Py_ssize_t n_in, Py_ssize_t s_row,
    Py_ssize_t s_col, bitgen_t* rng,
) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double s = sqrt(6.0 / <double>(n_out + n_in))
    for i in range(n_out):
        for j in range(n_in):
            out[i * s_row + j * s_col] = <floating>(s * (2.0 * rng.next_double(rng.state) - 1.0))


cdef inline Py_ssize_t _linear_weights(double coord, Py_ssize_t side, double* w,
                                       bint* inside) noexcept nogil:
    # The first of the two pixels around coord on one axis, their weights as
    # scipy.ndimage's order-1 spline computes them (1 - f, then 1 - (1 - f)),
    # and whether each lies inside [0, side).
    cdef double lower = floor(coord)
    cdef Py_ssize_t first = <Py_ssize_t>lower
    w[0] = 1.0 - (coord - lower)
    w[1] = 1.0 - w[0]
    inside[0] = 0 <= first < side
    inside[1] = 0 <= first + 1 < side
    return first


cdef void shear_image(
    const floating* x, floating* out, Py_ssize_t side, double row_offset,
    double col_offset, double slant,
) noexcept nogil:
    # Output pixel (r, c) is x bilinearly interpolated (zero outside) at
    # (row_offset + r, col_offset + r * slant + c): scipy.ndimage's
    # affine_transform(order=1, mode="grid-constant") of the matrix
    # [[1, 0], [slant, 1]], with its operations in its order (coordinates
    # summed left to right, the four terms (pixel * w_row) * w_col added to
    # 0.0 in row-major order), so the two agree bit for bit.
    cdef Py_ssize_t r, c, r0, c0, i, j
    cdef double shift, t, wr[2], wc[2]
    cdef bint row_in[2]
    cdef bint col_in[2]
    for r in range(side):
        r0 = _linear_weights(row_offset + <double>r, side, wr, row_in)
        shift = col_offset + <double>r * slant
        for c in range(side):
            c0 = _linear_weights(shift + <double>c, side, wc, col_in)
            t = 0.0
            for i in range(2):
                for j in range(2):
                    if row_in[i] and col_in[j]:
                        t += (<double>x[(r0 + i) * side + c0 + j] * wr[i]) * wc[j]
            out[r * side + c] = <floating>t


# ---------------------------------------------------------------------------
# Python wrappers

cdef inline int _activation_code(str activation, dict table=_ACTIVATIONS) except -1:
    try:
        return table[activation]
    except KeyError:
        raise ValueError(
            f"unknown activation {activation!r}; expected one of {sorted(table)}"
        ) from None


def _flat(x, str name):
    """A 1-D view of a C- or Fortran-contiguous array, in memory order."""
    if x.flags.c_contiguous:
        return x.reshape(-1)
    if x.flags.f_contiguous:
        return x.reshape(-1, order="F")
    raise ValueError(f"{name} must be C- or Fortran-contiguous")


def _check_same_layout(ref, other, str name_ref, str name_other):
    if other.shape != ref.shape:
        raise ValueError(
            f"{name_other} has shape {other.shape}, expected {ref.shape} like {name_ref}"
        )
    if other.dtype != ref.dtype:
        raise ValueError(f"{name_other} has dtype {other.dtype}, expected {ref.dtype}")
    if other.strides != ref.strides:
        raise ValueError(f"{name_other} must have the same memory order as {name_ref}")


def _check_float(x, str name):
    if x.dtype != np.float32 and x.dtype != np.float64:
        raise ValueError(f"{name} must be float32 or float64, not {x.dtype}")


cdef double[::1] _hidden_z(floating[::1] z, const floating[::1] a, double gamma,
                           double beta, int act, double negative_slope):
    cdef double[::1] sums = np.zeros(2)
    with nogil:
        hidden_activation_z_update(&z[0], &a[0], z.shape[0], gamma, beta, act,
                                   negative_slope, &sums[0])
    return sums


cdef inline int _checked_activation(str activation, double negative_slope) except -1:
    cdef int act = _activation_code(activation)
    if act == LEAKY_RELU and not (isfinite(negative_slope) and negative_slope >= 0.0):
        raise ValueError(f"negative_slope must be finite and >= 0, got {negative_slope}")
    return act


def hidden_z_update(z, a, double gamma, double beta, str activation="hardsigmoid",
                    double negative_slope=0.01):
    """Hidden-layer z-update (3) in place, entry-wise.

    On entry ``z`` holds ``m = W_l a_{l-1}`` (any shape, C- or F-contiguous);
    on exit it holds ``argmin_z gamma (a - h(z))^2 + beta (z - m)^2`` for the
    activation ``h``. ``a`` has the same shape, dtype and memory order.

    Activations (``h(z)``; every one is piecewise, and the minimiser is the
    best of the minimisers of the pieces, the first listed winning a tie):

    - ``"hardsigmoid"``: ``clip(z, 0, 1)``; ``"relu"``: ``max(z, 0)``
      (ADMM.md, "Closed forms");
    - ``"leaky_relu"``: ``z`` if ``z > 0`` else ``negative_slope * z``, for
      any finite ``negative_slope >= 0`` (``ValueError`` otherwise): best of
      the minimiser on ``z <= 0`` and that on ``z >= 0``;
    - ``"step"``: ``1`` if ``z > 0`` else ``0`` (so ``h(0) = 0``);
    - ``"sign"``: ``1`` if ``z > 0`` else ``-1`` (``2 step - 1``: the same
      jump at 0, closed on the same side, so ``h(0) = -1``).

    ``sigmoid`` and ``tanh``: :func:`hidden_z_update_smooth`.

    For step and sign the candidates are ``min(m, 0)`` (side ``z <= 0``)
    and ``m`` if ``m > 0``; where ``m <= 0`` and the open side ``z > 0``
    wins, its infimum lies at 0 and the result is the smallest positive
    normal number of the dtype (``numpy.finfo(dtype).tiny``), whose cost
    exceeds the infimum by less than ``beta tiny^2 + 2 beta |m| tiny``.
    ``negative_slope`` is ignored by all activations but leaky_relu.

    Returns ``(sum (a - h(z))^2, sum (z - m)^2)`` as floats (unweighted).
    The candidates are computed in the arrays' precision, the sums in double
    in a fixed order that depends only on ``z.size`` (entries are added into
    512 partial sums by index, then pairwise).
    """
    return _hidden_z_call(z, a, gamma, beta, _checked_activation(activation, negative_slope),
                          negative_slope)


def _hidden_z_call(z, a, double gamma, double beta, int act, double negative_slope):
    """Check the arguments of a hidden z-update and run the kernel ``act``."""
    _check_float(z, "z")
    _check_same_layout(z, a, "z", "a")
    if z.size == 0:
        return 0.0, 0.0
    if gamma <= 0 or beta <= 0:
        raise ValueError(f"gamma and beta must be positive, got {gamma}, {beta}")
    zf = _flat(z, "z")
    af = _flat(a, "a")
    if z.dtype == np.float32:
        sums = _hidden_z[float](zf, af, gamma, beta, act, negative_slope)
    else:
        sums = _hidden_z[double](zf, af, gamma, beta, act, negative_slope)
    return float(sums[0]), float(sums[1])


cdef void _scaled_act(const floating[::1] z, floating[::1] out, double scale,
                      int act, double negative_slope) noexcept:
    with nogil:
        scaled_activation_slope(&z[0], &out[0], z.shape[0], scale, act, negative_slope)


def apply_activation(z, out, double scale=1.0, str activation="hardsigmoid",
                     double negative_slope=0.01):
    """Write ``out = scale * h(z)`` entry-wise; ``out`` has ``z``'s layout.

    ``activation`` and ``negative_slope`` as in :func:`hidden_z_update`;
    leaky_relu's negative side is computed as ``(scale * negative_slope) * z``.
    """
    return _apply_call(z, out, scale, _checked_activation(activation, negative_slope),
                       negative_slope)


def _apply_call(z, out, double scale, int act, double negative_slope):
    _check_float(z, "z")
    _check_same_layout(z, out, "z", "out")
    if z.size == 0:
        return out
    if z.dtype == np.float32:
        _scaled_act[float](_flat(z, "z"), _flat(out, "out"), scale, act, negative_slope)
    else:
        _scaled_act[double](_flat(z, "z"), _flat(out, "out"), scale, act, negative_slope)
    return out


def hidden_z_update_smooth(z, a, double gamma, double beta, str activation="sigmoid"):
    """Hidden-layer z-update (3) for a smooth activation, in place, entry-wise.

    As :func:`hidden_z_update` (same arrays, same returned sums in the same
    order) for ``"sigmoid"``, ``h(z) = 1 / (1 + exp(-z))``, and ``"tanh"``.
    The problem is smooth but not convex; each entry is solved in double
    (float32 arrays: with ``gamma``, ``beta`` rounded to float32) for its
    global minimum by bracketing every local minimum: all stationary points
    lie within ``m +- gamma (|a| + 1) / (4 beta)`` (sigmoid); the inflection
    points are the roots in ``(0, 1)`` of a quartic in ``u = sigmoid(z)``,
    found through the roots of its derivatives (quadratic formula, then
    safeguarded Newton per monotone piece); on each piece where the
    derivative increases from <= 0 to >= 0 one safeguarded Newton root is
    found to the last bit; the least cost wins, the smallest z on a tie.
    tanh is the sigmoid problem in ``w = 2 z`` (``a' = (a + 1) / 2``,
    ``m' = 2 m``, ``gamma' = 4 gamma``, ``beta' = beta / 4``). Some 100 to 300
    times slower per entry than hardsigmoid (see ``docs/performance.md``).
    """
    return _hidden_z_call(z, a, gamma, beta,
                          _activation_code(activation, _SMOOTH_ACTIVATIONS), 0.0)


def apply_activation_smooth(z, out, double scale=1.0, str activation="sigmoid"):
    """Write ``out = scale * h(z)`` for ``"sigmoid"`` or ``"tanh"`` (in double,
    then rounded); as :func:`apply_activation`."""
    return _apply_call(z, out, scale, _activation_code(activation, _SMOOTH_ACTIVATIONS), 0.0)


def _output_strides(z):
    if z.ndim != 2:
        raise ValueError(f"z must be 2-D (samples, outputs), got shape {z.shape}")
    if not (z.flags.c_contiguous or z.flags.f_contiguous):
        raise ValueError("z must be C- or Fortran-contiguous")
    item = z.itemsize
    return z.strides[0] // item, z.strides[1] // item


# Output kernels of the wrappers below, by loss (all share _output_call).
cdef int HINGE = 0
cdef int BINARY_HINGE = 1
cdef int LOGISTIC = 2
cdef int CROSS_ENTROPY = 3


cdef double[::1] _labelled(floating[:, :] z, floating[:, :] lam, const int64_t[::1] labels,
                           Py_ssize_t s0, Py_ssize_t s1, double beta, bint update,
                           int loss, double label_smoothing):
    cdef double[::1] sums = np.zeros(3)
    cdef double[::1] work
    if z.shape[0] == 0 or z.shape[1] == 0:
        return sums
    if loss == CROSS_ENTROPY:
        work = np.empty(6 * z.shape[1])
    with nogil:
        if loss == HINGE:
            hinge_output_update(&z[0, 0], &lam[0, 0], &labels[0], z.shape[0], z.shape[1],
                                s0, s1, beta, update, &sums[0])
        elif loss == BINARY_HINGE:
            binary_hinge_output_update(&z[0, 0], &lam[0, 0], &labels[0], z.shape[0], s0,
                                       beta, update, &sums[0])
        elif loss == LOGISTIC:
            logistic_output_update(&z[0, 0], &lam[0, 0], &labels[0], z.shape[0], s0,
                                   beta, update, &sums[0])
        else:
            cross_entropy_output_update(&z[0, 0], &lam[0, 0], &labels[0], z.shape[0],
                                        z.shape[1], s0, s1, beta, update, label_smoothing,
                                        &work[0], &sums[0])
    return sums


def _output_call(z, lam, labels, double beta, bint update_multiplier, int loss,
                 double label_smoothing=0.0):
    """Check the arguments of a labelled output update and run its kernel
    (``label_smoothing``: the cross-entropy's, checked by its wrapper)."""
    _check_float(z, "z")
    _check_same_layout(z, lam, "z", "lam")
    s0, s1 = _output_strides(z)
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    binary = loss == BINARY_HINGE or loss == LOGISTIC
    if binary and z.shape[1] != 1:
        raise ValueError(f"z must have one output column, got shape {z.shape}")
    n_labels = 2 if binary else z.shape[1]
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels has shape {labels.shape}, expected ({z.shape[0]},)")
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise ValueError(f"labels must lie in 0..{n_labels - 1}")
    if z.dtype == np.float32:
        sums = _labelled[float](z, lam, labels, s0, s1, beta, update_multiplier, loss,
                                label_smoothing)
    else:
        sums = _labelled[double](z, lam, labels, s0, s1, beta, update_multiplier, loss,
                                 label_smoothing)
    return float(sums[0]), float(sums[1]), float(sums[2])


def output_hinge_update(z, lam, labels, double beta, bint update_multiplier,
                        bint binary=False):
    """Output z-update (5) for the one-vs-rest hinge, fused with (6), in place.

    ``z`` and ``lam`` are ``(m, n_L)`` arrays of one dtype and memory order;
    on entry ``z`` holds ``W_L a_{L-1}``. ``labels`` are ``m`` class indices
    in ``0 .. n_L-1`` (``y = 1`` for the labelled class, 0 for the others).
    With ``binary=True``, ``z`` has one column (``n_L = 1``) and ``labels``
    are the targets ``y`` in ``{0, 1}`` themselves. When
    ``update_multiplier`` is true ``lam += beta (z - W_L a_{L-1})``.

    Returns ``(loss, <z, lam>, ||z - W_L a_{L-1}||^2)`` with the new ``lam``.
    """
    return _output_call(z, lam, labels, beta, update_multiplier,
                        BINARY_HINGE if binary else HINGE)


def output_logistic_update(z, lam, labels, double beta, bint update_multiplier):
    """Output z-update (5) for the logistic loss, fused with (6), in place.

    ``z`` and ``lam`` are ``(m, 1)`` arrays of one dtype and memory order (on
    entry ``z`` holds ``W_L a_{L-1}``), ``labels`` the ``m`` targets ``y`` in
    ``{0, 1}``, and ``C(z, y) = log(1 + exp(-(2 y - 1) z))``. Each entry is
    the root of the strictly increasing derivative of the strictly convex
    objective, found in double by Newton's method safeguarded by bisection
    in a bracket of width ``1 / (2 beta)``, to the last bit or two of double
    (then rounded to the dtype). ``update_multiplier`` as in
    :func:`output_hinge_update`.

    Returns ``(loss, <z, lam>, ||z - W_L a_{L-1}||^2)`` with the new ``lam``.
    """
    return _output_call(z, lam, labels, beta, update_multiplier, LOGISTIC)


def output_cross_entropy_update(z, lam, labels, double beta, bint update_multiplier,
                                double label_smoothing=0.0):
    """Output z-update (5) for softmax cross-entropy, fused with (6), in place.

    ``z`` and ``lam`` are ``(m, n_L)`` arrays of one dtype and memory order
    (on entry ``z`` holds ``W_L a_{L-1}``), ``labels`` ``m`` class indices in
    ``0 .. n_L-1``. With ``label_smoothing`` ``s`` in ``[0, 1)`` (PyTorch's
    name and meaning) the target of label ``y`` is the distribution
    ``t = (1 - s) e_y + s / n_L`` and ``C(z, y) = logsumexp(z) - <t, z>``
    (``logsumexp(z) - z_y`` at ``s = 0``, computed to the same bits as
    without smoothing). Each sample's ``z`` minimises the strictly convex
    ``C(z, y) + <z, lam> + beta ||z - m||^2``: Newton's method in double
    from ``z = m``, the gradient ``softmax(z) - t + lam + 2 beta (z - m)``,
    the Hessian ``diag(p) - p p^T + 2 beta I`` (``p = softmax(z)``, the same
    for every ``s``) solved by Sherman-Morrison in ``O(n_L)``, with
    backtracking while the objective can resolve the decrease, then plain
    Newton steps until the step is at the rounding level of ``z`` (or stops
    shrinking). ``update_multiplier`` as in :func:`output_hinge_update`.
    ``ValueError`` for ``label_smoothing`` outside ``[0, 1)`` (or NaN).

    Returns ``(loss, <z, lam>, ||z - W_L a_{L-1}||^2)`` with the new ``lam``;
    the loss is ``sum_j C(z_j, y_j)``, the smoothed one.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
    return _output_call(z, lam, labels, beta, update_multiplier, CROSS_ENTROPY,
                        label_smoothing)


cdef double[::1] _squared(floating[:, :] z, floating[:, :] lam, const floating[:, :] y,
                          Py_ssize_t s0, Py_ssize_t s1, double beta, bint update):
    cdef double[::1] sums = np.zeros(3)
    if z.shape[0] == 0 or z.shape[1] == 0:
        return sums
    with nogil:
        squared_output_update(&z[0, 0], &lam[0, 0], &y[0, 0], z.shape[0], z.shape[1],
                              s0, s1, beta, update, &sums[0])
    return sums


def output_squared_update(z, lam, targets, double beta, bint update_multiplier):
    """Output z-update (5) for least squares, fused with (6), in place.

    Like :func:`output_hinge_update` with ``(m, n_L)`` real ``targets`` of
    ``z``'s dtype and memory order: ``z = (2 y - lam + 2 beta m) / (2 + 2 beta)``.
    Returns ``(loss, <z, lam>, ||z - W_L a_{L-1}||^2)``.
    """
    _check_float(z, "z")
    _check_same_layout(z, lam, "z", "lam")
    _check_same_layout(z, targets, "z", "targets")
    s0, s1 = _output_strides(z)
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if z.dtype == np.float32:
        sums = _squared[float](z, lam, targets, s0, s1, beta, update_multiplier)
    else:
        sums = _squared[double](z, lam, targets, s0, s1, beta, update_multiplier)
    return float(sums[0]), float(sums[1]), float(sums[2])


cdef void _glorot(floating[:, :] out, bitgen_t* rng) noexcept:
    cdef Py_ssize_t item = sizeof(floating)
    with nogil:
        glorot_uniform_fill(&out[0, 0], out.shape[0], out.shape[1],
                            out.strides[0] // item, out.strides[1] // item, rng)


def glorot_uniform(out, bit_generator):
    """Fill the ``(n_out, n_in)`` array ``out`` with Glorot-uniform weights.

    ``out[i, j] = s (2 u_ij - 1)``, ``s = sqrt(6 / (n_out + n_in))``, where
    ``u`` are the next ``n_out * n_in`` doubles of the NumPy bit generator
    (``numpy.random.PCG64`` etc.) in row-major order, whatever the memory
    order of ``out``: ``u = numpy.random.Generator(bit_generator).random(shape)``.
    One seed therefore gives the same weights on every rank, run and dtype.
    """
    _check_float(out, "out")
    if out.ndim != 2:
        raise ValueError(f"out must be 2-D, got shape {out.shape}")
    if out.size == 0:
        return out
    cdef bitgen_t* rng = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    with bit_generator.lock:
        if out.dtype == np.float32:
            _glorot[float](out, rng)
        else:
            _glorot[double](out, rng)
    return out


cdef inline char _op(bint transpose, bint c_order) noexcept:
    # BLAS operation applied to the column-major view of a NumPy matrix X so
    # that it yields X^transpose: the view of a C-ordered X is X^T.
    return c'T' if (transpose ^ c_order) else c'N'


cdef inline blas_int _ld(x):
    # Leading dimension of the column-major view of a contiguous 2-D array.
    cdef Py_ssize_t ld = x.shape[1] if x.flags.c_contiguous else x.shape[0]
    return <blas_int>(ld if ld > 1 else 1)


cdef void _gemm_np(char ta, char tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                   double alpha, const floating[:, :] a, blas_int lda, const floating[:, :] b,
                   blas_int ldb, double beta, floating[:, :] c, blas_int ldc) noexcept:
    with nogil:
        _gemm(ta, tb, <blas_int>m, <blas_int>n, <blas_int>k, <floating>alpha,
              &a[0, 0], lda, &b[0, 0], ldb, <floating>beta, &c[0, 0], ldc)


def _check_matrix(x, str name, dtype):
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    if x.dtype != dtype:
        raise ValueError(f"{name} has dtype {x.dtype}, expected {dtype}")
    if not (x.flags.c_contiguous or x.flags.f_contiguous):
        raise ValueError(f"{name} must be C- or Fortran-contiguous")


def matmul(a, b, out, bint transpose_a=False, bint transpose_b=False,
           double alpha=1.0, double beta=0.0):
    """``out = alpha op(a) @ op(b) + beta out`` by one BLAS gemm, in place.

    ``op(x)`` is ``x.T`` when the matching ``transpose_*`` flag is set. Any of
    the three 2-D arrays may be C- or Fortran-contiguous; all share a dtype
    (float32 or float64). With ``beta = 0`` the old content of ``out`` is
    ignored. Returns ``out``.
    """
    _check_float(out, "out")
    for x, name in ((a, "a"), (b, "b"), (out, "out")):
        _check_matrix(x, name, out.dtype)
    cdef Py_ssize_t m = a.shape[1] if transpose_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if transpose_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if transpose_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if transpose_b else b.shape[1]
    if k != kb or out.shape != (m, n):
        raise ValueError(
            f"shapes do not match: op(a) {m}x{k}, op(b) {kb}x{n}, out {out.shape}"
        )
    if m == 0 or n == 0:
        return out
    if k == 0:
        # No samples (an empty rank): BLAS semantics, beta = 0 ignores the old
        # content, which may be uninitialised (NaN * 0 would stay NaN).
        if beta == 0.0:
            out[...] = 0
        else:
            out *= beta
        return out
    cdef bint out_c = out.flags.c_contiguous
    if out_c:
        # out^T = op(b)^T op(a)^T in the column-major view of out.
        if out.dtype == np.float32:
            _gemm_np[float](_op(not transpose_b, b.flags.c_contiguous),
                            _op(not transpose_a, a.flags.c_contiguous), n, m, k,
                            alpha, b, _ld(b), a, _ld(a), beta, out, _ld(out))
        else:
            _gemm_np[double](_op(not transpose_b, b.flags.c_contiguous),
                             _op(not transpose_a, a.flags.c_contiguous), n, m, k,
                             alpha, b, _ld(b), a, _ld(a), beta, out, _ld(out))
    else:
        if out.dtype == np.float32:
            _gemm_np[float](_op(transpose_a, a.flags.c_contiguous),
                            _op(transpose_b, b.flags.c_contiguous), m, n, k,
                            alpha, a, _ld(a), b, _ld(b), beta, out, _ld(out))
        else:
            _gemm_np[double](_op(transpose_a, a.flags.c_contiguous),
                             _op(transpose_b, b.flags.c_contiguous), m, n, k,
                             alpha, a, _ld(a), b, _ld(b), beta, out, _ld(out))
    return out


def cross(z, a, out, double alpha=1.0, double beta=0.0):
    """Cross term ``out = alpha z.T @ a + beta out`` (``z a^T`` of ADMM.md).

    ``z`` is ``(m, n_l)``, ``a`` is ``(m, n_{l-1})``, ``out`` is
    ``(n_l, n_{l-1})``. One gemm; ``beta = 1`` accumulates blocks.
    """
    return matmul(z, a, out, transpose_a=True, alpha=alpha, beta=beta)


cdef void _syrk_np(char trans, Py_ssize_t n, Py_ssize_t k, double alpha,
                   const floating[:, :] a, blas_int lda, double beta,
                   floating[:, :] c, blas_int ldc, bint c_order) noexcept:
    cdef Py_ssize_t i, j
    with nogil:
        _syrk(c'L', trans, <blas_int>n, <blas_int>k, <floating>alpha, &a[0, 0], lda,
              <floating>beta, &c[0, 0], ldc)
        # syrk filled the lower triangle of the column-major view: the upper
        # triangle of a C-ordered c, the lower of a Fortran-ordered one.
        # Mirror it so the caller sees the full symmetric matrix.
        for i in range(n):
            for j in range(i + 1, n):
                if c_order:
                    c[j, i] = c[i, j]
                else:
                    c[i, j] = c[j, i]


def gram(a, out, double alpha=1.0, double beta=0.0):
    """Gram matrix ``out = alpha a.T @ a + beta out`` by a symmetric rank-k update.

    ``a`` is ``(m, n)`` (samples in rows), ``out`` is ``(n, n)``; the result is
    the full symmetric matrix (``a a^T`` of ADMM.md, columns as samples).
    With ``beta != 0`` only ``out``'s symmetric content is used.
    """
    _check_float(out, "out")
    _check_matrix(a, "a", out.dtype)
    _check_matrix(out, "out", out.dtype)
    cdef Py_ssize_t n = a.shape[1]
    cdef Py_ssize_t k = a.shape[0]
    if out.shape != (n, n):
        raise ValueError(f"out has shape {out.shape}, expected {(n, n)}")
    if n == 0:
        return out
    # Column-major view of a C-ordered a is a^T (n x m): a^T a = V V^T ("N").
    cdef char trans = c'N' if a.flags.c_contiguous else c'T'
    if out.dtype == np.float32:
        _syrk_np[float](trans, n, k, alpha, a, _ld(a), beta, out, _ld(out),
                        out.flags.c_contiguous)
    else:
        _syrk_np[double](trans, n, k, alpha, a, _ld(a), beta, out, _ld(out),
                         out.flags.c_contiguous)
    return out


cdef blas_int _potrf_np(floating[:, :] a, blas_int lda, double shift) noexcept:
    cdef Py_ssize_t i, n = a.shape[0]
    cdef blas_int info
    with nogil:
        for i in range(n):
            a[i, i] += <floating>shift
        info = _potrf(c'L', <blas_int>n, &a[0, 0], lda)
    return info


def cholesky_factor(a, double shift=0.0):
    """Cholesky factorisation of the symmetric ``a + shift I``, in place.

    ``a`` is ``(n, n)``, C- or Fortran-contiguous; it is overwritten by the
    factor, whose layout only :func:`cholesky_solve` needs to know (the
    lower triangle of ``a``'s column-major view). Raises
    ``numpy.linalg.LinAlgError`` when ``a + shift I`` is not positive definite.
    """
    _check_float(a, "a")
    _check_matrix(a, "a", a.dtype)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"a must be square, got shape {a.shape}")
    if a.shape[0] == 0:
        return a
    if a.dtype == np.float32:
        info = _potrf_np[float](a, _ld(a), shift)
    else:
        info = _potrf_np[double](a, _ld(a), shift)
    if info > 0:
        raise np.linalg.LinAlgError(
            f"matrix is not positive definite (leading minor {info} of {a.shape[0]})"
        )
    if info < 0:
        raise ValueError(f"potrf rejected argument {-info}")
    return a


cdef blas_int _potrs_np(floating[:, :] f, blas_int ldf, floating[:, :] b, bint b_c,
                        blas_int ldb) noexcept:
    cdef blas_int n = <blas_int>f.shape[0]
    cdef blas_int k = <blas_int>b.shape[0]
    cdef blas_int info = 0
    with nogil:
        if b_c:
            # Column-major view of b is b^T: solve A X = b^T, one column per row of b.
            info = _potrs(c'L', n, k, &f[0, 0], ldf, &b[0, 0], ldb)
        else:
            # b A^{-1} = b L^{-T} L^{-1}: two triangular solves from the right.
            _trsm(c'R', c'L', c'T', c'N', k, n, <floating>1.0, &f[0, 0], ldf, &b[0, 0], ldb)
            _trsm(c'R', c'L', c'N', c'N', k, n, <floating>1.0, &f[0, 0], ldf, &b[0, 0], ldb)
    return info


def cholesky_solve(factor, b):
    """Solve in place with a factor from :func:`cholesky_factor`: ``b <- b A^{-1}``.

    ``b`` is ``(k, n)``: each row is a right-hand side (``A`` is symmetric, so
    this is also ``(A^{-1} b^T)^T``). ``b`` may be C- or Fortran-contiguous
    whatever the factor's memory order, and must have the factor's dtype.
    """
    _check_float(factor, "factor")
    _check_matrix(factor, "factor", factor.dtype)
    _check_matrix(b, "b", factor.dtype)
    if b.shape[1] != factor.shape[0]:
        raise ValueError(f"b has {b.shape[1]} columns, the factor is {factor.shape}")
    if b.size == 0:
        return b
    if b.dtype == np.float32:
        info = _potrs_np[float](factor, _ld(factor), b, b.flags.c_contiguous, _ld(b))
    else:
        info = _potrs_np[double](factor, _ld(factor), b, b.flags.c_contiguous, _ld(b))
    if info != 0:
        raise ValueError(f"potrs rejected argument {-info}")
    return b


cdef int cholesky_inverse_lower(floating* a, Py_ssize_t n, Py_ssize_t lda) noexcept nogil:
    # potri from the lower-triangular factor, then the strict upper triangle
    # mirrored from the lower one (column-major: a[i + j lda]).
    cdef Py_ssize_t i, j
    cdef blas_int info = _potri(c'L', <blas_int>n, a, <blas_int>lda)
    if info != 0:
        return <int>info
    for j in range(1, n):
        for i in range(j):
            a[i + j * lda] = a[j + i * lda]
    return 0


cdef int _potri_np(floating[:, :] a, Py_ssize_t lda) noexcept:
    cdef int info
    with nogil:
        info = cholesky_inverse_lower(&a[0, 0], a.shape[0], lda)
    return info


def cholesky_inverse(factor):
    """The inverse ``A^{-1}`` from a factor of :func:`cholesky_factor`, in place.

    ``factor`` (``(n, n)``, the array that :func:`cholesky_factor` returned,
    in its memory order) is overwritten by the full symmetric ``A^{-1}``
    (LAPACK potri, then the other triangle mirrored), ready for
    :func:`matmul`: ``b A^{-1}`` by one gemm runs at the GEMM rate, where
    :func:`cholesky_solve` runs two trsm at about half of it. Meant for
    well-conditioned ``A``: the inverse is not backward stable like a
    solve, but its relative error is bounded by ``cond(A)`` times the
    precision, as the solve's is. Raises
    ``numpy.linalg.LinAlgError`` on a zero diagonal entry of the factor.
    """
    _check_float(factor, "factor")
    _check_matrix(factor, "factor", factor.dtype)
    if factor.shape[0] != factor.shape[1]:
        raise ValueError(f"factor must be square, got shape {factor.shape}")
    if factor.shape[0] == 0:
        return factor
    if factor.dtype == np.float32:
        info = _potri_np[float](factor, _ld(factor))
    else:
        info = _potri_np[double](factor, _ld(factor))
    if info > 0:
        raise np.linalg.LinAlgError(
            f"the factor is singular (zero diagonal entry {info} of {factor.shape[0]})"
        )
    if info < 0:
        raise ValueError(f"potri rejected argument {-info}")
    return factor


def shear_images(X, offsets, out):
    """Shear and shift every image of ``X`` into ``out``; returns ``out``.

    ``X`` and ``out`` are C-contiguous ``(m, side * side)`` arrays of one
    dtype (float32 or float64), one square image per row stored row by
    row; ``offsets`` is ``(m, 3)`` float64: per image the row offset
    ``p``, the column offset ``q`` and the slant ``s``. Output pixel
    ``(r, c)`` of image ``i`` is image ``i`` interpolated bilinearly (zero
    outside) at row ``p + r`` and column ``q + s r + c``, in float64, then
    rounded to the dtype: bit for bit ``scipy.ndimage.affine_transform(x,
    [[1, 0], [s, 1]], offset=(p, q), order=1, mode="grid-constant")`` of the
    image in float64 (the deskewing of :func:`admm.preprocessing.deskew`).
    """
    _check_float(X, "X")
    if X.ndim != 2 or not X.flags.c_contiguous:
        raise ValueError(f"X must be a C-contiguous 2-D array, got shape {X.shape}")
    _check_same_layout(X, out, "X", "out")
    side = int(round(X.shape[1] ** 0.5))
    if side < 1 or side * side != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} columns, not the pixels of a square image")
    if (offsets.dtype != np.float64 or offsets.shape != (X.shape[0], 3)
            or not offsets.flags.c_contiguous):
        raise ValueError(
            f"offsets must be a C-contiguous float64 array of shape {(X.shape[0], 3)}, "
            f"got {offsets.dtype} {offsets.shape}"
        )
    if X.dtype == np.float32:
        _shear_call[float](X, offsets, out, side)
    else:
        _shear_call[double](X, offsets, out, side)
    return out


cdef void _shear_call(const floating[:, ::1] X, const double[:, ::1] offsets,
                      floating[:, ::1] out, Py_ssize_t side) noexcept:
    cdef Py_ssize_t i
    with nogil:
        for i in range(X.shape[0]):
            shear_image(&X[i, 0], &out[i, 0], side, offsets[i, 0], offsets[i, 1],
                        offsets[i, 2])
