/* pool_tmpl.h - the pooling plane kernels written once with the vm_* macros of vmath.h; pool.c
 * includes it once per (ISA, dtype) pair (the one-lane scalar pairs are the generic path).
 *
 * Every pool here is separable: output (oh, ow) reads input rows rows->s[oh] + k*rows->step
 * (k < rows->n[oh]) and columns cols->s[ow] + k*cols->step (k < cols->n[ow]), the taps inside
 * the image (pool.c computes them once per call). So a row pass combines the window's rows
 * over the whole width in vectors, then a short column pass per output combines the columns.
 * One plane per call, one thread; buf holds 2*W elements. */

/* one column tap of the max pool's column pass over n outputs in vectors: the candidate
 * (tv, tr, tj) (value, row, column) replaces the pick (bv, br, bj) where the row-major scan
 * "v > m || v != v" of the reference would take it: a NaN unless the pick is a NaN of a later
 * row (a later column of the same row, or a lower row, comes later in the scan), a number over
 * a number when larger, or equal and from an earlier row (an equal value from the same row
 * comes from a later column, so the scan keeps the pick). The pick is the maximum of a total
 * order (NaNs first, the later the higher; then values; equal values: the earlier the higher),
 * so the order of the taps does not matter and a repeated tap changes nothing. */
static inline void VM_FN(pool_max_take)(vm_s *bv, vm_s *br, vm_s *bj, const vm_s *tv,
                                        const vm_s *tr, const vm_s *tj, int64_t n) {
    for (int64_t i = 0; i < n; i += VM_W) {   /* the buffers are padded to whole vectors */
        vm_t v = vm_load(tv + i), r = vm_load(tr + i), m = vm_load(bv + i), mr = vm_load(br + i);
        vm_m take = vm_mor(vm_mand(vm_unord(v, v), vm_mor(vm_le(m, m), vm_ge(r, mr))),
                           vm_mor(vm_gt(v, m), vm_mand(vm_ge(v, m), vm_lt(r, mr))));
        vm_store(bv + i, vm_sel(take, v, m));
        vm_store(br + i, vm_sel(take, r, mr));
        vm_store(bj + i, vm_sel(take, vm_load(tj + i), vm_load(bj + i)));
    }
}

/* y (OH, OW), idx (OH, OW) = h*W + w: max over the window; the result is the element the
 * row-major scan "v > m || v != v" of the reference chooses: the last NaN, else the first
 * maximum. The row pass keeps per column the value and row that scan picks over its rows;
 * the column pass then orders the columns' picks (row, column) as the scan would, in vectors
 * over the outputs of RB output rows at a time (pool_max_take), each tap's candidates copied
 * out of the row pass's buffer first (a window with fewer taps repeats its first). buf holds
 * pool_max_buf_elems(W, OH, OW) elements (pool.c). */
static void VM_FN(pool_max_plane)(vm_s *y, int64_t *idx, const vm_s *x, int64_t W, int64_t OH,
                                  int64_t OW, const ce_pool_axis_t *rows,
                                  const ce_pool_axis_t *cols, vm_s *buf) {
    int64_t RB = pool_max_rows_per_pass(OH, OW, W), NV = pool_max_pass_elems(OH, OW, W), cmax = 0;
    vm_s *mb = buf, *rb = buf + RB * W;
    vm_s *bv = buf + 2 * RB * W, *br = bv + NV, *bj = br + NV, *tv = bj + NV, *tr = tv + NV,
         *tj = tr + NV;
    for (int64_t ow = 0; ow < OW; ow++) cmax = cols->n[ow] > cmax ? cols->n[ow] : cmax;
    for (int64_t oh0 = 0; oh0 < OH; oh0 += RB) {
        int64_t nr = OH - oh0 < RB ? OH - oh0 : RB, no = nr * OW;
        for (int64_t i = no; i < (no + VM_W - 1) / VM_W * VM_W; i++)   /* lanes past the */
            bv[i] = br[i] = bj[i] = tv[i] = tr[i] = tj[i] = 0;          /* outputs: defined */
        for (int64_t rr = 0; rr < nr; rr++) {
            int64_t r0 = rows->s[oh0 + rr], rn = rows->n[oh0 + rr];
            vm_s *mrow = mb + rr * W, *rrow = rb + rr * W;
            if (rn <= 0) {   /* no row inside: the outputs are -inf, index 0 (below) */
                for (int64_t i = 0; i < W; i++) mrow[i] = rrow[i] = 0;
                continue;
            }
            for (int64_t i = 0; i < W; i += VM_W) {
                int64_t nl = W - i < VM_W ? W - i : VM_W;
                vm_t m = nl == VM_W ? vm_load(x + r0 * W + i) : vm_load_part(x + r0 * W + i, nl);
                vm_t r = vm_set1((vm_s)r0);
                for (int64_t k = 1; k < rn; k++) {
                    int64_t ih = r0 + k * rows->step;
                    vm_t v = nl == VM_W ? vm_load(x + ih * W + i)
                                        : vm_load_part(x + ih * W + i, nl);
                    vm_m take = vm_mor(vm_gt(v, m), vm_unord(v, v));
                    m = vm_sel(take, v, m);
                    r = vm_sel(take, vm_set1((vm_s)ih), r);
                }
                if (nl == VM_W) {
                    vm_store(mrow + i, m);
                    vm_store(rrow + i, r);
                } else {
                    vm_store_part(mrow + i, nl, m);
                    vm_store_part(rrow + i, nl, r);
                }
            }
        }
        for (int64_t rr = 0; rr < nr; rr++)   /* the first tap (column 0 when none is inside) */
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t j = cols->n[ow] > 0 ? cols->s[ow] : 0;
                bv[rr * OW + ow] = mb[rr * W + j];
                br[rr * OW + ow] = rb[rr * W + j];
                bj[rr * OW + ow] = (vm_s)j;
            }
        for (int64_t k = 1; k < cmax; k++) {
            for (int64_t rr = 0; rr < nr; rr++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t j = cols->n[ow] > k ? cols->s[ow] + k * cols->step
                                                : (cols->n[ow] > 0 ? cols->s[ow] : 0);
                    tv[rr * OW + ow] = mb[rr * W + j];
                    tr[rr * OW + ow] = rb[rr * W + j];
                    tj[rr * OW + ow] = (vm_s)j;
                }
            VM_FN(pool_max_take)(bv, br, bj, tv, tr, tj, no);
        }
        for (int64_t rr = 0; rr < nr; rr++) {
            int row_none = rows->n[oh0 + rr] <= 0;
            vm_s *yo = y + (oh0 + rr) * OW;
            int64_t *io = idx + (oh0 + rr) * OW;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t o = rr * OW + ow;
                int none = row_none | (cols->n[ow] <= 0);
                yo[ow] = none ? -INFINITY : bv[o];
                io[ow] = none ? 0 : (int64_t)br[o] * W + (int64_t)bj[o];
            }
        }
    }
}

