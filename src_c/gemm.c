/* gemm.c - GEMM driver: blocking, packing, threading, batched + strided entry points, and the
 * reference GEMM. The microkernels live in gemm_{avx512,avx2,generic}.c (contract: gemm.h).
 *
 * Orientation. A kernel computes an MR x NR tile of C with vectors along N (the contiguous
 * direction of a row-major C) and broadcasts of A. If C is column-major (or its column stride
 * is the larger one) the driver computes C^T = B^T A^T instead, so C is always written along
 * its smaller stride.
 *
 * Blocking (Goto/BLIS, loops from outside in):
 *   ic over M in blocks of MC   A block (MC x KC) packed into MR-row micro-panels; shared
 *   pc over K in blocks of KC   by all threads (they pack it together), lives in L3
 *   jc over N in blocks of NC   B block (KC x NC) packed into NR-column micro-panels, private
 *                               to each thread, lives in that core's L2
 *   ir over MC step MR          A micro-panel (MR x KC) stays in L1
 *   jr over NC step NR          B micro-panels stream from L2 through the kernel
 * Threads split N (each owns a column range and packs its own B blocks into its own L2);
 * when N is too narrow for that they split the micro-panel rows of the A block instead.
 * The K loop is never split, so results do not depend on the thread count.
 *
 * Small problems (one thread, B with unit column stride, B small enough for L2) skip B
 * packing: the kernel reads B rows in place (masked loads at the N edge) and only one A
 * micro-panel at a time is packed.
 * Batches of small products are spread over threads one whole product at a time; large
 * products are done one after another, each with all threads (one parallel region per call).
 *
 * This file includes itself twice (GEMM_T = float, double) to instantiate the typed driver.
 */
#ifndef GEMM_T

#include "gemm.h"
#include <stdlib.h>
#include <string.h>
#if CE_HAVE_OPENMP
#include <omp.h>
#endif

/* per-thread packing buffers (slot 0: A, slot 1: B), grown on demand and kept: a GEMM on
 * every training step must not pay malloc + page faults on every call */
