/* loss_tmpl.h - fused cross-entropy rows (log-softmax + NLL, label smoothing, class weights,
 * probability targets) over the softmax_tmpl.h primitives; included by loss.c once per
 * (ISA, dtype) pair, the scalar pairs included (the generic path). Rows [r0, r1). */

static void VM_FN(ce_fwd_rows)(vm_s *loss, vm_s *lse, vm_s *wrow, const vm_s *x, const int64_t *tg,
                               const vm_s *w, int64_t r0, int64_t r1, int64_t C, int64_t ignore,
                               vm_s eps, vm_s W) {
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * C;
        vm_s m = VM_FN(sm_max)(xr, C);
        vm_s ls = vm_slog(VM_FN(sm_expsum)(0, xr, C, m));
        lse[r] = m + ls;
        int64_t t = tg[r];
        if (t == ignore) {
            loss[r] = 0;
            wrow[r] = 0;
            continue;
        }
        vm_s wt = w ? w[t] : (vm_s)1;
        vm_s l = (1 - eps) * wt * ((m - xr[t]) + ls);
        if (eps != 0)   /* eps/C * sum_c w_c (lse - x_c) = eps/C * (W*ls - sum_c w_c (x_c - m)) */
            l += eps / (vm_s)C * (W * ls - VM_FN(sm_wsum_shift)(xr, w, C, m));
        loss[r] = l;
        wrow[r] = wt;
    }
}

static void VM_FN(ce_bwd_rows)(vm_s *dx, const vm_s *x, const int64_t *tg, const vm_s *w,
                               const vm_s *lse, const vm_s *g, int64_t r0, int64_t r1, int64_t C,
                               int64_t ignore, vm_s eps, vm_s W, int acc, int nts) {
    for (int64_t r = r0; r < r1; r++) {
        vm_s *dr = dx + r * C;
        int64_t t = tg[r];
        if (t == ignore) {
            if (!acc)
                memset(dr, 0, (size_t)C * sizeof(vm_s));
            continue;
        }
        vm_s wt = w ? w[t] : (vm_s)1;
        vm_s gr = g[r];
        vm_s A = gr * ((1 - eps) * wt + eps * W / (vm_s)C);
        vm_s B = gr * eps / (vm_s)C;
        VM_FN(sm_ce_bwd)(dr, x + r * C, w, C, lse[r], A, B, t, gr * (1 - eps) * wt, acc, nts);
    }
    if (nts && !acc) _mm_sfence();
}

static void VM_FN(ce_prob_fwd_rows)(vm_s *loss, vm_s *lse, const vm_s *x, const vm_s *tgt,
                                    const vm_s *w, int64_t r0, int64_t r1, int64_t C, vm_s eps) {
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * C;
        vm_s m = VM_FN(sm_max)(xr, C);
        vm_s ls = vm_slog(VM_FN(sm_expsum)(0, xr, C, m));
        lse[r] = m + ls;
        vm_s sq, sqx;
        VM_FN(sm_ce_prob_sums)(xr, tgt + r * C, w, C, 1 - eps, eps / (vm_s)C, m, &sq, &sqx);
        loss[r] = sq * ls - sqx;    /* -sum w q (x - m - ls) */
    }
}

static void VM_FN(ce_prob_bwd_rows)(vm_s *dx, const vm_s *x, const vm_s *tgt, const vm_s *w,
                                    const vm_s *lse, const vm_s *g, int64_t r0, int64_t r1,
                                    int64_t C, vm_s eps, int acc) {
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * C, *tr = tgt + r * C;
        vm_s sq, sqx;
        VM_FN(sm_ce_prob_sums)(xr, tr, w, C, 1 - eps, eps / (vm_s)C, lse[r], &sq, &sqx);
        VM_FN(sm_ce_prob_bwd)(dx + r * C, xr, tr, w, C, lse[r], 1 - eps, eps / (vm_s)C, sq, g[r], acc);
    }
}
