/* gemm_tmpl.h - the typed GEMM driver (blocking, packing, threading; see gemm.c), included by
 * gemm.c once per dtype with GEMM_T (float / double), GEMM_P(x) (the prefix of the static names
 * of that instance), GEMM_UKR_T (microkernel type) and GEMM_ISA_CFG (block sizes and kernels per
 * ISA) defined. It defines F(gemm) and F(gemm_ref), which gemm.c's public entry points call. */


#define T GEMM_T
#define F(x) GEMM_P(x)

typedef struct {
    GEMM_UKR_T ukr, ukr2;   /* ukr2: optional MR2-row kernel for in-place A (NULL if none) */
    int mr, nr, mr2;
    void (*packbt)(T *dst, const T *B, int64_t csB, int n, int64_t k); /* B^T pack or NULL */
    void (*packa)(T *dst, const T *A, int64_t rsA, int m, int64_t k);  /* row-major A pack */
    int64_t kc, mc, nc;
} F(gemm_cfg_t);

/* one problem after the batch offset is applied */
typedef struct {
    int64_t M, N, K;
    T alpha, beta;
    const T *A; int64_t rsA, csA;
    const T *B; int64_t rsB, csB;
    T *C; int64_t rsC, csC;
    const T *bias; int64_t sbias;   /* NULL, or added to C once: bias[j*sbias] (bias[i*sbias] */
    int bias_rows;                  /* when bias_rows, after the driver transposed C) */
} F(gemm_prob_t);

/* reference: C = alpha * A @ B + beta * C, accumulating in double */
static void F(gemm_ref)(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, T alpha,
                 const T *A, int64_t sA1, int64_t sA2, int64_t rsA, int64_t csA,
                 const T *B, int64_t sB1, int64_t sB2, int64_t rsB, int64_t csB, T beta,
                 T *C, int64_t sC1, int64_t sC2, int64_t rsC, int64_t csC,
                 const T *bias, int64_t sbias) {
    for (int64_t b = 0; b < nb1 * nb2; b++) {
        const T *a = A + ce_boff(b, nb2, sA1, sA2), *bb = B + ce_boff(b, nb2, sB1, sB2);
        T *c = C + ce_boff(b, nb2, sC1, sC2);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                if (alpha != 0)
                    for (int64_t p = 0; p < K; p++)
                        acc += (double)a[i * rsA + p * csA] * (double)bb[p * rsB + j * csB];
                T *cp = c + i * rsC + j * csC;
                T x = (T)(alpha * acc);
                x = beta != 0 ? x + beta * *cp : x;
                *cp = bias ? x + bias[j * sbias] : x;
            }
    }
}

/* copy n elements (a packed row). Written as a loop, and loop-to-memcpy conversion is off for
 * this file (pragma at the top): a libc memcpy call per packed row of 12 floats cost 17% of a
 * packed GEMM. */
static inline void F(copy_row)(T *CE_RESTRICT d, const T *CE_RESTRICT s, int n) {
    for (int i = 0; i < n; i++) d[i] = s[i];
}

/* A micro-panel: dst[p*MR + i] = A[i*rsA + p*csA] for i < m, zero for m <= i < MR */
static void F(pack_a)(T *CE_RESTRICT dst, const T *CE_RESTRICT A, int64_t rsA, int64_t csA,
                      int m, int64_t k, int MR) {
    if (rsA == 1 && m == MR) {
        for (int64_t p = 0; p < k; p++)
            F(copy_row)(dst + p * MR, A + p * csA, MR);
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
    /* (unit column stride is packed block-wide by F(pack_lines), never here) */
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

/* Whole-block packs for the unit-stride cases, walking the contiguous direction of the source
 * once: a B block with unit column stride is read row by row (nc contiguous elements, split
 * over the jpan panels), a column-major A block column by column, instead of re-walking the
 * block with a large stride once per panel. The column-major A block pack is used
 * for fp32 only: for fp64 (a column of 1024 doubles spread over 86 panels per k) it measured
 * slower than panel by panel (A^T B 1024^3, 1 thread: 46 vs 62-66 GFLOP/s). */
/* k lines of n contiguous elements, `ld` apart, into ceil(n/R) panels of R x k (zero-padded):
 * element i of line p goes to dst[(i/R)*R*k + p*R + i%R]. A B block (lines = rows, R = NR) or
 * a column-major A block (lines = columns, R = MR). */
static void F(pack_lines)(T *CE_RESTRICT dst, const T *CE_RESTRICT src, int64_t ld, int64_t n,
                          int64_t k, int R) {
    const int64_t full = n / R, rem = n - full * R;
    for (int64_t p = 0; p < k; p++) {
        const T *s = src + p * ld;
        T *d = dst + p * R;
        for (int64_t q = 0; q < full; q++) F(copy_row)(d + q * R * k, s + q * R, R);
        if (rem) {
            T *dd = d + full * R * k;
            for (int i = 0; i < rem; i++) dd[i] = s[full * R + i];
            for (int i = (int)rem; i < R; i++) dd[i] = 0;
        }
    }
}

static inline void F(pack_b_rows)(T *Bp, const T *B, int64_t rsB, int64_t nc, int64_t kc, int NR) {
    F(pack_lines)(Bp, B, rsB, nc, kc, NR);
}

static inline void F(pack_a_cols)(T *Ap, const T *A, int64_t csA, int64_t mc, int64_t kc, int MR) {
    F(pack_lines)(Ap, A, csA, mc, kc, MR);
}

/* A is read in place when row-major, unless its rows are a multiple of 4 KiB apart and N is
 * wide: then the MR rows of a micro-panel fall into the same L1 sets and evict each other while
 * B streams through, so it is packed. fp64 always (2048^2 loses ~20% in place); fp32 when
 * `team` says the whole team packs it once for all slices (fp32 256x1024 @ 1024x1024 on 2
 * threads: 2-6% faster), and on one thread when A has more rows than the small path takes
 * (Zen 4, 32 KiB 8-way L1d, 1 thread, packed vs in place: 1024^3 1.04 vs 0.91 x numpy, 2048^3
 * 0.92 vs 0.61, 256x1024 @ 1024x1024 1.06 vs 0.87, 128x1024 @ 1024x1024 1.11 vs 1.00; rows
 * 2 KiB or 3 KiB apart measured no gain from packing). */
static inline int F(a_inplace)(const F(gemm_prob_t) *pr, int NR, int team) {
    if (pr->csA != 1 || pr->rsA == 0) return 0;
    if ((sizeof(T) == 8 || team || pr->M > CE_GEMM_DIRECT_B_MAX_M) &&
        ((uint64_t)pr->rsA * sizeof(T)) % 4096 == 0 && pr->N > 4 * NR && pr->M > 64)
        return 0;
    return 1;
}

/* B is read in place (no packing) when it has unit column stride, its KC-row block is small
 * and A is short. Beyond a few A panels the pack costs a negligible share of the flops, while
 * in-place B rows a power-of-two apart share L1 sets and stream from L2 on every k step
 * (NN 1024^3 split in 256-column slices: 211 vs 279 GFLOP/s on 2 threads). */
static inline int F(b_inplace)(const F(gemm_prob_t) *pr, int64_t KC) {
    return pr->csB == 1 && pr->M <= CE_GEMM_DIRECT_B_MAX_M &&
           (size_t)KC * (size_t)pr->N * sizeof(T) <= CE_GEMM_DIRECT_B_BYTES;
}

/* buffer sizes (elements) of the packed A block and B block */
static inline size_t F(abuf_elems)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr) {
    int64_t MC = ce_balance(pr->M, cf->mc, cf->mr), KC = ce_balance(pr->K, cf->kc, 8);
    return (size_t)(ce_rup(ce_min64(MC, pr->M), cf->mr) * ce_min64(KC, pr->K));
}
static inline size_t F(bbuf_elems)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr) {
    int64_t NC = ce_balance(pr->N, cf->nc, cf->nr), KC = ce_balance(pr->K, cf->kc, 8);
    return (size_t)(ce_rup(ce_min64(NC, pr->N), cf->nr) * ce_min64(KC, pr->K));
}

