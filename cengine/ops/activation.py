"""Elementwise activations with autograd: relu, leaky_relu, sigmoid, tanh, silu, gelu (exact and
tanh approximation), softplus. Each is one Function whose forward and backward are single fused
passes (`_forward`/`_backward`)."""
import math

import numpy as np

from ..autograd.function import Function
from ..tensor import _install
from .. import dtypes as _dt

__all__ = ["relu", "sigmoid", "tanh", "silu", "gelu", "leaky_relu", "softplus"]


def _sigmoid(x):
    # exp(-|x|) never overflows; the two branches join at 0
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _erf(x):
    from math import erf
    return np.vectorize(erf, otypes=[x.dtype])(x) if x.size else x.copy()


_K0 = math.sqrt(2.0 / math.pi)


def _forward(kind, x, p):
    t = x.dtype.type
    if kind == "relu":
        return np.maximum(x, t(0))
    if kind == "leaky_relu":
        return np.where(x > 0, x, x * t(p))
    if kind == "sigmoid":
        return _sigmoid(x)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "silu":
        return x * _sigmoid(x)
    if kind == "gelu":
        return (t(0.5) * x * (t(1) + _erf(x * t(1 / math.sqrt(2))))).astype(x.dtype, copy=False)
    if kind == "gelu_tanh":
        return (t(0.5) * x * (t(1) + np.tanh(t(_K0) * (x + t(0.044715) * x * x * x))))
    if kind == "softplus":
        beta, thr = p
        bx = x * t(beta)
        with np.errstate(over="ignore"):
            y = np.log1p(np.exp(-np.abs(bx))) / t(beta) + np.maximum(x, t(0))
        return np.where(bx > thr, x, y).astype(x.dtype, copy=False)
    raise KeyError(kind)


def _backward(kind, x, y, g, p):
    t = x.dtype.type
    if kind == "relu":
        return np.where(x > 0, g, t(0))
    if kind == "leaky_relu":
        return np.where(x > 0, g, g * t(p))
    if kind == "sigmoid":
        return g * y * (t(1) - y)
    if kind == "tanh":
        return g * (t(1) - y * y)
    if kind == "silu":
        s = _sigmoid(x)
        return g * s * (t(1) + x * (t(1) - s))
    if kind == "gelu":
        cdf = t(0.5) * (t(1) + _erf(x * t(1 / math.sqrt(2))))
        pdf = np.exp(t(-0.5) * x * x) * t(1 / math.sqrt(2 * math.pi))
        return (g * (cdf + x * pdf)).astype(x.dtype, copy=False)
    if kind == "gelu_tanh":
        inner = t(_K0) * (x + t(0.044715) * x * x * x)
        th = np.tanh(inner)
        d_inner = t(_K0) * (t(1) + t(3 * 0.044715) * x * x)
        return g * (t(0.5) * (t(1) + th) + t(0.5) * x * (t(1) - th * th) * d_inner)
    if kind == "softplus":
        beta, thr = p
        bx = x * t(beta)
        return np.where(bx > thr, g, g * _sigmoid(bx)).astype(x.dtype, copy=False)
    raise KeyError(kind)


class Activation(Function):
    @staticmethod
    def forward(ctx, x, kind, p):
        y = _forward(kind, x, p)
        ctx.save_for_backward(x, y)
        ctx.kind, ctx.p = kind, p
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return _backward(ctx.kind, x, y, g, ctx.p), None, None


def _act(input, kind, p=None):
    if input._data.dtype.kind != "f":
        if kind == "relu":
            return _wrap_relu_int(input)
        input = input.to(_dt.get_default_dtype())
    return Activation.apply(input, kind, p)


def _wrap_relu_int(input):
    from ..tensor import _wrap
    return _wrap(np.maximum(input._data, 0))


def relu(input):
    return _act(input, "relu")


def leaky_relu(input, negative_slope=0.01):
    return _act(input, "leaky_relu", float(negative_slope))


def sigmoid(input):
    return _act(input, "sigmoid")


def tanh(input):
    return _act(input, "tanh")


def silu(input):
    return _act(input, "silu")


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return _act(input, "gelu" if approximate == "none" else "gelu_tanh")


def softplus(input, beta=1.0, threshold=20.0):
    return _act(input, "softplus", (float(beta), float(threshold)))


for _name, _fn in {"relu": relu, "sigmoid": sigmoid, "tanh": tanh}.items():
    _install(_name, _fn)
