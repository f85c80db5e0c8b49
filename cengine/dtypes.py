"""dtype objects (cengine.float32, ...) and torch's type-promotion rules."""
import builtins

import ml_dtypes
import numpy as np

__all__ = ["dtype", "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
           "uint8", "bool", "float", "double", "half", "long", "int", "short",
           "get_default_dtype", "set_default_dtype", "promote_types"]

class dtype:
    """A cengine dtype; `.np` is the numpy dtype used for storage."""
    __slots__ = ("name", "np", "is_floating_point", "is_complex", "is_signed", "itemsize", "_cat",
                 "_torch_type", "_torch_cpp")

    def __init__(self, name, np_dtype, cat, torch_type, torch_cpp):
        self.name = name
        self.np = np.dtype(np_dtype) if np_dtype is not None else None
        self._cat = cat  # 0 bool, 1 integer, 2 floating
        self.is_floating_point = cat == 2
        self.is_complex = False
        self.is_signed = name not in ("bool", "uint8")
        self.itemsize = self.np.itemsize if self.np is not None else 2
        self._torch_type = torch_type
        self._torch_cpp = torch_cpp

    def __repr__(self):
        return "cengine." + self.name

    def __reduce__(self):
        return (_by_name, (self.name,))


# One row per dtype: name, numpy storage, category (0 bool, 1 integer, 2 floating), and the two
# names torch's messages use for it: the scalar type ("Float": FloatTensor, "not implemented for
# 'Float'") and the C++ element type ("expected m1 and m2 to have the same dtype, but got:
# float != double"); see torch_type_name / torch_cpp_name.
float32 = dtype("float32", np.float32, 2, "Float", "float")
float64 = dtype("float64", np.float64, 2, "Double", "double")
float16 = dtype("float16", np.float16, 2, "Half", "c10::Half")
# bfloat16 is stored as ml_dtypes.bfloat16 (the numpy dtype JAX and TensorFlow use; its numpy
# kind is 'V', so code asks is_floating() rather than dtype.kind == "f")
bfloat16 = dtype("bfloat16", ml_dtypes.bfloat16, 2, "BFloat16", "c10::BFloat16")
int64 = dtype("int64", np.int64, 1, "Long", "long int")
int32 = dtype("int32", np.int32, 1, "Int", "int")
int16 = dtype("int16", np.int16, 1, "Short", "short int")
int8 = dtype("int8", np.int8, 1, "Char", "signed char")
uint8 = dtype("uint8", np.uint8, 1, "Byte", "unsigned char")
bool = dtype("bool", np.bool_, 0, "Bool", "bool")  # noqa: A001 - torch spells it cengine.bool
float, double, half = float32, float64, float16  # noqa: A001
long, int, short = int64, int32, int16  # noqa: A001

_ALL = [float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool]
_FROM_NP = {d.np: d for d in _ALL}
_NAMES = {d.name: d for d in _ALL}
BF16_NP = bfloat16.np
_FLOAT_NP = frozenset((float32.np, float64.np, float16.np, BF16_NP))
_HALF_NP = frozenset((float16.np, BF16_NP))


def is_floating(npd):
    """True for the numpy dtype of a cengine floating dtype (float16/32/64, bfloat16): use this,
    not npd.kind == "f", which misses bfloat16 (numpy kind 'V')."""
    return npd in _FLOAT_NP or npd.kind == "f"


def is_half(npd):
    """float16 or bfloat16: stored in 16 bits, computed in float32"""
    return npd in _HALF_NP


_default = [float32]


# numpy dtypes cengine does not store but a kernel's argument check may meet
_NP_ONLY_TORCH_NAMES = {"complex64": ("ComplexFloat", "c10::complex<float>"),
                        "complex128": ("ComplexDouble", "c10::complex<double>")}


def _by_name(name):
    return _NAMES[name]


def _torch_names(d):
    if not isinstance(d, dtype):
        try:
            npd = np.dtype(d)
        except TypeError:
            return (str(d), str(d))
        d = _FROM_NP.get(npd)
        if d is None:
            return _NP_ONLY_TORCH_NAMES.get(npd.name, (npd.name, npd.name))
    return (d._torch_type, d._torch_cpp)


def torch_type_name(d):
    """torch's scalar-type name of a dtype (cengine or numpy): 'Float', 'Long', 'Bool', ..."""
    return _torch_names(d)[0]


def torch_cpp_name(d):
    """torch's C++ element-type name of a dtype (cengine or numpy): 'float', 'long int', ..."""
    return _torch_names(d)[1]


