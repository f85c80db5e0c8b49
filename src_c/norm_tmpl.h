/* norm_tmpl.h - LayerNorm / RMSNorm rows written once with the vm_* macros of vmath.h; included
 * by norm.c once per (ISA, dtype) pair (scalar one-lane pairs = the generic path).
 * Backward rows add parameter gradients into per-thread partial buffers dwp/dbp (or NULL). */

/* sum_c (x_c - m)^2, and *dsum = sum_c (x_c - m) (the corrected two-pass variance: the caller
 * moves m by dsum/D and subtracts (dsum/D)^2, so a mean that a plain sum left an ulp off, e.g. in a
 * constant row of large values, is not read as spread); prefetching pf[0, D) (the rows ahead) */
static inline vm_s VM_FN(nm_sqdev)(const vm_s *x, int64_t D, vm_s m, const vm_s *pf, vm_s *dsum) {
    vm_t mv = vm_set1(m), s0 = vm_zero(), s1 = vm_zero(), e0 = vm_zero(), e1 = vm_zero();
    int64_t i = 0;
    for (; i + 2 * VM_W <= D; i += 2 * VM_W) {
        CE_SM_PF(pf + i);
        if (VM_W * sizeof(vm_s) >= 64) CE_SM_PF(pf + i + VM_W);
        vm_t d0 = vm_sub(vm_load(x + i), mv), d1 = vm_sub(vm_load(x + i + VM_W), mv);
        s0 = vm_fmadd(d0, d0, s0);
        s1 = vm_fmadd(d1, d1, s1);
        e0 = vm_add(e0, d0);
        e1 = vm_add(e1, d1);
    }
    for (; i + VM_W <= D; i += VM_W) {
        vm_t d0 = vm_sub(vm_load(x + i), mv);
        s0 = vm_fmadd(d0, d0, s0);
        e0 = vm_add(e0, d0);
    }
    vm_s t = 0, te = 0;
    for (; i < D; i++) {
        t += (x[i] - m) * (x[i] - m);
        te += x[i] - m;
    }
    *dsum = vm_hsum(vm_add(e0, e1)) + te;
    return vm_hsum(vm_add(s0, s1)) + t;
}

/* Overflow-safe row statistics, taken when the fast ones overflow (|x| beyond ~1e19 in
 * float32, ~1e154 in float64) or meet inf/NaN: computed in double on x scaled by a power of two
 * 2^e >= max|x| (exact), so no square can overflow; mean = s*mean(x/s),
 * rstd = 1/(s*sqrt(mean((x/s - mean(x/s))^2) + eps/s^2)). center = 0: RMSNorm (no mean).
 * Non-finite input gives what the plain formulas give (NaN). */
static void VM_FN(nm_stats_safe)(const vm_s *x, int64_t D, double eps, int center, vm_s *mean,
                                 vm_s *rstd) {
    double a = 0;
    for (int64_t c = 0; c < D; c++) {
        double v = fabs((double)x[c]);
        a = v > a ? v : a;
    }
    int e = 0;
    if (a > 0 && a <= 1.79769313486231570815e308) frexp(a, &e);   /* a < 2^e */
    double inv = ldexp(1.0, -e), m = 0, q = 0;
    if (center) {
        for (int64_t c = 0; c < D; c++) m += (double)x[c] * inv;
        m /= (double)D;
    }
    for (int64_t c = 0; c < D; c++) {
        double d = (double)x[c] * inv - m;
        q += d * d;
    }
    q /= (double)D;
    if (mean) *mean = (vm_s)ldexp(m, e);
    *rstd = (vm_s)(ldexp(1.0, -e) / sqrt(q + eps * inv * inv));
}

#undef CE_NM_VMAX
#if VM_IS_F64
#define CE_NM_VMAX 1.79769313486231570815e308
#else
#define CE_NM_VMAX 3.40282346638528859812e38f
#endif

/* y = (x - m) * rs * w + b (w, b may be NULL); nts: written with non-temporal stores (see
 * softmax_tmpl.h; one expression for both, so both give the same bits) */