/* Row panels of an M-row block for a kernel reading A in place: panels of MR rows, except
 * that up to two panels of MR2 (< MR) rows are used when that covers M with fewer kernel rows
 * (M = 32 -> 12+12+8 instead of 12+12+12). Returns the row count of panel starting at i0. */
static inline int F(panel_rows)(int64_t M, int64_t i0, int MR, int MR2, int *use2) {
    int64_t left = M - i0;
    if (MR2 <= 0 || left <= MR2) {
        *use2 = MR2 > 0 && left <= MR2;
        return (int)ce_min64(MR, left);
    }
    /* cost (kernel rows) of covering `left` with e panels of MR2 and the rest with MR */
    int best_e = 0;
    int64_t best = (left + MR - 1) / MR * MR;
    for (int e = 1; e <= 2; e++) {
        int64_t rest = left - (int64_t)e * MR2;
        if (rest < 0) break;
        int64_t cost = (rest + MR - 1) / MR * MR + (int64_t)e * MR2;
        if (cost < best) { best = cost; best_e = e; }
    }
    int64_t rest = left - (int64_t)best_e * MR2;
    if (best_e > 0 && rest <= 0) { *use2 = 1; return (int)ce_min64(MR2, left); }
    /* MR2 panels go last: take an MR panel while the rest still needs them */
    *use2 = 0;
    return (int)ce_min64(MR, rest > 0 ? rest : left);
}

/* Panels of a packed A block of mc rows: `head` rows in MR-row panels (the last one may be
 * partial), then the rest in MR2-row panels of the MR2-row kernel (packed MR2 wide), when that
 * covers mc with fewer kernel rows: M = 64 on a 12-row kernel is 12*4 + 8*2 = 64 rows of work
 * instead of 12*6 = 72. Returns head (mc when there are no MR2 panels). */
static inline int64_t F(a_head)(int64_t mc, int MR, int MR2) {
    if (MR2 <= 0) return mc;
    int64_t best = ce_rup(mc, MR), head = mc;
    for (int e = 1; e <= 2; e++) {
        if (mc - (int64_t)(e - 1) * MR2 <= 0) break;   /* an MR2 panel would be empty */
        const int64_t h = mc - (int64_t)e * MR2 > 0 ? mc - (int64_t)e * MR2 : 0;
        const int64_t cost = ce_rup(h, MR) + (int64_t)e * MR2;
        if (cost < best) { best = cost; head = h; }
    }
    return head;
}

/* pack rows [r0, r1) of A's K block at pc (kc deep) into W-row panels at dst (zero-padded) */
static void F(pack_a_part)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, T *dst, int64_t r0,
                           int64_t r1, int W, int64_t pc, int64_t kc) {
    const int64_t rsA = pr->rsA, csA = pr->csA;
    if (r1 <= r0) return;
    if (rsA == 1 && sizeof(T) == 4) {   /* column-major: walk columns (see pack_a_cols) */
        F(pack_a_cols)(dst, pr->A + r0 + pc * csA, csA, r1 - r0, kc, W);
        return;
    }
    for (int64_t r = r0; r < r1; r += W) {
        const int m = (int)ce_min64(W, r1 - r);
        T *d = dst + (r - r0) * kc;
        if (csA == 1 && cf->packa && W == cf->mr)
            cf->packa(d, pr->A + r * rsA + pc, rsA, m, kc);
        else
            F(pack_a)(d, pr->A + r * rsA + pc * csA, rsA, csA, m, kc, W);
    }
}

/* Bias epilogue, applied to a C tile just before its first K block's kernel call (which then
 * runs with beta = 1), while the tile is about to be in L1 anyway: C = beta*C + bias, with the
 * bias along the tile's columns (bias[j*s]) or, when bias_rows, its rows (bias[i*s]). This
 * replaces a separate pass writing the bias over all of C before the product. */
