/* ewise.h - threaded elementwise binary arithmetic on contiguous arrays of one float dtype.
 *
 * out[i] = a[i] OP b[i] for i < n, OP one of CE_EW_ADD/SUB/MUL/DIV (IEEE, one rounding per
 * element, so results are bitwise those of the plain loop and of numpy). out may alias a or b.
 * Large n is split into per-thread chunks (memory-bound: a second core adds bandwidth); the
 * loop is compiled per ISA (generic, avx2, avx512) and picked by ce_isa. *_ref: the plain loop
 * on one thread, for tests. */
#ifndef CE_EWISE_H
#define CE_EWISE_H
#include "common.h"

enum { CE_EW_ADD = 0, CE_EW_SUB = 1, CE_EW_MUL = 2, CE_EW_DIV = 3 };

void ce_ewise_f32(int op, float *out, const float *a, const float *b, int64_t n);
void ce_ewise_f64(int op, double *out, const double *a, const double *b, int64_t n);
void ce_ewise_f32_ref(int op, float *out, const float *a, const float *b, int64_t n);
void ce_ewise_f64_ref(int op, double *out, const double *a, const double *b, int64_t n);

#endif