static inline void VM_FN(nm_affine)(vm_s *y, const vm_s *x, const vm_s *w, const vm_s *b,
                                    int64_t D, vm_s m, vm_s rs, int nts) {
    vm_t mv = vm_set1(m), rv = vm_set1(rs);
    const int acc = 0;
#define G_(LD, r) ({ vm_t v_ = vm_mul(vm_sub(LD(x + i, r), mv), rv);                           \
                     if (w && b) v_ = vm_fmadd(v_, LD(w + i, r), LD(b + i, r));                \
                     else if (w) v_ = vm_mul(v_, LD(w + i, r));                                \
                     else if (b) v_ = vm_add(v_, LD(b + i, r));                                \
                     v_; })
    CE_SM_WRITE_PASS(y, D, nts, G_);
#undef G_
}

/* nts: write y with non-temporal stores. The squared-deviation pass (from L1) prefetches the
 * rows ahead. */
static void VM_FN(ln_fwd_rows)(vm_s *y, vm_s *mean, vm_s *rstd, const vm_s *x, const vm_s *w,
                               const vm_s *b, int64_t r0, int64_t r1, int64_t D, double eps,
                               int nts) {
    const int64_t pd = CE_SM_PF_DIST(D);
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * D;
        vm_s m = VM_FN(sm_dot)(xr, 0, D) / (vm_s)D;
        vm_s ds, var = VM_FN(nm_sqdev)(xr, D, m, xr + pd, &ds) / (vm_s)D;
        ds /= (vm_s)D;
        m += ds;
        var -= ds * ds;
        if (var < 0) var = 0;
        vm_s rs;
        if (var <= CE_NM_VMAX)
            rs = (vm_s)(1.0 / sqrt((double)var + eps));
        else
            VM_FN(nm_stats_safe)(xr, D, eps, 1, &m, &rs);
        mean[r] = m;
        rstd[r] = rs;
        VM_FN(nm_affine)(y + r * D, xr, w, b, D, m, rs, nts);
    }
    if (nts) _mm_sfence();
}

static void VM_FN(rms_fwd_rows)(vm_s *y, vm_s *rstd, const vm_s *x, const vm_s *w, int64_t r0,
                                int64_t r1, int64_t D, double eps, int nts) {
    const int64_t pd = CE_SM_PF_DIST(D);
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * D;
        vm_s ms = VM_FN(sm_dot)(xr, xr, D) / (vm_s)D;
        vm_s rs;
        if (ms <= CE_NM_VMAX)
            rs = (vm_s)(1.0 / sqrt((double)ms + eps));
        else
            VM_FN(nm_stats_safe)(xr, D, eps, 0, 0, &rs);
        rstd[r] = rs;
        for (int64_t i = 0; i < D; i += 64 / sizeof(vm_s)) CE_SM_PF(xr + pd + i);
        VM_FN(nm_affine)(y + r * D, xr, w, 0, D, 0, rs, nts);
    }
    if (nts) _mm_sfence();
}

/* pass 2 of nm_bwd_rows on columns [i, i + q) (q <= VM_W lanes; q == VM_W: full vectors)
 * of the block's nb rows starting at row r; stream: dx + row*D + i is aligned for vm_stream */
