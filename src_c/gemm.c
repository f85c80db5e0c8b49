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

/* ---- block sizes (gemm.h) ---- */

/* fixed block sizes per (dtype, ISA), used when the caches are unknown (measured on the first
 * development machines; AVX-512 and AVX2 on a 48 KiB L1d / 2 MiB L2 Xeon) */
static const ce_gemm_blocking_t ce_gemm_blk_fixed[2][3] = {
    {{256, 1024, 512}, {384, 1920, 512}, {384, 1920, 512}},
    {{256, 1024, 256}, {256, 1920, 512}, {256, 1920, 512}},
};
static ce_gemm_blocking_t ce_gemm_blk_default[2][3], ce_gemm_blk_cur[2][3];
static int ce_gemm_blk_default_src[2][3], ce_gemm_blk_src[2][3];
static int ce_gemm_blk_ready = 0;

/* bounds on any block size (the model on a huge or unknown cache must not ask for absurd
 * buffers): KC in [32, 2048], MC at most 4096 rows, NC at most 8192 columns */
#define CE_GEMM_KC_MIN 32
#define CE_GEMM_KC_MAX 2048
#define CE_GEMM_MC_MAX 4096
#define CE_GEMM_NC_MAX 8192

void ce_gemm_tile(int dtype, int isa, int *mr, int *nr) {
    static const int t[2][3][2] = {
        {{CE_SGEMM_MR_GENERIC, CE_SGEMM_NR_GENERIC}, {CE_SGEMM_MR_AVX2, CE_SGEMM_NR_AVX2},
         {CE_SGEMM_MR_AVX512, CE_SGEMM_NR_AVX512}},
        {{CE_DGEMM_MR_GENERIC, CE_DGEMM_NR_GENERIC}, {CE_DGEMM_MR_AVX2, CE_DGEMM_NR_AVX2},
         {CE_DGEMM_MR_AVX512, CE_DGEMM_NR_AVX512}},
    };
    dtype = dtype ? 1 : 0;
    isa = isa < 0 ? 0 : (isa > 2 ? 2 : isa);
    *mr = t[dtype][isa][0];
    *nr = t[dtype][isa][1];
}

