/* optim_tmpl.h - the per-segment optimizer updates and gradient-norm reductions, written once with
 * the vm_* macros of vmath.h; included by optim.c once per (ISA, dtype) pair through isa_each.h
 * (the one-lane scalar pairs are the generic path). Formulas: optim.h.
 *
 * A segment is a contiguous piece [0, n) of one tensor (pointers already offset). Every element
 * goes through the same vector code (the tail with partial loads and stores), so the rounding of
 * an element does not depend on where a thread's piece starts. The *_cb functions adapt a
 * segment kernel to ce_multi_apply / ce_reduce_multi (optim.c): they read the group's pointer
 * tables from a dtype-agnostic context and call the kernel on piece [lo, hi) of tensor t.
 * Expects from optim.c: the ce_*_hp records and ce_*_ctx contexts. */

#define CE_OPT_INL static inline __attribute__((always_inline))
/* the tensor-t entry of a pointer table stored as const void * (the caller's T *const *) */
#define CE_OPT_ROW(tab, t) (((vm_s *const *)(tab))[t])
#define CE_OPT_CROW(tab, t) (((const vm_s *const *)(tab))[t])

/* one vector step at offset i: loads full vectors, or the first r lanes at the tail (r < VM_W) */
#define CE_OPT_LD(p, i, r) ((r) ? vm_load_part((p) + (i), r) : vm_load((p) + (i)))
#define CE_OPT_ST(p, i, r, v)                                       \
    do {                                                            \
        if (r) vm_store_part((p) + (i), r, v);                      \
        else vm_store((p) + (i), v);                                \
    } while (0)
/* run STEP(i, r) over [0, n): full vectors, then one partial vector */
#define CE_OPT_LOOP(n, STEP)                                        \
    do {                                                            \
        int64_t i_ = 0;                                             \
        for (; i_ + VM_W <= (n); i_ += VM_W) STEP(i_, 0);           \
        if (i_ < (n)) STEP(i_, (n) - i_);                           \
    } while (0)

/* ---------------- pieces every update shares ---------------- */
/* The gradient's conditioning: maximize (negate g), then weight decay wd: L2 (g += wd * p) or,
 * decoupled (AdamW, NAdam/RAdam decoupled_weight_decay), p *= decay = 1 - lr * wd first. */
typedef struct { vm_t wd, decay; int maximize, has_wd, decoupled; } VM_FN(opt_gc);

CE_OPT_INL VM_FN(opt_gc) VM_FN(opt_gc_set)(double wd, int maximize, int decoupled, double lr) {
    VM_FN(opt_gc) gc;
    gc.wd = vm_set1((vm_s)wd);
    gc.decay = vm_set1((vm_s)(1.0 - lr * wd));
    gc.maximize = maximize;
    gc.has_wd = wd != 0.0;
    gc.decoupled = decoupled;
    return gc;
}

/* the gradient at offset i (r: CE_OPT_LD) after gc; *pv (p, already loaded) decays in place */
CE_OPT_INL vm_t VM_FN(opt_grad)(const vm_s *g, vm_t *pv, int64_t i, int64_t r,
                                const VM_FN(opt_gc) *gc) {
    vm_t gi = CE_OPT_LD(g, i, r);
    if (gc->maximize) gi = vm_mul(gi, vm_set1((vm_s)-1));
    if (gc->has_wd) {
        if (gc->decoupled) *pv = vm_mul(*pv, gc->decay);
        else gi = vm_fmadd(gc->wd, *pv, gi);
    }
    return gi;
}

/* torch's lerp(m, g, w) = m + w*(g - m) for w < 0.5, else g - (1 - w)*(g - m) (Adamax, NAdam,
 * RAdam: the first moment with w = 1 - beta1): lw is w or w - 1 (rounded to the dtype), lo says
 * which base */
typedef struct { vm_t lw; int lo; } VM_FN(opt_lw);

CE_OPT_INL VM_FN(opt_lw) VM_FN(opt_lw_set)(double w) {
    VM_FN(opt_lw) l;
    l.lo = w < 0.5;
    l.lw = l.lo ? vm_set1((vm_s)w) : vm_set1((vm_s)w - (vm_s)1);
    return l;
}

