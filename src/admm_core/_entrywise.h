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
#include <math.h>
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

/* ---- sigmoid: 1-D non-convex, solved exactly by bracketing --------------
 *
 * phi(z) = gamma (a - s(z))^2 + beta (z - m)^2 (the objective), s the
 * logistic sigmoid, u = s(z), s' = u (1 - u). With c = beta / gamma,
 *   phi'(z) / 2  = -gamma (a - u) u (1 - u) + beta (z - m),
 *   phi''(z) / 2 = gamma (c - q(u)),  q(u) = u (1 - u) (3u^2 - 2(1 + a)u + a)
 *                = -3u^4 + (5 + 2a)u^3 - (2 + 3a)u^2 + a u.
 * Every stationary point lies in [m - R, m + R], R = (|a| + 1) / (4 c), since
 * |(a - u) u (1 - u)| <= (|a| + 1) / 4; phi' is <= 0 at m - R and >= 0 at
 * m + R. q = c has at most 4 roots in (0, 1) (found through the roots of q''
 * (quadratic formula) and of q' (one per monotone piece of q')), so phi' has
 * at most 5 monotone pieces; each piece on which phi' goes from <= 0 to
 * >= 0 holds one local minimum, found by safeguarded Newton, and the least
 * phi among them (the smallest z on a tie) is the global minimum. If
 * c >= max(a, 1 - a) / 4 >= max q, phi is convex and there is one piece. */

/* Newton's method safeguarded by bisection (Numerical Recipes' rtsafe) for
 * the root of f in [lo, hi], given f(lo) and f(hi) of opposite signs (or
 * zero). Stops when the bracket is at adjacent doubles, a Newton step moves
 * x by at most tol |x| (the step is taken: with tol at the rounding level
 * the root is then exact to about an ulp; Newton near a simple root would
 * otherwise wobble by an ulp for ever), or after 200 steps. */
typedef double (*admm_fn)(double x, const double *k, double *df);

static double admm_rtsafe(admm_fn f, const double *k, double lo, double hi, double flo,
                          double fhi, double tol) {
    if (flo == 0.0) return lo;
    if (fhi == 0.0) return hi;
    double xl = flo < 0.0 ? lo : hi, xh = flo < 0.0 ? hi : lo;
    double x = 0.5 * (lo + hi), df, fx = f(x, k, &df);
    double dxold = fabs(hi - lo), dx = dxold;
    for (int it = 0; it < 200; it++) {
        if (fx == 0.0) return x;
        if (fx < 0.0) xl = x; else xh = x;
        double t = x;
        int bisect = ((x - xh) * df - fx) * ((x - xl) * df - fx) > 0.0 ||
                     fabs(2.0 * fx) > fabs(dxold * df);
        if (!bisect) {
            dxold = dx;
            dx = fx / df;
            x -= dx;
            if (fabs(dx) <= tol * fabs(t)) return x; /* converged */
            /* a step onto an end of the bracket (whose f has a known sign)
               would stall: bisect instead */
            bisect = x == xl || x == xh;
        }
        if (bisect) {
            dxold = dx;
            dx = 0.5 * (xh - xl);
            x = xl + dx;
            if (x == xl || x == xh) return x; /* bracket at adjacent doubles */
        }
        fx = f(x, k, &df);
    }
    return x;
}

/* q - c (k = {a, c}), q' - 0 and q'' as polynomials in u. */
static double admm_q_minus_c(double u, const double *k, double *df) {
    double a = k[0];
    *df = ((-12.0 * u + 3.0 * (5.0 + 2.0 * a)) * u - 2.0 * (2.0 + 3.0 * a)) * u + a;
    return (((-3.0 * u + (5.0 + 2.0 * a)) * u - (2.0 + 3.0 * a)) * u + a) * u - k[1];
}

static double admm_dq(double u, const double *k, double *df) {
    double a = k[0];
    *df = (-36.0 * u + 6.0 * (5.0 + 2.0 * a)) * u - 2.0 * (2.0 + 3.0 * a);
    return ((-12.0 * u + 3.0 * (5.0 + 2.0 * a)) * u - 2.0 * (2.0 + 3.0 * a)) * u + a;
}

/* The roots of f in each piece [b_i, b_{i+1}] of b[0 .. nb-1] where f changes
 * sign, appended to r; returns their number. */
static int admm_piece_roots(admm_fn f, const double *k, const double *b, int nb, double *r,
                            double tol) {
    int n = 0;
    double d, fl = f(b[0], k, &d);
    for (int i = 0; i + 1 < nb; i++) {
        double fh = f(b[i + 1], k, &d);
        if ((fl <= 0.0 && fh >= 0.0) || (fl >= 0.0 && fh <= 0.0)) {
            double x = admm_rtsafe(f, k, b[i], b[i + 1], fl, fh, tol);
            if (n == 0 || x > r[n - 1]) r[n++] = x;
        }
        fl = fh;
    }
    return n;
}

