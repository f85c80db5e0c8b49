/* optim_driver.h - template for the public multi-tensor entry points of optim.h, instantiated
 * once per dtype in optim.c with T (float/double) and TS (f32/f64) defined. Each entry point
 * picks the segment kernel for ce_isa, computes the per-tensor step scalars in double, and hands
 * the group to ce_multi_apply (optim.c), which splits it into cache-line aligned chunks across
 * threads. The *_ref twins run the generic kernel tensor by tensor on one thread. */
#define CE_D(name) CE_CAT(name, TS)                       /* ce_sgd_step_ -> ce_sgd_step_f32 */
#define CE_SEG(name, isa) CE_CAT(CE_CAT(name, TS), isa)   /* (ce_sgd_seg_, _avx2) */
#define CE_LINE ((int64_t)(CE_ALIGN / sizeof(T)))

/* ---------------- SGD ---------------- */
typedef void (*CE_D(ce_sgd_fn_))(T *, T *, const T *, int64_t, const ce_sgd_hp *, int);
typedef struct {
    T *const *p; T *const *buf; const T *const *g; const uint8_t *first;
    const ce_sgd_hp *hp; CE_D(ce_sgd_fn_) fn;
} CE_D(ce_sgd_ctx_);

static void CE_D(ce_sgd_cb_)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const CE_D(ce_sgd_ctx_) *c = (const CE_D(ce_sgd_ctx_) *)vc;
    c->fn(c->p[t] + lo, c->buf ? c->buf[t] + lo : NULL, c->g[t] + lo, hi - lo, c->hp,
          c->first ? c->first[t] : 0);
}

void CE_D(ce_sgd_step_)(T *const *params, T *const *bufs, const T *const *grads,
                        const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                        double lr, double momentum, double dampening, double weight_decay,
                        int nesterov, int maximize) {
    if (ntensors <= 0) return;
    ce_sgd_hp hp = {lr, momentum, dampening, weight_decay, nesterov, maximize};
    CE_D(ce_sgd_ctx_) c = {params, momentum != 0.0 ? bufs : NULL, grads, first, &hp,
                           ce_isa >= CE_ISA_AVX512 ? CE_SEG(ce_sgd_seg_, _avx512)
                           : ce_isa >= CE_ISA_AVX2 ? CE_SEG(ce_sgd_seg_, _avx2)
                                                   : CE_SEG(ce_sgd_seg_, _generic)};
    ce_multi_apply(sizes, ntensors, CE_LINE, CE_OPTIM_MIN_PER_THREAD, CE_D(ce_sgd_cb_), &c);
}

void CE_CAT(CE_D(ce_sgd_step_), _ref)(T *const *params, T *const *bufs, const T *const *grads,
                                      const uint8_t *first, const int64_t *sizes,
                                      int64_t ntensors, double lr, double momentum,
                                      double dampening, double weight_decay, int nesterov,
                                      int maximize) {
    ce_sgd_hp hp = {lr, momentum, dampening, weight_decay, nesterov, maximize};
    for (int64_t t = 0; t < ntensors; t++)
        CE_SEG(ce_sgd_seg_, _generic)(params[t], momentum != 0.0 ? bufs[t] : NULL, grads[t],
                                      sizes[t], &hp, first ? first[t] : 0);
}

/* ---------------- Adagrad ---------------- */
typedef void (*CE_D(ce_adagrad_fn_))(T *, T *, const T *, int64_t, const ce_adagrad_hp *, double);
typedef struct {
    T *const *p; T *const *sum; const T *const *g; const double *clr;
    const ce_adagrad_hp *hp; CE_D(ce_adagrad_fn_) fn;
} CE_D(ce_adagrad_ctx_);

static void CE_D(ce_adagrad_cb_)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const CE_D(ce_adagrad_ctx_) *c = (const CE_D(ce_adagrad_ctx_) *)vc;
    c->fn(c->p[t] + lo, c->sum[t] + lo, c->g[t] + lo, hi - lo, c->hp, c->clr[t]);
}

void CE_D(ce_adagrad_step_)(T *const *params, T *const *sums, const T *const *grads,
                            const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                            double lr, double lr_decay, double weight_decay, double eps,
                            int maximize) {
    if (ntensors <= 0) return;
    ce_adagrad_hp hp = {lr_decay, weight_decay, eps, maximize};
    double stack_clr[64];
    double *clr = ntensors <= 64 ? stack_clr : (double *)malloc(sizeof(double) * ntensors);
    if (!clr) { CE_CAT(CE_D(ce_adagrad_step_), _ref)(params, sums, grads, steps, sizes, ntensors,
                                                     lr, lr_decay, weight_decay, eps, maximize);
                return; }
    for (int64_t t = 0; t < ntensors; t++)   /* torch: clr = lr / (1 + (step - 1) * lr_decay) */
        clr[t] = lr / (1.0 + (double)(steps[t] - 1) * lr_decay);
    CE_D(ce_adagrad_ctx_) c = {params, sums, grads, clr, &hp,
                               ce_isa >= CE_ISA_AVX512 ? CE_SEG(ce_adagrad_seg_, _avx512)
                               : ce_isa >= CE_ISA_AVX2 ? CE_SEG(ce_adagrad_seg_, _avx2)
                                                       : CE_SEG(ce_adagrad_seg_, _generic)};
    ce_multi_apply(sizes, ntensors, CE_LINE, CE_OPTIM_MIN_PER_THREAD, CE_D(ce_adagrad_cb_), &c);
    if (clr != stack_clr) free(clr);
}

