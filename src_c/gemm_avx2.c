/* gemm_avx2.c - AVX2+FMA GEMM microkernels (see gemm.h for the contract).
 *
 * fp32: 6x16 tile = 6 rows x 2 ymm (12 accumulators), fp64: 6x8 tile = 6 rows x 2 ymm.
 * Per k step: 2 loads of the B row, 6 broadcasts of the packed A column, 12 FMAs.
 * N edge: vmaskmov loads/stores (lanes >= n are never read or written); M edge: rows >= m
 * are not stored.
 */
#include "gemm.h"

#pragma GCC target("avx2,fma")
#include <immintrin.h>

/* lane mask for the first n lanes of a W-lane vector starting at lane `off` */
static inline __m256i lane_mask32(int n, int off) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n - off), idx);
}
static inline __m256i lane_mask64(int n, int off) {
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - off), idx);
}

#define UKR_LOOP(V, MR, SET1, FMA, LB0, LB1, AGET, AADV)                                                        \
    for (int64_t p = 0; p < k; p++) {                                                          \
        V b0 = LB0, b1 = LB1;                                                                  \
        _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {                                \
            V a = SET1(AGET);                                                                  \
            c0[i] = FMA(a, b0, c0[i]);                                                         \
            c1[i] = FMA(a, b1, c1[i]);                                                         \
        }                                                                                      \
        AADV;                                                                                  \
        B += rsb;                                                                              \
    }

#define UKR2_BODY(T, V, W, MASKF, LOAD, MLOAD, MSTORE, SET1, FMA, MUL, ZERO, STORE, MR, NR)     \
    V c0[MR], c1[MR];                                                                          \
    _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {                                     \
        c0[i] = ZERO();                                                                        \
        c1[i] = ZERO();                                                                        \
    }                                                                                          \
    __m256i m0 = MASKF(n, 0), m1 = MASKF(n, W);                                                \
    if (lda <= 0) {                                                                            \
        const int64_t ps = lda ? -lda : MR;   /* column p of the panel at A + p*ps */          \
        if (n == NR) {                                                                         \
            UKR_LOOP(V, MR, SET1, FMA, LOAD(B), LOAD(B + W), A[i], A += ps)                                      \
        } else {                                                                               \
            UKR_LOOP(V, MR, SET1, FMA, MLOAD(B, m0), MLOAD(B + W, m1), A[i], A += ps)                            \
        }                                                                                      \
    } else {                                                                                   \
        const T *ar[MR];                                                                       \
        _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++)                                  \
            ar[i] = A + (i < m ? i : m - 1) * lda;                                             \
        if (n == NR) {                                                                         \
            UKR_LOOP(V, MR, SET1, FMA, LOAD(B), LOAD(B + W), ar[i][p], (void)0)                                  \
        } else {                                                                               \
            UKR_LOOP(V, MR, SET1, FMA, MLOAD(B, m0), MLOAD(B + W, m1), ar[i][p], (void)0)                        \
        }                                                                                      \
    }                                                                                          \
    V va = SET1(alpha), vb = SET1(beta);                                                       \
    if (csC == 1) {                                                                            \
        _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {                                 \
            if (i < m) {                                                                       \
                T *cr = C + i * rsC;                                                           \
                V x0 = MUL(va, c0[i]), x1 = MUL(va, c1[i]);                                    \
                if (beta != 0) {                                                               \
                    x0 = FMA(vb, MLOAD(cr, m0), x0);                                           \
                    x1 = FMA(vb, MLOAD(cr + W, m1), x1);                                       \
                }                                                                              \
                MSTORE(cr, m0, x0);                                                            \
                MSTORE(cr + W, m1, x1);                                                        \
            }                                                                                  \
        }                                                                                      \
    } else {                                                                                   \
        T t[MR * NR] __attribute__((aligned(32)));                                             \
        _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {                                 \
            STORE(t + i * NR, c0[i]);                                                          \
            STORE(t + i * NR + W, c1[i]);                                                      \
        }                                                                                      \
        for (int i = 0; i < m; i++)                                                            \
            for (int j = 0; j < n; j++) {                                                      \
                T *cp = C + i * rsC + j * csC;                                                 \
                T x = alpha * t[i * NR + j];                                                   \
                *cp = beta != 0 ? x + beta * *cp : x;                                          \
            }                                                                                  \
    }

#define S_MLOAD2(p, mk) _mm256_maskload_ps(p, mk)
#define D_MLOAD2(p, mk) _mm256_maskload_pd(p, mk)

/* C (m x n tile, rsC/csC) = alpha * A(packed 6 x k) @ B(k x 16, row stride rsb) + beta*C */
void ce_sgemm_ukr_avx2(int64_t k, const float *A, int64_t lda, const float *B, int64_t rsb, float *C,
                       int64_t rsC, int64_t csC, float alpha, float beta, int m, int n) {
    UKR2_BODY(float, __m256, 8, lane_mask32, _mm256_loadu_ps, S_MLOAD2, _mm256_maskstore_ps,
              _mm256_set1_ps, _mm256_fmadd_ps, _mm256_mul_ps, _mm256_setzero_ps,
              _mm256_store_ps, CE_SGEMM_MR_AVX2, CE_SGEMM_NR_AVX2)
}

/* C (m x n tile) = alpha * A(packed 6 x k) @ B(k x 8, row stride rsb) + beta*C, fp64 */
void ce_dgemm_ukr_avx2(int64_t k, const double *A, int64_t lda, const double *B, int64_t rsb, double *C,
                       int64_t rsC, int64_t csC, double alpha, double beta, int m, int n) {
    UKR2_BODY(double, __m256d, 4, lane_mask64, _mm256_loadu_pd, D_MLOAD2, _mm256_maskstore_pd,
              _mm256_set1_pd, _mm256_fmadd_pd, _mm256_mul_pd, _mm256_setzero_pd,
              _mm256_store_pd, CE_DGEMM_MR_AVX2, CE_DGEMM_NR_AVX2)
}
