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

#include <float.h>
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

/* ADMM_PICKS(C, SUFFIX, TINY) defines, in arithmetic type C, the argmin of
 * gamma (a - h(z))^2 + beta (z - m)^2 for
 *   admm_hardsigmoid_pick##SUFFIX  h = clip(z, 0, 1) (best of three),
 *   admm_relu_pick##SUFFIX         h = max(z, 0) (best of two),
 *   admm_leaky_relu_pick##SUFFIX   h = z > 0 ? z : p z, p >= 0 (best of two),
 *   admm_step_pick##SUFFIX         h = z > 0 ? 1 : p (step: p = 0, sign: p = -1).
 * All take (m, a, gamma, beta, inv = 1/(gamma + beta), p, inv_p =
 * 1/(gamma p^2 + beta)) so that one loop (ADMM_Z_UPDATE) serves them all; the
 * arguments a pick does not use cost nothing once inlined. Candidates are
 * compared with strict "<", so a tie keeps the earlier (z <= 0) one.
 * TINY is the smallest positive normal number of C: the step's open side
 * z > 0 has no least element, and TINY stands in for its infimum at 0. */
#define ADMM_PICKS(C, SUFFIX, TINY)                                                  \
    static inline C admm_hardsigmoid_pick##SUFFIX(C m, C ai, C gamma, C beta, C inv, \
                                                  C p, C inv_p) {                     \
        (void)p;                                                                      \
        (void)inv_p;                                                                  \
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
    static inline C admm_relu_pick##SUFFIX(C m, C ai, C gamma, C beta, C inv, C p,    \
                                           C inv_p) {                                 \
        (void)p;                                                                      \
        (void)inv_p;                                                                  \
        C d = m > 0 ? m : 0;                                                          \
        C zb = m < 0 ? m : 0;                                                         \
        C cb = gamma * ai * ai + beta * d * d;                                        \
        C z2 = (gamma * ai + beta * m) * inv;                                         \
        z2 = z2 < 0 ? 0 : z2;                                                         \
        C c2 = gamma * (ai - z2) * (ai - z2) + beta * (z2 - m) * (z2 - m);            \
        return c2 < cb ? z2 : zb;                                                     \
    }                                                                                 \
    /* Two convex pieces, each minimised in closed form and clamped to its      \
       half-line: z1 on z <= 0 (h = p z), z2 on z >= 0 (h = z). */               \
    static inline C admm_leaky_relu_pick##SUFFIX(C m, C ai, C gamma, C beta, C inv,  \
                                                 C p, C inv_p) {                      \
        C z1 = (gamma * p * ai + beta * m) * inv_p;                                   \
        z1 = z1 > 0 ? 0 : z1;                                                         \
        C r1 = ai - p * z1;                                                           \
        C c1 = gamma * r1 * r1 + beta * (z1 - m) * (z1 - m);                          \
        C z2 = (gamma * ai + beta * m) * inv;                                         \
        z2 = z2 < 0 ? 0 : z2;                                                         \
        C c2 = gamma * (ai - z2) * (ai - z2) + beta * (z2 - m) * (z2 - m);            \
        return c2 < c1 ? z2 : z1;                                                     \
    }                                                                                 \
    /* h is constant on each side, so each side's best z is the point of it    \
       nearest m: z1 = min(m, 0) with h = p, z2 = m if m > 0 with h = 1. For   \
       m <= 0 the z > 0 side has infimum gamma (a - 1)^2 + beta m^2 at the open \
       end 0; that infimum is what is compared, and TINY is returned for it   \
       (its cost exceeds the infimum by beta (TINY^2 - 2 m TINY), below any    \
       rounding of the costs). */                                               \
    static inline C admm_step_pick##SUFFIX(C m, C ai, C gamma, C beta, C inv, C p,    \
                                           C inv_p) {                                 \
        (void)inv;                                                                    \
        (void)inv_p;                                                                  \
        C d1 = m > 0 ? m : 0;                                                         \
        C z1 = m < 0 ? m : 0;                                                         \
        C c1 = gamma * (ai - p) * (ai - p) + beta * d1 * d1;                          \
        C d2 = m < 0 ? m : 0;                                                         \
        C z2 = m > 0 ? m : TINY;                                                      \
        C c2 = gamma * (ai - 1) * (ai - 1) + beta * d2 * d2;                          \
        return c2 < c1 ? z2 : z1;                                                     \
    }

ADMM_PICKS(double, _d, DBL_MIN)
ADMM_PICKS(float, _f, FLT_MIN)

/* The activations, of a stored z, with the parameter p of the picks. */
static inline double admm_hardsigmoid_h(double v, double p) {
    (void)p;
    v = v > 0.0 ? v : 0.0;
    return v < 1.0 ? v : 1.0;
}

static inline double admm_relu_h(double v, double p) {
    (void)p;
    return v > 0.0 ? v : 0.0;
}

static inline double admm_leaky_relu_h(double v, double p) { return v > 0.0 ? v : p * v; }

static inline double admm_step_h(double v, double p) { return v > 0.0 ? 1.0 : p; }

/* ADMM_Z_UPDATE(NAME, T, PICK, H) defines
 *   void NAME(T* z, const T* a, ptrdiff_t n, double gamma, double beta,
 *             double p, double* sums)
 * which overwrites z (holding m on entry) by the minimiser and adds
 * sum (a - h(z))^2 to sums[0] and sum (z - m)^2 to sums[1] (z as stored,
 * h of the stored z is that of the chosen candidate: 0, p z, z itself, p
 * or 1). p is the activation's parameter (ignored by hardsigmoid and relu). */
#define ADMM_Z_UPDATE(NAME, T, PICK, H)                                             \
    ADMM_CLONES static void NAME(T *restrict z, const T *restrict a, ptrdiff_t n,     \
                                 double gamma, double beta, double p, double *sums) { \
        const double inv = 1.0 / (gamma + beta);                                      \
        const double inv_p = 1.0 / (gamma * p * p + beta);                            \
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
                zb[i] = PICK(mi, ab[i], (T)gamma, (T)beta, (T)inv, (T)p, (T)inv_p);   \
            }                                                                         \
            /* A second loop over the block, still in L1: fused into the first,       \
               gcc 12 turned the selects into masked stores (3x slower). */          \
            for (ptrdiff_t i = 0; i < len; i++) {                                     \
                double zi = (double)zb[i];                                            \
                double da = (double)ab[i] - H(zi, p), dp = zi - m_saved[i];           \
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
ADMM_Z_UPDATE(admm_leaky_relu_z_d, double, admm_leaky_relu_pick_d, admm_leaky_relu_h)
ADMM_Z_UPDATE(admm_leaky_relu_z_f, float, admm_leaky_relu_pick_f, admm_leaky_relu_h)
ADMM_Z_UPDATE(admm_step_z_d, double, admm_step_pick_d, admm_step_h)
ADMM_Z_UPDATE(admm_step_z_f, float, admm_step_pick_f, admm_step_h)

#endif
