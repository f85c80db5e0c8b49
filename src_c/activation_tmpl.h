/* activation_tmpl.h - SIMD bodies of the activation kernels, written once with the vm_* macros
 * of vmath.h and included by activation.c once per (ISA, dtype) pair inside a target region
 * (and for the one-lane scalar pairs: the generic path).
 * Defines VM_FN(act_fwd) and VM_FN(act_bwd) (single-threaded, n contiguous elements). */

/* GELU pieces: Phi(x) = 0.5*erfc(-x/sqrt2) and exp(-x^2/2). */
#if VM_W == 1
/* one-lane (generic) instance: libm erfc/exp in double (f32 is then exact to rounding) */
static inline void VM_FN(act_gelu_parts)(vm_t x, vm_t *phi, vm_t *e_half) {
    double xd = (double)x;
    *phi = (vm_s)(0.5 * erfc(-xd * 0.70710678118654752440));
    if (e_half) *e_half = (vm_s)exp(-0.5 * xd * xd);
}
#else
/* exp(hi + lo) for hi <= 0 (the exact high part of -z^2) and a small lo (|lo| <~ 2): vmath.h's
 * vexp_poly with lo joining the reduced argument, so the pair needs one exponential instead of
 * exp(hi) * exp(lo); hi clamped below so that results down to the denormals are kept (the
 * ldexp scales exactly), below them 0; NaN stays NaN. Used by the f32 SIMD instances. */
static inline vm_t VM_FN(act_exp2p)(vm_t hi, vm_t lo) {
    hi = vm_max(vm_set1((vm_s)-110), hi);    /* (c, hi): a NaN hi is returned */
    return VM_FN(vexp_poly)(hi, lo, 1);
}

/* z = |x|/sqrt2, z^2 = x^2/2 split exactly with FMA (zzh + zzl).
 * erfc(z) = t * exp(-z^2 + P(t)), t = 1/(1 + z/2) (the Numerical Recipes erfc form,
 * P = vmath.h's verfc_p, relative error < 1.2e-7), with exp(-zzh + (P(t) - zzl)) taken as one
 * act_exp2p and, on AVX-512, t from rcp14 plus a Newton step (error ~2^-28) instead of a
 * division; exp(-x^2/2) = act_exp2p(-zzh, -zzl). */
static inline void VM_FN(act_gelu_parts)(vm_t x, vm_t *phi, vm_t *e_half) {
    vm_t a = vm_abs(x);
    vm_t x2 = vm_mul(x, x);
    vm_t x2lo = vm_fmsub(x, x, x2);
    /* beyond |x| = 16 both exp(-x^2/2) and erfc(|x|/sqrt2) underflow: the low part (large there,
     * and NaN for x = inf) is dropped, so hi + lo stays below act_exp2p's underflow clamp */
    x2lo = vm_sel(vm_lt(a, vm_set1((vm_s)16)), x2lo, vm_zero());
    vm_t half = vm_set1((vm_s)0.5), one = vm_set1((vm_s)1);
    vm_t zzh = vm_mul(x2, half), zzl = vm_mul(x2lo, half);
    vm_t z = vm_mul(a, vm_set1((vm_s)0.70710678118654752440));
    vm_t d = vm_fmadd(vm_min(z, vm_set1((vm_s)1e4)), half, one);     /* finite for z = inf */
#if CE_VM == CE_VM_AVX512_F32
    vm_t t = _mm512_rcp14_ps(d);
    t = vm_fmadd(vm_fnmadd(d, t, one), t, t);                         /* t + t*(1 - d*t) */
#else
    vm_t t = vm_div(one, d);
#endif
    vm_t p = VM_FN(verfc_p)(t);
    vm_t nzzh = vm_sub(vm_zero(), zzh);
    vm_t q = vm_mul(vm_mul(half, t), VM_FN(act_exp2p)(nzzh, vm_sub(p, zzl)));   /* erfc(z)/2 */
    *phi = vm_sel(vm_lt(x, vm_zero()), q, vm_sub(one, q));
    if (e_half) *e_half = VM_FN(act_exp2p)(nzzh, vm_sub(vm_zero(), zzl));
}
#endif

