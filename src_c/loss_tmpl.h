/* loss_tmpl.h - fused cross-entropy rows (log-softmax + NLL, label smoothing, class weights,
 * probability targets) over the softmax_tmpl.h primitives; included by loss.c once per
 * (ISA, dtype) pair, the scalar pairs included (the generic path). Rows [r0, r1).
 * Defines VM_FN(xent_fwd_rows), VM_FN(xent_bwd_rows), VM_FN(xent_prob_fwd_rows) and
 * VM_FN(xent_prob_bwd_rows) (ce_xent_*_<isa>_<dtype>). */

/* sum_c exp(x_c - m) with vmath.h's vexp_ftz (every exponential of these kernels is vexp_ftz:
 * on AVX-512 float32 its table form, ~20% cheaper than vexp_poly, and the forward and the
 * backward each take one exponential per logit) */
static inline vm_s VM_FN(xent_expsum)(const vm_s *x, int64_t C, vm_s m) {
    vm_t mv = vm_set1(m), s0 = vm_zero(), s1 = vm_zero();
    int64_t i = 0;
    for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
        s0 = vm_add(s0, VM_FN(vexp_ftz)(vm_sub(vm_load(x + i), mv)));
        s1 = vm_add(s1, VM_FN(vexp_ftz)(vm_sub(vm_load(x + i + VM_W), mv)));
    }
    for (; i + VM_W <= C; i += VM_W) s0 = vm_add(s0, VM_FN(vexp_ftz)(vm_sub(vm_load(x + i), mv)));
    if (i < C)
        s1 = vm_add(s1, VM_FN(vexp_ftz)(vm_sub(vm_load_part_fill(x + i, C - i, (vm_s)-INFINITY), mv)));
    return vm_hsum(vm_add(s0, s1));
}

/* xent_expsum of row x and, in the same loop, the max of the next row y (C elements too): the
 * next row's loads (from L2 or memory) overlap this row's exponentials instead of stalling a
 * max pass of their own (AMD Zen 4, float32, 1 thread, paired CPU time: forward -10% on
 * [64,1000], -16% on [512,1000], -5% on [8192,1000]). pf != NULL: also prefetch pf[0, C) (the
 * row after y) into L1, for rows that come from memory ([8192,1000]: another -7%; none on
 * L3-resident logits, where it measured +1%) */
static inline vm_s VM_FN(xent_expsum_max)(const vm_s *x, int64_t C, vm_s m, const vm_s *y,
                                          vm_s *ymax, const vm_s *pf) {
    vm_t mv = vm_set1(m), s0 = vm_zero(), s1 = vm_zero();
    vm_t y0 = vm_set1((vm_s)-INFINITY), y1 = y0;
    int64_t i = 0;
    for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
        if (pf) {
            CE_SM_PF(pf + i);
            if (VM_W * sizeof(vm_s) >= 64) CE_SM_PF(pf + i + VM_W);
        }
        y0 = vm_max(y0, vm_load(y + i));
        y1 = vm_max(y1, vm_load(y + i + VM_W));
        s0 = vm_add(s0, VM_FN(vexp_ftz)(vm_sub(vm_load(x + i), mv)));
        s1 = vm_add(s1, VM_FN(vexp_ftz)(vm_sub(vm_load(x + i + VM_W), mv)));
    }
    for (; i + VM_W <= C; i += VM_W) {
        y0 = vm_max(y0, vm_load(y + i));
        s0 = vm_add(s0, VM_FN(vexp_ftz)(vm_sub(vm_load(x + i), mv)));
    }
    if (i < C) {
        y1 = vm_max(y1, vm_load_part_fill(y + i, C - i, (vm_s)-INFINITY));
        s1 = vm_add(s1, VM_FN(vexp_ftz)(vm_sub(vm_load_part_fill(x + i, C - i, (vm_s)-INFINITY), mv)));
    }
    *ymax = vm_hmax(vm_max(y0, y1));
    return vm_hsum(vm_add(s0, s1));
}