/* divisor of output (oh, ow): divisor > 0, else the window's extent inside the padding
 * (count_include_pad), else its count of real elements */
static inline vm_s VM_FN(pool_div)(const ce_pool_axis_t *rows, const ce_pool_axis_t *cols,
                                   int64_t oh, int64_t ow, int64_t cip, int64_t divisor) {
    if (divisor > 0) return (vm_s)divisor;
    if (cip) return (vm_s)(rows->e[oh] * cols->e[ow]);
    return (vm_s)(rows->n[oh] * cols->n[ow]);
}

/* y (OH, OW) = window sums / divisor (windows with step 1) */
static void VM_FN(pool_avg_plane)(vm_s *y, const vm_s *x, int64_t W, int64_t OH, int64_t OW,
                                  const ce_pool_axis_t *rows, const ce_pool_axis_t *cols,
                                  int64_t cip, int64_t divisor, vm_s *buf) {
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t r0 = rows->s[oh], rn = rows->n[oh], i = 0;
        for (; i + VM_W <= W; i += VM_W) {
            vm_t s = vm_zero();
            for (int64_t k = 0; k < rn; k++) s = vm_add(s, vm_load(x + (r0 + k) * W + i));
            vm_store(buf + i, s);
        }
        if (i < W) {
            vm_t s = vm_zero();
            for (int64_t k = 0; k < rn; k++) s = vm_add(s, vm_load_part(x + (r0 + k) * W + i, W - i));
            vm_store_part(buf + i, W - i, s);
        }
        for (int64_t ow = 0; ow < OW; ow++) {
            vm_s s = 0;
            for (int64_t k = 0; k < cols->n[ow]; k++) s += buf[cols->s[ow] + k];
            y[oh * OW + ow] = s / VM_FN(pool_div)(rows, cols, oh, ow, cip, divisor);
        }
    }
}

/* dx (H, W) += dy (OH, OW) spread evenly (1/divisor) over each window's real elements: per
 * output row the column pass builds the row of contributions, the row pass adds it to the
 * window's rows */
static void VM_FN(pool_avg_bwd_plane)(vm_s *dx, const vm_s *dy, int64_t W, int64_t OH,
                                      int64_t OW, const ce_pool_axis_t *rows,
                                      const ce_pool_axis_t *cols, int64_t cip, int64_t divisor,
                                      vm_s *buf) {
    for (int64_t oh = 0; oh < OH; oh++) {
        for (int64_t j = 0; j < W; j++) buf[j] = 0;
        for (int64_t ow = 0; ow < OW; ow++) {
            vm_s g = dy[oh * OW + ow] / VM_FN(pool_div)(rows, cols, oh, ow, cip, divisor);
            for (int64_t k = 0; k < cols->n[ow]; k++) buf[cols->s[ow] + k] += g;
        }
        for (int64_t k = 0; k < rows->n[oh]; k++) {
            vm_s *d = dx + (rows->s[oh] + k) * W;
            int64_t i = 0;
            for (; i + VM_W <= W; i += VM_W) vm_store(d + i, vm_add(vm_load(d + i), vm_load(buf + i)));
            if (i < W)
                vm_store_part(d + i, W - i, vm_add(vm_load_part(d + i, W - i), vm_load_part(buf + i, W - i)));
        }
    }
}
