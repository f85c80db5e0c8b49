/* gemm_avx512.c - AVX-512 GEMM microkernels (see gemm.h for the contract).
 *
 * fp32: 12x32 tile = 12 rows x 2 zmm (24 accumulators), fp64: 12x16 tile = 12 x 2 zmm.
 * Per k step: 2 vector loads of the B row, 12 broadcasts of the packed A column, 24 FMAs.
 * A tile of at most W columns (one vector: n <= 16 fp32 / 8 fp64, the N edge or a narrow C such
 * as a 10-class output layer) runs a loop with only the first vector's 12 FMAs.
 * The N edge (n < NR) uses masked loads/stores, the M edge skips rows >= m when storing
 * (the packed A rows there are zero), so edge tiles are exact and never touch memory
 * outside the m x n tile.
 * From depth CE_UKR_PFC_MIN_K the kernel prefetches every cache line of its C tile (a row of
 * 32 fp32 is 2 lines, 3 when unaligned) before the k loop, and again CE_UKR_PFC_DIST rows
 * before its end; shallower calls prefetch the first line of each row once. With only that
 * first line prefetched, the C update after a deep loop missed to L3/memory: 8% of the
 * kernel's time on 2048^3 (Zen 4, 1 thread, paired vs numpy: 2048^3 0.96-0.99x -> 1.02-1.05x,
 * 1024^3 +2-5%); the second prefetch (the B panel streaming through L1 evicts the first) gave
 * another 0-5% on the four 2048^3 layouts (distance 10: less, 48: the same).
 */
#include "gemm.h"

#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")
#include <immintrin.h>

/* B rows stream from L2: each k step prefetches the row CE_UKR_PF_DIST steps ahead (both cache
 * lines of it) into L1 (measured: ~2% on the training step's fp32 GEMMs, neutral elsewhere) */
#define CE_UKR_PF_DIST CE_GEMM_PF_ROWS_AVX512
/* rows before the end of the k loop at which the C tile is prefetched into L1 again: the
 * prefetch at the kernel's start brings it from L3/memory, but a KC-deep B panel (64 KiB for
 * fp32 KC 512) streams through L1 during the loop and evicts it to L2 before the C update */
#define CE_UKR_PFC_DIST 24
/* depth from which the kernel prefetches every line of the C tile (twice); shallower products
 * (the batched 32^3 / 64^3 ones, whose next C the small path prefetches already) prefetch the
 * first line of each row once, as the extra prefetches cost them 4-5% (1024 x 32^3) */
#define CE_UKR_PFC_MIN_K 128
/* C tile rows into L1: all their lines when `all` (2 per row of 32 fp32, 3 when unaligned),
 * else the first */
#define UKR_PF_C(T, MR, all)                                                                   \
    if (csC == 1) {                                                                            \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) if (i < m) {                     \
            const char *c_ = (const char *)(C + i * rsC);                                      \
            _mm_prefetch(c_, _MM_HINT_T0);                                                     \
            if (all) {                                                                         \
                if (n * (int)sizeof(T) > 64) _mm_prefetch(c_ + 64, _MM_HINT_T0);               \
                _mm_prefetch(c_ + n * (int)sizeof(T) - 1, _MM_HINT_T0);                        \
            }                                                                                  \
        }                                                                                      \
    }
#define UKR_LOOP_R(P0, P1, V, MR, SET1, FMA, LB0, LB1, AGET, AADV)                             \
    _Pragma("GCC unroll 2") for (int64_t p = P0; p < P1; p++) {                                \
        _mm_prefetch((const char *)(B + CE_UKR_PF_DIST * rsb), _MM_HINT_T0);                   \
        _mm_prefetch((const char *)(B + CE_UKR_PF_DIST * rsb) + 64, _MM_HINT_T0);              \
        V b0 = LB0, b1 = LB1;                                                                  \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                                \
            V a = SET1(AGET);                                                                  \
            c0[i] = FMA(a, b0, c0[i]);                                                         \
            c1[i] = FMA(a, b1, c1[i]);                                                         \
        }                                                                                      \
        AADV;                                                                                  \
        B += rsb;                                                                              \
    }
#define UKR_LOOP(T, V, MR, SET1, FMA, LB0, LB1, AGET, AADV)                                    \
    if (k >= CE_UKR_PFC_MIN_K) {                                                               \
        const int64_t k1_ = k - CE_UKR_PFC_DIST;                                               \
        UKR_LOOP_R(0, k1_, V, MR, SET1, FMA, LB0, LB1, AGET, AADV)                             \
        UKR_PF_C(T, MR, 1)                                                                     \
        UKR_LOOP_R(k1_, k, V, MR, SET1, FMA, LB0, LB1, AGET, AADV)                             \
    } else {                                                                                   \
        UKR_LOOP_R(0, k, V, MR, SET1, FMA, LB0, LB1, AGET, AADV)                               \
    }