def from_numpy_dtype(npd):
    """cengine dtype of a numpy dtype; TypeError for numpy types cengine cannot hold."""
    try:
        return _FROM_NP[npd]
    except KeyError:
        d = np.dtype(npd)
        if d in _FROM_NP:
            return _FROM_NP[d]
        raise TypeError("can't convert np.ndarray of type numpy.%s. The only supported types are: "
                        "float64, float32, float16, bfloat16, int64, int32, int16, int8, uint8, "
                        "and bool."
                        % d.name) from None


def to_numpy_dtype(d):
    """numpy dtype for a cengine dtype, a numpy dtype, a python type or a string."""
    if isinstance(d, dtype):
        if d.np is None:
            raise TypeError("dtype %r has no storage in this build of cengine yet" % d)
        return d.np
    if d is builtins.bool:
        return np.dtype(np.bool_)
    if d is builtins.float:  # torch: the python type float is float64 whatever the default
        return np.dtype(np.float64)
    if d is builtins.int:
        return np.dtype(np.int64)
    if d is builtins.complex:
        raise TypeError("cengine has no complex dtypes (dtype=complex is complex128 in torch)")
    return from_numpy_dtype(np.dtype(d)).np


def get_default_dtype():
    return _default[0]


def set_default_dtype(d):
    if not isinstance(d, dtype) or not d.is_floating_point or d.np is None:
        raise TypeError("only floating-point types are supported as the default type")
    _default[0] = d


def promote_types(a, b):
    """torch.promote_types for two cengine dtypes."""
    return from_numpy_dtype(_promote_np(a.np, b.np))


def _cat(npd):
    k = npd.kind
    return 2 if (k == "f" or npd == BF16_NP) else (0 if k == "b" else 1)


def _promote_np(a, b):
    """Promotion of two numpy dtypes of operands with the same priority (torch rules:
    bfloat16 with float16 gives float32)."""
    if a == b:
        return a
    ca, cb = _cat(a), _cat(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def result_type(a, b):
    """numpy dtype of a binary op between operands a, b (ndarrays or python scalars), torch rules:
    dimensioned tensors decide, 0-d tensors only lift the category, python scalars only lift the
    category to the default dtype of that category."""
    a_arr = hasattr(a, "dtype")
    b_arr = hasattr(b, "dtype")
    if a_arr and b_arr:
        da, db = a.dtype, b.dtype
        if da == db:
            return da
        pa, pb = a.ndim > 0, b.ndim > 0
        if pa == pb:
            return _promote_np(da, db)
        hi, lo = (da, db) if pa else (db, da)  # hi: dimensioned operand
        if _cat(lo) > _cat(hi):
            return lo
        return hi
    if a_arr or b_arr:
        arr, s = (a, b) if a_arr else (b, a)
        d = arr.dtype
        cs = 0 if isinstance(s, builtins.bool) else (2 if isinstance(s, builtins.float) else 1)
        if isinstance(s, np.generic):
            cs = _cat(s.dtype)
        if cs > _cat(d):
            return _default[0].np if cs == 2 else np.dtype(np.int64)
        return d
    raise TypeError("result_type needs at least one array")


_F32_NP = np.dtype(np.float32)
_F16_NP = np.dtype(np.float16)


def astype(a, npd):
    """a (ndarray) converted to numpy dtype npd as torch's Tensor.to() does: conversions to and
    from bfloat16/float16 go through float32 on the SIMD cast kernels (round to nearest even,
    torch's NaN bits); float64 and integers reach a half type via float32, as in torch. Always
    a new array."""
    npd = np.dtype(npd)
    src = a.dtype
    if npd not in _HALF_NP and src not in _HALF_NP or type(a) is not np.ndarray:
        return a.astype(npd)       # (a CuPy array: its own cast kernels)
    from . import _C
    if npd in _HALF_NP:
        if src in _HALF_NP:
            a = astype(a, _F32_NP)
        elif src != _F32_NP:
            a = a.astype(_F32_NP)
        out = np.empty(a.shape, npd)
        (_C.cast_f32_to_bf16 if npd == BF16_NP else _C.cast_f32_to_f16)(a, out=out)
        return out
    f = np.empty(a.shape, _F32_NP)
    (_C.cast_bf16_to_f32 if src == BF16_NP else _C.cast_f16_to_f32)(a, out=f)
    return f if npd == _F32_NP else f.astype(npd)
