/* rnn.c - fused recurrent cell kernels and the per-layer sequence drivers (see rnn.h).
 *
 * Paths: *_ref (plain scalar C below, one thread); generic, avx2 and avx512 (rnn_tmpl.h over
 * vmath.h, instantiated by isa_each.h), threaded over the batch rows. The sequence drivers run
 * the time loop of one layer direction in C: per step one recurrent GEMM (cengine's own
 * ce_sgemm/ce_dgemm) on the rows still active, then one fused cell kernel. */
#include <math.h>
#include <string.h>
#include "nn_util.h"
#include "gemm.h"
#include "rnn.h"

/* ---- SIMD paths (generic = the scalar instance) ------------------------------------------ */
#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "rnn_tmpl.h"
#include "isa_each.h"

/* ---- plain scalar references --------------------------------------------------------------- */
#define CE_RNN_DEF_REF(T, SFX, EXP, TANH)                                                          \
    static inline T rnn_sig_##SFX(T x) { return (T)1 / ((T)1 + EXP(-x)); }                        \
    static void rnn_fwd_ref_##SFX(int kind, T *g, T *h, int64_t ldh, T *h2, int64_t ldh2,         \
                                  int64_t n, int64_t H) {                                          \
        for (int64_t b = 0; b < n; b++)                                                            \
            for (int64_t j = 0; j < H; j++) {                                                      \
                T x = g[b * H + j];                                                                \
                T y = kind == CE_RNN_RELU ? (x > 0 ? x : (T)0) : TANH(x);                          \
                g[b * H + j] = y;                                                                  \
                h[b * ldh + j] = y;                                                                \
                if (h2) h2[b * ldh2 + j] = y;                                                      \
            }                                                                                      \
    }                                                                                              \
    static void rnn_bwd_ref_##SFX(int kind, T *dg, const T *g, const T *dh, int64_t lddh,         \
                                  const T *dh2, int64_t lddh2, int64_t n, int64_t H) {            \
        for (int64_t b = 0; b < n; b++)                                                            \
            for (int64_t j = 0; j < H; j++) {                                                      \
                T y = g[b * H + j], d = dh[b * lddh + j] + (dh2 ? dh2[b * lddh2 + j] : (T)0);     \
                dg[b * H + j] = kind == CE_RNN_RELU ? (y > 0 ? d : (T)0) : d * ((T)1 - y * y);    \
            }                                                                                      \
    }                                                                                              \
    static void lstm_fwd_ref_##SFX(T *g, T *c, T *h, int64_t ldh, T *h2, int64_t ldh2, int64_t n, \
                                   int64_t H) {                                                    \
        for (int64_t b = 0; b < n; b++)                                                            \
            for (int64_t j = 0; j < H; j++) {                                                      \
                T *gb = g + b * 4 * H;                                                             \
                T i = rnn_sig_##SFX(gb[j]), f = rnn_sig_##SFX(gb[H + j]);                          \
                T gg = TANH(gb[2 * H + j]), o = rnn_sig_##SFX(gb[3 * H + j]);                      \
                T cn = f * c[b * H + j] + i * gg, hn = o * TANH(cn);                               \
                gb[j] = i; gb[H + j] = f; gb[2 * H + j] = gg; gb[3 * H + j] = o;                  \
                c[b * H + j] = cn;                                                                 \
                h[b * ldh + j] = hn;                                                               \
                if (h2) h2[b * ldh2 + j] = hn;                                                     \
            }                                                                                      \
    }                                                                                              \
    static void lstm_bwd_ref_##SFX(T *dg, T *dc, const T *g, const T *cp, const T *dh,            \
                                   int64_t lddh, const T *dh2, int64_t lddh2, int64_t n,          \
                                   int64_t H) {                                                    \
        for (int64_t b = 0; b < n; b++)                                                            \
            for (int64_t j = 0; j < H; j++) {                                                      \
                const T *gb = g + b * 4 * H;                                                       \
                T *dgb = dg + b * 4 * H;                                                           \
                T i = gb[j], f = gb[H + j], gg = gb[2 * H + j], o = gb[3 * H + j];                 \
                T cpv = cp[b * H + j], tc = TANH(f * cpv + i * gg);                                \
                T d = dh[b * lddh + j] + (dh2 ? dh2[b * lddh2 + j] : (T)0);                        \
                T dct = dc[b * H + j] + d * o * ((T)1 - tc * tc);                                  \
                dgb[j] = dct * gg * i * ((T)1 - i);                                                \
                dgb[H + j] = dct * cpv * f * ((T)1 - f);                                           \
                dgb[2 * H + j] = dct * i * ((T)1 - gg * gg);                                       \
                dgb[3 * H + j] = d * tc * o * ((T)1 - o);                                          \
                dc[b * H + j] = dct * f;                                                           \
            }                                                                                      \
    }                                                                                              \
    static void gru_fwd_ref_##SFX(T *gi, T *h, int64_t ldh, T *h2, int64_t ldh2, const T *gh,     \
                                  const T *hp, int64_t n, int64_t H) {                             \
        for (int64_t b = 0; b < n; b++)                                                            \
            for (int64_t j = 0; j < H; j++) {                                                      \
                T *gib = gi + b * 3 * H;                                                           \
                const T *ghb = gh + b * 3 * H;                                                     \
                T r = rnn_sig_##SFX(gib[j] + ghb[j]);                                              \
                T z = rnn_sig_##SFX(gib[H + j] + ghb[H + j]);                                      \
                T nn = TANH(gib[2 * H + j] + r * ghb[2 * H + j]);                                  \
                T hn = ((T)1 - z) * nn + z * hp[b * H + j];                                        \
                gib[j] = r; gib[H + j] = z; gib[2 * H + j] = nn;                                   \
                h[b * ldh + j] = hn;                                                               \
                if (h2) h2[b * ldh2 + j] = hn;                                                     \
            }                                                                                      \
    }                                                                                              \
    static void gru_bwd_ref_##SFX(T *dgi, T *dgh, T *dhp, const T *gi, const T *gh, const T *hp,  \
                                  const T *dh, int64_t lddh, const T *dh2, int64_t lddh2,         \
                                  int64_t n, int64_t H) {                                          \
        for (int64_t b = 0; b < n; b++)                                                            \
            for (int64_t j = 0; j < H; j++) {                                                      \
                const T *gib = gi + b * 3 * H, *ghb = gh + b * 3 * H;                              \
                T *dgib = dgi + b * 3 * H, *dghb = dgh + b * 3 * H;                                \
                T r = gib[j], z = gib[H + j], nn = gib[2 * H + j];                                 \
                T d = dh[b * lddh + j] + (dh2 ? dh2[b * lddh2 + j] : (T)0);                        \
                T dnp = d * ((T)1 - z) * ((T)1 - nn * nn);                                         \
                T dzp = d * (hp[b * H + j] - nn) * z * ((T)1 - z);                                 \
                T drp = dnp * ghb[2 * H + j] * r * ((T)1 - r);                                     \
                dgib[j] = drp; dgib[H + j] = dzp; dgib[2 * H + j] = dnp;                           \
                dghb[j] = drp; dghb[H + j] = dzp; dghb[2 * H + j] = dnp * r;                       \
                dhp[b * lddh + j] = d * z;                                                         \
            }                                                                                      \
    }