/* cross-entropy backward row, class targets: dx_c (+)= A*p_c - B*(w ? w_c : 1) - T*[c == t]
 * with p_c = exp((x_c - m) - ls), lse = m + ls split so that p keeps full precision when |lse| is
 * large (the target column folded into the vector pass, so streaming stays write-only) */
static inline vm_t VM_FN(xent_fix)(vm_t g, int64_t i, int64_t t, vm_s T) {
    if ((uint64_t)(t - i) < (uint64_t)VM_W) {
        vm_s tmp[VM_W];
        vm_store(tmp, g);
        tmp[t - i] -= T;
        g = vm_load(tmp);
    }
    return g;
}
/* pf != NULL: prefetch pf[0, C) (the next row of x) into L1 as the pass goes: for logits from
 * memory (AMD Zen 4, float32, 1 thread, paired CPU time: [8192,1000] backward -15%; +4% on
 * L2-resident [512,1000], so only beyond the stream threshold) */
static inline void VM_FN(xent_bwd_row)(vm_s *dx, const vm_s *x, const vm_s *w, int64_t C, vm_s m,
                                       vm_s ls, vm_s A, vm_s B, int64_t t, vm_s T, int acc, int nts,
                                       const vm_s *pf) {
    vm_t mv = vm_set1(m), lv = vm_set1(ls), av = vm_set1(A), bv = vm_set1(B);
#define P_(LD, r) ({ if (pf) CE_SM_PF(pf + i);                                              \
                     VM_FN(vexp_ftz)(vm_sub(vm_sub(LD(x + i, r), mv), lv)); })
#define G_(LD, r) VM_FN(xent_fix)(w ? vm_fnmadd(bv, LD(w + i, r), vm_mul(av, P_(LD, r))) \
                                    : vm_fmsub(av, P_(LD, r), bv), i, t, T)
    CE_SM_WRITE_PASS(dx, C, nts && !acc, G_);
#undef G_
#undef P_
}

/* sum_c w_c (x_c - shift)   (w == NULL: w = 1) */
static inline vm_s VM_FN(xent_wsum_shift)(const vm_s *x, const vm_s *w, int64_t C, vm_s shift) {
    vm_t sv = vm_set1(shift), s0 = vm_zero(), s1 = vm_zero();
    int64_t i = 0;
    if (w) {
        for (; i + VM_W <= C; i += VM_W) s0 = vm_fmadd(vm_load(w + i), vm_sub(vm_load(x + i), sv), s0);
        if (i < C) s1 = vm_fmadd(vm_load_part(w + i, C - i), vm_sub(vm_load_part(x + i, C - i), sv), s1);
    } else {
        for (; i + VM_W <= C; i += VM_W) s0 = vm_add(s0, vm_sub(vm_load(x + i), sv));
        vm_s t = 0;
        for (; i < C; i++) t += x[i] - shift;
        return vm_hsum(s0) + t;
    }
    return vm_hsum(vm_add(s0, s1));
}

/* probability targets, q = a*t + b: *sq = sum_c w_c q_c, *sqx = sum_c w_c q_c (x_c - shift) */
static inline void VM_FN(xent_prob_sums)(const vm_s *x, const vm_s *t, const vm_s *w, int64_t C,
                                          vm_s a, vm_s b, vm_s shift, vm_s *sq, vm_s *sqx) {
    vm_t av = vm_set1(a), bv = vm_set1(b), sv = vm_set1(shift), s0 = vm_zero(), s1 = vm_zero();
    int64_t i = 0;
    for (; i + VM_W <= C; i += VM_W) {
        vm_t q = vm_fmadd(av, vm_load(t + i), bv);
        if (w) q = vm_mul(q, vm_load(w + i));
        s0 = vm_add(s0, q);
        s1 = vm_fmadd(q, vm_sub(vm_load(x + i), sv), s1);
    }
    vm_s q0 = 0, qx0 = 0;
    for (; i < C; i++) {   /* tail in scalar: lanes past C must contribute nothing */
        vm_s q = a * t[i] + b;
        if (w) q *= w[i];
        q0 += q;
        qx0 += q * (x[i] - shift);
    }
    *sq = vm_hsum(s0) + q0;
    *sqx = vm_hsum(s1) + qx0;
}

