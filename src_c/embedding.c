/* embedding.c - embedding gather (forward) and scatter-add (backward).
 * Forward: out[i,:] = W[idx[i],:], rows copied, threaded over i.
 * Backward: dW[idx[i],:] += dy[i,:] (padding_idx rows skipped). Repeated indices are handled
 * without races or atomics: with several threads, each thread owns a slice of the COLUMNS
 * (when D is wide enough) or of the destination ROWS of dW and walks all i in ascending order,
 * so every dW element is written by one thread and summed in the same order as one thread. */
#include <string.h>
#include "nn_util.h"

/* row add d[0..n) += s[0..n) per (ISA, dtype); emb_add_v: the same behind void pointers (the
 * driver below is dtype-agnostic: it moves rows of esz-byte elements) */
#define CE_EMB_ADD_ROW                                                                           \
    static void VM_FN(emb_add)(vm_s *d, const vm_s *s, int64_t n) {                              \
        int64_t i = 0;                                                                           \
        for (; i + 2 * VM_W <= n; i += 2 * VM_W) {                                               \
            vm_store(d + i, vm_add(vm_load(d + i), vm_load(s + i)));                             \
            vm_store(d + i + VM_W, vm_add(vm_load(d + i + VM_W), vm_load(s + i + VM_W)));        \
        }                                                                                        \
        for (; i + VM_W <= n; i += VM_W) vm_store(d + i, vm_add(vm_load(d + i), vm_load(s + i))); \
        if (i < n) vm_store_part(d + i, n - i, vm_add(vm_load_part(d + i, n - i), vm_load_part(s + i, n - i))); \
    }                                                                                            \
    static void VM_FN(emb_add_v)(void *d, const void *s, int64_t n) {                            \
        VM_FN(emb_add)((vm_s *)d, (const vm_s *)s, n);                                           \
    }

#define CE_EACH_SCALAR 1
#define CE_EACH_BODY CE_EMB_ADD_ROW
#include "isa_each.h"

typedef void (*emb_add_fn)(void *d, const void *s, int64_t n);

/* out (n, D) = W[idx[i], :] for elements of esz bytes */
static void emb_fwd(void *out, const void *W, const int64_t *idx, int64_t n, int64_t D, size_t esz) {
    if (n <= 0 || D <= 0) return;
    const size_t row = (size_t)D * esz;
    int nt = ce_nn_threads(n * D, 4 * CE_NN_MIN_WORK, n);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t i = 0; i < n; i++) memcpy((char *)out + i * row, (const char *)W + idx[i] * row, row);
}

/* columns [c0,c1) of rows whose index lies in [v0,v1) */
static void emb_bwd_part(emb_add_fn add, char *dW, const char *dy, const int64_t *idx, int64_t n,
                         int64_t D, size_t esz, int64_t pad, int64_t v0, int64_t v1, int64_t c0,
                         int64_t c1) {
    for (int64_t i = 0; i < n; i++) {
        int64_t v = idx[i];
        if (v == pad || v < v0 || v >= v1) continue;
        add(dW + (v * D + c0) * esz, dy + (i * D + c0) * esz, c1 - c0);
    }
}

static void emb_bwd(emb_add_fn add, void *dW, const void *dy, const int64_t *idx, int64_t n,
                    int64_t V, int64_t D, int64_t pad, size_t esz) {
    if (n <= 0 || D <= 0 || V <= 0) return;
    int nt = ce_nn_threads(n * D, CE_NN_MIN_WORK, n);
    if (nt <= 1) {
        emb_bwd_part(add, (char *)dW, (const char *)dy, idx, n, D, esz, pad, 0, V, 0, D);
        return;
    }
    /* column slices when each thread gets >= 32 columns, else destination-row slices */
    int by_cols = D >= 32 * (int64_t)nt;
#pragma omp parallel num_threads(nt)
    {
        int64_t lo, hi;
        if (by_cols) {
            ce_chunk(D, CE_TID(), CE_NTEAM(), 16, &lo, &hi);
            if (hi > lo)
                emb_bwd_part(add, (char *)dW, (const char *)dy, idx, n, D, esz, pad, 0, V, lo, hi);
        } else {
            ce_chunk(V, CE_TID(), CE_NTEAM(), 1, &lo, &hi);
            if (hi > lo)
                emb_bwd_part(add, (char *)dW, (const char *)dy, idx, n, D, esz, pad, lo, hi, 0, D);
        }
    }
}

/* plain reference scatter-add (static insides per dtype) */
#define CE_EMB_REF(T, SFX)                                                                       \
    static void emb_bwd_ref_##SFX(T *dW, const T *dy, const int64_t *idx, int64_t n, int64_t D,   \
                                  int64_t pad) {                                                 \
        for (int64_t i = 0; i < n; i++) {                                                        \
            if (idx[i] == pad) continue;                                                         \
            for (int64_t c = 0; c < D; c++) dW[idx[i] * D + c] += dy[i * D + c];                 \
        }                                                                                        \
    }
CE_EMB_REF(float, f32)
CE_EMB_REF(double, f64)

/* ---- public entry points ------------------------------------------------------------------------ */
void ce_embedding_fwd_f32(float *out, const float *W, const int64_t *idx, int64_t n, int64_t V,
                          int64_t D) {
    (void)V;
    emb_fwd(out, W, idx, n, D, sizeof(float));
}

void ce_embedding_fwd_f64(double *out, const double *W, const int64_t *idx, int64_t n, int64_t V,
                          int64_t D) {
    (void)V;
    emb_fwd(out, W, idx, n, D, sizeof(double));
}

void ce_embedding_bwd_f32(float *dW, const float *dy, const int64_t *idx, int64_t n, int64_t V,
                          int64_t D, int64_t padding_idx) {
    emb_bwd(CE_ISA_PICK(emb_add_v, f32), dW, dy, idx, n, V, D, padding_idx, sizeof(float));
}

void ce_embedding_bwd_f64(double *dW, const double *dy, const int64_t *idx, int64_t n, int64_t V,
                          int64_t D, int64_t padding_idx) {
    emb_bwd(CE_ISA_PICK(emb_add_v, f64), dW, dy, idx, n, V, D, padding_idx, sizeof(double));
}

void ce_embedding_bwd_f32_ref(float *dW, const float *dy, const int64_t *idx, int64_t n, int64_t V,
                              int64_t D, int64_t padding_idx) {
    (void)V;
    emb_bwd_ref_f32(dW, dy, idx, n, D, padding_idx);
}

void ce_embedding_bwd_f64_ref(double *dW, const double *dy, const int64_t *idx, int64_t n,
                              int64_t V, int64_t D, int64_t padding_idx) {
    (void)V;
    emb_bwd_ref_f64(dW, dy, idx, n, D, padding_idx);
}
