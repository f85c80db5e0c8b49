"""Tensor creation: tensor, as_tensor, from_numpy, zeros/ones/full/empty(+_like), eye, arange,
linspace, logspace, zeros with dtype inference as torch."""
import builtins
import math

import numpy as np

from .. import dtypes as _dt
from ..tensor import Tensor, _wrap, _check_device, _move
from ._util import size_args, check_nonneg

__all__ = ["tensor", "as_tensor", "asarray", "from_numpy", "zeros", "ones", "full", "empty",
           "zeros_like", "ones_like", "full_like", "empty_like", "eye", "arange", "linspace",
           "logspace", "scalar_tensor", "is_tensor", "numel"]


def _infer_np_dtype(data):
    """dtype torch.tensor infers for python data: bool -> bool, int -> int64, float -> default."""
    kinds = set()

    def walk(x):
        if isinstance(x, Tensor):
            kinds.add(("t", x._data.dtype))
        elif isinstance(x, np.ndarray):
            kinds.add(("t", x.dtype))
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif isinstance(x, builtins.bool) or isinstance(x, np.bool_):
            kinds.add(("k", 0))
        elif isinstance(x, (builtins.int, np.integer)):
            kinds.add(("k", 1))
        elif isinstance(x, (builtins.float, np.floating)):
            kinds.add(("k", 2))
        elif isinstance(x, complex):
            raise TypeError("complex tensors are not supported by cengine")
        else:
            raise TypeError("Could not infer dtype of %s" % type(x).__name__)
    walk(data)
    arr_dts = [d for k, d in kinds if k == "t"]
    cat = builtins.max([d for k, d in kinds if k == "k"], default=-1)
    if arr_dts:
        dt = arr_dts[0]
        for d in arr_dts[1:]:
            dt = _dt._promote_np(dt, d)
        if cat > _dt._cat(dt):
            dt = _dt.get_default_dtype().np if cat == 2 else np.dtype(np.int64)
        return dt
    if cat == 2:
        return _dt.get_default_dtype().np
    if cat == 1:
        return np.dtype(np.int64)
    if cat == 0:
        return np.dtype(np.bool_)
    return _dt.get_default_dtype().np  # empty list


def _unwrap_nested(x):
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, (list, tuple)):
        return [_unwrap_nested(v) for v in x]
    return x


def _to_array(data, dtype=None, copy=True):
    npd = None if dtype is None else _dt.to_numpy_dtype(dtype)
    if isinstance(data, Tensor):
        arr = data._data
        if type(arr) is not np.ndarray:      # a cuda tensor: copied on its device
            return arr.astype(npd or arr.dtype, copy=copy)
        return np.array(arr, dtype=npd or arr.dtype, copy=copy)
    if isinstance(data, np.ndarray):
        if npd is None:
            _dt.from_numpy_dtype(data.dtype)  # refuse unsupported numpy dtypes
            npd = data.dtype
        return np.array(data, dtype=npd, copy=copy, order="K")
    if npd is None:
        npd = _infer_np_dtype(data)
    try:
        arr = np.array(_unwrap_nested(data), dtype=npd)
    except ValueError as e:
        raise ValueError("expected sequence of equal lengths: %s" % e) from None
    if arr.dtype == object:
        raise TypeError("Could not convert data to a tensor")
    return arr


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """Copy `data` (python numbers/lists, numpy arrays, tensors) into a new leaf tensor on
    `device` (a tensor's own device when None)."""
    d = _check_device(device)
    if isinstance(data, Tensor):
        import warnings
        warnings.warn("To copy construct from a tensor, use sourceTensor.detach().clone() (or "
                      "sourceTensor.detach().clone().requires_grad_(True)) rather than "
                      "cengine.tensor(sourceTensor).", UserWarning, stacklevel=2)
    arr = _to_array(data, dtype)
    t = _wrap(arr if d is None else _move(arr, d))
    if requires_grad:
        t.requires_grad_(True)
    return t


def as_tensor(data, dtype=None, device=None):
    """Share memory with `data` where possible (tensor or numpy array of the same dtype, on the
    same device)."""
    d = _check_device(device)
    if isinstance(data, Tensor):
        return data.to(d, dtype)
    if isinstance(data, np.ndarray) and (dtype is None or _dt.to_numpy_dtype(dtype) == data.dtype):
        _dt.from_numpy_dtype(data.dtype)
        return _wrap(data if d is None else _move(data, d))
    arr = _to_array(data, dtype, copy=False)
    return _wrap(arr if d is None else _move(arr, d))


asarray = as_tensor


