"""torch.memory_format and torch.layout objects: contiguous_format, channels_last,
channels_last_3d, preserve_format and strided. Tensors are numpy arrays, so a memory format is a
physical order of the same logical (N, C, H, W) array: channels_last keeps the shape and stores
the elements in N, H, W, C order (the tensor is then a non-C-contiguous view, as in torch)."""
import numpy as np

from . import _device as _dv

__all__ = ["memory_format", "layout", "contiguous_format", "channels_last", "channels_last_3d",
           "preserve_format", "strided"]


class _Named:
    """A named singleton of this module: printed as cengine.<name>, pickled by name (so it
    unpickles as the same object)."""
    __slots__ = ("_name",)

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return "cengine." + self._name

    def __reduce__(self):
        return self._name


class memory_format(_Named):
    __slots__ = ()


class layout(_Named):
    __slots__ = ()


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")
preserve_format = memory_format("preserve_format")
strided = layout("strided")

_RANK = {"channels_last": 4, "channels_last_3d": 5}


def check(mf, fn):
    """mf itself when it is None or a memory_format; TypeError as torch's argument parser."""
    if mf is not None and not isinstance(mf, memory_format):
        raise TypeError("%s(): argument 'memory_format' must be torch.memory_format, not %s"
                        % (fn, type(mf).__name__))
    return mf


def check_layout(lay, fn):
    if lay is not None and lay is not strided:
        if isinstance(lay, layout):
            raise RuntimeError("%s(): cengine stores only strided (dense) tensors, got layout=%r"
                               % (fn, lay))
        raise TypeError("%s(): argument 'layout' must be torch.layout, not %s"
                        % (fn, type(lay).__name__))


def _perm(mf, ndim):
    """The physical axis order of memory format mf for an ndim array (None: C order)."""
    r = _RANK.get(mf._name)
    if r is None:
        return None
    if ndim != r:
        raise RuntimeError("required rank %d tensor to use %s format" % (r, mf._name))
    return (0,) + tuple(range(2, r)) + (1,)


def is_in(arr, mf):
    """Whether arr is laid out densely in memory format mf (torch's is_contiguous(mf))."""
    if mf is None or mf is contiguous_format or mf is preserve_format:
        return arr.flags.c_contiguous
    r = _RANK[mf._name]
    if arr.ndim != r:
        return False
    return arr.transpose(_perm(mf, r)).flags.c_contiguous


def arrange(arr, mf, copy):
    """arr laid out in memory format mf (a fresh array when copy or when the layout changes).
    preserve_format keeps a dense array's order and makes anything else C-contiguous."""
    if mf is preserve_format:
        dense = arr.flags.c_contiguous or arr.flags.f_contiguous or is_in(arr, channels_last) \
            if arr.ndim == 4 else (arr.flags.c_contiguous or arr.flags.f_contiguous)
        if dense:
            return np.array(arr, copy=True, order="K") if copy else arr
        return np.array(arr, copy=True, order="C")
    p = None if mf is None or mf is contiguous_format else _perm(mf, arr.ndim)
    if p is None:
        return np.array(arr, copy=True, order="C") if copy or not arr.flags.c_contiguous else arr
    if not copy and is_in(arr, mf):
        return arr
    inv = np.argsort(p)
    return _dv.ascontiguousarray(arr.transpose(p)).transpose(inv)


def dense_format(arr):
    """channels_last / channels_last_3d when arr is laid out so (and not C-contiguous), else None:
    what torch's preserve_format keeps for a clone or a *_like result."""
    if arr.flags.c_contiguous:
        return None
    for f in (channels_last, channels_last_3d):
        if arr.ndim == _RANK[f._name] and is_in(arr, f):
            return f
    return None