CE_OPT_INL vm_t VM_FN(opt_lerp)(vm_t m, vm_t g, const VM_FN(opt_lw) *l) {
    return vm_fmadd(l->lw, vm_sub(g, m), l->lo ? m : g);
}

/* ---------------- SGD ---------------- */
typedef struct { vm_t nlr, mom, damp1; VM_FN(opt_gc) gc; int first, nesterov, has_mom; } VM_FN(sgd_c);

CE_OPT_INL void VM_FN(sgd_vec)(vm_s *p, vm_s *buf, const vm_s *g, int64_t i, int64_t r,
                               const VM_FN(sgd_c) *c) {
    vm_t pv = CE_OPT_LD(p, i, r);
    vm_t gi = VM_FN(opt_grad)(g, &pv, i, r, &c->gc);
    if (c->has_mom) {
        vm_t b = c->first ? gi : vm_fmadd(c->mom, CE_OPT_LD(buf, i, r), vm_mul(c->damp1, gi));
        CE_OPT_ST(buf, i, r, b);
        gi = c->nesterov ? vm_fmadd(c->mom, b, gi) : b;
    }
    CE_OPT_ST(p, i, r, vm_fmadd(c->nlr, gi, pv));
}

/* p, buf, g: (n); buf unused (may be NULL) when momentum == 0 */
static void VM_FN(sgd_seg)(vm_s *p, vm_s *buf, const vm_s *g, int64_t n, const ce_sgd_hp *hp,
                           int first) {
    VM_FN(sgd_c) c;
    c.nlr = vm_set1((vm_s)(-hp->lr));
    c.mom = vm_set1((vm_s)hp->momentum);
    c.damp1 = vm_set1((vm_s)(1.0 - hp->dampening));
    c.gc = VM_FN(opt_gc_set)(hp->wd, hp->maximize, 0, 0.0);
    c.first = first; c.nesterov = hp->nesterov; c.has_mom = hp->momentum != 0.0;
#define STEP_(i, r) VM_FN(sgd_vec)(p, buf, g, i, r, &c)
    CE_OPT_LOOP(n, STEP_);
#undef STEP_
}

static void VM_FN(sgd_cb)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_sgd_ctx *c = (const ce_sgd_ctx *)vc;
    VM_FN(sgd_seg)(CE_OPT_ROW(c->p, t) + lo, c->buf ? CE_OPT_ROW(c->buf, t) + lo : NULL,
                   CE_OPT_CROW(c->g, t) + lo, hi - lo, &c->hp, c->first ? c->first[t] : 0);
}

/* ---------------- Adagrad ---------------- */
typedef struct { vm_t nclr, eps; VM_FN(opt_gc) gc; } VM_FN(adagrad_c);

CE_OPT_INL void VM_FN(adagrad_vec)(vm_s *p, vm_s *sum, const vm_s *g, int64_t i, int64_t r,
                                   const VM_FN(adagrad_c) *c) {
    vm_t pv = CE_OPT_LD(p, i, r);
    vm_t gi = VM_FN(opt_grad)(g, &pv, i, r, &c->gc);
    vm_t s = vm_fmadd(gi, gi, CE_OPT_LD(sum, i, r));
    CE_OPT_ST(sum, i, r, s);
    vm_t std = vm_add(vm_sqrt(s), c->eps);
    CE_OPT_ST(p, i, r, vm_fmadd(c->nclr, vm_div(gi, std), pv));
}

/* p, sum, g: (n); clr = lr / (1 + (step-1)*lr_decay) */
static void VM_FN(adagrad_seg)(vm_s *p, vm_s *sum, const vm_s *g, int64_t n,
                               const ce_adagrad_hp *hp, double clr) {
    VM_FN(adagrad_c) c;
    c.nclr = vm_set1((vm_s)(-clr));
    c.eps = vm_set1((vm_s)hp->eps);
    c.gc = VM_FN(opt_gc_set)(hp->wd, hp->maximize, 0, 0.0);
#define STEP_(i, r) VM_FN(adagrad_vec)(p, sum, g, i, r, &c)
    CE_OPT_LOOP(n, STEP_);
#undef STEP_
}

