/* pool_tmpl.h - the pooling plane kernels written once with the vm_* macros of vmath.h; pool.c
 * includes it once per (ISA, dtype) pair (the one-lane scalar pairs are the generic path).
 *
 * Every pool here is separable: output (oh, ow) reads input rows rows->s[oh] + k*rows->step
 * (k < rows->n[oh]) and columns cols->s[ow] + k*cols->step (k < cols->n[ow]), the taps inside
 * the image (pool.c computes them once per call). So a row pass combines the window's rows
 * over the whole width in vectors, then a short column pass per output combines the columns.
 * One plane per call, one thread; buf holds 2*W elements. */

/* y (OH, OW), idx (OH, OW) = h*W + w: max over the window; the result is the element the
 * row-major scan "v > m || v != v" of the reference chooses: the last NaN, else the first
 * maximum. The row pass keeps per column the value and row that scan picks over its rows;
 * the column pass then orders the columns' picks (row, column) as the scan would. */
static void VM_FN(pool_max_plane)(vm_s *y, int64_t *idx, const vm_s *x, int64_t W, int64_t OH,
                                  int64_t OW, const ce_pool_axis_t *rows,
                                  const ce_pool_axis_t *cols, vm_s *buf) {
    vm_s *mb = buf, *rb = buf + W;
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t r0 = rows->s[oh], rn = rows->n[oh];
        if (rn <= 0) {   /* no row inside: -inf, index 0 (as the reference) */
            for (int64_t ow = 0; ow < OW; ow++) {
                y[oh * OW + ow] = -INFINITY;
                idx[oh * OW + ow] = 0;
            }
            continue;
        }
        int64_t i = 0;
        for (;; i += VM_W) {
            int64_t nl = W - i < VM_W ? W - i : VM_W;
            if (nl <= 0) break;
            vm_t m = nl == VM_W ? vm_load(x + r0 * W + i) : vm_load_part(x + r0 * W + i, nl);
            vm_t r = vm_set1((vm_s)r0);
            for (int64_t k = 1; k < rn; k++) {
                int64_t ih = r0 + k * rows->step;
                vm_t v = nl == VM_W ? vm_load(x + ih * W + i) : vm_load_part(x + ih * W + i, nl);
                vm_m take = vm_mor(vm_gt(v, m), vm_unord(v, v));
                m = vm_sel(take, v, m);
                r = vm_sel(take, vm_set1((vm_s)ih), r);
            }
            if (nl == VM_W) {
                vm_store(mb + i, m);
                vm_store(rb + i, r);
            } else {
                vm_store_part(mb + i, nl, m);
                vm_store_part(rb + i, nl, r);
            }
        }
        for (int64_t ow = 0; ow < OW; ow++) {
            int64_t c0 = cols->s[ow], cn = cols->n[ow];
            if (cn <= 0) {
                y[oh * OW + ow] = -INFINITY;
                idx[oh * OW + ow] = 0;
                continue;
            }
            vm_s bv = mb[c0], br = rb[c0];
            int64_t bj = c0, nan = bv != bv;
            for (int64_t k = 1; k < cn; k++) {
                int64_t j = c0 + k * cols->step;
                vm_s v = mb[j], r = rb[j];
                if (v != v) {   /* a later NaN in the scan: a lower row, or the same row */
                    if (!nan || r >= br) {
                        bv = v; br = r; bj = j; nan = 1;
                    }
                } else if (!nan && (v > bv || (v == bv && r < br))) {   /* an earlier max */
                    bv = v; br = r; bj = j;
                }
            }
            y[oh * OW + ow] = bv;
            idx[oh * OW + ow] = (int64_t)br * W + bj;
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