CE_RNN_DEF_REF(float, f32, expf, tanhf)
CE_RNN_DEF_REF(double, f64, exp, tanh)

/* ---- threading + ISA dispatch -------------------------------------------------------------- */
/* set on each thread of the two-direction drivers below: the cell kernels then stay on the
 * calling thread (each direction has a thread of its own) */
static __thread int rnn_on_one_thread;

/* run CALL(lo, hi) over the rows [0, n) split across threads (work = n * H * gates) */
#define CE_RNN_ROWS(n, work, CALL)                                                                 \
    CE_PAR_CHUNKS((n), rnn_on_one_thread ? 1 : ce_nn_threads((work), CE_RNN_MIN_PER_THREAD, (n)),  \
                  1, CALL)

#define CE_RNN_DEF_CELLS(T, SFX)                                                                   \
    static void rnn_fwd_##SFX(int kind, T *g, T *h, int64_t ldh, T *h2, int64_t ldh2, int64_t n,  \
                              int64_t H) {                                                         \
        if (n <= 0 || H <= 0) return;                                                              \
        void (*k)(int, T *, T *, int64_t, T *, int64_t, int64_t, int64_t, int64_t) =              \
            CE_ISA_PICK(rnn_fwd_rows, SFX);                                                        \
        CE_RNN_ROWS(n, n * H, k(kind, g, h, ldh, h2, ldh2, lo, hi, H));                            \
    }                                                                                              \
    static void rnn_bwd_##SFX(int kind, T *dg, const T *g, const T *dh, int64_t lddh,             \
                              const T *dh2, int64_t lddh2, int64_t n, int64_t H) {                 \
        if (n <= 0 || H <= 0) return;                                                              \
        void (*k)(int, T *, const T *, const T *, int64_t, const T *, int64_t, int64_t, int64_t,  \
                  int64_t) = CE_ISA_PICK(rnn_bwd_rows, SFX);                                       \
        CE_RNN_ROWS(n, n * H, k(kind, dg, g, dh, lddh, dh2, lddh2, lo, hi, H));                    \
    }                                                                                              \
    static void lstm_fwd_##SFX(T *g, T *c, T *h, int64_t ldh, T *h2, int64_t ldh2, int64_t n,     \
                               int64_t H) {                                                        \
        if (n <= 0 || H <= 0) return;                                                              \
        void (*k)(T *, T *, T *, int64_t, T *, int64_t, int64_t, int64_t, int64_t) =              \
            CE_ISA_PICK(lstm_fwd_rows, SFX);                                                       \
        CE_RNN_ROWS(n, n * H * 4, k(g, c, h, ldh, h2, ldh2, lo, hi, H));                           \
    }                                                                                              \
    static void lstm_bwd_##SFX(T *dg, T *dc, const T *g, const T *cp, const T *dh, int64_t lddh,  \
                               const T *dh2, int64_t lddh2, int64_t n, int64_t H) {                \
        if (n <= 0 || H <= 0) return;                                                              \
        void (*k)(T *, T *, const T *, const T *, const T *, int64_t, const T *, int64_t,          \
                  int64_t, int64_t, int64_t) = CE_ISA_PICK(lstm_bwd_rows, SFX);                    \
        CE_RNN_ROWS(n, n * H * 4, k(dg, dc, g, cp, dh, lddh, dh2, lddh2, lo, hi, H));              \
    }                                                                                              \
    static void gru_fwd_##SFX(T *gi, T *h, int64_t ldh, T *h2, int64_t ldh2, const T *gh,         \
                              const T *hp, int64_t n, int64_t H) {                                 \
        if (n <= 0 || H <= 0) return;                                                              \
        void (*k)(T *, T *, int64_t, T *, int64_t, const T *, const T *, int64_t, int64_t,         \
                  int64_t) = CE_ISA_PICK(gru_fwd_rows, SFX);                                       \
        CE_RNN_ROWS(n, n * H * 3, k(gi, h, ldh, h2, ldh2, gh, hp, lo, hi, H));                     \
    }                                                                                              \
    static void gru_bwd_##SFX(T *dgi, T *dgh, T *dhp, const T *gi, const T *gh, const T *hp,      \
                              const T *dh, int64_t lddh, const T *dh2, int64_t lddh2, int64_t n,  \
                              int64_t H) {                                                         \
        if (n <= 0 || H <= 0) return;                                                              \
        void (*k)(T *, T *, T *, const T *, const T *, const T *, const T *, int64_t, const T *,   \
                  int64_t, int64_t, int64_t, int64_t) = CE_ISA_PICK(gru_bwd_rows, SFX);            \
        CE_RNN_ROWS(n, n * H * 3, k(dgi, dgh, dhp, gi, gh, hp, dh, lddh, dh2, lddh2, lo, hi, H));  \
    }