static void VM_FN(adagrad_cb)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_adagrad_ctx *c = (const ce_adagrad_ctx *)vc;
    VM_FN(adagrad_seg)(CE_OPT_ROW(c->p, t) + lo, CE_OPT_ROW(c->sum, t) + lo,
                       CE_OPT_CROW(c->g, t) + lo, hi - lo, &c->hp, c->clr[t]);
}

/* ---------------- RMSprop ---------------- */
typedef struct { vm_t nlr, alpha, oma, eps, mom; VM_FN(opt_gc) gc; int centered, has_mom; } VM_FN(rmsprop_c);

CE_OPT_INL void VM_FN(rmsprop_vec)(vm_s *p, vm_s *sq, vm_s *gavg, vm_s *buf, const vm_s *g,
                                   int64_t i, int64_t r, const VM_FN(rmsprop_c) *c) {
    vm_t pv = CE_OPT_LD(p, i, r);
    vm_t gi = VM_FN(opt_grad)(g, &pv, i, r, &c->gc);
    vm_t s = vm_fmadd(c->alpha, CE_OPT_LD(sq, i, r), vm_mul(c->oma, vm_mul(gi, gi)));
    CE_OPT_ST(sq, i, r, s);
    vm_t avg;
    if (c->centered) {
        vm_t ga = vm_fmadd(c->alpha, CE_OPT_LD(gavg, i, r), vm_mul(c->oma, gi));
        CE_OPT_ST(gavg, i, r, ga);
        avg = vm_sqrt(vm_fnmadd(ga, ga, s));
    } else {
        avg = vm_sqrt(s);
    }
    avg = vm_add(avg, c->eps);
    if (c->has_mom) {
        vm_t b = vm_fmadd(c->mom, CE_OPT_LD(buf, i, r), vm_div(gi, avg));
        CE_OPT_ST(buf, i, r, b);
        CE_OPT_ST(p, i, r, vm_fmadd(c->nlr, b, pv));
    } else {
        CE_OPT_ST(p, i, r, vm_fmadd(c->nlr, vm_div(gi, avg), pv));
    }
}

/* p, sq, gavg (centered), buf (momentum > 0), g: (n) */
static void VM_FN(rmsprop_seg)(vm_s *p, vm_s *sq, vm_s *gavg, vm_s *buf, const vm_s *g, int64_t n,
                               const ce_rmsprop_hp *hp) {
    VM_FN(rmsprop_c) c;
    c.nlr = vm_set1((vm_s)(-hp->lr));
    c.alpha = vm_set1((vm_s)hp->alpha);
    c.oma = vm_set1((vm_s)(1.0 - hp->alpha));
    c.eps = vm_set1((vm_s)hp->eps);
    c.mom = vm_set1((vm_s)hp->momentum);
    c.gc = VM_FN(opt_gc_set)(hp->wd, hp->maximize, 0, 0.0);
    c.centered = hp->centered; c.has_mom = hp->momentum > 0.0;
#define STEP_(i, r) VM_FN(rmsprop_vec)(p, sq, gavg, buf, g, i, r, &c)
    CE_OPT_LOOP(n, STEP_);
#undef STEP_
}

static void VM_FN(rmsprop_cb)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_rmsprop_ctx *c = (const ce_rmsprop_ctx *)vc;
    VM_FN(rmsprop_seg)(CE_OPT_ROW(c->p, t) + lo, CE_OPT_ROW(c->sq, t) + lo,
                       c->gavg ? CE_OPT_ROW(c->gavg, t) + lo : NULL,
                       c->buf ? CE_OPT_ROW(c->buf, t) + lo : NULL, CE_OPT_CROW(c->g, t) + lo,
                       hi - lo, &c->hp);
}

/* ---------------- Adam / AdamW ---------------- */
typedef struct { vm_t b1, omb1, b2, omb2, bc2s, eps, nss; VM_FN(opt_gc) gc; int amsgrad; } VM_FN(adam_c);

