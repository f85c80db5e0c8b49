"""Elementwise activations with autograd: relu, leaky_relu, sigmoid, tanh, silu, gelu (exact and
tanh approximation), softplus, and their in-place variants. Forward and backward are single fused
passes of the C kernels in src_c/activation.c (SIMD per ISA, OpenMP threads); the backward keeps
only the one array it needs (x, or y for sigmoid/tanh).

In-place variants (relu_, F.relu(x, inplace=True), ...) overwrite the input's storage, bump its
version counter and rebase its history onto the new node (ctx.mark_dirty), as torch does; under
autograd a leaf that requires grad is refused with torch's error."""
import numpy as np

from .. import _C
from ..cuda import _ops as _cu
from .. import dtypes as _dt
from ..autograd import grad_mode as _gm
from ..autograd.function import Function
from ._util import _f

__all__ = ["relu", "sigmoid", "tanh", "silu", "gelu", "leaky_relu", "softplus", "relu_",
           "sigmoid_", "tanh_"]


_USES_Y = {k: _C.act_backward_uses(k) == "y" for k in _C.ACT_KINDS}
_KERNEL_DTYPES = (np.float32, np.float64)
# torch's kernel names in its "not implemented for 'Long'" errors (sigmoid/tanh promote ints)
_TORCH_NAMES = {"leaky_relu": "leaky_relu_cpu", "silu": "silu_cpu", "gelu": "GeluKernelImpl",
                "gelu_tanh": "GeluKernelImpl", "softplus": "softplus_cpu"}
_LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."


_c = _f   # C-contiguous (no copy when already; 0-d stays 0-d)


def _act_forward(kind, x, out, alpha, beta):
    """The C kernel; a CuPy array goes to cengine.cuda's device implementation."""
    if type(x) is not np.ndarray:
        return _cu.act_forward(kind, x, out, alpha, beta)
    return _C.act_forward(kind, x, out, alpha, beta)


def _act_backward(kind, dy, x, y, out, alpha, beta):
    if type(dy) is not np.ndarray:
        return _cu.act_backward(kind, dy, x, y, out, alpha, beta)
    return _C.act_backward(kind, dy, x, y, out, alpha, beta)


class Activation(Function):
    @staticmethod
    def forward(ctx, x, kind, alpha, beta):
        x = _c(x)
        y = _act_forward(kind, x, None, alpha, beta)
        ctx.uses_y = _USES_Y[kind]
        ctx.save_for_backward(y if ctx.uses_y else x)
        ctx.kind, ctx.alpha, ctx.beta = kind, alpha, beta
        return y

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        g = _c(g.astype(s.dtype, copy=False))
        if ctx.uses_y:
            dx = _act_backward(ctx.kind, g, None, s, None, ctx.alpha, ctx.beta)
        else:
            dx = _act_backward(ctx.kind, g, s, None, None, ctx.alpha, ctx.beta)
        return dx, None, None, None


def _from_y(kind, alpha):
    """Whether the derivative can be read off the output (so in-place keeps no copy of x):
    sigmoid/tanh by construction, relu and leaky_relu with a slope >= 0 since y > 0 <=> x > 0."""
    return _USES_Y[kind] or kind == "relu" or (kind == "leaky_relu" and
                                               (0.01 if alpha is None else alpha) >= 0)


class ActivationInplace(Function):
    """x := f(x) in x's own storage (float32/float64). Saves the result when the derivative
    can be read off it, else a private copy of the input."""

    @staticmethod
    def forward(ctx, x, kind, alpha, beta):
        xc = _c(x)
        ctx.kind, ctx.alpha, ctx.beta = kind, alpha, beta
        ctx.from_y = _from_y(kind, alpha)
        need = ctx.needs_input_grad[0]
        if need and not ctx.from_y and kind != "leaky_relu":
            ctx.save_for_backward(xc.copy())           # the old value f' needs
        _act_forward(kind, xc, xc, alpha, beta)
        if xc is not x:
            x[...] = xc
        if need and ctx.from_y:
            ctx.save_for_backward(x if xc is x else xc)   # the result (checked at its version)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        if ctx.kind == "leaky_relu" and not ctx.from_y:
            raise RuntimeError(
                "In-place leakyReLu backward calculation is triggered with a negative slope which "
                "is not supported. This is caused by calling in-place forward function with a "
                "negative slope, please call out-of-place version instead. File an issue at "
                "https://github.com/pytorch/pytorch if you do require supporting in-place leakRelu "
                "backward calculation with negative slope")
        (s,) = ctx.saved_tensors
        s = _c(s)
        g = _c(g.astype(s.dtype, copy=False))
        if _USES_Y[ctx.kind]:
            dx = _act_backward(ctx.kind, g, None, s, None, ctx.alpha, ctx.beta)
        else:   # x, or for relu / leaky_relu (slope >= 0) the output in x's place
            dx = _act_backward(ctx.kind, g, s, None, None, ctx.alpha, ctx.beta)
        return dx, None, None, None


