/* softmax_tmpl.h - SIMD row primitives for softmax / log_softmax / cross-entropy, written once
 * with the vm_* macros of vmath.h; included once per (ISA, dtype) pair inside a target region
 * (softmax.c, loss.c, norm.c). All functions work on one contiguous row of C elements. */
#include <math.h>

/* exp(d) for the arguments of these kernels (d <= 0: x - max, or a log-probability; -inf for
 * masked entries and for the padding lanes of a row's tail). Results below the smallest normal
 * number come back as exactly 0 instead of as subnormals: a subnormal result takes a microcode
 * assist on x86 (a causally masked softmax ran 8x slower), and a probability under 1.2e-38
 * (float32; 2.2e-308 float64) is 0 to everything downstream. NaN stays NaN. */
static inline vm_t VM_FN(sm_exp)(vm_t d) {
#if VM_W == 1
    /* generic path: libm */
    return d < (vm_s)(VM_IS_F64 ? -708.39 : -87.33f) ? (vm_s)0 : VM_FN(vexp)(d);
#else
    /* vexp with its argument clamps folded into the flush-to-zero select: lanes below the
     * smallest normal result (and -inf, whose reduction gives NaN) are replaced by 0, so only
     * the upper clamp (which keeps overflow an exact inf) remains. Any d is accepted
     * (log_softmax backward and cross-entropy pass log-probabilities that rounding can leave
     * slightly above 0); NaN stays NaN (vm_min(hi, d) returns a NaN d). */
    d = vm_min(vm_set1(VM_EXP_MAX), d);
    vm_t e = VM_FN(vexp_poly)(d, vm_zero(), 0);
    return vm_sel(vm_lt(d, vm_set1((vm_s)(VM_IS_F64 ? -708.39 : -87.33f))), vm_zero(), e);
#endif
}

/* software prefetch of the row the next call will read (the passes after the first one of a
 * row run from L1, so without it the memory system idles while they compute) */
#undef CE_SM_PF
#undef CE_SM_PFW
#undef CE_SM_PF_DIST
#if VM_W > 1
#define CE_SM_PF(p) __builtin_prefetch((p), 0, 3)
/* the same for a row about to be written (read for ownership ahead of the stores) */
#define CE_SM_PFW(p) __builtin_prefetch((p), 1, 3)
#else
#define CE_SM_PF(p) ((void)0)
#define CE_SM_PFW(p) ((void)0)
#endif
/* how far ahead (elements) a row pass prefetches: the next row, and at least 4 KiB ahead so
 * that short rows still cover the memory latency */
#define CE_SM_PF_DIST(C) ((C) > (int64_t)(4096 / sizeof(vm_s)) ? (C) : (int64_t)(4096 / sizeof(vm_s)))

/* max over the row (NaN may be dropped here; it still reaches every output through the sum) */
static inline vm_s VM_FN(sm_max)(const vm_s *x, int64_t C) {
    vm_t m0 = vm_set1((vm_s)-INFINITY), m1 = m0;
    int64_t i = 0;
    for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
        m0 = vm_max(m0, vm_load(x + i));
        m1 = vm_max(m1, vm_load(x + i + VM_W));
    }
    for (; i + VM_W <= C; i += VM_W) m0 = vm_max(m0, vm_load(x + i));
    if (i < C) m1 = vm_max(m1, vm_load_part_fill(x + i, C - i, (vm_s)-INFINITY));
    return vm_hmax(vm_max(m0, m1));
}

/* sum_c exp(x_c - m), also storing the exponentials in y when y != NULL */
static inline vm_s VM_FN(sm_expsum)(vm_s *y, const vm_s *x, int64_t C, vm_s m) {
    vm_t mv = vm_set1(m), s0 = vm_zero(), s1 = vm_zero();
    int64_t i = 0;
    if (y) {
        for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
            vm_t e0 = VM_FN(sm_exp)(vm_sub(vm_load(x + i), mv));
            vm_t e1 = VM_FN(sm_exp)(vm_sub(vm_load(x + i + VM_W), mv));
            vm_store(y + i, e0);
            vm_store(y + i + VM_W, e1);
            s0 = vm_add(s0, e0);
            s1 = vm_add(s1, e1);
        }
        for (; i + VM_W <= C; i += VM_W) {
            vm_t e0 = VM_FN(sm_exp)(vm_sub(vm_load(x + i), mv));
            vm_store(y + i, e0);
            s0 = vm_add(s0, e0);
        }
        if (i < C) {
            vm_t e0 = VM_FN(sm_exp)(vm_sub(vm_load_part_fill(x + i, C - i, (vm_s)-INFINITY), mv));
            vm_store_part(y + i, C - i, e0);
            s1 = vm_add(s1, e0);
        }
    } else {
        for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
            s0 = vm_add(s0, VM_FN(sm_exp)(vm_sub(vm_load(x + i), mv)));
            s1 = vm_add(s1, VM_FN(sm_exp)(vm_sub(vm_load(x + i + VM_W), mv)));
        }
        for (; i + VM_W <= C; i += VM_W) s0 = vm_add(s0, VM_FN(sm_exp)(vm_sub(vm_load(x + i), mv)));
        if (i < C)
            s1 = vm_add(s1, VM_FN(sm_exp)(vm_sub(vm_load_part_fill(x + i, C - i, (vm_s)-INFINITY), mv)));
    }
    return vm_hsum(vm_add(s0, s1));
}

