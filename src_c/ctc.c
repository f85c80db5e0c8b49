/* ctc.c - CTC loss in log space (see ctc.h for the contracts).
 *
 * Paths: *_ref (plain scalar C over every cell, one thread), generic (ctc_tmpl.h on one-lane
 * scalar "vectors"), avx2 and avx512 (ctc_tmpl.h over vmath.h). The public entry points run
 * one sequence per OpenMP task (dynamic schedule: sequences differ in length) with per-thread
 * scratch of O(S + C); the saved alpha is O(T*S) per sequence. Results do not depend on the
 * thread count (each sequence is computed by one thread in a fixed order). */
#include <math.h>
#include <stdlib.h>
#include "cengine.h"

int64_t ce_ctc_alpha_width(int64_t max_target_len) {
    int64_t w = 2 * max_target_len + 1 + 4;   /* two -inf cells before s = 0, two spare after */
    return (w + 15) / 16 * 16;
}

/* ---- scalar references ------------------------------------------------------------------- */
#define CE_CTC_REF(T, SFX, EXP, LOG1P)                                                             \
    static inline T ctc_lse2_##SFX(T a, T b) {                                                     \
        if (a < b) { T t = a; a = b; b = t; }                                                      \
        if (a == -INFINITY) return a;                                                              \
        return a + LOG1P(EXP(b - a));                                                              \
    }                                                                                              \
    static void ctc_ref_ext_##SFX(int64_t *ext, int *skip, const int64_t *lab, int64_t L,          \
                                  int64_t blank) {                                                 \
        for (int64_t s = 0; s < 2 * L + 1; s++) {                                                  \
            ext[s] = (s & 1) ? lab[s >> 1] : blank;                                                \
            skip[s] = (s & 1) && s >= 3 && lab[s >> 1] != lab[(s >> 1) - 1];                       \
        }                                                                                          \
    }                                                                                              \
    static int ctc_fwd_ref_##SFX(T *nll, T *alpha, const T *lp, const int64_t *tgt,                \
                                 const int64_t *off, const int64_t *il, const int64_t *tl,         \
                                 int64_t T_, int64_t N, int64_t C, int64_t W, int64_t blank) {     \
        int64_t Lmax = 0;                                                                          \
        for (int64_t n = 0; n < N; n++) Lmax = tl[n] > Lmax ? tl[n] : Lmax;                        \
        int64_t *ext = malloc(sizeof(int64_t) * (2 * Lmax + 1));                                   \
        int *skip = malloc(sizeof(int) * (2 * Lmax + 1));                                          \
        if (!ext || !skip) { free(ext); free(skip); return -1; }                                   \
        for (int64_t n = 0; n < N; n++) {                                                          \
            int64_t L = tl[n], S = 2 * L + 1, Tn = il[n];                                          \
            ctc_ref_ext_##SFX(ext, skip, tgt + off[n], L, blank);                                  \
            if (Tn == 0) { nll[n] = L == 0 ? 0 : INFINITY; continue; }                             \
            for (int64_t t = 0; t < Tn; t++) {                                                     \
                T *R = alpha + (n * T_ + t) * W + 2;                                               \
                const T *P = R - W;                                                                \
                const T *l = lp + (t * N + n) * C;                                                 \
                R[-2] = R[-1] = -INFINITY;                                                         \
                for (int64_t s = 0; s < S; s++) {                                                  \
                    T v;                                                                           \
                    if (t == 0) v = s < 2 ? (T)0 : (T)-INFINITY;                                   \
                    else {                                                                         \
                        v = P[s];                                                                  \
                        if (s >= 1) v = ctc_lse2_##SFX(v, P[s - 1]);                               \
                        if (skip[s]) v = ctc_lse2_##SFX(v, P[s - 2]);                              \
                    }                                                                              \
                    R[s] = v + l[ext[s]];                                                          \
                }                                                                                  \
            }                                                                                      \
            const T *R = alpha + (n * T_ + Tn - 1) * W + 2;                                        \
            nll[n] = -(S >= 2 ? ctc_lse2_##SFX(R[S - 1], R[S - 2]) : R[S - 1]);                    \
        }                                                                                          \
        free(ext);                                                                                 \
        free(skip);                                                                                \
        return 0;                                                                                  \
    }                                                                                              \
    static int ctc_bwd_ref_##SFX(T *dlp, const T *lp, const T *alpha, const T *nll, const T *g,    \
                                 const int64_t *tgt, const int64_t *off, const int64_t *il,        \
                                 const int64_t *tl, int64_t T_, int64_t N, int64_t C, int64_t W,   \
                                 int64_t blank, int zero_infinity) {                               \
        int64_t Lmax = 0;                                                                          \
        for (int64_t n = 0; n < N; n++) Lmax = tl[n] > Lmax ? tl[n] : Lmax;                        \
        int64_t Sm = 2 * Lmax + 1;                                                                 \
        int64_t *ext = malloc(sizeof(int64_t) * Sm);                                               \
        int *skip = malloc(sizeof(int) * (Sm + 2));                                                \
        T *beta = malloc(sizeof(T) * (Sm + 2) * (T_ > 0 ? T_ : 1));                                \
        T *occ = malloc(sizeof(T) * C);                                                            \
        if (!ext || !skip || !beta || !occ) {                                                      \
            free(ext); free(skip); free(beta); free(occ);                                          \
            return -1;                                                                             \
        }                                                                                          \
        for (int64_t n = 0; n < N; n++) {                                                          \
            int64_t L = tl[n], S = 2 * L + 1, Tn = il[n];                                          \
            int inf = !(nll[n] < INFINITY);                                                        \
            if (Tn == 0 || (inf && zero_infinity)) continue;                                       \
            ctc_ref_ext_##SFX(ext, skip, tgt + off[n], L, blank);                                  \
            skip[S] = skip[S + 1] = 0;                                                             \
            for (int64_t t = Tn - 1; t >= 0; t--) {                                                \
                T *B = beta + t * (Sm + 2);                                                        \
                const T *Bn = B + (Sm + 2);                                                        \
                const T *l = lp + (t * N + n) * C;                                                 \
                for (int64_t s = 0; s < S; s++) {                                                  \
                    T v;                                                                           \
                    if (t == Tn - 1) v = s >= S - 2 ? (T)0 : (T)-INFINITY;                         \
                    else {                                                                         \
                        v = Bn[s];                                                                 \
                        if (s + 1 < S) v = ctc_lse2_##SFX(v, Bn[s + 1]);                           \
                        if (s + 2 < S && skip[s + 2]) v = ctc_lse2_##SFX(v, Bn[s + 2]);            \
                    }                                                                              \
                    B[s] = v + l[ext[s]];                                                          \
                }                                                                                  \
                for (int64_t c = 0; c < C; c++) occ[c] = 0;                                        \
                const T *A = alpha + (n * T_ + t) * W + 2;                                         \
                if (!inf)                                                                          \
                    for (int64_t s = 0; s < S; s++) {                                              \
                        T ab = A[s] + B[s];                                                        \
                        if (ab > -INFINITY) occ[ext[s]] += EXP(ab - l[ext[s]] + nll[n]);           \
                    }                                                                              \
                T *d = dlp + (t * N + n) * C;                                                      \
                for (int64_t c = 0; c < C; c++) d[c] += g[n] * (EXP(l[c]) - occ[c]);              \
            }                                                                                      \
        }                                                                                          \
        free(ext); free(skip); free(beta); free(occ);                                              \
        return 0;                                                                                  \
    }

