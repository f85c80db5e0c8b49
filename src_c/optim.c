/* optim.c - fused multi-tensor optimizer updates (SGD, Adagrad, RMSprop, Adam/AdamW, Adadelta,
 * Adamax, NAdam, RAdam) and the
 * gradient-norm reductions behind clip_grad_norm_; formulas and layout in optim.h.
 *
 * Structure:
 *   optim_tmpl.h    the per-segment updates and reductions written once over vm_*, instantiated
 *                   per (ISA, dtype) by isa_each.h (the scalar one-lane instance is the generic
 *                   path), each with a callback reading the group's pointer tables;
 *   ce_multi_apply  lays a group's tensors end to end (each padded to a cache line), cuts that
 *                   range into fixed cache-line aligned blocks handed to the threads dynamically
 *                   (balanced across tensors of any sizes) and calls the callback per piece;
 *   ce_reduce_multi the same layout in fixed blocks for the norms (thread-count independent);
 *   the public entry points, written out per dtype, and their plain *_ref references. */
#include <math.h>
#include <stdlib.h>
#include "nn_util.h"
#include "optim.h"
#include "cast.h"

/* fewest elements worth a thread for an elementwise update (~0.5-1 MB of traffic) and for a
 * read-only reduction; reduction blocks are fixed so the summation order never changes */
#define CE_OPTIM_MIN_PER_THREAD ((int64_t)32768)
#define CE_RED_MIN_PER_THREAD ((int64_t)65536)
#define CE_RED_BLOCK ((int64_t)16384)
/* elements per dynamically scheduled block of an update (64 KiB of float32 per array) */
#define CE_APPLY_BLOCK ((int64_t)16384)
/* elements per sub-piece of an update followed by its autocast cast (16 KiB of float32) */
#define CE_LOWP_BLOCK ((int64_t)4096)
/* cache line in elements */
#define CE_LINE_F32 ((int64_t)(CE_ALIGN / sizeof(float)))
#define CE_LINE_F64 ((int64_t)(CE_ALIGN / sizeof(double)))

/* ---------------- hyper-parameters and callback contexts (dtype-agnostic) ----------------
 * Pointer tables are kept as `const void *`: the caller's `T *const *` array, read back as such
 * by the template (optim_tmpl.h). */
typedef struct { double lr, momentum, dampening, wd; int nesterov, maximize; } ce_sgd_hp;
typedef struct { double lr_decay, wd, eps; int maximize; } ce_adagrad_hp;
typedef struct { double lr, alpha, eps, wd, momentum; int centered, maximize; } ce_rmsprop_hp;
typedef struct { double lr, beta1, beta2, eps, wd; int amsgrad, maximize, decoupled; } ce_adam_hp;

typedef struct { const void *p, *buf, *g; const uint8_t *first; ce_sgd_hp hp; } ce_sgd_ctx;
typedef struct { const void *p, *sum, *g; const double *clr; ce_adagrad_hp hp; } ce_adagrad_ctx;
typedef struct { const void *p, *sq, *gavg, *buf, *g; ce_rmsprop_hp hp; } ce_rmsprop_ctx;
typedef struct { const void *p, *m, *v, *vmax, *g; const double *sc; ce_adam_hp hp; } ce_adam_ctx;
typedef struct { const void *x; double alpha; } ce_scale_ctx;
typedef struct { double lr, rho, eps, wd; int maximize; } ce_adadelta_hp;
typedef struct { double beta1, beta2, eps, wd; int maximize; } ce_adamax_hp;
typedef struct { double lr, beta1, beta2, eps, wd; int decoupled, maximize; } ce_nadam_hp;
typedef struct { double lr, beta1, beta2, eps, wd; int decoupled, maximize; } ce_radam_hp;
typedef struct { const void *p, *sq, *acc, *g; ce_adadelta_hp hp; } ce_adadelta_ctx;
typedef struct { const void *p, *m, *u, *g; const double *sc; ce_adamax_hp hp; } ce_adamax_ctx;
typedef struct { const void *p, *m, *v, *g; const double *sc; ce_nadam_hp hp; } ce_nadam_ctx;
typedef struct { const void *p, *m, *v, *g; const double *sc; ce_radam_hp hp; } ce_radam_ctx;

/* ---------------- segment kernels per (ISA, dtype): ce_<name>_cb_<isa>_<dtype> ---------------- */
#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "optim_tmpl.h"
#include "isa_each.h"

/* ---------------- multi-tensor work split ---------------- */

/* off[t] = start of tensor t when the tensors are laid end to end, each padded to `line` */
static void ce_layout(int64_t *off, const int64_t *sizes, int64_t ntensors, int64_t line) {
    off[0] = 0;
    for (int64_t t = 0; t < ntensors; t++)
        off[t + 1] = off[t] + (sizes[t] + line - 1) / line * line;
}

/* the tensor holding padded position pos: largest t with off[t] <= pos */
static int64_t ce_find_tensor(const int64_t *off, int64_t ntensors, int64_t pos) {
    int64_t a = 0, b = ntensors;
    while (b - a > 1) {
        int64_t mid = a + (b - a) / 2;
        if (off[mid] <= pos) a = mid; else b = mid;
    }
    return a;
}

typedef void (*ce_seg_cb)(void *ctx, int64_t t, int64_t lo, int64_t hi);

/* call cb(ctx, t, lo, hi) on pieces [lo, hi) of tensor t covering every element of the group
 * exactly once; pieces start at multiples of `line` within their tensor; blocks of the padded
 * layout are handed out dynamically, so big and small tensors balance alike. */
static void ce_multi_apply(const int64_t *sizes, int64_t ntensors, int64_t line, ce_seg_cb cb,
                           void *ctx) {
    if (ntensors <= 0) return;
    int64_t stack_off[65];
    int64_t *off = ntensors < 65 ? stack_off : (int64_t *)malloc(sizeof(int64_t) * (ntensors + 1));
    if (!off) {
        for (int64_t t = 0; t < ntensors; t++)
            if (sizes[t] > 0) cb(ctx, t, 0, sizes[t]);
        return;
    }
    ce_layout(off, sizes, ntensors, line);
    int64_t total = off[ntensors];
    int nt = ce_threads_for(total, CE_OPTIM_MIN_PER_THREAD);
    if (nt <= 1) {
        for (int64_t t = 0; t < ntensors; t++)
            if (sizes[t] > 0) cb(ctx, t, 0, sizes[t]);
    } else {
        /* blocks of CE_APPLY_BLOCK elements (a multiple of every line), handed out dynamically:
         * with a busy core (other processes) the other thread keeps going instead of waiting
         * at the end of a static half. Blocks are contiguous so streams stay long. */
        int64_t nblk = (total + CE_APPLY_BLOCK - 1) / CE_APPLY_BLOCK;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int64_t b = 0; b < nblk; b++) {
            int64_t lo = b * CE_APPLY_BLOCK;
            int64_t hi = lo + CE_APPLY_BLOCK < total ? lo + CE_APPLY_BLOCK : total;
            for (int64_t t = ce_find_tensor(off, ntensors, lo); t < ntensors && off[t] < hi;
                 t++) {
                int64_t s = lo > off[t] ? lo - off[t] : 0;
                int64_t e = (hi < off[t + 1] ? hi : off[t + 1]) - off[t];
                if (e > sizes[t]) e = sizes[t];
                if (s < e) cb(ctx, t, s, e);
            }
        }
    }
    if (off != stack_off) free(off);
}