CE_RNN_DEF_CELLS(float, f32)
CE_RNN_DEF_CELLS(double, f64)

/* ---- public cell entry points -------------------------------------------------------------- */
void ce_rnn_cell_forward_f32(int kind, float *g, float *h, int64_t ldh, float *h2, int64_t ldh2,
                             int64_t n, int64_t H) {
    rnn_fwd_f32(kind, g, h, ldh, h2, ldh2, n, H);
}
void ce_rnn_cell_forward_f64(int kind, double *g, double *h, int64_t ldh, double *h2,
                             int64_t ldh2, int64_t n, int64_t H) {
    rnn_fwd_f64(kind, g, h, ldh, h2, ldh2, n, H);
}
void ce_rnn_cell_forward_f32_ref(int kind, float *g, float *h, int64_t ldh, float *h2,
                                 int64_t ldh2, int64_t n, int64_t H) {
    rnn_fwd_ref_f32(kind, g, h, ldh, h2, ldh2, n, H);
}
void ce_rnn_cell_forward_f64_ref(int kind, double *g, double *h, int64_t ldh, double *h2,
                                 int64_t ldh2, int64_t n, int64_t H) {
    rnn_fwd_ref_f64(kind, g, h, ldh, h2, ldh2, n, H);
}
void ce_lstm_cell_forward_f32(float *g, float *c, float *h, int64_t ldh, float *h2, int64_t ldh2,
                              int64_t n, int64_t H) {
    lstm_fwd_f32(g, c, h, ldh, h2, ldh2, n, H);
}
void ce_lstm_cell_forward_f64(double *g, double *c, double *h, int64_t ldh, double *h2,
                              int64_t ldh2, int64_t n, int64_t H) {
    lstm_fwd_f64(g, c, h, ldh, h2, ldh2, n, H);
}
void ce_lstm_cell_forward_f32_ref(float *g, float *c, float *h, int64_t ldh, float *h2,
                                  int64_t ldh2, int64_t n, int64_t H) {
    lstm_fwd_ref_f32(g, c, h, ldh, h2, ldh2, n, H);
}
void ce_lstm_cell_forward_f64_ref(double *g, double *c, double *h, int64_t ldh, double *h2,
                                  int64_t ldh2, int64_t n, int64_t H) {
    lstm_fwd_ref_f64(g, c, h, ldh, h2, ldh2, n, H);
}
void ce_gru_cell_forward_f32(float *gi, float *h, int64_t ldh, float *h2, int64_t ldh2,
                             const float *gh, const float *hp, int64_t n, int64_t H) {
    gru_fwd_f32(gi, h, ldh, h2, ldh2, gh, hp, n, H);
}
void ce_gru_cell_forward_f64(double *gi, double *h, int64_t ldh, double *h2, int64_t ldh2,
                             const double *gh, const double *hp, int64_t n, int64_t H) {
    gru_fwd_f64(gi, h, ldh, h2, ldh2, gh, hp, n, H);
}
void ce_gru_cell_forward_f32_ref(float *gi, float *h, int64_t ldh, float *h2, int64_t ldh2,
                                 const float *gh, const float *hp, int64_t n, int64_t H) {
    gru_fwd_ref_f32(gi, h, ldh, h2, ldh2, gh, hp, n, H);
}
void ce_gru_cell_forward_f64_ref(double *gi, double *h, int64_t ldh, double *h2, int64_t ldh2,
                                 const double *gh, const double *hp, int64_t n, int64_t H) {
    gru_fwd_ref_f64(gi, h, ldh, h2, ldh2, gh, hp, n, H);
}
void ce_rnn_cell_backward_set_f32(int kind, float *dg, const float *g, const float *dh,
                                  int64_t lddh, const float *dh2, int64_t lddh2, int64_t n,
                                  int64_t H) {
    rnn_bwd_f32(kind, dg, g, dh, lddh, dh2, lddh2, n, H);
}
void ce_rnn_cell_backward_set_f64(int kind, double *dg, const double *g, const double *dh,
                                  int64_t lddh, const double *dh2, int64_t lddh2, int64_t n,
                                  int64_t H) {
    rnn_bwd_f64(kind, dg, g, dh, lddh, dh2, lddh2, n, H);
}
void ce_rnn_cell_backward_set_f32_ref(int kind, float *dg, const float *g, const float *dh,
                                      int64_t lddh, const float *dh2, int64_t lddh2, int64_t n,
                                      int64_t H) {
    rnn_bwd_ref_f32(kind, dg, g, dh, lddh, dh2, lddh2, n, H);
}
void ce_rnn_cell_backward_set_f64_ref(int kind, double *dg, const double *g, const double *dh,
                                      int64_t lddh, const double *dh2, int64_t lddh2, int64_t n,
                                      int64_t H) {
    rnn_bwd_ref_f64(kind, dg, g, dh, lddh, dh2, lddh2, n, H);
}
void ce_lstm_cell_backward_set_f32(float *dg, float *dc, const float *g, const float *cp,
                                   const float *dh, int64_t lddh, const float *dh2, int64_t lddh2,
                                   int64_t n, int64_t H) {
    lstm_bwd_f32(dg, dc, g, cp, dh, lddh, dh2, lddh2, n, H);
}
void ce_lstm_cell_backward_set_f64(double *dg, double *dc, const double *g, const double *cp,
                                   const double *dh, int64_t lddh, const double *dh2,
                                   int64_t lddh2, int64_t n, int64_t H) {
    lstm_bwd_f64(dg, dc, g, cp, dh, lddh, dh2, lddh2, n, H);
}
void ce_lstm_cell_backward_set_f32_ref(float *dg, float *dc, const float *g, const float *cp,
                                       const float *dh, int64_t lddh, const float *dh2,
                                       int64_t lddh2, int64_t n, int64_t H) {
    lstm_bwd_ref_f32(dg, dc, g, cp, dh, lddh, dh2, lddh2, n, H);
}
void ce_lstm_cell_backward_set_f64_ref(double *dg, double *dc, const double *g, const double *cp,
                                       const double *dh, int64_t lddh, const double *dh2,
                                       int64_t lddh2, int64_t n, int64_t H) {
    lstm_bwd_ref_f64(dg, dc, g, cp, dh, lddh, dh2, lddh2, n, H);
}
void ce_gru_cell_backward_set_f32(float *dgi, float *dgh, float *dhp, const float *gi,
                                  const float *gh, const float *hp, const float *dh,
                                  int64_t lddh, const float *dh2, int64_t lddh2, int64_t n,
                                  int64_t H) {
    gru_bwd_f32(dgi, dgh, dhp, gi, gh, hp, dh, lddh, dh2, lddh2, n, H);
}
void ce_gru_cell_backward_set_f64(double *dgi, double *dgh, double *dhp, const double *gi,
                                  const double *gh, const double *hp, const double *dh,
                                  int64_t lddh, const double *dh2, int64_t lddh2, int64_t n,
                                  int64_t H) {
    gru_bwd_f64(dgi, dgh, dhp, gi, gh, hp, dh, lddh, dh2, lddh2, n, H);
}
void ce_gru_cell_backward_set_f32_ref(float *dgi, float *dgh, float *dhp, const float *gi,
                                      const float *gh, const float *hp, const float *dh,
                                      int64_t lddh, const float *dh2, int64_t lddh2, int64_t n,
                                      int64_t H) {
    gru_bwd_ref_f32(dgi, dgh, dhp, gi, gh, hp, dh, lddh, dh2, lddh2, n, H);
}
void ce_gru_cell_backward_set_f64_ref(double *dgi, double *dgh, double *dhp, const double *gi,
                                      const double *gh, const double *hp, const double *dh,
                                      int64_t lddh, const double *dh2, int64_t lddh2, int64_t n,
                                      int64_t H) {
    gru_bwd_ref_f64(dgi, dgh, dhp, gi, gh, hp, dh, lddh, dh2, lddh2, n, H);
}