static __thread void *ce_gemm_tls_buf[2];
static __thread size_t ce_gemm_tls_cap[2];

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
static inline int64_t ce_rup(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
/* split n into ceil(n/blk) near-equal blocks, each a multiple of `align` */
static inline int64_t ce_balance(int64_t n, int64_t blk, int64_t align) {
    int64_t nb = (n + blk - 1) / blk;
    if (nb < 1) nb = 1;
    return ce_rup((n + nb - 1) / nb, align);
}

/* work (M*N*K) below which a single product stays on one thread, and per extra thread */
#define CE_GEMM_MIN_WORK_PER_THREAD (48 * 48 * 48)
/* largest B (K*N*sizeof) read in place by the no-packing path */
#define CE_GEMM_DIRECT_B_BYTES (384 * 1024)

#define GEMM_T float
#define GEMM_P(x) ce_s##x
#define GEMM_UKR_T ce_sukr_t
#define GEMM_ISA_CFG(isa, c)                                                                  \
    switch (isa) {                                                                             \
    case CE_ISA_AVX512:                                                                        \
        c.ukr = ce_sgemm_ukr_avx512; c.mr = CE_SGEMM_MR_AVX512; c.nr = CE_SGEMM_NR_AVX512;     \
        c.kc = 384; c.mc = 1920; c.nc = 512; break;                                            \
    case CE_ISA_AVX2:                                                                          \
        c.ukr = ce_sgemm_ukr_avx2; c.mr = CE_SGEMM_MR_AVX2; c.nr = CE_SGEMM_NR_AVX2;           \
        c.kc = 384; c.mc = 1920; c.nc = 512; break;                                            \
    default:                                                                                   \
        c.ukr = ce_sgemm_ukr_generic; c.mr = CE_SGEMM_MR_GENERIC; c.nr = CE_SGEMM_NR_GENERIC;  \
        c.kc = 256; c.mc = 1024; c.nc = 512; break;                                            \
    }
#include "gemm.c"
#undef GEMM_T
#undef GEMM_P
#undef GEMM_UKR_T
#undef GEMM_ISA_CFG

#define GEMM_T double
#define GEMM_P(x) ce_d##x
#define GEMM_UKR_T ce_dukr_t
#define GEMM_ISA_CFG(isa, c)                                                                  \
    switch (isa) {                                                                             \
    case CE_ISA_AVX512:                                                                        \
        c.ukr = ce_dgemm_ukr_avx512; c.mr = CE_DGEMM_MR_AVX512; c.nr = CE_DGEMM_NR_AVX512;     \
        c.kc = 256; c.mc = 1920; c.nc = 512; break;                                            \
    case CE_ISA_AVX2:                                                                          \
        c.ukr = ce_dgemm_ukr_avx2; c.mr = CE_DGEMM_MR_AVX2; c.nr = CE_DGEMM_NR_AVX2;           \
        c.kc = 256; c.mc = 1920; c.nc = 512; break;                                            \
    default:                                                                                   \
        c.ukr = ce_dgemm_ukr_generic; c.mr = CE_DGEMM_MR_GENERIC; c.nr = CE_DGEMM_NR_GENERIC;  \
        c.kc = 256; c.mc = 1024; c.nc = 256; break;                                            \
    }
#include "gemm.c"

#else /* ------------------------------------------------------------------ typed template */

#define T GEMM_T
#define F(x) GEMM_P(x)

typedef struct {
    GEMM_UKR_T ukr;
    int mr, nr;
    int64_t kc, mc, nc;
} F(gemm_cfg_t);

/* one problem after the batch offset is applied */
typedef struct {
    int64_t M, N, K;
    T alpha, beta;
    const T *A; int64_t rsA, csA;
    const T *B; int64_t rsB, csB;
    T *C; int64_t rsC, csC;
} F(gemm_prob_t);

/* reference: C = alpha * A @ B + beta * C, accumulating in double */
void F(gemm_ref)(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha,
                 const T *A, int64_t sAb, int64_t rsA, int64_t csA,
                 const T *B, int64_t sBb, int64_t rsB, int64_t csB, T beta,
                 T *C, int64_t sCb, int64_t rsC, int64_t csC) {
    for (int64_t b = 0; b < batch; b++) {
        const T *a = A + b * sAb, *bb = B + b * sBb;
        T *c = C + b * sCb;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                if (alpha != 0)
                    for (int64_t p = 0; p < K; p++)
                        acc += (double)a[i * rsA + p * csA] * (double)bb[p * rsB + j * csB];
                T *cp = c + i * rsC + j * csC;
                T x = (T)(alpha * acc);
                *cp = beta != 0 ? x + beta * *cp : x;
            }
    }
}

/* A micro-panel: dst[p*MR + i] = A[i*rsA + p*csA] for i < m, zero for m <= i < MR */
static void F(pack_a)(T *CE_RESTRICT dst, const T *CE_RESTRICT A, int64_t rsA, int64_t csA,
                      int m, int64_t k, int MR) {
    if (rsA == 1 && m == MR) {
        for (int64_t p = 0; p < k; p++)
            for (int i = 0; i < MR; i++) dst[p * MR + i] = A[p * csA + i];
        return;
    }
    if (csA == 1) {
        /* row-major A: transpose blocks of 8 columns so reads stay sequential per row */
        int64_t p0 = 0;
        for (; p0 + 8 <= k; p0 += 8) {
            T *d = dst + p0 * MR;
            for (int i = 0; i < m; i++) {
                const T *a = A + i * rsA + p0;
                for (int q = 0; q < 8; q++) d[q * MR + i] = a[q];
            }
            for (int i = m; i < MR; i++)
                for (int q = 0; q < 8; q++) d[q * MR + i] = 0;
        }
        for (int64_t p = p0; p < k; p++) {
            for (int i = 0; i < m; i++) dst[p * MR + i] = A[i * rsA + p];
            for (int i = m; i < MR; i++) dst[p * MR + i] = 0;
        }
        return;
    }
    for (int64_t p = 0; p < k; p++) {
        for (int i = 0; i < m; i++) dst[p * MR + i] = A[i * rsA + p * csA];
        for (int i = m; i < MR; i++) dst[p * MR + i] = 0;
    }
}

