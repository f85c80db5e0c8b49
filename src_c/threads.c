/* threads.c - the thread count used by every OpenMP region in cengine.
 * Kernels ask ce_get_num_threads()/ce_threads_for() and pass it in num_threads(...), so the
 * setting holds whichever Python thread calls in. */
#include "cengine.h"
#if CE_HAVE_OPENMP
#include <omp.h>
#endif

static int ce_nthreads = 1;

void ce_set_num_threads(int n) {
    if (n < 1) n = 1;
    ce_nthreads = n;
#if CE_HAVE_OPENMP
    omp_set_num_threads(n);
#endif
}

int ce_get_num_threads(void) { return ce_nthreads; }

int ce_openmp_enabled(void) { return CE_HAVE_OPENMP; }