/* ---- sequence drivers ---------------------------------------------------------------------- */
/* C (m, n) row stride ldc = A (m, k) row stride lda @ B (k, n) row stride ldb + beta*C */
#define CE_RNN_MM(GEMM, m, n, k, A, lda, B, ldb, beta, C, ldc)                                     \
    GEMM(1, 1, (m), (n), (k), 1, (A), 0, 0, (lda), 1, (B), 0, 0, (ldb), 1, (beta), (C), 0, 0,     \
         (ldc), 1, NULL, 0)
/* the same product for a short A (the recurrent step): C's columns in blocks narrow enough
 * that the GEMM reads each B block in place instead of packing all of B on every step, as one
 * batched call (the blocks spread over the threads) plus one call for leftover columns */
#define CE_RNN_BLOCK_BYTES (256 * 1024)
#define CE_RNN_MM_STEP(T, GEMM, m, n, k, A, lda, B, ldb, beta, C, ldc)                             \
    do {                                                                                           \
        int64_t w_ = (int64_t)(CE_RNN_BLOCK_BYTES / ((k) * (int64_t)sizeof(T))) / 32 * 32;         \
        if (w_ < 32) w_ = 32;                                                                      \
        if ((m) > 96 || w_ >= (n)) {                                                               \
            CE_RNN_MM(GEMM, m, n, k, A, lda, B, ldb, beta, C, ldc);                                \
        } else {                                                                                   \
            int64_t nb_ = (n) / w_, rem_ = (n) - nb_ * w_;                                         \
            GEMM(nb_, 1, (m), w_, (k), 1, (A), 0, 0, (lda), 1, (B), w_, 0, (ldb), 1, (beta), (C),  \
                 w_, 0, (ldc), 1, NULL, 0);                                                        \
            if (rem_ > 0)                                                                          \
                CE_RNN_MM(GEMM, m, rem_, k, A, lda, (B) + nb_ * w_, ldb, beta, (C) + nb_ * w_,     \
                          ldc);                                                                    \
        }                                                                                          \
    } while (0)

