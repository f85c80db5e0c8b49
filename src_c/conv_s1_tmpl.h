/* conv_s1_tmpl.h - the stride-1 convolution drivers (contracts in conv.h), written once per
 * dtype: conv.c defines CE_T (element type), CE_SFX (f32 / f64) and CE_S1_LP / CE_S1_UP (s / S
 * or d / D: the prefix of that dtype's GEMM microkernels and tiles in gemm.h, ce_sgemm_ukr_avx2,
 * CE_SGEMM_MR_AVX2, ...) and includes this file once for each.
 *
 * Grid: images placed in zero-padded Hp x Wp planes one after another, row r = n*plane + i*Wp
 * + j (plane = Hp*Wp), R = N*plane + tail rows (zero) so every shifted read stays inside.
 * Stored channels-last, g[r*C + c] (the shifted operands). With the input at (ph, pw) of its
 * plane, the output at grid row r (top-left corner of its window) is
 *     y[r, o] = sum over taps t of  xg[r + off_t, :] . wk_t[:, o]
 * with one microkernel call per kernel row when dw == 1 (K = KW*C: the KW taps of a row are
 * consecutive channels-last rows) and one per tap otherwise; only rows inside the output
 * window are computed (s1_shift_conv below). */
#define CE_S1_CAT_(a, b) a##_##b
#define CE_S1_CAT(a, b) CE_S1_CAT_(a, b)
#define S1(name) CE_S1_CAT(name, CE_SFX)
#define CE_S1_P3_(a, b, c) a##b##c
#define CE_S1_P3(a, b, c) CE_S1_P3_(a, b, c)
#define CE_S1_FN(name) CE_S1_P3(ce_, CE_S1_LP, name)             /* ce_sgemm_ukr_avx2 */
#define CE_S1_TILE(what) CE_S1_P3(CE_, CE_S1_UP, GEMM_##what)    /* CE_SGEMM_MR_AVX2 */

/* d[j*ldd + c] = s[c*lds + j] for c < nc, j < nj (conv.c: SIMD tiles on AVX2 and up) */
/* one channels-last grid row d (Wp*C) <- row ii of image xn (C, h, w) at column `left`, zero
 * elsewhere (all zero when ii is outside [0, h)) */
static inline void S1(s1_pack_row)(CE_T *d, const CE_T *xn, int64_t C, int64_t h, int64_t w,
                                   int64_t Wp, int64_t left, int64_t ii) {
    if (ii < 0 || ii >= h) {
        memset(d, 0, (size_t)(Wp * C) * sizeof(CE_T));
        return;
    }
    memset(d, 0, (size_t)(left * C) * sizeof(CE_T));
    memset(d + (left + w) * C, 0, (size_t)((Wp - left - w) * C) * sizeof(CE_T));
    S1(tr)(d + left * C, C, xn + ii * w, h * w, C, w);
}

/* g (R rows, channels-last) <- images x (N, C, h, w) at (top, left) of Hp x Wp planes, zero
 * elsewhere */
static void S1(s1_grid_pack)(CE_T *g, const CE_T *x, int64_t N, int64_t C, int64_t h, int64_t w,
                             int64_t Hp, int64_t Wp, int64_t top, int64_t left, int64_t R) {
    int64_t plane = Hp * Wp, rows = N * Hp;
    int th = ce_threads_for(R * C, CE_CONV_MIN_WORK * 4);
    if (th > rows) th = (int)(rows < 1 ? 1 : rows);
    _Pragma("omp parallel for schedule(static) num_threads(th)")
    for (int64_t it = 0; it < rows; it++) {
        int64_t n = it / Hp, i = it % Hp, r = n * plane + i * Wp;
        S1(s1_pack_row)(g + r * C, x + n * C * h * w, C, h, w, Wp, left, i - top);
    }
    if (R > N * plane)
        memset(g + N * plane * C, 0, (size_t)((R - N * plane) * C) * sizeof(CE_T));
}

/* taps of the shifted products: group t reads rows r + off, K values per row starting at
 * row brow of the tap-major weight (KH*KW*Cs, M) */
