/* gemm.h - general matrix multiply, float32 and float64, batched and strided.
 *
 *   for (b1, b2) in [0, nb1) x [0, nb2):  C_b = alpha * A_b @ B_b + beta * C_b
 *
 *   A_b (M,K): element (i,p) at A[b1*sAb + b2*sAb2 + i*rsA + p*csA]
 *   B_b (K,N): element (p,j) at B[b1*sBb + b2*sBb2 + p*rsB + j*csB]
 *   C_b (M,N): element (i,j) at C[b1*sCb + b2*sCb2 + i*rsC + j*csC]
 *
 * Two batch levels let a (batch, heads, L, E) view of a (batch, L, heads, E) array go in
 * without a copy (nb2 = 1 for an ordinary batch). Strides are in elements and may be anything
 * >= 0 (transposed views: swap rs/cs; a batch stride of 0 broadcasts that operand). C must not
 * overlap A or B, and distinct (b1,b2,i,j) of C must be distinct elements.
 * beta == 0 overwrites C without reading it (NaN/Inf in C do not propagate); K == 0 or
 * alpha == 0 gives C = beta*C without reading A or B; M == 0 or N == 0 does nothing.
 * bias (NULL for none): C_b(i,j) += bias[j*sbias] once, for every product (Linear's bias), in
 * the kernel's pass over each C tile rather than a separate pass over C.
 *
 * Design (gemm.c): Goto/BLIS blocking with A packed into MRxKC micro-panels (broadcast
 * operand) and B into KCxNR micro-panels (vector operand), register-blocked microkernels per
 * ISA (gemm_avx512.c, gemm_avx2.c, gemm_generic.c) picked from ce_isa on every call.
 * Threads: one OpenMP region per call; a single product splits N (or M when N is narrow)
 * across threads, a batch of small products is spread over threads one product each.
 */
#ifndef CE_GEMM_H
#define CE_GEMM_H
#include "common.h"
#include "cpu_cache.h"

/* the entry points and their plain triple-loop references (same contract, accumulating in
 * double) share one signature */
#define CE_GEMM_PROTO(NAME, T)                                                                 \
    void NAME(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, T alpha,              \
              const T *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,                 \
              const T *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, T beta,         \
              T *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,                       \
              const T *bias, int64_t sbias)
CE_GEMM_PROTO(ce_sgemm, float);
CE_GEMM_PROTO(ce_dgemm, double);
CE_GEMM_PROTO(ce_sgemm_ref, float);
CE_GEMM_PROTO(ce_dgemm_ref, double);

/* ---- block sizes (gemm.c) ----
 * KC (depth of a packed panel), MC (rows of A per packed A block), NC (columns of B per packed
 * B block), one set per (dtype, ISA) kernel: dtype 0 = float32, 1 = float64; isa = CE_ISA_*.
 * The defaults are derived at first use from the CPU's caches (ce_cpu_caches) by
 * ce_gemm_derive_blocking, or fixed per ISA when the caches are unknown; ce_gemm_set_blocking
 * replaces them (autotuned values). Block sizes change speed only: any blocking gives the same
 * result up to float rounding (the K loop order is the same, only its split into blocks moves). */
typedef struct {
    int64_t kc, mc, nc;
} ce_gemm_blocking_t;
enum { CE_GEMM_BLK_FIXED = 0, CE_GEMM_BLK_CACHES = 1, CE_GEMM_BLK_SET = 2 };
/* register tile of the (dtype, isa) kernel */
void ce_gemm_tile(int dtype, int isa, int *mr, int *nr);
/* BLIS analytical model (Low et al., "Analytical modeling is enough for high-performance BLIS")
 * for a kernel with an mr x nr tile of elsize-byte elements, on caches ci; pf_rows > 0: the
 * kernel prefetches the streamed B panel that many rows ahead (rule in gemm.c), 0: it does not.
 * Returns 1 and fills out (kc multiple of 8, mc of mr, nc of nr) when ci has at least an L1d and
 * an L2, else 0. */
int ce_gemm_derive_blocking(ce_gemm_blocking_t *out, const ce_cache_info_t *ci, int mr, int nr,
                            int elsize, int pf_rows);
/* rows ahead that the AVX-512 kernels prefetch the B panel (gemm_avx512.c) */
#define CE_GEMM_PF_ROWS_AVX512 16
/* block sizes in use for (dtype, isa); returns their origin (CE_GEMM_BLK_*) */
int ce_gemm_get_blocking(ce_gemm_blocking_t *out, int dtype, int isa);
/* use kc/mc/nc (> 0; rounded to multiples of 8 / MR / NR) for (dtype, isa); all three 0 go
 * back to the default. Returns 0, or -1 for an invalid dtype, isa or size. */