/* sm_expsum (y may be NULL) prefetching pf[0, C) as it goes (pf: CE_SM_PF_DIST ahead) */
static inline vm_s VM_FN(sm_expsum_pf)(vm_s *y, const vm_s *x, int64_t C, vm_s m, const vm_s *pf) {
    vm_t mv = vm_set1(m), s0 = vm_zero(), s1 = vm_zero();
    int64_t i = 0;
#define CE_SM_PF2(i)                                                                          \
    do {                                                                                      \
        CE_SM_PF(pf + (i));                                                                   \
        if (VM_W * sizeof(vm_s) >= 64) CE_SM_PF(pf + (i) + VM_W);                             \
    } while (0)
    if (y) {
        for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
            CE_SM_PF2(i);
            vm_t e0 = VM_FN(sm_exp)(vm_sub(vm_load(x + i), mv));
            vm_t e1 = VM_FN(sm_exp)(vm_sub(vm_load(x + i + VM_W), mv));
            vm_store(y + i, e0);
            vm_store(y + i + VM_W, e1);
            s0 = vm_add(s0, e0);
            s1 = vm_add(s1, e1);
        }
    } else {
        for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
            CE_SM_PF2(i);
            s0 = vm_add(s0, VM_FN(sm_exp)(vm_sub(vm_load(x + i), mv)));
            s1 = vm_add(s1, VM_FN(sm_exp)(vm_sub(vm_load(x + i + VM_W), mv)));
        }
    }
#undef CE_SM_PF2
    for (; i + VM_W <= C; i += VM_W) {
        CE_SM_PF(pf + i);
        vm_t e0 = VM_FN(sm_exp)(vm_sub(vm_load(x + i), mv));
        if (y) vm_store(y + i, e0);
        s0 = vm_add(s0, e0);
    }
    if (i < C) {
        CE_SM_PF(pf + i);
        vm_t e0 = VM_FN(sm_exp)(vm_sub(vm_load_part_fill(x + i, C - i, (vm_s)-INFINITY), mv));
        if (y) vm_store_part(y + i, C - i, e0);
        s1 = vm_add(s1, e0);
    }
    return vm_hsum(vm_add(s0, s1));
}

/* y = y * s */
static inline void VM_FN(sm_scale)(vm_s *y, int64_t C, vm_s s) {
    vm_t sv = vm_set1(s);
    int64_t i = 0;
    for (; i + VM_W <= C; i += VM_W) vm_store(y + i, vm_mul(vm_load(y + i), sv));
    if (i < C) vm_store_part(y + i, C - i, vm_mul(vm_load_part(y + i, C - i), sv));
}

/* y = (x - s) - t */
static inline void VM_FN(sm_sub)(vm_s *y, const vm_s *x, int64_t C, vm_s s, vm_s t) {
    vm_t sv = vm_set1(s), tv = vm_set1(t);
    int64_t i = 0;
    for (; i + VM_W <= C; i += VM_W) vm_store(y + i, vm_sub(vm_sub(vm_load(x + i), sv), tv));
    if (i < C) vm_store_part(y + i, C - i, vm_sub(vm_sub(vm_load_part(x + i, C - i), sv), tv));
}

/* sum_c a_c * b_c (b == NULL: sum_c a_c) */
static inline vm_s VM_FN(sm_dot)(const vm_s *a, const vm_s *b, int64_t C) {
    vm_t s0 = vm_zero(), s1 = vm_zero();
    int64_t i = 0;
    if (b) {
        for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
            s0 = vm_fmadd(vm_load(a + i), vm_load(b + i), s0);
            s1 = vm_fmadd(vm_load(a + i + VM_W), vm_load(b + i + VM_W), s1);
        }
        for (; i + VM_W <= C; i += VM_W) s0 = vm_fmadd(vm_load(a + i), vm_load(b + i), s0);
        if (i < C) s1 = vm_fmadd(vm_load_part(a + i, C - i), vm_load_part(b + i, C - i), s1);
    } else {
        for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
            s0 = vm_add(vm_load(a + i), s0);
            s1 = vm_add(vm_load(a + i + VM_W), s1);
        }
        for (; i + VM_W <= C; i += VM_W) s0 = vm_add(vm_load(a + i), s0);
        if (i < C) s1 = vm_add(vm_load_part(a + i, C - i), s1);
    }
    return vm_hsum(vm_add(s0, s1));
}

