"""Elementwise activations with autograd: relu, leaky_relu, sigmoid, tanh, silu, gelu (exact and
tanh approximation), softplus. Forward and backward are single fused passes of the C kernels in
src_c/activation.c (SIMD per ISA, OpenMP threads); the backward keeps only the one array it
needs (x, or y for sigmoid/tanh)."""
import numpy as np

from .. import _C
from .. import dtypes as _dt
from ..autograd.function import Function
from ..tensor import _install

__all__ = ["relu", "sigmoid", "tanh", "silu", "gelu", "leaky_relu", "softplus"]


_USES_Y = {k: _C.act_backward_uses(k) == "y" for k in _C.ACT_KINDS}


class Activation(Function):
    @staticmethod
    def forward(ctx, x, kind, alpha, beta):
        shape = x.shape
        x = np.ascontiguousarray(x)     # (makes a 0-d input 1-d: the result is reshaped back)
        y = _C.act_forward(kind, x, None, alpha, beta)
        if y.shape != shape:
            x, y = x.reshape(shape), y.reshape(shape)
        ctx.uses_y = _USES_Y[kind]
        ctx.save_for_backward(y if ctx.uses_y else x)
        ctx.kind, ctx.alpha, ctx.beta = kind, alpha, beta
        return y

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        shape = s.shape
        if s.ndim == 0:
            s = s.reshape(1)
        g = np.ascontiguousarray(g, dtype=s.dtype)
        if ctx.uses_y:
            dx = _C.act_backward(ctx.kind, g, None, s, None, ctx.alpha, ctx.beta)
        else:
            dx = _C.act_backward(ctx.kind, g, s, None, None, ctx.alpha, ctx.beta)
        if dx.shape != shape:
            dx = dx.reshape(shape)
        return dx, None, None, None


def _act(input, kind, alpha=None, beta=None):
    dt = input._data.dtype
    if dt != np.float32 and dt != np.float64:
        if kind == "relu" and dt.kind in "iu":
            return _wrap_relu_int(input)
        input = input.to(_dt.get_default_dtype())
    return Activation.apply(input, kind, alpha, beta)


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
    return _act(input, "softplus", float(beta), float(threshold))


for _name, _fn in {"relu": relu, "sigmoid": sigmoid, "tanh": tanh}.items():
    _install(_name, _fn)
