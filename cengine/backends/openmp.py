"""torch.backends.openmp: whether cengine's kernels were built with OpenMP threads."""

__all__ = ["is_available"]


def is_available():
    try:
        from .._C import _build_info
        return bool(_build_info.openmp)
    except ImportError:
        return False
