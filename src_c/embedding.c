/* embedding.c - embedding gather (forward) and scatter-add (backward).
 * Forward: out[i,:] = W[idx[i],:], rows copied, threaded over i.
 * Backward: dW[idx[i],:] += dy[i,:] (padding_idx rows skipped). Repeated indices are handled
 * without races or atomics: with several threads, each thread owns a slice of the COLUMNS
 * (when D is wide enough) or of the destination ROWS of dW and walks all i in ascending order,
 * so every dW element is written by one thread and summed in the same order as one thread. */
#include <string.h>
#include "nn_util.h"

/* row add d[c0..c1) += s[c0..c1) per ISA */
#define CE_EMB_ADD_ROW                                                                           \
    static void VM_FN(emb_add)(vm_s *d, const vm_s *s, int64_t n) {                              \
        int64_t i = 0;                                                                           \
        for (; i + 2 * VM_W <= n; i += 2 * VM_W) {                                               \
            vm_store(d + i, vm_add(vm_load(d + i), vm_load(s + i)));                             \
            vm_store(d + i + VM_W, vm_add(vm_load(d + i + VM_W), vm_load(s + i + VM_W)));        \
        }                                                                                        \
        for (; i + VM_W <= n; i += VM_W) vm_store(d + i, vm_add(vm_load(d + i), vm_load(s + i))); \
        if (i < n) vm_store_part(d + i, n - i, vm_add(vm_load_part(d + i, n - i), vm_load_part(s + i, n - i))); \
    }

#define CE_EACH_SCALAR 1
#define CE_EACH_BODY CE_EMB_ADD_ROW
#include "isa_each.h"

#define CE_DEF_EMB(T, SFX)                                                                       \
    typedef void (*emb_add_fn_##SFX)(T *, const T *, int64_t);                                   \
    static emb_add_fn_##SFX emb_add_pick_##SFX(void) {                                           \
        switch (ce_isa) {                                                                        \
        case CE_ISA_AVX512: return ce_emb_add_avx512_##SFX;                                      \
        case CE_ISA_AVX2: return ce_emb_add_avx2_##SFX;                                          \
        default: return ce_emb_add_scalar_##SFX;                                                 \
        }                                                                                        \
    }                                                                                            \
    void ce_embedding_fwd_##SFX(T *out, const T *W, const int64_t *idx, int64_t n, int64_t V,    \
                                int64_t D) {                                                     \
        (void)V;                                                                                 \
        if (n <= 0 || D <= 0) return;                                                            \
        int nt = ce_nn_threads(n * D, 4 * CE_NN_MIN_WORK, n);                                    \
        _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")                 \
        for (int64_t i = 0; i < n; i++)                                                          \
            memcpy(out + i * D, W + idx[i] * D, (size_t)D * sizeof(T));                          \
    }                                                                                            \
    /* columns [c0,c1) of rows whose index lies in [v0,v1) */                                    \
    static void emb_bwd_part_##SFX(emb_add_fn_##SFX add, T *dW, const T *dy, const int64_t *idx, \
                                   int64_t n, int64_t D, int64_t pad, int64_t v0, int64_t v1,    \
                                   int64_t c0, int64_t c1) {                                     \
        for (int64_t i = 0; i < n; i++) {                                                        \
            int64_t v = idx[i];                                                                  \
            if (v == pad || v < v0 || v >= v1) continue;                                         \
            add(dW + v * D + c0, dy + i * D + c0, c1 - c0);                                      \
        }                                                                                        \
    }                                                                                            \
    void ce_embedding_bwd_##SFX(T *dW, const T *dy, const int64_t *idx, int64_t n, int64_t V,    \
                                int64_t D, int64_t pad) {                                        \
        if (n <= 0 || D <= 0 || V <= 0) return;                                                  \
        emb_add_fn_##SFX add = emb_add_pick_##SFX();                                             \
        int nt = ce_nn_threads(n * D, CE_NN_MIN_WORK, n);                                        \
        if (nt <= 1) {                                                                           \
            emb_bwd_part_##SFX(add, dW, dy, idx, n, D, pad, 0, V, 0, D);                         \
            return;                                                                              \
        }                                                                                        \
        /* column slices when each thread gets >= 32 columns, else destination-row slices */     \
        int by_cols = D >= 32 * (int64_t)nt;                                                     \
        _Pragma("omp parallel num_threads(nt)")                                                  \
        {                                                                                        \
            int64_t lo, hi;                                                                      \
            if (by_cols) {                                                                       \
                ce_chunk(D, CE_TID(), nt, 16, &lo, &hi);                                         \
                if (hi > lo) emb_bwd_part_##SFX(add, dW, dy, idx, n, D, pad, 0, V, lo, hi);      \
            } else {                                                                             \
                ce_chunk(V, CE_TID(), nt, 1, &lo, &hi);                                          \
                if (hi > lo) emb_bwd_part_##SFX(add, dW, dy, idx, n, D, pad, lo, hi, 0, D);      \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    void ce_embedding_bwd_##SFX##_ref(T *dW, const T *dy, const int64_t *idx, int64_t n,         \
                                      int64_t V, int64_t D, int64_t pad) {                       \
        (void)V;                                                                                 \
        for (int64_t i = 0; i < n; i++) {                                                        \
            if (idx[i] == pad) continue;                                                         \
            for (int64_t c = 0; c < D; c++) dW[idx[i] * D + c] += dy[i * D + c];                 \
        }                                                                                        \
    }
CE_DEF_EMB(float, f32)
CE_DEF_EMB(double, f64)