void CE_CAT(CE_D(ce_adagrad_step_), _ref)(T *const *params, T *const *sums,
                                          const T *const *grads, const int64_t *steps,
                                          const int64_t *sizes, int64_t ntensors, double lr,
                                          double lr_decay, double weight_decay, double eps,
                                          int maximize) {
    ce_adagrad_hp hp = {lr_decay, weight_decay, eps, maximize};
    for (int64_t t = 0; t < ntensors; t++)
        CE_SEG(ce_adagrad_seg_, _generic)(params[t], sums[t], grads[t], sizes[t], &hp,
                                          lr / (1.0 + (double)(steps[t] - 1) * lr_decay));
}

/* ---------------- RMSprop ---------------- */
typedef void (*CE_D(ce_rmsprop_fn_))(T *, T *, T *, T *, const T *, int64_t, const ce_rmsprop_hp *);
typedef struct {
    T *const *p; T *const *sq; T *const *gavg; T *const *buf; const T *const *g;
    const ce_rmsprop_hp *hp; CE_D(ce_rmsprop_fn_) fn;
} CE_D(ce_rmsprop_ctx_);

static void CE_D(ce_rmsprop_cb_)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const CE_D(ce_rmsprop_ctx_) *c = (const CE_D(ce_rmsprop_ctx_) *)vc;
    c->fn(c->p[t] + lo, c->sq[t] + lo, c->gavg ? c->gavg[t] + lo : NULL,
          c->buf ? c->buf[t] + lo : NULL, c->g[t] + lo, hi - lo, c->hp);
}

void CE_D(ce_rmsprop_step_)(T *const *params, T *const *square_avgs, T *const *grad_avgs,
                            T *const *bufs, const T *const *grads, const int64_t *sizes,
                            int64_t ntensors, double lr, double alpha, double eps,
                            double weight_decay, double momentum, int centered, int maximize) {
    if (ntensors <= 0) return;
    ce_rmsprop_hp hp = {lr, alpha, eps, weight_decay, momentum, centered, maximize};
    CE_D(ce_rmsprop_ctx_) c = {params, square_avgs, centered ? grad_avgs : NULL,
                               momentum > 0.0 ? bufs : NULL, grads, &hp,
                               ce_isa >= CE_ISA_AVX512 ? CE_SEG(ce_rmsprop_seg_, _avx512)
                               : ce_isa >= CE_ISA_AVX2 ? CE_SEG(ce_rmsprop_seg_, _avx2)
                                                       : CE_SEG(ce_rmsprop_seg_, _generic)};
    ce_multi_apply(sizes, ntensors, CE_LINE, CE_OPTIM_MIN_PER_THREAD, CE_D(ce_rmsprop_cb_), &c);
}

void CE_CAT(CE_D(ce_rmsprop_step_), _ref)(T *const *params, T *const *square_avgs,
                                          T *const *grad_avgs, T *const *bufs,
                                          const T *const *grads, const int64_t *sizes,
                                          int64_t ntensors, double lr, double alpha, double eps,
                                          double weight_decay, double momentum, int centered,
                                          int maximize) {
    ce_rmsprop_hp hp = {lr, alpha, eps, weight_decay, momentum, centered, maximize};
    for (int64_t t = 0; t < ntensors; t++)
        CE_SEG(ce_rmsprop_seg_, _generic)(params[t], square_avgs[t],
                                          centered ? grad_avgs[t] : NULL,
                                          momentum > 0.0 ? bufs[t] : NULL, grads[t], sizes[t],
                                          &hp);
}

/* ---------------- Adam / AdamW ---------------- */
typedef void (*CE_D(ce_adam_fn_))(T *, T *, T *, T *, const T *, int64_t, const ce_adam_hp *,
                                  double, double);
typedef struct {
    T *const *p; T *const *m; T *const *v; T *const *vmax; const T *const *g;
    const double *sc; const ce_adam_hp *hp; CE_D(ce_adam_fn_) fn;
} CE_D(ce_adam_ctx_);

