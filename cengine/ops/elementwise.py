"""Elementwise ops with autograd: arithmetic, unary math, clamp, maximum/minimum, where,
comparisons, casts, and the in-place variants (version-counted)."""
import builtins

import numpy as np

from .. import _device as _dv

from .. import dtypes as _dt
from .. import _C
from ..autograd import grad_mode as _gm
from ..autograd.function import Function
from ..tensor import Tensor, _wrap
from ._util import unbroadcast, scalar_value, float_dtype_for, arith as _arith, write_out
from .._fpe import quiet_enter as _quiet_enter, quiet_exit as _quiet_exit
from . import _half

_HALF = _dt._HALF_NP
_F32 = np.dtype(np.float32)

__all__ = ["add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "pow",
           "neg", "negative", "exp", "log", "log2", "log10", "log1p", "expm1", "sqrt", "rsqrt",
           "abs", "sin", "cos", "tan", "square", "reciprocal", "sign", "floor", "ceil", "round",
           "trunc", "clamp", "clip", "maximum", "minimum", "where", "eq", "ne", "lt", "le", "gt",
           "ge", "equal", "allclose", "isclose", "isnan", "isinf", "isfinite", "logical_and",
           "logical_or", "logical_not", "logical_xor", "remainder", "fmod", "floor_divide",
           "lerp", "addcmul", "addcdiv"]


# ---------------------------------------------------------------------------- operand coercion
def _operand(x):
    """Tensor stays; python/numpy scalars become python numbers; arrays/lists become Tensors."""
    if isinstance(x, Tensor):
        return x
    s = scalar_value(x)
    if s is not None:
        return s
    from .creation import tensor
    return tensor(x)


def _binary(a, b, float_result=False):
    """Coerce a binary op's operands to torch's result dtype. Returns (a, b) where each is a
    Tensor or a python scalar, cast (differentiably) to the common dtype."""
    a = _operand(a)
    b = _operand(b)
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb and _dv._CP[0] is not None:    # a cuda array has existed: one device
        a, b = _cpu_scalar_to(a, b._data), _cpu_scalar_to(b, a._data)
        _dv.check_same_device((a._data, b._data))
    if ta and tb and a._data.shape != b._data.shape:
        _check_broadcast(a._data.shape, b._data.shape)
    if ta and tb and a._data.dtype is b._data.dtype and not float_result:
        return a, b
    rt = _dt.result_type(a._data if ta else a, b._data if tb else b)
    if float_result and not _dt.is_floating(rt):
        rt = _dt.get_default_dtype().np
    if ta and a._data.dtype != rt:
        a = cast(a, rt)
    if tb and b._data.dtype != rt:
        b = cast(b, rt)
    return a, b


def _cpu_scalar_to(x, ref):
    """x moved (differentiably: its gradient comes back to the CPU) to the cuda device of
    array `ref` when x is a 0-d CPU Tensor and ref a CuPy array, else x itself. torch lets a
    CPU scalar tensor be an operand of an elementwise op on cuda tensors (cuda_t * torch.tensor(
    2.)); any other CPU tensor mixed with a cuda one is refused by check_same_device."""
    if isinstance(x, Tensor) and type(x._data) is np.ndarray and x._data.ndim == 0 and \
            _dv.is_cuda_array(ref):
        from ..tensor import device
        return x.to(device("cuda", _dv.device_index(ref)))
    return x


def _check_broadcast(sa, sb):
    """torch's error for shapes that do not broadcast (numpy's would be a ValueError)."""
    for x, y in zip(reversed(sa), reversed(sb)):
        if x != y and x != 1 and y != 1:
            n = builtins.max(len(sa), len(sb))
            pa, pb = (1,) * (n - len(sa)) + tuple(sa), (1,) * (n - len(sb)) + tuple(sb)
            i = builtins.max(k for k in range(n) if pa[k] != pb[k] and 1 not in (pa[k], pb[k]))
            raise RuntimeError("The size of tensor a (%d) must match the size of tensor b (%d) "
                               "at non-singleton dimension %d" % (pa[i], pb[i], i))


def _shape(x):
    return x.shape if isinstance(x, np.ndarray) or _dv.is_cuda_array(x) else ()