CE_OPT_INL void VM_FN(adam_vec)(vm_s *p, vm_s *m, vm_s *v, vm_s *vmax, const vm_s *g, int64_t i,
                                int64_t r, const VM_FN(adam_c) *c) {
    vm_t pv = CE_OPT_LD(p, i, r);
    vm_t gi = VM_FN(opt_grad)(g, &pv, i, r, &c->gc);
    vm_t mv = vm_fmadd(c->b1, CE_OPT_LD(m, i, r), vm_mul(c->omb1, gi));
    vm_t vv = vm_fmadd(c->b2, CE_OPT_LD(v, i, r), vm_mul(c->omb2, vm_mul(gi, gi)));
    CE_OPT_ST(m, i, r, mv);
    CE_OPT_ST(v, i, r, vv);
    if (c->amsgrad) {
        vv = vm_max(CE_OPT_LD(vmax, i, r), vv);
        CE_OPT_ST(vmax, i, r, vv);
    }
    vm_t denom = vm_add(vm_div(vm_sqrt(vv), c->bc2s), c->eps);
    CE_OPT_ST(p, i, r, vm_fmadd(c->nss, vm_div(mv, denom), pv));
}

/* p, m, v, vmax (amsgrad), g: (n); step_size = lr/(1-beta1^step), bc2_sqrt = sqrt(1-beta2^step) */
static void VM_FN(adam_seg)(vm_s *p, vm_s *m, vm_s *v, vm_s *vmax, const vm_s *g, int64_t n,
                            const ce_adam_hp *hp, double step_size, double bc2_sqrt) {
    VM_FN(adam_c) c;
    c.gc = VM_FN(opt_gc_set)(hp->wd, hp->maximize, hp->decoupled, hp->lr);
    c.b1 = vm_set1((vm_s)hp->beta1);
    c.omb1 = vm_set1((vm_s)(1.0 - hp->beta1));
    c.b2 = vm_set1((vm_s)hp->beta2);
    c.omb2 = vm_set1((vm_s)(1.0 - hp->beta2));
    c.bc2s = vm_set1((vm_s)bc2_sqrt);
    c.eps = vm_set1((vm_s)hp->eps);
    c.nss = vm_set1((vm_s)(-step_size));
    c.amsgrad = hp->amsgrad;
#define STEP_(i, r) VM_FN(adam_vec)(p, m, v, vmax, g, i, r, &c)
    CE_OPT_LOOP(n, STEP_);
#undef STEP_
}

static void VM_FN(adam_cb)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_adam_ctx *c = (const ce_adam_ctx *)vc;
    VM_FN(adam_seg)(CE_OPT_ROW(c->p, t) + lo, CE_OPT_ROW(c->m, t) + lo, CE_OPT_ROW(c->v, t) + lo,
                    c->vmax ? CE_OPT_ROW(c->vmax, t) + lo : NULL, CE_OPT_CROW(c->g, t) + lo,
                    hi - lo, &c->hp, c->sc[2 * t], c->sc[2 * t + 1]);
}

/* ---------------- Adadelta ---------------- */
typedef struct { vm_t nlr, rho, omr, eps; VM_FN(opt_gc) gc; } VM_FN(adadelta_c);

CE_OPT_INL void VM_FN(adadelta_vec)(vm_s *p, vm_s *sq, vm_s *acc, const vm_s *g, int64_t i,
                                    int64_t r, const VM_FN(adadelta_c) *c) {
    vm_t pv = CE_OPT_LD(p, i, r);
    vm_t gi = VM_FN(opt_grad)(g, &pv, i, r, &c->gc);
    vm_t s = vm_fmadd(c->rho, CE_OPT_LD(sq, i, r), vm_mul(c->omr, vm_mul(gi, gi)));
    CE_OPT_ST(sq, i, r, s);
    vm_t a = CE_OPT_LD(acc, i, r);
    vm_t d = vm_mul(vm_div(vm_sqrt(vm_add(a, c->eps)), vm_sqrt(vm_add(s, c->eps))), gi);
    CE_OPT_ST(acc, i, r, vm_fmadd(c->rho, a, vm_mul(c->omr, vm_mul(d, d))));
    CE_OPT_ST(p, i, r, vm_fmadd(c->nlr, d, pv));
}

/* p, sq (square_avg), acc (acc_delta), g: (n) */
static void VM_FN(adadelta_seg)(vm_s *p, vm_s *sq, vm_s *acc, const vm_s *g, int64_t n,
                                const ce_adadelta_hp *hp) {
    VM_FN(adadelta_c) c;
    c.nlr = vm_set1((vm_s)(-hp->lr));
    c.rho = vm_set1((vm_s)hp->rho);
    c.omr = vm_set1((vm_s)(1.0 - hp->rho));
    c.eps = vm_set1((vm_s)hp->eps);
    c.gc = VM_FN(opt_gc_set)(hp->wd, hp->maximize, 0, 0.0);
#define STEP_(i, r) VM_FN(adadelta_vec)(p, sq, acc, g, i, r, &c)
    CE_OPT_LOOP(n, STEP_);
#undef STEP_
}

