/* ctc_tmpl.h - bodies of the CTC loss kernels, written once with the vm_* macros of vmath.h and
 * included by ctc.c once per (ISA, dtype) pair (scalar pairs give the generic path).
 * Defines VM_FN(ctc_fwd_seq) and VM_FN(ctc_bwd_seq): one sequence, one thread.
 *
 * Vectorised across the extended sequence s: every alpha_t[s] depends only on row t-1, so a
 * row is one pass of 3-way log-sum-exps over s. Cells that cannot lie on a complete path
 * (s > 2t+1, or too far behind to reach the end in the frames left) are skipped and hold -inf. */

/* log(x) for x in [1, 3] (the sum of a log-sum-exp shifted by its maximum): x = 2^k m with
 * k in {0, 1, 2}, m in [1/sqrt2, sqrt2], then vmath.h's vlog_core */
static inline vm_t VM_FN(ctc_log13)(vm_t x) {
#if CE_VM == CE_VM_SCALAR_F32 || CE_VM == CE_VM_SCALAR_F64
    return vm_slog(x);
#else
    vm_t one = vm_set1((vm_s)1), half = vm_set1((vm_s)0.5);
    vm_m b1 = vm_gt(x, vm_set1((vm_s)1.41421356237309504880));
    vm_m b2 = vm_gt(x, vm_set1((vm_s)2.82842712474619009760));
    vm_t m = vm_sel(b1, vm_mul(x, half), x);
    m = vm_sel(b2, vm_mul(m, half), m);
    vm_t k = vm_add(vm_sel(b1, one, vm_zero()), vm_sel(b2, one, vm_zero()));
    return vm_fmadd(k, vm_set1(VM_LN2HI), vm_fmadd(k, vm_set1(VM_LN2LO), VM_FN(vlog_core)(m)));
#endif
}

/* exp(x) without denormal results: x is raised to the smallest exponent whose exp is a normal
 * number (an absolute error below 1.2e-38 / 2.3e-308, far under anything a sum of probabilities
 * here can resolve) because denormal arithmetic costs ~100 cycles per operation on x86, and
 * log-space recursions produce many tiny terms. NaN is kept. */
static inline vm_t VM_FN(ctc_exp)(vm_t x) {
#if VM_IS_F64
    return VM_FN(vexp)(vm_max(vm_set1((vm_s)-708.0), x));
#else
    return VM_FN(vexp)(vm_max(vm_set1((vm_s)-87.0f), x));
#endif
}

/* log(exp(a) + exp(b) + exp(c)); -inf when all three are -inf */
static inline vm_t VM_FN(ctc_lse3)(vm_t a, vm_t b, vm_t c) {
    vm_t ninf = vm_set1((vm_s)-INFINITY);
    vm_t hi = vm_max(a, b), lo = vm_min(a, b);
    vm_t m = vm_max(hi, c), mid = vm_min(hi, c);
    vm_t ms = vm_sel(vm_gt(m, ninf), m, vm_zero());
    vm_t s = vm_add(vm_add(vm_set1((vm_s)1), VM_FN(ctc_exp)(vm_sub(lo, ms))), VM_FN(ctc_exp)(vm_sub(mid, ms)));
    return vm_add(m, VM_FN(ctc_log13)(s));
}

static inline void VM_FN(ctc_fill)(vm_s *p, int64_t n, vm_s v) {
    vm_t x = vm_set1(v);
    int64_t i = 0;
    for (; i + VM_W <= n; i += VM_W) vm_store(p + i, x);
    if (i < n) vm_store_part(p + i, n - i, x);
}

/* Window of cells of row t that can lie on a complete path: [lo, hi) */
static inline void VM_FN(ctc_window)(int64_t t, int64_t Tn, int64_t S, int64_t *lo, int64_t *hi) {
    int64_t a = S - 2 * (Tn - t), b = 2 * t + 2;
    *lo = a > 0 ? a : 0;
    *hi = b < S ? b : S;
}

/* One sequence. lp: this sequence's (t=0, c=0) entry, frames NC apart; lab (L) its labels;
 * A: its alpha rows (Tn rows of W, cell s at A[t*W + 2 + s]); scratch: lpe (S), skm (S+2),
 * ext (S). Writes *nll. */