static inline __attribute__((always_inline)) void VM_FN(nm_bwd_cols)(
    vm_s *dx, vm_s *dwp, vm_s *dbp, const vm_s *dy, const vm_s *x, const vm_s *w, int64_t r,
    int nb, int64_t D, const vm_s *mk, const vm_s *rk, const vm_s *k1, const vm_s *k2, int acc,
    int stream, int64_t pf0, int64_t i, int64_t q) {
    const int full = q == VM_W;
#define LD_(p) (full ? vm_load(p) : vm_load_part(p, q))
    vm_t wv = w ? LD_(w + i) : vm_set1((vm_s)1);
    vm_t dwa = vm_zero(), dba = vm_zero();
    for (int k = 0; k < nb; k++) {
        const int64_t o = (r + k) * D + i;
        CE_SM_PF(dy + pf0 + k * D + i);
        CE_SM_PF(x + pf0 + k * D + i);
        vm_t dyv = LD_(dy + o);
        vm_t xh = vm_mul(vm_sub(LD_(x + o), vm_set1(mk[k])), vm_set1(rk[k]));
        if (dx) {
            /* explicit FMAs: the same bits on every column split (no compiler contraction) */
            vm_t ga = w ? vm_fmsub(dyv, wv, vm_set1(k1[k])) : vm_sub(dyv, vm_set1(k1[k]));
            vm_t d = vm_mul(vm_set1(rk[k]), vm_fnmadd(xh, vm_set1(k2[k]), ga));
            if (acc) d = vm_add(d, LD_(dx + o));
            if (stream) vm_stream(dx + o, d);
            else if (full) vm_store(dx + o, d);
            else vm_store_part(dx + o, q, d);
        }
        dwa = vm_fmadd(dyv, xh, dwa);
        dba = vm_add(dba, dyv);
    }
    if (dwp) {
        if (full) vm_store(dwp + i, vm_add(vm_load(dwp + i), dwa));
        else vm_store_part(dwp + i, q, vm_add(vm_load_part(dwp + i, q), dwa));
    }
    if (dbp) {
        if (full) vm_store(dbp + i, vm_add(vm_load(dbp + i), dba));
        else vm_store_part(dbp + i, q, vm_add(vm_load_part(dbp + i, q), dba));
    }
#undef LD_
}

/* Backward over rows [r0, r1), in blocks of up to CE_NM_BLK rows: xhat = (x - m)*rs, g = dy*w;
 * a = mean(g) (only when center), c = mean(g*xhat);
 * dx (+)= rs*((g - a) - xhat*c) (k1 = a, k2 = c: exact 0 where g = a and xhat = 0, whatever
 * the compiler contracts into FMAs);
 * dwp += sum over the block of dy*xhat, dbp += sum of dy (one read-modify-write of the partial
 * buffers per block instead of per row). First pass per row: the sums (reads dy, x from
 * memory); second pass over the block's columns (from cache) prefetches the next block.
 * nts: dx written with non-temporal stores (acc == 0 only). blk (1..CE_NM_BLK): rows per block
 * (norm.c: ce_norm_blk, from the L1 size). */