/* The z (ascending) where phi'' = 0, i.e. s(z) is a root of q = c in (0, 1). */
static int admm_sigmoid_inflections(double a, double c, double *z) {
    double k[2] = {a, c};
    /* q'' = -36u^2 + 6(5 + 2a)u - 2(2 + 3a): roots by the stable formula. */
    double b[4], cq[4], uq[4];
    int nb = 0;
    b[nb++] = 0.0;
    double B = 3.0 * (5.0 + 2.0 * a), D = B * B - 72.0 * (2.0 + 3.0 * a);
    if (D > 0.0) {
        double t = B + (B >= 0.0 ? sqrt(D) : -sqrt(D));
        double r1 = t / 36.0, r2 = t != 0.0 ? 2.0 * (2.0 + 3.0 * a) / t : r1;
        double lo = r1 < r2 ? r1 : r2, hi = r1 < r2 ? r2 : r1;
        if (lo > 0.0 && lo < 1.0) b[nb++] = lo;
        if (hi > 0.0 && hi < 1.0 && hi > b[nb - 1]) b[nb++] = hi;
    }
    b[nb++] = 1.0;
    /* critical points of q, between 0 and 1 */
    double bq[5];
    int n = 0;
    bq[n++] = 0.0;
    /* The inflection points only split phi' into monotone pieces, and phi'
       is checked for a sign change at each: 1e-12 relative is plenty. */
    int nc = admm_piece_roots(admm_dq, k, b, nb, cq, 1e-12);
    for (int i = 0; i < nc; i++)
        if (cq[i] > bq[n - 1] && cq[i] < 1.0) bq[n++] = cq[i];
    bq[n++] = 1.0;
    int nu = admm_piece_roots(admm_q_minus_c, k, bq, n, uq, 1e-12);
    int nz = 0;
    for (int i = 0; i < nu; i++)
        if (uq[i] > 0.0 && uq[i] < 1.0) z[nz++] = log(uq[i]) - log1p(-uq[i]);
    return nz;
}

/* phi'(z) / 2 and phi''(z) / 2, k = {a, m, gamma, beta}. */
static double admm_sigmoid_dphi(double z, const double *k, double *df) {
    double e = exp(-fabs(z)), w = 1.0 / (1.0 + e);
    double u = z >= 0.0 ? w : e * w, ds = e * w * w; /* s(z), s'(z) */
    double a = k[0];
    *df = k[3] - k[2] * ds * ((3.0 * u - 2.0 * (1.0 + a)) * u + a);
    return -k[2] * (a - u) * ds + k[3] * (z - k[1]);
}

static inline double admm_sigmoid_s(double z) {
    double e = exp(-fabs(z));
    return z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

static double admm_sigmoid_argmin(double m, double a, double gamma, double beta) {
    double k[4] = {a, m, gamma, beta};
    double c = beta / gamma, R = 0.25 * (fabs(a) + 1.0) / c;
    double b[6], zi[4], r[5];
    int nb = 0;
    b[nb++] = m - R;
    double qmax = 0.25 * (a > 1.0 - a ? a : 1.0 - a);
    if (c < qmax) {
        int ni = admm_sigmoid_inflections(a, c, zi);
        for (int i = 0; i < ni; i++)
            if (zi[i] > b[nb - 1] && zi[i] < m + R) b[nb++] = zi[i];
    }
    b[nb++] = m + R;
    /* the minima: roots where phi' goes from <= 0 to >= 0 */
    int nr = 0;
    double d, fl = admm_sigmoid_dphi(b[0], k, &d);
    for (int i = 0; i + 1 < nb; i++) {
        double fh = admm_sigmoid_dphi(b[i + 1], k, &d);
        if (fl <= 0.0 && fh >= 0.0)
            r[nr++] = admm_rtsafe(admm_sigmoid_dphi, k, b[i], b[i + 1], fl, fh, 0x1p-52);
        fl = fh;
    }
    /* phi' <= 0 at m - R and >= 0 at m + R hold exactly, so a root is
       missed only where m -+ R round to m (R below half an ulp of m: then
       m is the minimiser to rounding) or m is not finite (then so is z). */
    if (nr == 0) return m;
    double best = r[0], cbest = INFINITY;
    for (int i = 0; i < nr; i++) {
        double da = a - admm_sigmoid_s(r[i]), dz = r[i] - m;
        double cost = gamma * da * da + beta * dz * dz;
        if (cost < cbest) { cbest = cost; best = r[i]; }
    }
    return best;
}

/* tanh(z) = 2 s(2z) - 1: with w = 2z the objective is that of the sigmoid with
 * a' = (a + 1)/2, m' = 2m, gamma' = 4 gamma, beta' = beta / 4. */
static inline double admm_tanh_argmin(double m, double a, double gamma, double beta) {
    return 0.5 * admm_sigmoid_argmin(2.0 * m, 0.5 * (a + 1.0), 4.0 * gamma, 0.25 * beta);
}

#define ADMM_SMOOTH_PICKS(C, SUFFIX)                                                 \
    static inline C admm_sigmoid_pick##SUFFIX(C m, C ai, C gamma, C beta, C inv, C p,  \
                                              C inv_p) {                              \
        (void)inv; (void)p; (void)inv_p;                                              \
        return (C)admm_sigmoid_argmin(m, ai, gamma, beta);                            \
    }                                                                                 \
    static inline C admm_tanh_pick##SUFFIX(C m, C ai, C gamma, C beta, C inv, C p,     \
                                           C inv_p) {                                 \
        (void)inv; (void)p; (void)inv_p;                                              \
        return (C)admm_tanh_argmin(m, ai, gamma, beta);                               \
    }

ADMM_SMOOTH_PICKS(double, _d)
ADMM_SMOOTH_PICKS(float, _f)

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

static inline double admm_sigmoid_h(double v, double p) {
    (void)p;
    return admm_sigmoid_s(v);
}

static inline double admm_tanh_h(double v, double p) {
    (void)p;
    return tanh(v);
}

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
ADMM_Z_UPDATE(admm_sigmoid_z_d, double, admm_sigmoid_pick_d, admm_sigmoid_h)
ADMM_Z_UPDATE(admm_sigmoid_z_f, float, admm_sigmoid_pick_f, admm_sigmoid_h)
ADMM_Z_UPDATE(admm_tanh_z_d, double, admm_tanh_pick_d, admm_tanh_h)
ADMM_Z_UPDATE(admm_tanh_z_f, float, admm_tanh_pick_f, admm_tanh_h)

#endif