/* B micro-panel: dst[p*NR + j] = B[p*rsB + j*csB] for j < n, zero for n <= j < NR */
static void F(pack_b)(T *CE_RESTRICT dst, const T *CE_RESTRICT B, int64_t rsB, int64_t csB,
                      int n, int64_t k, int NR) {
    if (csB == 1) {
        if (n == NR) {
            for (int64_t p = 0; p < k; p++) memcpy(dst + p * NR, B + p * rsB, NR * sizeof(T));
        } else {
            for (int64_t p = 0; p < k; p++) {
                for (int j = 0; j < n; j++) dst[p * NR + j] = B[p * rsB + j];
                for (int j = n; j < NR; j++) dst[p * NR + j] = 0;
            }
        }
        return;
    }
    if (rsB == 1) {
        /* column-major B (a transposed view): sequential reads down each column */
        for (int j = 0; j < n; j++) {
            const T *b = B + j * csB;
            for (int64_t p = 0; p < k; p++) dst[p * NR + j] = b[p];
        }
        for (int64_t p = 0; p < k; p++)
            for (int j = n; j < NR; j++) dst[p * NR + j] = 0;
        return;
    }
    for (int64_t p = 0; p < k; p++) {
        for (int j = 0; j < n; j++) dst[p * NR + j] = B[p * rsB + j * csB];
        for (int j = n; j < NR; j++) dst[p * NR + j] = 0;
    }
}

/* One product with packing, run by thread `tid` of `nt` (all nt threads call it together;
 * nt == 1 also works outside any parallel region). Ash: shared A-block buffer (mc*kc),
 * Bp: this thread's B-block buffer (kc*nc). */
static void F(gemm_packed)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, int tid, int nt,
                           T *Ash, T *Bp) {
    const int MR = cf->mr, NR = cf->nr;
    const int64_t M = pr->M, N = pr->N, K = pr->K;
    const int64_t MC = ce_balance(M, cf->mc, MR), KC = ce_balance(K, cf->kc, 8);
    /* N split across threads when every thread gets at least 2 micro-panels, else M split */
    const int nsplit = nt > 1 && N >= (int64_t)nt * NR * 2;
    int64_t n_lo = 0, n_hi = N;
    if (nsplit) ce_chunk(N, tid, nt, NR, &n_lo, &n_hi);
    const int64_t NC = n_hi > n_lo ? ce_balance(n_hi - n_lo, cf->nc, NR) : NR;

    for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = ce_min64(MC, M - ic);
        const int64_t npan = (mc + MR - 1) / MR;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = ce_min64(KC, K - pc);
            const T beta = pc == 0 ? pr->beta : (T)1;
            /* pack the A block together */
            int64_t plo, phi;
            ce_chunk(npan, tid, nt, 1, &plo, &phi);
            for (int64_t ip = plo; ip < phi; ip++)
                F(pack_a)(Ash + ip * MR * kc, pr->A + (ic + ip * MR) * pr->rsA + pc * pr->csA,
                          pr->rsA, pr->csA, (int)ce_min64(MR, mc - ip * MR), kc, MR);
            if (nt > 1) {
#pragma omp barrier
            }
            int64_t ir_lo = 0, ir_hi = npan;
            if (!nsplit) ce_chunk(npan, tid, nt, 1, &ir_lo, &ir_hi);
            if (ir_hi > ir_lo) {
                for (int64_t jc = n_lo; jc < n_hi; jc += NC) {
                    const int64_t nc = ce_min64(NC, n_hi - jc);
                    const int64_t jpan = (nc + NR - 1) / NR;
                    for (int64_t jp = 0; jp < jpan; jp++)
                        F(pack_b)(Bp + jp * NR * kc, pr->B + pc * pr->rsB + (jc + jp * NR) * pr->csB,
                                  pr->rsB, pr->csB, (int)ce_min64(NR, nc - jp * NR), kc, NR);
                    for (int64_t ip = ir_lo; ip < ir_hi; ip++) {
                        const int m = (int)ce_min64(MR, mc - ip * MR);
                        const T *ap = Ash + ip * MR * kc;
                        T *cr = pr->C + (ic + ip * MR) * pr->rsC;
                        for (int64_t jp = 0; jp < jpan; jp++) {
                            const int n = (int)ce_min64(NR, nc - jp * NR);
                            cf->ukr(kc, ap, Bp + jp * NR * kc, NR, cr + (jc + jp * NR) * pr->csC,
                                    pr->rsC, pr->csC, pr->alpha, beta, m, n);
                        }
                    }
                }
            }
            if (nt > 1) {
#pragma omp barrier
            }
        }
    }
}