static void VM_FN(adadelta_cb)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_adadelta_ctx *c = (const ce_adadelta_ctx *)vc;
    VM_FN(adadelta_seg)(CE_OPT_ROW(c->p, t) + lo, CE_OPT_ROW(c->sq, t) + lo,
                        CE_OPT_ROW(c->acc, t) + lo, CE_OPT_CROW(c->g, t) + lo, hi - lo, &c->hp);
}

/* ---------------- Adamax ---------------- */
typedef struct { vm_t nclr, b2, eps; VM_FN(opt_gc) gc; VM_FN(opt_lw) lw; } VM_FN(adamax_c);

CE_OPT_INL void VM_FN(adamax_vec)(vm_s *p, vm_s *m, vm_s *u, const vm_s *g, int64_t i, int64_t r,
                                  const VM_FN(adamax_c) *c) {
    vm_t pv = CE_OPT_LD(p, i, r);
    vm_t gi = VM_FN(opt_grad)(g, &pv, i, r, &c->gc);
    vm_t mv = VM_FN(opt_lerp)(CE_OPT_LD(m, i, r), gi, &c->lw);
    vm_t ub = vm_mul(CE_OPT_LD(u, i, r), c->b2);
    /* max(u*beta2, |g| + eps), NaN from either side kept (torch.maximum) */
    vm_t un = vm_max(ub, vm_add(vm_abs(gi), c->eps));
    un = vm_sel(vm_unord(ub, ub), ub, un);
    CE_OPT_ST(m, i, r, mv);
    CE_OPT_ST(u, i, r, un);
    CE_OPT_ST(p, i, r, vm_fmadd(c->nclr, vm_div(mv, un), pv));
}

/* p, m (exp_avg), u (exp_inf), g: (n); clr = lr / (1 - beta1^step) */
static void VM_FN(adamax_seg)(vm_s *p, vm_s *m, vm_s *u, const vm_s *g, int64_t n,
                              const ce_adamax_hp *hp, double clr) {
    VM_FN(adamax_c) c;
    c.lw = VM_FN(opt_lw_set)(1.0 - hp->beta1);
    c.nclr = vm_set1((vm_s)(-clr));
    c.b2 = vm_set1((vm_s)hp->beta2);
    c.eps = vm_set1((vm_s)hp->eps);
    c.gc = VM_FN(opt_gc_set)(hp->wd, hp->maximize, 0, 0.0);
#define STEP_(i, r) VM_FN(adamax_vec)(p, m, u, g, i, r, &c)
    CE_OPT_LOOP(n, STEP_);
#undef STEP_
}

static void VM_FN(adamax_cb)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_adamax_ctx *c = (const ce_adamax_ctx *)vc;
    VM_FN(adamax_seg)(CE_OPT_ROW(c->p, t) + lo, CE_OPT_ROW(c->m, t) + lo,
                      CE_OPT_ROW(c->u, t) + lo, CE_OPT_CROW(c->g, t) + lo, hi - lo, &c->hp,
                      c->sc[t]);
}

/* ---------------- NAdam ---------------- */
typedef struct { vm_t b2, omb2, bc2, eps, cg, cm; VM_FN(opt_gc) gc; VM_FN(opt_lw) lw; } VM_FN(nadam_c);

CE_OPT_INL void VM_FN(nadam_vec)(vm_s *p, vm_s *m, vm_s *v, const vm_s *g, int64_t i, int64_t r,
                                 const VM_FN(nadam_c) *c) {
    vm_t pv = CE_OPT_LD(p, i, r);
    vm_t gi = VM_FN(opt_grad)(g, &pv, i, r, &c->gc);
    vm_t mv = VM_FN(opt_lerp)(CE_OPT_LD(m, i, r), gi, &c->lw);
    vm_t vv = vm_fmadd(c->b2, CE_OPT_LD(v, i, r), vm_mul(c->omb2, vm_mul(gi, gi)));
    CE_OPT_ST(m, i, r, mv);
    CE_OPT_ST(v, i, r, vv);
    vm_t denom = vm_add(vm_sqrt(vm_div(vv, c->bc2)), c->eps);
    pv = vm_fmadd(c->cg, vm_div(gi, denom), pv);
    CE_OPT_ST(p, i, r, vm_fmadd(c->cm, vm_div(mv, denom), pv));
}