static inline void S1(s1_tap)(int64_t t, int64_t Cs, int64_t KW, int64_t dh, int64_t dw,
                              int64_t Wp, int64_t *off, int64_t *K, int64_t *brow) {
    if (dw == 1) {   /* a whole kernel row: KW consecutive grid rows are K = KW*Cs values */
        *off = t * dh * Wp;
        *K = KW * Cs;
        *brow = t * KW * Cs;
    } else {
        *off = (t / KW) * dh * Wp + (t % KW) * dw;
        *K = Cs;
        *brow = t * Cs;
    }
}

/* out (N, M, oh_n, ow_n) = (acc == 0, plus bias[m] when not NULL) or += (acc == 1, no bias)
 * the grid rows [r0, r1) of ybuf ((r1-r0), M) whose (i, j) lies in the window
 * [top, top+oh_n) x [left, left+ow_n) */
static void S1(s1_unpack_rows)(CE_T *out, const CE_T *ybuf, const CE_T *bias, int64_t r0,
                               int64_t r1, int64_t M, int64_t Hp, int64_t Wp, int64_t top,
                               int64_t left, int64_t oh_n, int64_t ow_n, int acc) {
    int64_t plane = Hp * Wp;
    for (int64_t r = r0; r < r1;) {
        int64_t n = r / plane, rem = r % plane, i = rem / Wp, j = rem % Wp;
        int64_t rowbase = r - j, end = rowbase + Wp < r1 ? rowbase + Wp : r1;
        int64_t ii = i - top;
        if (ii >= 0 && ii < oh_n) {
            int64_t ja = j > left ? j : left, jb = end - rowbase;
            if (jb > left + ow_n) jb = left + ow_n;
            if (ja < jb) {
                const CE_T *src = ybuf + (rowbase - r0 + ja) * M;
                CE_T *d = out + ((n * M) * oh_n + ii) * ow_n + ja - left;
                int64_t ld = oh_n * ow_n, nj = jb - ja;
                if (!acc) {   /* transposed straight into out, then the bias over those rows */
                    S1(tr)(d, ld, src, M, nj, M);
                    if (bias)
                        for (int64_t m = 0; m < M; m++) {
                            CE_T bv = bias[m], *dr = d + m * ld;
                            for (int64_t j = 0; j < nj; j++) dr[j] += bv;
                        }
                    r = end;
                    continue;
                }
                /* +=: through a transposed block in L1, so out rows are read and written whole */
                for (int64_t j0 = 0; j0 < nj; j0 += 64) {
                    CE_T blk[64 * 64];
                    int64_t jn = nj - j0 < 64 ? nj - j0 : 64;
                    for (int64_t m0 = 0; m0 < M; m0 += 64) {
                        int64_t mn = M - m0 < 64 ? M - m0 : 64;
                        S1(tr)(blk, jn, src + j0 * M + m0, M, jn, mn);
                        for (int64_t m = 0; m < mn; m++) {
                            CE_T *dr = d + (m0 + m) * ld + j0;
                            const CE_T *br = blk + m * jn;
                            for (int64_t j = 0; j < jn; j++) dr[j] += br[j];
                        }
                    }
                }
            }
        }
        r = end;
    }
}

/* ---- the tile driver: the GEMM microkernels (gemm.h) called straight on the grid ----
 * An output row of the window is ow_n consecutive grid rows; it is cut into row panels of the
 * kernel's MR rows (MR2 rows at the end where that covers it with fewer kernel rows: 28 =
 * 12+8+8 on AVX-512), so nothing outside the window (the padding rows and columns of the grid)
 * is computed. For a panel and an NR-wide block of the M outputs, each tap group is one kernel
 * call reading its A rows in place (row stride Cs, K = KW*Cs values for a whole kernel row)
 * against the packed weight panel; the groups add into the same C tile (beta = 1 after the
 * first), which is still in L1, so no pass over a large product buffer repeats per tap. */
typedef struct {
    CE_S1_FN(ukr_t) ukr, ukr2;   /* MR-row kernel, MR2-row kernel (NULL: none) */
    int mr, mr2, nr;
} S1(s1_kern_t);