/* a segment callback followed by the cast of the updated float32 piece into its autocast copy
 * (ce_*_step_f32_lowp): the piece was just written, so the cast reads it from cache */
typedef struct {
    ce_seg_cb cb;
    void *ctx;
    float *const *p;
    uint16_t *const *lowp;
    void (*cast)(uint16_t *, const float *, int64_t);
} ce_lowp_ctx;

static void lowp_cb(void *vc, int64_t t, int64_t lo, int64_t hi) {
    const ce_lowp_ctx *c = (const ce_lowp_ctx *)vc;
    if (!c->lowp[t]) {
        c->cb(c->ctx, t, lo, hi);
        return;
    }
    /* sub-pieces of CE_LOWP_BLOCK (a multiple of every line: they start where a piece may),
     * so that on one thread, where a piece is a whole tensor, the cast still finds the update
     * in L1 */
    for (int64_t s = lo; s < hi; s += CE_LOWP_BLOCK) {
        int64_t e = hi - s > CE_LOWP_BLOCK ? s + CE_LOWP_BLOCK : hi;
        c->cb(c->ctx, t, s, e);
        c->cast(c->lowp[t] + s, c->p[t] + s, e - s);
    }
}

/* ce_multi_apply(cb, ctx), with the autocast copies refreshed when lowp is not NULL */
static void ce_multi_apply_lowp(const int64_t *sizes, int64_t ntensors, ce_seg_cb cb, void *ctx,
                                float *const *p, uint16_t *const *lowp, int lowp_f16) {
    if (!lowp) {
        ce_multi_apply(sizes, ntensors, CE_LINE_F32, cb, ctx);
        return;
    }
    ce_lowp_ctx lc = {cb, ctx, p, lowp,
                      lowp_f16 ? ce_cast_f32_to_f16_seg : ce_cast_f32_to_bf16_seg};
    ce_multi_apply(sizes, ntensors, CE_LINE_F32, lowp_cb, &lc);
}

/* the references' cast of every updated tensor that has an autocast copy */
static void lowp_ref(float *const *p, uint16_t *const *lowp, int lowp_f16, const int64_t *sizes,
                     int64_t ntensors) {
    for (int64_t t = 0; t < ntensors; t++)
        if (lowp[t])
            (lowp_f16 ? ce_cast_f32_to_f16_ref : ce_cast_f32_to_bf16_ref)(lowp[t], p[t], sizes[t]);
}

static inline double ce_nanmax(double a, double b) {
    if (a != a || b != b) return NAN;
    return a > b ? a : b;
}

typedef double (*ce_red_cb)(const void *xs, int64_t t, int64_t lo, int64_t hi);

/* *out = combine over fixed blocks of CE_RED_BLOCK elements (tensors laid out padded to `line`)
 * of fn(piece); block results are combined in block order, so the result is the same for any
 * thread count. is_max: combine by NaN-propagating max, else by sum. */
