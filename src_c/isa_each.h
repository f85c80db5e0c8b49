/* isa_each.h - instantiate per-(ISA path, dtype) code from templates that read CE_VM (the
 * vector-math binding of vmath.h): once for each of avx512 and avx2 (compiled for that ISA by
 * target pragmas) in float32 and float64, and optionally for the scalar generic path.
 *
 * Define before including (all are removed again at the end, so a file may include this
 * more than once):
 *   CE_EACH_SCALAR  1 to include the scalar (generic) instances too (default 0)
 *   CE_EACH_INC1    optional template header (a "quoted" name) included per instance
 *   CE_EACH_INC2    a second one, included after the first
 *   CE_EACH_BODY    optional macro expanded per instance after the headers
 */
#ifndef CE_EACH_SCALAR
#define CE_EACH_SCALAR 0
#endif

#if CE_EACH_SCALAR
#define CE_VM CE_VM_SCALAR_F32
#include "isa_each_one.h"
#define CE_VM CE_VM_SCALAR_F64
#include "isa_each_one.h"
#endif

#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")
#define CE_VM CE_VM_AVX512_F32
#include "isa_each_one.h"
#define CE_VM CE_VM_AVX512_F64
#include "isa_each_one.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define CE_VM CE_VM_AVX2_F32
#include "isa_each_one.h"
#define CE_VM CE_VM_AVX2_F64
#include "isa_each_one.h"
#pragma GCC pop_options

#undef CE_EACH_SCALAR
#undef CE_EACH_INC1
#undef CE_EACH_INC2
#undef CE_EACH_BODY
