/* norm_tmpl.h - LayerNorm / RMSNorm rows written once with the vm_* macros of vmath.h; included
 * by norm.c once per (ISA, dtype) pair (scalar one-lane pairs = the generic path).
 * Backward rows add parameter gradients into per-thread partial buffers dwp/dbp (or NULL). */

/* sum_c (x_c - m)^2 */
static inline vm_s VM_FN(nm_sqdev)(const vm_s *x, int64_t D, vm_s m) {
    vm_t mv = vm_set1(m), s0 = vm_zero(), s1 = vm_zero();
    int64_t i = 0;
    for (; i + 2 * VM_W <= D; i += 2 * VM_W) {
        vm_t d0 = vm_sub(vm_load(x + i), mv), d1 = vm_sub(vm_load(x + i + VM_W), mv);
        s0 = vm_fmadd(d0, d0, s0);
        s1 = vm_fmadd(d1, d1, s1);
    }
    for (; i + VM_W <= D; i += VM_W) {
        vm_t d0 = vm_sub(vm_load(x + i), mv);
        s0 = vm_fmadd(d0, d0, s0);
    }
    vm_s t = 0;
    for (; i < D; i++) t += (x[i] - m) * (x[i] - m);
    return vm_hsum(vm_add(s0, s1)) + t;
}

/* y = (x - m) * rs * w + b   (w, b may be NULL) */
static inline void VM_FN(nm_affine)(vm_s *y, const vm_s *x, const vm_s *w, const vm_s *b, int64_t D,
                                    vm_s m, vm_s rs) {
    vm_t mv = vm_set1(m), rv = vm_set1(rs);
    int64_t i = 0;
#define CE_NM_AFF(LOAD, STORE, WL, BL)                                                         \
    {                                                                                          \
        vm_t v = vm_mul(vm_sub(LOAD(x), mv), rv);                                              \
        if (w) v = vm_mul(v, WL(w));                                                           \
        if (b) v = vm_add(v, BL(b));                                                           \
        STORE(v);                                                                              \
    }
#define CE_NM_LD(p) vm_load((p) + i)
#define CE_NM_LDP(p) vm_load_part((p) + i, D - i)
#define CE_NM_ST(v) vm_store(y + i, v)
#define CE_NM_STP(v) vm_store_part(y + i, D - i, v)
    for (; i + VM_W <= D; i += VM_W) CE_NM_AFF(CE_NM_LD, CE_NM_ST, CE_NM_LD, CE_NM_LD)
    if (i < D) CE_NM_AFF(CE_NM_LDP, CE_NM_STP, CE_NM_LDP, CE_NM_LDP)
#undef CE_NM_AFF
#undef CE_NM_ST
#undef CE_NM_STP
}

static void VM_FN(ln_fwd_rows)(vm_s *y, vm_s *mean, vm_s *rstd, const vm_s *x, const vm_s *w,
                               const vm_s *b, int64_t r0, int64_t r1, int64_t D, double eps) {
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * D;
        vm_s m = VM_FN(sm_dot)(xr, 0, D) / (vm_s)D;
        vm_s var = VM_FN(nm_sqdev)(xr, D, m) / (vm_s)D;
        vm_s rs = (vm_s)(1.0 / sqrt((double)var + eps));
        mean[r] = m;
        rstd[r] = rs;
        VM_FN(nm_affine)(y + r * D, xr, w, b, D, m, rs);
    }
}

static void VM_FN(rms_fwd_rows)(vm_s *y, vm_s *rstd, const vm_s *x, const vm_s *w, int64_t r0,
                                int64_t r1, int64_t D, double eps) {
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * D;
        vm_s ms = VM_FN(sm_dot)(xr, xr, D) / (vm_s)D;
        vm_s rs = (vm_s)(1.0 / sqrt((double)ms + eps));
        rstd[r] = rs;
        VM_FN(nm_affine)(y + r * D, xr, w, 0, D, 0, rs);
    }
}

/* shared backward row: xhat = (x - m)*rs, g = dy*w;  a = mean(g) (only when center),
 * c = mean(g*xhat);  dx (+)= rs*(g - a - xhat*c);  dwp += dy*xhat;  dbp += dy */
