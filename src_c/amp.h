/* amp.h - mixed-precision helpers: GradScaler's fused unscale + non-finite check.
 *
 * ce_amp_unscale_f32/f64: for each of `count` gradient buffers g[t] (n[t] contiguous
 * elements): g[t] *= inv_scale, and the return value is 1 when any element was NaN or +-inf
 * before scaling (torch's _amp_foreach_non_finite_check_and_unscale_; every buffer is scaled
 * either way). One threaded pass over all buffers: threads take equal shares of the
 * concatenated elements, so a few large gradients and many small ones split alike.
 */
#ifndef CE_AMP_H
#define CE_AMP_H
#include "common.h"

#define CE_AMP_MIN_PER_THREAD 32768

int ce_amp_unscale_f32(float *const *g, const int64_t *n, int64_t count, float inv_scale);
int ce_amp_unscale_f64(double *const *g, const int64_t *n, int64_t count, double inv_scale);
/* plain single-threaded references, same contracts */
int ce_amp_unscale_f32_ref(float *const *g, const int64_t *n, int64_t count, float inv_scale);
int ce_amp_unscale_f64_ref(double *const *g, const int64_t *n, int64_t count, double inv_scale);
#endif