def from_numpy(ndarray):
    """A tensor sharing memory with `ndarray` (zero-copy)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError("expected np.ndarray (got %s)" % type(ndarray).__name__)
    _dt.from_numpy_dtype(ndarray.dtype)
    if any(s < 0 for s in ndarray.strides):
        raise ValueError("At least one stride in the given numpy array is negative, and tensors "
                         "with negative strides are not currently supported. (You can probably "
                         "work around this by making a copy of your array  with array.copy().) ")
    return _wrap(ndarray)


def _dtype_or_default(dtype):
    return _dt.get_default_dtype().np if dtype is None else _dt.to_numpy_dtype(dtype)


def _finish(arr, requires_grad, device):
    """The new leaf tensor of a factory: `arr` (made on the CPU) moved to `device`."""
    if device is not None:
        d = _check_device(device)
        if d.type != "cpu":
            arr = _move(arr, d)
    t = _wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None):
    return _finish(np.zeros(check_nonneg(size_args(size), "zeros"), _dtype_or_default(dtype)),
                   requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.ones(check_nonneg(size_args(size)), _dtype_or_default(dtype)), requires_grad,
                   device)


def empty(*size, dtype=None, device=None, requires_grad=False, memory_format=None):
    from .. import _layout
    mf = _layout.check(memory_format, "empty")
    if mf is _layout.preserve_format:
        raise RuntimeError("unsupported memory format Preserve")
    a = np.empty(check_nonneg(size_args(size)), _dtype_or_default(dtype))
    if mf is not None:
        a = _layout.arrange(a, mf, False)
    return _finish(a, requires_grad, device)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    if dtype is None:
        npd = _infer_np_dtype(fill_value)
    else:
        npd = _dt.to_numpy_dtype(dtype)
    return _finish(np.full(check_nonneg(size_args((size,))), fill_value, npd), requires_grad,
                   device)


def _like_layout(a, input, memory_format, fn):
    """a (C order) in the memory format a *_like result takes: torch's default preserve_format
    follows a channels_last input; contiguous_format / channels_last(_3d) as asked."""
    from .. import _layout
    mf = _layout.check(memory_format, fn)
    if mf is None or mf is _layout.preserve_format:
        f = _layout.dense_format(input._data)
        return a if f is None else _layout.arrange(a, f, False)
    return _layout.arrange(a, mf, False)


def _like(input, dtype):
    return input._data.dtype if dtype is None else _dt.to_numpy_dtype(dtype)


def zeros_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _finish(_like_layout(np.zeros(input._data.shape, _like(input, dtype)), input,
                                memory_format, "zeros_like"), requires_grad,
                   input.device if device is None else device)


def ones_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _finish(_like_layout(np.ones(input._data.shape, _like(input, dtype)), input,
                                memory_format, "ones_like"), requires_grad,
                   input.device if device is None else device)


def empty_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _finish(_like_layout(np.empty(input._data.shape, _like(input, dtype)), input,
                                memory_format, "empty_like"), requires_grad,
                   input.device if device is None else device)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False,
              memory_format=None):
    return _finish(_like_layout(np.full(input._data.shape, fill_value, _like(input, dtype)), input,
                                memory_format, "full_like"), requires_grad,
                   input.device if device is None else device)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    if n < 0 or (m is not None and m < 0):
        raise RuntimeError("n must be greater or equal to 0, got %d" % (n if n < 0 else m))
    return _finish(np.eye(n, m, dtype=_dtype_or_default(dtype)), requires_grad, device)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    start, end, step = vals
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and larger bound inconsistent with step sign")
    if dtype is None:
        is_int = builtins.all(isinstance(v, (builtins.int, np.integer)) for v in vals)
        npd = np.dtype(np.int64) if is_int else _dt.get_default_dtype().np
    else:
        npd = _dt.to_numpy_dtype(dtype)
    n = builtins.max(0, math.ceil((end - start) / step))
    arr = (start + step * np.arange(n, dtype=np.float64)).astype(npd) if _dt.is_floating(npd) \
        else np.arange(start, end, step).astype(npd)
    return _finish(arr, requires_grad, device)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return _finish(np.linspace(start, end, steps, dtype=np.float64).astype(
        _dtype_or_default(dtype)), requires_grad, device)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False):
    return _finish(np.logspace(start, end, steps, base=base).astype(_dtype_or_default(dtype)),
                   requires_grad, device)


def scalar_tensor(s, *, dtype=None, device=None, requires_grad=False):
    return _finish(np.asarray(s, _dtype_or_default(dtype)), requires_grad, device)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(input):
    return input._data.size