static inline vm_t VM_FN(act_gelu_tanh_u2)(vm_t x) {   /* 2u = 2*sqrt(2/pi)*(x + 0.044715 x^3) */
    vm_t x2 = vm_mul(x, x);
    vm_t inner = vm_fmadd(vm_mul(x2, vm_set1((vm_s)0.044715)), x, x);
    return vm_mul(inner, vm_set1((vm_s)(2 * 0.79788456080286535588)));
}

static inline vm_t VM_FN(act_softplus_v)(vm_t x, vm_t beta, vm_t thr) {
    vm_t bx = vm_mul(x, beta);
    vm_t l = VM_FN(vlog1p01)(VM_FN(vexp)(vm_sub(vm_zero(), vm_abs(bx))));
    vm_t v = vm_div(vm_add(vm_max(vm_zero(), bx), l), beta);
    return vm_sel(vm_gt(bx, thr), x, v);
}

#define CE_ACT_FWD_LOOP(EXPR)                                                              \
    do {                                                                                   \
        int64_t i = 0;                                                                     \
        for (; i + VM_W <= n; i += VM_W) {                                                 \
            vm_t xv = vm_load(x + i);                                                      \
            vm_store(y + i, EXPR);                                                         \
        }                                                                                  \
        if (i < n) {                                                                       \
            vm_t xv = vm_load_part(x + i, n - i);                                          \
            vm_store_part(y + i, n - i, EXPR);                                             \
        }                                                                                  \
    } while (0)

static void VM_FN(act_fwd)(int kind, vm_s *y, const vm_s *x, int64_t n, vm_s p0, vm_s p1) {
    const vm_t zero = vm_zero(), P0 = vm_set1(p0), P1 = vm_set1(p1);
    (void)P1;
    switch (kind) {
    case CE_ACT_RELU: CE_ACT_FWD_LOOP(vm_max(zero, xv)); break;
    case CE_ACT_LEAKY_RELU: CE_ACT_FWD_LOOP(vm_sel(vm_gt(xv, zero), xv, vm_mul(xv, P0))); break;
    case CE_ACT_SIGMOID: CE_ACT_FWD_LOOP(VM_FN(vsigmoid)(xv)); break;
    case CE_ACT_TANH: CE_ACT_FWD_LOOP(VM_FN(vtanh)(xv)); break;
    case CE_ACT_SILU: CE_ACT_FWD_LOOP(vm_mul(xv, VM_FN(vsigmoid)(xv))); break;
    case CE_ACT_GELU:
#if VM_IS_F64   /* the erfc form above is f32-accurate only: f64 uses libm erfc */
        CE_ACT_SCALAR_FWD(kind, y, x, n, p0, p1);
#else
        CE_ACT_FWD_LOOP(({ vm_t phi; VM_FN(act_gelu_parts)(xv, &phi, 0); vm_mul(xv, phi); }));
#endif
        break;
    case CE_ACT_GELU_TANH:
        CE_ACT_FWD_LOOP(vm_mul(xv, VM_FN(vsigmoid)(VM_FN(act_gelu_tanh_u2)(xv))));
        break;
    case CE_ACT_SOFTPLUS: CE_ACT_FWD_LOOP(VM_FN(act_softplus_v)(xv, P0, P1)); break;
    default: break;
    }
}