static void S1(s1_kern)(S1(s1_kern_t) *k) {
    k->ukr2 = NULL;
    k->mr2 = 0;
    if (ce_isa >= CE_ISA_AVX512) {
        k->ukr = CE_S1_FN(gemm_ukr_avx512);
        k->ukr2 = CE_S1_FN(gemm_ukr8_avx512);
        k->mr = CE_S1_TILE(MR_AVX512);
        k->mr2 = 8;
        k->nr = CE_S1_TILE(NR_AVX512);
    } else if (ce_isa >= CE_ISA_AVX2) {
        k->ukr = CE_S1_FN(gemm_ukr_avx2);
        k->mr = CE_S1_TILE(MR_AVX2);
        k->nr = CE_S1_TILE(NR_AVX2);
    } else {
        k->ukr = CE_S1_FN(gemm_ukr_generic);
        k->mr = CE_S1_TILE(MR_GENERIC);
        k->nr = CE_S1_TILE(NR_GENERIC);
    }
}

/* rows of the next panel when `left` rows of an output row remain; *use2: the MR2 kernel */
static inline int S1(s1_panel)(int64_t left, int MR, int MR2, int *use2) {
    *use2 = 0;
    if (MR2 > 0 && left <= MR2) {
        *use2 = 1;
        return (int)left;
    }
    if (MR2 > 0 && left > MR && left <= 2 * MR) {
        if (left <= 2 * MR2) {   /* two MR2 panels instead of MR + a partial one */
            *use2 = 1;
            return MR2;
        }
    }
    return (int)(left < MR ? left : MR);
}

/* output rows per segment (the unit a thread takes): about CE_S1_SEG_POS positions, rows split
 * evenly; depends on the sizes only */
#ifndef CE_S1_SEG_POS
#define CE_S1_SEG_POS 384
#endif
static inline int64_t S1(s1_seg_rows)(int64_t oh_n, int64_t ow_n) {
    int64_t want = CE_S1_SEG_POS / (ow_n > 0 ? ow_n : 1);
    if (want < 1) want = 1;
    int64_t nseg = (oh_n + want - 1) / want;
    return (oh_n + nseg - 1) / nseg;
}

/* elements of the packed weights and of one thread's product buffer (upper bounds, any ISA) */
static inline int64_t S1(s1_wpack_elems)(int64_t KK, int64_t Cs, int64_t M) {
    return KK * Cs * ((M + 31) / 32 * 32);
}
static inline int64_t S1(s1_ybuf_elems)(int64_t oh_n, int64_t ow_n, int64_t Wp, int64_t M) {
    return ((S1(s1_seg_rows)(oh_n, ow_n) - 1) * Wp + ow_n) * M;
}
/* one thread's segment grid (the per-segment packing of s1_shift_conv) */
static inline int64_t S1(s1_lbuf_elems)(int64_t oh_n, int64_t ow_n, int64_t KH, int64_t dh,
                                        int64_t Wp, int64_t Cs) {
    return (S1(s1_seg_rows)(oh_n, ow_n) + (KH - 1) * dh + 1) * Wp * Cs;
}

/* whether tap group t, for the output row at plane row pr, reads a plane row holding data
 * ([zlo, zhi)); the other rows of the grid are zero padding. With dw == 1 the group is a
 * kernel row: its reads run past the row end only into the next row's left padding columns
 * (zero in both grids: the forward's reads end inside the row, the backward-data grid has
 * (KW-1)*dw zero columns at the left) */
static inline int S1(s1_grp_live)(int64_t t, int64_t KW, int64_t dh, int64_t dw, int64_t pr,
                                  int64_t zlo, int64_t zhi) {
    int64_t row = pr + (dw == 1 ? t : t / KW) * dh;
    return row >= zlo && row < zhi;
}

/* out window (N, M, oh_n, ow_n) (= or +=) sum over taps of src grid (R, Cs) shifted @ wk
 * (KH*KW*Cs, M); the source's data lies at plane rows [zlo, zhi). With xs (NCHW images
 * (N, Cs, xh, xw), placed at plane row zlo, column xleft) src is not used: each segment packs
 * the grid rows it reads into its thread's buffer (in L2, no whole grid written to memory and
 * read back). ws: the packed weights, one product buffer per thread (ce_get_num_threads()),
 * then with xs one segment grid per thread. Each segment (image, block of output rows) is
 * computed by one thread in a fixed order, so results do not depend on the thread count. */