#define CE_NM_BLK 4
static void VM_FN(nm_bwd_rows)(vm_s *dx, vm_s *dwp, vm_s *dbp, const vm_s *dy, const vm_s *x,
                               const vm_s *w, const vm_s *mean, const vm_s *rstd, int64_t r0,
                               int64_t r1, int64_t D, int acc, int nts, int blk) {
    const int center = mean != 0;
    const vm_s invD = (vm_s)1 / (vm_s)D;
    if (blk < 1 || blk > CE_NM_BLK) blk = CE_NM_BLK;
    for (int64_t r = r0; r < r1; r += blk) {
        const int nb = (int)(r1 - r < blk ? r1 - r : blk);
        vm_s mk[CE_NM_BLK], rk[CE_NM_BLK], k1[CE_NM_BLK], k2[CE_NM_BLK];
        for (int k = 0; k < nb; k++) {
            const vm_s *g_ = dy + (r + k) * D, *x_ = x + (r + k) * D;
            mk[k] = center ? mean[r + k] : (vm_s)0;
            rk[k] = rstd[r + k];
            k1[k] = k2[k] = 0;
            if (!dx) continue;
            vm_t mv = vm_set1(mk[k]);
            vm_t sa0 = vm_zero(), sa1 = vm_zero(), sc0 = vm_zero(), sc1 = vm_zero();
            int64_t i = 0;
            for (; i + 2 * VM_W <= D; i += 2 * VM_W) {
                vm_t g0 = vm_load(g_ + i), g1 = vm_load(g_ + i + VM_W);
                if (w) {
                    g0 = vm_mul(g0, vm_load(w + i));
                    g1 = vm_mul(g1, vm_load(w + i + VM_W));
                }
                sa0 = vm_add(sa0, g0);
                sa1 = vm_add(sa1, g1);
                sc0 = vm_fmadd(g0, vm_sub(vm_load(x_ + i), mv), sc0);
                sc1 = vm_fmadd(g1, vm_sub(vm_load(x_ + i + VM_W), mv), sc1);
            }
            for (; i < D; i += VM_W) {
                int64_t q = D - i < VM_W ? D - i : VM_W;
                vm_t g0 = vm_load_part(g_ + i, q);   /* dead lanes: g = 0, contribute nothing */
                if (w) g0 = vm_mul(g0, vm_load_part(w + i, q));
                sa0 = vm_add(sa0, g0);
                sc0 = vm_fmadd(g0, vm_sub(vm_load_part(x_ + i, q), mv), sc0);
            }
            vm_s a = center ? vm_hsum(vm_add(sa0, sa1)) * invD : (vm_s)0;
            vm_s sc = vm_hsum(vm_add(sc0, sc1));
            if (!(sc <= CE_NM_VMAX && sc >= -CE_NM_VMAX)) {
                /* g*(x - m) overflowed (huge rows, see nm_stats_safe): sum g*xhat instead */
                vm_t rv = vm_set1(rk[k]);
                sc0 = vm_zero();
                for (i = 0; i < D; i += VM_W) {
                    int64_t q = D - i < VM_W ? D - i : VM_W;
                    vm_t g0 = vm_load_part(g_ + i, q);
                    if (w) g0 = vm_mul(g0, vm_load_part(w + i, q));
                    sc0 = vm_fmadd(g0, vm_mul(vm_sub(vm_load_part(x_ + i, q), mv), rv), sc0);
                }
                k2[k] = vm_hsum(sc0) * invD;
            } else {
                k2[k] = sc * invD * rk[k];    /* mean(g*xhat) */
            }
            k1[k] = a;
        }
        const int64_t pf0 = (r + blk) * D;   /* next block: prefetched in pass 2 */
        /* non-temporal dx stores need aligned vectors: every row of the block starts at the
         * same alignment when D is a multiple of the vector width, so columns [0, h) go first */
        const int st = nts && !acc && dx && D % VM_W == 0;
        const int64_t h = st ? vm_head(dx + r * D, D) : 0;
        int64_t i = 0;
        if (h) VM_FN(nm_bwd_cols)(dx, dwp, dbp, dy, x, w, r, nb, D, mk, rk, k1, k2, acc, 0, pf0, 0, h);
        i = h;
        if (st)
            for (; i + VM_W <= D; i += VM_W)
                VM_FN(nm_bwd_cols)(dx, dwp, dbp, dy, x, w, r, nb, D, mk, rk, k1, k2, acc, 1, pf0, i, VM_W);
        else
            for (; i + VM_W <= D; i += VM_W)
                VM_FN(nm_bwd_cols)(dx, dwp, dbp, dy, x, w, r, nb, D, mk, rk, k1, k2, acc, 0, pf0, i, VM_W);
        if (i < D) VM_FN(nm_bwd_cols)(dx, dwp, dbp, dy, x, w, r, nb, D, mk, rk, k1, k2, acc, 0, pf0, i, D - i);
    }
    if (nts && !acc && dx) _mm_sfence();
}

static void VM_FN(ln_bwd_rows)(vm_s *dx, vm_s *dwp, vm_s *dbp, const vm_s *dy, const vm_s *x,
                               const vm_s *w, const vm_s *mean, const vm_s *rstd, int64_t r0,
                               int64_t r1, int64_t D, int acc, int nts, int blk) {
    VM_FN(nm_bwd_rows)(dx, dwp, dbp, dy, x, w, mean, rstd, r0, r1, D, acc, nts, blk);
}

static void VM_FN(rms_bwd_rows)(vm_s *dx, vm_s *dwp, const vm_s *dy, const vm_s *x, const vm_s *w,
                                const vm_s *rstd, int64_t r0, int64_t r1, int64_t D, int acc,
                                int nts, int blk) {
    VM_FN(nm_bwd_rows)(dx, dwp, 0, dy, x, w, 0, rstd, r0, r1, D, acc, nts, blk);
}