static void F(fill_bias)(T *CE_RESTRICT C, int64_t rsC, int64_t csC, int m, int n,
                         const T *CE_RESTRICT bias, int64_t s, int bias_rows, T beta) {
    for (int i = 0; i < m; i++) {
        T *c = C + i * rsC;
        if (bias_rows) {
            const T bv = bias[i * s];
            for (int j = 0; j < n; j++) c[j * csC] = beta == 0 ? bv : beta * c[j * csC] + bv;
        } else if (csC == 1 && s == 1 && beta == 0) {
            for (int j = 0; j < n; j++) c[j] = bias[j];
        } else {
            for (int j = 0; j < n; j++) c[j * csC] = beta == 0 ? bias[j * s] : beta * c[j * csC] + bias[j * s];
        }
    }
}

/* One product on the calling thread (Goto/BLIS loops, see the top of this file).
 * B is read in place when `b_inplace` (see F(b_inplace)), else packed into Bp (kc*nc), or
 * taken from Bpre when the team packed it already. A is read in place when a_inplace() says
 * so, else packed into Ap (mc*kc), or taken from Apre when the team packed it already. */
static void F(gemm_blocked)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, int b_inplace,
                            T *Ap, T *Bp, const T *Apre, const T *Bpre) {
    const int MR = cf->mr, NR = cf->nr, MR2 = cf->ukr2 ? cf->mr2 : 0;
    const int64_t M = pr->M, N = pr->N, K = pr->K;
    const int64_t KC = ce_balance(K, cf->kc, 8);
    const int64_t NC = b_inplace ? N : ce_balance(N, cf->nc, NR);
    const int a_inplace = Apre ? 0 : F(a_inplace)(pr, cf->nr, 0);
    const int64_t MC = a_inplace ? M : ce_balance(M, cf->mc, MR);
    const int64_t rsA = pr->rsA, csA = pr->csA, rsB = pr->rsB, csB = pr->csB;
    const int64_t rsC = pr->rsC, csC = pr->csC;

    for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = ce_min64(MC, M - ic);
        /* packed A: nhead MR-row panels for the first `head` rows, then ntail MR2-row ones */
        const int64_t head = F(a_head)(mc, MR, MR2);
        const int64_t nhead = (head + MR - 1) / MR;
        const int64_t ntail = MR2 > 0 ? (mc - head + MR2 - 1) / MR2 : 0;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = ce_min64(KC, K - pc);
            const T beta = pc == 0 && !pr->bias ? pr->beta : (T)1;
            const int fill = pc == 0 && pr->bias != NULL;
            if (Apre) {   /* packed by the team already (F(prepack_a)) */
                Ap = (T *)Apre + ic * K + ce_rup(mc, MR) * pc;
            } else if (!a_inplace) {
                F(pack_a_part)(cf, pr, Ap, ic, ic + head, MR, pc, kc);
                F(pack_a_part)(cf, pr, Ap + nhead * MR * kc, ic + head, ic + mc, MR2, pc, kc);
            }
            for (int64_t jc = 0; jc < N; jc += NC) {
                const int64_t nc = ce_min64(NC, N - jc);
                const int64_t jpan = (nc + NR - 1) / NR;
                const T *bblk = pr->B + pc * rsB + jc * csB;
                int64_t rsb = rsB;
                if (Bpre) {   /* packed by the team already (F(prepack_b)) */
                    Bp = (T *)Bpre + pc * ce_rup(N, NR) + jc * kc;
                    rsb = NR;
                } else if (!b_inplace && rsB == 1 && cf->packbt) {
                    for (int64_t jp = 0; jp < jpan; jp++)
                        cf->packbt(Bp + jp * NR * kc, bblk + jp * NR * csB, csB,
                                   (int)ce_min64(NR, nc - jp * NR), kc);
                    rsb = NR;
                } else if (!b_inplace && csB == 1) {
                    F(pack_b_rows)(Bp, bblk, rsB, nc, kc, NR);
                    rsb = NR;
                } else if (!b_inplace) {
                    for (int64_t jp = 0; jp < jpan; jp++)
                        F(pack_b)(Bp + jp * NR * kc, bblk + jp * NR * csB, rsB, csB,
                                  (int)ce_min64(NR, nc - jp * NR), kc, NR);
                    rsb = NR;
                }
                if (a_inplace) {
                    const T *ablk = pr->A + ic * rsA + pc;
                    int64_t i0 = 0;
                    while (i0 < mc) {
                        int use2;
                        const int m = F(panel_rows)(mc, i0, MR, cf->ukr2 ? cf->mr2 : 0, &use2);
                        GEMM_UKR_T ukr = use2 ? cf->ukr2 : cf->ukr;
                        T *cr = pr->C + (ic + i0) * rsC + jc * csC;
                        for (int64_t jp = 0; jp < jpan; jp++) {
                            const int n = (int)ce_min64(NR, nc - jp * NR);
                            const T *bp = b_inplace ? bblk + jp * NR : Bp + jp * NR * kc;
                            if (fill)
                                F(fill_bias)(cr + jp * NR * csC, rsC, csC, m, n, pr->bias +
                                             (pr->bias_rows ? ic + i0 : jc + jp * NR) * pr->sbias,
                                             pr->sbias, pr->bias_rows, pr->beta);
                            ukr(kc, ablk + i0 * rsA, rsA, bp, rsb, cr + jp * NR * csC, rsC, csC,
                                pr->alpha, beta, m, n);
                        }
                        i0 += m;
                    }
                } else {
                    for (int64_t ip = 0; ip < nhead + ntail; ip++) {
                        const int tail = ip >= nhead;
                        const int64_t i0 = tail ? head + (ip - nhead) * MR2 : ip * MR;
                        const int m = (int)ce_min64(tail ? MR2 : MR, (tail ? mc : head) - i0);
                        const T *ap = Ap + (tail ? nhead * MR + (ip - nhead) * MR2 : i0) * kc;
                        GEMM_UKR_T ukr = tail ? cf->ukr2 : cf->ukr;
                        T *cr = pr->C + (ic + i0) * rsC + jc * csC;
                        /* the next A panel (it follows this one in Ap) is prefetched into
                         * L2 a part per B panel: a packed A block larger than L2 (2048^3: 4
                         * MiB) is otherwise read from L3 by the first kernel call on each
                         * panel (Zen 4, 1 thread: 2048^3 +2-3% at NC 384 and at 1152; 1024^3
                         * and the training shapes unchanged) */
                        const char *na = (const char *)(ap + (tail ? MR2 : MR) * kc);
                        const int64_t nab = ip + 1 < nhead + ntail ? (int64_t)sizeof(T) * kc *
                                            (ip + 1 < nhead ? MR : MR2) : 0;
                        for (int64_t jp = 0; jp < jpan; jp++) {
                            const int n = (int)ce_min64(NR, nc - jp * NR);
                            const T *bp = b_inplace ? bblk + jp * NR : Bp + jp * NR * kc;
                            if (fill)
                                F(fill_bias)(cr + jp * NR * csC, rsC, csC, m, n, pr->bias +
                                             (pr->bias_rows ? ic + i0 : jc + jp * NR) *
                                             pr->sbias, pr->sbias, pr->bias_rows, pr->beta);
                            for (int64_t o = (nab * jp / jpan) & ~(int64_t)63;
                                 o < nab * (jp + 1) / jpan; o += 64)
                                __builtin_prefetch(na + o, 0, 2);
                            ukr(kc, ap, 0, bp, rsb, cr + jp * NR * csC, rsC, csC, pr->alpha,
                                beta, m, n);
                        }
                    }
                }
            }
        }
    }
}