static inline void VM_FN(nm_bwd_row)(vm_s *dx, vm_s *dwp, vm_s *dbp, const vm_s *dy, const vm_s *x,
                                     const vm_s *w, int64_t D, vm_s m, vm_s rs, int center, int acc) {
    vm_t mv = vm_set1(m), rv = vm_set1(rs);
    int64_t i = 0;
    if (dx) {
        vm_t sa = vm_zero(), sc = vm_zero();
        for (; i + VM_W <= D; i += VM_W) {
            vm_t g = vm_load(dy + i);
            if (w) g = vm_mul(g, vm_load(w + i));
            vm_t xh = vm_mul(vm_sub(vm_load(x + i), mv), rv);
            sa = vm_add(sa, g);
            sc = vm_fmadd(g, xh, sc);
        }
        if (i < D) {
            int64_t r = D - i;
            vm_t g = vm_load_part(dy + i, r);
            if (w) g = vm_mul(g, vm_load_part(w + i, r));
            vm_t xh = vm_mul(vm_sub(vm_load_part(x + i, r), mv), rv);   /* g = 0 on dead lanes */
            sa = vm_add(sa, g);
            sc = vm_fmadd(g, xh, sc);
        }
        vm_s a = center ? vm_hsum(sa) / (vm_s)D : (vm_s)0;
        vm_s c = vm_hsum(sc) / (vm_s)D;
        vm_t av = vm_set1(a), cv = vm_set1(c);
        for (i = 0; i + VM_W <= D; i += VM_W) {
            vm_t dyv = vm_load(dy + i);
            vm_t g = w ? vm_mul(dyv, vm_load(w + i)) : dyv;
            vm_t xh = vm_mul(vm_sub(vm_load(x + i), mv), rv);
            vm_t d = vm_mul(rv, vm_sub(vm_sub(g, av), vm_mul(xh, cv)));
            vm_store(dx + i, acc ? vm_add(vm_load(dx + i), d) : d);
            if (dwp) vm_store(dwp + i, vm_fmadd(dyv, xh, vm_load(dwp + i)));
            if (dbp) vm_store(dbp + i, vm_add(vm_load(dbp + i), dyv));
        }
        if (i < D) {
            int64_t r = D - i;
            vm_t dyv = vm_load_part(dy + i, r);
            vm_t g = w ? vm_mul(dyv, vm_load_part(w + i, r)) : dyv;
            vm_t xh = vm_mul(vm_sub(vm_load_part(x + i, r), mv), rv);
            vm_t d = vm_mul(rv, vm_sub(vm_sub(g, av), vm_mul(xh, cv)));
            vm_store_part(dx + i, r, acc ? vm_add(vm_load_part(dx + i, r), d) : d);
            if (dwp) vm_store_part(dwp + i, r, vm_fmadd(dyv, xh, vm_load_part(dwp + i, r)));
            if (dbp) vm_store_part(dbp + i, r, vm_add(vm_load_part(dbp + i, r), dyv));
        }
    } else {
        for (; i + VM_W <= D; i += VM_W) {
            vm_t dyv = vm_load(dy + i);
            vm_t xh = vm_mul(vm_sub(vm_load(x + i), mv), rv);
            if (dwp) vm_store(dwp + i, vm_fmadd(dyv, xh, vm_load(dwp + i)));
            if (dbp) vm_store(dbp + i, vm_add(vm_load(dbp + i), dyv));
        }
        if (i < D) {
            int64_t r = D - i;
            vm_t dyv = vm_load_part(dy + i, r);
            vm_t xh = vm_mul(vm_sub(vm_load_part(x + i, r), mv), rv);
            if (dwp) vm_store_part(dwp + i, r, vm_fmadd(dyv, xh, vm_load_part(dwp + i, r)));
            if (dbp) vm_store_part(dbp + i, r, vm_add(vm_load_part(dbp + i, r), dyv));
        }
    }
}

static void VM_FN(ln_bwd_rows)(vm_s *dx, vm_s *dwp, vm_s *dbp, const vm_s *dy, const vm_s *x,
                               const vm_s *w, const vm_s *mean, const vm_s *rstd, int64_t r0,
                               int64_t r1, int64_t D, int acc) {
    for (int64_t r = r0; r < r1; r++)
        VM_FN(nm_bwd_row)(dx ? dx + r * D : 0, dwp, dbp, dy + r * D, x + r * D, w, D, mean[r],
                          rstd[r], 1, acc);
}

static void VM_FN(rms_bwd_rows)(vm_s *dx, vm_s *dwp, const vm_s *dy, const vm_s *x, const vm_s *w,
                                const vm_s *rstd, int64_t r0, int64_t r1, int64_t D, int acc) {
    for (int64_t r = r0; r < r1; r++)
        VM_FN(nm_bwd_row)(dx ? dx + r * D : 0, dwp, 0, dy + r * D, x + r * D, w, D, 0, rstd[r], 0,
                          acc);
}
#undef CE_NM_LD
#undef CE_NM_LDP
