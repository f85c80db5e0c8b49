/* optim_simd.h - template for the per-segment optimizer updates, written once against a small
 * vector vocabulary and instantiated per ISA and dtype (optim_avx512.c, optim_avx2.c, optim.c
 * for the generic scalar path). Not a public header; include it only after defining:
 *   T  scalar type;  V  vector type;  W  lanes;  SFX  name suffix token (e.g. f32_avx512)
 *   VLOAD(p) VSTORE(p,x) VSET1(s) VADD VSUB VMUL VDIV VSQRT VMAX VNEG
 *   VFMA(a,b,c) = a*b + c    VFNMA(a,b,c) = c - a*b
 * Every element goes through the same vector code (tails run on a zero-padded copy), so the
 * rounding of an element does not depend on where a thread's chunk starts.
 * Formulas: see optim.h. */
#ifndef CE_CAT
#define CE_CAT_(a, b) a##b
#define CE_CAT(a, b) CE_CAT_(a, b)
#define CE_CAT3(a, b, c) CE_CAT(CE_CAT(a, b), c)
#endif
#define CE_FN(name) CE_CAT3(name, _, SFX)
#define CE_INL static inline __attribute__((always_inline))

/* ---------------- SGD ---------------- */
typedef struct { V nlr, mom, damp1, wd; int first, nesterov, maximize, has_wd, has_mom; } CE_FN(sgd_c);

CE_INL void CE_FN(sgd_vec)(T *p, T *buf, const T *g, const CE_FN(sgd_c) *c) {
    V gi = VLOAD(g);
    if (c->maximize) gi = VNEG(gi);
    V pv = VLOAD(p);
    if (c->has_wd) gi = VFMA(c->wd, pv, gi);
    if (c->has_mom) {
        V b = c->first ? gi : VFMA(c->mom, VLOAD(buf), VMUL(c->damp1, gi));
        VSTORE(buf, b);
        gi = c->nesterov ? VFMA(c->mom, b, gi) : b;
    }
    VSTORE(p, VFMA(c->nlr, gi, pv));
}

/* p, buf, g: (n); buf unused (may be NULL) when momentum == 0 */
void CE_FN(ce_sgd_seg)(T *p, T *buf, const T *g, int64_t n, const ce_sgd_hp *hp, int first) {
    CE_FN(sgd_c) c;
    c.nlr = VSET1((T)(-hp->lr));
    c.mom = VSET1((T)hp->momentum);
    c.damp1 = VSET1((T)(1.0 - hp->dampening));
    c.wd = VSET1((T)hp->wd);
    c.first = first; c.nesterov = hp->nesterov; c.maximize = hp->maximize;
    c.has_wd = hp->wd != 0.0; c.has_mom = hp->momentum != 0.0;
    int64_t i = 0;
    if (c.has_mom) {
        for (; i + W <= n; i += W) CE_FN(sgd_vec)(p + i, buf + i, g + i, &c);
    } else {
        for (; i + W <= n; i += W) CE_FN(sgd_vec)(p + i, NULL, g + i, &c);
    }
    if (i < n) {
        T tp[W], tb[W], tg[W];
        int64_t r = n - i;
        for (int k = 0; k < W; k++) {
            tp[k] = k < r ? p[i + k] : (T)0;
            tg[k] = k < r ? g[i + k] : (T)0;
            tb[k] = (c.has_mom && k < r) ? buf[i + k] : (T)0;
        }
        CE_FN(sgd_vec)(tp, tb, tg, &c);
        for (int64_t k = 0; k < r; k++) {
            p[i + k] = tp[k];
            if (c.has_mom) buf[i + k] = tb[k];
        }
    }
}

/* ---------------- Adagrad ---------------- */
typedef struct { V nclr, wd, eps; int maximize, has_wd; } CE_FN(adagrad_c);

CE_INL void CE_FN(adagrad_vec)(T *p, T *sum, const T *g, const CE_FN(adagrad_c) *c) {
    V gi = VLOAD(g);
    if (c->maximize) gi = VNEG(gi);
    V pv = VLOAD(p);
    if (c->has_wd) gi = VFMA(c->wd, pv, gi);
    V s = VFMA(gi, gi, VLOAD(sum));
    VSTORE(sum, s);
    V std = VADD(VSQRT(s), c->eps);
    VSTORE(p, VFMA(c->nclr, VDIV(gi, std), pv));
}