static void VM_FN(ctc_fwd_seq)(vm_s *nll, vm_s *A, const vm_s *lp, int64_t NC, const int64_t *lab,
                               int64_t L, int64_t Tn, int64_t W, int64_t blank, vm_s *lpe,
                               vm_s *skm, int64_t *ext) {
    const vm_s ninf = (vm_s)-INFINITY;
    int64_t S = 2 * L + 1;
    if (Tn <= 0) {
        *nll = L == 0 ? (vm_s)0 : (vm_s)INFINITY;
        return;
    }
    for (int64_t s = 0; s < S; s++) {
        ext[s] = (s & 1) ? lab[s >> 1] : blank;
        skm[s] = ((s & 1) && s >= 3 && lab[s >> 1] != lab[(s >> 1) - 1]) ? (vm_s)0 : ninf;
    }
    /* t = 0 */
    vm_s *A0 = A + 2;
    VM_FN(ctc_fill)(A0 - 2, S + 2, ninf);
    if (S - 2 * Tn <= 0) A0[0] = lp[blank];
    if (L > 0 && S - 2 * Tn <= 1) A0[1] = lp[ext[1]];
    for (int64_t t = 1; t < Tn; t++) {
        const vm_s *P = A + (t - 1) * W + 2;
        vm_s *R = A + t * W + 2;
        const vm_s *lpt = lp + t * NC;
        int64_t lo, hi;
        VM_FN(ctc_window)(t, Tn, S, &lo, &hi);
        VM_FN(ctc_fill)(R - 2, S + 2, ninf);
        if (lo >= hi) continue;
        for (int64_t s = lo; s < hi; s++) lpe[s] = lpt[ext[s]];
        int64_t s = lo;
        for (; s + VM_W <= hi; s += VM_W) {
            vm_t a = vm_load(P + s), b = vm_load(P + s - 1);
            vm_t c = vm_add(vm_load(P + s - 2), vm_load(skm + s));
            vm_store(R + s, vm_add(VM_FN(ctc_lse3)(a, b, c), vm_load(lpe + s)));
        }
        if (s < hi) {
            int64_t r = hi - s;
            vm_t a = vm_load_part(P + s, r), b = vm_load_part(P + s - 1, r);
            vm_t c = vm_add(vm_load_part(P + s - 2, r), vm_load_part(skm + s, r));
            vm_store_part(R + s, r, vm_add(VM_FN(ctc_lse3)(a, b, c), vm_load_part(lpe + s, r)));
        }
    }
    const vm_s *Rl = A + (Tn - 1) * W + 2;
    vm_t e = vm_set1(Rl[S - 1]);
    vm_t f = vm_set1(S >= 2 ? Rl[S - 2] : ninf);
    vm_s v[VM_W];
    vm_store(v, VM_FN(ctc_lse3)(e, f, vm_set1(ninf)));
    *nll = -v[0];
}

/* One sequence's gradient: dlp rows of this sequence (frames NC apart) += g * (exp(lp) - occ).
 * Scratch: lpe (S), skm (S+4), ext (S), beta rows b0, b1 (S+2 each), gam (S), occ (C). */