int ce_gemm_set_blocking(int dtype, int isa, int64_t kc, int64_t mc, int64_t nc);

/* ---- microkernels (internal to the gemm files, declared here for the dispatch table) ----
 * One m x n tile of C (m <= MR, n <= NR):
 *   C[i*rsC + j*csC] = alpha * sum_{p<k} a(i,p) * B[p*rsb + j] + beta * C[...]
 * A: lda == 0: packed micro-panel, a(i,p) = A[p*MR + i] (rows >= m are ignored);
 *    lda < 0: a column-major panel in place, a(i,p) = A[p*(-lda) + i], read for all i < MR
 *    (rows >= m are ignored but must be readable: the driver uses it for full panels only);
 *    lda > 0: rows in place, a(i,p) = A[i*lda + p] (rows >= m are not read). B: rows of NR values at
 * stride rsb (a packed, zero-padded panel with rsb == NR, or a row-major matrix with unit
 * column stride, of which only j < n is read). beta == 0: C not read. */
typedef void (*ce_sukr_t)(int64_t k, const float *A, int64_t lda, const float *B, int64_t rsb,
                          float *C, int64_t rsC, int64_t csC, float alpha, float beta,
                          int m, int n);
typedef void (*ce_dukr_t)(int64_t k, const double *A, int64_t lda, const double *B, int64_t rsb,
                          double *C, int64_t rsC, int64_t csC, double alpha, double beta,
                          int m, int n);

/* register tile (MR x NR) of each kernel */
#define CE_SGEMM_MR_AVX512 12
#define CE_SGEMM_NR_AVX512 32
#define CE_DGEMM_MR_AVX512 12
#define CE_DGEMM_NR_AVX512 16
#define CE_SGEMM_MR_AVX2 6
#define CE_SGEMM_NR_AVX2 16
#define CE_DGEMM_MR_AVX2 6
#define CE_DGEMM_NR_AVX2 8
#define CE_SGEMM_MR_GENERIC 4
#define CE_SGEMM_NR_GENERIC 16
#define CE_DGEMM_MR_GENERIC 4
#define CE_DGEMM_NR_GENERIC 8

void ce_sgemm_ukr_avx512(int64_t k, const float *A, int64_t lda, const float *B, int64_t rsb, float *C,
                         int64_t rsC, int64_t csC, float alpha, float beta, int m, int n);
void ce_dgemm_ukr_avx512(int64_t k, const double *A, int64_t lda, const double *B, int64_t rsb, double *C,
                         int64_t rsC, int64_t csC, double alpha, double beta, int m, int n);
/* 8-row variants (MR = 8, same NR), used for in-place A row panels only */
void ce_sgemm_ukr8_avx512(int64_t k, const float *A, int64_t lda, const float *B, int64_t rsb, float *C,
                          int64_t rsC, int64_t csC, float alpha, float beta, int m, int n);
void ce_dgemm_ukr8_avx512(int64_t k, const double *A, int64_t lda, const double *B, int64_t rsb, double *C,
                          int64_t rsC, int64_t csC, double alpha, double beta, int m, int n);
/* transposing B packs for column-major B (rsB == 1): dst[p*NR + j] = B[p + j*csB], j < n,
 * zero-padded to NR (32 fp32 / 16 fp64) */
void ce_spack_bt_avx512(float *dst, const float *B, int64_t csB, int n, int64_t k);
void ce_dpack_bt_avx512(double *dst, const double *B, int64_t csB, int n, int64_t k);
/* transposing A packs for row-major A (csA == 1), MR = 12:
 * dst[p*12 + i] = A[i*rsA + p] for i < m, zero for m <= i < 12 */
void ce_spack_a_avx512(float *dst, const float *A, int64_t rsA, int m, int64_t k);
void ce_dpack_a_avx512(double *dst, const double *A, int64_t rsA, int m, int64_t k);
void ce_sgemm_ukr_avx2(int64_t k, const float *A, int64_t lda, const float *B, int64_t rsb, float *C,
                       int64_t rsC, int64_t csC, float alpha, float beta, int m, int n);
void ce_dgemm_ukr_avx2(int64_t k, const double *A, int64_t lda, const double *B, int64_t rsb, double *C,
                       int64_t rsC, int64_t csC, double alpha, double beta, int m, int n);
void ce_sgemm_ukr_generic(int64_t k, const float *A, int64_t lda, const float *B, int64_t rsb, float *C,
                          int64_t rsC, int64_t csC, float alpha, float beta, int m, int n);
void ce_dgemm_ukr_generic(int64_t k, const double *A, int64_t lda, const double *B, int64_t rsb, double *C,
                          int64_t rsC, int64_t csC, double alpha, double beta, int m, int n);

#endif