#define CE_RNN_DEF_SEQ(T, SFX, GEMM)                                                               \
    static void rnn_seq_fwd_##SFX(int mode, T *G_, T *GH, T *h, T *c, T *out, int64_t ldo, T *HP, \
                                  T *CP, T *HU, const T *WhhT, int64_t ldw, const T *bhh,        \
                                  const T *WhrT, const int64_t *bs, int64_t T_, int64_t H,        \
                                  int64_t P, int reverse) {                                        \
        int64_t ng = mode == CE_RNN_LSTM ? 4 : mode == CE_RNN_GRU ? 3 : 1, Hs = P > 0 ? P : H;     \
        int64_t S = 0;                                                                             \
        for (int64_t t = 0; t < T_; t++) S += bs[t];                                               \
        int64_t off = reverse ? S : 0;                                                             \
        for (int64_t s = 0; s < T_; s++) {                                                         \
            int64_t t = reverse ? T_ - 1 - s : s, n = bs[t];                                       \
            if (reverse) off -= n;                                                                 \
            T *g = G_ + off * ng * H, *o = out + off * ldo, *hp = HP + off * Hs;                   \
            memcpy(hp, h, sizeof(T) * (size_t)(n * Hs));                                           \
            if (mode == CE_RNN_LSTM) memcpy(CP + off * H, c, sizeof(T) * (size_t)(n * H));        \
            switch (mode) {                                                                        \
            case CE_RNN_GRU: {                                                                     \
                T *gh = GH + off * 3 * H;                                                          \
                if (bhh)                                                                           \
                    for (int64_t b = 0; b < n; b++)                                                \
                        memcpy(gh + b * 3 * H, bhh, sizeof(T) * (size_t)(3 * H));                 \
                CE_RNN_MM_STEP(T, GEMM, n, 3 * H, H, h, H, WhhT, ldw, bhh ? 1 : 0, gh, 3 * H);     \
                gru_fwd_##SFX(g, h, H, o, ldo, gh, hp, n, H);                                      \
                break;                                                                             \
            }                                                                                      \
            case CE_RNN_LSTM:                                                                      \
                CE_RNN_MM_STEP(T, GEMM, n, 4 * H, Hs, h, Hs, WhhT, ldw, 1, g, 4 * H);              \
                if (P > 0) {                                                                       \
                    T *hu = HU + off * H;                                                          \
                    lstm_fwd_##SFX(g, c, hu, H, (T *)0, 0, n, H);                                  \
                    CE_RNN_MM(GEMM, n, P, H, hu, H, WhrT, P, 0, h, P);                             \
                    for (int64_t b = 0; b < n; b++)                                                \
                        memcpy(o + b * ldo, h + b * P, sizeof(T) * (size_t)P);                     \
                } else {                                                                           \
                    lstm_fwd_##SFX(g, c, h, H, o, ldo, n, H);                                      \
                }                                                                                  \
                break;                                                                             \
            default:                                                                               \
                CE_RNN_MM_STEP(T, GEMM, n, H, H, h, H, WhhT, ldw, 1, g, H);                        \
                rnn_fwd_##SFX(mode, g, h, H, o, ldo, n, H);                                        \
                break;                                                                             \
            }                                                                                      \
            if (!reverse) off += n;                                                                \
        }                                                                                          \
    }                                                                                              \
    static void rnn_seq_bwd_##SFX(int mode, T *dG, T *dGH, T *dh, T *dc, T *DHR, T *work,         \
                                  const T *dout, int64_t lddo, const T *G_, const T *GH,          \
                                  const T *HP, const T *CP, const T *Whh, const T *Whr,           \
                                  const int64_t *bs, int64_t T_, int64_t H, int64_t P,            \
                                  int reverse) {                                                   \
        int64_t ng = mode == CE_RNN_LSTM ? 4 : mode == CE_RNN_GRU ? 3 : 1, Hs = P > 0 ? P : H;     \
        int64_t S = 0;                                                                             \
        for (int64_t t = 0; t < T_; t++) S += bs[t];                                               \
        /* the forward's order reversed: forward direction t = T-1 .. 0, reverse t = 0 .. T-1 */   \
        int64_t off = reverse ? 0 : S;                                                             \
        for (int64_t s = 0; s < T_; s++) {                                                         \
            int64_t t = reverse ? s : T_ - 1 - s, n = bs[t];                                       \
            if (!reverse) off -= n;                                                                \
            const T *g = G_ + off * ng * H, *dO = dout + off * lddo, *hp = HP + off * Hs;          \
            T *dg = dG + off * ng * H;                                                             \
            switch (mode) {                                                                        \
            case CE_RNN_GRU: {                                                                     \
                T *dgh = dGH + off * 3 * H;                                                        \
                gru_bwd_##SFX(dg, dgh, dh, g, GH + off * 3 * H, hp, dh, H, dO, lddo, n, H);        \
                CE_RNN_MM(GEMM, n, H, 3 * H, dgh, 3 * H, Whh, H, 1, dh, H);                        \
                break;                                                                             \
            }                                                                                      \
            case CE_RNN_LSTM:                                                                      \
                if (P > 0) {                                                                       \
                    T *dhr = DHR + off * P;                                                        \
                    for (int64_t b = 0; b < n; b++)                                                \
                        for (int64_t j = 0; j < P; j++)                                            \
                            dhr[b * P + j] = dh[b * P + j] + dO[b * lddo + j];                     \
                    CE_RNN_MM(GEMM, n, H, P, dhr, P, Whr, H, 0, work, H);                          \
                    lstm_bwd_##SFX(dg, dc, g, CP + off * H, work, H, (const T *)0, 0, n, H);       \
                } else {                                                                           \
                    lstm_bwd_##SFX(dg, dc, g, CP + off * H, dh, H, dO, lddo, n, H);                \
                }                                                                                  \
                CE_RNN_MM(GEMM, n, Hs, 4 * H, dg, 4 * H, Whh, Hs, 0, dh, Hs);                      \
                break;                                                                             \
            default:                                                                               \
                rnn_bwd_##SFX(mode, dg, g, dh, H, dO, lddo, n, H);                                 \
                CE_RNN_MM(GEMM, n, H, H, dg, H, Whh, H, 0, dh, H);                                 \
                break;                                                                             \
            }                                                                                      \
            if (reverse) off += n;                                                                 \
        }                                                                                          \
    }