/* p, m (exp_avg), v (exp_avg_sq), g: (n); sc = {1 - beta2^step, grad coefficient, exp_avg
 * coefficient} (optim.c: ce_nadam_scalars) */
static void VM_FN(nadam_seg)(vm_s *p, vm_s *m, vm_s *v, const vm_s *g, int64_t n,
                             const ce_nadam_hp *hp, const double *sc) {
    VM_FN(nadam_c) c;
    c.lw = VM_FN(opt_lw_set)(1.0 - hp->beta1);
    c.gc = VM_FN(opt_gc_set)(hp->wd, hp->maximize, hp->decoupled, hp->lr);
    c.b2 = vm_set1((vm_s)hp->beta2);
    c.omb2 = vm_set1((vm_s)(1.0 - hp->beta2));
    c.bc2 = vm_set1((vm_s)sc[0]);
    c.eps = vm_set1((vm_s)hp->eps);
    c.cg = vm_set1((vm_s)sc[1]);
    c.cm = vm_set1((vm_s)sc[2]);
#define STEP_(i, r) VM_FN(nadam_vec)(p, m, v, g, i, r, &c)
    CE_OPT_LOOP(n, STEP_);
#undef STEP_
}

static void VM_FN(nadam_cb)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_nadam_ctx *c = (const ce_nadam_ctx *)vc;
    VM_FN(nadam_seg)(CE_OPT_ROW(c->p, t) + lo, CE_OPT_ROW(c->m, t) + lo,
                     CE_OPT_ROW(c->v, t) + lo, CE_OPT_CROW(c->g, t) + lo, hi - lo, &c->hp,
                     c->sc + 3 * t);
}

/* ---------------- RAdam ---------------- */
typedef struct { vm_t b2, omb2, eps, nk; VM_FN(opt_gc) gc; VM_FN(opt_lw) lw; int rect; } VM_FN(radam_c);

CE_OPT_INL void VM_FN(radam_vec)(vm_s *p, vm_s *m, vm_s *v, const vm_s *g, int64_t i, int64_t r,
                                 const VM_FN(radam_c) *c) {
    vm_t pv = CE_OPT_LD(p, i, r);
    vm_t gi = VM_FN(opt_grad)(g, &pv, i, r, &c->gc);
    vm_t mv = VM_FN(opt_lerp)(CE_OPT_LD(m, i, r), gi, &c->lw);
    vm_t vv = vm_fmadd(c->b2, CE_OPT_LD(v, i, r), vm_mul(c->omb2, vm_mul(gi, gi)));
    CE_OPT_ST(m, i, r, mv);
    CE_OPT_ST(v, i, r, vv);
    vm_t upd = c->rect ? vm_div(mv, vm_add(vm_sqrt(vv), c->eps)) : mv;
    CE_OPT_ST(p, i, r, vm_fmadd(c->nk, upd, pv));
}

/* p, m (exp_avg), v (exp_avg_sq), g: (n); sc = {k, rect}: p -= k * m / (sqrt(v) + eps) when
 * rect != 0, else p -= k * m (optim.c: ce_radam_scalars) */
static void VM_FN(radam_seg)(vm_s *p, vm_s *m, vm_s *v, const vm_s *g, int64_t n,
                             const ce_radam_hp *hp, const double *sc) {
    VM_FN(radam_c) c;
    c.lw = VM_FN(opt_lw_set)(1.0 - hp->beta1);
    c.gc = VM_FN(opt_gc_set)(hp->wd, hp->maximize, hp->decoupled, hp->lr);
    c.b2 = vm_set1((vm_s)hp->beta2);
    c.omb2 = vm_set1((vm_s)(1.0 - hp->beta2));
    c.eps = vm_set1((vm_s)hp->eps);
    c.nk = vm_set1((vm_s)(-sc[0]));
    c.rect = sc[1] != 0.0;
#define STEP_(i, r) VM_FN(radam_vec)(p, m, v, g, i, r, &c)
    CE_OPT_LOOP(n, STEP_);
#undef STEP_
}

