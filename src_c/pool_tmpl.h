/* pool_tmpl.h - the pooling plane kernels written once with the vm_* macros of vmath.h; pool.c
 * includes it once per (ISA, dtype) pair (the one-lane scalar pairs are the generic path).
 *
 * Every pool here is separable: output (oh, ow) reads input rows rows->s[oh] + k*rows->step
 * (k < rows->n[oh]) and columns cols->s[ow] + k*cols->step (k < cols->n[ow]), the taps inside
 * the image (pool.c computes them once per call). So a row pass combines the window's rows
 * over the whole width in vectors, then a short column pass per output combines the columns.
 * One plane per call, one thread; buf holds 2*W elements. */

/* the max pool's column pass, per lane: whether the candidate (v, r) (value, row; its
 * column comes later in the row-major scan "v > m || v != v" of the reference than the pick's
 * when both rows are equal) replaces the pick (m, mr): a NaN unless the pick is a NaN of a
 * later row, a number over a number when larger, or equal and from an earlier row. The pick
 * is the maximum of a total order (NaNs first, the later the higher; then values; equal
 * values: the earlier the higher), so a repeated tap changes nothing. */
static inline vm_m VM_FN(pool_max_take)(vm_t v, vm_t r, vm_t m, vm_t mr) {
    return vm_mor(vm_mand(vm_unord(v, v), vm_mor(vm_le(m, m), vm_ge(r, mr))),
                  vm_mor(vm_gt(v, m), vm_mand(vm_ge(v, m), vm_lt(r, mr))));
}

/* y (OH, OW), idx (OH, OW) = h*W + w: max over the window; the result is the element the
 * row-major scan "v > m || v != v" of the reference chooses: the last NaN, else the first
 * maximum. The row pass keeps per column the value and row that scan picks over its rows, for
 * cols->rb output rows at a time; the column pass then orders the columns' picks (row, column)
 * as the scan would, in vectors over those rows' outputs: tap k of output o of the block is
 * gathered at cols->tapc[k*ld + o] (pool.c; a window with fewer taps repeats its first), and
 * the tap taken is kept to find the column (cols->tapj). buf holds pool_buf_elems(W, OW). */
static void VM_FN(pool_max_plane)(vm_s *y, int64_t *idx, const vm_s *x, int64_t W, int64_t OH,
                                  int64_t OW, const ce_pool_axis_t *rows,
                                  const ce_pool_axis_t *cols, vm_s *buf) {
    const int32_t *tapc = cols->tapc, *tapj = cols->tapj;
    int64_t ld = cols->ld, nt = cols->ntap, RB = cols->rb;
    vm_s *mb = buf, *rb = buf + RB * W, *bro = buf + 2 * RB * W, *kbo = bro + ld;
    int col_none = 0;
    for (int64_t ow = 0; ow < OW; ow++) col_none |= cols->n[ow] <= 0;
    for (int64_t oh0 = 0; oh0 < OH; oh0 += RB) {
        int64_t nr = OH - oh0 < RB ? OH - oh0 : RB, no = nr * OW;
        int row_none = 0;
        for (int64_t rr = 0; rr < nr; rr++) {
            int64_t r0 = rows->s[oh0 + rr], rn = rows->n[oh0 + rr];
            vm_s *mrow = mb + rr * W, *rrow = rb + rr * W;
            if (rn <= 0) {   /* no row inside: the outputs are -inf, index 0 (below) */
                for (int64_t i = 0; i < W; i++) mrow[i] = rrow[i] = 0;
                row_none = 1;
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
        vm_s *yo = y + oh0 * OW;   /* the block's outputs are contiguous */
        int64_t *io = idx + oh0 * OW;
        for (int64_t i = 0; i < no; i += VM_W) {   /* the tables are padded to ld lanes */
            vm_t m = vm_gather_i32(mb, tapc + i), mr = vm_gather_i32(rb, tapc + i);
            vm_t kb = vm_zero();
            for (int64_t k = 1; k < nt; k++) {
                vm_t v = vm_gather_i32(mb, tapc + k * ld + i);
                vm_t r = vm_gather_i32(rb, tapc + k * ld + i);
                vm_m take = VM_FN(pool_max_take)(v, r, m, mr);
                m = vm_sel(take, v, m);
                mr = vm_sel(take, r, mr);
                kb = vm_sel(take, vm_set1((vm_s)k), kb);
            }
            int64_t nl = no - i < VM_W ? no - i : VM_W;
            if (nl == VM_W) {
                vm_store(yo + i, m);
                vm_store(bro + i, mr);
                vm_store(kbo + i, kb);
            } else {
                vm_store_part(yo + i, nl, m);
                vm_store_part(bro + i, nl, mr);
                vm_store_part(kbo + i, nl, kb);
            }
        }
        for (int64_t o = 0; o < no; o++)
            io[o] = (int64_t)bro[o] * W + tapj[(int64_t)kbo[o] * ld + o];
        if (row_none | col_none)   /* no row or no column inside: -inf, index 0 */
            for (int64_t rr = 0; rr < nr; rr++)
                for (int64_t ow = 0; ow < OW; ow++)
                    if (rows->n[oh0 + rr] <= 0 || cols->n[ow] <= 0) {
                        yo[rr * OW + ow] = -INFINITY;
                        io[rr * OW + ow] = 0;
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
