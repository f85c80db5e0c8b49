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
    """Threads used by cengine's C kernels (OpenMP)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError("set_num_threads expects an int, got %s" % type(n).__name__)
    if n <= 0:
        raise RuntimeError("set_num_threads expects a positive integer")
    _C.set_num_threads(n)


def get_num_threads():
    return _C.get_num_threads()


def get_isa():
    """The kernel path in use: 'generic', 'avx2' or 'avx512'."""
    return _C.get_isa()


def set_isa(name):
    """Force a kernel path (as CENGINE_ISA does at import); never above what the CPU supports."""
    _C.set_isa(name)


def _init():
    set_num_threads(_default_threads())
    isa = os.environ.get("CENGINE_ISA")
    if isa:
        try:
            _C.set_isa(isa.strip().lower())
        except (ValueError, RuntimeError) as e:
            raise RuntimeError("CENGINE_ISA=%s: %s" % (isa, e)) from None


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
        "  compiler:      %s" % compiler,
        "  flags:         %s" % flags,
    ]
    print("\n".join(lines), file=file)