static void ce_reduce_multi(double *out, const void *xs, const int64_t *sizes, int64_t ntensors,
                            int64_t line, ce_red_cb fn, int is_max) {
    *out = 0.0;
    if (ntensors <= 0) return;
    int64_t stack_off[65];
    double stack_part[64];
    int64_t *off = ntensors < 65 ? stack_off : (int64_t *)malloc(sizeof(int64_t) * (ntensors + 1));
    double *part = NULL;
    int64_t total = 0, nblk = 0;
    if (off) {
        ce_layout(off, sizes, ntensors, line);
        total = off[ntensors];
        nblk = (total + CE_RED_BLOCK - 1) / CE_RED_BLOCK;
        part = nblk <= 64 ? stack_part : (double *)malloc(sizeof(double) * (size_t)nblk);
    }
    if (!part) {   /* out of memory for the layout: one sequential pass */
        double r = 0.0;
        for (int64_t t = 0; t < ntensors; t++) {
            double s = sizes[t] > 0 ? fn(xs, t, 0, sizes[t]) : 0.0;
            r = is_max ? ce_nanmax(r, s) : r + s;
        }
        *out = r;
        if (off && off != stack_off) free(off);
        return;
    }
    int nt = ce_threads_for(total, CE_RED_MIN_PER_THREAD);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t b = 0; b < nblk; b++) {
        int64_t lo = b * CE_RED_BLOCK, hi = lo + CE_RED_BLOCK < total ? lo + CE_RED_BLOCK : total;
        double r = 0.0;
        for (int64_t t = ce_find_tensor(off, ntensors, lo); t < ntensors && off[t] < hi; t++) {
            int64_t s = lo > off[t] ? lo - off[t] : 0;
            int64_t e = (hi < off[t + 1] ? hi : off[t + 1]) - off[t];
            if (e > sizes[t]) e = sizes[t];
            if (s < e) {
                double v = fn(xs, t, s, e);
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

/* ---------------- per-step scalars ---------------- */
/* `k` per-tensor scalars for ntensors tensors: the caller's stack buffer when it fits (64 * k
 * doubles), else malloc'd (NULL when out of memory) */
static double *ce_scalar_table(double *stack, int64_t ntensors, int k) {
    return ntensors <= 64 ? stack : (double *)malloc(sizeof(double) * (size_t)k * (size_t)ntensors);
}

/* clr[t] = lr / (1 + (step - 1) * lr_decay) (torch's Adagrad) */
static double *ce_adagrad_clr(double *stack, const int64_t *steps, int64_t ntensors, double lr,
                              double lr_decay) {
    double *clr = ce_scalar_table(stack, ntensors, 1);
    if (clr)
        for (int64_t t = 0; t < ntensors; t++)
            clr[t] = lr / (1.0 + (double)(steps[t] - 1) * lr_decay);
    return clr;
}

/* sc[2t] = step_size = lr / (1 - beta1^step), sc[2t+1] = sqrt(1 - beta2^step) (torch's Adam) */
static double *ce_adam_scalars(double *stack, const int64_t *steps, int64_t ntensors, double lr,
                               double beta1, double beta2) {
    double *sc = ce_scalar_table(stack, ntensors, 2);
    if (!sc) return NULL;
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
    return sc;
}

/* sc[t] = lr / (1 - beta1^step) (torch's Adamax) */
static double *ce_adamax_scalars(double *stack, const int64_t *steps, int64_t ntensors, double lr,
                                 double beta1) {
    double *sc = ce_scalar_table(stack, ntensors, 1);
    if (sc)
        for (int64_t t = 0; t < ntensors; t++)
            sc[t] = lr / (1.0 - pow(beta1, (double)steps[t]));
    return sc;
}

/* torch's NAdam scalars (in double, as its Python code computes them), per tensor t:
 *   mu = beta1*(1 - 0.5*0.96^(step*momentum_decay)), mu_next the same at step + 1,
 *   sc[3t] = 1 - beta2^step, sc[3t+1] = -lr*(1 - mu)/(1 - mu_product),
 *   sc[3t+2] = -lr*mu_next/(1 - mu_product*mu_next)
 * mu_products[t] is the product of the mu's up to and including this step */
static void ce_nadam_scalar(double *sc, int64_t step, double mu_product, double lr, double beta1,
                            double beta2, double momentum_decay) {
    double s = (double)step;
    double mu = beta1 * (1.0 - 0.5 * pow(0.96, s * momentum_decay));
    double mu_next = beta1 * (1.0 - 0.5 * pow(0.96, (s + 1.0) * momentum_decay));
    sc[0] = 1.0 - pow(beta2, s);
    sc[1] = -lr * (1.0 - mu) / (1.0 - mu_product);
    sc[2] = (-lr * mu_next) / (1.0 - mu_product * mu_next);
}

static double *ce_nadam_scalars(double *stack, const int64_t *steps, const double *mu_products,
                                int64_t ntensors, double lr, double beta1, double beta2,
                                double momentum_decay) {
    double *sc = ce_scalar_table(stack, ntensors, 3);
    if (sc)
        for (int64_t t = 0; t < ntensors; t++)
            ce_nadam_scalar(sc + 3 * t, steps[t], mu_products[t], lr, beta1, beta2,
                            momentum_decay);
    return sc;
}

/* torch's RAdam scalars per tensor t (in double): bc1 = 1 - beta1^step, bc2 = 1 - beta2^step,
 * rho_inf = 2/(1 - beta2) - 1, rho_t = rho_inf - 2*step*beta2^step/bc2; when rho_t > 5:
 * sc[2t] = lr/bc1 * sqrt(bc2) * rect with rect = sqrt((rho_t-4)(rho_t-2)rho_inf /
 * ((rho_inf-4)(rho_inf-2)rho_t)), sc[2t+1] = 1; else sc[2t] = lr/bc1, sc[2t+1] = 0 */
static void ce_radam_scalar(double *sc, int64_t step, double lr, double beta1, double beta2) {
    double s = (double)step;
    double bc1 = 1.0 - pow(beta1, s), b2s = pow(beta2, s), bc2 = 1.0 - b2s;
    double rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    double rho_t = rho_inf - 2.0 * s * b2s / bc2;
    if (rho_t > 5.0) {
        double rect = sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                           ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
        sc[0] = lr / bc1 * sqrt(bc2) * rect;
        sc[1] = 1.0;
    } else {
        sc[0] = lr / bc1;
        sc[1] = 0.0;
    }
}

static double *ce_radam_scalars(double *stack, const int64_t *steps, int64_t ntensors, double lr,
                                double beta1, double beta2) {
    double *sc = ce_scalar_table(stack, ntensors, 2);
    if (sc)
        for (int64_t t = 0; t < ntensors; t++)
            ce_radam_scalar(sc + 2 * t, steps[t], lr, beta1, beta2);
    return sc;
}

/* ---------------- plain references (static insides per dtype) ----------------
 * One element at a time, in the dtype, straight from the formulas in optim.h; independent of the
 * template. The public *_ref functions are written out below. */
#define CE_OPTIM_REF(T, SFX, SQRT)                                                               \
    static void sgd_ref_##SFX(T *const *ps, T *const *bufs, const T *const *gs,                  \
                              const uint8_t *first, const int64_t *sizes, int64_t nt,            \
                              double lr, double mom, double damp, double wd, int nesterov,       \
                              int maximize) {                                                    \
        for (int64_t t = 0; t < nt; t++)                                                         \
            for (int64_t i = 0; i < sizes[t]; i++) {                                             \
                T p = ps[t][i], g = maximize ? -gs[t][i] : gs[t][i];                             \
                if (wd != 0) g = g + (T)wd * p;                                                  \
                if (mom != 0) {                                                                  \
                    T b = (first && first[t]) ? g                                                \
                                              : (T)mom * bufs[t][i] + (T)(1.0 - damp) * g;       \
                    bufs[t][i] = b;                                                              \
                    g = nesterov ? g + (T)mom * b : b;                                           \
                }                                                                                \
                ps[t][i] = p - (T)lr * g;                                                        \
            }                                                                                    \
    }                                                                                            \
    static void adagrad_ref_##SFX(T *const *ps, T *const *sums, const T *const *gs,              \
                                  const int64_t *steps, const int64_t *sizes, int64_t nt,        \
                                  double lr, double lr_decay, double wd, double eps,             \
                                  int maximize) {                                                \
        for (int64_t t = 0; t < nt; t++) {                                                       \
            T clr = (T)(lr / (1.0 + (double)(steps[t] - 1) * lr_decay));                         \
            for (int64_t i = 0; i < sizes[t]; i++) {                                             \
                T p = ps[t][i], g = maximize ? -gs[t][i] : gs[t][i];                             \
                if (wd != 0) g = g + (T)wd * p;                                                  \
                T s = sums[t][i] + g * g;                                                        \
                sums[t][i] = s;                                                                  \
                ps[t][i] = p - clr * (g / (SQRT(s) + (T)eps));                                   \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static void rmsprop_ref_##SFX(T *const *ps, T *const *sqs, T *const *gas, T *const *bufs,    \
                                  const T *const *gs, const int64_t *sizes, int64_t nt,          \
                                  double lr, double alpha, double eps, double wd, double mom,    \
                                  int centered, int maximize) {                                  \
        for (int64_t t = 0; t < nt; t++)                                                         \
            for (int64_t i = 0; i < sizes[t]; i++) {                                             \
                T p = ps[t][i], g = maximize ? -gs[t][i] : gs[t][i];                             \
                if (wd != 0) g = g + (T)wd * p;                                                  \
                T sq = (T)alpha * sqs[t][i] + (T)(1.0 - alpha) * (g * g);                        \
                sqs[t][i] = sq;                                                                  \
                T avg;                                                                           \
                if (centered) {                                                                  \
                    T ga = (T)alpha * gas[t][i] + (T)(1.0 - alpha) * g;                          \
                    gas[t][i] = ga;                                                              \
                    avg = SQRT(sq - ga * ga) + (T)eps;                                           \
                } else {                                                                         \
                    avg = SQRT(sq) + (T)eps;                                                     \
                }                                                                                \
                if (mom > 0) {                                                                   \
                    T b = (T)mom * bufs[t][i] + g / avg;                                         \
                    bufs[t][i] = b;                                                              \
                    ps[t][i] = p - (T)lr * b;                                                    \
                } else {                                                                         \
                    ps[t][i] = p - (T)lr * (g / avg);                                            \
                }                                                                                \
            }                                                                                    \
    }                                                                                            \
    static void adam_ref_##SFX(T *const *ps, T *const *ms, T *const *vs, T *const *vmaxs,        \
                               const T *const *gs, const int64_t *steps, const int64_t *sizes,   \
                               int64_t nt, double lr, double b1, double b2, double eps,          \
                               double wd, int amsgrad, int maximize, int decoupled) {            \
        for (int64_t t = 0; t < nt; t++) {                                                       \
            T step_size = (T)(lr / (1.0 - pow(b1, (double)steps[t])));                           \
            T bc2s = (T)sqrt(1.0 - pow(b2, (double)steps[t]));                                   \
            for (int64_t i = 0; i < sizes[t]; i++) {                                             \
                T p = ps[t][i], g = maximize ? -gs[t][i] : gs[t][i];                             \
                if (wd != 0) {                                                                   \
                    if (decoupled) p = p * (T)(1.0 - lr * wd);                                   \
                    else g = g + (T)wd * p;                                                      \
                }                                                                                \
                T m = (T)b1 * ms[t][i] + (T)(1.0 - b1) * g;                                      \
                T v = (T)b2 * vs[t][i] + (T)(1.0 - b2) * (g * g);                                \
                ms[t][i] = m;                                                                    \
                vs[t][i] = v;                                                                    \
                if (amsgrad) {                                                                   \
                    v = vmaxs[t][i] > v ? vmaxs[t][i] : v;                                       \
                    vmaxs[t][i] = v;                                                             \
                }                                                                                \
                ps[t][i] = p - step_size * (m / (SQRT(v) / bc2s + (T)eps));                      \
            }                                                                                    \
        }                                                                                        \
    }
CE_OPTIM_REF(float, f32, sqrtf)
CE_OPTIM_REF(double, f64, sqrt)

/* references of Adadelta, Adamax, NAdam, RAdam: one element at a time in the dtype, in the
 * order of torch's single-tensor code (lerp as torch computes it: below weight 0.5 from the
 * start, else from the end); per-tensor scalars in double, written out again from the formulas
 * in optim.h (not through the ce_*_scalars helpers the fast path uses) */
#define CE_OPTIM_REF2(T, SFX, SQRT)                                                              \
    static inline T ce_lerp_ref_##SFX(T m, T g, double w) {                                      \
        return w < 0.5 ? m + (T)w * (g - m) : g - (g - m) * ((T)1 - (T)w);                       \
    }                                                                                            \
    static void adadelta_ref_##SFX(T *const *ps, T *const *sqs, T *const *accs,                  \
                                   const T *const *gs, const int64_t *sizes, int64_t nt,         \
                                   double lr, double rho, double eps, double wd, int maximize) { \
        for (int64_t t = 0; t < nt; t++)                                                         \
            for (int64_t i = 0; i < sizes[t]; i++) {                                             \
                T p = ps[t][i], g = maximize ? -gs[t][i] : gs[t][i];                             \
                if (wd != 0) g = g + (T)wd * p;                                                  \
                T sq = sqs[t][i] * (T)rho + (T)(1.0 - rho) * g * g;                              \
                sqs[t][i] = sq;                                                                  \
                T std = SQRT(sq + (T)eps);                                                       \
                T delta = SQRT(accs[t][i] + (T)eps) / std * g;                                   \
                accs[t][i] = accs[t][i] * (T)rho + (T)(1.0 - rho) * delta * delta;               \
                ps[t][i] = p - (T)lr * delta;                                                    \
            }                                                                                    \
    }                                                                                            \
    static void adamax_ref_##SFX(T *const *ps, T *const *ms, T *const *us, const T *const *gs,   \
                                 const int64_t *steps, const int64_t *sizes, int64_t nt,         \
                                 double lr, double b1, double b2, double eps, double wd,         \
                                 int maximize) {                                                 \
        for (int64_t t = 0; t < nt; t++) {                                                       \
            T clr = (T)(lr / (1.0 - pow(b1, (double)steps[t])));                                 \
            for (int64_t i = 0; i < sizes[t]; i++) {                                             \
                T p = ps[t][i], g = maximize ? -gs[t][i] : gs[t][i];                             \
                if (wd != 0) g = g + (T)wd * p;                                                  \
                T m = ce_lerp_ref_##SFX(ms[t][i], g, 1.0 - b1);                                  \
                T ub = us[t][i] * (T)b2, ag = (g < 0 ? -g : g) + (T)eps;                         \
                T u = (ub != ub || ag != ag) ? (ub != ub ? ub : ag) : (ub > ag ? ub : ag);       \
                ms[t][i] = m;                                                                    \
                us[t][i] = u;                                                                    \
                ps[t][i] = p - clr * (m / u);                                                    \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static void nadam_ref_##SFX(T *const *ps, T *const *ms, T *const *vs, const T *const *gs,    \
                                const int64_t *steps, const double *mu_products,                 \
                                const int64_t *sizes, int64_t nt, double lr, double b1,          \
                                double b2, double eps, double wd, double momentum_decay,         \
                                int decoupled, int maximize) {                                   \
        for (int64_t t = 0; t < nt; t++) {                                                       \
            double s = (double)steps[t], mp = mu_products[t];                                    \
            double mu = b1 * (1.0 - 0.5 * pow(0.96, s * momentum_decay));                        \
            double mu_next = b1 * (1.0 - 0.5 * pow(0.96, (s + 1.0) * momentum_decay));           \
            T bc2 = (T)(1.0 - pow(b2, s));                                                       \
            T c_g = (T)(-lr * (1.0 - mu) / (1.0 - mp));                                          \
            T c_m = (T)((-lr * mu_next) / (1.0 - mp * mu_next));                                 \
            for (int64_t i = 0; i < sizes[t]; i++) {                                             \
                T p = ps[t][i], g = maximize ? -gs[t][i] : gs[t][i];                             \
                if (wd != 0) {                                                                   \
                    if (decoupled) p = p * (T)(1.0 - lr * wd);                                   \
                    else g = g + (T)wd * p;                                                      \
                }                                                                                \
                T m = ce_lerp_ref_##SFX(ms[t][i], g, 1.0 - b1);                                  \
                T v = vs[t][i] * (T)b2 + (T)(1.0 - b2) * g * g;                                  \
                ms[t][i] = m;                                                                    \
                vs[t][i] = v;                                                                    \
                T denom = SQRT(v / bc2) + (T)eps;                                                \
                p = p + c_g * (g / denom);                                                       \
                ps[t][i] = p + c_m * (m / denom);                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static void radam_ref_##SFX(T *const *ps, T *const *ms, T *const *vs, const T *const *gs,    \
                                const int64_t *steps, const int64_t *sizes, int64_t nt,          \
                                double lr, double b1, double b2, double eps, double wd,          \
                                int decoupled, int maximize) {                                   \
        for (int64_t t = 0; t < nt; t++) {                                                       \
            double s = (double)steps[t];                                                         \
            double bc1 = 1.0 - pow(b1, s), bc2 = 1.0 - pow(b2, s);                               \
            double rho_inf = 2.0 / (1.0 - b2) - 1.0;                                             \
            double rho_t = rho_inf - 2.0 * s * pow(b2, s) / bc2;                                 \
            int use_rect = rho_t > 5.0;                                                          \
            double rect = use_rect ? sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /              \
                                          ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))           \
                                   : 1.0;                                                        \
            for (int64_t i = 0; i < sizes[t]; i++) {                                             \
                T p = ps[t][i], g = maximize ? -gs[t][i] : gs[t][i];                             \
                if (wd != 0) {                                                                   \
                    if (decoupled) p = p * (T)(1.0 - lr * wd);                                   \
                    else g = g + (T)wd * p;                                                      \
                }                                                                                \
                T m = ce_lerp_ref_##SFX(ms[t][i], g, 1.0 - b1);                                  \
                T v = vs[t][i] * (T)b2 + (T)(1.0 - b2) * g * g;                                  \
                ms[t][i] = m;                                                                    \
                vs[t][i] = v;                                                                    \
                T upd = m / (T)bc1 * (T)lr;                                                      \
                if (use_rect) upd = upd * ((T)sqrt(bc2) / (SQRT(v) + (T)eps)) * (T)rect;         \
                ps[t][i] = p - upd;                                                              \
            }                                                                                    \
        }                                                                                        \
    }
CE_OPTIM_REF2(float, f32, sqrtf)
CE_OPTIM_REF2(double, f64, sqrt)

/* ================= public entry points ================= */

/* ---- SGD ---- */
void ce_sgd_step_f32(float *const *params, float *const *bufs, const float *const *grads,
                     const uint8_t *first, const int64_t *sizes, int64_t ntensors, double lr,
                     double momentum, double dampening, double weight_decay, int nesterov,
                     int maximize) {
    ce_sgd_step_f32_lowp(params, bufs, grads, first, sizes, ntensors, lr, momentum, dampening,
                         weight_decay, nesterov, maximize, NULL, 0);
}

void ce_sgd_step_f32_lowp(float *const *params, float *const *bufs, const float *const *grads,
                          const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                          double lr, double momentum, double dampening, double weight_decay,
                          int nesterov, int maximize, uint16_t *const *lowp, int lowp_f16) {
    ce_sgd_ctx c = {params, momentum != 0.0 ? bufs : NULL, grads, first,
                    {lr, momentum, dampening, weight_decay, nesterov, maximize}};
    ce_multi_apply_lowp(sizes, ntensors, CE_ISA_PICK(sgd_cb, f32), &c, params, lowp, lowp_f16);
}

void ce_sgd_step_f32_lowp_ref(float *const *params, float *const *bufs,
                              const float *const *grads, const uint8_t *first,
                              const int64_t *sizes, int64_t ntensors, double lr, double momentum,
                              double dampening, double weight_decay, int nesterov, int maximize,
                              uint16_t *const *lowp, int lowp_f16) {
    sgd_ref_f32(params, bufs, grads, first, sizes, ntensors, lr, momentum, dampening,
                weight_decay, nesterov, maximize);
    if (lowp) lowp_ref(params, lowp, lowp_f16, sizes, ntensors);
}

void ce_sgd_step_f64(double *const *params, double *const *bufs, const double *const *grads,
                     const uint8_t *first, const int64_t *sizes, int64_t ntensors, double lr,
                     double momentum, double dampening, double weight_decay, int nesterov,
                     int maximize) {
    ce_sgd_ctx c = {params, momentum != 0.0 ? bufs : NULL, grads, first,
                    {lr, momentum, dampening, weight_decay, nesterov, maximize}};
    ce_multi_apply(sizes, ntensors, CE_LINE_F64, CE_ISA_PICK(sgd_cb, f64), &c);
}

void ce_sgd_step_f32_ref(float *const *params, float *const *bufs, const float *const *grads,
                         const uint8_t *first, const int64_t *sizes, int64_t ntensors, double lr,
                         double momentum, double dampening, double weight_decay, int nesterov,
                         int maximize) {
    sgd_ref_f32(params, bufs, grads, first, sizes, ntensors, lr, momentum, dampening,
                weight_decay, nesterov, maximize);
}

void ce_sgd_step_f64_ref(double *const *params, double *const *bufs, const double *const *grads,
                         const uint8_t *first, const int64_t *sizes, int64_t ntensors, double lr,
                         double momentum, double dampening, double weight_decay, int nesterov,
                         int maximize) {
    sgd_ref_f64(params, bufs, grads, first, sizes, ntensors, lr, momentum, dampening,
                weight_decay, nesterov, maximize);
}

/* ---- Adagrad ---- */
/* Fast paths shared by the float32 and float64 entry points below: per-tensor scalars computed
 * once in double, then one ce_multi_apply over every tensor with the ISA callback `cb` of the
 * caller's dtype. Each returns 0, having done nothing, when the scalar table could not be
 * allocated; the caller then runs its plain reference instead. */
static int adagrad_drive(const void *p, const void *sum, const void *g, const int64_t *steps,
                         const int64_t *sizes, int64_t nt, double lr, ce_adagrad_hp hp,
                         int64_t line, ce_seg_cb cb) {
    double stack[64], *clr = ce_adagrad_clr(stack, steps, nt, lr, hp.lr_decay);
    if (!clr) return 0;
    ce_adagrad_ctx c = {p, sum, g, clr, hp};
    ce_multi_apply(sizes, nt, line, cb, &c);
    if (clr != stack) free(clr);
    return 1;
}

void ce_adagrad_step_f32(float *const *params, float *const *sums, const float *const *grads,
                         const int64_t *steps, const int64_t *sizes, int64_t ntensors, double lr,
                         double lr_decay, double weight_decay, double eps, int maximize) {
    ce_adagrad_hp hp = {lr_decay, weight_decay, eps, maximize};
    if (!adagrad_drive(params, sums, grads, steps, sizes, ntensors, lr, hp, CE_LINE_F32,
                       CE_ISA_PICK(adagrad_cb, f32)))   /* out of memory for the scalars */
        adagrad_ref_f32(params, sums, grads, steps, sizes, ntensors, lr, lr_decay, weight_decay,
                        eps, maximize);
}

void ce_adagrad_step_f64(double *const *params, double *const *sums, const double *const *grads,
                         const int64_t *steps, const int64_t *sizes, int64_t ntensors, double lr,
                         double lr_decay, double weight_decay, double eps, int maximize) {
    ce_adagrad_hp hp = {lr_decay, weight_decay, eps, maximize};
    if (!adagrad_drive(params, sums, grads, steps, sizes, ntensors, lr, hp, CE_LINE_F64,
                       CE_ISA_PICK(adagrad_cb, f64)))   /* out of memory for the scalars */
        adagrad_ref_f64(params, sums, grads, steps, sizes, ntensors, lr, lr_decay, weight_decay,
                        eps, maximize);
}

void ce_adagrad_step_f32_ref(float *const *params, float *const *sums, const float *const *grads,
                             const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                             double lr, double lr_decay, double weight_decay, double eps,
                             int maximize) {
    adagrad_ref_f32(params, sums, grads, steps, sizes, ntensors, lr, lr_decay, weight_decay, eps,
                    maximize);
}

void ce_adagrad_step_f64_ref(double *const *params, double *const *sums,
                             const double *const *grads, const int64_t *steps,
                             const int64_t *sizes, int64_t ntensors, double lr, double lr_decay,
                             double weight_decay, double eps, int maximize) {
    adagrad_ref_f64(params, sums, grads, steps, sizes, ntensors, lr, lr_decay, weight_decay, eps,
                    maximize);
}

/* ---- RMSprop ---- */
void ce_rmsprop_step_f32(float *const *params, float *const *square_avgs, float *const *grad_avgs,
                         float *const *bufs, const float *const *grads, const int64_t *sizes,
                         int64_t ntensors, double lr, double alpha, double eps,
                         double weight_decay, double momentum, int centered, int maximize) {
    ce_rmsprop_ctx c = {params, square_avgs, centered ? grad_avgs : NULL,
                        momentum > 0.0 ? bufs : NULL, grads,
                        {lr, alpha, eps, weight_decay, momentum, centered, maximize}};
    ce_multi_apply(sizes, ntensors, CE_LINE_F32, CE_ISA_PICK(rmsprop_cb, f32), &c);
}

void ce_rmsprop_step_f64(double *const *params, double *const *square_avgs,
                         double *const *grad_avgs, double *const *bufs,
                         const double *const *grads, const int64_t *sizes, int64_t ntensors,
                         double lr, double alpha, double eps, double weight_decay,
                         double momentum, int centered, int maximize) {
    ce_rmsprop_ctx c = {params, square_avgs, centered ? grad_avgs : NULL,
                        momentum > 0.0 ? bufs : NULL, grads,
                        {lr, alpha, eps, weight_decay, momentum, centered, maximize}};
    ce_multi_apply(sizes, ntensors, CE_LINE_F64, CE_ISA_PICK(rmsprop_cb, f64), &c);
}

void ce_rmsprop_step_f32_ref(float *const *params, float *const *square_avgs,
                             float *const *grad_avgs, float *const *bufs,
                             const float *const *grads, const int64_t *sizes, int64_t ntensors,
                             double lr, double alpha, double eps, double weight_decay,
                             double momentum, int centered, int maximize) {
    rmsprop_ref_f32(params, square_avgs, grad_avgs, bufs, grads, sizes, ntensors, lr, alpha, eps,
                    weight_decay, momentum, centered, maximize);
}

void ce_rmsprop_step_f64_ref(double *const *params, double *const *square_avgs,
                             double *const *grad_avgs, double *const *bufs,
                             const double *const *grads, const int64_t *sizes, int64_t ntensors,
                             double lr, double alpha, double eps, double weight_decay,
                             double momentum, int centered, int maximize) {
    rmsprop_ref_f64(params, square_avgs, grad_avgs, bufs, grads, sizes, ntensors, lr, alpha, eps,
                    weight_decay, momentum, centered, maximize);
}

/* ---- Adam / AdamW ---- */
static int adam_drive(const void *p, const void *m, const void *v, const void *vmax,
                      const void *g, const int64_t *steps, const int64_t *sizes, int64_t nt,
                      ce_adam_hp hp, int64_t line, ce_seg_cb cb, uint16_t *const *lowp,
                      int lowp_f16) {
    double stack[128], *sc = ce_adam_scalars(stack, steps, nt, hp.lr, hp.beta1, hp.beta2);
    if (!sc) return 0;
    ce_adam_ctx c = {p, m, v, hp.amsgrad ? vmax : NULL, g, sc, hp};
    if (lowp)     /* float32 only (ce_adam_step_f32_lowp) */
        ce_multi_apply_lowp(sizes, nt, cb, &c, (float *const *)p, lowp, lowp_f16);
    else
        ce_multi_apply(sizes, nt, line, cb, &c);
    if (sc != stack) free(sc);
    return 1;
}

void ce_adam_step_f32(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                      float *const *max_exp_avg_sqs, const float *const *grads,
                      const int64_t *steps, const int64_t *sizes, int64_t ntensors, double lr,
                      double beta1, double beta2, double eps, double weight_decay, int amsgrad,
                      int maximize, int decoupled) {
    ce_adam_step_f32_lowp(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, grads, steps, sizes,
                          ntensors, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize,
                          decoupled, NULL, 0);
}

void ce_adam_step_f32_lowp(float *const *params, float *const *exp_avgs,
                           float *const *exp_avg_sqs, float *const *max_exp_avg_sqs,
                           const float *const *grads, const int64_t *steps, const int64_t *sizes,
                           int64_t ntensors, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int amsgrad, int maximize, int decoupled,
                           uint16_t *const *lowp, int lowp_f16) {
    ce_adam_hp hp = {lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled};
    if (!adam_drive(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, grads, steps, sizes,
                    ntensors, hp, CE_LINE_F32, CE_ISA_PICK(adam_cb, f32), lowp, lowp_f16))
        ce_adam_step_f32_lowp_ref(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, grads, steps,
                                  sizes, ntensors, lr, beta1, beta2, eps, weight_decay, amsgrad,
                                  maximize, decoupled, lowp, lowp_f16);
}

void ce_adam_step_f32_lowp_ref(float *const *params, float *const *exp_avgs,
                               float *const *exp_avg_sqs, float *const *max_exp_avg_sqs,
                               const float *const *grads, const int64_t *steps,
                               const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                               double beta2, double eps, double weight_decay, int amsgrad,
                               int maximize, int decoupled, uint16_t *const *lowp, int lowp_f16) {
    adam_ref_f32(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, grads, steps, sizes, ntensors,
                 lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled);
    if (lowp) lowp_ref(params, lowp, lowp_f16, sizes, ntensors);
}

void ce_adam_step_f64(double *const *params, double *const *exp_avgs, double *const *exp_avg_sqs,
                      double *const *max_exp_avg_sqs, const double *const *grads,
                      const int64_t *steps, const int64_t *sizes, int64_t ntensors, double lr,
                      double beta1, double beta2, double eps, double weight_decay, int amsgrad,
                      int maximize, int decoupled) {
    ce_adam_hp hp = {lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled};
    if (!adam_drive(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, grads, steps, sizes,
                    ntensors, hp, CE_LINE_F64, CE_ISA_PICK(adam_cb, f64), NULL, 0))
        adam_ref_f64(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, grads, steps, sizes,
                     ntensors, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled);
}

void ce_adam_step_f32_ref(float *const *params, float *const *exp_avgs,
                          float *const *exp_avg_sqs, float *const *max_exp_avg_sqs,
                          const float *const *grads, const int64_t *steps, const int64_t *sizes,
                          int64_t ntensors, double lr, double beta1, double beta2, double eps,
                          double weight_decay, int amsgrad, int maximize, int decoupled) {
    adam_ref_f32(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, grads, steps, sizes, ntensors,
                 lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled);
}

void ce_adam_step_f64_ref(double *const *params, double *const *exp_avgs,
                          double *const *exp_avg_sqs, double *const *max_exp_avg_sqs,
                          const double *const *grads, const int64_t *steps, const int64_t *sizes,
                          int64_t ntensors, double lr, double beta1, double beta2, double eps,
                          double weight_decay, int amsgrad, int maximize, int decoupled) {
    adam_ref_f64(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, grads, steps, sizes, ntensors,
                 lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled);
}

/* ---- Adadelta ---- */
void ce_adadelta_step_f32(float *const *params, float *const *square_avgs, float *const *acc_deltas,
                          const float *const *grads, const int64_t *sizes, int64_t ntensors,
                          double lr, double rho, double eps, double weight_decay, int maximize) {
    ce_adadelta_ctx c = {params, square_avgs, acc_deltas, grads,
                         {lr, rho, eps, weight_decay, maximize}};
    ce_multi_apply(sizes, ntensors, CE_LINE_F32, CE_ISA_PICK(adadelta_cb, f32), &c);
}

void ce_adadelta_step_f64(double *const *params, double *const *square_avgs,
                          double *const *acc_deltas, const double *const *grads,
                          const int64_t *sizes, int64_t ntensors, double lr, double rho, double eps,
                          double weight_decay, int maximize) {
    ce_adadelta_ctx c = {params, square_avgs, acc_deltas, grads,
                         {lr, rho, eps, weight_decay, maximize}};
    ce_multi_apply(sizes, ntensors, CE_LINE_F64, CE_ISA_PICK(adadelta_cb, f64), &c);
}

void ce_adadelta_step_f32_ref(float *const *params, float *const *square_avgs,
                              float *const *acc_deltas, const float *const *grads,
                              const int64_t *sizes, int64_t ntensors, double lr, double rho,
                              double eps, double weight_decay, int maximize) {
    adadelta_ref_f32(params, square_avgs, acc_deltas, grads, sizes, ntensors, lr, rho, eps,
                     weight_decay, maximize);
}

void ce_adadelta_step_f64_ref(double *const *params, double *const *square_avgs,
                              double *const *acc_deltas, const double *const *grads,
                              const int64_t *sizes, int64_t ntensors, double lr, double rho,
                              double eps, double weight_decay, int maximize) {
    adadelta_ref_f64(params, square_avgs, acc_deltas, grads, sizes, ntensors, lr, rho, eps,
                     weight_decay, maximize);
}

/* ---- Adamax ---- */
static int adamax_drive(const void *p, const void *m, const void *u, const void *g,
                        const int64_t *steps, const int64_t *sizes, int64_t nt, double lr,
                        ce_adamax_hp hp, int64_t line, ce_seg_cb cb) {
    double stack[64], *sc = ce_adamax_scalars(stack, steps, nt, lr, hp.beta1);
    if (!sc) return 0;
    ce_adamax_ctx c = {p, m, u, g, sc, hp};
    ce_multi_apply(sizes, nt, line, cb, &c);
    if (sc != stack) free(sc);
    return 1;
}

void ce_adamax_step_f32(float *const *params, float *const *exp_avgs, float *const *exp_infs,
                        const float *const *grads, const int64_t *steps, const int64_t *sizes,
                        int64_t ntensors, double lr, double beta1, double beta2, double eps,
                        double weight_decay, int maximize) {
    ce_adamax_hp hp = {beta1, beta2, eps, weight_decay, maximize};
    if (!adamax_drive(params, exp_avgs, exp_infs, grads, steps, sizes, ntensors, lr, hp,
                      CE_LINE_F32, CE_ISA_PICK(adamax_cb, f32)))
        adamax_ref_f32(params, exp_avgs, exp_infs, grads, steps, sizes, ntensors, lr, beta1, beta2,
                       eps, weight_decay, maximize);
}

void ce_adamax_step_f64(double *const *params, double *const *exp_avgs, double *const *exp_infs,
                        const double *const *grads, const int64_t *steps, const int64_t *sizes,
                        int64_t ntensors, double lr, double beta1, double beta2, double eps,
                        double weight_decay, int maximize) {
    ce_adamax_hp hp = {beta1, beta2, eps, weight_decay, maximize};
    if (!adamax_drive(params, exp_avgs, exp_infs, grads, steps, sizes, ntensors, lr, hp,
                      CE_LINE_F64, CE_ISA_PICK(adamax_cb, f64)))
        adamax_ref_f64(params, exp_avgs, exp_infs, grads, steps, sizes, ntensors, lr, beta1, beta2,
                       eps, weight_decay, maximize);
}

void ce_adamax_step_f32_ref(float *const *params, float *const *exp_avgs, float *const *exp_infs,
                            const float *const *grads, const int64_t *steps, const int64_t *sizes,
                            int64_t ntensors, double lr, double beta1, double beta2, double eps,
                            double weight_decay, int maximize) {
    adamax_ref_f32(params, exp_avgs, exp_infs, grads, steps, sizes, ntensors, lr, beta1, beta2, eps,
                   weight_decay, maximize);
}

void ce_adamax_step_f64_ref(double *const *params, double *const *exp_avgs, double *const *exp_infs,
                            const double *const *grads, const int64_t *steps, const int64_t *sizes,
                            int64_t ntensors, double lr, double beta1, double beta2, double eps,
                            double weight_decay, int maximize) {
    adamax_ref_f64(params, exp_avgs, exp_infs, grads, steps, sizes, ntensors, lr, beta1, beta2, eps,
                   weight_decay, maximize);
}

/* ---- NAdam ---- */
static int nadam_drive(const void *p, const void *m, const void *v, const void *g,
                       const int64_t *steps, const double *mu_products, const int64_t *sizes,
                       int64_t nt, double momentum_decay, ce_nadam_hp hp, int64_t line,
                       ce_seg_cb cb) {
    double stack[192], *sc = ce_nadam_scalars(stack, steps, mu_products, nt, hp.lr, hp.beta1,
                                              hp.beta2, momentum_decay);
    if (!sc) return 0;
    ce_nadam_ctx c = {p, m, v, g, sc, hp};
    ce_multi_apply(sizes, nt, line, cb, &c);
    if (sc != stack) free(sc);
    return 1;
}

void ce_nadam_step_f32(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                       const float *const *grads, const int64_t *steps, const double *mu_products,
                       const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                       double beta2, double eps, double weight_decay, double momentum_decay,
                       int decoupled, int maximize) {
    ce_nadam_hp hp = {lr, beta1, beta2, eps, weight_decay, decoupled, maximize};
    if (!nadam_drive(params, exp_avgs, exp_avg_sqs, grads, steps, mu_products, sizes, ntensors,
                     momentum_decay, hp, CE_LINE_F32, CE_ISA_PICK(nadam_cb, f32)))
        nadam_ref_f32(params, exp_avgs, exp_avg_sqs, grads, steps, mu_products, sizes, ntensors, lr,
                      beta1, beta2, eps, weight_decay, momentum_decay, decoupled, maximize);
}

void ce_nadam_step_f64(double *const *params, double *const *exp_avgs, double *const *exp_avg_sqs,
                       const double *const *grads, const int64_t *steps, const double *mu_products,
                       const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                       double beta2, double eps, double weight_decay, double momentum_decay,
                       int decoupled, int maximize) {
    ce_nadam_hp hp = {lr, beta1, beta2, eps, weight_decay, decoupled, maximize};
    if (!nadam_drive(params, exp_avgs, exp_avg_sqs, grads, steps, mu_products, sizes, ntensors,
                     momentum_decay, hp, CE_LINE_F64, CE_ISA_PICK(nadam_cb, f64)))
        nadam_ref_f64(params, exp_avgs, exp_avg_sqs, grads, steps, mu_products, sizes, ntensors, lr,
                      beta1, beta2, eps, weight_decay, momentum_decay, decoupled, maximize);
}

void ce_nadam_step_f32_ref(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                           const float *const *grads, const int64_t *steps,
                           const double *mu_products, const int64_t *sizes, int64_t ntensors,
                           double lr, double beta1, double beta2, double eps, double weight_decay,
                           double momentum_decay, int decoupled, int maximize) {
    nadam_ref_f32(params, exp_avgs, exp_avg_sqs, grads, steps, mu_products, sizes, ntensors, lr,
                  beta1, beta2, eps, weight_decay, momentum_decay, decoupled, maximize);
}

void ce_nadam_step_f64_ref(double *const *params, double *const *exp_avgs,
                           double *const *exp_avg_sqs, const double *const *grads,
                           const int64_t *steps, const double *mu_products, const int64_t *sizes,
                           int64_t ntensors, double lr, double beta1, double beta2, double eps,
                           double weight_decay, double momentum_decay, int decoupled,
                           int maximize) {
    nadam_ref_f64(params, exp_avgs, exp_avg_sqs, grads, steps, mu_products, sizes, ntensors, lr,
                  beta1, beta2, eps, weight_decay, momentum_decay, decoupled, maximize);
}

/* ---- RAdam ---- */
static int radam_drive(const void *p, const void *m, const void *v, const void *g,
                       const int64_t *steps, const int64_t *sizes, int64_t nt, ce_radam_hp hp,
                       int64_t line, ce_seg_cb cb) {
    double stack[128], *sc = ce_radam_scalars(stack, steps, nt, hp.lr, hp.beta1, hp.beta2);
    if (!sc) return 0;
    ce_radam_ctx c = {p, m, v, g, sc, hp};
    ce_multi_apply(sizes, nt, line, cb, &c);
    if (sc != stack) free(sc);
    return 1;
}

void ce_radam_step_f32(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                       const float *const *grads, const int64_t *steps, const int64_t *sizes,
                       int64_t ntensors, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int decoupled, int maximize) {
    ce_radam_hp hp = {lr, beta1, beta2, eps, weight_decay, decoupled, maximize};
    if (!radam_drive(params, exp_avgs, exp_avg_sqs, grads, steps, sizes, ntensors, hp,
                     CE_LINE_F32, CE_ISA_PICK(radam_cb, f32)))
        radam_ref_f32(params, exp_avgs, exp_avg_sqs, grads, steps, sizes, ntensors, lr, beta1,
                      beta2, eps, weight_decay, decoupled, maximize);
}

void ce_radam_step_f64(double *const *params, double *const *exp_avgs, double *const *exp_avg_sqs,
                       const double *const *grads, const int64_t *steps, const int64_t *sizes,
                       int64_t ntensors, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int decoupled, int maximize) {
    ce_radam_hp hp = {lr, beta1, beta2, eps, weight_decay, decoupled, maximize};
    if (!radam_drive(params, exp_avgs, exp_avg_sqs, grads, steps, sizes, ntensors, hp,
                     CE_LINE_F64, CE_ISA_PICK(radam_cb, f64)))
        radam_ref_f64(params, exp_avgs, exp_avg_sqs, grads, steps, sizes, ntensors, lr, beta1,
                      beta2, eps, weight_decay, decoupled, maximize);
}

void ce_radam_step_f32_ref(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                           const float *const *grads, const int64_t *steps, const int64_t *sizes,
                           int64_t ntensors, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int decoupled, int maximize) {
    radam_ref_f32(params, exp_avgs, exp_avg_sqs, grads, steps, sizes, ntensors, lr, beta1, beta2,
                  eps, weight_decay, decoupled, maximize);
}

void ce_radam_step_f64_ref(double *const *params, double *const *exp_avgs,
                           double *const *exp_avg_sqs, const double *const *grads,
                           const int64_t *steps, const int64_t *sizes, int64_t ntensors, double lr,
                           double beta1, double beta2, double eps, double weight_decay,
                           int decoupled, int maximize) {
    radam_ref_f64(params, exp_avgs, exp_avg_sqs, grads, steps, sizes, ntensors, lr, beta1, beta2,
                  eps, weight_decay, decoupled, maximize);
}

/* ---- gradient-norm helpers ---- */
void ce_sumsq_multi_f32(double *out, const float *const *xs, const int64_t *sizes,
                        int64_t ntensors) {
    ce_reduce_multi(out, xs, sizes, ntensors, CE_LINE_F32, CE_ISA_PICK(sumsq_cb, f32), 0);
}

void ce_sumsq_multi_f64(double *out, const double *const *xs, const int64_t *sizes,
                        int64_t ntensors) {
    ce_reduce_multi(out, xs, sizes, ntensors, CE_LINE_F64, CE_ISA_PICK(sumsq_cb, f64), 0);
}

void ce_absmax_multi_f32(double *out, const float *const *xs, const int64_t *sizes,
                         int64_t ntensors) {
    ce_reduce_multi(out, xs, sizes, ntensors, CE_LINE_F32, CE_ISA_PICK(absmax_cb, f32), 1);
}

void ce_absmax_multi_f64(double *out, const double *const *xs, const int64_t *sizes,
                         int64_t ntensors) {
    ce_reduce_multi(out, xs, sizes, ntensors, CE_LINE_F64, CE_ISA_PICK(absmax_cb, f64), 1);
}

void ce_scale_multi_f32(float *const *xs, const int64_t *sizes, int64_t ntensors, double alpha) {
    ce_scale_ctx c = {xs, alpha};
    ce_multi_apply(sizes, ntensors, CE_LINE_F32, CE_ISA_PICK(scale_cb, f32), &c);
}

void ce_scale_multi_f64(double *const *xs, const int64_t *sizes, int64_t ntensors, double alpha) {
    ce_scale_ctx c = {xs, alpha};
    ce_multi_apply(sizes, ntensors, CE_LINE_F64, CE_ISA_PICK(scale_cb, f64), &c);
}

/* plain references: one sequential pass in double */
/* element i of tensor t of a pointer table of float (f64 == 0) or double arrays */
static inline double ce_ref_at(const void *xs, int f64, int64_t t, int64_t i) {
    return f64 ? ((const double *const *)xs)[t][i] : (double)((const float *const *)xs)[t][i];
}

static double ce_sumsq_ref(const void *xs, int f64, const int64_t *sizes, int64_t nt) {
    double s = 0.0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t i = 0; i < sizes[t]; i++) s += ce_ref_at(xs, f64, t, i) * ce_ref_at(xs, f64, t, i);
    return s;
}

static double ce_absmax_ref(const void *xs, int f64, const int64_t *sizes, int64_t nt) {
    double m = 0.0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t i = 0; i < sizes[t]; i++) m = ce_nanmax(m, fabs(ce_ref_at(xs, f64, t, i)));
    return m;
}

void ce_sumsq_multi_f32_ref(double *out, const float *const *xs, const int64_t *sizes,
                            int64_t ntensors) {
    *out = ce_sumsq_ref(xs, 0, sizes, ntensors);
}

void ce_sumsq_multi_f64_ref(double *out, const double *const *xs, const int64_t *sizes,
                            int64_t ntensors) {
    *out = ce_sumsq_ref(xs, 1, sizes, ntensors);
}

void ce_absmax_multi_f32_ref(double *out, const float *const *xs, const int64_t *sizes,
                             int64_t ntensors) {
    *out = ce_absmax_ref(xs, 0, sizes, ntensors);
}

void ce_absmax_multi_f64_ref(double *out, const double *const *xs, const int64_t *sizes,
                             int64_t ntensors) {
    *out = ce_absmax_ref(xs, 1, sizes, ntensors);
}
