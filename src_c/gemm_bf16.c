/* gemm_bf16.c - bfloat16 GEMM (fp32 accumulation) and f32 <-> bf16 casts; contract in
 * gemm_bf16.h.
 *
 * Packed layout for vdpbf16ps: one uint32 holds a k-pair, (x(k) | x(k+1) << 16) as bfloat16
 * bits. An A micro-panel (12 rows) is dst[p*12 + i] = pair(A(i, 2p), A(i, 2p+1)); a B
 * micro-panel (32 columns) is dst[p*32 + j] = pair(B(2p, j), B(2p+1, j)). vdpbf16ps with a
 * broadcast A pair and a B vector adds A(i,2p)*B(2p,j) + A(i,2p+1)*B(2p+1,j) to lane j.
 * Odd K and partial tiles are zero-padded.
 *
 * Paths (ce_gemm_bf16_path):
 *   2  AMX-BF16 tiles: a 32 x 32 C block in four 16 x 16 fp32 tiles; A panels of 32 rows laid
 *      out per 32-k step as 32 rows of 16 pairs (64-byte tile rows), B panels as above with the
 *      pairs padded to a multiple of 16 (one 16-row tile per step). Needs the Linux permission
 *      request for the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM), made once.
 *   1  AVX512_BF16: 12 x 32 register tile of vdpbf16ps.
 *   0  round the operands to bfloat16 into float32 copies and run ce_sgemm.
 */
#include <stdlib.h>
#include <string.h>
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include "cengine.h"
#if CE_HAVE_OPENMP
#include <omp.h>
#define CE_TID() omp_get_thread_num()
#define CE_TEAM() omp_get_num_threads()
#else
#define CE_TID() 0
#define CE_TEAM() 1
#endif

#define BF_MR 12      /* AVX512_BF16 register tile */
#define BF_NR 32
#define AMX_MR 32     /* AMX: 2 x 2 tiles of 16 x 16 */
#define BF_KC 1024   /* at most 512 k-pairs per K block, K split into equal even blocks: a B
                      * micro-panel of 64 KiB and an A block of 384 KiB stay in L2 (Zen 4: the
                      * vdpbf16ps loop runs at peak from L2; 1024 beat 256-768 there, C being
                      * read and written once per K block) */
#define AMX_KC 2048  /* AMX: C is touched once per 2048 k (tried 256-2048, also with C
                        * accumulated in the tiles across K blocks: the longest K block wins) */
#define BF_MC 192
#define BF_NC 2048
#define BF_MIN_WORK_PER_THREAD (1 << 20)   /* multiply-adds */

static inline int64_t mn64(int64_t a, int64_t b) { return a < b ? a : b; }

/* offset of batch element b of an nb x nb2 batch (b = b1 * nb2 + b2) with strides s1, s2 */
static inline int64_t boff(int64_t b, int64_t nb2, int64_t s1, int64_t s2) {
    return (b / nb2) * s1 + (b % nb2) * s2;
}

/* ---- scalar conversions --------------------------------------------------------------------- */
static inline uint16_t bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);   /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* the bfloat16 output of a product: the bits ce_cast_f32_to_bf16 (cast.h) gives, torch's
 * Tensor.to(): round to nearest even, any NaN -> 0xffff */
static inline uint16_t bf16_out_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0xffffu;
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float bf16_val(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* bfloat16 bits of element e of a float32 or bfloat16 source */
static inline uint32_t src_bits(const void *src, int dt, int64_t e) {
    return dt == CE_BF16_SRC_F32 ? bf16_rne(((const float *)src)[e]) : ((const uint16_t *)src)[e];
}

void ce_f32_to_bf16_ref(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_rne(src[i]);
}

void ce_bf16_to_f32_ref(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_val(src[i]);
}

/* ---- AVX-512 pieces --------------------------------------------------------------------------- */
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")

/* 16 float32 -> bfloat16 bits in the low half of each 32-bit lane (round to nearest even) */
static inline __m512i bf16_rne16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb,
                                                   _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}

/* bfloat16 bits of 16 lines (unit line stride) at k-row src, as 32-bit lanes; w < 16 masks */
static inline __m512i bf16_lines16(const void *src, int dt, int w) {
    __mmask16 m = w >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << w) - 1);
    if (dt == CE_BF16_SRC_F32)
        return bf16_rne16(_mm512_maskz_loadu_ps(m, src));
    return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, src));
}

static void f32_to_bf16_avx512(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtepi32_epi16(bf16_rne16(_mm512_loadu_ps(src + i))));
    for (; i < n; i++) dst[i] = bf16_rne(src[i]);
}

static void bf16_to_f32_avx512(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
    }
    for (; i < n; i++) dst[i] = bf16_val(src[i]);
}

/* 16 k-pairs (32 consecutive k values, unit k stride) from element e of a float32/bfloat16
 * source, pair q in 32-bit lane q */
static inline __m512i pairs16(const void *src, int dt, int64_t e) {
    if (dt == CE_BF16_SRC_F32) {
        const float *s = (const float *)src + e;
        __m512i lo = bf16_rne16(_mm512_loadu_ps(s)), hi = bf16_rne16(_mm512_loadu_ps(s + 16));
        return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(lo)),
                                  _mm512_cvtepi32_epi16(hi), 1);
    }
    return _mm512_loadu_si512((const uint16_t *)src + e);
}

/* r (16 x 16 32-bit lanes) transposed in place: lane j of r[i] <-> lane i of r[j] */
static inline void tr16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    /* u[4k+j], 128-bit lane L: rows 4k..4k+3 of column 4L+j */
    for (int k = 0; k < 4; k++) {
        u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i x0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44);
        __m512i x1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xee);
        __m512i y0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        __m512i y1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xee);
        r[j] = _mm512_shuffle_i32x4(x0, y0, 0x88);
        r[4 + j] = _mm512_shuffle_i32x4(x0, y0, 0xdd);
        r[8 + j] = _mm512_shuffle_i32x4(x1, y1, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(x1, y1, 0xdd);
    }
}

