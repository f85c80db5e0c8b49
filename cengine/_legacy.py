"""torch's legacy constructors: Tensor(...), FloatTensor, DoubleTensor, HalfTensor, LongTensor,
IntTensor, ShortTensor, CharTensor, ByteTensor, BoolTensor.

    ce.Tensor(2, 3)          uninitialised (2, 3) tensor of the default dtype (sizes form)
    ce.Tensor(ce.Size(s))    the same from a Size
    ce.Tensor([1, 2])        data form: always the constructor's dtype (float32 here)
    ce.LongTensor(t)         an alias of t (shared storage) when t has that dtype, else TypeError
    isinstance(x, ce.FloatTensor)   True for float32 tensors
"""
import builtins

import numpy as np

from . import dtypes as _dt

__all__ = ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor",
           "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor", "BFloat16Tensor"]


def _is_int(v):
    return isinstance(v, (builtins.int, np.integer)) and not isinstance(v, (builtins.bool,
                                                                            np.bool_))


def legacy_array(name, args, npd, device):
    """ndarray (or ("alias", tensor)) for the legacy constructor `name` with storage dtype npd
    (None: the default dtype, read at call time)."""
    from .tensor import Tensor, Size, device as _device
    if device is not None:
        d = device if isinstance(device, _device) else _device(device)
        if d.type != "cpu":    # as torch: the legacy constructors make CPU tensors only
            raise RuntimeError("legacy constructor expects device type: cpu but device type: "
                               "%s was passed" % d.type)
    if npd is None:
        npd = _dt.get_default_dtype().np
    if not args:
        return np.empty((0,), npd)
    if len(args) == 1:
        a = args[0]
        if isinstance(a, Tensor):
            if name != "Tensor" and a._data.dtype != npd:
                raise TypeError("expected %s (got %s)" % (_dt._FROM_NP[npd], a.dtype))
            return ("alias", a)
        if isinstance(a, Size):
            return _sized(a, npd)
        if _is_int(a):
            return _sized((a,), npd)
        if isinstance(a, (builtins.float, builtins.bool, builtins.complex, np.generic)):
            raise TypeError("new(): data must be a sequence (got %s)" % type(a).__name__)
        if isinstance(a, (str, bytes)):
            raise TypeError("new(): invalid data type '%s'" % type(a).__name__)
        from .ops.creation import _unwrap_nested
        try:
            with np.errstate(all="ignore"):
                arr = np.array(_unwrap_nested(a) if not isinstance(a, np.ndarray) else a)
            if arr.dtype == object:
                raise TypeError("new(): invalid data type 'object'")
            if npd.kind in "iu" and arr.dtype.kind in "iub" and arr.size:
                info = np.iinfo(npd)
                if arr.min() < info.min or arr.max() > info.max:
                    raise RuntimeError("value cannot be converted to type %s without overflow"
                                       % npd.name)
            with np.errstate(all="ignore"):
                return np.array(arr, dtype=npd)
        except ValueError as e:
            raise ValueError("expected sequence of equal lengths: %s" % e) from None
    for i, s in enumerate(args):
        if not _is_int(s):
            raise TypeError("new(): argument 'size' failed to unpack the object at pos %d with "
                            "error \"type must be tuple of ints,but got %s\""
                            % (i + 1, type(s).__name__))
    return _sized(args, npd)


def _sized(shape, npd):
    shape = tuple(builtins.int(s) for s in shape)
    for s in shape:
        if s < 0:
            raise RuntimeError("Trying to create tensor with negative dimension %d: [%s]"
                               % (s, ", ".join(map(str, shape))))
    return np.empty(shape, npd)


def _finish(res):
    from .tensor import _wrap
    if isinstance(res, tuple):
        src = res[1]
        t = _wrap(src._data)
        t._version = src._version
        return t
    return _wrap(res)


class _LegacyType(type):
    """Metaclass of FloatTensor & co: calling builds a cengine Tensor of that dtype, isinstance
    checks the dtype."""

    def __instancecheck__(cls, obj):
        from .tensor import Tensor
        return isinstance(obj, Tensor) and obj._data.dtype == cls._np

    def __call__(cls, *args, device=None):
        return _finish(legacy_array(cls.__name__, args, cls._np, device))

    def __repr__(cls):
        return "<class 'cengine.%s'>" % cls.__name__


def _make(d):
    name = _dt.torch_type_name(d) + "Tensor"
    return _LegacyType(name, (), {"_np": d.np, "dtype": d, "__module__": "cengine",
                                  "__doc__": "Legacy constructor of %s tensors: %s(*sizes) or "
                                             "%s(data)." % (d, name, name)})


FloatTensor = _make(_dt.float32)
DoubleTensor = _make(_dt.float64)
HalfTensor = _make(_dt.float16)
LongTensor = _make(_dt.int64)
IntTensor = _make(_dt.int32)
ShortTensor = _make(_dt.int16)
CharTensor = _make(_dt.int8)
ByteTensor = _make(_dt.uint8)
BoolTensor = _make(_dt.bool)
BFloat16Tensor = _make(_dt.bfloat16)