CE_RNN_DEF_SEQ(float, f32, ce_sgemm)
CE_RNN_DEF_SEQ(double, f64, ce_dgemm)

void ce_rnn_seq_forward_f32(int mode, float *G_, float *GH, float *h, float *c, float *out,
                            int64_t ldo, float *HP, float *CP, float *HU, const float *WhhT,
                            int64_t ldw, const float *bhh, const float *WhrT, const int64_t *bs, int64_t T,
                            int64_t H, int64_t P, int reverse) {
    rnn_seq_fwd_f32(mode, G_, GH, h, c, out, ldo, HP, CP, HU, WhhT, ldw, bhh, WhrT, bs, T, H, P,
                    reverse);
}
void ce_rnn_seq_forward_f64(int mode, double *G_, double *GH, double *h, double *c, double *out,
                            int64_t ldo, double *HP, double *CP, double *HU, const double *WhhT,
                            int64_t ldw, const double *bhh, const double *WhrT, const int64_t *bs, int64_t T,
                            int64_t H, int64_t P, int reverse) {
    rnn_seq_fwd_f64(mode, G_, GH, h, c, out, ldo, HP, CP, HU, WhhT, ldw, bhh, WhrT, bs, T, H, P,
                    reverse);
}
void ce_rnn_seq_backward_f32(int mode, float *dG, float *dGH, float *dh, float *dc, float *DHR,
                             float *work, const float *dout, int64_t lddo, const float *G_,
                             const float *GH, const float *HP, const float *CP, const float *Whh,
                             const float *Whr, const int64_t *bs, int64_t T, int64_t H,
                             int64_t P, int reverse) {
    rnn_seq_bwd_f32(mode, dG, dGH, dh, dc, DHR, work, dout, lddo, G_, GH, HP, CP, Whh, Whr, bs,
                    T, H, P, reverse);
}
void ce_rnn_seq_backward_f64(int mode, double *dG, double *dGH, double *dh, double *dc,
                             double *DHR, double *work, const double *dout, int64_t lddo,
                             const double *G_, const double *GH, const double *HP,
                             const double *CP, const double *Whh, const double *Whr,
                             const int64_t *bs, int64_t T, int64_t H, int64_t P, int reverse) {
    rnn_seq_bwd_f64(mode, dG, dGH, dh, dc, DHR, work, dout, lddo, G_, GH, HP, CP, Whh, Whr, bs,
                    T, H, P, reverse);
}