/* Team packing of the operand that every slice of one product shares (called by each thread of
 * a parallel region; the orphaned loop splits the panels, and its barrier ends the phase). The
 * layout is the one F(gemm_blocked) walks: A block (ic, pc) at Apre + ic*K + rup(mc, MR)*pc,
 * B block (pc, jc) at Bpre + pc*rup(N, NR) + jc*kc, panels MR*kc / NR*kc apart inside a block. */
static void F(prepack_a)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, T *Apre) {
    const int MR = cf->mr, MR2 = cf->ukr2 ? cf->mr2 : 0;
    const int64_t M = pr->M, K = pr->K, KC = ce_balance(K, cf->kc, 8);
    const int64_t MC = ce_balance(M, cf->mc, MR), GR = CE_GEMM_PREPACK_GROUP * MR;
    /* work items: (K block, MC block, group of up to 8 MR panels of its head, or its MR2 tail:
     * the item after the last group) */
    const int64_t nkb = (K + KC - 1) / KC, gpb = (MC + GR - 1) / GR + 1, nb = (M + MC - 1) / MC;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < nkb * nb * gpb; t++) {
        const int64_t pc = (t / (nb * gpb)) * KC, kc = ce_min64(KC, K - pc);
        const int64_t ic = ((t / gpb) % nb) * MC, mc = ce_min64(MC, M - ic), g = t % gpb;
        const int64_t head = F(a_head)(mc, MR, MR2);
        T *blk = Apre + ic * K + ce_rup(mc, MR) * pc;
        if (g == gpb - 1) {   /* the MR2 tail, after the head's panels */
            F(pack_a_part)(cf, pr, blk + (head + MR - 1) / MR * MR * kc, ic + head, ic + mc, MR2,
                           pc, kc);
            continue;
        }
        const int64_t r0 = g * GR;
        if (r0 >= head) continue;
        F(pack_a_part)(cf, pr, blk + r0 * kc, ic + r0, ic + ce_min64(r0 + GR, head), MR, pc, kc);
    }
}

static void F(prepack_b)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, T *Bpre) {
    const int NR = cf->nr;
    const int64_t N = pr->N, K = pr->K, KC = ce_balance(K, cf->kc, 8);
    const int64_t GC = CE_GEMM_PREPACK_GROUP * NR;
    /* work items: (K block, group of up to 8 panels); panel c0 of K block pc lies at
     * pc*rup(N, NR) + c0*kc whichever NC block holds it */
    const int64_t ng = (N + GC - 1) / GC, nkb = (K + KC - 1) / KC;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < nkb * ng; t++) {
        const int64_t pc = (t / ng) * KC, kc = ce_min64(KC, K - pc);
        const int64_t c0 = (t % ng) * GC, cols = ce_min64(GC, N - c0);
        T *dst = Bpre + pc * ce_rup(N, NR) + c0 * kc;
        const T *src = pr->B + pc * pr->rsB + c0 * pr->csB;
        if (pr->csB == 1 && !(pr->rsB == 1 && cf->packbt)) {   /* walk rows (see pack_b_rows) */
            F(pack_b_rows)(dst, src, pr->rsB, cols, kc, NR);
            continue;
        }
        for (int64_t c = 0; c < cols; c += NR) {
            const int n = (int)ce_min64(NR, cols - c);
            if (pr->rsB == 1 && cf->packbt)
                cf->packbt(dst + c * kc, src + c * pr->csB, pr->csB, n, kc);
            else
                F(pack_b)(dst + c * kc, src + c * pr->csB, pr->rsB, pr->csB, n, kc, NR);
        }
    }
}

