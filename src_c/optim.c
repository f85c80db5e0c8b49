/* optim.c - fused multi-tensor optimizer updates (SGD, Adagrad, RMSprop, Adam/AdamW) and the
 * gradient-norm reductions behind clip_grad_norm_; formulas and layout in optim.h.
 *
 * Structure:
 *   optim_simd.h   per-segment update written once over a vector vocabulary; instantiated here
 *                  for the generic path (scalar C, W = 1) and in optim_avx2.c / optim_avx512.c;
 *   ce_multi_apply lays a group's tensors end to end (each padded to a cache line), cuts that
 *                  range into fixed cache-line aligned blocks handed to the threads dynamically
 *                  (balanced across tensors of any sizes) and calls the segment kernel per piece;
 *   optim_driver.h the public entry points per dtype (f32, f64) and their *_ref twins. */
#include <math.h>
#include <stdlib.h>
#include "cengine.h"
#include "optim_impl.h"

/* fewest elements worth a thread for an elementwise update (~0.5-1 MB of traffic) and for a
 * read-only reduction; reduction blocks are fixed so the summation order never changes */
#define CE_OPTIM_MIN_PER_THREAD ((int64_t)32768)
#define CE_RED_MIN_PER_THREAD ((int64_t)65536)
#define CE_RED_BLOCK ((int64_t)16384)
/* elements per dynamically scheduled block of an update (64 KiB of float32 per array) */
#define CE_APPLY_BLOCK ((int64_t)16384)

/* ---------------- generic (scalar C) segment kernels ---------------- */
#define T float
#define V float
#define W 1
#define SFX f32_generic
#define VLOAD(p) (*(p))
#define VSTORE(p, x) (*(p) = (x))
#define VSET1(s) (s)
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VDIV(a, b) ((a) / (b))
#define VSQRT(a) sqrtf(a)
#define VMAX(a, b) ((a) > (b) ? (a) : (b))
#define VNEG(a) (-(a))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VFNMA(a, b, c) ((c) - (a) * (b))
#include "optim_simd.h"
#undef T
#undef V
#undef SFX
#undef VSQRT
#define T double
#define V double
#define SFX f64_generic
#define VSQRT(a) sqrt(a)
#include "optim_simd.h"
#undef T
#undef V
#undef W
#undef SFX
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VSQRT
#undef VMAX
#undef VNEG
#undef VFMA
#undef VFNMA

static inline double ce_nanmax(double a, double b) {
    if (a != a || b != b) return NAN;
    return a > b ? a : b;
}

/* x: (n); sum of x^2 in double, 8 interleaved partial sums (fixed order) */
#define CE_SUMSQ_GENERIC(T, SFX)                                                  \
    double ce_sumsq_seg_##SFX(const T *x, int64_t n) {                            \
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                   \
        int64_t i = 0;                                                            \
        for (; i + 8 <= n; i += 8)                                                \
            for (int k = 0; k < 8; k++) a[k] += (double)x[i + k] * (double)x[i + k]; \
        double t = 0.0;                                                           \
        for (; i < n; i++) t += (double)x[i] * (double)x[i];                      \
        return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + t; \
    }                                                                             \
    double ce_absmax_seg_##SFX(const T *x, int64_t n) {                           \
        double m = 0.0;                                                           \
        int nan = 0;                                                              \
        for (int64_t i = 0; i < n; i++) {                                         \
            double a = fabs((double)x[i]);                                        \
            nan |= a != a;                                                        \
            m = a > m ? a : m;                                                    \
        }                                                                         \
        return nan ? NAN : m;                                                     \
    }                                                                             \
    void ce_scale_seg_##SFX(T *x, int64_t n, double alpha) {                      \
        const T a = (T)alpha;                                                     \
        for (int64_t i = 0; i < n; i++) x[i] *= a;                                \
    }
CE_SUMSQ_GENERIC(float, f32_generic)
CE_SUMSQ_GENERIC(double, f64_generic)

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
 * exactly once; pieces start at multiples of `line` within their tensor; one contiguous range of
 * the padded layout per thread, so big and small tensors balance alike. */
static void ce_multi_apply(const int64_t *sizes, int64_t ntensors, int64_t line,
                           int64_t min_per_thread, ce_seg_cb cb, void *ctx) {
    int64_t stack_off[65];
    int64_t *off = ntensors < 65 ? stack_off : (int64_t *)malloc(sizeof(int64_t) * (ntensors + 1));
    if (!off) {
        for (int64_t t = 0; t < ntensors; t++)
            if (sizes[t] > 0) cb(ctx, t, 0, sizes[t]);
        return;
    }
    ce_layout(off, sizes, ntensors, line);
    int64_t total = off[ntensors];
    int nt = ce_threads_for(total, min_per_thread);
    if (nt <= 1) {
        for (int64_t t = 0; t < ntensors; t++)
            if (sizes[t] > 0) cb(ctx, t, 0, sizes[t]);
    } else {
        /* blocks of CE_APPLY_BLOCK elements (a multiple of every line), handed out dynamically:
         * with a busy core (other processes) the other thread keeps going instead of waiting
         * at the end of a static half. Blocks are contiguous so streams stay long. */
        int64_t nblk = (total + CE_APPLY_BLOCK - 1) / CE_APPLY_BLOCK;
        (void)nt;
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

/* ---------------- public entry points, per dtype ---------------- */
#define T float
#define TS f32
#include "optim_driver.h"
#undef T
#undef TS
#define T double
#define TS f64
#include "optim_driver.h"
#undef T
#undef TS