/* ---- both directions of a bidirectional layer at once, one thread each --------------------- */
/* Run direction d (0: forward, 1: reverse) on thread d of a two-thread team. The step GEMMs
 * inside open nested regions, which OpenMP runs on the calling thread alone unless the user
 * enabled nested parallelism (then they just use more threads: still correct, as the GEMM
 * shares its work with `omp for`). A team smaller than two runs both directions in turn. */
#define CE_RNN_PAIR(CALL_D)                                                                        \
    do {                                                                                           \
        _Pragma("omp parallel num_threads(2)")                                                     \
        {                                                                                          \
            int tid_ = CE_TID(), nth_ = 1;                                                         \
            CE_RNN_NTH(nth_);                                                                      \
            int old_ = rnn_on_one_thread;                                                          \
            rnn_on_one_thread = 1;                                                                 \
            for (int d = tid_; d < 2; d += nth_) CALL_D;                                           \
            rnn_on_one_thread = old_;                                                              \
        }                                                                                          \
    } while (0)
#ifdef _OPENMP
#define CE_RNN_NTH(v) ((v) = omp_get_num_threads())
#else
#define CE_RNN_NTH(v) ((v) = 1)
#endif

void ce_rnn_seq_forward_pair_f32(int mode, float *const *G_, float *const *GH, float *const *h,
                                 float *const *c, float *const *out, int64_t ldo,
                                 float *const *HP, float *const *CP, float *const *HU,
                                 const float *const *WhhT, int64_t ldw, const float *const *bhh,
                                 const float *const *WhrT, const int64_t *bs, int64_t T,
                                 int64_t H, int64_t P) {
    CE_RNN_PAIR(rnn_seq_fwd_f32(mode, G_[d], GH[d], h[d], c[d], out[d], ldo, HP[d], CP[d], HU[d],
                                WhhT[d], ldw, bhh[d], WhrT[d], bs, T, H, P, d));
}
void ce_rnn_seq_forward_pair_f64(int mode, double *const *G_, double *const *GH,
                                 double *const *h, double *const *c, double *const *out,
                                 int64_t ldo, double *const *HP, double *const *CP,
                                 double *const *HU, const double *const *WhhT, int64_t ldw,
                                 const double *const *bhh, const double *const *WhrT,
                                 const int64_t *bs, int64_t T, int64_t H, int64_t P) {
    CE_RNN_PAIR(rnn_seq_fwd_f64(mode, G_[d], GH[d], h[d], c[d], out[d], ldo, HP[d], CP[d], HU[d],
                                WhhT[d], ldw, bhh[d], WhrT[d], bs, T, H, P, d));
}
void ce_rnn_seq_backward_pair_f32(int mode, float *const *dG, float *const *dGH, float *const *dh,
                                  float *const *dc, float *const *DHR, float *const *work,
                                  const float *const *dout, int64_t lddo, const float *const *G_,
                                  const float *const *GH, const float *const *HP,
                                  const float *const *CP, const float *const *Whh,
                                  const float *const *Whr, const int64_t *bs, int64_t T,
                                  int64_t H, int64_t P) {
    CE_RNN_PAIR(rnn_seq_bwd_f32(mode, dG[d], dGH[d], dh[d], dc[d], DHR[d], work[d], dout[d], lddo,
                                G_[d], GH[d], HP[d], CP[d], Whh[d], Whr[d], bs, T, H, P, d));
}
void ce_rnn_seq_backward_pair_f64(int mode, double *const *dG, double *const *dGH,
                                  double *const *dh, double *const *dc, double *const *DHR,
                                  double *const *work, const double *const *dout, int64_t lddo,
                                  const double *const *G_, const double *const *GH,
                                  const double *const *HP, const double *const *CP,
                                  const double *const *Whh, const double *const *Whr,
                                  const int64_t *bs, int64_t T, int64_t H, int64_t P) {
    CE_RNN_PAIR(rnn_seq_bwd_f64(mode, dG[d], dGH[d], dh[d], dc[d], DHR[d], work[d], dout[d], lddo,
                                G_[d], GH[d], HP[d], CP[d], Whh[d], Whr[d], bs, T, H, P, d));
}
