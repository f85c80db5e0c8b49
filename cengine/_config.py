"""Threads, ISA and build configuration: set_num_threads/get_num_threads/show_config."""
import os
import sys

from . import _C

__all__ = ["set_num_threads", "get_num_threads", "show_config", "get_isa", "set_isa"]


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def set_num_threads(n):
    """Threads used by cengine's C kernels (OpenMP). In a process forked from a cengine process
    (e.g. a DataLoader worker started with 'fork') the kernels stay on one thread: see
    _after_fork_in_child."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError("set_num_threads expects an int, got %s" % type(n).__name__)
    if n <= 0:
        raise RuntimeError("set_num_threads expects a positive integer")
    if n > 1 and _forked_child:
        _warn_forked_threads(n)
        n = 1
    _C.set_num_threads(n)


# ---------------------------------------------------------------- OpenMP and fork
# A forked child has only the thread that called fork(); GNU OpenMP (libgomp) still believes
# the parent's worker threads exist, and the child's first parallel region with more than one
# thread waits for them forever. A region of one thread never touches that pool. So in every
# forked child (DataLoader workers on Linux, or a user's own os.fork()) cengine's kernel thread
# count is set to 1 before any Python code runs there, and set_num_threads keeps it at 1
# (with a warning). Processes started with 'spawn' or 'forkserver' are not affected.
_forked_child = False
_warned_forked = False


def _after_fork_in_child():
    global _forked_child, _warned_forked
    if not _C.openmp_enabled():
        return
    _forked_child = True
    _warned_forked = False
    _C.set_num_threads(1)


def _warn_forked_threads(n):
    global _warned_forked
    if _warned_forked:
        return
    _warned_forked = True
    import warnings
    warnings.warn("cengine.set_num_threads(%d) in a forked process (such as a DataLoader worker "
                  "started with 'fork', the default on Linux): OpenMP cannot start threads again "
                  "after fork without risking a hang, so cengine kernels stay on one thread "
                  "here. Use multiprocessing_context='forkserver' or 'spawn' for "
                  "multi-threaded workers." % n, RuntimeWarning, stacklevel=3)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def get_num_threads():
    return _C.get_num_threads()


def get_isa():
    """The kernel path in use: 'generic', 'avx2' or 'avx512'."""
    return _C.get_isa()


def set_isa(name):
    """Force a kernel path (as CENGINE_ISA does at import); never above what the CPU supports."""
    _C.set_isa(name)


# Heap tuning applied at import (glibc, for the whole process): blocks up to 32 MiB (glibc's
# largest accepted mmap threshold on 64-bit) come from the heap and up to 512 MiB of free heap
# is kept before trimming, so the activations and gradients a training step allocates again on
# every step reuse warm pages instead of a fresh mmap with a page fault per 4 KiB.
# CENGINE_MALLOC_TUNING=0, or setting glibc's own thresholds (MALLOC_MMAP_THRESHOLD_,
# MALLOC_TRIM_THRESHOLD_ or the same through GLIBC_TUNABLES), leaves the allocator as it is.
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 512 << 20
malloc_tuned = False


def _tune_malloc():
    global malloc_tuned
    if os.environ.get("CENGINE_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "malloc.mmap_threshold" in tunables or "malloc.trim_threshold" in tunables:
        return
    malloc_tuned = _C.tune_malloc(_MMAP_THRESHOLD, _TRIM_THRESHOLD)


def _init():
    set_num_threads(_default_threads())
    _tune_malloc()
    isa = os.environ.get("CENGINE_ISA")
    if isa:
        try:
            _C.set_isa(isa.strip().lower())
        except (ValueError, RuntimeError) as e:
            raise RuntimeError("CENGINE_ISA=%s: %s" % (isa, e)) from None
    from . import _tunefile   # GEMM block sizes measured by python -m cengine.tune, if any
    _tunefile.apply(warn=True)


def show_config(file=None):
    """Print version, ISA chosen and available, threads, OpenMP and compiler flags."""
    from . import __version__
    try:
        from ._C import _build_info as bi
        flags = " ".join(bi.cflags)
        compiler = bi.compiler
    except ImportError:  # pragma: no cover - built by an old setup.py
        flags, compiler = "unknown", "unknown"
    feats = _C.cpu_features()
    lines = [
        "cengine %s" % __version__,
        "  python:        %s" % sys.version.split()[0],
        "  ISA in use:    %s" % _C.get_isa(),
        "  ISA available: %s (best: %s)" % (", ".join(_C.ISA_NAMES[:_C.ISA_NAMES.index(
            _C.max_isa()) + 1]), _C.max_isa()),
        "  CPU features:  %s" % " ".join(k for k, v in feats.items() if v),
        "  threads:       %d" % _C.get_num_threads(),
        "  OpenMP:        %s" % ("on" if _C.openmp_enabled() else "off"),
        "  malloc tuning: %s" % ("on (CENGINE_MALLOC_TUNING=0 turns it off)" if malloc_tuned
                                  else "off"),
        "  compiler:      %s" % compiler,
        "  flags:         %s" % flags,
    ]
    lines += _gemm_config_lines()
    print("\n".join(lines), file=file)


def _fmt_bytes(n):
    for unit, sh in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << sh and n % (1 << sh) == 0:
            return "%d %s" % (n >> sh, unit)
    return "%d B" % n


def _gemm_config_lines():
    """show_config's cache and GEMM blocking lines"""
    caches = _C.cpu_caches()
    parts = []
    for lv, name in (("L1", "L1d"), ("L2", "L2"), ("L3", "L3")):
        c = caches[lv]
        if c is None:
            continue
        extra = ["%d-way" % c["ways"] if c["ways"] else "ways unknown"]
        if c["shared"] > 1:
            extra.append("shared by %d CPUs" % c["shared"])
        parts.append("%s %s (%s)" % (name, _fmt_bytes(c["size"]), ", ".join(extra)))
    lines = ["  CPU model:     %s" % (_C.cpu_model() or "unknown"),
             "  caches:        %s [%s]" % (", ".join(parts) or "unknown", caches["source"])]
    isa = _C.get_isa()
    for dt in ("float32", "float64"):
        b = _C.gemm_blocking(dt, isa)
        src = {"caches": "from the caches", "fixed": "fixed, caches unknown",
               "set": "tuned/set"}[b["source"]]
        lines.append("  GEMM %s: %dx%d tile, KC=%d MC=%d NC=%d (%s)" % (
            dt, b["mr"], b["nr"], b["kc"], b["mc"], b["nc"], src))
    from . import _tunefile
    path, status, _ = _tunefile.status()
    lines.append("  GEMM tune file: %s: %s" % (path, status))
    return lines