/* pairs p of 16 lines l0.. (unit line stride, w - l0 of them valid, k rows at stride ks) */
static inline __m512i line_pairs16(const char *src, int dt, size_t es, int64_t ks, int64_t l0,
                                   int nvalid, int64_t p, int64_t k) {
    if (nvalid <= 0 || 2 * p >= k) return _mm512_setzero_si512();
    const char *r0 = src + ((size_t)(2 * p) * ks + l0) * es;
    __m512i v = bf16_lines16(r0, dt, nvalid);
    if (2 * p + 1 < k)
        v = _mm512_or_si512(v, _mm512_slli_epi32(bf16_lines16(r0 + ks * es, dt, nvalid), 16));
    return v;
}

/* Pack w <= W lines of k values into k-pairs: dst[p*W + l] = pair(src(l, 2p), src(l, 2p+1)),
 * src(l, kk) = src[l*ls + kk*ks]; lines w..W-1, the odd-k tail and pairs up to kp_pad are zero.
 * Lines contiguous (ls == 1): vectors along the lines; k contiguous (ks == 1): 16 x 16 blocks
 * of pairs transposed in registers (W a multiple of 16), else 16 pairs of one line at a time. */
static void pack_pairs(uint32_t *dst, int W, const void *src, int dt, int64_t ls, int64_t ks,
                       int w, int64_t k, int64_t kp_pad) {
    const int64_t kp = (k + 1) / 2;
    for (int64_t p = kp; p < kp_pad; p++)   /* pairs past k (AMX steps of 16 pairs) */
        for (int l = 0; l < W; l++) dst[p * W + l] = 0;
    const size_t es = dt == CE_BF16_SRC_F32 ? 4 : 2;
    if (ls == 1) {   /* lines contiguous: vectors along the lines */
        for (int64_t p = 0; p < kp; p++)
            for (int l = 0; l < W; l += 16) {
                __m512i v = line_pairs16((const char *)src, dt, es, ks, l, w - l, p, k);
                if (W - l >= 16) _mm512_storeu_si512(dst + p * W + l, v);
                else _mm512_mask_storeu_epi32(dst + p * W + l, (__mmask16)((1u << (W - l)) - 1), v);
            }
        return;
    }
    int wv = 0;            /* lines [0, wv) x pairs [0, pv) done in 16 x 16 blocks */
    int64_t pv = 0;
    if (ks == 1) {
        /* groups of 16 lines (a partial group, e.g. the 12 rows of an A panel, padded with zero
         * lines), 16 pairs of each gathered and transposed in registers; a group narrower than
         * 16 lanes in dst is stored through a mask (consecutive pairs are W lanes apart) */
        wv = w;
        pv = k / 2 / 16 * 16;
        for (int l0 = 0; l0 < w; l0 += 16) {
            const int nl = w - l0 < 16 ? w - l0 : 16, nw = W - l0 < 16 ? W - l0 : 16;
            const __mmask16 mk = (__mmask16)((1u << nw) - 1);
            for (int64_t p = 0; p < pv; p += 16) {
                __m512i r[16];
                for (int q = 0; q < 16; q++)
                    r[q] = q < nl ? pairs16(src, dt, (int64_t)(l0 + q) * ls + 2 * p)
                                  : _mm512_setzero_si512();
                tr16x16(r);
                if (nw == 16)
                    for (int q = 0; q < 16; q++) _mm512_storeu_si512(dst + (p + q) * W + l0, r[q]);
                else
                    for (int q = 0; q < 16; q++)
                        _mm512_mask_storeu_epi32(dst + (p + q) * W + l0, mk, r[q]);
            }
        }
    }
    for (int l = 0; l < w; l++) {
        const int64_t base = (int64_t)l * ls;
        int64_t p = l < wv ? pv : 0;
        if (ks == 1 && l >= wv) {   /* k contiguous: 16 pairs per step */
            for (; p + 16 <= k / 2; p += 16) {
                uint32_t tmp[16];
                _mm512_storeu_si512(tmp, pairs16(src, dt, base + 2 * p));
                for (int q = 0; q < 16; q++) dst[(p + q) * W + l] = tmp[q];
            }
        }
        for (; p < kp; p++) {
            uint32_t lo = src_bits(src, dt, base + 2 * p * ks);
            uint32_t hi = 2 * p + 1 < k ? src_bits(src, dt, base + (2 * p + 1) * ks) : 0;
            dst[p * W + l] = lo | hi << 16;
        }
    }
    for (int64_t p = 0; p < kp; p++)
        for (int l = w; l < W; l++) dst[p * W + l] = 0;
}

/* pairs [pb, pb+16) of an AMX A panel (layout of pack_a_amx) from w rows at unit row stride */
static inline void amx_a_step_cm(uint32_t *dst, const char *src, int dt, size_t es, int64_t ks,
                                 int w, int64_t pb, int64_t k) {
    for (int i0 = 0; i0 < AMX_MR; i0 += 16) {
        __m512i r[16];
        for (int q = 0; q < 16; q++) r[q] = line_pairs16(src, dt, es, ks, i0, w - i0, pb + q, k);
        tr16x16(r);
        for (int i = 0; i < 16; i++)
            _mm512_storeu_si512(dst + (pb / 16 * AMX_MR + i0 + i) * 16, r[i]);
    }
}

/* A block of mc rows with unit row stride (a column-major A), k values at stride ks, into the
 * micro-panels of MR rows that pack_a_amx (amx) or pack_pairs (MR = 12) would write, panel t at
 * dst + t*kp*MR: k-pairs outer, panels inner, so each k row of the block is read once, in order */
static void pack_a_block_cm(uint32_t *dst, int amx, const void *src, int dt, int64_t ks,
                            int64_t mc, int64_t k, int64_t kp) {
    const size_t es = dt == CE_BF16_SRC_F32 ? 4 : 2;
    const int MR = amx ? AMX_MR : BF_MR;
    const char *s = (const char *)src;
    if (amx) {
        for (int64_t pb = 0; pb < kp; pb += 16)
            for (int64_t ir = 0; ir < mc; ir += MR)
                amx_a_step_cm(dst + ir / MR * kp * MR, s + (size_t)ir * es, dt, es, ks,
                              (int)mn64(MR, mc - ir), pb, k);
        return;
    }
    for (int64_t p = 0; p < kp; p++) {
        if (2 * p + 9 < k) {   /* the two k rows 4 pairs ahead: a strided walk the hardware
                                * prefetchers miss (+5-10% on the weight-gradient GEMMs) */
            const char *r0 = s + (size_t)(2 * p + 8) * ks * es;
            for (size_t o = 0; o < (size_t)mc * es; o += 64) {
                _mm_prefetch(r0 + o, _MM_HINT_T0);
                _mm_prefetch(r0 + (size_t)ks * es + o, _MM_HINT_T0);
            }
        }
        for (int64_t ir = 0; ir < mc; ir += MR) {
            __m512i v = line_pairs16(s, dt, es, ks, ir, (int)mn64(MR, mc - ir), p, k);
            _mm512_mask_storeu_epi32(dst + ir / MR * kp * MR + p * MR,
                                     (__mmask16)((1u << MR) - 1), v);
        }
    }
}

