/* gemm.c - GEMM driver: blocking, packing, threading, batched + strided entry points, and the
 * reference GEMM. The microkernels live in gemm_{avx512,avx2,generic}.c (contract: gemm.h).
 *
 * Orientation. A kernel computes an MR x NR tile of C with vectors along N (the contiguous
 * direction of a row-major C) and broadcasts of A. If C is column-major (or its column stride
 * is the larger one) the driver computes C^T = B^T A^T instead, so C is always written along
 * its smaller stride.
 *
 * Blocking (Goto/BLIS, loops from outside in; A is the broadcast operand, B the vector one):
 *   ic over M in blocks of MC
 *   pc over K in blocks of KC   A block (MC x KC) packed into MR-row micro-panels (L3)
 *   jc over N in blocks of NC   B block (KC x NC) packed into NR-column micro-panels (L2)
 *   ir over MC step MR          A micro-panel (MR x KC) stays in L1
 *   jr over NC step NR          B micro-panels stream from L2 through the kernel
 * Threads take work units (product x slice of C's columns, or rows when that repacks less)
 * from a dynamic schedule; each unit is a single-thread GEMM with its own buffers. When one
 * product is sliced, the operand every slice reads (A for column slices, B for row slices) is
 * first packed once by the whole team into a shared buffer (F(prepack_a) / F(prepack_b)).
 * The K loop is never split, so results do not depend on the thread count.
 *
 * Small problems (B with unit column stride, its K block under 384 KiB, A of at most 96 rows)
 * skip packing: the kernel
 * reads B rows in place (masked loads at the N edge) and row-major A rows in place (other A
 * layouts are packed one micro-panel at a time).
 * One OpenMP region per call; small problems stay on the calling thread.
 *
 * The typed driver is gemm_tmpl.h, included below once per dtype (GEMM_T = float, double); the
 * public entry points at the end of this file call it.
 */
/* keep packing loops as vector moves rather than calls to libc memcpy/memset (see copy_row) */
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#include "gemm.h"
#include <stdlib.h>
#include <string.h>
#if CE_HAVE_OPENMP
#include <omp.h>
#endif

/* per-thread packing buffers (slot 0: A, slot 1: B, slot 2: an operand packed by the whole
 * team, owned by the calling thread), grown on demand and kept: a GEMM on
 * every training step must not pay malloc + page faults on every call */
static __thread void *ce_gemm_tls_buf[3];
static __thread size_t ce_gemm_tls_cap[3];

static void *ce_gemm_buf(int slot, size_t bytes) {
    if (bytes > ce_gemm_tls_cap[slot]) {
        free(ce_gemm_tls_buf[slot]);
        size_t cap = (bytes + 4095) & ~(size_t)4095;
        ce_gemm_tls_buf[slot] = aligned_alloc(4096, cap);
        ce_gemm_tls_cap[slot] = ce_gemm_tls_buf[slot] ? cap : 0;
    }
    return ce_gemm_tls_buf[slot];
}