static void S1(s1_shift_conv)(CE_T *out, CE_T *ws, const CE_T *src, const CE_T *wk,
                              const CE_T *bias, int64_t N, int64_t M, int64_t Cs, int64_t KH,
                              int64_t KW, int64_t dh, int64_t dw, int64_t Hp, int64_t Wp,
                              int64_t top, int64_t left, int64_t oh_n, int64_t ow_n,
                              int64_t zlo, int64_t zhi, const CE_T *xs, int64_t xh, int64_t xw,
                              int64_t xleft, int acc) {
    S1(s1_kern_t) kn;
    S1(s1_kern)(&kn);
    const int MR = kn.mr, MR2 = kn.mr2, NR = kn.nr;
    int64_t plane = Hp * Wp, KKCs = KH * KW * Cs, nb = (M + NR - 1) / NR;
    int64_t ngrp = dw == 1 ? KH : KH * KW;
    int64_t srows = S1(s1_seg_rows)(oh_n, ow_n), nseg = (oh_n + srows - 1) / srows;
    int64_t items = N * nseg, ybsz = S1(s1_ybuf_elems)(oh_n, ow_n, Wp, M);
    int64_t lbsz = xs ? S1(s1_lbuf_elems)(oh_n, ow_n, KH, dh, Wp, Cs) : 0;
    CE_T *wp = ws, *ybufs = ws + S1(s1_wpack_elems)(KH * KW, Cs, M);
    CE_T *lbufs = xs ? ybufs + (int64_t)ce_get_num_threads() * ybsz : NULL;
    /* wp[(jb*KKCs + k)*NR + j] = wk[k, jb*NR + j], zero past M */
    for (int64_t jb = 0; jb < nb; jb++)
        for (int64_t k = 0; k < KKCs; k++) {
            CE_T *d = wp + (jb * KKCs + k) * NR;
            for (int64_t j = 0; j < NR; j++)
                d[j] = jb * NR + j < M ? wk[k * M + jb * NR + j] : (CE_T)0;
        }
    int th = ce_par_threads(items * srows * ow_n * M * KKCs / 16, CE_CONV_MIN_WORK * 8);
    if (th > items) th = (int)(items < 1 ? 1 : items);
    _Pragma("omp parallel for schedule(static) num_threads(th)")
    for (int64_t it = 0; it < items; it++) {
        int64_t n = it / nseg, s0 = (it % nseg) * srows;
        int64_t s1 = s0 + srows < oh_n ? s0 + srows : oh_n;
        CE_T *ybuf = ybufs + (th > 1 ? (int64_t)CE_CONV_TID() : 0) * ybsz;
        int64_t ra = n * plane + (top + s0) * Wp + left;   /* grid row of ybuf's first row */
        int64_t rb = n * plane + (top + s1 - 1) * Wp + left + ow_n;
        /* xs: the grid rows this segment reads (plane rows top+s0 .. top+s1-1 + (KH-1)*dh and
         * the next row, whose left padding the last reads run into) packed here, in L2, from
         * the source images (data at plane rows [zlo, zhi), column xleft); rows past the plane
         * are zero (the next image's top padding) */
        const CE_T *sp = src;   /* sp + q*Cs: grid row q + rbase */
        int64_t rbase = 0;
        if (xs) {
            CE_T *lb = lbufs + (th > 1 ? (int64_t)CE_CONV_TID() : 0) * lbsz;
            int64_t pr0 = top + s0, nrow = s1 - s0 + (KH - 1) * dh + 1;
            for (int64_t q = 0; q < nrow; q++) {
                int64_t pr = pr0 + q;
                S1(s1_pack_row)(lb + q * Wp * Cs, xs + n * Cs * xh * xw, Cs, xh, xw, Wp, xleft,
                                pr < Hp ? pr - zlo : -1);
            }
            sp = lb;
            rbase = n * plane + pr0 * Wp;
        }
        /* a tap group whose grid row for output row i lies outside the source's data rows
         * [zlo, zhi) of the plane reads only zero padding: skipped (the first group that runs
         * overwrites the tile; a row no group reaches is zero) */
        for (int64_t i = s0; i < s1; i++) {
            int64_t t0 = 0;
            while (t0 < ngrp && !S1(s1_grp_live)(t0, KW, dh, dw, top + i, zlo, zhi)) t0++;
            if (t0 == ngrp)
                memset(ybuf + (n * plane + (top + i) * Wp + left - ra) * M, 0,
                       (size_t)(ow_n * M) * sizeof(CE_T));
        }
        for (int64_t jb = 0; jb < nb; jb++) {
            int nn = (int)(M - jb * NR < NR ? M - jb * NR : NR);
            for (int64_t t = 0; t < ngrp; t++) {
                int64_t off, K, brow;
                S1(s1_tap)(t, Cs, KW, dh, dw, Wp, &off, &K, &brow);
                const CE_T *bp = wp + (jb * KKCs + brow) * NR;
                for (int64_t i = s0; i < s1; i++) {
                    if (!S1(s1_grp_live)(t, KW, dh, dw, top + i, zlo, zhi)) continue;
                    int64_t t0 = 0;   /* the row's first live group */
                    while (!S1(s1_grp_live)(t0, KW, dh, dw, top + i, zlo, zhi)) t0++;
                    int64_t r = n * plane + (top + i) * Wp + left;
                    for (int64_t i0 = 0; i0 < ow_n;) {
                        int use2;
                        int m = S1(s1_panel)(ow_n - i0, MR, MR2, &use2);
                        (use2 ? kn.ukr2 : kn.ukr)(K, sp + (r - rbase + i0 + off) * Cs, Cs, bp, NR,
                                                  ybuf + (r + i0 - ra) * M + jb * NR, M, 1,
                                                  (CE_T)1, (CE_T)(t > t0), m, nn);
                        i0 += m;
                    }
                }
            }
        }
        S1(s1_unpack_rows)(out, ybuf, bias, ra, rb, M, Hp, Wp, top, left, oh_n, ow_n, acc);
    }
}

