"""Helpers shared by the op modules: broadcasting gradients, dim normalisation, operand coercion."""
import builtins

import numpy as np

from .. import _C
from .. import dtypes as _dt
from ..autograd import grad_mode as _gm
from ..tensor import Tensor


_EW_MIN = 1 << 16   # elements; below this numpy's one-thread loop is as fast as a thread team


def arith(op, ufunc, a, b):
    """a OP b. Same-shape C-contiguous float32/float64 arrays of one dtype take the threaded C
    kernel (bitwise numpy's result: one IEEE rounding per element); everything else
    (broadcasting, scalars, integers, small arrays) takes numpy's ufunc."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.size >= _EW_MIN
            and a.shape == b.shape and a.dtype == b.dtype
            and (a.dtype == np.float32 or a.dtype == np.float64)
            and a.flags.c_contiguous and b.flags.c_contiguous
            and a.flags.aligned and b.flags.aligned):
        return _C.ewise(op, a, b)
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype == _dt.BF16_NP
            and b.dtype == _dt.BF16_NP and a.size >= _EW_MIN and a.shape == b.shape):
        # bfloat16 (ml_dtypes' ufuncs loop per element): one threaded SIMD pass computing each
        # element in float32 and rounding once - the same bits as ml_dtypes and torch
        if (a.flags.c_contiguous and b.flags.c_contiguous and a.flags.aligned
                and b.flags.aligned):
            return _C.ewise_bf16(op, a, b)
        r = arith(op, ufunc, _dt.astype(a, np.float32), _dt.astype(b, np.float32))
        return _dt.astype(r, _dt.BF16_NP)
    if op == "div":   # like torch (and the kernel), no warning for x/0 at any size
        with np.errstate(divide="ignore", invalid="ignore"):
            return ufunc(a, b)
    return ufunc(a, b)


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape` (the inverse of numpy broadcasting)."""
    if grad.shape == shape:
        return grad
    nd = grad.ndim - len(shape)
    if nd > 0:
        grad = grad.sum(axis=tuple(range(nd)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape) if grad.shape != shape else grad


# ---- arrays handed to kernels and saved for backward (used by the autograd Functions)
def _f(a):
    """C-contiguous array for a kernel (no copy when already one; 0-d stays 0-d)."""
    return a if a.flags.c_contiguous else a.copy(order="C")


def _reshape(a, shape):
    """a.reshape(shape), but `a` itself when the shape already matches (autograd then takes a
    freshly computed gradient as .grad without copying it)."""
    return a if a.shape == tuple(shape) else a.reshape(shape)


def _keep(view, orig):
    """What to save for backward: the Function's own input/output array `orig` when `view`
    aliases it (so autograd's in-place-modification check sees it), else the private `view`."""
    return orig if view is not orig and np.may_share_memory(view, orig) else view


def write_out(res, out, name=None):
    """The `out=` argument of an op: `res` when out is None, else res's values written into the
    tensor `out` (given res's shape when its own differs, version bumped) and `out` returned.
    `name` (the op's torch name) prefixes the errors as torch's do."""
    if out is None:
        return res
    pre = "" if name is None else "%s(): " % name
    if not isinstance(out, Tensor):
        raise TypeError("%sargument 'out' must be Tensor, not %s" % (pre, type(out).__name__))
    if out.requires_grad and _gm._state[0]:
        raise RuntimeError("%sfunctions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad." % pre)
    if out._data.shape != res._data.shape:
        out._data = np.empty(res._data.shape, out._data.dtype)
    out._data[...] = res._data
    out._version[0] += 1
    return out


def wrap_dim(dim, ndim):
    """Normalise a possibly negative dim like torch (0-d tensors accept dims -1 and 0)."""
    n = ndim if ndim > 0 else 1
    if not isinstance(dim, (builtins.int, np.integer)) or isinstance(dim, builtins.bool):
        raise TypeError("dim must be an int, got %s" % type(dim).__name__)
    if dim < -n or dim >= n:
        raise IndexError("Dimension out of range (expected to be in range of [%d, %d], but got %d)"
                         % (-n, n - 1, dim))
    return dim + n if dim < 0 else dim


def wrap_dims(dim, ndim):
    """None -> all dims (as None); int or tuple/list -> sorted tuple of non-negative dims."""
    if dim is None:
        return None
    if isinstance(dim, (tuple, list)):
        dims = tuple(wrap_dim(d, ndim) for d in dim)
        if len(set(dims)) != len(dims):
            raise RuntimeError("dim %d appears multiple times in the list of dims"
                               % next(d for d in dims if dims.count(d) > 1))
        if ndim == 0:
            return ()
        return tuple(sorted(dims))
    d = wrap_dim(dim, ndim)
    return () if ndim == 0 else (d,)


def size_args(size):
    """(*sizes) or (sizes,) -> tuple of ints, as torch's factory functions accept."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    elif len(size) == 1 and hasattr(size[0], "__iter__") and not hasattr(size[0], "_data"):
        size = tuple(size[0])
    out = []
    for s in size:
        if hasattr(s, "_data"):
            s = s.item()
        if not isinstance(s, (builtins.int, np.integer)) or isinstance(s, builtins.bool):
            raise TypeError("size must be a tuple of ints, but got an element of type %s"
                            % type(s).__name__)
        out.append(builtins.int(s))
    return tuple(out)


def scalar_value(x):
    """Python number for a python/numpy scalar, else None."""
    if isinstance(x, np.generic):  # before float: np.float64 subclasses float
        return x.item()
    if isinstance(x, (builtins.bool, builtins.int, builtins.float)):
        return x
    return None


def float_dtype_for(arr):
    """dtype a float-valued op (exp, mean, ...) returns for `arr`: floats keep theirs."""
    return arr.dtype if _dt.is_floating(arr.dtype) else _dt.get_default_dtype().np


def check_nonneg(shape, name=None):
    """Factory sizes must be >= 0: RuntimeError as torch (numpy would raise a ValueError)."""
    for s in shape:
        if s < 0:
            if name == "zeros":
                raise RuntimeError("zeros: Dimension size must be non-negative.")
            raise RuntimeError("Trying to create tensor with negative dimension %d: [%s]"
                               % (s, ", ".join(map(str, shape))))
    return shape