def _not_implemented(kind, input):
    return NotImplementedError("\"%s\" not implemented for '%s'"
                               % (_TORCH_NAMES[kind], _dt.torch_type_name(input.dtype)))


def _act(input, kind, alpha=None, beta=None):
    dt = input._data.dtype
    if dt == np.float32 or dt == np.float64:
        return Activation.apply(input, kind, alpha, beta)
    if _dt.is_floating(dt):   # float16: computed in float32, returned in the input's dtype (torch)
        from .elementwise import cast
        return cast(Activation.apply(cast(input, np.float32), kind, alpha, beta), dt)
    if kind == "relu" and dt.kind in "iu":
        return _wrap_relu_int(input)
    if kind in _TORCH_NAMES:
        raise _not_implemented(kind, input)
    return Activation.apply(input.to(_dt.get_default_dtype()), kind, alpha, beta)


def _wrap_relu_int(input):
    from ..tensor import _wrap
    return _wrap(np.maximum(input._data, 0))


def _check_inplace_target(input):
    if _gm._state[0] and input.requires_grad and input.grad_fn is None:
        raise RuntimeError(_LEAF_INPLACE)
    if type(input._data) is np.ndarray and not input._data.flags.writeable:
        raise RuntimeError("unsupported operation: more than one element of the written-to tensor "
                           "refers to a single memory location. Please clone() the tensor before "
                           "performing the operation.")


def _act_(input, kind, alpha=None, beta=None):
    """In-place activation: input := f(input); returns input."""
    _check_inplace_target(input)
    dt = input._data.dtype
    if dt == np.float32 or dt == np.float64:
        return ActivationInplace.apply(input, kind, alpha, beta)
    if kind == "relu" and dt.kind in "iu":
        np.maximum(input._data, 0, out=input._data)
        input._version[0] += 1
        return input
    if dt.kind in "iub":
        if kind in _TORCH_NAMES:
            raise _not_implemented(kind, input)
        raise RuntimeError("result type Float can't be cast to the desired output type %s"
                           % input.dtype.name.capitalize())
    # float16: f in float32, written back in place
    from .elementwise import _inplace
    return _inplace(input, lambda s: _act(s, kind, alpha, beta))


def relu(input):
    return _act(input, "relu")


def relu_(input):
    return _act_(input, "relu")


def leaky_relu(input, negative_slope=0.01):
    return _act(input, "leaky_relu", float(negative_slope))


def sigmoid(input):
    return _act(input, "sigmoid")


def sigmoid_(input):
    return _act_(input, "sigmoid")


def tanh(input):
    return _act(input, "tanh")


def tanh_(input):
    return _act_(input, "tanh")


def silu(input):
    return _act(input, "silu")


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return _act(input, "gelu" if approximate == "none" else "gelu_tanh")


def softplus(input, beta=1.0, threshold=20.0):
    return _act(input, "softplus", float(beta), float(threshold))


class Hardtanh(Function):
    """clamp(x, min_val, max_val) with torch's hardtanh gradient: g where min < x < max, else 0
    (read off the output, so the in-place form keeps no copy). inplace writes into x."""

    @staticmethod
    def forward(ctx, x, lo, hi, inplace):
        if inplace:
            np.clip(x, lo, hi, out=x)
            y = x
            ctx.mark_dirty(x)
        else:
            y = np.clip(x, lo, hi).astype(x.dtype, copy=False)
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        off = (y <= ctx.lo) | (y >= ctx.hi)
        return np.where(off, 0, g).astype(g.dtype, copy=False), None, None, None


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """Elementwise clamp to [min_val, max_val]; integer tensors stay integer (torch)."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if inplace:
        _check_inplace_target(input)
    dt = input._data.dtype
    lo, hi = min_val, max_val
    if dt.kind in "iu":
        lo, hi = dt.type(int(np.ceil(lo))), dt.type(int(np.floor(hi)))
    elif _dt.is_floating(dt):
        lo, hi = dt.type(lo), dt.type(hi)
    else:
        raise NotImplementedError("\"hardtanh\" not implemented for '%s'" % input.dtype.name)
    return Hardtanh.apply(input, lo, hi, bool(inplace))


class MulMaskInplace(Function):
    """x *= mask in x's storage (in-place dropout); mask is a constant array."""

    @staticmethod
    def forward(ctx, x, mask):
        np.multiply(x, mask, out=x)
        ctx.save_for_backward(mask)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask, None


class WriteBack(Function):
    """x := r in x's storage, for in-place forms of composite ops: r was computed out of place
    (from a clone of x, so its nodes keep the old value privately). The old value of x gets no
    gradient through this node; r gets all of it."""

    @staticmethod
    def forward(ctx, x, r):
        x[...] = r
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return None, g


def inplace_composite(input, fn):
    """input := fn(input) in place, for fn built from several ops; returns input."""
    _check_inplace_target(input)
    if not (_gm._state[0] and input.requires_grad):
        res = fn(input)
        with _gm.no_grad():
            return WriteBack.apply(input, res)
    return WriteBack.apply(input, fn(input.clone()))
