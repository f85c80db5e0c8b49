/* threads.c - the thread count used by every OpenMP region in cengine.
 * Kernels ask ce_get_num_threads()/ce_threads_for() and pass it in num_threads(...) of each
 * parallel region, so the setting holds whichever Python thread calls in, and the process-wide
 * OpenMP default (omp_set_num_threads, OMP_NUM_THREADS) that other libraries in the process
 * use is never changed. */
#include "cengine.h"
#include <pthread.h>

static int ce_nthreads = 1;
/* set in a child forked after cengine was loaded: OpenMP's thread pool does not survive fork(),
 * so such a child runs every kernel on its own thread, whatever it asks for later */
static int ce_forked_child = 0;

static void ce_at_fork_child(void) {
    ce_forked_child = 1;
    ce_nthreads = 1;
}

__attribute__((constructor)) static void ce_threads_register_fork(void) {
    pthread_atfork(NULL, NULL, ce_at_fork_child);
}

void ce_set_num_threads(int n) {
    if (n < 1 || ce_forked_child) n = 1;
    ce_nthreads = n;
}

int ce_get_num_threads(void) { return ce_nthreads; }

int ce_openmp_enabled(void) { return CE_HAVE_OPENMP; }

/* Keep large freed blocks in the heap instead of returning them to the OS (glibc only).
 * A training step allocates and frees the same multi-megabyte activations and gradients on
 * every step; with glibc's defaults each comes from a fresh mmap and pays a page fault (and a
 * page clear) per 4 KiB on first touch: 15-22% of a transformer step here. Blocks up to
 * `mmap_threshold` bytes come from the heap; the heap top is trimmed beyond `trim_threshold`.
 * Returns 1 if applied. */
#if defined(__GLIBC__)
#include <malloc.h>
#endif
int ce_tune_malloc(long mmap_threshold, long trim_threshold) {
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
    /* the trim setting also freezes glibc's adaptive mmap threshold: only touch it when the
     * mmap threshold itself was accepted (glibc caps that at 32 MiB on 64-bit, or refuses) */
    if (!mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold)) return 0;
    return mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) ? 1 : 0;
#else
    (void)mmap_threshold; (void)trim_threshold;
    return 0;
#endif
}