CE_CTC_REF(float, f32, expf, log1pf)
CE_CTC_REF(double, f64, exp, log1p)

/* ---- SIMD and generic paths -------------------------------------------------------------- */
#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "ctc_tmpl.h"
#include "isa_each.h"

/* ---- threading + dispatch ---------------------------------------------------------------- */
static int ctc_threads(const int64_t *il, const int64_t *tl, int64_t N) {
    int64_t work = 0;
    for (int64_t n = 0; n < N; n++) work += il[n] * (2 * tl[n] + 1);
    if (work < 20000) return 1;   /* a parallel region costs more than it saves */
    return ce_threads_for(N, 1);
}

#define CE_CTC_DRIVER(T, SFX)                                                                      \
    static int ctc_fwd_##SFX(T *nll, T *alpha, const T *lp, const int64_t *tgt,                   \
                             const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T_, \
                             int64_t N, int64_t C, int64_t W, int64_t blank) {                     \
        int64_t Lmax = 0;                                                                          \
        for (int64_t n = 0; n < N; n++) Lmax = tl[n] > Lmax ? tl[n] : Lmax;                        \
        int64_t Sm = 2 * Lmax + 1 + 8;                                                             \
        int nt = ctc_threads(il, tl, N), fail = 0;                                                 \
        const int isa = ce_isa;                                                                    \
        _Pragma("omp parallel num_threads(nt) if (nt > 1) reduction(|: fail)")                    \
        {                                                                                          \
            T *buf = malloc(sizeof(T) * 2 * Sm);                                                   \
            int64_t *ext = malloc(sizeof(int64_t) * Sm);                                           \
            if (!buf || !ext) fail = 1;                                                            \
            _Pragma("omp for schedule(dynamic, 1)")                                                \
            for (int64_t n = 0; n < N; n++) {                                                      \
                if (!buf || !ext) continue;                                                        \
                T *A = alpha + n * T_ * W;                                                         \
                const T *l = lp + n * C;                                                           \
                const int64_t *lab = tgt + off[n];                                                 \
                switch (isa) {                                                                     \
                case CE_ISA_AVX512:                                                                \
                    ce_ctc_fwd_seq_avx512_##SFX(nll + n, A, l, N * C, lab, tl[n], il[n], W, blank, \
                                                buf, buf + Sm, ext);                               \
                    break;                                                                         \
                case CE_ISA_AVX2:                                                                  \
                    ce_ctc_fwd_seq_avx2_##SFX(nll + n, A, l, N * C, lab, tl[n], il[n], W, blank,   \
                                              buf, buf + Sm, ext);                                 \
                    break;                                                                         \
                default:                                                                           \
                    ce_ctc_fwd_seq_scalar_##SFX(nll + n, A, l, N * C, lab, tl[n], il[n], W, blank, \
                                                buf, buf + Sm, ext);                               \
                    break;                                                                         \
                }                                                                                  \
            }                                                                                      \
            free(buf);                                                                             \
            free(ext);                                                                             \
        }                                                                                          \
        return fail ? -1 : 0;                                                                      \
    }                                                                                              \
    static int ctc_bwd_##SFX(T *dlp, const T *lp, const T *alpha, const T *nll, const T *g,        \
                             const int64_t *tgt, const int64_t *off, const int64_t *il,            \
                             const int64_t *tl, int64_t T_, int64_t N, int64_t C, int64_t W,       \
                             int64_t blank, int zinf) {                                            \
        int64_t Lmax = 0;                                                                          \
        for (int64_t n = 0; n < N; n++) Lmax = tl[n] > Lmax ? tl[n] : Lmax;                        \
        int64_t Sm = 2 * Lmax + 1 + 8;                                                             \
        int nt = ctc_threads(il, tl, N), fail = 0;                                                 \
        const int isa = ce_isa;                                                                    \
        _Pragma("omp parallel num_threads(nt) if (nt > 1) reduction(|: fail)")                    \
        {                                                                                          \
            T *buf = malloc(sizeof(T) * (5 * Sm + C + 16));                                        \
            int64_t *ext = malloc(sizeof(int64_t) * Sm);                                           \
            if (!buf || !ext) fail = 1;                                                            \
            _Pragma("omp for schedule(dynamic, 1)")                                                \
            for (int64_t n = 0; n < N; n++) {                                                      \
                if (!buf || !ext) continue;                                                        \
                const T *A = alpha + n * T_ * W;                                                   \
                const int64_t *lab = tgt + off[n];                                                 \
                T *lpe = buf, *skm = buf + Sm, *b0 = buf + 2 * Sm, *b1 = buf + 3 * Sm;             \
                T *gam = buf + 4 * Sm, *occ = buf + 5 * Sm;                                        \
                switch (isa) {                                                                     \
                case CE_ISA_AVX512:                                                                \
                    ce_ctc_bwd_seq_avx512_##SFX(dlp + n * C, lp + n * C, A, nll[n], g[n], N * C,   \
                                                C, lab, tl[n], il[n], W, blank, zinf, lpe, skm,    \
                                                ext, b0, b1, gam, occ);                            \
                    break;                                                                         \
                case CE_ISA_AVX2:                                                                  \
                    ce_ctc_bwd_seq_avx2_##SFX(dlp + n * C, lp + n * C, A, nll[n], g[n], N * C, C,  \
                                              lab, tl[n], il[n], W, blank, zinf, lpe, skm, ext,    \
                                              b0, b1, gam, occ);                                   \
                    break;                                                                         \
                default:                                                                           \
                    ce_ctc_bwd_seq_scalar_##SFX(dlp + n * C, lp + n * C, A, nll[n], g[n], N * C,   \
                                                C, lab, tl[n], il[n], W, blank, zinf, lpe, skm,    \
                                                ext, b0, b1, gam, occ);                            \
                    break;                                                                         \
                }                                                                                  \
            }                                                                                      \
            free(buf);                                                                             \
            free(ext);                                                                             \
        }                                                                                          \
        return fail ? -1 : 0;                                                                      \
    }

