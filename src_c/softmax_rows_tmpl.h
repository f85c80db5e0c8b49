/* softmax_rows_tmpl.h - softmax / log_softmax over rows [r0, r1) of a contiguous (R, C) array,
 * written once with the vm_* macros over the softmax_tmpl.h row primitives; included by
 * softmax.c once per (ISA, dtype) pair through isa_each.h (the one-lane scalar pairs are the
 * generic path). nts: write outputs with non-temporal stores (large arrays; see
 * softmax_tmpl.h). The softmax forward then keeps the exponentials in a per-call scratch row
 * so y is written exactly once. */

/* y = y * s (sm_scale), prefetching pw[0, C) for writing as it goes: the forward's last pass
 * over a row (in L1) requests the next row of y, so its read for ownership overlaps the next
 * row's max and exp passes instead of stalling their stores (float32 [4096,1024], 1 thread:
 * -15% CPU time on a loaded machine) */
static inline void VM_FN(sm_scale_pfw)(vm_s *y, int64_t C, vm_s s, vm_s *pw) {
    vm_t sv = vm_set1(s);
    int64_t i = 0;
    const int64_t L = 64 / (int64_t)sizeof(vm_s);   /* elements per cache line */
    for (; i + VM_W <= C; i += VM_W) {
        if (VM_W >= L || i % L == 0) CE_SM_PFW(pw + i);
        vm_store(y + i, vm_mul(vm_load(y + i), sv));
    }
    if (i < C) vm_store_part(y + i, C - i, vm_mul(vm_load_part(y + i, C - i), sv));
}

static void VM_FN(sm_fwd_rows)(vm_s *y, const vm_s *x, int64_t r0, int64_t r1, int64_t C,
                               int lg, int nts) {
    vm_s *tmp = 0;
    if (nts && !lg) {
        tmp = (vm_s *)aligned_alloc(64, ((size_t)C * sizeof(vm_s) + 63) / 64 * 64);
        if (!tmp) nts = 0;
    }
    const int64_t pd = CE_SM_PF_DIST(C);
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * C;
        vm_s *yr = y + r * C;
        vm_s m = VM_FN(sm_max)(xr, C);
        /* the exp pass prefetches the rows ahead: their max pass then reads cache, not memory */
        if (lg) {
            vm_s s = VM_FN(sm_expsum_pf)(0, xr, C, m, xr + pd);
            VM_FN(sm_sub_nt)(yr, xr, C, m, vm_slog(s), nts);
        } else if (tmp) {
            vm_s s = VM_FN(sm_expsum_pf)(tmp, xr, C, m, xr + pd);
            VM_FN(sm_mul_nt)(yr, tmp, C, (vm_s)1 / s, 1);
        } else {
            vm_s s = VM_FN(sm_expsum_pf)(yr, xr, C, m, xr + pd);
            VM_FN(sm_scale_pfw)(yr, C, (vm_s)1 / s, yr + pd);
        }
    }
    free(tmp);
    if (nts) _mm_sfence();
}

static void VM_FN(sm_bwd_rows)(vm_s *dx, const vm_s *y, const vm_s *dy, int64_t r0,
                               int64_t r1, int64_t C, int lg, int acc, int nts) {
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *yr = y + r * C, *gr = dy + r * C;
        vm_s *dr = dx + r * C;
        if (lg)
            VM_FN(sm_lbwd)(dr, yr, gr, C, VM_FN(sm_dot)(gr, 0, C), acc, nts);
        else
            VM_FN(sm_bwd)(dr, yr, gr, C, VM_FN(sm_dot)(gr, yr, C), acc, nts);
    }
    if (nts && !acc) _mm_sfence();
}