/* probability targets backward row: dx_c (+)= g * (p_c * SQ - w_c q_c), p_c = exp((x_c - m) - ls) */
static inline void VM_FN(xent_prob_bwd_row)(vm_s *dx, const vm_s *x, const vm_s *t, const vm_s *w,
                                            int64_t C, vm_s m, vm_s ls, vm_s a, vm_s b, vm_s SQ,
                                            vm_s g, int acc) {
    vm_t mv = vm_set1(m), lv = vm_set1(ls), av = vm_set1(a), bv = vm_set1(b), sq = vm_set1(SQ),
         gv = vm_set1(g);
    int64_t i = 0;
    for (; i + VM_W <= C; i += VM_W) {
        vm_t q = vm_fmadd(av, vm_load(t + i), bv);
        if (w) q = vm_mul(q, vm_load(w + i));
        vm_t p = VM_FN(vexp_ftz)(vm_sub(vm_sub(vm_load(x + i), mv), lv));
        vm_t d = vm_mul(gv, vm_fmsub(p, sq, q));
        vm_store(dx + i, acc ? vm_add(vm_load(dx + i), d) : d);
    }
    if (i < C) {
        int64_t r = C - i;
        vm_t q = vm_fmadd(av, vm_load_part(t + i, r), bv);
        if (w) q = vm_mul(q, vm_load_part(w + i, r));
        vm_t p = VM_FN(vexp_ftz)(vm_sub(vm_sub(vm_load_part(x + i, r), mv), lv));
        vm_t d = vm_mul(gv, vm_fmsub(p, sq, q));
        vm_store_part(dx + i, r, acc ? vm_add(vm_load_part(dx + i, r), d) : d);
    }
}

/* lse = m + ls for the backward: p = exp((x - m) - ls). The forward saved lse rounded to the
 * dtype, which loses ls when |lse| is large (logits of 1e8 in float32: ulp(lse) = 8, so
 * exp(x - lse) is 1 for every near-maximal x). Rows with |lse| > 16 (ulp(lse) <= 2^-19 below:
 * p then keeps ~1e-6 relative precision in float32) recompute the row's max and log-sum-exp;
 * other rows take (lse, 0), the same numbers as exp(x - lse). */
static inline void VM_FN(xent_split_lse)(const vm_s *xr, int64_t C, vm_s lse, vm_s *m, vm_s *ls) {
    if (!(lse > (vm_s)16 || lse < (vm_s)-16)) {   /* NaN stays on this path */
        *m = lse;
        *ls = 0;
        return;
    }
    vm_s mx = VM_FN(sm_max)(xr, C);
    *m = mx;
    *ls = vm_slog(VM_FN(xent_expsum)(xr, C, mx));
}

/* row r's outputs from its max m and ls = log(sum exp(x - m)) */
static inline void VM_FN(xent_fwd_out)(vm_s *loss, vm_s *lse, vm_s *wrow, const vm_s *xr, int64_t t,
                                       const vm_s *w, int64_t C, int64_t ignore, vm_s eps, vm_s W,
                                       vm_s m, vm_s ls) {
    *lse = m + ls;
    if (t == ignore) {
        *loss = 0;
        *wrow = 0;
        return;
    }
    vm_s wt = w ? w[t] : (vm_s)1;
    vm_s l = (1 - eps) * wt * ((m - xr[t]) + ls);
    if (eps != 0)   /* eps/C * sum_c w_c (lse - x_c) = eps/C * (W*ls - sum_c w_c (x_c - m)) */
        l += eps / (vm_s)C * (W * ls - VM_FN(xent_wsum_shift)(xr, w, C, m));
    *loss = l;
    *wrow = wt;
}