static int64_t ce_gemm_clamp(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* The model, with this driver's roles: the kernel broadcasts A and loads B vectors, and its
 * innermost loop walks B micro-panels (KC x NR) past one A micro-panel (MR x KC). So (BLIS's
 * names in brackets, where A and B are the other way round):
 *  - L1 keeps the A micro-panel [B micro-panel] while B micro-panels stream through: of the
 *    W1 ways, one is left for C and other traffic, and the rest is split between the resident
 *    panel and one streaming panel in proportion to their widths, so B gets
 *    C_B = floor((W1 - 1) / (1 + MR/NR)) ways and KC = C_B * N1 * L1line / (NR * S)
 *    (N1 sets): the largest depth for which a B panel fills exactly its share.
 *  - L2 keeps the KC x NC block of B [MC x KC of A] beside one A micro-panel:
 *    C_A2 = ceil(MR * KC * S / (N2 * L2line)) ways for it, NC = (W2 - 1 - C_A2) * N2 * L2line
 *    / (KC * S), a multiple of NR.
 *  - L3 keeps the MC x KC block of A [KC x NC of B] beside the B block: MC = (W3 - 1 - C_B3) *
 *    N3 * L3line / (KC * S) with C_B3 = ceil(KC * NC * S / (N3 * L3line)), a multiple of MR;
 *    a shared L3 counts only this CPU's share (sets / sharing CPUs). When the B block leaves no
 *    room (a non-inclusive L3 smaller than L2 per core, as on recent Xeons) A gets the whole
 *    share; without an L3, MC only sets how often B blocks are repacked: 4 * L2 worth of A.
 * Unknown ways count as 8; a cache shared by several CPUs counts only its share of sets.
 *
 * Prefetching kernels (pf_rows > 0: the kernel prefetches the streamed B panel pf_rows rows
 * ahead, as the AVX-512 ones do): the streamed panel needs only its prefetch window in L1, not a
 * whole panel's share. With at most 8 L1 ways the split above leaves the resident A panel 2
 * ways at most (Zen 4, 32 KiB 8-way, fp32 12x32: KC = 160, A panel 7.5 KiB), so there the A
 * panel gets the ways that the window (win = ceil(pf_rows * NR * S / way) ways) and one way
 * for C leave, a = W1 - 1 - win: KC = a * N1 * L1line / (MR * S), with a lowered (down to
 * W1 / 2) until the L2 rule still gives NC >= 12 NR (Zen 4: a = 6, fp32 KC 512 NC 384, fp64
 * KC 256 NC 384; a 4-way 256 KiB L2 (Skylake client) never allows it: the model's KC).
 * History on Zen 4 (1 thread, CPU-time medians vs numpy in the same process): half the ways
 * (KC 336) beat the model's 160 (1536^3 0.99x vs 0.93x, 2048^3 1.00x vs 0.97x); once the
 * kernel prefetched its whole C tile (gemm_avx512.c), deeper K blocks, with fewer C updates,
 * won again: fp32 KC 512 NC 384 vs 336/576 +1-3% on 1024^3 and 2048^3 (1 and 2 threads),
 * fp64 KC 256 vs 168 +0-3%. With a split (2 x 256-bit) FMA a k step of the 12x32 kernel
 * takes 24 cycles, so an A panel partly refetched from L2 costs little. 12-way L1s (Intel,
 * Zen 5) keep the model's KC. */
static int64_t ce_gemm_nc_for(int64_t kc, const int64_t *way, const int64_t *W, int mr, int nr,
                              int64_t S) {
    int64_t CA2 = ((int64_t)mr * kc * S + way[1] - 1) / way[1];
    int64_t w2 = W[1] - 1 - CA2;
    if (w2 < 1) w2 = 1;
    return w2 * way[1] / (kc * S) / nr * nr;
}

int ce_gemm_derive_blocking(ce_gemm_blocking_t *out, const ce_cache_info_t *ci, int mr, int nr,
                            int elsize, int pf_rows) {
    if (!ci || ci->size[0] <= 0 || ci->size[1] <= 0 || mr <= 0 || nr <= 0 || elsize <= 0)
        return 0;
    int64_t way[3], W[3];   /* bytes per way (this CPU's share), ways */
    for (int L = 0; L < 3; L++) {
        W[L] = ci->ways[L] >= 2 ? ci->ways[L] : 8;
        int64_t sh = ci->shared[L] >= 1 ? ci->shared[L] : 1;
        way[L] = ci->size[L] / W[L] / (L == 0 ? 1 : sh);
    }
    const int64_t S = elsize;
    /* L1 -> KC */
    int64_t CB = (int64_t)((double)(W[0] - 1) / (1.0 + (double)mr / (double)nr));
    if (CB < 1) CB = 1;
    int64_t kc = CB * way[0] / ((int64_t)nr * S);
    kc = ce_gemm_clamp(kc / 8 * 8, CE_GEMM_KC_MIN, CE_GEMM_KC_MAX);
    if (pf_rows > 0 && W[0] <= 8) {   /* prefetching kernel, few L1 ways (see above) */
        const int64_t win = ((int64_t)pf_rows * nr * S + way[0] - 1) / way[0];
        for (int64_t a = W[0] - 1 - win; a >= W[0] / 2; a--) {   /* ways for the A panel */
            const int64_t kh = a * way[0] / ((int64_t)mr * S) / 8 * 8;
            if (kh > kc && kh <= CE_GEMM_KC_MAX &&
                ce_gemm_nc_for(kh, way, W, mr, nr, S) >= 12 * (int64_t)nr) {
                kc = kh;
                break;
            }
        }
    }
    /* L2 -> NC */
    int64_t nc = ce_gemm_nc_for(kc, way, W, mr, nr, S);
    nc = ce_gemm_clamp(nc, 2 * (int64_t)nr, CE_GEMM_NC_MAX / nr * nr);
    /* L3 -> MC */
    int64_t mc;
    if (ci->size[2] > 0 && way[2] > 0) {
        int64_t CB3 = (kc * nc * S + way[2] - 1) / way[2];
        int64_t w3 = W[2] - 1 - CB3;
        if (w3 * 2 < W[2] - 1) w3 = W[2] - 1;   /* no room beside B: A takes the share */
        mc = w3 * way[2] / (kc * S);
    } else {
        mc = 4 * ci->size[1] / (kc * S);
    }
    mc = ce_gemm_clamp(mc / mr * mr, 4 * (int64_t)mr, CE_GEMM_MC_MAX / mr * mr);
    out->kc = kc;
    out->mc = mc;
    out->nc = nc;
    return 1;
}

static void ce_gemm_blocking_init(void) {
    if (__atomic_load_n(&ce_gemm_blk_ready, __ATOMIC_ACQUIRE)) return;
    ce_cache_info_t ci;
    ce_cpu_caches(&ci);
    ce_gemm_blocking_t d[2][3];
    int src[2][3];
    for (int dt = 0; dt < 2; dt++)
        for (int isa = 0; isa < 3; isa++) {
            int mr, nr;
            ce_gemm_tile(dt, isa, &mr, &nr);
            if (ce_gemm_derive_blocking(&d[dt][isa], &ci, mr, nr, dt ? 8 : 4,
                                        isa == CE_ISA_AVX512 ? CE_GEMM_PF_ROWS_AVX512 : 0)) {
                src[dt][isa] = CE_GEMM_BLK_CACHES;
            } else {
                d[dt][isa] = ce_gemm_blk_fixed[dt][isa];
                src[dt][isa] = CE_GEMM_BLK_FIXED;
            }
        }
#pragma omp critical(ce_gemm_blocking)
    {
        if (!ce_gemm_blk_ready) {
            memcpy(ce_gemm_blk_default, d, sizeof d);
            memcpy(ce_gemm_blk_cur, d, sizeof d);
            memcpy(ce_gemm_blk_default_src, src, sizeof src);
            memcpy(ce_gemm_blk_src, src, sizeof src);
            __atomic_store_n(&ce_gemm_blk_ready, 1, __ATOMIC_RELEASE);
        }
    }
}

/* the block sizes a GEMM call uses (read once at its start) */
static void ce_gemm_cfg_blocking(int dtype, int isa, int64_t *kc, int64_t *mc, int64_t *nc) {
    ce_gemm_blocking_init();
    isa = isa < 0 ? 0 : (isa > 2 ? 2 : isa);
    /* each size read atomically: a concurrent ce_gemm_set_blocking may give a mix of old and
     * new sizes, which is still a valid blocking */
    const ce_gemm_blocking_t *b = &ce_gemm_blk_cur[dtype][isa];
    *kc = __atomic_load_n(&b->kc, __ATOMIC_RELAXED);
    *mc = __atomic_load_n(&b->mc, __ATOMIC_RELAXED);
    *nc = __atomic_load_n(&b->nc, __ATOMIC_RELAXED);
}

int ce_gemm_get_blocking(ce_gemm_blocking_t *out, int dtype, int isa) {
    if (dtype < 0 || dtype > 1 || isa < 0 || isa > 2) return -1;
    ce_gemm_blocking_init();
    int src;
#pragma omp critical(ce_gemm_blocking)
    {
        *out = ce_gemm_blk_cur[dtype][isa];
        src = ce_gemm_blk_src[dtype][isa];
    }
    return src;
}

int ce_gemm_set_blocking(int dtype, int isa, int64_t kc, int64_t mc, int64_t nc) {
    if (dtype < 0 || dtype > 1 || isa < 0 || isa > 2) return -1;
    ce_gemm_blocking_init();
    if (kc == 0 && mc == 0 && nc == 0) {
#pragma omp critical(ce_gemm_blocking)
        {
            ce_gemm_blocking_t d = ce_gemm_blk_default[dtype][isa];
            ce_gemm_blocking_t *b = &ce_gemm_blk_cur[dtype][isa];
            __atomic_store_n(&b->kc, d.kc, __ATOMIC_RELAXED);
            __atomic_store_n(&b->mc, d.mc, __ATOMIC_RELAXED);
            __atomic_store_n(&b->nc, d.nc, __ATOMIC_RELAXED);
            ce_gemm_blk_src[dtype][isa] = ce_gemm_blk_default_src[dtype][isa];
        }
        return 0;
    }
    int mr, nr;
    ce_gemm_tile(dtype, isa, &mr, &nr);
    if (kc < CE_GEMM_KC_MIN || kc > CE_GEMM_KC_MAX || mc < mr || mc > CE_GEMM_MC_MAX ||
        nc < nr || nc > CE_GEMM_NC_MAX)
        return -1;
#pragma omp critical(ce_gemm_blocking)
    {
        ce_gemm_blocking_t *b = &ce_gemm_blk_cur[dtype][isa];
        __atomic_store_n(&b->kc, kc / 8 * 8, __ATOMIC_RELAXED);
        __atomic_store_n(&b->mc, mc / mr * mr, __ATOMIC_RELAXED);
        __atomic_store_n(&b->nc, nc / nr * nr, __ATOMIC_RELAXED);
        ce_gemm_blk_src[dtype][isa] = CE_GEMM_BLK_SET;
    }
    return 0;
}

#define GEMM_T float
#define GEMM_P(x) gemm_s_##x
#define GEMM_UKR_T ce_sukr_t
#define GEMM_ISA_CFG(isa, c)                                                                  \
    c.ukr2 = NULL; c.mr2 = 0; c.packbt = NULL; c.packa = NULL;                                 \
    switch (isa) {                                                                             \
    case CE_ISA_AVX512:                                                                        \
        c.ukr = ce_sgemm_ukr_avx512; c.mr = CE_SGEMM_MR_AVX512; c.nr = CE_SGEMM_NR_AVX512;     \
        c.ukr2 = ce_sgemm_ukr8_avx512; c.mr2 = 8; c.packbt = ce_spack_bt_avx512;               \
        c.packa = ce_spack_a_avx512;                                                           \
        break;                                                                                 \
    case CE_ISA_AVX2:                                                                          \
        c.ukr = ce_sgemm_ukr_avx2; c.mr = CE_SGEMM_MR_AVX2; c.nr = CE_SGEMM_NR_AVX2;           \
        break;                                                                                 \
    default:                                                                                   \
        c.ukr = ce_sgemm_ukr_generic; c.mr = CE_SGEMM_MR_GENERIC; c.nr = CE_SGEMM_NR_GENERIC;  \
        break;                                                                                 \
    }                                                                                          \
    ce_gemm_cfg_blocking(0, isa, &c.kc, &c.mc, &c.nc);
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
        break;                                                                                 \
    case CE_ISA_AVX2:                                                                          \
        c.ukr = ce_dgemm_ukr_avx2; c.mr = CE_DGEMM_MR_AVX2; c.nr = CE_DGEMM_NR_AVX2;           \
        break;                                                                                 \
    default:                                                                                   \
        c.ukr = ce_dgemm_ukr_generic; c.mr = CE_DGEMM_MR_GENERIC; c.nr = CE_DGEMM_NR_GENERIC;  \
        break;                                                                                 \
    }                                                                                          \
    ce_gemm_cfg_blocking(1, isa, &c.kc, &c.mc, &c.nc);
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
