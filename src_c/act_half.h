/* act_half.h - the activations of activation.h on bfloat16 storage (act_half.c).
 *
 * bfloat16 values travel as their 16-bit patterns. Each element is computed by the float32
 * kernels of activation.h from the exact float32 value of its input(s) and rounded once to
 * bfloat16 (nearest even, NaN -> 0xffff, as cast.h): bit for bit the float32 activation of the
 * input cast to float32, cast back - torch's "compute in float32" for bfloat16 tensors - in
 * one pass over memory (blocks of 1024 elements converted through an L1 buffer). Kinds,
 * parameters and the backward's input (x, or y for sigmoid/tanh) as in activation.h; y may
 * alias x and dx may alias dy. Threaded over chunks of n; the ISA path follows ce_isa. */
#ifndef CE_ACT_HALF_H
#define CE_ACT_HALF_H
#include "common.h"

/* y (n) = bf16(f(x (n))) */
void ce_act_forward_bf16(int kind, uint16_t *y, const uint16_t *x, int64_t n, double p0,
                         double p1);
/* dx (n) = bf16(dy * f'(.)), xy (n) the forward input x or output y (ce_act_backward_uses_y) */
void ce_act_backward_bf16(int kind, uint16_t *dx, const uint16_t *xy, const uint16_t *dy,
                          int64_t n, double p0, double p1);
/* the same through the scalar references of cast.h and activation.h, one thread */
void ce_act_forward_bf16_ref(int kind, uint16_t *y, const uint16_t *x, int64_t n, double p0,
                             double p1);
void ce_act_backward_bf16_ref(int kind, uint16_t *dx, const uint16_t *xy, const uint16_t *dy,
                              int64_t n, double p0, double p1);
#endif