/* AMX A panel: w <= 32 rows of k values, kpp (a multiple of 16) pairs:
 * dst[((p/16)*32 + i)*16 + p%16] = pair(src(i, 2p), src(i, 2p+1)), src(i, kk) = src[i*ls + kk*ks],
 * zero for rows >= w and pairs past k. Rows contiguous (ls == 1, a column-major A): 16 pairs of
 * 16 rows gathered along the rows, then transposed in registers. */
static void pack_a_amx(uint32_t *dst, const void *src, int dt, int64_t ls, int64_t ks, int w,
                       int64_t k, int64_t kpp) {
    const int64_t kp = (k + 1) / 2;
    for (int i = 0; i < AMX_MR; i++) {
        int64_t p = 0;
        if (i < w && ks == 1)
            for (; p + 16 <= k / 2; p += 16)
                _mm512_storeu_si512(dst + ((p >> 4) * AMX_MR + i) * 16,
                                    pairs16(src, dt, (int64_t)i * ls + 2 * p));
        for (; p < kpp; p++) {
            uint32_t v = 0;
            if (i < w && p < kp) {
                const int64_t base = (int64_t)i * ls;
                v = src_bits(src, dt, base + 2 * p * ks);
                if (2 * p + 1 < k) v |= src_bits(src, dt, base + (2 * p + 1) * ks) << 16;
            }
            dst[((p >> 4) * AMX_MR + i) * 16 + (p & 15)] = v;
        }
    }
}

/* 16 float32 -> the bfloat16 output bits (bf16_out_bits) as 16-bit lanes */
static inline __m256i bf16_out16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb,
                                                   _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0xffff)));
}

/* element (i, j) of C: float32 (dtC CE_BF16_SRC_F32) or bfloat16 bits (CE_BF16_SRC_BF16) */
static inline float c_get(const void *C, int dtC, int64_t e) {
    return dtC == CE_BF16_SRC_F32 ? ((const float *)C)[e] : bf16_val(((const uint16_t *)C)[e]);
}

static inline void c_put(void *C, int dtC, int64_t e, float v) {
    if (dtC == CE_BF16_SRC_F32) ((float *)C)[e] = v;
    else ((uint16_t *)C)[e] = bf16_out_bits(v);
}

/* C tile epilogue from a float32 tile t (ldt columns): C = alpha*t + beta*C (+ bias), C
 * float32 or bfloat16 (dtC; a bfloat16 C is read as its value and the result rounded once) */
static void tile_out(const float *t, int ldt, void *C, int dtC, int64_t rsC, int64_t csC,
                     float alpha, float beta, const float *bias, int64_t sbias, int m, int n) {
    if (csC == 1 && (bias == NULL || sbias == 1)) {
        const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j += 16) {
                __mmask16 mk = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
                __m512 bz = bias ? _mm512_maskz_loadu_ps(mk, bias + j) : _mm512_setzero_ps();
                __m512 v = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(mk, t + i * ldt + j), bz);
                if (dtC == CE_BF16_SRC_F32) {
                    float *ci = (float *)C + i * rsC + j;
                    if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, ci), v);
                    _mm512_mask_storeu_ps(ci, mk, v);
                } else {
                    uint16_t *ci = (uint16_t *)C + i * rsC + j;
                    if (beta != 0.0f) {
                        __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, ci));
                        v = _mm512_fmadd_ps(vb, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)), v);
                    }
                    _mm256_mask_storeu_epi16(ci, mk, bf16_out16(v));
                }
            }
        }
        return;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            const int64_t e = i * rsC + j * csC;
            float v = alpha * t[i * ldt + j] + (bias ? bias[j * sbias] : 0.0f);
            c_put(C, dtC, e, beta != 0.0f ? v + beta * c_get(C, dtC, e) : v);
        }
}
#pragma GCC pop_options

/* ---- AMX ------------------------------------------------------------------------------------ */
static int amx_state = -1;   /* -1 not probed, 0 unusable, 1 usable */

static int amx_usable(void) {
    if (amx_state < 0) {
        int ok = 0;
        unsigned a, b, c, d;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && ((d >> 24) & 1) && ((d >> 22) & 1)) {
#if defined(__linux__) && defined(SYS_arch_prctl)
            /* ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18), then check with
             * ARCH_GET_XCOMP_PERM (0x1022) that the tile data state is granted */
            unsigned long perm = 0;
            ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0 &&
                 syscall(SYS_arch_prctl, 0x1022, &perm) == 0 && ((perm >> 18) & 1);
#endif
        }
        amx_state = ok;
    }
    return amx_state;
}

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,amx-tile,amx-bf16")
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg_t;

/* every tile 16 rows x 64 bytes: tmm0-3 C (16 x 16 fp32), tmm4-5 A (16 x 32 bf16),
 * tmm6-7 B (16 pairs x 16 columns) */