/* p, sum, g: (n); clr = lr / (1 + (step-1)*lr_decay) */
void CE_FN(ce_adagrad_seg)(T *p, T *sum, const T *g, int64_t n, const ce_adagrad_hp *hp,
                           double clr) {
    CE_FN(adagrad_c) c;
    c.nclr = VSET1((T)(-clr));
    c.wd = VSET1((T)hp->wd);
    c.eps = VSET1((T)hp->eps);
    c.maximize = hp->maximize; c.has_wd = hp->wd != 0.0;
    int64_t i = 0;
    for (; i + W <= n; i += W) CE_FN(adagrad_vec)(p + i, sum + i, g + i, &c);
    if (i < n) {
        T tp[W], ts[W], tg[W];
        int64_t r = n - i;
        for (int k = 0; k < W; k++) {
            tp[k] = k < r ? p[i + k] : (T)0;
            ts[k] = k < r ? sum[i + k] : (T)0;
            tg[k] = k < r ? g[i + k] : (T)0;
        }
        CE_FN(adagrad_vec)(tp, ts, tg, &c);
        for (int64_t k = 0; k < r; k++) { p[i + k] = tp[k]; sum[i + k] = ts[k]; }
    }
}

/* ---------------- RMSprop ---------------- */
typedef struct { V nlr, alpha, oma, eps, wd, mom; int centered, maximize, has_wd, has_mom; } CE_FN(rmsprop_c);

CE_INL void CE_FN(rmsprop_vec)(T *p, T *sq, T *gavg, T *buf, const T *g,
                               const CE_FN(rmsprop_c) *c) {
    V gi = VLOAD(g);
    if (c->maximize) gi = VNEG(gi);
    V pv = VLOAD(p);
    if (c->has_wd) gi = VFMA(c->wd, pv, gi);
    V s = VFMA(c->alpha, VLOAD(sq), VMUL(c->oma, VMUL(gi, gi)));
    VSTORE(sq, s);
    V avg;
    if (c->centered) {
        V ga = VFMA(c->alpha, VLOAD(gavg), VMUL(c->oma, gi));
        VSTORE(gavg, ga);
        avg = VSQRT(VFNMA(ga, ga, s));
    } else {
        avg = VSQRT(s);
    }
    avg = VADD(avg, c->eps);
    if (c->has_mom) {
        V b = VFMA(c->mom, VLOAD(buf), VDIV(gi, avg));
        VSTORE(buf, b);
        VSTORE(p, VFMA(c->nlr, b, pv));
    } else {
        VSTORE(p, VFMA(c->nlr, VDIV(gi, avg), pv));
    }
}

/* p, sq, gavg (centered), buf (momentum > 0), g: (n) */
void CE_FN(ce_rmsprop_seg)(T *p, T *sq, T *gavg, T *buf, const T *g, int64_t n,
                           const ce_rmsprop_hp *hp) {
    CE_FN(rmsprop_c) c;
    c.nlr = VSET1((T)(-hp->lr));
    c.alpha = VSET1((T)hp->alpha);
    c.oma = VSET1((T)(1.0 - hp->alpha));
    c.eps = VSET1((T)hp->eps);
    c.wd = VSET1((T)hp->wd);
    c.mom = VSET1((T)hp->momentum);
    c.centered = hp->centered; c.maximize = hp->maximize;
    c.has_wd = hp->wd != 0.0; c.has_mom = hp->momentum > 0.0;
    int64_t i = 0;
    for (; i + W <= n; i += W)
        CE_FN(rmsprop_vec)(p + i, sq + i, c.centered ? gavg + i : NULL,
                           c.has_mom ? buf + i : NULL, g + i, &c);
    if (i < n) {
        T tp[W], ts[W], ta[W], tb[W], tg[W];
        int64_t r = n - i;
        for (int k = 0; k < W; k++) {
            tp[k] = k < r ? p[i + k] : (T)0;
            ts[k] = k < r ? sq[i + k] : (T)0;
            tg[k] = k < r ? g[i + k] : (T)0;
            ta[k] = (c.centered && k < r) ? gavg[i + k] : (T)0;
            tb[k] = (c.has_mom && k < r) ? buf[i + k] : (T)0;
        }
        CE_FN(rmsprop_vec)(tp, ts, ta, tb, tg, &c);
        for (int64_t k = 0; k < r; k++) {
            p[i + k] = tp[k];
            sq[i + k] = ts[k];
            if (c.centered) gavg[i + k] = ta[k];
            if (c.has_mom) buf[i + k] = tb[k];
        }
    }
}