/* one product on the calling thread with its own buffers (the unblocked loop if none) */
static void F(gemm_serial)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, const T *Apre,
                           const T *Bpre) {
    const int64_t KC = ce_min64(ce_balance(pr->K, cf->kc, 8), pr->K);
    const int b_inplace = Bpre ? 0 : F(b_inplace)(pr, KC);
    const int a_inplace = Apre ? 0 : F(a_inplace)(pr, cf->nr, 0);
    T *Ap = NULL, *Bp = NULL;
    int ok = 1;
    if (!a_inplace && !Apre)
        ok = (Ap = (T *)ce_gemm_buf(0, sizeof(T) * F(abuf_elems)(cf, pr))) != NULL;
    if (ok && !b_inplace && !Bpre)
        ok = (Bp = (T *)ce_gemm_buf(1, sizeof(T) * F(bbuf_elems)(cf, pr))) != NULL;
    if (ok) {
        F(gemm_blocked)(cf, pr, b_inplace, Ap, Bp, Apre, Bpre);
        return;
    }
    /* out of memory for packing buffers */
    if (pr->bias_rows) {   /* the reference adds a bias along N: run the product transposed */
        F(gemm_ref)(1, 1, pr->N, pr->M, pr->K, pr->alpha, pr->B, 0, 0, pr->csB, pr->rsB, pr->A, 0,
                    0, pr->csA, pr->rsA, pr->beta, pr->C, 0, 0, pr->csC, pr->rsC, pr->bias,
                    pr->sbias);
        return;
    }
    F(gemm_ref)(1, 1, pr->M, pr->N, pr->K, pr->alpha, pr->A, 0, 0, pr->rsA, pr->csA, pr->B, 0, 0,
                pr->rsB, pr->csB, pr->beta, pr->C, 0, 0, pr->rsC, pr->csC, pr->bias, pr->sbias);
}

static void F(scale_c)(T *C, int64_t rsC, int64_t csC, int64_t M, int64_t N, T beta,
                       const T *bias, int64_t sbias) {
    for (int64_t i = 0; i < M; i++) {
        T *c = C + i * rsC;
        if (beta == 0) {
            if (csC == 1) memset(c, 0, (size_t)N * sizeof(T));
            else for (int64_t j = 0; j < N; j++) c[j * csC] = 0;
        } else if (beta != 1) {
            for (int64_t j = 0; j < N; j++) c[j * csC] *= beta;
        }
        if (bias)
            for (int64_t j = 0; j < N; j++) c[j * csC] += bias[j * sbias];
    }
}

/* Small products (the batched attention / bmm shapes: 32^3, 64^3, in any layout): at most
 * CE_GEMM_DIRECT_B_MAX_M rows, at most CE_GEMM_SMALL_MAX_K deep (and one K block), B (packed
 * NR wide) within CE_GEMM_DIRECT_B_BYTES, no bias. The row-panel plan is made once for the
 * whole batch, and each product is only its kernel calls: no K blocks, none of the blocked
 * driver's per-product set-up. A row-major A and a B with unit column stride are read in
 * place (F(a_inplace), F(b_inplace)), and so are the full row panels of a column-major A
 * (a transposed view: the kernel walks its columns, lda < 0); otherwise (the last, partial
 * panel of a column-major A, other strided views, B^T) each thread packs, per product, one A
 * row panel at a time (it stays in L1 for that panel's kernel calls) and the whole of B into
 * its own buffers; a B shared by consecutive products (a broadcast batch) is packed once.
 * Packing a column-major A measured 26% slower than reading it in place (8 x 64^3 A^T @ B,
 * fp32, 1 thread). */
#define CE_GEMM_SMALL_MAX_K 512
static inline int F(small_ok)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr) {
    /* K within one K block: the blocked driver makes the same kernel calls on the same
     * operands (in place or packed, the kernel sums each element in the same order), so which
     * of the two runs a product never changes its result */
    return !pr->bias && pr->K <= CE_GEMM_SMALL_MAX_K && pr->K <= cf->kc &&
           pr->M <= CE_GEMM_DIRECT_B_MAX_M &&
           (size_t)pr->K * (size_t)ce_rup(pr->N, cf->nr) * sizeof(T) <= CE_GEMM_DIRECT_B_BYTES;
}

/* the row panels (first row, rows, MR2 kernel) of an M-row A; returns their count */
static int F(small_plan)(const F(gemm_cfg_t) *cf, int64_t M, int64_t *i0s, int *ms, int *use2s) {
    int np = 0;
    for (int64_t i0 = 0; i0 < M;) {
        int use2;
        const int m = F(panel_rows)(M, i0, cf->mr, cf->ukr2 ? cf->mr2 : 0, &use2);
        i0s[np] = i0; ms[np] = m; use2s[np] = use2; np++;
        i0 += m;
    }
    return np;
}

/* Prefetch plan of one operand of the small path: `np` parts (one per row panel) of an R x L
 * operand, rows rs apart with unit column stride (a transposed view, rs == 1, is walked by its
 * columns). Part r covers rows [bnd[r], bnd[r+1]) of L elements, or, when the rows are
 * contiguous (rs == L: one flat range), elements [bnd[r], bnd[r+1]) of it. */
typedef struct {
    int on, flat;
    int64_t rs, len, bnd[CE_GEMM_DIRECT_B_MAX_M + 1];
} F(pf_plan_t);

/* per-thread state of the small path: how A and B are read, packing buffers (NULL when read
 * in place) and the B the buffer holds now */
typedef struct {
    int np;
    const int64_t *i0s;
    const int *ms, *use2s;
    int a_in, b_in;
    T *Ap, *Bp;
    const T *Bpacked;
    const F(pf_plan_t) *pf;   /* prefetch plans of A, B, C */
} F(small_t);

/* B (K,N) into NR-wide panels Bp[jp*NR*K + p*NR + j], zero-padded (as the blocked driver) */
static void F(small_pack_b)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, T *Bp, const T *B) {
    const int NR = cf->nr;
    const int64_t N = pr->N, K = pr->K;
    if (pr->csB == 1) {
        F(pack_b_rows)(Bp, B, pr->rsB, N, K, NR);
        return;
    }
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
        const int n = (int)ce_min64(NR, N - j0);
        if (pr->rsB == 1 && cf->packbt)
            cf->packbt(Bp + j0 * K, B + j0 * pr->csB, pr->csB, n, K);
        else
            F(pack_b)(Bp + j0 * K, B + j0 * pr->csB, pr->rsB, pr->csB, n, K, NR);
    }
}