static void amx_begin(void) {
    static __thread amx_cfg_t cfg __attribute__((aligned(64)));
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

static void amx_end(void) { _tile_release(); }

/* one m x n (<= 32 x 32) block over nst steps of 32 k into a float32 or bfloat16 C (dtC).
 * acc: C already holds this product's float32 sums over the earlier K blocks (beta is 1). */
static void amx_ukr(int64_t nst, const uint32_t *A, const uint32_t *B, void *C, int dtC,
                    int64_t rsC, int64_t csC, float alpha, float beta, const float *bias,
                    int64_t sbias, int m, int n, int acc) {
    /* a full float32 block, unit column stride, alpha 1: the tiles start at zero (C = the
     * sums, no beta or bias: those are added outside the tiles, which would flush subnormal
     * values) or at the partial sums in C, and are stored straight into C */
    const int full = dtC == CE_BF16_SRC_F32 && m == AMX_MR && n == BF_NR && csC == 1 &&
                     alpha == 1.0f;
    const int direct = full && (acc || (beta == 0.0f && bias == NULL));
    float *Cf = (float *)C;
    if (direct && acc) {
        _tile_loadd(0, Cf, rsC * 4);
        _tile_loadd(1, Cf + 16, rsC * 4);
        _tile_loadd(2, Cf + 16 * rsC, rsC * 4);
        _tile_loadd(3, Cf + 16 * rsC + 16, rsC * 4);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int64_t s = 0; s < nst; s++) {
        const uint32_t *a = A + s * AMX_MR * 16, *b = B + s * 16 * BF_NR;
        _tile_loadd(4, a, 64);
        _tile_loadd(5, a + 16 * 16, 64);
        _tile_loadd(6, b, BF_NR * 4);
        _tile_loadd(7, b + 16, BF_NR * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    if (direct) {
        _tile_stored(0, Cf, rsC * 4);
        _tile_stored(1, Cf + 16, rsC * 4);
        _tile_stored(2, Cf + 16 * rsC, rsC * 4);
        _tile_stored(3, Cf + 16 * rsC + 16, rsC * 4);
        return;
    }
    float t[AMX_MR * BF_NR] __attribute__((aligned(64)));
    _tile_stored(0, t, BF_NR * 4);
    _tile_stored(1, t + 16, BF_NR * 4);
    _tile_stored(2, t + 16 * BF_NR, BF_NR * 4);
    _tile_stored(3, t + 16 * BF_NR + 16, BF_NR * 4);
    tile_out(t, BF_NR, C, dtC, rsC, csC, alpha, beta, bias, sbias, m, n);
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")
/* one m x n (<= 12 x 32) tile: C = alpha * A_panel @ B_panel + beta * C (+ bias), computed
 * for the first R (4, 8 or 12, a constant in each instance) rows of the panel: a short edge
 * panel (e.g. the last 4 rows of M = 64) costs its own rows, not 12. The C rows are prefetched
 * before the k loop (their misses overlap the products: +10-20% on Zen 4 at n = 256-2048), and
 * a tile with unit column stride is written from the registers, float32 or bfloat16, partial
 * tiles through masks; other strides through tile_out. */
static inline __attribute__((always_inline)) void
bf16_ukr_rows(const int R, const int inpl, int64_t kp, const uint32_t *A, const uint16_t *Ai,
              int64_t lda,
              const uint32_t *B, void *C, int dtC, int64_t rsC, int64_t csC, float alpha,
              float beta, const float *bias, int64_t sbias, int m, int n) {
    const size_t ec = dtC == CE_BF16_SRC_F32 ? 4 : 2;
    if (csC == 1)
        for (int i = 0; i < m; i++) {
            const char *ci = (const char *)C + (size_t)(i * rsC) * ec;
            _mm_prefetch(ci, _MM_HINT_T0);
            _mm_prefetch(ci + (size_t)n * ec - 1, _MM_HINT_T0);
        }
    /* A unpacked (inpl, a constant in each instance): row i's pair p at Ai + i*lda + 2p; rows
     * past m read row 0 (their sums are never stored) */
    const uint16_t *ar[BF_MR];
    if (inpl)
        for (int i = 0; i < R; i++) ar[i] = Ai + (i < m ? i : 0) * lda;
    __m512 c0[BF_MR], c1[BF_MR];
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kp; p++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + p * BF_NR);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(B + p * BF_NR + 16);
        const uint32_t *a = A + p * BF_MR;
#pragma GCC unroll 12
        for (int i = 0; i < R; i++) {
            uint32_t av;
            if (inpl) memcpy(&av, ar[i] + 2 * p, 4);
            else av = a[i];
            const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)av);
            c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (csC == 1 && (bias == NULL || sbias == 1)) {
        const __mmask16 k0 = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
        const __mmask16 k1 = n >= 32 ? (__mmask16)0xffff
                                     : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : (__mmask16)0;
        const __m512 bz0 = bias ? _mm512_maskz_loadu_ps(k0, bias) : _mm512_setzero_ps();
        const __m512 bz1 = bias ? _mm512_maskz_loadu_ps(k1, bias + 16) : _mm512_setzero_ps();
        if (dtC == CE_BF16_SRC_F32) {
#pragma GCC unroll 12
            for (int i = 0; i < R; i++) {
                if (i >= m) break;
                float *ci = (float *)C + i * rsC;
                __m512 v0 = _mm512_fmadd_ps(va, c0[i], bz0), v1 = _mm512_fmadd_ps(va, c1[i], bz1);
                if (beta != 0.0f) {
                    v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, ci), v0);
                    v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, ci + 16), v1);
                }
                _mm512_mask_storeu_ps(ci, k0, v0);
                _mm512_mask_storeu_ps(ci + 16, k1, v1);
            }
        } else {
#pragma GCC unroll 12
            for (int i = 0; i < R; i++) {
                if (i >= m) break;
                uint16_t *ci = (uint16_t *)C + i * rsC;
                __m512 v0 = _mm512_fmadd_ps(va, c0[i], bz0), v1 = _mm512_fmadd_ps(va, c1[i], bz1);
                if (beta != 0.0f) {
                    __m512i h0 = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k0, ci));
                    __m512i h1 = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k1, ci + 16));
                    v0 = _mm512_fmadd_ps(vb, _mm512_castsi512_ps(_mm512_slli_epi32(h0, 16)), v0);
                    v1 = _mm512_fmadd_ps(vb, _mm512_castsi512_ps(_mm512_slli_epi32(h1, 16)), v1);
                }
                _mm256_mask_storeu_epi16(ci, k0, bf16_out16(v0));
                _mm256_mask_storeu_epi16(ci + 16, k1, bf16_out16(v1));
            }
        }
        return;
    }
    float t[BF_MR * BF_NR];
    for (int i = 0; i < R; i++) {
        _mm512_storeu_ps(t + i * BF_NR, c0[i]);
        _mm512_storeu_ps(t + i * BF_NR + 16, c1[i]);
    }
    tile_out(t, BF_NR, C, dtC, rsC, csC, alpha, beta, bias, sbias, m, n);
}

