/* gemm_generic.c - portable C GEMM microkernels (see gemm.h for the contract).
 * fp32 4x16, fp64 4x8 tiles in a local accumulator array; gcc -O3 vectorizes the j loops with
 * the baseline SIMD of the target. Only j < n of each B row is read. */
#include "gemm.h"

#define GEN_BODY(T, MR, NR)                                                                    \
    T acc[MR][NR];                                                                             \
    for (int i = 0; i < MR; i++)                                                               \
        for (int j = 0; j < NR; j++) acc[i][j] = 0;                                            \
    const int64_t ps = lda < 0 ? -lda : MR;   /* packed / column panel: column p at A + p*ps */ \
    if (lda > 0) {                                                                             \
        for (int64_t p = 0; p < k; p++) {                                                      \
            for (int i = 0; i < m; i++) {                                                      \
                T a = A[i * lda + p];                                                          \
                for (int j = 0; j < n; j++) acc[i][j] += a * B[j];                             \
            }                                                                                  \
            B += rsb;                                                                          \
        }                                                                                      \
    } else if (n == NR) {                                                                      \
        for (int64_t p = 0; p < k; p++) {                                                      \
            for (int i = 0; i < MR; i++) {                                                     \
                T a = A[i];                                                                    \
                for (int j = 0; j < NR; j++) acc[i][j] += a * B[j];                            \
            }                                                                                  \
            A += ps;                                                                           \
            B += rsb;                                                                          \
        }                                                                                      \
    } else {                                                                                   \
        for (int64_t p = 0; p < k; p++) {                                                      \
            for (int i = 0; i < MR; i++) {                                                     \
                T a = A[i];                                                                    \
                for (int j = 0; j < n; j++) acc[i][j] += a * B[j];                             \
            }                                                                                  \
            A += ps;                                                                           \
            B += rsb;                                                                          \
        }                                                                                      \
    }                                                                                          \
    for (int i = 0; i < m; i++)                                                                \
        for (int j = 0; j < n; j++) {                                                          \
            T *cp = C + i * rsC + j * csC;                                                     \
            T x = alpha * acc[i][j];                                                           \
            *cp = beta != 0 ? x + beta * *cp : x;                                              \
        }

/* C (m x n tile) = alpha * A(packed 4 x k) @ B(k x 16, row stride rsb) + beta*C */
void ce_sgemm_ukr_generic(int64_t k, const float *A, int64_t lda, const float *B, int64_t rsb, float *C,
                          int64_t rsC, int64_t csC, float alpha, float beta, int m, int n) {
    GEN_BODY(float, CE_SGEMM_MR_GENERIC, CE_SGEMM_NR_GENERIC)
}

/* C (m x n tile) = alpha * A(packed 4 x k) @ B(k x 8, row stride rsb) + beta*C, fp64 */
void ce_dgemm_ukr_generic(int64_t k, const double *A, int64_t lda, const double *B, int64_t rsb, double *C,
                          int64_t rsC, int64_t csC, double alpha, double beta, int m, int n) {
    GEN_BODY(double, CE_DGEMM_MR_GENERIC, CE_DGEMM_NR_GENERIC)
}