static void F(pf_plan)(F(pf_plan_t) *pl, int64_t rs, int64_t cs, int64_t R, int64_t L, int np,
                      int on) {
    if (cs != 1) {
        pl->on = on && rs == 1;
        const int64_t t = R; R = L; L = t;
        rs = cs;
    } else {
        pl->on = on;
    }
    pl->flat = rs == L;
    pl->rs = rs;
    pl->len = pl->flat ? R * L : L;
    const int64_t n = pl->flat ? R * L : R;
    for (int r = 0; r <= np; r++) pl->bnd[r] = n * r / np;
}

/* prefetch part r of plan pl of the operand at p into L2 (for writing when w) */
static inline void F(pf_part)(const F(pf_plan_t) *pl, const T *p, int r, int w) {
    if (!pl->on) return;
    const int64_t lo = pl->bnd[r], hi = pl->bnd[r + 1];
    const int64_t nrow = pl->flat ? (hi > lo) : hi - lo;
    for (int64_t q = 0; q < nrow; q++) {
        const T *row = pl->flat ? p + lo : p + (lo + q) * pl->rs;
        const int64_t len = pl->flat ? hi - lo : pl->len;
        const uintptr_t e = (uintptr_t)(row + len) - 1;
        for (uintptr_t a = (uintptr_t)row & ~(uintptr_t)63; a <= e; a += 64) {
            if (w) __builtin_prefetch((const void *)a, 1, 2);
            else __builtin_prefetch((const void *)a, 0, 2);
        }
    }
}

/* one small product: C (M,N) = alpha * A (M,K) @ B (K,N) + beta * C; An, Bn, Cn: the next
 * product's operands, prefetched a part per row panel (An == NULL: none) */
static inline void F(gemm_small_one)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr,
                                     F(small_t) *st, const T *A, const T *B, T *C,
                                     const T *An, const T *Bn, const T *Cn) {
    const int NR = cf->nr;
    const int64_t N = pr->N, K = pr->K;
    const T *bsrc = B;
    int64_t rsb = pr->rsB, bstep = NR;   /* B panel jp at bsrc + jp*bstep, rows rsb apart */
    if (!st->b_in) {
        if (st->Bpacked != B) {
            F(small_pack_b)(cf, pr, st->Bp, B);
            st->Bpacked = B;
        }
        bsrc = st->Bp;
        rsb = NR;
        bstep = (int64_t)NR * K;
    }
    for (int r = 0; r < st->np; r++) {
        const int use2 = st->use2s[r], m = st->ms[r];
        GEMM_UKR_T ukr = use2 ? cf->ukr2 : cf->ukr;
        const int64_t i0 = st->i0s[r];
        const T *a = A + i0 * pr->rsA;
        int64_t lda = pr->rsA;
        if (!st->a_in && pr->rsA == 1 && pr->csA > 0 && m == (use2 ? cf->mr2 : cf->mr)) {
            /* a full panel of a column-major A: its columns are the kernel's packed panel
             * columns already, csA apart (lda < 0, gemm.h) */
            lda = -pr->csA;
        } else if (!st->a_in) {
            /* this panel, W = its kernel's rows wide (the 8-row kernel reads 8-wide panels) */
            F(gemm_prob_t) q = *pr;
            q.A = A;
            F(pack_a_part)(cf, &q, st->Ap, i0, i0 + m, use2 ? cf->mr2 : cf->mr, 0, K);
            a = st->Ap;
            lda = 0;
        }
        if (An) {
            F(pf_part)(&st->pf[0], An, r, 0);
            if (Bn != B) F(pf_part)(&st->pf[1], Bn, r, 0);
            F(pf_part)(&st->pf[2], Cn, r, 1);
        }
        T *c = C + i0 * pr->rsC;
        for (int64_t jp = 0; jp * NR < N; jp++)
            ukr(K, a, lda, bsrc + jp * bstep, rsb, c + jp * NR * pr->csC, pr->rsC, pr->csC,
                pr->alpha, pr->beta, m, (int)ce_min64(NR, N - jp * NR));
    }
}

/* products [lo, hi) of the batch on the calling thread, each prefetching the next */
static void F(gemm_small_run)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, F(small_t) *st,
                              int64_t lo, int64_t hi, int64_t nb2, int64_t sAb, int64_t sAb2,
                              int64_t sBb, int64_t sBb2, int64_t sCb, int64_t sCb2) {
    for (int64_t b = lo; b < hi; b++) {
        const int nx = b + 1 < hi;
        F(gemm_small_one)(cf, pr, st, pr->A + ce_boff(b, nb2, sAb, sAb2),
                          pr->B + ce_boff(b, nb2, sBb, sBb2), pr->C + ce_boff(b, nb2, sCb, sCb2),
                          nx ? pr->A + ce_boff(b + 1, nb2, sAb, sAb2) : NULL,
                          nx ? pr->B + ce_boff(b + 1, nb2, sBb, sBb2) : NULL,
                          nx ? pr->C + ce_boff(b + 1, nb2, sCb, sCb2) : NULL);
    }
}

/* Runs the batch (returns 1), or returns 0 without touching C when a packing buffer cannot be
 * had on the calling thread; a worker thread without its buffers runs its products on the
 * reference instead. */