static int64_t S1(s1_rows)(const ce_conv_geom_t *g) {
    return g->N * (g->OH + (g->KH - 1) * g->dh) * (g->OW + (g->KW - 1) * g->dw) +
           (g->KH - 1) * g->dh * (g->OW + (g->KW - 1) * g->dw) + (g->KW - 1) * g->dw + 1;
}

static void S1(s1_fwd)(CE_T *y, CE_T *ws, const CE_T *x, const CE_T *w, const CE_T *b,
                       const ce_conv_geom_t *g) {
    int64_t Hp = g->OH + (g->KH - 1) * g->dh, Wp = g->OW + (g->KW - 1) * g->dw;
    int64_t R = S1(s1_rows)(g), KK = g->KH * g->KW, C = g->C, O = g->O;
    CE_T *xg = ws, *wk = xg + R * C, *ybufs = wk + KK * C * O;
    S1(s1_grid_pack)(xg, x, g->N, C, g->H, g->W, Hp, Wp, g->ph, g->pw, R);
    /* wk[(t*C + c), o] = w[o, c, t] (t = ki*KW + kj) */
    for (int64_t t = 0; t < KK; t++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t o = 0; o < O; o++) wk[(t * C + c) * O + o] = w[(o * C + c) * KK + t];
    S1(s1_shift_conv)(y, ybufs, xg, wk, b, g->N, O, C, g->KH, g->KW, g->dh, g->dw, Hp, Wp, 0, 0,
                      g->OH, g->OW, g->ph, g->ph + g->H, NULL, 0, 0, 0, 0);
}