/* buffer sizes (elements) the packed path needs */
static inline size_t F(abuf_elems)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr) {
    int64_t MC = ce_balance(pr->M, cf->mc, cf->mr), KC = ce_balance(pr->K, cf->kc, 8);
    return (size_t)(ce_rup(ce_min64(MC, pr->M), cf->mr) * ce_min64(KC, pr->K));
}
static inline size_t F(bbuf_elems)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr) {
    int64_t KC = ce_balance(pr->K, cf->kc, 8);
    return (size_t)(ce_rup(ce_min64(cf->nc + cf->nr, ce_rup(pr->N, cf->nr)), cf->nr) *
                    ce_min64(KC, pr->K));
}

/* small product on one thread: B read in place (csB == 1), one A micro-panel packed at a time */
static void F(gemm_direct)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, T *Ap) {
    const int MR = cf->mr, NR = cf->nr;
    const int64_t M = pr->M, N = pr->N, K = pr->K;
    const int64_t KC = ce_balance(K, cf->kc, 8);
    for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = ce_min64(KC, K - pc);
        const T beta = pc == 0 ? pr->beta : (T)1;
        for (int64_t i0 = 0; i0 < M; i0 += MR) {
            const int m = (int)ce_min64(MR, M - i0);
            F(pack_a)(Ap, pr->A + i0 * pr->rsA + pc * pr->csA, pr->rsA, pr->csA, m, kc, MR);
            const T *b = pr->B + pc * pr->rsB;
            T *c = pr->C + i0 * pr->rsC;
            for (int64_t j0 = 0; j0 < N; j0 += NR) {
                const int n = (int)ce_min64(NR, N - j0);
                cf->ukr(kc, Ap, b + j0, pr->rsB, c + j0 * pr->csC, pr->rsC, pr->csC, pr->alpha,
                        beta, m, n);
            }
        }
    }
}

/* one product on the calling thread with its own buffers (the unblocked loop if none) */
static void F(gemm_serial)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr) {
    if (pr->csB == 1 && (size_t)pr->K * (size_t)pr->N * sizeof(T) <= CE_GEMM_DIRECT_B_BYTES) {
        T *Ap = (T *)ce_gemm_buf(0, sizeof(T) * (size_t)cf->mr * (size_t)ce_min64(cf->kc * 2, pr->K));
        if (Ap) {
            F(gemm_direct)(cf, pr, Ap);
            return;
        }
    } else {
        T *Ap = (T *)ce_gemm_buf(0, sizeof(T) * F(abuf_elems)(cf, pr));
        T *Bp = Ap ? (T *)ce_gemm_buf(1, sizeof(T) * F(bbuf_elems)(cf, pr)) : NULL;
        if (Ap && Bp) {
            F(gemm_packed)(cf, pr, 0, 1, Ap, Bp);
            return;
        }
    }
    /* out of memory for packing buffers */
    F(gemm_ref)(1, pr->M, pr->N, pr->K, pr->alpha, pr->A, 0, pr->rsA, pr->csA, pr->B, 0, pr->rsB,
                pr->csB, pr->beta, pr->C, 0, pr->rsC, pr->csC);
}