static int F(gemm_small)(const F(gemm_cfg_t) *cf, const F(gemm_prob_t) *pr, int64_t batch,
                         int64_t nb2, int64_t sAb, int64_t sAb2, int64_t sBb, int64_t sBb2,
                         int64_t sCb, int64_t sCb2, int nt) {
    int64_t i0s[CE_GEMM_DIRECT_B_MAX_M];
    int ms[CE_GEMM_DIRECT_B_MAX_M], use2s[CE_GEMM_DIRECT_B_MAX_M];
    const int np = F(small_plan)(cf, pr->M, i0s, ms, use2s);
    /* Prefetch the next product only for products of 32 KiB or more in a batch beyond 4 L2s
     * (from L3 or memory): fp32 1 thread, 256 x 64^3 76 -> 50 GFLOP/s without it, and it cost
     * 5-10% on batches that L2 or L3 keeps (64 x 64^3) and on 32^3 products (1024 x 32^3),
     * whose short contiguous operands the hardware prefetchers follow. */
    ce_cache_info_t ci;
    ce_cpu_caches(&ci);
    const double l2 = ci.size[1] > 0 ? (double)ci.size[1] : (double)(1 << 20);
    const double per = (double)sizeof(T) * ((double)pr->M * (double)pr->K +
                                            (double)pr->K * (double)pr->N +
                                            (double)pr->M * (double)pr->N);
    const int pf_on = per >= 32768.0 && per * (double)batch > 4.0 * l2;
    F(pf_plan_t) pf[3];
    F(pf_plan)(&pf[0], pr->rsA, pr->csA, pr->M, pr->K, np, pf_on);
    F(pf_plan)(&pf[1], pr->rsB, pr->csB, pr->K, pr->N, np, pf_on);
    F(pf_plan)(&pf[2], pr->rsC, pr->csC, pr->M, pr->N, np, pf_on);
    const int a_in = F(a_inplace)(pr, cf->nr, 0), b_in = F(b_inplace)(pr, pr->K);
    const size_t abytes = a_in ? 0 : sizeof(T) * (size_t)cf->mr * (size_t)pr->K;
    const size_t bbytes = b_in ? 0 : sizeof(T) * (size_t)ce_rup(pr->N, cf->nr) * (size_t)pr->K;
    if (nt > batch) nt = (int)batch;
    if (nt <= 1) {
        F(small_t) st = {np, i0s, ms, use2s, a_in, b_in, NULL, NULL, NULL, pf};
        if ((abytes && !(st.Ap = (T *)ce_gemm_buf(0, abytes))) ||
            (bbytes && !(st.Bp = (T *)ce_gemm_buf(1, bbytes))))
            return 0;
        F(gemm_small_run)(cf, pr, &st, 0, batch, nb2, sAb, sAb2, sBb, sBb2, sCb, sCb2);
        return 1;
    }
    /* contiguous chunks of products, about 1/8 of a thread's share each, handed out
     * dynamically (inside a chunk the next product is prefetched) */
    int64_t chunk = batch / ((int64_t)nt * 8);
    if (chunk < 1) chunk = 1;
    const int64_t nchunks = (batch + chunk - 1) / chunk;
#pragma omp parallel num_threads(nt)
    {
        F(small_t) st = {np, i0s, ms, use2s, a_in, b_in, NULL, NULL, NULL, pf};
        int ok = 1;
        if (abytes) ok = (st.Ap = (T *)ce_gemm_buf(0, abytes)) != NULL;
        if (ok && bbytes) ok = (st.Bp = (T *)ce_gemm_buf(1, bbytes)) != NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < nchunks; ch++) {
            const int64_t lo = ch * chunk, hi = ce_min64(batch, lo + chunk);
            if (ok) {
                F(gemm_small_run)(cf, pr, &st, lo, hi, nb2, sAb, sAb2, sBb, sBb2, sCb, sCb2);
                continue;
            }
            for (int64_t b = lo; b < hi; b++) {
                const T *A = pr->A + ce_boff(b, nb2, sAb, sAb2), *B = pr->B + ce_boff(b, nb2, sBb, sBb2);
                T *C = pr->C + ce_boff(b, nb2, sCb, sCb2);
                F(gemm_ref)(1, 1, pr->M, pr->N, pr->K, pr->alpha, A, 0, 0, pr->rsA, pr->csA, B, 0,
                            0, pr->rsB, pr->csB, pr->beta, C, 0, 0, pr->rsC, pr->csC, NULL, 0);
            }
        }
    }
    return 1;
}