/* the tile with the row count of its panel: 4, 8 or 12 rows computed */
static void bf16_ukr(int64_t kp, const uint32_t *A, const uint32_t *B, void *C, int dtC,
                     int64_t rsC, int64_t csC, float alpha, float beta, const float *bias,
                     int64_t sbias, int m, int n) {
    if (m <= 4)
        bf16_ukr_rows(4, 0, kp, A, NULL, 0, B, C, dtC, rsC, csC, alpha, beta, bias, sbias, m, n);
    else if (m <= 8)
        bf16_ukr_rows(8, 0, kp, A, NULL, 0, B, C, dtC, rsC, csC, alpha, beta, bias, sbias, m, n);
    else
        bf16_ukr_rows(BF_MR, 0, kp, A, NULL, 0, B, C, dtC, rsC, csC, alpha, beta, bias, sbias, m,
                      n);
}

/* the same with A read in place: a bfloat16 A with k contiguous, K even (kp whole pairs), m
 * rows at stride lda (elements) from Ai */
static void bf16_ukr_a(int64_t kp, const uint16_t *Ai, int64_t lda, const uint32_t *B, void *C,
                       int dtC, int64_t rsC, int64_t csC, float alpha, float beta,
                       const float *bias, int64_t sbias, int m, int n) {
    if (m <= 4)
        bf16_ukr_rows(4, 1, kp, NULL, Ai, lda, B, C, dtC, rsC, csC, alpha, beta, bias, sbias, m, n);
    else if (m <= 8)
        bf16_ukr_rows(8, 1, kp, NULL, Ai, lda, B, C, dtC, rsC, csC, alpha, beta, bias, sbias, m, n);
    else
        bf16_ukr_rows(BF_MR, 1, kp, NULL, Ai, lda, B, C, dtC, rsC, csC, alpha, beta, bias, sbias, m,
                      n);
}
#pragma GCC pop_options

/* ---- casts: dispatch + threads ------------------------------------------------------------ */
#define CE_CAST_MIN_PER_THREAD (1 << 16)

typedef void (*cast_fn)(void *dst, const void *src, int64_t lo, int64_t hi);

static void f32_to_bf16_part(void *dst, const void *src, int64_t lo, int64_t hi) {
    uint16_t *d = (uint16_t *)dst + lo;
    const float *s = (const float *)src + lo;
    if (ce_isa >= CE_ISA_AVX512) f32_to_bf16_avx512(d, s, hi - lo);
    else ce_f32_to_bf16_ref(d, s, hi - lo);
}

static void bf16_to_f32_part(void *dst, const void *src, int64_t lo, int64_t hi) {
    float *d = (float *)dst + lo;
    const uint16_t *s = (const uint16_t *)src + lo;
    if (ce_isa >= CE_ISA_AVX512) bf16_to_f32_avx512(d, s, hi - lo);
    else ce_bf16_to_f32_ref(d, s, hi - lo);
}

/* part(dst, src, lo, hi) over [0, n) split across the threads */
static void cast_par(cast_fn part, void *dst, const void *src, int64_t n) {
    int nt = ce_par_threads(n, CE_CAST_MIN_PER_THREAD);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo, hi;
        ce_chunk(n, CE_TID(), CE_TEAM(), 16, &lo, &hi);
        if (hi > lo) part(dst, src, lo, hi);
    }
}

void ce_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
    cast_par(f32_to_bf16_part, dst, src, n);
}

void ce_bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    cast_par(bf16_to_f32_part, dst, src, n);
}

/* ---- GEMM ------------------------------------------------------------------------------------ */
/* the path cap: 2 unless CENGINE_BF16_AMX=0 in the environment (then AVX512_BF16 at most) */
static int bf16_max_path = -1;

int ce_gemm_bf16_set_max_path(int path) {
    if (path < 0 || path > 2) return -1;
    bf16_max_path = path;
    return 0;
}

int ce_gemm_bf16_path(void) {
    static int has_dp = -1;
    if (bf16_max_path < 0) {
        const char *e = getenv("CENGINE_BF16_AMX");
        bf16_max_path = e && e[0] == '0' ? 1 : 2;
    }
    if (has_dp < 0) {
        ce_cpu_features_t f;
        ce_cpu_features(&f);
        has_dp = f.avx512bf16;
    }
    if (ce_isa < CE_ISA_AVX512) return 0;
    if (bf16_max_path >= 2 && amx_usable()) return 2;
    if (bf16_max_path >= 1 && has_dp) return 1;
    return 0;
}

/* C_b = beta * C_b (+ bias) for K == 0 or alpha == 0 */
static void scale_c(int64_t nb, int64_t nb2, int64_t M, int64_t N, float beta, float *C, int64_t sCb, int64_t sCb2,
                    int64_t rsC, int64_t csC, const float *bias, int64_t sbias) {
    for (int64_t b = 0; b < nb * nb2; b++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                float *c = C + boff(b, nb2, sCb, sCb2) + i * rsC + j * csC;
                float v = beta != 0.0f ? beta * *c : 0.0f;
                *c = v + (bias ? bias[j * sbias] : 0.0f);
            }
}

/* rounded float32 copy (R, Cc) of a float32/bfloat16 matrix, element (r, c) at s[r*rs + c*cs] */
static void rounded_copy(float *dst, const void *s, int dt, int64_t R, int64_t Cc, int64_t rs,
                         int64_t cs) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < Cc; c++)
            dst[r * Cc + c] = bf16_val((uint16_t)src_bits(s, dt, r * rs + c * cs));
}