static void F(scale_c)(T *C, int64_t rsC, int64_t csC, int64_t M, int64_t N, T beta) {
    for (int64_t i = 0; i < M; i++) {
        T *c = C + i * rsC;
        if (beta == 0) {
            if (csC == 1) memset(c, 0, (size_t)N * sizeof(T));
            else for (int64_t j = 0; j < N; j++) c[j * csC] = 0;
        } else if (beta != 1) {
            for (int64_t j = 0; j < N; j++) c[j * csC] *= beta;
        }
    }
}

void F(gemm)(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha,
             const T *A, int64_t sAb, int64_t rsA, int64_t csA,
             const T *B, int64_t sBb, int64_t rsB, int64_t csB, T beta,
             T *C, int64_t sCb, int64_t rsC, int64_t csC) {
    if (batch <= 0 || M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0) {
        for (int64_t b = 0; b < batch; b++) F(scale_c)(C + b * sCb, rsC, csC, M, N, beta);
        return;
    }
    /* write C along its smaller stride: C^T = B^T A^T when C is column-major */
    if (csC != 1 && (rsC == 1 || rsC < csC)) {
        int64_t t;
        const T *tp;
        t = M; M = N; N = t;
        tp = A; A = B; B = tp;
        t = sAb; sAb = sBb; sBb = t;
        int64_t nrsA = csB, ncsA = rsB, nrsB = csA, ncsB = rsA;
        rsA = nrsA; csA = ncsA; rsB = nrsB; csB = ncsB;
        t = rsC; rsC = csC; csC = t;
    }
    F(gemm_cfg_t) cf;
    GEMM_ISA_CFG(ce_isa, cf)

    F(gemm_prob_t) pr = {M, N, K, alpha, beta, A, rsA, csA, B, rsB, csB, C, rsC, csC};
    const int64_t work = M * N * K;
    const int ntmax = ce_get_num_threads();

    if (batch > 1 && ntmax > 1 && (work <= 128 * 128 * 128 || batch >= 4 * (int64_t)ntmax)) {
        /* many products: one whole product per thread at a time */
        int nt = ce_threads_for(work * batch, CE_GEMM_MIN_WORK_PER_THREAD);
        if (nt > batch) nt = (int)batch;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t b = 0; b < batch; b++) {
            F(gemm_prob_t) q = pr;
            q.A = A + b * sAb; q.B = B + b * sBb; q.C = C + b * sCb;
            F(gemm_serial)(&cf, &q);
        }
        return;
    }
    int nt = ce_threads_for(work, CE_GEMM_MIN_WORK_PER_THREAD);
    T *Ash = nt > 1 ? (T *)ce_gemm_buf(0, sizeof(T) * F(abuf_elems)(&cf, &pr)) : NULL;
    if (nt <= 1 || !Ash) {
        for (int64_t b = 0; b < batch; b++) {
            F(gemm_prob_t) q = pr;
            q.A = A + b * sAb; q.B = B + b * sBb; q.C = C + b * sCb;
            F(gemm_serial)(&cf, &q);
        }
        return;
    }
    int failed = 0; /* shared: set by a thread that cannot get its B buffer */
#pragma omp parallel num_threads(nt) shared(failed)
    {
#if CE_HAVE_OPENMP
        int tid = omp_get_thread_num(), ntr = omp_get_num_threads();
#else
        int tid = 0, ntr = 1;
#endif
        T *Bp = (T *)ce_gemm_buf(1, sizeof(T) * F(bbuf_elems)(&cf, &pr));
        if (!Bp) {
#pragma omp atomic write
            failed = 1;
        }
        /* all threads agree before entering the barriers of gemm_packed */
#pragma omp barrier
        int f;
#pragma omp atomic read
        f = failed;
        if (!f)
            for (int64_t b = 0; b < batch; b++) {
                F(gemm_prob_t) q = pr;
                q.A = A + b * sAb; q.B = B + b * sBb; q.C = C + b * sCb;
                F(gemm_packed)(&cf, &q, tid, ntr, Ash, Bp);
            }
    }
    if (failed) /* nothing was written: fall back to the unblocked loop */
        F(gemm_ref)(batch, M, N, K, alpha, A, sAb, rsA, csA, B, sBb, rsB, csB, beta, C, sCb,
                    rsC, csC);
}

#undef T
#undef F
#endif