static void F(gemm)(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, T alpha,
             const T *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
             const T *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, T beta,
             T *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
             const T *bias, int64_t sbias) {
    if (nb1 <= 0 || nb2 <= 0 || M <= 0 || N <= 0) return;
    const int64_t batch = nb1 * nb2;
    if (K <= 0 || alpha == 0) {
        for (int64_t b = 0; b < batch; b++)
            F(scale_c)(C + ce_boff(b, nb2, sCb, sCb2), rsC, csC, M, N, beta, bias, sbias);
        return;
    }
    /* write C along its smaller stride: C^T = B^T A^T when C is column-major (a bias along
     * C's columns is then along the rows of the computed C^T) */
    int bias_rows = 0;
    if (csC != 1 && (rsC == 1 || rsC < csC)) {
        bias_rows = 1;
        int64_t t;
        const T *tp;
        t = M; M = N; N = t;
        tp = A; A = B; B = tp;
        t = sAb; sAb = sBb; sBb = t;
        t = sAb2; sAb2 = sBb2; sBb2 = t;
        int64_t nrsA = csB, ncsA = rsB, nrsB = csA, ncsB = rsA;
        rsA = nrsA; csA = ncsA; rsB = nrsB; csB = ncsB;
        t = rsC; rsC = csC; csC = t;
    }
    F(gemm_cfg_t) cf;
    GEMM_ISA_CFG(ce_isa, cf)

    F(gemm_prob_t) pr = {M, N, K, alpha, beta, A, rsA, csA, B, rsB, csB, C, rsC, csC,
                         bias, sbias, bias_rows};
    /* work in M*N*K units (as double: batch*M*N*K may exceed int64 in principle) */
    const double wd = (double)M * (double)N * (double)K * (double)batch;
    int nt = ce_threads_for(wd > 4e18 ? (int64_t)4e18 : (int64_t)wd, CE_GEMM_MIN_WORK_PER_THREAD);
    if ((nt <= 1 || batch >= nt) && F(small_ok)(&cf, &pr)) {
        /* small products, the batch split across threads (a single small product on several
         * threads is sliced by the blocked driver below) */
        if (F(gemm_small)(&cf, &pr, batch, nb2, sAb, sAb2, sBb, sBb2, sCb, sCb2, nt)) return;
    }
    if (nt <= 1) {
        for (int64_t b = 0; b < batch; b++) {
            F(gemm_prob_t) q = pr;
            q.A = A + ce_boff(b, nb2, sAb, sAb2); q.B = B + ce_boff(b, nb2, sBb, sBb2);
            q.C = C + ce_boff(b, nb2, sCb, sCb2);
            F(gemm_serial)(&cf, &q, NULL, NULL);
        }
        return;
    }
    /* Work units: (product, slice of C). A product is sliced only when the batch alone cannot
     * keep the threads busy, into column or row slices (choice below). Units are handed out
     * dynamically, so a thread delayed by other load on the machine does not hold the others
     * back; the only barrier ends the team pre-pack of a sliced product's shared operand. The
     * K loop is never split: every element of C is summed in the same order whatever the
     * thread count. */
    int64_t ns = 1, by_rows = 0;
    if (batch < 2 * (int64_t)nt) {
        /* Column slices each pack all of A (free when A is read in place), row slices each
         * pack all of B (free when B is read in place): slice the way that repacks less, and
         * when both ways repack, into one slice per thread rather than two (A^T B, 1024^3 on
         * 2 threads: 4 slices 208, 2 slices 297 GFLOP/s). */
        const int64_t KC = ce_min64(ce_balance(K, cf.kc, 8), K);
        const double rep_cols = F(a_inplace)(&pr, cf.nr, 0) ? 0.0 : (double)M * (double)K;
        const double rep_rows = F(b_inplace)(&pr, KC) ? 0.0 : (double)K * (double)N;
        /* One product: one slice per thread. Its shared operand is packed once by the whole
         * team (below), and even slices (panel counts differing by at most one) keep the
         * threads level; two uneven slices per thread measured 3-6% slower on the training
         * step's GEMMs. Several products: two slices per thread unless both ways repack. */
        const int64_t per = (batch == 1 || (rep_cols > 0 && rep_rows > 0)) ? 1 : 2;
        int64_t want = (per * (int64_t)nt + batch - 1) / batch;   /* slices per product */
        int64_t wn = ce_rup((N + want - 1) / want, cf.nr);
        int64_t wm = ce_rup((M + want - 1) / want, cf.mr);
        if (rep_rows < rep_cols && wm >= cf.mr && M >= 4 * cf.mr) {
            by_rows = 1;
            ns = (M + wm - 1) / wm;
        } else if (wn >= 2 * cf.nr || N >= 4 * cf.nr) {
            if (wn < 2 * cf.nr) wn = 2 * cf.nr;
            ns = (N + wn - 1) / wn;
        } else {
            by_rows = 1;
            ns = (M + wm - 1) / wm;
        }
    }
    const int64_t units = batch * ns;
    if (nt > units) nt = (int)units;
    int64_t chunk = units / ((int64_t)nt * 8);
    if (chunk < 1) chunk = 1;
    /* One sliced product: the operand all slices read (A for column slices, B for row slices)
     * is packed once, cooperatively, into the calling thread's buffer; without the buffer
     * (allocation failure) every slice packs its own as before. */
    T *pre = NULL;
    if (batch == 1 && ns > 1) {
        const int64_t KC = ce_min64(ce_balance(K, cf.kc, 8), K);
        if (by_rows && !F(b_inplace)(&pr, KC))
            pre = (T *)ce_gemm_buf(2, sizeof(T) * (size_t)K * (size_t)ce_rup(N, cf.nr));
        else if (!by_rows && !F(a_inplace)(&pr, cf.nr, 1))
            pre = (T *)ce_gemm_buf(2, sizeof(T) * (size_t)ce_rup(M, cf.mr) * (size_t)K);
    }
    const T *Apre = pre && !by_rows ? pre : NULL, *Bpre = pre && by_rows ? pre : NULL;
#pragma omp parallel num_threads(nt)
    {
    if (Apre) F(prepack_a)(&cf, &pr, (T *)Apre);
    if (Bpre) F(prepack_b)(&cf, &pr, (T *)Bpre);
#pragma omp for schedule(dynamic, chunk)
    for (int64_t u = 0; u < units; u++) {
        const int64_t b = u / ns, s = u % ns;
        F(gemm_prob_t) q = pr;
        q.A = A + ce_boff(b, nb2, sAb, sAb2); q.B = B + ce_boff(b, nb2, sBb, sBb2);
        q.C = C + ce_boff(b, nb2, sCb, sCb2);
        if (ns > 1) {
            /* slice s: panels [s*P/ns, (s+1)*P/ns) of the P register-tile panels */
            const int64_t R = by_rows ? cf.mr : cf.nr, P = ((by_rows ? M : N) + R - 1) / R;
            const int64_t lo = s * P / ns * R;
            const int64_t hi = ce_min64(by_rows ? M : N, (s + 1) * P / ns * R);
            if (by_rows) {
                q.M = hi - lo; q.A += lo * rsA; q.C += lo * rsC;
                if (q.bias && bias_rows) q.bias += lo * sbias;
            } else {
                q.N = hi - lo; q.B += lo * csB; q.C += lo * csC;
                if (q.bias && !bias_rows) q.bias += lo * sbias;
            }
        }
        F(gemm_serial)(&cf, &q, Apre, Bpre);
    }
    }
    if (pre && ce_gemm_tls_cap[2] > CE_GEMM_PREPACK_KEEP_BYTES) {   /* don't hold a huge copy */
        free(ce_gemm_tls_buf[2]);
        ce_gemm_tls_buf[2] = NULL;
        ce_gemm_tls_cap[2] = 0;
    }
}

#undef T
#undef F