/* Write passes take `nts`: when set (and not accumulating) the output is written with
 * non-temporal stores (no read-for-ownership of a destination that will not be re-read soon):
 * a partial head up to the stream alignment, streamed body, partial tail. Otherwise the
 * destination's next row (CE_SM_PF_DIST ahead) is prefetched for writing as the pass goes, so
 * its read for ownership overlaps this row's work instead of stalling the stores (float32,
 * 1 thread, CPU time on a loaded machine: softmax backward [4096,1024] -18%, LayerNorm
 * forward -13%, cross-entropy backward [8192,1000] -8%). */
#define CE_SM_WRITE_PASS(DST, N, STREAM, G)                                                     \
    do {                                                                                        \
        int64_t i = 0, r;                                                                       \
        if (STREAM) {                                                                           \
            r = vm_head(DST, N);                                                                \
            if (r) {                                                                            \
                vm_t g = G(vm_load_part, r);                                                    \
                vm_store_part((DST), r, g);                                                     \
                i = r;                                                                          \
            }                                                                                   \
            for (; i + VM_W <= (N); i += VM_W) {                                                \
                vm_t g = G(CE_SM_FULL, 0);                                                      \
                vm_stream((DST) + i, g);                                                        \
            }                                                                                   \
        } else if (acc) {                                                                       \
            for (; i + VM_W <= (N); i += VM_W) {                                                \
                CE_SM_PFW((DST) + i + CE_SM_PF_DIST(N));                                        \
                vm_t g = G(CE_SM_FULL, 0);                                                      \
                vm_store((DST) + i, vm_add(vm_load((DST) + i), g));                             \
            }                                                                                   \
        } else {                                                                                \
            for (; i + VM_W <= (N); i += VM_W) {                                                \
                CE_SM_PFW((DST) + i + CE_SM_PF_DIST(N));                                        \
                vm_t g = G(CE_SM_FULL, 0);                                                      \
                vm_store((DST) + i, g);                                                         \
            }                                                                                   \
        }                                                                                       \
        if (i < (N)) {                                                                          \
            r = (N) - i;                                                                        \
            vm_t g = G(vm_load_part, r);                                                        \
            vm_store_part((DST) + i, r, acc ? vm_add(vm_load_part((DST) + i, r), g) : g);       \
        }                                                                                       \
    } while (0)
#define CE_SM_FULL(p, r) vm_load(p)

/* softmax backward row: dx (+)= y * (dy - s) */
static inline void VM_FN(sm_bwd)(vm_s *dx, const vm_s *y, const vm_s *dy, int64_t C, vm_s s, int acc,
                                 int nts) {
    vm_t sv = vm_set1(s);
    const int64_t pd = CE_SM_PF_DIST(C);   /* prefetch y and dy that far ahead */
#define G_(LD, r) ({ CE_SM_PF(y + i + pd); CE_SM_PF(dy + i + pd);                              \
                     vm_mul(LD(y + i, r), vm_sub(LD(dy + i, r), sv)); })
    CE_SM_WRITE_PASS(dx, C, nts && !acc, G_);
#undef G_
}

/* log_softmax backward row: dx (+)= dy - exp(y) * s */
static inline void VM_FN(sm_lbwd)(vm_s *dx, const vm_s *y, const vm_s *dy, int64_t C, vm_s s, int acc,
                                  int nts) {
    vm_t sv = vm_set1(s);
    const int64_t pd = CE_SM_PF_DIST(C);
#define G_(LD, r) ({ CE_SM_PF(y + i + pd); CE_SM_PF(dy + i + pd);                              \
                     vm_fnmadd(VM_FN(sm_exp)(LD(y + i, r)), sv, LD(dy + i, r)); })
    CE_SM_WRITE_PASS(dx, C, nts && !acc, G_);
#undef G_
}

/* y = (x - s) - t, or y = x * s when t is NaN-free flag mul... (two helpers below) */
static inline void VM_FN(sm_sub_nt)(vm_s *y, const vm_s *x, int64_t C, vm_s s, vm_s t, int nts) {
    vm_t sv = vm_set1(s), tv = vm_set1(t);
    const int acc = 0;
#define G_(LD, r) vm_sub(vm_sub(LD(x + i, r), sv), tv)
    CE_SM_WRITE_PASS(y, C, nts, G_);
#undef G_
}

/* y = x * s (x may be a scratch row) */
static inline void VM_FN(sm_mul_nt)(vm_s *y, const vm_s *x, int64_t C, vm_s s, int nts) {
    vm_t sv = vm_set1(s);
    const int acc = 0;
#define G_(LD, r) vm_mul(LD(x + i, r), sv)
    CE_SM_WRITE_PASS(y, C, nts, G_);
#undef G_
}