static void S1(s1_bwd)(CE_T *dx, CE_T *dw_, CE_T *ws, const CE_T *dy, const CE_T *x,
                       const CE_T *xg_in, const CE_T *w, const ce_conv_geom_t *g,
                       int64_t parts_elems, int dx_acc) {
    int64_t Hp = g->OH + (g->KH - 1) * g->dh, Wp = g->OW + (g->KW - 1) * g->dw, plane = Hp * Wp;
    int64_t R = S1(s1_rows)(g), KK = g->KH * g->KW, C = g->C, O = g->O, KH = g->KH, KW = g->KW;
    int64_t D = O * KK * C;
    CE_T *p = ws;
    if (dx) {   /* dx = the shifted products of dy (at the flipped offset) with the flipped,
                   transposed kernel: wf[(t'*O + o), c] = w[o, c, KK-1-t'] */
        CE_T *wf = p, *ybufs = wf + KK * O * C;
        for (int64_t t = 0; t < KK; t++)
            for (int64_t o = 0; o < O; o++)
                for (int64_t c = 0; c < C; c++)
                    wf[(t * O + o) * C + c] = w[(o * C + c) * KK + (KK - 1 - t)];
        /* dy's grid (dy at the flipped offset ((KH-1)*dh, (KW-1)*dw)) is packed segment by
         * segment inside the driver: nothing else reads it */
        S1(s1_shift_conv)(dx, ybufs, NULL, wf, NULL, g->N, C, O, KH, KW, g->dh, g->dw, Hp, Wp,
                          g->ph, g->pw, g->H, g->W, (KH - 1) * g->dh, (KH - 1) * g->dh + g->OH,
                          dy, g->OH, g->OW, (KW - 1) * g->dw, dx_acc);
    }
    if (!dw_) return;
    /* dWt (O, KK*C) = sum over the output positions r of dy[:, r] xg[r + off_t, :], over the
     * output rows only: for an output row (n, oh), a tile of dWt (a panel of output channels
     * x NR columns of one tap group) gets one kernel call with K = OW, A = the panel's dy rows
     * read in place (row stride OH*OW) and B = the grid rows at the tap's offset read in
     * place (row stride C). Tiles are split over the threads; each thread walks chunks of
     * output rows (about L2-sized) in order and, inside a chunk, its tiles, so every element
     * is summed over the same rows in the same order on any thread count, with no partials. */
    (void)parts_elems;
    CE_T *xg = xg_in ? (CE_T *)xg_in : p, *dwt = xg_in ? p : xg + R * C;
    if (!xg_in) S1(s1_grid_pack)(xg, x, g->N, C, g->H, g->W, Hp, Wp, g->ph, g->pw, R);
    memset(dwt, 0, (size_t)D * sizeof(CE_T));
    S1(s1_kern_t) kn;
    S1(s1_kern)(&kn);
    const int MR = kn.mr, MR2 = kn.mr2, NR = kn.nr;
    int64_t OH = g->OH, OW = g->OW, L = OH * OW, KKC = KK * C;
    int64_t ngrp = g->dw == 1 ? KH : KK, kg = g->dw == 1 ? KW * C : C, nbj = (kg + NR - 1) / NR;
    int64_t nop = 0;
    for (int64_t o0 = 0; o0 < O; nop++) {
        int u2;
        o0 += S1(s1_panel)(O - o0, MR, MR2, &u2);
    }
    int64_t ntile = nop * ngrp * nbj, rows = g->N * OH;
    int64_t crow = ((int64_t)1 << 17) / ((O + kg) * (OW > 0 ? OW : 1));   /* rows per chunk */
    if (crow < 1) crow = 1;
    /* a tile's cost: the kernel rows its panel runs (MR, or MR2 for the short kernel) times
     * its columns; threads take contiguous runs of tiles of about equal cost (O = 64 on
     * AVX-512 is panels 12,12,12,12,8,8: an even split by count would give one thread 36
     * kernel rows and the other 28) */
    int64_t tot = 0;
    for (int64_t o0 = 0; o0 < O;) {
        int u2, m = S1(s1_panel)(O - o0, MR, MR2, &u2);
        tot += (u2 ? MR2 : MR) * kg * ngrp;
        o0 += m;
    }
    int th = ce_par_threads(rows * OW * D / 16, CE_CONV_MIN_WORK * 8);
    if (th > ntile) th = (int)ntile;
    _Pragma("omp parallel num_threads(th)")
    {
        /* split by the team OpenMP really formed (OMP_THREAD_LIMIT, OMP_DYNAMIC or nesting
         * can give fewer than th): a share per asked-for thread would leave tiles unsummed */
        int nth = th > 1 ? (int)CE_CONV_NTEAM() : 1, me = th > 1 ? (int)CE_CONV_TID() : 0;
        for (int64_t c0 = 0; c0 < rows; c0 += crow) {
            int64_t c1 = c0 + crow < rows ? c0 + crow : rows;
            int64_t o0 = 0, op = 0, done = 0;   /* done: cost of the tiles before this one */
            for (int64_t tile = 0; tile < ntile; tile++) {
                /* tile = (o-panel op, tap group t, column block jb), o-panels outermost */
                int64_t t = (tile / nbj) % ngrp, jb = tile % nbj, opi = tile / (nbj * ngrp);
                int use2;
                while (op < opi) {
                    o0 += S1(s1_panel)(O - o0, MR, MR2, &use2);
                    op++;
                }
                int m = S1(s1_panel)(O - o0, MR, MR2, &use2);
                int64_t off, K, brow;
                S1(s1_tap)(t, C, KW, g->dh, g->dw, Wp, &off, &K, &brow);
                int64_t j0 = jb * NR;
                int nn = (int)(K - j0 < NR ? K - j0 : NR);
                int64_t cost = (use2 ? MR2 : MR) * nn, mid = 2 * done + cost;
                done += cost;
                /* this thread's tiles: those whose cost midpoint falls in its share */
                if (mid * nth < 2 * tot * me || mid * nth >= 2 * tot * (me + 1)) continue;
                CE_T *ct = dwt + o0 * KKC + brow + j0;
                for (int64_t q = c0; q < c1; q++) {
                    int64_t n = q / OH, oh = q % OH, r = n * plane + oh * Wp;
                    /* (a group reading a zero padding row of x's grid is still multiplied:
                     * an inf or NaN in dy makes NaN there, as torch and the unfolding path) */
                    (use2 ? kn.ukr2 : kn.ukr)(OW, dy + (n * O + o0) * L + oh * OW, L,
                                              xg + (r + off) * C + j0, C, ct, KKC, 1, (CE_T)1,
                                              (CE_T)1, m, nn);
                }
            }
        }
    }
    int th2 = ce_threads_for(D, CE_CONV_MIN_WORK * 4);
    _Pragma("omp parallel for schedule(static) num_threads(th2)")
    for (int64_t i = 0; i < D; i++) {   /* i = (o, t, c) -> dw[o, c, t] */
        int64_t o = i / KKC, t = (i / C) % KK, cc = i % C;
        dw_[(o * C + cc) * KK + t] += dwt[i];
    }
}

