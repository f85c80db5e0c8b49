/* conv_s1_tmpl.h - the stride-1 convolution drivers (contracts in conv.h), written once per
 * dtype: conv.c defines CE_T (element type), CE_SFX (f32 / f64) and CE_GEMM (ce_sgemm /
 * ce_dgemm) and includes this file once for each.
 *
 * Grid: images placed in zero-padded Hp x Wp planes one after another, row r = n*plane + i*Wp
 * + j (plane = Hp*Wp), R = N*plane + tail rows (zero) so every shifted read stays inside.
 * Stored channels-last, g[r*C + c] (the shifted GEMM operands), or channel-major, g[c*R + r]
 * (dy for the weight gradient). With the input at (ph, pw) of its plane, the output at grid
 * row r (top-left corner of its window) is
 *     y[r, o] = sum over taps t of  xg[r + off_t, :] . wk_t[:, o]
 * with one GEMM per kernel row when dw == 1 (K = KW*C: the KW taps of a row are consecutive
 * channels-last rows) and one per tap otherwise. Rows whose (i, j) lies outside the output
 * window are computed and dropped (a few percent: the padding columns). */
#define CE_S1_CAT_(a, b) a##_##b
#define CE_S1_CAT(a, b) CE_S1_CAT_(a, b)
#define S1(name) CE_S1_CAT(name, CE_SFX)

/* d[j*ldd + c] = s[c*lds + j] for c < nc, j < nj (conv.c: SIMD tiles on AVX2 and up) */
/* g (R rows) <- images x (N, C, h, w) at (top, left) of Hp x Wp planes, zero elsewhere;
 * channel-major when cmajor, else channels-last */