/* ---------------- Adam / AdamW ---------------- */
typedef struct { V decay, wd, b1, omb1, b2, omb2, bc2s, eps, nss; int amsgrad, maximize, decoupled, has_wd; } CE_FN(adam_c);

CE_INL void CE_FN(adam_vec)(T *p, T *m, T *v, T *vmax, const T *g, const CE_FN(adam_c) *c) {
    V gi = VLOAD(g);
    if (c->maximize) gi = VNEG(gi);
    V pv = VLOAD(p);
    if (c->has_wd) {
        if (c->decoupled) pv = VMUL(pv, c->decay);
        else gi = VFMA(c->wd, pv, gi);
    }
    V mv = VFMA(c->b1, VLOAD(m), VMUL(c->omb1, gi));
    V vv = VFMA(c->b2, VLOAD(v), VMUL(c->omb2, VMUL(gi, gi)));
    VSTORE(m, mv);
    VSTORE(v, vv);
    if (c->amsgrad) {
        vv = VMAX(VLOAD(vmax), vv);
        VSTORE(vmax, vv);
    }
    V denom = VADD(VDIV(VSQRT(vv), c->bc2s), c->eps);
    VSTORE(p, VFMA(c->nss, VDIV(mv, denom), pv));
}

/* p, m, v, vmax (amsgrad), g: (n); step_size = lr/(1-beta1^step), bc2_sqrt = sqrt(1-beta2^step) */
void CE_FN(ce_adam_seg)(T *p, T *m, T *v, T *vmax, const T *g, int64_t n, const ce_adam_hp *hp,
                        double step_size, double bc2_sqrt) {
    CE_FN(adam_c) c;
    c.decay = VSET1((T)(1.0 - hp->lr * hp->wd));
    c.wd = VSET1((T)hp->wd);
    c.b1 = VSET1((T)hp->beta1);
    c.omb1 = VSET1((T)(1.0 - hp->beta1));
    c.b2 = VSET1((T)hp->beta2);
    c.omb2 = VSET1((T)(1.0 - hp->beta2));
    c.bc2s = VSET1((T)bc2_sqrt);
    c.eps = VSET1((T)hp->eps);
    c.nss = VSET1((T)(-step_size));
    c.amsgrad = hp->amsgrad; c.maximize = hp->maximize; c.decoupled = hp->decoupled;
    c.has_wd = hp->wd != 0.0;
    int64_t i = 0;
    if (c.amsgrad) {
        for (; i + W <= n; i += W) CE_FN(adam_vec)(p + i, m + i, v + i, vmax + i, g + i, &c);
    } else {
        for (; i + W <= n; i += W) CE_FN(adam_vec)(p + i, m + i, v + i, NULL, g + i, &c);
    }
    if (i < n) {
        T tp[W], tm[W], tv[W], tx[W], tg[W];
        int64_t r = n - i;
        for (int k = 0; k < W; k++) {
            tp[k] = k < r ? p[i + k] : (T)0;
            tm[k] = k < r ? m[i + k] : (T)0;
            tv[k] = k < r ? v[i + k] : (T)0;
            tg[k] = k < r ? g[i + k] : (T)0;
            tx[k] = (c.amsgrad && k < r) ? vmax[i + k] : (T)0;
        }
        CE_FN(adam_vec)(tp, tm, tv, tx, tg, &c);
        for (int64_t k = 0; k < r; k++) {
            p[i + k] = tp[k];
            m[i + k] = tm[k];
            v[i + k] = tv[k];
            if (c.amsgrad) vmax[i + k] = tx[k];
        }
    }
}

#undef CE_FN
#undef CE_INL