static void CE_D(ce_adam_cb_)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const CE_D(ce_adam_ctx_) *c = (const CE_D(ce_adam_ctx_) *)vc;
    c->fn(c->p[t] + lo, c->m[t] + lo, c->v[t] + lo, c->vmax ? c->vmax[t] + lo : NULL,
          c->g[t] + lo, hi - lo, c->hp, c->sc[2 * t], c->sc[2 * t + 1]);
}

/* torch: step_size = lr / (1 - beta1^step), bias_correction2_sqrt = sqrt(1 - beta2^step) */
static void CE_D(ce_adam_scalars_)(double *sc, const int64_t *steps, int64_t ntensors, double lr,
                                   double beta1, double beta2) {
    for (int64_t t = 0; t < ntensors; t++) {
        if (t > 0 && steps[t] == steps[t - 1]) {
            sc[2 * t] = sc[2 * t - 2];
            sc[2 * t + 1] = sc[2 * t - 1];
            continue;
        }
        double s = (double)steps[t];
        sc[2 * t] = lr / (1.0 - pow(beta1, s));
        sc[2 * t + 1] = sqrt(1.0 - pow(beta2, s));
    }
}

void CE_CAT(CE_D(ce_adam_step_), _ref)(T *const *params, T *const *exp_avgs,
                                       T *const *exp_avg_sqs, T *const *max_exp_avg_sqs,
                                       const T *const *grads, const int64_t *steps,
                                       const int64_t *sizes, int64_t ntensors, double lr,
                                       double beta1, double beta2, double eps,
                                       double weight_decay, int amsgrad, int maximize,
                                       int decoupled) {
    ce_adam_hp hp = {lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled};
    for (int64_t t = 0; t < ntensors; t++) {
        double sc[2];
        CE_D(ce_adam_scalars_)(sc, steps + t, 1, lr, beta1, beta2);
        CE_SEG(ce_adam_seg_, _generic)(params[t], exp_avgs[t], exp_avg_sqs[t],
                                       amsgrad ? max_exp_avg_sqs[t] : NULL, grads[t], sizes[t],
                                       &hp, sc[0], sc[1]);
    }
}

void CE_D(ce_adam_step_)(T *const *params, T *const *exp_avgs, T *const *exp_avg_sqs,
                         T *const *max_exp_avg_sqs, const T *const *grads, const int64_t *steps,
                         const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                         double beta2, double eps, double weight_decay, int amsgrad,
                         int maximize, int decoupled) {
    if (ntensors <= 0) return;
    ce_adam_hp hp = {lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled};
    double stack_sc[128];
    double *sc = ntensors <= 64 ? stack_sc : (double *)malloc(sizeof(double) * 2 * ntensors);
    if (!sc) {
        CE_CAT(CE_D(ce_adam_step_), _ref)(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, grads,
                                          steps, sizes, ntensors, lr, beta1, beta2, eps,
                                          weight_decay, amsgrad, maximize, decoupled);
        return;
    }
    CE_D(ce_adam_scalars_)(sc, steps, ntensors, lr, beta1, beta2);
    CE_D(ce_adam_ctx_) c = {params, exp_avgs, exp_avg_sqs, amsgrad ? max_exp_avg_sqs : NULL,
                            grads, sc, &hp,
                            ce_isa >= CE_ISA_AVX512 ? CE_SEG(ce_adam_seg_, _avx512)
                            : ce_isa >= CE_ISA_AVX2 ? CE_SEG(ce_adam_seg_, _avx2)
                                                    : CE_SEG(ce_adam_seg_, _generic)};
    ce_multi_apply(sizes, ntensors, CE_LINE, CE_OPTIM_MIN_PER_THREAD, CE_D(ce_adam_cb_), &c);
    if (sc != stack_sc) free(sc);
}

/* ---------------- norms for clip_grad_norm_ ---------------- */
typedef double (*CE_D(ce_red_fn_))(const T *, int64_t);

/* out = combine over fixed blocks of CE_RED_BLOCK elements (tensors laid out padded to a cache
 * line) of fn(segment); block results are combined in block order, so the result is the same
 * for any thread count. is_max: combine by NaN-propagating max, else by sum. */