static void S1(s1_grid_pack)(CE_T *g, const CE_T *x, int64_t N, int64_t C, int64_t h, int64_t w,
                             int64_t Hp, int64_t Wp, int64_t top, int64_t left, int64_t R,
                             int cmajor) {
    int64_t plane = Hp * Wp, rows = N * Hp;
    int th = ce_threads_for(R * C, CE_CONV_MIN_WORK * 4);
    if (th > rows) th = (int)(rows < 1 ? 1 : rows);
    _Pragma("omp parallel for schedule(static) num_threads(th)")
    for (int64_t it = 0; it < rows; it++) {
        int64_t n = it / Hp, i = it % Hp, r = n * plane + i * Wp, ii = i - top;
        int inside = ii >= 0 && ii < h;
        if (cmajor) {
            for (int64_t c = 0; c < C; c++) {
                CE_T *d = g + c * R + r;
                if (!inside) {
                    memset(d, 0, (size_t)Wp * sizeof(CE_T));
                    continue;
                }
                memset(d, 0, (size_t)left * sizeof(CE_T));
                memcpy(d + left, x + ((n * C + c) * h + ii) * w, (size_t)w * sizeof(CE_T));
                memset(d + left + w, 0, (size_t)(Wp - left - w) * sizeof(CE_T));
            }
            continue;
        }
        CE_T *d = g + r * C;
        if (!inside) {
            memset(d, 0, (size_t)(Wp * C) * sizeof(CE_T));
            continue;
        }
        memset(d, 0, (size_t)(left * C) * sizeof(CE_T));
        memset(d + (left + w) * C, 0, (size_t)((Wp - left - w) * C) * sizeof(CE_T));
        S1(tr)(d + left * C, C, x + (n * C * h + ii) * w, h * w, C, w);
    }
    if (R > N * plane) {
        if (cmajor)
            for (int64_t c = 0; c < C; c++)
                memset(g + c * R + N * plane, 0, (size_t)(R - N * plane) * sizeof(CE_T));
        else
            memset(g + N * plane * C, 0, (size_t)((R - N * plane) * C) * sizeof(CE_T));
    }
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

/* out window (N, M, oh_n, ow_n) (= or +=) sum over taps of src grid (R, Cs) shifted @ wk
 * (KH*KW*Cs, M), in chunks of ch grid rows (one ybuf of ch*M per thread in ws) */
static void S1(s1_shift_conv)(CE_T *out, CE_T *ws, const CE_T *src, const CE_T *wk,
                              const CE_T *bias, int64_t N, int64_t M, int64_t Cs, int64_t KH,
                              int64_t KW, int64_t dh, int64_t dw, int64_t Hp, int64_t Wp,
                              int64_t top, int64_t left, int64_t oh_n, int64_t ow_n, int64_t ch,
                              int acc) {
    int64_t plane = Hp * Wp;
    int64_t rfirst = top * Wp + left, rend = (N - 1) * plane + (top + oh_n - 1) * Wp + left + ow_n;
    int64_t nch = (rend - rfirst + ch - 1) / ch, ngrp = dw == 1 ? KH : KH * KW;
    int th = chunk_threads(nch, (rend - rfirst) * M * Cs * KH * KW / 8);
    /* th == 1: chunks in turn, each GEMM threads itself; else one chunk per thread at a time
     * (the GEMMs inside run on their thread) */
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(th) if(th > 1)")
    for (int64_t c = 0; c < nch; c++) {
        int64_t r0 = rfirst + c * ch, r1 = r0 + ch < rend ? r0 + ch : rend, m = r1 - r0;
        CE_T *ybuf = ws + (th > 1 ? (int64_t)CE_CONV_TID() : 0) * ch * M;
        for (int64_t t = 0; t < ngrp; t++) {
            int64_t off, K, brow;
            S1(s1_tap)(t, Cs, KW, dh, dw, Wp, &off, &K, &brow);
            /* ybuf (m, M) (+)= src rows [r0+off, +m) as (m, K) at row stride Cs @ wk[brow:] */
            CE_GEMM(1, 1, m, M, K, 1, src + (r0 + off) * Cs, 0, 0, Cs, 1, wk + brow * M, 0, 0,
                    M, 1, (CE_T)(t > 0), ybuf, 0, 0, M, 1, NULL, 0);
        }
        S1(s1_unpack_rows)(out, ybuf, bias, r0, r1, M, Hp, Wp, top, left, oh_n, ow_n, acc);
    }
}

/* rows per chunk: ybuf and the rows it reads about one L2-half; never thread-dependent */
static inline int64_t S1(s1_chunk)(int64_t M, int64_t Cs) {
    int64_t ch = ((int64_t)1 << 18) / (M + Cs);
    return ch < 256 ? 256 : ch;
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
    S1(s1_grid_pack)(xg, x, g->N, C, g->H, g->W, Hp, Wp, g->ph, g->pw, R, 0);
    /* wk[(t*C + c), o] = w[o, c, t] (t = ki*KW + kj) */
    for (int64_t t = 0; t < KK; t++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t o = 0; o < O; o++) wk[(t * C + c) * O + o] = w[(o * C + c) * KK + t];
    S1(s1_shift_conv)(y, ybufs, xg, wk, b, g->N, O, C, g->KH, g->KW, g->dh, g->dw, Hp, Wp, 0, 0,
                      g->OH, g->OW, S1(s1_chunk)(O, C), 0);
}

/* 1 when any of v[0..n) is inf or NaN (its exponent bits all ones); serial */
static int S1(s1_nonfinite)(const CE_T *v, int64_t n) {
    CE_S1_UINT m = 0;
    for (int64_t i = 0; i < n; i++) {
        CE_S1_UINT b;
        memcpy(&b, v + i, sizeof b);
        m |= (CE_S1_UINT)((b & CE_S1_EXP) == CE_S1_EXP);
    }
    return m != 0;
}

/* 1 when a grid value that a row outside the output window can meet in the weight-gradient
 * products (rows < (KH-1)*dh or >= OH, columns < (KW-1)*dw or >= OW of a plane; the shifted
 * reads of those rows land only there) is inf or NaN */
static int S1(s1_band_nonfinite)(const CE_T *xg, const ce_conv_geom_t *g, int64_t Hp,
                                 int64_t Wp) {
    int64_t C = g->C, rb = (g->KH - 1) * g->dh, cb = (g->KW - 1) * g->dw, rows = g->N * Hp;
    int bad = 0;
    int th = ce_threads_for(rows * (2 * cb + 2) * C, CE_CONV_MIN_WORK * 16);
    _Pragma("omp parallel for schedule(static) num_threads(th) reduction(|: bad)")
    for (int64_t it = 0; it < rows; it++) {
        int64_t i = it % Hp;
        const CE_T *row = xg + it * Wp * C;
        if (i < rb || i >= g->OH)
            bad |= S1(s1_nonfinite)(row, Wp * C);
        else
            bad |= S1(s1_nonfinite)(row, cb * C) |
                   S1(s1_nonfinite)(row + g->OW * C, (Wp - g->OW) * C);
    }
    return bad;
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
        CE_T *dyg = p, *wf = dyg + R * O, *ybufs = wf + KK * O * C;
        S1(s1_grid_pack)(dyg, dy, g->N, O, g->OH, g->OW, Hp, Wp, (KH - 1) * g->dh,
                         (KW - 1) * g->dw, R, 0);
        for (int64_t t = 0; t < KK; t++)
            for (int64_t o = 0; o < O; o++)
                for (int64_t c = 0; c < C; c++)
                    wf[(t * O + o) * C + c] = w[(o * C + c) * KK + (KK - 1 - t)];
        S1(s1_shift_conv)(dx, ybufs, dyg, wf, NULL, g->N, C, O, KH, KW, g->dh, g->dw, Hp, Wp,
                          g->ph, g->pw, g->H, g->W, S1(s1_chunk)(C, O), dx_acc);
    }
    if (!dw_) return;
    /* dWt (O, KK*C) = sum over output grid rows r of dyg_cmajor[:, r] xg[r + off_t, :]:
     * per chunk of rows one GEMM per tap group; partials per chunk summed in chunk order
     * (chunks on threads) or, past parts_elems, accumulated chunk after chunk */
    CE_T *xg = xg_in ? (CE_T *)xg_in : p, *dyc = xg_in ? p : xg + R * C, *parts = dyc + O * R;
    if (!xg_in) S1(s1_grid_pack)(xg, x, g->N, C, g->H, g->W, Hp, Wp, g->ph, g->pw, R, 0);
    S1(s1_grid_pack)(dyc, dy, g->N, O, g->OH, g->OW, Hp, Wp, 0, 0, R, 1);
    int64_t rend = (g->N - 1) * plane + (g->OH - 1) * Wp + g->OW;
    int64_t ch = S1(s1_chunk)(O, C) * 2, nch = (rend + ch - 1) / ch;
    int64_t ngrp = g->dw == 1 ? KH : KK;
    int acc = nch * D > parts_elems;
    /* the rows outside the output window hold dy = 0: an inf or NaN of x they meet would
     * add 0 * inf = NaN where the convolution has no term, so with any non-finite x the
     * products run over the output rows only (slower, same chunks) */
    int exact = S1(s1_band_nonfinite)(xg, g, Hp, Wp);
    int th = acc ? 1 : chunk_threads(nch, rend * D / 8);
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(th) if(th > 1)")
    for (int64_t c = 0; c < nch; c++) {
        int64_t r0 = c * ch, m = r0 + ch < rend ? ch : rend - r0;
        CE_T *part = parts + (acc ? 0 : c * D), beta = (CE_T)(acc && c > 0);
        if (exact) {
            if (beta == 0) memset(part, 0, (size_t)D * sizeof(CE_T));
            for (int64_t r = r0; r < r0 + m;) {   /* segments of output rows in the chunk */
                int64_t rem = r % plane, i = rem / Wp, j = rem % Wp, rowbase = r - j;
                int64_t e = rowbase + g->OW < r0 + m ? rowbase + g->OW : r0 + m;
                if (i < g->OH && j < g->OW)
                    for (int64_t t = 0; t < ngrp; t++) {
                        int64_t off, K, brow;
                        S1(s1_tap)(t, C, KW, g->dh, g->dw, Wp, &off, &K, &brow);
                        CE_GEMM(1, 1, O, K, e - r, 1, dyc + r, 0, 0, R, 1, xg + (r + off) * C,
                                0, 0, C, 1, (CE_T)1, part + brow, 0, 0, KK * C, 1, NULL, 0);
                    }
                r = j < g->OW ? e : rowbase + Wp;
            }
            continue;
        }
        for (int64_t t = 0; t < ngrp; t++) {
            int64_t off, K, brow;
            S1(s1_tap)(t, C, KW, g->dh, g->dw, Wp, &off, &K, &brow);
            /* part[:, brow:brow+K] (O, K) (+)= dyc[:, r0:r0+m] (O, m) @ xg rows (m, K) */
            CE_GEMM(1, 1, O, K, m, 1, dyc + r0, 0, 0, R, 1, xg + (r0 + off) * C, 0, 0, C, 1,
                    beta, part + brow, 0, 0, KK * C, 1, NULL, 0);
        }
    }
    int64_t np_ = acc ? 1 : nch;
    int th2 = ce_threads_for(np_ * D, CE_CONV_MIN_WORK * 4);
    _Pragma("omp parallel for schedule(static) num_threads(th2)")
    for (int64_t i = 0; i < D; i++) {   /* i = (o, t, c) -> dw[o, c, t] */
        CE_T s = 0;
        for (int64_t q = 0; q < np_; q++) s += parts[q * D + i];
        int64_t o = i / (KK * C), t = (i / C) % KK, cc = i % C;
        dw_[(o * C + cc) * KK + t] += s;
    }
}

/* workspace elements: forward (bwd = 0) or backward with dx / dw wanted */
static int64_t S1(s1_ws)(const ce_conv_geom_t *g, int bwd, int need_dx, int need_dw,
                         int64_t parts_elems, int nthreads) {
    int64_t R = S1(s1_rows)(g), KK = g->KH * g->KW, C = g->C, O = g->O;
    if (!bwd) return R * C + KK * C * O + (int64_t)nthreads * S1(s1_chunk)(O, C) * O;
    int64_t a = need_dx ? R * O + KK * O * C + (int64_t)nthreads * S1(s1_chunk)(C, O) * C : 0;
    int64_t b = 0;
    if (need_dw) {
        int64_t Wp = g->OW + (g->KW - 1) * g->dw, Hp = g->OH + (g->KH - 1) * g->dh;
        int64_t rend = (g->N - 1) * Hp * Wp + (g->OH - 1) * Wp + g->OW;
        int64_t ch = S1(s1_chunk)(O, C) * 2, nch = (rend + ch - 1) / ch, D = O * KK * C;
        b = R * C + O * R + (nch * D > parts_elems ? D : nch * D);
    }
    return a > b ? a : b;
}

#undef S1
#undef CE_S1_CAT
#undef CE_S1_CAT_