static void gemm_bf16_fallback(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                               const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                               const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                               float beta, float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                               const float *bias, int64_t sbias) {
    const size_t ea = dtA == CE_BF16_SRC_F32 ? 4 : 2, eb = dtB == CE_BF16_SRC_F32 ? 4 : 2;
    float *Af = malloc(sizeof(float) * (size_t)(M * K)), *Bf = malloc(sizeof(float) * (size_t)(K * N));
    if (!Af || !Bf) {   /* out of memory: per-element reference (slow but correct) */
        free(Af);
        free(Bf);
        ce_gemm_bf16_ref(nb, nb2, M, N, K, alpha, A, dtA, sAb, sAb2, rsA, csA, B, dtB, sBb, sBb2, rsB, csB, beta,
                         C, sCb, sCb2, rsC, csC, bias, sbias);
        return;
    }
    for (int64_t b = 0; b < nb * nb2; b++) {
        if (b == 0 || sAb || sAb2) rounded_copy(Af, (const char *)A + (size_t)(boff(b, nb2, sAb, sAb2)) * ea, dtA, M, K, rsA, csA);
        if (b == 0 || sBb || sBb2) rounded_copy(Bf, (const char *)B + (size_t)(boff(b, nb2, sBb, sBb2)) * eb, dtB, K, N, rsB, csB);
        ce_sgemm(1, 1, M, N, K, alpha, Af, 0, 0, K, 1, Bf, 0, 0, N, 1, beta, C + boff(b, nb2, sCb, sCb2), 0, 0,
                 rsC, csC, bias, sbias);
    }
    free(Af);
    free(Bf);
}

/* the K block of the AVX512_BF16 path: K split into ceil(K / BF_KC) equal blocks, rounded up
 * to even (683 -> one block of 684, 2048 -> two of 1024, 1100 -> two of 550) */
static int64_t bf_kc(int64_t K) {
    const int64_t nkb = (K + BF_KC - 1) / BF_KC;
    const int64_t kc = (K + nkb - 1) / nkb;
    return (kc + 1) / 2 * 2;
}

/* A batch of small products (M <= BF_MC, N <= BF_NC, K within one K block) on path 1: the
 * batch elements split across the threads, each element packed whole and multiplied by one
 * thread (no barrier per element, as the blocked loop needs for its shared B block; for 128
 * attention products of 64 x 64 x 64 those barriers and the 4-row slices cost more than the
 * products). The same packing, tiles and float32 sums as the blocked loop, so the same
 * results. An operand that repeats over the batch (stride 0) is packed once per thread.
 * 0 when the work buffers could not be had. */
static int gemm_bf16_batch_small(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K,
                                 float alpha, const void *A, int dtA, int64_t sAb, int64_t sAb2,
                                 int64_t rsA, int64_t csA, const void *B, int dtB, int64_t sBb,
                                 int64_t sBb2, int64_t rsB, int64_t csB, float beta, void *C,
                                 int dtC, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                                 const float *bias, int64_t sbias, int nt) {
    const size_t ec = dtC == CE_BF16_SRC_F32 ? 4 : 2;
    const size_t ea = dtA == CE_BF16_SRC_F32 ? 4 : 2, eb = dtB == CE_BF16_SRC_F32 ? 4 : 2;
    const int64_t nbt = nb * nb2, kp = (K + 1) / 2;
    /* a bfloat16 A with k contiguous and K even is read in place by the tiles (its k-pairs are
     * the 32-bit words the packed panels would hold): no A packing */
    const int ainp = dtA == CE_BF16_SRC_BF16 && csA == 1 && K % 2 == 0;
    const int64_t npnl = (M + BF_MR - 1) / BF_MR, npan = (N + BF_NR - 1) / BF_NR;
    const size_t asz = ((size_t)(kp * npnl * BF_MR) + 15) / 16 * 16;
    const size_t per = asz + ((size_t)(kp * npan * BF_NR) + 15) / 16 * 16;
    uint32_t *buf = aligned_alloc(64, (size_t)nt * per * 4);
    if (!buf) return 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        uint32_t *Ap = buf + (size_t)CE_TID() * per, *Bp = Ap + asz;
        int64_t lastA = -1, lastB = -1;   /* element offsets of the operands now packed */
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nbt; b++) {
            const int64_t oa = boff(b, nb2, sAb, sAb2), ob = boff(b, nb2, sBb, sBb2);
            char *Cb = (char *)C + (size_t)(boff(b, nb2, sCb, sCb2)) * ec;
            if (ob != lastB) {
                const char *Bb = (const char *)B + (size_t)ob * eb;
                for (int64_t jp = 0; jp < npan; jp++)
                    pack_pairs(Bp + jp * kp * BF_NR, BF_NR, Bb + (size_t)(jp * BF_NR * csB) * eb,
                               dtB, csB, rsB, (int)mn64(BF_NR, N - jp * BF_NR), K, kp);
                lastB = ob;
            }
            if (oa != lastA && !ainp) {
                const char *Ab = (const char *)A + (size_t)oa * ea;
                if (rsA == 1 && csA != 1)
                    pack_a_block_cm(Ap, 0, Ab, dtA, csA, M, K, kp);
                else
                    for (int64_t ir = 0; ir < M; ir += BF_MR)
                        pack_pairs(Ap + ir / BF_MR * kp * BF_MR, BF_MR,
                                   Ab + (size_t)(ir * rsA) * ea, dtA, rsA, csA,
                                   (int)mn64(BF_MR, M - ir), K, kp);
                lastA = oa;
            }
            for (int64_t jp = 0; jp < npan; jp++) {
                const int64_t j = jp * BF_NR;
                const int n = (int)mn64(BF_NR, N - j);
                for (int64_t ir = 0; ir < M; ir += BF_MR) {
                    char *ct = Cb + (size_t)(ir * rsC + j * csC) * ec;
                    const float *bj = bias ? bias + j * sbias : NULL;
                    const int m = (int)mn64(BF_MR, M - ir);
                    if (ainp)
                        bf16_ukr_a(kp, (const uint16_t *)A + oa + ir * rsA, rsA,
                                   Bp + jp * kp * BF_NR, ct, dtC, rsC, csC, alpha, beta, bj,
                                   sbias, m, n);
                    else
                        bf16_ukr(kp, Ap + ir / BF_MR * kp * BF_MR, Bp + jp * kp * BF_NR, ct, dtC,
                                 rsC, csC, alpha, beta, bj, sbias, m, n);
                }
            }
        }
    }
    free(buf);
    return 1;
}

/* the tiled product on path 1 or 2 (path) into a float32 C (dtC CE_BF16_SRC_F32) or a
 * bfloat16 one (CE_BF16_SRC_BF16, only with K <= the path's K block: every element of C is
 * then written once, from its whole float32 sum); 0 when the work buffers could not be had */