static void CE_D(ce_reduce_multi_)(double *out, const T *const *xs, const int64_t *sizes,
                                   int64_t ntensors, CE_D(ce_red_fn_) fn, int is_max) {
    *out = 0.0;
    if (ntensors <= 0) return;
    int64_t stack_off[65];
    int64_t *off = ntensors < 65 ? stack_off : (int64_t *)malloc(sizeof(int64_t) * (ntensors + 1));
    if (!off) {   /* out of memory for the layout: one sequential pass */
        double r = 0.0;
        for (int64_t t = 0; t < ntensors; t++) {
            double s = fn(xs[t], sizes[t]);
            r = is_max ? ce_nanmax(r, s) : r + s;
        }
        *out = r;
        return;
    }
    ce_layout(off, sizes, ntensors, CE_LINE);
    int64_t total = off[ntensors];
    int64_t nblk = (total + CE_RED_BLOCK - 1) / CE_RED_BLOCK;
    double stack_part[64];
    double *part = nblk <= 64 ? stack_part : (double *)malloc(sizeof(double) * (nblk > 0 ? nblk : 1));
    if (!part) {
        double r = 0.0;
        for (int64_t t = 0; t < ntensors; t++) {
            double s = fn(xs[t], sizes[t]);
            r = is_max ? ce_nanmax(r, s) : r + s;
        }
        *out = r;
        if (off != stack_off) free(off);
        return;
    }
    int nt = ce_threads_for(total, CE_RED_MIN_PER_THREAD);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t b = 0; b < nblk; b++) {
        int64_t lo = b * CE_RED_BLOCK, hi = lo + CE_RED_BLOCK < total ? lo + CE_RED_BLOCK : total;
        double r = 0.0;
        for (int64_t t = ce_find_tensor(off, ntensors, lo); t < ntensors && off[t] < hi; t++) {
            int64_t s = lo > off[t] ? lo - off[t] : 0;
            int64_t e = (hi < off[t + 1] ? hi : off[t + 1]) - off[t];
            if (e > sizes[t]) e = sizes[t];
            if (s < e) {
                double v = fn(xs[t] + s, e - s);
                r = is_max ? ce_nanmax(r, v) : r + v;
            }
        }
        part[b] = r;
    }
    double r = 0.0;
    for (int64_t b = 0; b < nblk; b++) r = is_max ? ce_nanmax(r, part[b]) : r + part[b];
    *out = r;
    if (part != stack_part) free(part);
    if (off != stack_off) free(off);
}

void CE_D(ce_sumsq_multi_)(double *out, const T *const *xs, const int64_t *sizes,
                           int64_t ntensors) {
    CE_D(ce_reduce_multi_)(out, xs, sizes, ntensors,
                           ce_isa >= CE_ISA_AVX512 ? CE_SEG(ce_sumsq_seg_, _avx512)
                           : ce_isa >= CE_ISA_AVX2 ? CE_SEG(ce_sumsq_seg_, _avx2)
                                                   : CE_SEG(ce_sumsq_seg_, _generic), 0);
}

void CE_D(ce_absmax_multi_)(double *out, const T *const *xs, const int64_t *sizes,
                            int64_t ntensors) {
    CE_D(ce_reduce_multi_)(out, xs, sizes, ntensors,
                           ce_isa >= CE_ISA_AVX512 ? CE_SEG(ce_absmax_seg_, _avx512)
                           : ce_isa >= CE_ISA_AVX2 ? CE_SEG(ce_absmax_seg_, _avx2)
                                                   : CE_SEG(ce_absmax_seg_, _generic), 1);
}

/* plain references: one sequential pass in double */
void CE_CAT(CE_D(ce_sumsq_multi_), _ref)(double *out, const T *const *xs, const int64_t *sizes,
                                         int64_t ntensors) {
    double s = 0.0;
    for (int64_t t = 0; t < ntensors; t++)
        for (int64_t i = 0; i < sizes[t]; i++) s += (double)xs[t][i] * (double)xs[t][i];
    *out = s;
}

void CE_CAT(CE_D(ce_absmax_multi_), _ref)(double *out, const T *const *xs, const int64_t *sizes,
                                          int64_t ntensors) {
    double m = 0.0;
    for (int64_t t = 0; t < ntensors; t++)
        for (int64_t i = 0; i < sizes[t]; i++) m = ce_nanmax(m, fabs((double)xs[t][i]));
    *out = m;
}

typedef struct { T *const *x; double alpha; void (*fn)(T *, int64_t, double); } CE_D(ce_scale_ctx_);

static void CE_D(ce_scale_cb_)(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const CE_D(ce_scale_ctx_) *c = (const CE_D(ce_scale_ctx_) *)vc;
    c->fn(c->x[t] + lo, hi - lo, c->alpha);
}

void CE_D(ce_scale_multi_)(T *const *xs, const int64_t *sizes, int64_t ntensors, double alpha) {
    if (ntensors <= 0) return;
    CE_D(ce_scale_ctx_) c = {xs, alpha,
                             ce_isa >= CE_ISA_AVX512 ? CE_SEG(ce_scale_seg_, _avx512)
                             : ce_isa >= CE_ISA_AVX2 ? CE_SEG(ce_scale_seg_, _avx2)
                                                     : CE_SEG(ce_scale_seg_, _generic)};
    ce_multi_apply(sizes, ntensors, CE_LINE, CE_OPTIM_MIN_PER_THREAD, CE_D(ce_scale_cb_), &c);
}

#undef CE_D
#undef CE_SEG
#undef CE_LINE