# ---------------------------------------------------------------------------- casts
class Cast(Function):
    @staticmethod
    def forward(ctx, x, dt):
        ctx.src = x.dtype
        return _dt.astype(x, dt)

    @staticmethod
    def backward(ctx, g):
        return (g if g.dtype == ctx.src else _dt.astype(g, ctx.src)), None


def cast(t, np_dtype):
    return Cast.apply(t, np.dtype(np_dtype))


# ---------------------------------------------------------------------------- arithmetic
def _add_sub_forward(ctx, name, op, a, b, alpha):
    """a + alpha * b (op np.add) or a - alpha * b (np.subtract)"""
    ctx.sa, ctx.sb, ctx.alpha = _shape(a), _shape(b), alpha
    return _arith(name, op, a, b) if alpha == 1 else op(a, b * alpha)


def _add_sub_backward(ctx, g, sign):
    """gradients of a (+ or -, by sign) alpha * b"""
    n = ctx.needs_input_grad
    ga = unbroadcast(g, ctx.sa) if n[0] else None
    gb = None
    if n[1]:
        gb = unbroadcast((g if sign > 0 else -g) if ctx.alpha == 1 else g * (sign * ctx.alpha),
                         ctx.sb)
    return ga, gb, None


class Add(Function):
    @staticmethod
    def forward(ctx, a, b, alpha=1):
        return _add_sub_forward(ctx, "add", np.add, a, b, alpha)

    @staticmethod
    def backward(ctx, g):
        return _add_sub_backward(ctx, g, 1)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b, alpha=1):
        return _add_sub_forward(ctx, "sub", np.subtract, a, b, alpha)

    @staticmethod
    def backward(ctx, g):
        return _add_sub_backward(ctx, g, -1)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        n = ctx.needs_input_grad
        # save only what a gradient needs (x * 2 keeps no reference to x, as in torch)
        ctx.save_for_backward(a if n[1] else None, b if n[0] else None)
        ctx.sa, ctx.sb = _shape(a), _shape(b)
        return _arith("mul", np.multiply, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        ga = unbroadcast(_arith("mul", np.multiply, g, b), ctx.sa) if n[0] else None
        gb = unbroadcast(_arith("mul", np.multiply, g, a), ctx.sb) if n[1] else None
        return ga, gb


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        ctx.sa, ctx.sb = _shape(a), _shape(b)
        return _arith("div", np.true_divide, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        ga = unbroadcast(g / b, ctx.sa) if n[0] else None
        gb = unbroadcast(-g * a / (b * b), ctx.sb) if n[1] else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        y = np.power(a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, g):
        a, b, y = ctx.saved_tensors
        n = ctx.needs_input_grad
        ga = gb = None
        if n[0]:
            if isinstance(b, (builtins.int, builtins.float)) and b == 2:
                ga = g * (2 * a)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    d = b * np.power(a, b - 1)
                # torch: d/da a**0 is 0 even at a == 0
                d = np.where(_dv.asarray(b) == 0, 0, d) if np.any(_dv.asarray(b) == 0) else d
                ga = unbroadcast(g * d, _shape(a))
        if n[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                la = np.log(a)
            d = np.where((_dv.asarray(a, like=y) == 0) & (_dv.asarray(b, like=y) >= 0), 0, y * la)
            gb = unbroadcast(g * d, _shape(b))
        return ga, gb


class _RoundedDiv(Function):
    """div(a, b, rounding_mode='floor' | 'trunc'): piecewise constant, so zero gradients (torch
    keeps the result in the graph)."""

    @staticmethod
    def forward(ctx, a, b, floor):
        ctx.sa, ctx.sb = _shape(a), _shape(b)
        with np.errstate(divide="ignore", invalid="ignore"):
            if floor:
                return _dv.asarray(np.floor_divide(a, b))
            r = np.trunc(np.true_divide(a, b))
        return _dv.asarray(r).astype(np.result_type(a, b), copy=False)

    @staticmethod
    def backward(ctx, g):
        n = ctx.needs_input_grad
        return (_dv.zeros(g, ctx.sa, g.dtype) if n[0] else None,
                _dv.zeros(g, ctx.sb, g.dtype) if n[1] else None, None)


_DivRounded = type("Div", (_RoundedDiv,), {})


class _AddF32BF16(Function):
    """a + b for a float32 a and a bfloat16 b of one shape (bfloat16 autocast's residual adds):
    one pass reading b as it is (src_c/ewise_half.c), the bits of casting b to float32 first;
    b's gradient is the float32 gradient cast to bfloat16, as the cast's backward would give"""

    @staticmethod
    def forward(ctx, a, b):
        return _C.ewise_f32_bf16("add", a, b)

    @staticmethod
    def backward(ctx, g):
        n = ctx.needs_input_grad
        return (g if n[0] else None), (_dt.astype(g, _dt.BF16_NP) if n[1] else None)


def _mixed_add(a, b):
    """the (float32, bfloat16) operands of a + b for _AddF32BF16, else None"""
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        return None
    x, y = a._data, b._data
    if x.dtype == _dt.BF16_NP and y.dtype == _F32:
        a, b, x, y = b, a, y, x
    if (x.dtype == _F32 and y.dtype == _dt.BF16_NP and x.shape == y.shape
            and x.size >= (1 << 12) and x.flags.c_contiguous and y.flags.c_contiguous
            and x.flags.aligned and y.flags.aligned):
        return a, b
    return None


def add(input, other, *, alpha=1, out=None):
    if alpha == 1 and out is None:
        m = _mixed_add(input, other)
        if m is not None:
            return _AddF32BF16.apply(*m)
    a, b = _binary(input, other)
    return _out(Add.apply(a, b, alpha), out)


def sub(input, other, *, alpha=1, out=None):
    a, b = _binary(input, other)
    if isinstance(a, Tensor) and a._data.dtype.kind == "b" and isinstance(b, Tensor) and \
            b._data.dtype.kind == "b":
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    if isinstance(a, Tensor):
        return _out(Sub.apply(a, b, alpha), out)
    return _out(Add.apply(Neg.apply(b) if alpha == 1 else Mul.apply(b, -alpha), a, 1), out)


def mul(input, other, *, out=None):
    a, b = _binary(input, other)
    if not isinstance(a, Tensor):
        a, b = b, a
    return _out(Mul.apply(a, b), out)


def div(input, other, *, rounding_mode=None, out=None):
    if rounding_mode is not None:
        if rounding_mode not in ("floor", "trunc"):
            raise ValueError("div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                             "but found '%s'" % rounding_mode)
        a, b = _binary(input, other)
        _int_zero_division(a, b)
        if not isinstance(a, Tensor):
            a = _wrap(_dv.asarray(a, b._data.dtype, b._data))
        return _out(_DivRounded.apply(a, b, rounding_mode == "floor"), out)
    a, b = _binary(input, other, float_result=True)
    if not isinstance(a, Tensor):
        return _out(Mul.apply(Reciprocal.apply(b), a), out)
    return _out(Div.apply(a, b), out)


def pow(input, exponent, *, out=None):
    a, b = _binary(input, exponent)
    if not isinstance(a, Tensor):  # scalar ** tensor
        if isinstance(a, builtins.int) and _dt.is_floating(b._data.dtype):
            a = builtins.float(a)
        return _out(Pow.apply(_dv.asarray(a, b._data.dtype, b._data), b), out)
    if isinstance(b, builtins.int) and a._data.dtype.kind in "iu" and b < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return _out(Pow.apply(a, b), out)


_out = write_out   # (kept by this name: shape.py's cat and the ops here call it)


subtract, multiply, divide, true_divide = sub, mul, div, div


# ---------------------------------------------------------------------------- unary
def _unary(name, f, df, float_only=True, uses_x=True, doc=None):
    """Make a Function + functional for y = f(x) with dy/dx = df(x, y). Only y is saved when the
    derivative does not need x (so in-place changes of x after the op stay legal, as in torch)."""

    def forward(ctx, x):
        if x.dtype in _HALF:    # bfloat16/float16: computed in float32, rounded once
            y = _dt.astype(f(_dt.astype(x, _F32)), x.dtype)
        else:
            y = f(x)
        ctx.save_for_backward(x, y) if uses_x else ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        saved = ctx.saved_tensors
        x, y = saved if uses_x else (None, saved[0])
        if g.dtype in _HALF:
            hd = g.dtype
            g, y = _dt.astype(g, _F32), _dt.astype(y, _F32)
            x = None if x is None else _dt.astype(x, _F32)
            return _dt.astype(g * df(x, y), hd)
        return g * df(x, y)

    cls = type(name, (Function,), {"forward": staticmethod(forward),
                                   "backward": staticmethod(backward)})

    def op(input, *, out=None):
        if not isinstance(input, Tensor):
            input = _operand(input)
            if not isinstance(input, Tensor):
                from .creation import tensor
                input = tensor(input)
        if float_only and not _dt.is_floating(input._data.dtype):
            input = cast(input, _dt.get_default_dtype().np)
        return _out(cls.apply(input), out)

    op.__name__ = name.lower()
    op.__doc__ = doc or "Elementwise %s with autograd." % name.lower()
    return cls, op


def _rsqrt_d(x, y):
    return -0.5 * y * y * y


Exp, exp = _unary("Exp", np.exp, lambda x, y: y, uses_x=False)
Expm1, expm1 = _unary("Expm1", np.expm1, lambda x, y: y + 1, uses_x=False)
Log, log = _unary("Log", np.log, lambda x, y: 1.0 / x)
Log2, log2 = _unary("Log2", np.log2, lambda x, y: 1.0 / (x * np.log(2.0)).astype(x.dtype))
Log10, log10 = _unary("Log10", np.log10, lambda x, y: 1.0 / (x * np.log(10.0)).astype(x.dtype))
Log1p, log1p = _unary("Log1p", np.log1p, lambda x, y: 1.0 / (1 + x))
Sqrt, sqrt = _unary("Sqrt", np.sqrt, lambda x, y: 0.5 / y, uses_x=False)
Rsqrt, rsqrt = _unary("Rsqrt", lambda x: 1.0 / np.sqrt(x), _rsqrt_d, uses_x=False)
Sin, sin = _unary("Sin", np.sin, lambda x, y: np.cos(x))
Cos, cos = _unary("Cos", np.cos, lambda x, y: -np.sin(x))
Tan, tan = _unary("Tan", np.tan, lambda x, y: 1 + y * y, uses_x=False)
Reciprocal, reciprocal = _unary("Reciprocal", lambda x: 1.0 / x, lambda x, y: -y * y, uses_x=False)
Abs, _abs_float = _unary("Abs", np.abs, lambda x, y: _sign(x), float_only=False)
Square, _square = _unary("Square", np.square, lambda x, y: 2 * x, float_only=False)


def abs(input, *, out=None):
    return _abs_float(input, out=out)


def square(input):
    return _square(input)


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return np.negative(x)

    @staticmethod
    def backward(ctx, g):
        return -g


def neg(input):
    if input._data.dtype.kind == "b":
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you "
                           "are trying to invert a mask, use the `~` or `logical_not()` operator "
                           "instead.")
    return Neg.apply(input)


negative = neg


class _Piecewise(Function):
    """y = f(x) for a piecewise-constant f (floor, ceil, trunc, round, sign): the result stays in
    the graph, as in torch, with a zero gradient."""

    @staticmethod
    def forward(ctx, x, f):
        ctx.shape = x.shape
        return _dv.asarray(f(x))

    @staticmethod
    def backward(ctx, g):
        return _dv.zeros(g, ctx.shape, g.dtype), None


def _zero_grad_unary(npf, name):
    cls = type(name.capitalize(), (_Piecewise,), {})   # grad_fn FloorBackward0, ...

    def op(input):
        if not isinstance(input, Tensor):
            raise TypeError("%s(): argument 'input' must be Tensor, not %s"
                            % (name, type(input).__name__))
        return cls.apply(input, npf)
    op.__name__ = name
    op.__doc__ = "Elementwise %s; its gradient is zero (torch's convention)." % name
    return op


def _sign(x):
    """torch's sign: 0 for NaN (numpy's is NaN)"""
    r = np.sign(x)
    if _dt.is_floating(r.dtype):
        r = np.where(np.isnan(r), r.dtype.type(0), r)
    return r


sign = _zero_grad_unary(_sign, "sign")
floor = _zero_grad_unary(np.floor, "floor")
ceil = _zero_grad_unary(np.ceil, "ceil")
trunc = _zero_grad_unary(np.trunc, "trunc")


_Round = type("Round", (_Piecewise,), {})


def round(input, *, decimals=0):
    if decimals == 0:
        return _Round.apply(input, np.round)
    return _Round.apply(input, lambda x: np.round(x, decimals))


# ---------------------------------------------------------------------------- clamp, max/min
class Clamp(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        if lo is not None and hi is not None:
            return np.minimum(np.maximum(x, lo), hi)
        return np.maximum(x, lo) if lo is not None else np.minimum(x, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        m = _dv.ones(x, x.shape, bool)
        if ctx.lo is not None:
            m &= x >= ctx.lo
        if ctx.hi is not None:
            m &= x <= ctx.hi
        return np.where(m, g, 0).astype(g.dtype, copy=False), None, None


def clamp(input, min=None, max=None, *, out=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        r = input
        if min is not None:
            r = maximum(r, min if isinstance(min, Tensor) else _full_like_scalar(r, min))
        if max is not None:
            r = minimum(r, max if isinstance(max, Tensor) else _full_like_scalar(r, max))
        return _out(r, out)
    x = input
    if not _dt.is_floating(x._data.dtype) and any(isinstance(v, builtins.float) for v in (min, max)):
        x = cast(x, _dt.get_default_dtype().np)
    return _out(Clamp.apply(x, min, max), out)


clip = clamp


def _full_like_scalar(t, v):
    return _wrap(_dv.asarray(v, t._data.dtype, t._data))


class _MaxMin(Function):
    @staticmethod
    def forward(ctx, a, b, is_max):
        ctx.save_for_backward(a, b)
        ctx.is_max = is_max
        return np.maximum(a, b) if is_max else np.minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        # torch's rule: ties split the gradient; the loser gets none; a NaN on either side
        # (no winner) passes the gradient to both
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        shared = np.where(a == b, g * 0.5, g).astype(g.dtype, copy=False)
        zero = _dv.zeros(g, (), g.dtype)
        ga = gb = None
        if n[0]:
            ga = unbroadcast(np.where((a < b) if ctx.is_max else (a > b), zero, shared), a.shape)
        if n[1]:
            gb = unbroadcast(np.where((a > b) if ctx.is_max else (a < b), zero, shared), b.shape)
        return ga, gb, None


def _tensor_args(name, input, other):
    for pos, (arg, v) in enumerate((("input", input), ("other", other)), 1):
        if not isinstance(v, Tensor):
            raise TypeError("%s(): argument '%s' (position %d) must be Tensor, not %s"
                            % (name, arg, pos, type(v).__name__))


def maximum(input, other, *, out=None):
    _tensor_args("maximum", input, other)
    a, b = _binary(input, other)
    return _out(_MaxMin.apply(a, b, True), out)


def minimum(input, other, *, out=None):
    _tensor_args("minimum", input, other)
    a, b = _binary(input, other)
    return _out(_MaxMin.apply(a, b, False), out)


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.sa, ctx.sb = _shape(a), _shape(b)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        n = ctx.needs_input_grad
        z = _dv.zeros(g, (), g.dtype)
        ga = unbroadcast(np.where(cond, g, z), ctx.sa) if n[1] else None
        gb = unbroadcast(np.where(cond, z, g), ctx.sb) if n[2] else None
        return None, ga, gb


def where(condition, input=None, other=None):
    if input is None and other is None:
        from .index import nonzero
        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor):
        from .creation import tensor
        condition = tensor(condition)
    if condition._data.dtype.kind != "b":
        raise RuntimeError("where expected condition to be a boolean tensor, but got a tensor "
                           "with dtype %s" % condition.dtype.name.capitalize())
    a, b = _operand(input), _operand(other)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        # two python scalars: torch's scalar categories, bool < int < float (default dtype)
        cat = builtins.max(_scalar_cat(a), _scalar_cat(b))
        npd = (np.dtype(np.bool_), np.dtype(np.int64), _dt.get_default_dtype().np)[cat]
        a = _wrap(_dv.asarray(a, npd, condition._data))
    a, b = _binary(a, b)
    return Where.apply(condition, a, b)


def _scalar_cat(s):
    if isinstance(s, (builtins.bool, np.bool_)):
        return 0
    if isinstance(s, (builtins.int, np.integer)):
        return 1
    return 2


# ---------------------------------------------------------------------------- comparisons
def _cmp(npf, name):
    def op(input, other, *, out=None):
        a, b = _binary(input, other)
        ad = a._data if isinstance(a, Tensor) else a
        bd = b._data if isinstance(b, Tensor) else b
        return _out(_wrap(_dv.asarray(npf(ad, bd))), out)
    op.__name__ = name
    return op


eq = _cmp(np.equal, "eq")
ne = _cmp(np.not_equal, "ne")
lt = _cmp(np.less, "lt")
le = _cmp(np.less_equal, "le")
gt = _cmp(np.greater, "gt")
ge = _cmp(np.greater_equal, "ge")
logical_and = _cmp(np.logical_and, "logical_and")
logical_or = _cmp(np.logical_or, "logical_or")
logical_xor = _cmp(np.logical_xor, "logical_xor")
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne


def logical_not(input):
    return _wrap(np.logical_not(input._data))


def isnan(input):
    return _wrap(np.isnan(input._data))


def isinf(input):
    return _wrap(np.isinf(input._data))


def isfinite(input):
    return _wrap(np.isfinite(input._data))


def equal(input, other):
    return input._data.shape == other._data.shape and builtins.bool(np.all(input._data == other._data))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _wrap(np.isclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return builtins.bool(np.allclose(input._data, other._data, rtol=rtol, atol=atol,
                                     equal_nan=equal_nan))


def _int_zero_division(a, b):
    """torch raises for an integer division by zero (numpy would return 0 with a warning).
    a, b: operands after _binary (one common dtype)."""
    t = a if isinstance(a, Tensor) else b
    if t._data.dtype.kind in "iub":
        bd = b._data if isinstance(b, Tensor) else b
        if np.any(_dv.asarray(bd) == 0):
            raise RuntimeError("ZeroDivisionError")


class _Mod(Function):
    """remainder (sign of the divisor, floor rounding) or fmod (sign of the dividend, truncation):
    d/da = 1, d/db = -round(a / b) with the op's rounding."""

    @staticmethod
    def forward(ctx, a, b, floor):
        n = ctx.needs_input_grad
        ctx.save_for_backward(a if n[1] else None, b if n[1] else None)
        ctx.sa, ctx.sb, ctx.floor = _shape(a), _shape(b), floor
        with np.errstate(divide="ignore", invalid="ignore"):
            return _dv.asarray((np.remainder if floor else np.fmod)(a, b))

    @staticmethod
    def backward(ctx, g):
        n = ctx.needs_input_grad
        ga = unbroadcast(g, ctx.sa) if n[0] else None
        gb = None
        if n[1]:
            a, b = ctx.saved_tensors
            with np.errstate(divide="ignore", invalid="ignore"):
                # torch's rounded divisions: floor division is nan for an infinite a
                q = np.floor_divide(a, b) if ctx.floor else np.trunc(np.true_divide(a, b))
            gb = unbroadcast((-g * q).astype(g.dtype, copy=False), ctx.sb)
        return ga, gb, None


_Remainder = type("Remainder", (_Mod,), {})
_Fmod = type("Fmod", (_Mod,), {})


def _mod(input, other, floor):
    a, b = _binary(input, other)
    _int_zero_division(a, b)
    if not isinstance(a, Tensor):
        a = _wrap(_dv.asarray(a, b._data.dtype, b._data))
    return (_Remainder if floor else _Fmod).apply(a, b, floor)


def remainder(input, other):
    """Python's modulus: the result has the sign of `other` (a - floor(a / b) * b)."""
    return _mod(input, other, True)


def fmod(input, other):
    """C's fmod: the result has the sign of `input` (a - trunc(a / b) * b)."""
    return _mod(input, other, False)


def floor_divide(input, other):
    return div(input, other, rounding_mode="floor")


def lerp(input, end, weight):
    if _half.any_half(input, end, weight):    # computed in float32, rounded once
        return _half.via_f32(lerp, input, end, weight)
    return add(input, mul(weight, sub(end, input)))


def addcmul(input, tensor1, tensor2, *, value=1):
    if _half.any_half(input, tensor1, tensor2):
        return _half.via_f32(lambda a, b, c: addcmul(a, b, c, value=value), input, tensor1, tensor2)
    return add(input, mul(mul(tensor1, tensor2), value))


def addcdiv(input, tensor1, tensor2, *, value=1):
    if _half.any_half(input, tensor1, tensor2):
        return _half.via_f32(lambda a, b, c: addcdiv(a, b, c, value=value), input, tensor1, tensor2)
    return add(input, mul(div(tensor1, tensor2), value))


# ---------------------------------------------------------------------------- in-place machinery
def _inplace(self, fn, *args):
    """Run out-of-place `fn(self, *args)` and write the result into self's storage.

    Without a graph this is just a write. With one, self takes the new node as its grad_fn (the
    old value lives on as the node's input), and self's version is bumped so a node that saved
    the old value refuses to run backward on the overwritten data."""
    if _gm._state[0] and self.requires_grad and self.grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    res = fn(self, *args)
    if not isinstance(res, Tensor):
        res = _wrap(_dv.asarray(res))
    if res._data.shape != self._data.shape:
        raise RuntimeError("output with shape [%s] doesn't match the broadcast shape [%s]"
                           % (", ".join(map(str, self._data.shape)),
                              ", ".join(map(str, res._data.shape))))
    if res._data.dtype != self._data.dtype:
        if not np.can_cast(res._data.dtype, self._data.dtype, "same_kind"):
            raise RuntimeError("result type %s can't be cast to the desired output type %s"
                               % (_dt._FROM_NP[res._data.dtype].name.capitalize(),
                                  self.dtype.name.capitalize()))
    if not _writeable(self._data):
        raise RuntimeError("unsupported operation: more than one element of the written-to tensor "
                           "refers to a single memory location. Please clone() the tensor before "
                           "performing the operation.")
    if res.grad_fn is not None and res.grad_fn._saved:
        _keep_original_self(res.grad_fn, self._data)
    self._data[...] = res._data
    self._version[0] += 1
    if res.requires_grad:
        self.requires_grad = True
        self.grad_fn = res.grad_fn
        self._output_nr = res._output_nr
    return self


def _keep_original_self(node, data):
    """The node the in-place op records may have saved the value it overwrites (mul_ saves the
    old self for the other operand's gradient): give it a copy, as torch saves the original
    self, instead of failing the version check in backward."""
    saved = list(node._saved)
    copied = set()
    for k, a in enumerate(saved):
        if (isinstance(a, np.ndarray) or _dv.is_cuda_array(a)) and (a is data or np.may_share_memory(a, data)):
            saved[k] = a.copy()
            copied.add(k)
    if copied:
        node._saved = tuple(saved)
        if node._checks:
            node._checks = [c for c in node._checks if c[0] not in copied]


def _writeable(a):
    """Whether an op may write into storage `a` (CuPy arrays have no read-only views)."""
    return type(a) is not np.ndarray or a.flags.writeable


def _np_inplace(self, other, npf):
    """Fast path for t.op_(other) when no graph is recorded: numpy ufunc with out=."""
    if isinstance(other, Tensor):
        if _dv._CP[0] is not None:
            other = _cpu_scalar_to(other, self._data)
            _dv.check_same_device((self._data, other._data))
        other = other._data
    tok = _quiet_enter()
    try:
        npf(self._data, other, out=self._data, casting="same_kind")
    finally:
        _quiet_exit(tok)
    self._version[0] += 1
    return self


def _needs_graph(self, other):
    return _gm._state[0] and (self.requires_grad or (isinstance(other, Tensor) and
                                                    other.requires_grad))


def add_(self, other, *, alpha=1):
    if not _needs_graph(self, other) and alpha == 1 and _writeable(self._data):
        return _np_inplace(self, other, np.add)
    return _inplace(self, lambda s, o: add(s, o, alpha=alpha), other)


def sub_(self, other, *, alpha=1):
    if not _needs_graph(self, other) and alpha == 1 and _writeable(self._data):
        return _np_inplace(self, other, np.subtract)
    return _inplace(self, lambda s, o: sub(s, o, alpha=alpha), other)


def mul_(self, other):
    if not _needs_graph(self, other) and _writeable(self._data):
        return _np_inplace(self, other, np.multiply)
    return _inplace(self, mul, other)


def div_(self, other):
    if not _needs_graph(self, other) and _dt.is_floating(self._data.dtype) and \
            _writeable(self._data):
        return _np_inplace(self, other, np.true_divide)
    return _inplace(self, div, other)


def pow_(self, other):
    return _inplace(self, pow, other)


def clamp_(self, min=None, max=None):
    return _inplace(self, lambda s: clamp(s, min, max))


def zero_(self):
    return fill_(self, 0)


def fill_(self, value):
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            raise RuntimeError("fill_ only supports 0-dimension value tensor but got tensor with "
                               "%d dimensions." % value._data.ndim)
        if _needs_graph(self, value):
            return _inplace(self, lambda s, v: add(mul(s, 0), v.expand(*s.shape)), value)
        value = value.item()
    if _gm._state[0] and self.requires_grad:
        return _inplace(self, lambda s: mul(s, 0) + value)
    self._data.fill(value)
    self._version[0] += 1
    return self


def _copyto(dst, src):
    """dst[...] = src (cast as needed), src moved to dst's device first (copy_ copies across
    devices, as torch's)."""
    if type(dst) is np.ndarray and type(src) is np.ndarray:
        np.copyto(dst, src, casting="unsafe")
        return
    if _dv.is_cuda_array(dst):
        if not _dv.is_cuda_array(src) or src.device.id != dst.device.id:
            src = _dv.to_cuda(src, dst.device.id)
    else:
        src = _dv.to_host(src)
    np.copyto(dst, src, casting="unsafe")


def copy_(self, src, non_blocking=False):
    if not isinstance(src, Tensor):
        from .creation import tensor
        src = tensor(src)
    if _needs_graph(self, src):
        def f(s, o):
            o = cast(o, s._data.dtype) if o._data.dtype != s._data.dtype else o
            return add(mul(s, 0), o.expand(*s.shape) if o.shape != s.shape else o)
        return _inplace(self, f, src)
    try:
        _copyto(self._data, src._data)
    except ValueError:
        raise RuntimeError("The size of tensor a (%s) must match the size of tensor b (%s)"
                           % (list(self._data.shape), list(src._data.shape))) from None
    self._version[0] += 1
    return self


def neg_(self):
    return _inplace(self, neg)


def exp_(self):
    return _inplace(self, exp)


def sqrt_(self):
    return _inplace(self, sqrt)


def abs_(self):
    return _inplace(self, abs)


# ---------------------------------------------------------------- more of torch's elementwise surface
__all__ += ["clamp_min", "clamp_max", "nan_to_num"]


def clamp_min(input, min, *, out=None):
    return clamp(input, min=min, out=out)


def clamp_max(input, max, *, out=None):
    return clamp(input, max=max, out=out)


class NanToNum(Function):
    @staticmethod
    def forward(ctx, x, nan, posinf, neginf):
        fi = np.finfo(x.dtype)
        y = np.nan_to_num(x, nan=nan, posinf=fi.max if posinf is None else posinf,
                          neginf=fi.min if neginf is None else neginf)
        ctx.save_for_backward(x)
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return np.where(np.isfinite(x), g, 0).astype(g.dtype, copy=False)


def nan_to_num(input, nan=0.0, posinf=None, neginf=None, *, out=None):
    """NaN -> nan, +inf -> posinf (default: the dtype's largest value), -inf -> neginf."""
    if not _dt.is_floating(input._data.dtype):
        return _out(input.clone(), out)
    if input._data.dtype in _dt._HALF_NP:   # the half dtype's own limits, computed in float32
        from ._half import via_f32
        fi = np.finfo(np.float16) if input._data.dtype == np.float16 else None
        hi = fi.max if fi is not None else 3.3895313892515355e+38
        return _out(via_f32(lambda t: NanToNum.apply(
            t, float(nan), hi if posinf is None else posinf,
            -hi if neginf is None else neginf), input), out)
    return _out(NanToNum.apply(input, float(nan), posinf, neginf), out)


def clamp_min_(self, min):
    return clamp_(self, min=min)


def clamp_max_(self, max):
    return clamp_(self, max=max)


def nan_to_num_(self, nan=0.0, posinf=None, neginf=None):
    return _inplace(self, lambda s: nan_to_num(s, nan, posinf, neginf))


def lerp_(self, end, weight):
    return _inplace(self, lambda s: lerp(s, end, weight))


def addcmul_(self, tensor1, tensor2, *, value=1):
    return _inplace(self, lambda s: addcmul(s, tensor1, tensor2, value=value))


def addcdiv_(self, tensor1, tensor2, *, value=1):
    return _inplace(self, lambda s: addcdiv(s, tensor1, tensor2, value=value))


def floor_divide_(self, other):
    return _inplace(self, lambda s: floor_divide(s, other))
