/* cast.c - float32 <-> bfloat16 / float16 array conversions (contract in cast.h).
 *
 * Paths: the cast_tmpl.h row kernels over vmath.h + vmath_cvt.h, instantiated per ISA by
 * isa_each.h (avx512, avx2 with F16C, generic = the one-lane scalar instance); *_ref below is
 * plain scalar C written independently of them (the f16 one by float arithmetic). The public
 * entry points split n into per-thread chunks and pick the path from ce_isa. */
#include <math.h>
#include <string.h>
#include <cpuid.h>
#include "nn_util.h"
#include "cast.h"

#define CE_CAST_MIN_PER_THREAD (1 << 16)

#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "vmath_cvt.h"
#define CE_EACH_INC2 "cast_tmpl.h"
#include "isa_each.h"

/* F16C (CPUID.1:ECX bit 29): every CPU with AVX2 + FMA has it; checked all the same */
static int cast_f16c(void) {
    static int have = -1;
    if (have < 0) {
        unsigned a, b, c, d;
        have = __get_cpuid(1, &a, &b, &c, &d) ? (int)((c >> 29) & 1u) : 0;
    }
    return have;
}

static inline int cast_threads(int64_t n) { return ce_par_threads(n, CE_CAST_MIN_PER_THREAD); }

/* CE_ISA_CALL, with the avx2 f16 kernels only where F16C is there */
#define CAST_F16_CALL(NAME, ...)                                                              \
    (ce_isa >= CE_ISA_AVX512                   ? ce_##NAME##_avx512_f32(__VA_ARGS__)           \
     : (ce_isa >= CE_ISA_AVX2 && cast_f16c()) ? ce_##NAME##_avx2_f32(__VA_ARGS__)             \
                                              : ce_##NAME##_scalar_f32(__VA_ARGS__))

void ce_cast_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    CE_PAR_CHUNKS(n, cast_threads(n), 16, CE_ISA_CALL(cast_f32_bf16, f32, dst + lo, src + lo, hi - lo));
}

void ce_cast_bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    if (n <= 0) return;
    CE_PAR_CHUNKS(n, cast_threads(n), 16, CE_ISA_CALL(cast_bf16_f32, f32, dst + lo, src + lo, hi - lo));
}

void ce_cast_f32_to_f16(uint16_t *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    (void)cast_f16c();
    CE_PAR_CHUNKS(n, cast_threads(n), 16, CAST_F16_CALL(cast_f32_f16, dst + lo, src + lo, hi - lo));
}

void ce_cast_f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    if (n <= 0) return;
    (void)cast_f16c();
    CE_PAR_CHUNKS(n, cast_threads(n), 16, CAST_F16_CALL(cast_f16_f32, dst + lo, src + lo, hi - lo));
}

void ce_cast_f32_to_bf16_seg(uint16_t *dst, const float *src, int64_t n) {
    if (n > 0) CE_ISA_CALL(cast_f32_bf16, f32, dst, src, n);
}

void ce_cast_f32_to_f16_seg(uint16_t *dst, const float *src, int64_t n) {
    if (n > 0) CAST_F16_CALL(cast_f32_f16, dst, src, n);
}

/* ---- plain references ------------------------------------------------------------------------ */
static uint32_t ref_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float ref_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void ce_cast_f32_to_bf16_ref(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = ref_bits(src[i]);
        if (isnan(src[i])) {
            dst[i] = 0xffff;
            continue;
        }
        uint32_t hi = u >> 16, lo = u & 0xffffu;   /* keep hi, or step to the next pattern */
        if (lo > 0x8000u || (lo == 0x8000u && (hi & 1u))) hi++;
        dst[i] = (uint16_t)hi;
    }
}

void ce_cast_bf16_to_f32_ref(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = ref_float((uint32_t)src[i] << 16);
}

/* float16 by float arithmetic: nearbyintf rounds to nearest even; scaling by powers of two is
 * exact */
void ce_cast_f32_to_f16_ref(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float f = src[i];
        uint16_t sign = signbit(f) ? 0x8000u : 0;
        float a = fabsf(f);
        uint16_t h;
        if (isnan(f)) {
            h = (uint16_t)(0x7e00u | ((ref_bits(f) >> 13) & 0x3ffu));
        } else if (a >= 65520.0f) {
            h = 0x7c00u;
        } else if (a < 0x1p-14f) {
            h = (uint16_t)nearbyintf(a * 0x1p24f);       /* multiples of 2^-24; 1024 = 2^-14 */
        } else {
            int ex;
            frexpf(a, &ex);                              /* a = m * 2^(ex-1), m in [1, 2) */
            float q = nearbyintf(ldexpf(a, 11 - ex));    /* in [1024, 2048] */
            int e = ex - 1 + 15;
            if (q == 2048.0f) {
                q = 1024.0f;
                e++;
            }
            h = (uint16_t)(((unsigned)e << 10) | (unsigned)(q - 1024.0f));
        }
        dst[i] = (uint16_t)(sign | h);
    }
}

void ce_cast_f16_to_f32_ref(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        int e = (src[i] >> 10) & 0x1f;
        int m = src[i] & 0x3ff;
        float v;
        if (e == 31 && m) {
            dst[i] = ref_float(((uint32_t)(src[i] & 0x8000u) << 16) | 0x7fc00000u |
                               ((uint32_t)m << 13));
            continue;
        }
        if (e == 31)
            v = INFINITY;
        else if (e == 0)
            v = ldexpf((float)m, -24);
        else
            v = ldexpf((float)(m + 1024), e - 25);
        dst[i] = (src[i] & 0x8000u) ? -v : v;
    }
}

/* ---- 16-bit transpose --------------------------------------------------------------------------
 * dst (C, R) row-major = src (R, C)^T with src row stride lds (elements); 32 x 32 tiles so
 * both sides stay in L1; threads split the column tiles (disjoint rows of dst). */
#define CE_TR_TILE 32

static void transpose_u16_tiles(uint16_t *dst, const uint16_t *src, int64_t R, int64_t C,
                                int64_t lds, int64_t c0, int64_t c1) {
    for (int64_t cb = c0; cb < c1; cb += CE_TR_TILE) {
        int64_t ce = cb + CE_TR_TILE < c1 ? cb + CE_TR_TILE : c1;
        for (int64_t rb = 0; rb < R; rb += CE_TR_TILE) {
            int64_t re = rb + CE_TR_TILE < R ? rb + CE_TR_TILE : R;
            for (int64_t c = cb; c < ce; c++) {
                uint16_t *d = dst + c * R;
                for (int64_t r = rb; r < re; r++) d[r] = src[r * lds + c];
            }
        }
    }
}

void ce_transpose_u16(uint16_t *dst, const uint16_t *src, int64_t R, int64_t C, int64_t lds) {
    if (R <= 0 || C <= 0) return;
    int64_t tiles = (C + CE_TR_TILE - 1) / CE_TR_TILE;
    CE_PAR_CHUNKS(tiles, ce_par_threads(R * C, CE_CAST_MIN_PER_THREAD), 1,
                  transpose_u16_tiles(dst, src, R, C, lds, lo * CE_TR_TILE,
                                      hi * CE_TR_TILE < C ? hi * CE_TR_TILE : C));
}

void ce_transpose_u16_ref(uint16_t *dst, const uint16_t *src, int64_t R, int64_t C, int64_t lds) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) dst[c * R + r] = src[r * lds + c];
}