/* the same loop for n <= W: only the first vector of each B row (half the FMAs) */
#define UKR_LOOP1_R(P0, P1, V, MR, SET1, FMA, LB0, AGET, AADV)                                 \
    _Pragma("GCC unroll 2") for (int64_t p = P0; p < P1; p++) {                                \
        _mm_prefetch((const char *)(B + CE_UKR_PF_DIST * rsb), _MM_HINT_T0);                   \
        V b0 = LB0;                                                                            \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++)                                  \
            c0[i] = FMA(SET1(AGET), b0, c0[i]);                                                \
        AADV;                                                                                  \
        B += rsb;                                                                              \
    }
#define UKR_LOOP1(T, V, MR, SET1, FMA, LB0, AGET, AADV)                                        \
    if (k >= CE_UKR_PFC_MIN_K) {                                                               \
        const int64_t k1_ = k - CE_UKR_PFC_DIST;                                               \
        UKR_LOOP1_R(0, k1_, V, MR, SET1, FMA, LB0, AGET, AADV)                                 \
        UKR_PF_C(T, MR, 1)                                                                     \
        UKR_LOOP1_R(k1_, k, V, MR, SET1, FMA, LB0, AGET, AADV)                                 \
    } else {                                                                                   \
        UKR_LOOP1_R(0, k, V, MR, SET1, FMA, LB0, AGET, AADV)                                   \
    }

/* Body shared by fp32 and fp64: V vector type, W lanes, MK mask type, S suffix macros. */
#define UKR_BODY(T, V, W, MK, LOAD, MLOAD, MSTORE, SET1, FMA, MUL, ZERO, MR, NR)              \
    V c0[MR], c1[MR];                                                                          \
    _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                                    \
        c0[i] = ZERO();                                                                        \
        c1[i] = ZERO();                                                                        \
    }                                                                                          \
    MK m0 = (MK)(n >= W ? (MK)~0u : (MK)((1u << n) - 1u));                                     \
    MK m1 = (MK)(n >= 2 * W ? (MK)~0u : (n > W ? (MK)((1u << (n - W)) - 1u) : (MK)0));         \
    UKR_PF_C(T, MR, k >= CE_UKR_PFC_MIN_K)                                                     \
    if (lda <= 0) {                                                                            \
        const int64_t ps = lda ? -lda : MR;   /* column p of the panel at A + p*ps */          \
        if (n == NR) {                                                                         \
            UKR_LOOP(T, V, MR, SET1, FMA, LOAD(B), LOAD(B + W), A[i], A += ps)                                      \
        } else if (n <= W) {                                                                   \
            UKR_LOOP1(T, V, MR, SET1, FMA, MLOAD(m0, B), A[i], A += ps)                           \
        } else {                                                                               \
            UKR_LOOP(T, V, MR, SET1, FMA, MLOAD(m0, B), MLOAD(m1, B + W), A[i], A += ps)                            \
        }                                                                                      \
    } else {                                                                                   \
        const T *ar[MR];                                                                       \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++)                                  \
            ar[i] = A + (i < m ? i : m - 1) * lda;                                             \
        if (n == NR) {                                                                         \
            UKR_LOOP(T, V, MR, SET1, FMA, LOAD(B), LOAD(B + W), ar[i][p], (void)0)                                  \
        } else if (n <= W) {                                                                   \
            UKR_LOOP1(T, V, MR, SET1, FMA, MLOAD(m0, B), ar[i][p], (void)0)                       \
        } else {                                                                               \
            UKR_LOOP(T, V, MR, SET1, FMA, MLOAD(m0, B), MLOAD(m1, B + W), ar[i][p], (void)0)                        \
        }                                                                                      \
    }                                                                                          \
    V va = SET1(alpha), vb = SET1(beta);                                                       \
    if (csC == 1) {                                                                            \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                                \
            if (i < m) {                                                                       \
                T *cr = C + i * rsC;                                                           \
                V x0 = MUL(va, c0[i]), x1 = MUL(va, c1[i]);                                    \
                if (beta != 0) {                                                               \
                    x0 = FMA(vb, MLOAD(m0, cr), x0);                                           \
                    x1 = FMA(vb, MLOAD(m1, cr + W), x1);                                       \
                }                                                                              \
                MSTORE(cr, m0, x0);                                                            \
                MSTORE(cr + W, m1, x1);                                                        \
            }                                                                                  \
        }                                                                                      \
    } else {                                                                                   \
        T t[MR * NR] __attribute__((aligned(64)));                                             \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                                \
            _mm512_store_##T##_v(t + i * NR, c0[i]);                                           \
            _mm512_store_##T##_v(t + i * NR + W, c1[i]);                                       \
        }                                                                                      \
        for (int i = 0; i < m; i++)                                                            \
            for (int j = 0; j < n; j++) {                                                      \
                T *cp = C + i * rsC + j * csC;                                                 \
                T x = alpha * t[i * NR + j];                                                   \
                *cp = beta != 0 ? x + beta * *cp : x;                                          \
            }                                                                                  \
    }