static int gemm_bf16_tiled(int path, int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                           const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                           const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                           float beta, void *C, int dtC, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                           const float *bias, int64_t sbias) {
    const int amx = path == 2, MR = amx ? AMX_MR : BF_MR;
    const size_t ec = dtC == CE_BF16_SRC_F32 ? 4 : 2;
    const size_t ea = dtA == CE_BF16_SRC_F32 ? 4 : 2, eb = dtB == CE_BF16_SRC_F32 ? 4 : 2;
    const int nt = ce_par_threads(nb * nb2 * M * N * K, BF_MIN_WORK_PER_THREAD);
    /* a batch of small products whose elements split evenly (or finely) over the threads */
    if (!amx && nb * nb2 > 1 && M <= BF_MC && N <= BF_NC && K <= BF_KC &&
        (nt == 1 || (nb * nb2) % nt == 0 || nb * nb2 >= 8 * nt) &&
        gemm_bf16_batch_small(nb, nb2, M, N, K, alpha, A, dtA, sAb, sAb2, rsA, csA, B, dtB, sBb,
                              sBb2, rsB, csB, beta, C, dtC, sCb, sCb2, rsC, csC, bias, sbias, nt))
        return 1;
    /* row blocks of at most BF_MC rows, in whole MR-row panels: a multiple of nt blocks of
     * equal panel counts (within one), so each thread gets the same share of M (2048 rows as
     * 11 blocks of 192 gave the threads 6 and 5); fewer rows than threads x MR: one block per
     * panel, split by column groups */
    const int64_t npnl = (M + MR - 1) / MR, pmax = BF_MC / MR;
    int64_t nic = (npnl + pmax - 1) / pmax;
    nic = nic < nt ? mn64(nt, npnl) : (nic + nt - 1) / nt * nt;
    if (nic > npnl) nic = npnl;
    const int64_t MC = (npnl + nic - 1) / nic * MR;   /* the largest block */
    const int64_t ngrp = nic >= nt ? 1 : (nt + nic - 1) / nic;
    const int64_t NCmax = mn64(BF_NC, (N + BF_NR - 1) / BF_NR * BF_NR);
    /* k-pairs per K block, padded to whole 16-pair AMX steps */
    const int64_t KC = amx ? AMX_KC : bf_kc(K);
    const int64_t KPmax = ((mn64(KC, K) + 1) / 2 + 15) / 16 * 16;
    uint32_t *Bp = aligned_alloc(64, ((size_t)(KPmax * NCmax) * 4 + 63) / 64 * 64);
    uint32_t *Ap = aligned_alloc(64, ((size_t)(nt * KPmax * MC) * 4 + 63) / 64 * 64);
    if (!Bp || !Ap) {
        free(Bp);
        free(Ap);
        return 0;
    }
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        uint32_t *Apt = Ap + (size_t)CE_TID() * (size_t)(KPmax * MC);
        if (amx) amx_begin();
        for (int64_t b = 0; b < nb * nb2; b++) {
            const char *Ab = (const char *)A + (size_t)(boff(b, nb2, sAb, sAb2)) * ea;
            const char *Bb = (const char *)B + (size_t)(boff(b, nb2, sBb, sBb2)) * eb;
            char *Cb = (char *)C + (size_t)(boff(b, nb2, sCb, sCb2)) * ec;
            for (int64_t jc = 0; jc < N; jc += BF_NC) {
                const int64_t nc = mn64(BF_NC, N - jc), npan = (nc + BF_NR - 1) / BF_NR;
                for (int64_t pc = 0; pc < K; pc += KC) {
                    const int64_t kc = mn64(KC, K - pc);
                    const int64_t kp = amx ? ((kc + 1) / 2 + 15) / 16 * 16 : (kc + 1) / 2;
                    const float be = pc == 0 ? beta : 1.0f;
                    const float *bs = pc == 0 ? bias : NULL;
#pragma omp for schedule(static)
                    for (int64_t jp = 0; jp < npan; jp++)
                        pack_pairs(Bp + jp * kp * BF_NR, BF_NR,
                                   Bb + (size_t)(pc * rsB + (jc + jp * BF_NR) * csB) * eb, dtB,
                                   csB, rsB, (int)mn64(BF_NR, nc - jp * BF_NR), kc, kp);
                    /* (implicit barrier: the B block is packed) */
#pragma omp for schedule(static)
                    for (int64_t it = 0; it < nic * ngrp; it++) {
                        const int64_t blk = it / ngrp, g = it % ngrp;
                        const int64_t ic = npnl * blk / nic * MR;
                        const int64_t mc = mn64(npnl * (blk + 1) / nic * MR, M) - ic;
                        const int64_t j0 = npan * g / ngrp, j1 = npan * (g + 1) / ngrp;
                        if (j1 <= j0) continue;
                        if (rsA == 1 && csA != 1)   /* column-major A: the block k row by k row */
                            pack_a_block_cm(Apt, amx, Ab + (size_t)(ic + pc * csA) * ea, dtA, csA,
                                            mc, kc, kp);
                        else
                            for (int64_t ir = 0; ir < mc; ir += MR) {
                                const char *as = Ab + (size_t)((ic + ir) * rsA + pc * csA) * ea;
                                const int w = (int)mn64(MR, mc - ir);
                                if (amx)
                                    pack_a_amx(Apt + ir / MR * kp * MR, as, dtA, rsA, csA, w, kc, kp);
                                else
                                    pack_pairs(Apt + ir / MR * kp * MR, MR, as, dtA, rsA, csA, w, kc,
                                               kp);
                            }
                        for (int64_t jp = j0; jp < j1; jp++) {
                            const int64_t j = jc + jp * BF_NR;
                            const int n = (int)mn64(BF_NR, N - j);
                            for (int64_t ir = 0; ir < mc; ir += MR) {
                                char *ct = Cb + (size_t)((ic + ir) * rsC + j * csC) * ec;
                                const float *bj = bs ? bs + j * sbias : NULL;
                                const int m = (int)mn64(MR, mc - ir);
                                if (amx)
                                    amx_ukr(kp / 16, Apt + ir / MR * kp * MR, Bp + jp * kp * BF_NR,
                                            ct, dtC, rsC, csC, alpha, be, bj, sbias, m, n,
                                            pc > 0);
                                else
                                    bf16_ukr(kp, Apt + ir / MR * kp * MR, Bp + jp * kp * BF_NR,
                                             ct, dtC, rsC, csC, alpha, be, bj, sbias, m, n);
                            }
                        }
                    }
                    /* (implicit barrier before the next B block overwrites Bp) */
                }
            }
        }
        if (amx) amx_end();
    }
    free(Bp);
    free(Ap);
    return 1;
}

