/* Entry-wise cores of the hidden z-update (ADMM.md, "Closed forms"), in C so
 * that gcc vectorises them without -ffast-math.
 *
 * Shape, and why:
 * - The candidates and their costs are computed in the precision of the
 *   arrays (float32 arrays in float: 8 lanes per AVX2 register, no
 *   conversions; that made float32 twice as fast as float64 instead of 3x
 *   slower). float64 does exactly the arithmetic of the former Cython loop,
 *   term for term, so its z are bit-for-bit unchanged.
 * - The pick is a chain of branch-free selects with strict "<", so a tie
 *   keeps the earlier candidate; gcc turns it into packed compare/blend.
 * - The two objective sums are taken in a second loop over a block that is
 *   still in L1, in double, into ADMM_ZBLOCK partial sums (entry i goes to
 *   partial sum i % ADMM_ZBLOCK) that are added pairwise at the end. Every
 *   step is element-wise, so nothing needs reassociation, and the order is a
 *   fixed function of the array passed: independent of the vector width, the
 *   clone chosen at run time, or anything else.
 */
#ifndef ADMM_ENTRYWISE_H
#define ADMM_ENTRYWISE_H

#include <stddef.h>

/* Entries per block (the saved m of a block, 4 KiB, stays in L1 between the
 * two loops) and number of partial sums. */
#define ADMM_ZBLOCK 512
/* One AVX2 clone beside the baseline (SSE2) code, picked at load time: the
 * pick is compute-bound, and 4-wide doubles halve its time. Contraction to
 * FMA stays off (-std=c11), so both clones give the same bits. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define ADMM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ADMM_CLONES
#endif

/* Sum of x[0 .. ADMM_ZBLOCK-1] by pairwise halving, in place: every pass is
 * an element-wise add of two halves (a loop over a few running partial sums
 * was compiled to loads and stores through the stack). */
static inline double admm_block_sum(double *restrict x) {
    for (ptrdiff_t w = ADMM_ZBLOCK / 2; w > 0; w /= 2) {
        for (ptrdiff_t k = 0; k < w; k++) x[k] += x[k + w];
    }
    return x[0];
}

/* ADMM_PICKS(C, SUFFIX) defines admm_hardsigmoid_pick##SUFFIX, the argmin of
 * gamma (a - clip(z, 0, 1))^2 + beta (z - m)^2 (best of three), and
 * admm_relu_pick##SUFFIX for max(z, 0) (best of two), in arithmetic type C. */
#define ADMM_PICKS(C, SUFFIX)                                                        \
    static inline C admm_hardsigmoid_pick##SUFFIX(C m, C ai, C gamma, C beta, C inv) { \
        /* z1 = min(m, 0): h(z1) = 0, (z1 - m)^2 = max(m, 0)^2 */                     \
        C d = m > 0 ? m : 0;                                                          \
        C zb = m < 0 ? m : 0;                                                         \
        C cb = gamma * ai * ai + beta * d * d;                                        \
        /* z2 = clip((gamma a + beta m) / (gamma + beta), 0, 1) */                    \
        C z2 = (gamma * ai + beta * m) * inv;                                         \
        z2 = z2 < 0 ? 0 : (z2 > 1 ? 1 : z2);                                          \
        C c2 = gamma * (ai - z2) * (ai - z2) + beta * (z2 - m) * (z2 - m);            \
        /* One compare feeds both selects (an int flag made gcc widen masks). */     \
        zb = c2 < cb ? z2 : zb;                                                       \
        cb = c2 < cb ? c2 : cb;                                                       \
        /* z3 = max(m, 1): h(z3) = 1 */                                               \
        C z3 = m > 1 ? m : 1;                                                         \
        C c3 = gamma * (ai - 1) * (ai - 1) + beta * (z3 - m) * (z3 - m);              \
        return c3 < cb ? z3 : zb;                                                     \
    }                                                                                 \
    static inline C admm_relu_pick##SUFFIX(C m, C ai, C gamma, C beta, C inv) {       \
        C d = m > 0 ? m : 0;                                                          \
        C zb = m < 0 ? m : 0;                                                         \
        C cb = gamma * ai * ai + beta * d * d;                                        \
        C z2 = (gamma * ai + beta * m) * inv;                                         \
        z2 = z2 < 0 ? 0 : z2;                                                         \
        C c2 = gamma * (ai - z2) * (ai - z2) + beta * (z2 - m) * (z2 - m);            \
        return c2 < cb ? z2 : zb;                                                     \
    }

ADMM_PICKS(double, _d)
ADMM_PICKS(float, _f)

/* The activations, of a stored z. */
static inline double admm_hardsigmoid_h(double v) {
    v = v > 0.0 ? v : 0.0;
    return v < 1.0 ? v : 1.0;
}

static inline double admm_relu_h(double v) { return v > 0.0 ? v : 0.0; }

/* ADMM_Z_UPDATE(NAME, T, PICK, H) defines
 *   void NAME(T* z, const T* a, ptrdiff_t n, double gamma, double beta, double* sums)
 * which overwrites z (holding m on entry) by the minimiser and adds
 * sum (a - h(z))^2 to sums[0] and sum (z - m)^2 to sums[1] (z as stored,
 * h of the stored z is that of the chosen candidate: 0, z itself or 1). */
#define ADMM_Z_UPDATE(NAME, T, PICK, H)                                             \
    ADMM_CLONES static void NAME(T *restrict z, const T *restrict a, ptrdiff_t n,     \
                                 double gamma, double beta, double *sums) {           \
        const double inv = 1.0 / (gamma + beta);                                      \
        /* acc_*[k] sums the entries whose index is k modulo ADMM_ZBLOCK. */          \
        double acc_act[ADMM_ZBLOCK] = {0.0}, acc_pen[ADMM_ZBLOCK] = {0.0};            \
        double m_saved[ADMM_ZBLOCK];                                                  \
        for (ptrdiff_t start = 0; start < n; start += ADMM_ZBLOCK) {                  \
            ptrdiff_t len = n - start < ADMM_ZBLOCK ? n - start : ADMM_ZBLOCK;        \
            T *restrict zb = z + start;                                               \
            const T *restrict ab = a + start;                                         \
            for (ptrdiff_t i = 0; i < len; i++) {                                     \
                T mi = zb[i];                                                         \
                m_saved[i] = (double)mi;                                              \
                zb[i] = PICK(mi, ab[i], (T)gamma, (T)beta, (T)inv);                   \
            }                                                                         \
            /* A second loop over the block, still in L1: fused into the first,       \
               gcc 12 turned the selects into masked stores (3x slower). */          \
            for (ptrdiff_t i = 0; i < len; i++) {                                     \
                double zi = (double)zb[i];                                            \
                double da = (double)ab[i] - H(zi), dp = zi - m_saved[i];              \
                acc_act[i] += da * da;                                                \
                acc_pen[i] += dp * dp;                                                \
            }                                                                         \
        }                                                                             \
        sums[0] += admm_block_sum(acc_act);                                           \
        sums[1] += admm_block_sum(acc_pen);                                           \
    }

ADMM_Z_UPDATE(admm_hardsigmoid_z_d, double, admm_hardsigmoid_pick_d, admm_hardsigmoid_h)
ADMM_Z_UPDATE(admm_hardsigmoid_z_f, float, admm_hardsigmoid_pick_f, admm_hardsigmoid_h)
ADMM_Z_UPDATE(admm_relu_z_d, double, admm_relu_pick_d, admm_relu_h)
ADMM_Z_UPDATE(admm_relu_z_f, float, admm_relu_pick_f, admm_relu_h)

#endif