#define _mm512_store_float_v _mm512_store_ps
#define _mm512_store_double_v _mm512_store_pd
#define S_MLOAD(mk, p) _mm512_maskz_loadu_ps(mk, p)
#define D_MLOAD(mk, p) _mm512_maskz_loadu_pd(mk, p)

/* C (m x n tile, rsC/csC) = alpha * A(packed 12 x k) @ B(k x 32, row stride rsb) + beta*C */
void ce_sgemm_ukr_avx512(int64_t k, const float *A, int64_t lda, const float *B, int64_t rsb, float *C,
                         int64_t rsC, int64_t csC, float alpha, float beta, int m, int n) {
    UKR_BODY(float, __m512, 16, __mmask16, _mm512_loadu_ps, S_MLOAD, _mm512_mask_storeu_ps,
             _mm512_set1_ps, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_setzero_ps,
             CE_SGEMM_MR_AVX512, CE_SGEMM_NR_AVX512)
}

/* C (m x n tile) = alpha * A(packed 12 x k) @ B(k x 16, row stride rsb) + beta*C, fp64 */
void ce_dgemm_ukr_avx512(int64_t k, const double *A, int64_t lda, const double *B, int64_t rsb, double *C,
                         int64_t rsC, int64_t csC, double alpha, double beta, int m, int n) {
    UKR_BODY(double, __m512d, 8, __mmask8, _mm512_loadu_pd, D_MLOAD, _mm512_mask_storeu_pd,
             _mm512_set1_pd, _mm512_fmadd_pd, _mm512_mul_pd, _mm512_setzero_pd,
             CE_DGEMM_MR_AVX512, CE_DGEMM_NR_AVX512)
}


/* the same kernels with 8-row tiles (16 accumulators), for row panels of A read in place
 * where 12-row tiles would waste rows (M = 32 = 12+12+8) */
void ce_sgemm_ukr8_avx512(int64_t k, const float *A, int64_t lda, const float *B, int64_t rsb,
                          float *C, int64_t rsC, int64_t csC, float alpha, float beta, int m, int n) {
    UKR_BODY(float, __m512, 16, __mmask16, _mm512_loadu_ps, S_MLOAD, _mm512_mask_storeu_ps,
             _mm512_set1_ps, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_setzero_ps, 8,
             CE_SGEMM_NR_AVX512)
}

void ce_dgemm_ukr8_avx512(int64_t k, const double *A, int64_t lda, const double *B, int64_t rsb,
                          double *C, int64_t rsC, int64_t csC, double alpha, double beta, int m, int n) {
    UKR_BODY(double, __m512d, 8, __mmask8, _mm512_loadu_pd, D_MLOAD, _mm512_mask_storeu_pd,
             _mm512_set1_pd, _mm512_fmadd_pd, _mm512_mul_pd, _mm512_setzero_pd, 8,
             CE_DGEMM_NR_AVX512)
}

/* ---- transposing packs: B stored column-major (rsB == 1, a transposed view such as k^T in
 * q @ k^T) into the row-of-NR panel layout, through in-register 16x16 / 8x8 transposes ---- */

/* r[i] row i of a 16x16 block -> r[j] column j (64 shuffles) */
static inline void tr16_ps(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + c]: 128-bit lane L holds column 4L+c of rows 4g..4g+3 */
    for (int g = 0; g < 4; g++) {
        u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

/* r[i] row i of an 8x8 block -> r[j] column j */
static inline void tr8_pd(__m512d r[8]) {
    __m512d t[8];
    /* t[2g + c]: 128-bit lane L holds column 2L+c of rows 2g, 2g+1 */
    for (int g = 0; g < 4; g++) {
        t[2 * g] = _mm512_unpacklo_pd(r[2 * g], r[2 * g + 1]);
        t[2 * g + 1] = _mm512_unpackhi_pd(r[2 * g], r[2 * g + 1]);
    }
    for (int c = 0; c < 2; c++) {
        __m512d v0 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x88);
        __m512d v1 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xDD);
        __m512d v2 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x88);
        __m512d v3 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xDD);
        r[c] = _mm512_shuffle_f64x2(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_f64x2(v0, v2, 0xDD);
        r[2 + c] = _mm512_shuffle_f64x2(v1, v3, 0x88);
        r[6 + c] = _mm512_shuffle_f64x2(v1, v3, 0xDD);
    }
}