static inline int64_t ce_min64(int64_t a, int64_t b) { return a < b ? a : b; }
/* element offset of product b of an (nb1, nb2) batch grid with strides s1 (outer), s2 (inner) */
static inline int64_t ce_boff(int64_t b, int64_t nb2, int64_t s1, int64_t s2) {
    return nb2 == 1 ? b * s1 : b / nb2 * s1 + b % nb2 * s2;
}
static inline int64_t ce_rup(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
/* split n into ceil(n/blk) near-equal blocks, each a multiple of `align` */
static inline int64_t ce_balance(int64_t n, int64_t blk, int64_t align) {
    int64_t nb = (n + blk - 1) / blk;
    if (nb < 1) nb = 1;
    return ce_rup((n + nb - 1) / nb, align);
}

/* work (M*N*K) below which a single product stays on one thread, and per extra thread */
#define CE_GEMM_MIN_WORK_PER_THREAD (1 << 20)
/* largest B (K*N*sizeof) read in place by the no-packing path */
#define CE_GEMM_DIRECT_B_BYTES (384 * 1024)
/* ... and only when A has at most this many rows */
#define CE_GEMM_DIRECT_B_MAX_M 96
/* team pre-pack: panels per work item (one walk along the source's contiguous direction) */
#define CE_GEMM_PREPACK_GROUP 8
/* a team pre-pack buffer above this size is freed after the call instead of kept */
#define CE_GEMM_PREPACK_KEEP_BYTES ((size_t)64 << 20)

#define GEMM_T float
#define GEMM_P(x) gemm_s_##x
#define GEMM_UKR_T ce_sukr_t
#define GEMM_ISA_CFG(isa, c)                                                                  \
    c.ukr2 = NULL; c.mr2 = 0; c.packbt = NULL; c.packa = NULL;                                 \
    switch (isa) {                                                                             \
    case CE_ISA_AVX512:                                                                        \
        c.ukr = ce_sgemm_ukr_avx512; c.mr = CE_SGEMM_MR_AVX512; c.nr = CE_SGEMM_NR_AVX512;     \
        c.ukr2 = ce_sgemm_ukr8_avx512; c.mr2 = 8; c.packbt = ce_spack_bt_avx512;               \
        c.kc = 384; c.mc = 1920; c.nc = 512; break;                                            \
    case CE_ISA_AVX2:                                                                          \
        c.ukr = ce_sgemm_ukr_avx2; c.mr = CE_SGEMM_MR_AVX2; c.nr = CE_SGEMM_NR_AVX2;           \
        c.kc = 384; c.mc = 1920; c.nc = 512; break;                                            \
    default:                                                                                   \
        c.ukr = ce_sgemm_ukr_generic; c.mr = CE_SGEMM_MR_GENERIC; c.nr = CE_SGEMM_NR_GENERIC;  \
        c.kc = 256; c.mc = 1024; c.nc = 512; break;                                            \
    }
#include "gemm_tmpl.h"
#undef GEMM_T
#undef GEMM_P
#undef GEMM_UKR_T
#undef GEMM_ISA_CFG

#define GEMM_T double
#define GEMM_P(x) gemm_d_##x
#define GEMM_UKR_T ce_dukr_t
#define GEMM_ISA_CFG(isa, c)                                                                  \
    c.ukr2 = NULL; c.mr2 = 0; c.packbt = NULL; c.packa = NULL;                                 \
    switch (isa) {                                                                             \
    case CE_ISA_AVX512:                                                                        \
        c.ukr = ce_dgemm_ukr_avx512; c.mr = CE_DGEMM_MR_AVX512; c.nr = CE_DGEMM_NR_AVX512;     \
        c.ukr2 = ce_dgemm_ukr8_avx512; c.mr2 = 8; c.packbt = ce_dpack_bt_avx512;               \
        c.packa = ce_dpack_a_avx512;                                                           \
        c.kc = 256; c.mc = 1920; c.nc = 512; break;                                            \
    case CE_ISA_AVX2:                                                                          \
        c.ukr = ce_dgemm_ukr_avx2; c.mr = CE_DGEMM_MR_AVX2; c.nr = CE_DGEMM_NR_AVX2;           \
        c.kc = 256; c.mc = 1920; c.nc = 512; break;                                            \
    default:                                                                                   \
        c.ukr = ce_dgemm_ukr_generic; c.mr = CE_DGEMM_MR_GENERIC; c.nr = CE_DGEMM_NR_GENERIC;  \
        c.kc = 256; c.mc = 1024; c.nc = 256; break;                                            \
    }
#include "gemm_tmpl.h"
#undef GEMM_T
#undef GEMM_P
#undef GEMM_UKR_T
#undef GEMM_ISA_CFG

/* ---- public entry points (contract: gemm.h) ---- */
void ce_sgemm(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
              const float *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, float beta,
              float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
              const float *bias, int64_t sbias) {
    gemm_s_gemm(nb1, nb2, M, N, K, alpha, A, sAb, sAb2, rsA, csA, B, sBb, sBb2, rsB, csB, beta,
                C, sCb, sCb2, rsC, csC, bias, sbias);
}

void ce_dgemm(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, double alpha,
              const double *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
              const double *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, double beta,
              double *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
              const double *bias, int64_t sbias) {
    gemm_d_gemm(nb1, nb2, M, N, K, alpha, A, sAb, sAb2, rsA, csA, B, sBb, sBb2, rsB, csB, beta,
                C, sCb, sCb2, rsC, csC, bias, sbias);
}

void ce_sgemm_ref(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                  const float *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, float beta,
                  float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                  const float *bias, int64_t sbias) {
    gemm_s_gemm_ref(nb1, nb2, M, N, K, alpha, A, sAb, sAb2, rsA, csA, B, sBb, sBb2, rsB, csB,
                    beta, C, sCb, sCb2, rsC, csC, bias, sbias);
}

void ce_dgemm_ref(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, double alpha,
                  const double *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                  const double *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                  double beta, double *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                  const double *bias, int64_t sbias) {
    gemm_d_gemm_ref(nb1, nb2, M, N, K, alpha, A, sAb, sAb2, rsA, csA, B, sBb, sBb2, rsB, csB,
                    beta, C, sCb, sCb2, rsC, csC, bias, sbias);
}