static void VM_FN(radam_cb)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_radam_ctx *c = (const ce_radam_ctx *)vc;
    VM_FN(radam_seg)(CE_OPT_ROW(c->p, t) + lo, CE_OPT_ROW(c->m, t) + lo,
                     CE_OPT_ROW(c->v, t) + lo, CE_OPT_CROW(c->g, t) + lo, hi - lo, &c->hp,
                     c->sc + 2 * t);
}

/* ---------------- gradient-norm helpers ---------------- */
/* x: (n); sum of x^2 accumulated in double, four accumulators in a fixed order */
static double VM_FN(sumsq_seg)(const vm_s *x, int64_t n) {
    vm_dacc_t a0 = vm_dacc_zero(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 4 * VM_W <= n; i += 4 * VM_W) {
        a0 = vm_dacc_sq(a0, vm_load(x + i));
        a1 = vm_dacc_sq(a1, vm_load(x + i + VM_W));
        a2 = vm_dacc_sq(a2, vm_load(x + i + 2 * VM_W));
        a3 = vm_dacc_sq(a3, vm_load(x + i + 3 * VM_W));
    }
    for (; i + VM_W <= n; i += VM_W) a0 = vm_dacc_sq(a0, vm_load(x + i));
    if (i < n) a1 = vm_dacc_sq(a1, vm_load_part(x + i, n - i));   /* zero lanes add nothing */
    return vm_dacc_hsum(vm_dacc_add(vm_dacc_add(a0, a1), vm_dacc_add(a2, a3)));
}

/* x: (n); max |x|, NaN if any element is NaN (the vector max drops NaN: an unordered-compare
 * mask collects them) */
static double VM_FN(absmax_seg)(const vm_s *x, int64_t n) {
    vm_t m0 = vm_zero(), m1 = m0;
    vm_m bad = vm_lt(m0, m0);   /* all false */
    int64_t i = 0;
    for (; i + 2 * VM_W <= n; i += 2 * VM_W) {
        vm_t v0 = vm_load(x + i), v1 = vm_load(x + i + VM_W);
        bad = vm_mor(bad, vm_unord(v0, v1));
        m0 = vm_max(m0, vm_abs(v0));
        m1 = vm_max(m1, vm_abs(v1));
    }
    for (; i < n; i += VM_W) {   /* last vectors; a partial one reads 0 past n */
        vm_t v = n - i >= VM_W ? vm_load(x + i) : vm_load_part(x + i, n - i);
        bad = vm_mor(bad, vm_unord(v, v));
        m0 = vm_max(m0, vm_abs(v));
    }
    if (vm_any(bad)) return NAN;
    return (double)vm_hmax(vm_max(m0, m1));
}

/* x: (n); x *= alpha (alpha rounded to the dtype) */
static void VM_FN(scale_seg)(vm_s *x, int64_t n, double alpha) {
    const vm_t a = vm_set1((vm_s)alpha);
#define STEP_(i, r) CE_OPT_ST(x, i, r, vm_mul(CE_OPT_LD(x, i, r), a))
    CE_OPT_LOOP(n, STEP_);
#undef STEP_
}

static double VM_FN(sumsq_cb)(const void *xs, int64_t t, int64_t lo, int64_t hi) {
    return VM_FN(sumsq_seg)(CE_OPT_CROW(xs, t) + lo, hi - lo);
}

static double VM_FN(absmax_cb)(const void *xs, int64_t t, int64_t lo, int64_t hi) {
    return VM_FN(absmax_seg)(CE_OPT_CROW(xs, t) + lo, hi - lo);
}

static void VM_FN(scale_cb)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_scale_ctx *c = (const ce_scale_ctx *)vc;
    VM_FN(scale_seg)(CE_OPT_ROW(c->x, t) + lo, hi - lo, c->alpha);
}

#undef CE_OPT_INL
#undef CE_OPT_ROW
#undef CE_OPT_CROW
#undef CE_OPT_LD
#undef CE_OPT_ST
#undef CE_OPT_LOOP