/* dst[p*32 + j] = B[p + j*csB] for j < n (<= 32), 0 for n <= j < 32; p < k */
void ce_spack_bt_avx512(float *dst, const float *B, int64_t csB, int n, int64_t k) {
    for (int j0 = 0; j0 < CE_SGEMM_NR_AVX512; j0 += 16) {
        int nh = n - j0;
        nh = nh < 0 ? 0 : (nh > 16 ? 16 : nh);
        for (int64_t p = 0; p < k; p += 16) {
            int kk = k - p < 16 ? (int)(k - p) : 16;
            __mmask16 mk = (__mmask16)(kk == 16 ? 0xFFFF : (1u << kk) - 1u);
            __m512 r[16];
            for (int j = 0; j < 16; j++)
                r[j] = j < nh ? _mm512_maskz_loadu_ps(mk, B + (j0 + j) * csB + p) : _mm512_setzero_ps();
            tr16_ps(r);
            for (int q = 0; q < kk; q++) _mm512_storeu_ps(dst + (p + q) * 32 + j0, r[q]);
        }
    }
}

/* dst[p*16 + j] = B[p + j*csB] for j < n (<= 16), 0 for n <= j < 16; p < k */
void ce_dpack_bt_avx512(double *dst, const double *B, int64_t csB, int n, int64_t k) {
    for (int j0 = 0; j0 < CE_DGEMM_NR_AVX512; j0 += 8) {
        int nh = n - j0;
        nh = nh < 0 ? 0 : (nh > 8 ? 8 : nh);
        for (int64_t p = 0; p < k; p += 8) {
            int kk = k - p < 8 ? (int)(k - p) : 8;
            __mmask8 mk = (__mmask8)(kk == 8 ? 0xFF : (1u << kk) - 1u);
            __m512d r[8];
            for (int j = 0; j < 8; j++)
                r[j] = j < nh ? _mm512_maskz_loadu_pd(mk, B + (j0 + j) * csB + p) : _mm512_setzero_pd();
            tr8_pd(r);
            for (int q = 0; q < kk; q++) _mm512_storeu_pd(dst + (p + q) * 16 + j0, r[q]);
        }
    }
}

/* transposing A pack for row-major A (csA == 1), fp32, MR = 12:
 * dst[p*12 + i] = A[i*rsA + p] for i < m (<= 12), 0 for m <= i < 12; p < k.
 * 16 columns at a time: 12 row segments (rows >= m and 4 more are zero vectors) transposed in
 * registers, then column q stored as 16 lanes at dst + (p+q)*12, the 4 lanes past its 12 being
 * overwritten by column q+1 (the last column of the panel is stored with a 12-lane mask). */
void ce_spack_a_avx512(float *dst, const float *A, int64_t rsA, int m, int64_t k) {
    for (int64_t p = 0; p < k; p += 16) {
        const int kk = k - p < 16 ? (int)(k - p) : 16;
        const __mmask16 mk = (__mmask16)(kk == 16 ? 0xFFFF : (1u << kk) - 1u);
        __m512 r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < m && i < 12 ? _mm512_maskz_loadu_ps(mk, A + i * rsA + p) : _mm512_setzero_ps();
        tr16_ps(r);
        float *d = dst + p * 12;
        const int last = p + kk == k;   /* this block ends the panel: mask its last column */
        for (int q = 0; q < kk - last; q++) _mm512_storeu_ps(d + q * 12, r[q]);
        if (last) _mm512_mask_storeu_ps(d + (kk - 1) * 12, (__mmask16)0x0FFF, r[kk - 1]);
    }
}

/* transposing A pack for row-major A (csA == 1), fp64, MR = 12:
 * dst[p*12 + i] = A[i*rsA + p] for i < m (<= 12), 0 for m <= i < 12; p < k */
void ce_dpack_a_avx512(double *dst, const double *A, int64_t rsA, int m, int64_t k) {
    for (int64_t p = 0; p < k; p += 8) {
        int kk = k - p < 8 ? (int)(k - p) : 8;
        __mmask8 mk = (__mmask8)(kk == 8 ? 0xFF : (1u << kk) - 1u);
        __m512d r[8], s[8];
        for (int i = 0; i < 8; i++)
            r[i] = i < m ? _mm512_maskz_loadu_pd(mk, A + i * rsA + p) : _mm512_setzero_pd();
        for (int i = 0; i < 8; i++)
            s[i] = i < 4 && 8 + i < m ? _mm512_maskz_loadu_pd(mk, A + (8 + i) * rsA + p)
                                      : _mm512_setzero_pd();
        tr8_pd(r);
        tr8_pd(s);
        for (int q = 0; q < kk; q++) {
            _mm512_storeu_pd(dst + (p + q) * 12, r[q]);
            _mm512_mask_storeu_pd(dst + (p + q) * 12 + 8, 0x0F, s[q]);
        }
    }
}