/* rows [r0, r1); pf: prefetch the rows two ahead (logits beyond the caches) */
static void VM_FN(xent_fwd_rows)(vm_s *loss, vm_s *lse, vm_s *wrow, const vm_s *x, const int64_t *tg,
                               const vm_s *w, int64_t r0, int64_t r1, int64_t C, int64_t ignore,
                               vm_s eps, vm_s W, int pf) {
    vm_s mnext = r0 < r1 ? VM_FN(sm_max)(x + r0 * C, C) : 0;
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * C;
        vm_s m = mnext;   /* the row's max, from the previous row's loop */
        vm_s ls = vm_slog(r + 1 < r1 ? VM_FN(xent_expsum_max)(xr, C, m, xr + C, &mnext,
                                                              pf && r + 2 < r1 ? xr + 2 * C : 0)
                                     : VM_FN(xent_expsum)(xr, C, m));
        VM_FN(xent_fwd_out)(loss + r, lse + r, wrow + r, xr, tg[r], w, C, ignore, eps, W, m, ls);
    }
}

/* rows [r0, r1); nts: stream dx (when overwriting); pf: prefetch the next row of x */
static void VM_FN(xent_bwd_rows)(vm_s *dx, const vm_s *x, const int64_t *tg, const vm_s *w,
                               const vm_s *lse, const vm_s *g, int64_t r0, int64_t r1, int64_t C,
                               int64_t ignore, vm_s eps, vm_s W, int acc, int nts, int pf) {
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
        vm_s m, ls;
        VM_FN(xent_split_lse)(x + r * C, C, lse[r], &m, &ls);
        VM_FN(xent_bwd_row)(dr, x + r * C, w, C, m, ls, A, B, t, gr * (1 - eps) * wt, acc, nts,
                            pf && r + 1 < r1 ? x + (r + 1) * C : 0);
    }
    if (nts && !acc) _mm_sfence();
}

static void VM_FN(xent_prob_fwd_rows)(vm_s *loss, vm_s *lse, const vm_s *x, const vm_s *tgt,
                                    const vm_s *w, int64_t r0, int64_t r1, int64_t C, vm_s eps) {
    vm_s mnext = r0 < r1 ? VM_FN(sm_max)(x + r0 * C, C) : 0;
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * C;
        vm_s m = mnext;   /* as xent_fwd_rows: the max from the previous row's loop */
        vm_s ls = vm_slog(r + 1 < r1 ? VM_FN(xent_expsum_max)(xr, C, m, xr + C, &mnext, 0)
                                     : VM_FN(xent_expsum)(xr, C, m));
        lse[r] = m + ls;
        vm_s sq, sqx;
        VM_FN(xent_prob_sums)(xr, tgt + r * C, w, C, 1 - eps, eps / (vm_s)C, m, &sq, &sqx);
        loss[r] = sq * ls - sqx;    /* -sum w q (x - m - ls) */
    }
}

static void VM_FN(xent_prob_bwd_rows)(vm_s *dx, const vm_s *x, const vm_s *tgt, const vm_s *w,
                                    const vm_s *lse, const vm_s *g, int64_t r0, int64_t r1,
                                    int64_t C, vm_s eps, int acc) {
    for (int64_t r = r0; r < r1; r++) {
        const vm_s *xr = x + r * C, *tr = tgt + r * C;
        vm_s sq, sqx;
        vm_s m, ls;
        VM_FN(xent_prob_sums)(xr, tr, w, C, 1 - eps, eps / (vm_s)C, lse[r], &sq, &sqx);
        VM_FN(xent_split_lse)(xr, C, lse[r], &m, &ls);
        VM_FN(xent_prob_bwd_row)(dx + r * C, xr, tr, w, C, m, ls, 1 - eps, eps / (vm_s)C, sq, g[r],
                                 acc);
    }
}

/* bfloat16 logits over the row kernels above (float32 pairs; vmath_cvt.h's loads and stores,
 * included last: its AVX2 block enables F16C for the rest of that ISA's instances, which use
 * no float16 conversion) */
#include "vmath_cvt.h"
#include "loss_bf16_tmpl.h"