static void VM_FN(ctc_bwd_seq)(vm_s *dlp, const vm_s *lp, const vm_s *A, vm_s nll, vm_s g,
                               int64_t NC, int64_t C, const int64_t *lab, int64_t L, int64_t Tn,
                               int64_t W, int64_t blank, int zero_infinity, vm_s *lpe, vm_s *skm,
                               int64_t *ext, vm_s *b0, vm_s *b1, vm_s *gam, vm_s *occ) {
    const vm_s ninf = (vm_s)-INFINITY;
    const vm_t G = vm_set1(g);
    int64_t S = 2 * L + 1;
    if (Tn <= 0 || g == 0) return;
    if (!(nll < (vm_s)INFINITY)) {   /* no alignment: occupancy 0 (or nothing with zero_infinity) */
        if (zero_infinity) return;
        for (int64_t t = 0; t < Tn; t++) {
            const vm_s *l = lp + t * NC;
            vm_s *d = dlp + t * NC;
            int64_t c = 0;
            for (; c + VM_W <= C; c += VM_W)
                vm_store(d + c, vm_fmadd(G, VM_FN(ctc_exp)(vm_load(l + c)), vm_load(d + c)));
            if (c < C)
                vm_store_part(d + c, C - c,
                              vm_fmadd(G, VM_FN(ctc_exp)(vm_load_part(l + c, C - c)), vm_load_part(d + c, C - c)));
        }
        return;
    }
    for (int64_t s = 0; s < S; s++) ext[s] = (s & 1) ? lab[s >> 1] : blank;
    /* skm[s] gates the s -> s+2 transition read at index s+2 */
    for (int64_t s = 0; s < S + 2; s++)
        skm[s] = (s < S && (s & 1) && s >= 3 && lab[s >> 1] != lab[(s >> 1) - 1]) ? (vm_s)0 : ninf;
    vm_t NLL = vm_set1(nll), NINF = vm_set1(ninf);
    vm_s *Bn = b0, *Bc = b1;   /* beta of t+1 and t */
    for (int64_t t = Tn - 1; t >= 0; t--) {
        const vm_s *lpt = lp + t * NC;
        const vm_s *At = A + t * W + 2;
        int64_t lo, hi;
        VM_FN(ctc_window)(t, Tn, S, &lo, &hi);
        VM_FN(ctc_fill)(Bc, S + 2, ninf);
        for (int64_t c = 0; c < C; c++) occ[c] = 0;
        if (lo < hi) {
            for (int64_t s = lo; s < hi; s++) lpe[s] = lpt[ext[s]];
            if (t == Tn - 1) {
                Bc[S - 1] = lpe[S - 1];
                if (S >= 2) Bc[S - 2] = lpe[S - 2];
            } else {
                int64_t s = lo;
                for (; s + VM_W <= hi; s += VM_W) {
                    vm_t a = vm_load(Bn + s), b = vm_load(Bn + s + 1);
                    vm_t c = vm_add(vm_load(Bn + s + 2), vm_load(skm + s + 2));
                    vm_store(Bc + s, vm_add(VM_FN(ctc_lse3)(a, b, c), vm_load(lpe + s)));
                }
                if (s < hi) {
                    int64_t r = hi - s;
                    vm_t a = vm_load_part(Bn + s, r), b = vm_load_part(Bn + s + 1, r);
                    vm_t c = vm_add(vm_load_part(Bn + s + 2, r), vm_load_part(skm + s + 2, r));
                    vm_store_part(Bc + s, r, vm_add(VM_FN(ctc_lse3)(a, b, c), vm_load_part(lpe + s, r)));
                }
            }
            /* occupancy gamma = exp(alpha + beta - lp + nll) (each <= 1; 0 where alpha + beta = -inf,
             * also when lp = -inf there), scattered to the classes */
            int64_t s = lo;
            for (; s + VM_W <= hi; s += VM_W) {
                vm_t ab = vm_add(vm_load(At + s), vm_load(Bc + s));
                vm_t x = vm_add(vm_sub(ab, vm_load(lpe + s)), NLL);
                vm_store(gam + s, vm_sel(vm_gt(ab, NINF), VM_FN(ctc_exp)(x), vm_zero()));
            }
            if (s < hi) {
                int64_t r = hi - s;
                vm_t ab = vm_add(vm_load_part(At + s, r), vm_load_part(Bc + s, r));
                vm_t x = vm_add(vm_sub(ab, vm_load_part(lpe + s, r)), NLL);
                vm_store_part(gam + s, r, vm_sel(vm_gt(ab, NINF), VM_FN(ctc_exp)(x), vm_zero()));
            }
            for (int64_t s2 = lo; s2 < hi; s2++) occ[ext[s2]] += gam[s2];
        }
        vm_s *d = dlp + t * NC;
        int64_t c = 0;
        for (; c + VM_W <= C; c += VM_W) {
            vm_t v = vm_sub(VM_FN(ctc_exp)(vm_load(lpt + c)), vm_load(occ + c));
            vm_store(d + c, vm_fmadd(G, v, vm_load(d + c)));
        }
        if (c < C) {
            int64_t r = C - c;
            vm_t v = vm_sub(VM_FN(ctc_exp)(vm_load_part(lpt + c, r)), vm_load_part(occ + c, r));
            vm_store_part(d + c, r, vm_fmadd(G, v, vm_load_part(d + c, r)));
        }
        vm_s *tmp = Bn; Bn = Bc; Bc = tmp;
    }
}
