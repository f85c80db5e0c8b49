/* optim_impl.h - internal to the optimizer kernels (optim.c and its ISA files optim_avx512.c,
 * optim_avx2.c): hyper-parameter records and the per-segment kernels every ISA provides.
 * A "segment" is a contiguous piece [0, n) of one tensor (pointers already offset); the driver in
 * optim.c cuts the group's tensors into segments, one set per thread. */
#ifndef CE_OPTIM_IMPL_H
#define CE_OPTIM_IMPL_H
#include "common.h"

typedef struct { double lr, momentum, dampening, wd; int nesterov, maximize; } ce_sgd_hp;
typedef struct { double lr_decay, wd, eps; int maximize; } ce_adagrad_hp;
typedef struct { double lr, alpha, eps, wd, momentum; int centered, maximize; } ce_rmsprop_hp;
typedef struct { double lr, beta1, beta2, eps, wd; int amsgrad, maximize, decoupled; } ce_adam_hp;

#define CE_OPTIM_DECLARE(T, SFX)                                                                 \
    void ce_sgd_seg_##SFX(T *p, T *buf, const T *g, int64_t n, const ce_sgd_hp *hp, int first); \
    void ce_adagrad_seg_##SFX(T *p, T *sum, const T *g, int64_t n, const ce_adagrad_hp *hp,     \
                              double clr);                                                       \
    void ce_rmsprop_seg_##SFX(T *p, T *sq, T *gavg, T *buf, const T *g, int64_t n,              \
                              const ce_rmsprop_hp *hp);                                          \
    void ce_adam_seg_##SFX(T *p, T *m, T *v, T *vmax, const T *g, int64_t n,                    \
                           const ce_adam_hp *hp, double step_size, double bc2_sqrt);             \
    double ce_sumsq_seg_##SFX(const T *x, int64_t n);                                            \
    double ce_absmax_seg_##SFX(const T *x, int64_t n);                                           \
    void ce_scale_seg_##SFX(T *x, int64_t n, double alpha);

CE_OPTIM_DECLARE(float, f32_generic)
CE_OPTIM_DECLARE(double, f64_generic)
CE_OPTIM_DECLARE(float, f32_avx2)
CE_OPTIM_DECLARE(double, f64_avx2)
CE_OPTIM_DECLARE(float, f32_avx512)
CE_OPTIM_DECLARE(double, f64_avx512)

#endif
