/* batchnorm_tmpl.h - BatchNorm-over-planes kernels written once with the vm_* macros of
 * vmath.h; batchnorm.c includes it once per (ISA, dtype) pair (the one-lane scalar pairs are
 * the generic path). x (N, C, S): channel c is N planes of S contiguous values. Each function
 * does one channel (or a range of planes) on one thread; sums run plane by plane, a plane's
 * partial in the element type, the planes' partials added in double, in plane order. */

/* sum of p[0:S] and of (p[i] - m)^2 */
static inline vm_s VM_FN(bn_sum)(const vm_s *p, int64_t S) {
    vm_t s0 = vm_zero(), s1 = vm_zero();
    int64_t i = 0;
    for (; i + 2 * VM_W <= S; i += 2 * VM_W) {
        s0 = vm_add(s0, vm_load(p + i));
        s1 = vm_add(s1, vm_load(p + i + VM_W));
    }
    for (; i + VM_W <= S; i += VM_W) s0 = vm_add(s0, vm_load(p + i));
    if (i < S) s1 = vm_add(s1, vm_load_part(p + i, S - i));
    return vm_hsum(vm_add(s0, s1));
}
static inline vm_s VM_FN(bn_sqdev)(const vm_s *p, int64_t S, vm_s m) {
    vm_t mv = vm_set1(m), s0 = vm_zero(), s1 = vm_zero();
    int64_t i = 0;
    for (; i + 2 * VM_W <= S; i += 2 * VM_W) {
        vm_t d0 = vm_sub(vm_load(p + i), mv), d1 = vm_sub(vm_load(p + i + VM_W), mv);
        s0 = vm_fmadd(d0, d0, s0);
        s1 = vm_fmadd(d1, d1, s1);
    }
    for (; i + VM_W <= S; i += VM_W) {
        vm_t d0 = vm_sub(vm_load(p + i), mv);
        s0 = vm_fmadd(d0, d0, s0);
    }
    if (i < S) {   /* the lanes past S read m, so their deviation is 0 */
        vm_t d0 = vm_sub(vm_load_part_fill(p + i, S - i, m), mv);
        s1 = vm_fmadd(d0, d0, s1);
    }
    return vm_hsum(vm_add(s0, s1));
}

/* db[c] += the sum of channel c over the N planes of dy (N, C, S) (the convolution's bias
 * gradient) */
static void VM_FN(chan_sum_add)(vm_s *db, const vm_s *dy, int64_t N, int64_t C, int64_t S,
                                int64_t c) {
    double s = 0;
    for (int64_t n = 0; n < N; n++) s += (double)VM_FN(bn_sum)(dy + (n * C + c) * S, S);
    db[c] += (vm_s)s;
}

/* mean[c], var[c] (biased) of channel c */
static void VM_FN(bn_stats_ch)(vm_s *mean, vm_s *var, const vm_s *x, int64_t N, int64_t C,
                               int64_t S, int64_t c) {
    double s = 0, M = (double)(N * S), v = 0;
    for (int64_t n = 0; n < N; n++) s += (double)VM_FN(bn_sum)(x + (n * C + c) * S, S);
    vm_s m = (vm_s)(s / M);
    for (int64_t n = 0; n < N; n++) v += (double)VM_FN(bn_sqdev)(x + (n * C + c) * S, S, m);
    mean[c] = m;
    var[c] = (vm_s)(v / M);
}

/* planes [p0, p1) of (N*C, S): y = x * a[p % C] + b[p % C] */
static void VM_FN(bn_apply_planes)(vm_s *y, const vm_s *x, const vm_s *a, const vm_s *b,
                                   int64_t p0, int64_t p1, int64_t C, int64_t S) {
    for (int64_t p = p0; p < p1; p++) {
        const vm_s *xp = x + p * S;
        vm_s *yp = y + p * S;
        vm_t av = vm_set1(a[p % C]), bv = vm_set1(b[p % C]);
        int64_t i = 0;
        for (; i + VM_W <= S; i += VM_W) vm_store(yp + i, vm_fmadd(vm_load(xp + i), av, bv));
        if (i < S) vm_store_part(yp + i, S - i, vm_fmadd(vm_load_part(xp + i, S - i), av, bv));
    }
}

/* channel c of the training backward (contract of ce_bn_bwd in conv.h) */
static void VM_FN(bn_bwd_ch)(vm_s *dx, vm_s *dw, vm_s *db, const vm_s *dy, const vm_s *x,
                             const vm_s *mean, const vm_s *rstd, const vm_s *w, int64_t N,
                             int64_t C, int64_t S, int64_t c) {
    double sdy = 0, sdyx = 0, M = (double)(N * S);
    vm_s m = mean[c], r = rstd[c];
    vm_t mv = vm_set1(m);
    for (int64_t n = 0; n < N; n++) {
        const vm_s *p = x + (n * C + c) * S, *g = dy + (n * C + c) * S;
        vm_t a0 = vm_zero(), a1 = vm_zero();
        int64_t i = 0;
        for (; i + VM_W <= S; i += VM_W) {
            vm_t gv = vm_load(g + i);
            a0 = vm_add(a0, gv);
            a1 = vm_fmadd(gv, vm_sub(vm_load(p + i), mv), a1);
        }
        if (i < S) {   /* dy's tail lanes read 0, so both products vanish there */
            vm_t gv = vm_load_part(g + i, S - i);
            a0 = vm_add(a0, gv);
            a1 = vm_fmadd(gv, vm_sub(vm_load_part(p + i, S - i), mv), a1);
        }
        sdy += (double)vm_hsum(a0);
        sdyx += (double)vm_hsum(a1);
    }
    sdyx *= (double)r;
    if (dw) dw[c] += (vm_s)sdyx;
    if (db) db[c] += (vm_s)sdy;
    if (!dx) return;
    vm_s k = (w ? w[c] : (vm_s)1) * r;
    /* dx = k*(dy - mdy) - (x - m) * (k*r*mdyx) */
    vm_t kv = vm_set1(k), kmdy = vm_set1(k * (vm_s)(sdy / M)), q = vm_set1(k * r * (vm_s)(sdyx / M));
    for (int64_t n = 0; n < N; n++) {
        const vm_s *p = x + (n * C + c) * S, *g = dy + (n * C + c) * S;
        vm_s *o = dx + (n * C + c) * S;
        int64_t i = 0;
        for (; i + VM_W <= S; i += VM_W)
            vm_store(o + i, vm_fnmadd(vm_sub(vm_load(p + i), mv), q,
                                      vm_fmsub(kv, vm_load(g + i), kmdy)));
        if (i < S)
            vm_store_part(o + i, S - i, vm_fnmadd(vm_sub(vm_load_part(p + i, S - i), mv), q,
                                                  vm_fmsub(kv, vm_load_part(g + i, S - i), kmdy)));
    }
}