CE_CTC_DRIVER(float, f32)
CE_CTC_DRIVER(double, f64)

/* ---- public entry points ----------------------------------------------------------------- */
int ce_ctc_loss_fwd_f32(float *nll, float *alpha, const float *lp, const int64_t *tgt,
                        const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                        int64_t N, int64_t C, int64_t W, int64_t blank) {
    return ctc_fwd_f32(nll, alpha, lp, tgt, off, il, tl, T, N, C, W, blank);
}
int ce_ctc_loss_fwd_f64(double *nll, double *alpha, const double *lp, const int64_t *tgt,
                        const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                        int64_t N, int64_t C, int64_t W, int64_t blank) {
    return ctc_fwd_f64(nll, alpha, lp, tgt, off, il, tl, T, N, C, W, blank);
}
int ce_ctc_loss_fwd_f32_ref(float *nll, float *alpha, const float *lp, const int64_t *tgt,
                            const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                            int64_t N, int64_t C, int64_t W, int64_t blank) {
    return ctc_fwd_ref_f32(nll, alpha, lp, tgt, off, il, tl, T, N, C, W, blank);
}
int ce_ctc_loss_fwd_f64_ref(double *nll, double *alpha, const double *lp, const int64_t *tgt,
                            const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                            int64_t N, int64_t C, int64_t W, int64_t blank) {
    return ctc_fwd_ref_f64(nll, alpha, lp, tgt, off, il, tl, T, N, C, W, blank);
}
int ce_ctc_loss_bwd_f32(float *dlp, const float *lp, const float *alpha, const float *nll,
                        const float *g, const int64_t *tgt, const int64_t *off,
                        const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C,
                        int64_t W, int64_t blank, int zero_infinity) {
    return ctc_bwd_f32(dlp, lp, alpha, nll, g, tgt, off, il, tl, T, N, C, W, blank, zero_infinity);
}
int ce_ctc_loss_bwd_f64(double *dlp, const double *lp, const double *alpha, const double *nll,
                        const double *g, const int64_t *tgt, const int64_t *off,
                        const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C,
                        int64_t W, int64_t blank, int zero_infinity) {
    return ctc_bwd_f64(dlp, lp, alpha, nll, g, tgt, off, il, tl, T, N, C, W, blank, zero_infinity);
}
int ce_ctc_loss_bwd_f32_ref(float *dlp, const float *lp, const float *alpha, const float *nll,
                            const float *g, const int64_t *tgt, const int64_t *off,
                            const int64_t *il, const int64_t *tl, int64_t T, int64_t N,
                            int64_t C, int64_t W, int64_t blank, int zero_infinity) {
    return ctc_bwd_ref_f32(dlp, lp, alpha, nll, g, tgt, off, il, tl, T, N, C, W, blank,
                           zero_infinity);
}
int ce_ctc_loss_bwd_f64_ref(double *dlp, const double *lp, const double *alpha,
                            const double *nll, const double *g, const int64_t *tgt,
                            const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                            int64_t N, int64_t C, int64_t W, int64_t blank, int zero_infinity) {
    return ctc_bwd_ref_f64(dlp, lp, alpha, nll, g, tgt, off, il, tl, T, N, C, W, blank,
                           zero_infinity);
}