/* workspace elements: forward (bwd = 0) or backward with dx / dw wanted */
static int64_t S1(s1_ws)(const ce_conv_geom_t *g, int bwd, int need_dx, int need_dw,
                         int64_t parts_elems, int nthreads) {
    int64_t R = S1(s1_rows)(g), KK = g->KH * g->KW, C = g->C, O = g->O;
    int64_t Wp_ = g->OW + (g->KW - 1) * g->dw;
    if (!bwd)
        return R * C + KK * C * O + S1(s1_wpack_elems)(KK, C, O) +
               (int64_t)nthreads * S1(s1_ybuf_elems)(g->OH, g->OW, Wp_, O);
    int64_t a = need_dx ? KK * O * C + S1(s1_wpack_elems)(KK, O, C) +
                              (int64_t)nthreads * (S1(s1_ybuf_elems)(g->H, g->W, Wp_, C) +
                                                   S1(s1_lbuf_elems)(g->H, g->W, g->KH, g->dh,
                                                                     Wp_, O))
                        : 0;
    int64_t b = need_dw ? R * C + O * KK * C : 0;   /* x's grid, the tap-major dW */
    return a > b ? a : b;
}

#undef S1
#undef CE_S1_CAT
#undef CE_S1_CAT_
#undef CE_S1_P3
#undef CE_S1_P3_
#undef CE_S1_FN
#undef CE_S1_TILE
