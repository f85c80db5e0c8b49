/* softmax.c - softmax / log_softmax over the last axis of a contiguous (R,C) array, forward and
 * Jacobian-free backward (see nn_kernels.h). Threaded over rows, SIMD within a row
 * (softmax_tmpl.h over vmath.h); generic = the scalar rows below, threaded; *_ref = scalar rows,
 * one thread. Forward: m = max, e = exp(x - m), y = e / sum(e)  |  y = (x - m) - log(sum(e)). */
#include <math.h>
#include <stdlib.h>
#include <immintrin.h>
#include "nn_util.h"

#define CE_DEF_SM_SCALAR(T, SFX, EXP, LOG)                                                       \
    static void sm_fwd_rows_scalar_##SFX(T *y, const T *x, int64_t r0, int64_t r1, int64_t C,    \
                                         int lg) {                                              \
        for (int64_t r = r0; r < r1; r++) {                                                      \
            const T *xr = x + r * C;                                                             \
            T *yr = y + r * C;                                                                   \
            T m = -INFINITY, s = 0;                                                              \
            for (int64_t c = 0; c < C; c++) m = xr[c] > m ? xr[c] : m;                           \
            if (lg) {                                                                           \
                for (int64_t c = 0; c < C; c++) s += EXP(xr[c] - m);                             \
                T ls = LOG(s);                                                                   \
                for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - m) - ls;                        \
            } else {                                                                             \
                for (int64_t c = 0; c < C; c++) {                                                \
                    T e = EXP(xr[c] - m);                                                        \
                    yr[c] = e;                                                                   \
                    s += e;                                                                      \
                }                                                                                \
                T inv = (T)1 / s;                                                                \
                for (int64_t c = 0; c < C; c++) yr[c] *= inv;                                    \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static void sm_bwd_rows_scalar_##SFX(T *dx, const T *y, const T *dy, int64_t r0, int64_t r1, \
                                         int64_t C, int lg, int acc) {                          \
        for (int64_t r = r0; r < r1; r++) {                                                      \
            const T *yr = y + r * C, *gr = dy + r * C;                                           \
            T *dr = dx + r * C;                                                                  \
            T s = 0;                                                                             \
            if (lg) {                                                                           \
                for (int64_t c = 0; c < C; c++) s += gr[c];                                      \
                for (int64_t c = 0; c < C; c++) {                                                \
                    T g = gr[c] - EXP(yr[c]) * s;                                                \
                    dr[c] = acc ? dr[c] + g : g;                                                 \
                }                                                                                \
            } else {                                                                             \
                for (int64_t c = 0; c < C; c++) s += gr[c] * yr[c];                              \
                for (int64_t c = 0; c < C; c++) {                                                \
                    T g = yr[c] * (gr[c] - s);                                                   \
                    dr[c] = acc ? dr[c] + g : g;                                                 \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }
CE_DEF_SM_SCALAR(float, f32, expf, logf)
CE_DEF_SM_SCALAR(double, f64, exp, log)

/* ---- SIMD rows ---------------------------------------------------------------------------- */
/* nts: write outputs with non-temporal stores (large arrays; see softmax_tmpl.h). The softmax
 * forward then keeps the exponentials in a per-call scratch row so y is written exactly once. */
#define CE_SM_SIMD_ROWS                                                                          \
    static void VM_FN(sm_fwd_rows)(vm_s *y, const vm_s *x, int64_t r0, int64_t r1, int64_t C,    \
                                   int lg, int nts) {                                            \
        vm_s *tmp = 0;                                                                           \
        if (nts && !lg) {                                                                        \
            tmp = (vm_s *)aligned_alloc(64, ((size_t)C * sizeof(vm_s) + 63) / 64 * 64);          \
            if (!tmp) nts = 0;                                                                   \
        }                                                                                        \
        for (int64_t r = r0; r < r1; r++) {                                                      \
            const vm_s *xr = x + r * C;                                                          \
            vm_s *yr = y + r * C;                                                                \
            vm_s m = VM_FN(sm_max)(xr, C);                                                       \
            if (lg) {                                                                            \
                vm_s s = VM_FN(sm_expsum)(0, xr, C, m);                                          \
                VM_FN(sm_sub_nt)(yr, xr, C, m, vm_slog(s), nts);                       \
            } else if (tmp) {                                                                    \
                vm_s s = VM_FN(sm_expsum)(tmp, xr, C, m);                                        \
                VM_FN(sm_mul_nt)(yr, tmp, C, (vm_s)1 / s, 1);                                    \
            } else {                                                                             \
                vm_s s = VM_FN(sm_expsum)(yr, xr, C, m);                                         \
                VM_FN(sm_scale)(yr, C, (vm_s)1 / s);                                             \
            }                                                                                    \
        }                                                                                        \
        free(tmp);                                                                               \
        if (nts) _mm_sfence();                                                                   \
    }                                                                                            \
    static void VM_FN(sm_bwd_rows)(vm_s *dx, const vm_s *y, const vm_s *dy, int64_t r0,          \
                                   int64_t r1, int64_t C, int lg, int acc, int nts) {            \
        for (int64_t r = r0; r < r1; r++) {                                                      \
            const vm_s *yr = y + r * C, *gr = dy + r * C;                                        \
            vm_s *dr = dx + r * C;                                                               \
            if (lg)                                                                              \
                VM_FN(sm_lbwd)(dr, yr, gr, C, VM_FN(sm_dot)(gr, 0, C), acc, nts);                \
            else                                                                                 \
                VM_FN(sm_bwd)(dr, yr, gr, C, VM_FN(sm_dot)(gr, yr, C), acc, nts);                \
        }                                                                                        \
        if (nts && !acc) _mm_sfence();                                                           \
    }

#define CE_EACH_INC1 "softmax_tmpl.h"
#define CE_EACH_BODY CE_SM_SIMD_ROWS
#include "isa_each.h"

/* ---- dispatch + threading over rows ------------------------------------------------------- */
#define CE_DEF_SM_ENTRY(T, SFX)                                                                  \
    static void sm_fwd_rows_##SFX(T *y, const T *x, int64_t r0, int64_t r1, int64_t C, int lg, int nts) { \
        switch (ce_isa) {                                                                        \
        case CE_ISA_AVX512: ce_sm_fwd_rows_avx512_##SFX(y, x, r0, r1, C, lg, nts); break;            \
        case CE_ISA_AVX2: ce_sm_fwd_rows_avx2_##SFX(y, x, r0, r1, C, lg, nts); break;                \
        default: sm_fwd_rows_scalar_##SFX(y, x, r0, r1, C, lg); break;                          \
        }                                                                                        \
    }                                                                                            \
    static void sm_bwd_rows_##SFX(T *dx, const T *y, const T *dy, int64_t r0, int64_t r1,       \
                                  int64_t C, int lg, int acc, int nts) {                                 \
        switch (ce_isa) {                                                                        \
        case CE_ISA_AVX512: ce_sm_bwd_rows_avx512_##SFX(dx, y, dy, r0, r1, C, lg, acc, nts); break;  \
        case CE_ISA_AVX2: ce_sm_bwd_rows_avx2_##SFX(dx, y, dy, r0, r1, C, lg, acc, nts); break;      \
        default: sm_bwd_rows_scalar_##SFX(dx, y, dy, r0, r1, C, lg, acc); break;                \
        }                                                                                        \
    }                                                                                            \
    void ce_softmax_fwd_##SFX(T *y, const T *x, int64_t R, int64_t C, int lg) {                 \
        if (R <= 0 || C <= 0) return;                                                            \
        int nt = ce_nn_threads(R * C, CE_NN_MIN_WORK, R);                                        \
        int nts = ce_nn_stream(R * C * (int64_t)sizeof(T));                                      \
        if (nt <= 1) {                                                                           \
            sm_fwd_rows_##SFX(y, x, 0, R, C, lg, nts);                                               \
            return;                                                                              \
        }                                                                                        \
        _Pragma("omp parallel num_threads(nt)")                                                  \
        {                                                                                        \
            int64_t lo, hi;                                                                      \
            ce_chunk(R, CE_TID(), nt, 1, &lo, &hi);                                              \
            if (hi > lo) sm_fwd_rows_##SFX(y, x, lo, hi, C, lg, nts);                                \
        }                                                                                        \
    }                                                                                            \
    void ce_softmax_bwd_##SFX(T *dx, const T *y, const T *dy, int64_t R, int64_t C, int lg,     \
                              int accumulate) {                                                  \
        if (R <= 0 || C <= 0) return;                                                            \
        int nt = ce_nn_threads(R * C, CE_NN_MIN_WORK, R);                                        \
        int nts = ce_nn_stream(R * C * (int64_t)sizeof(T));                                      \
        if (nt <= 1) {                                                                           \
            sm_bwd_rows_##SFX(dx, y, dy, 0, R, C, lg, accumulate, nts);                              \
            return;                                                                              \
        }                                                                                        \
        _Pragma("omp parallel num_threads(nt)")                                                  \
        {                                                                                        \
            int64_t lo, hi;                                                                      \
            ce_chunk(R, CE_TID(), nt, 1, &lo, &hi);                                              \
            if (hi > lo) sm_bwd_rows_##SFX(dx, y, dy, lo, hi, C, lg, accumulate, nts);               \
        }                                                                                        \
    }                                                                                            \
    void ce_softmax_fwd_##SFX##_ref(T *y, const T *x, int64_t R, int64_t C, int lg) {           \
        if (R > 0 && C > 0) sm_fwd_rows_scalar_##SFX(y, x, 0, R, C, lg);                        \
    }                                                                                            \
    void ce_softmax_bwd_##SFX##_ref(T *dx, const T *y, const T *dy, int64_t R, int64_t C,        \
                                    int lg, int accumulate) {                                   \
        if (R > 0 && C > 0) sm_bwd_rows_scalar_##SFX(dx, y, dy, 0, R, C, lg, accumulate);       \
    }
CE_DEF_SM_ENTRY(float, f32)
CE_DEF_SM_ENTRY(double, f64)
