/* isa_each_one.h - one instance for isa_each.h: CE_VM is defined by the includer and
 * undefined here. No include guard: included once per instance. */
#include "vmath.h"
#ifdef CE_EACH_INC1
#include CE_EACH_INC1
#endif
#ifdef CE_EACH_INC2
#include CE_EACH_INC2
#endif
#ifdef CE_EACH_BODY
CE_EACH_BODY
#endif
#undef CE_VM