void ce_gemm_bf16(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                  const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                  const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, float beta,
                  float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                  const float *bias, int64_t sbias) {
    if (nb <= 0 || nb2 <= 0 || M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(nb, nb2, M, N, beta, C, sCb, sCb2, rsC, csC, bias, sbias);
        return;
    }
    const int path = ce_gemm_bf16_path();
    if (path == 0 || !gemm_bf16_tiled(path, nb, nb2, M, N, K, alpha, A, dtA, sAb, sAb2, rsA, csA, B, dtB,
                                      sBb, sBb2, rsB, csB, beta, C, CE_BF16_SRC_F32, sCb, sCb2, rsC, csC,
                                      bias, sbias))
        gemm_bf16_fallback(nb, nb2, M, N, K, alpha, A, dtA, sAb, sAb2, rsA, csA, B, dtB, sBb, sBb2, rsB, csB,
                           beta, C, sCb, sCb2, rsC, csC, bias, sbias);
}

/* C (bfloat16) through a float32 copy: C32 = float(C) (when beta reads it), the float32
 * product, then each element rounded once */
static void gemm_bf16_via_f32(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                              const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                              const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                              float beta, uint16_t *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                              const float *bias, int64_t sbias, int ref) {
    float *T = malloc(sizeof(float) * (size_t)(nb * nb2 * M * N));
    if (!T) {   /* out of memory: one batch element and row at a time */
        float row[64];
        for (int64_t b = 0; b < nb * nb2; b++)
            for (int64_t i = 0; i < M; i++)
                for (int64_t j0 = 0; j0 < N; j0 += 64) {
                    const int64_t w = mn64(64, N - j0);
                    uint16_t *c = C + boff(b, nb2, sCb, sCb2) + i * rsC + j0 * csC;
                    for (int64_t j = 0; j < w; j++) row[j] = bf16_val(c[j * csC]);
                    const char *ai = (const char *)A +
                                     (size_t)(boff(b, nb2, sAb, sAb2) + i * rsA) * (dtA ? 2 : 4);
                    const char *bj = (const char *)B +
                                     (size_t)(boff(b, nb2, sBb, sBb2) + j0 * csB) * (dtB ? 2 : 4);
                    ce_gemm_bf16_ref(1, 1, 1, w, K, alpha, ai, dtA, 0, 0, rsA, csA, bj, dtB, 0, 0,
                                     rsB, csB, beta, row, 0, 0, w, 1,
                                     bias ? bias + j0 * sbias : NULL, sbias);
                    for (int64_t j = 0; j < w; j++) c[j * csC] = bf16_out_bits(row[j]);
                }
        return;
    }
    for (int64_t b = 0; b < nb * nb2; b++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                T[(b * M + i) * N + j] = beta != 0.0f ? bf16_val(C[boff(b, nb2, sCb, sCb2) + i * rsC + j * csC])
                                                      : 0.0f;
    (ref ? ce_gemm_bf16_ref : ce_gemm_bf16)(nb, nb2, M, N, K, alpha, A, dtA, sAb, sAb2, rsA, csA, B, dtB,
                                            sBb, sBb2, rsB, csB, beta, T, nb2 * M * N, M * N, N, 1, bias, sbias);
    for (int64_t b = 0; b < nb * nb2; b++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[boff(b, nb2, sCb, sCb2) + i * rsC + j * csC] = bf16_out_bits(T[(b * M + i) * N + j]);
    free(T);
}

void ce_gemm_bf16_to_bf16(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                          const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                          const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                          float beta, uint16_t *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                          const float *bias, int64_t sbias) {
    if (nb <= 0 || nb2 <= 0 || M <= 0 || N <= 0) return;
    const int path = ce_gemm_bf16_path();
    if (path != 0 && K > 0 && alpha != 0.0f && K <= (path == 2 ? AMX_KC : BF_KC) &&
        gemm_bf16_tiled(path, nb, nb2, M, N, K, alpha, A, dtA, sAb, sAb2, rsA, csA, B, dtB, sBb, sBb2, rsB, csB,
                        beta, C, CE_BF16_SRC_BF16, sCb, sCb2, rsC, csC, bias, sbias))
        return;
    gemm_bf16_via_f32(nb, nb2, M, N, K, alpha, A, dtA, sAb, sAb2, rsA, csA, B, dtB, sBb, sBb2, rsB, csB, beta,
                      C, sCb, sCb2, rsC, csC, bias, sbias, 0);
}

void ce_gemm_bf16_to_bf16_ref(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                              const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                              const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                              float beta, uint16_t *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                              const float *bias, int64_t sbias) {
    if (nb <= 0 || nb2 <= 0 || M <= 0 || N <= 0) return;
    gemm_bf16_via_f32(nb, nb2, M, N, K, alpha, A, dtA, sAb, sAb2, rsA, csA, B, dtB, sBb, sBb2, rsB, csB, beta,
                      C, sCb, sCb2, rsC, csC, bias, sbias, 1);
}

void ce_gemm_bf16_ref(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                      const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                      const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, float beta,
                      float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                      const float *bias, int64_t sbias) {
    for (int64_t b = 0; b < nb * nb2; b++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t p = 0; p < K; p++)
                    s += (double)bf16_val((uint16_t)src_bits(A, dtA, boff(b, nb2, sAb, sAb2) + i * rsA + p * csA)) *
                         (double)bf16_val((uint16_t)src_bits(B, dtB, boff(b, nb2, sBb, sBb2) + p * rsB + j * csB));
                float *c = C + boff(b, nb2, sCb, sCb2) + i * rsC + j * csC;
                float v = K > 0 && alpha != 0.0f ? alpha * (float)s : 0.0f;
                if (bias) v += bias[j * sbias];
                *c = beta != 0.0f ? v + beta * *c : v;
            }
}