/* in = x or y (see ce_act_backward_uses_y); G is dy * f' */
#define CE_ACT_BWD_LOOP(EXPR)                                                              \
    do {                                                                                   \
        int64_t i = 0;                                                                     \
        if (acc) {                                                                         \
            for (; i + VM_W <= n; i += VM_W) {                                             \
                vm_t xv = vm_load(in + i), dyv = vm_load(dy + i);                          \
                vm_store(dx + i, vm_add(vm_load(dx + i), EXPR));                           \
            }                                                                              \
            if (i < n) {                                                                   \
                vm_t xv = vm_load_part(in + i, n - i), dyv = vm_load_part(dy + i, n - i);  \
                vm_store_part(dx + i, n - i, vm_add(vm_load_part(dx + i, n - i), EXPR));   \
            }                                                                              \
        } else {                                                                           \
            for (; i + VM_W <= n; i += VM_W) {                                             \
                vm_t xv = vm_load(in + i), dyv = vm_load(dy + i);                          \
                vm_store(dx + i, EXPR);                                                    \
            }                                                                              \
            if (i < n) {                                                                   \
                vm_t xv = vm_load_part(in + i, n - i), dyv = vm_load_part(dy + i, n - i);  \
                vm_store_part(dx + i, n - i, EXPR);                                        \
            }                                                                              \
        }                                                                                  \
    } while (0)

static void VM_FN(act_bwd)(int kind, vm_s *dx, const vm_s *in, const vm_s *dy, int64_t n,
                           vm_s p0, vm_s p1, int acc) {
    const vm_t zero = vm_zero(), one = vm_set1((vm_s)1), P0 = vm_set1(p0), P1 = vm_set1(p1);
    (void)P1;
    switch (kind) {
    case CE_ACT_RELU: /* NaN passes dy through, as torch (its mask is "not x <= 0") */
        CE_ACT_BWD_LOOP(vm_sel(vm_le(xv, zero), zero, dyv)); break;
    case CE_ACT_LEAKY_RELU: CE_ACT_BWD_LOOP(vm_sel(vm_gt(xv, zero), dyv, vm_mul(dyv, P0))); break;
    case CE_ACT_SIGMOID: /* in = y */
        CE_ACT_BWD_LOOP(vm_mul(dyv, vm_mul(xv, vm_sub(one, xv))));
        break;
    case CE_ACT_TANH: /* in = y */
        CE_ACT_BWD_LOOP(vm_mul(dyv, vm_fnmadd(xv, xv, one)));
        break;
    case CE_ACT_SILU:
        CE_ACT_BWD_LOOP(({ vm_t s = VM_FN(vsigmoid)(xv);
                           vm_mul(dyv, vm_mul(s, vm_fmadd(xv, vm_sub(one, s), one))); }));
        break;
    case CE_ACT_GELU:
#if VM_IS_F64
        CE_ACT_SCALAR_BWD(kind, dx, in, dy, n, p0, p1, acc);
#else
        CE_ACT_BWD_LOOP(({ vm_t phi, eh; VM_FN(act_gelu_parts)(xv, &phi, &eh);
                           vm_mul(dyv, vm_fmadd(vm_mul(xv, eh), vm_set1((vm_s)0.39894228040143267794), phi)); }));
#endif
        break;
    case CE_ACT_GELU_TANH:
        CE_ACT_BWD_LOOP(({ vm_t x2 = vm_mul(xv, xv);
                           vm_t s = VM_FN(vsigmoid)(VM_FN(act_gelu_tanh_u2)(xv));
                           /* d(2u)/dx = 2*sqrt(2/pi)*(1 + 3*0.044715 x^2) */
                           vm_t du = vm_mul(vm_fmadd(x2, vm_set1((vm_s)(3 * 0.044715)), one),
                                            vm_set1((vm_s)(2 * 0.79788456080286535588)));
                           vm_t t = vm_mul(vm_mul(xv, s), vm_mul(vm_sub(one, s), du));
                           vm_mul(dyv, vm_add(s, t)); }));
        break;
    case CE_ACT_SOFTPLUS:
        CE_ACT_BWD_LOOP(vm_sel(vm_gt(vm_mul(xv, P0), P1), dyv,
                               vm_mul(dyv, VM_FN(vsigmoid)(vm_mul(xv, P0)))));
        break;
    default: break;
    }
}
#undef CE_ACT_FWD_LOOP
#undef CE_ACT_BWD_LOOP
