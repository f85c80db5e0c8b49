"""cengine.nn.functional: the stateless layer functions (torch.nn.functional's API).

Hot paths are one autograd Function each whose forward and backward call one kernel entry
(the `_k_*` functions in the "kernels" section): GEMM for linear and attention, the row kernels
for softmax / log_softmax, fused log-softmax + NLL for cross-entropy, LayerNorm / RMSNorm and the
embedding gather / scatter-add. Glue (reshapes, reductions of small vectors, masks) is numpy.
"""
import builtins
import math
import numbers
import warnings

import numpy as np

from .. import _C
from ..autograd.function import Function
from ..autograd import grad_mode as _gm
from ..tensor import Tensor, _wrap
from ..ops._util import wrap_dim, unbroadcast
from ..ops import activation as _act
from ..random import _rng

__all__ = [
    "linear", "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "sigmoid", "tanh",
    "hardtanh_", "elu_",
    "gelu", "silu", "softplus", "elu", "hardtanh", "logsigmoid", "mish", "glu", "softmax",
    "log_softmax", "softmin", "dropout", "layer_norm", "rms_norm", "batch_norm", "embedding",
    "one_hot", "normalize", "pad", "scaled_dot_product_attention", "cross_entropy", "nll_loss",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div",
]
__all__ += ["ctc_loss"]


# ============================================================================ kernels
# One entry per kernel; each takes and returns C-contiguous float32/float64 ndarrays.

def _k_gemm(a, b, c, alpha=1.0, beta=0.0, bias=None):
    """c = alpha * a @ b + beta * c (+ bias (N,) along the columns), 2-D or batched with up to
    two batch dimensions, any strides, on the C GEMM."""
    return _C.gemm(a, b, c, alpha, beta, bias)


def _k_softmax_forward(x, log):
    """x (R,C) -> softmax or log_softmax over the last axis (C kernel)."""
    return _C.softmax_forward(x, log=log)


def _k_softmax_backward(y, dy, log):
    """Jacobian-free: softmax dx = y*(dy - sum(dy*y)); log_softmax dx = dy - exp(y)*sum(dy)."""
    return _C.softmax_backward(y, dy, log=log)


def _k_cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    """logits (N,C), target (N) int64 -> (loss_rows (N), lse (N), wrow (N)), fused C kernel.
    loss_i = (1-eps) w[t](lse - x[t]) + eps/C sum_c w[c](lse - x[c]); 0 on ignored rows;
    wrow_i = weight of row i in a 'mean' reduction (w[t] or 1, 0 when ignored).
    Raises IndexError "Target k is out of bounds." for a bad target."""
    return _C.cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing)


def _k_cross_entropy_backward(logits, target, lse, g, weight, ignore_index, label_smoothing):
    """dlogits (N,C) = g_i [((1-eps) w[t] + eps/C sum(w)) p - eps/C w - (1-eps) w[t] onehot(t)]."""
    return _C.cross_entropy_backward(logits, target, lse, g, weight, ignore_index,
                                     label_smoothing)


def _k_cross_entropy_prob_forward(logits, target, weight, label_smoothing):
    """logits, target (N,C) -> (loss_rows, lse); q = (1-eps) target + eps/C,
    loss_i = -sum_c w[c] q[i,c] (x[i,c] - lse_i)."""
    return _C.cross_entropy_prob_forward(logits, target, weight, label_smoothing)


def _k_cross_entropy_prob_backward(logits, target, lse, g, weight, label_smoothing):
    """dlogits = g_i (p_c sum_k w_k q_k - w_c q_c)."""
    return _C.cross_entropy_prob_backward(logits, target, lse, g, weight, label_smoothing)


def _k_layer_norm_forward(x, w, b, eps):
    """x (R,D) -> (y, mean (R), rstd (R)); y = (x-mean)*rstd*w + b."""
    return _C.layer_norm_forward(x, w, b, eps)


def _k_layer_norm_backward(dy, x, w, mean, rstd, need_x, need_w, need_b):
    """-> (dx, dw, db): dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy*w;
    dw = sum dy*xhat, db = sum dy (None where not needed)."""
    return _C.layer_norm_backward(dy, x, mean, rstd, w, need_dx=need_x, need_dweight=need_w,
                                  need_dbias=need_b)


def _k_rms_norm_forward(x, w, eps):
    """x (R,D) -> (y, rstd (R)); rstd = 1/sqrt(mean(x^2) + eps), y = x*rstd*w."""
    return _C.rms_norm_forward(x, w, eps)


def _k_rms_norm_backward(dy, x, w, rstd, need_x, need_w):
    """-> (dx, dw): dx = rstd (g - xhat mean(g xhat)), g = dy*w, xhat = x*rstd."""
    return _C.rms_norm_backward(dy, x, rstd, w, need_dx=need_x, need_dweight=need_w)


def _k_embedding_forward(W, idx):
    """W (V,D), idx (n) int64 -> out (n,D) = W[idx] (C gather; IndexError on a bad index)."""
    return _C.embedding_forward(W, idx)


def _k_embedding_backward(dy, idx, V, padding_idx):
    """-> dW (V,D) with dy rows added at idx (repeated indices add up; race-free under threads),
    rows equal to padding_idx (None: no padding) left at zero."""
    return _C.embedding_backward(dy, idx, V, padding_idx)


# ============================================================================ helpers
def _check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError("%s is not a valid value for reduction" % reduction)


def _float_check(name, t):
    if not isinstance(t, Tensor):
        raise TypeError("%s(): argument 'input' (position 1) must be Tensor, not %s"
                        % (name, type(t).__name__))
    if t._data.dtype.kind != "f":
        raise RuntimeError("\"%s\" not implemented for '%s'" % (name, _torch_dtype(t)))


def _torch_dtype(t):
    return {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long",
            "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
            "bool": "Bool"}.get(t.dtype.name, t.dtype.name)


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


def _rows(x, dim):
    """View x with `dim` moved last as a contiguous (R, C) array; returns (x2d, moved_shape)."""
    if x.ndim == 0:
        return _f(x).reshape(1, 1), ()
    last = x.ndim - 1
    xm = x if dim == last else np.moveaxis(x, dim, last)
    shape = xm.shape
    C = shape[-1]
    R = int(np.prod(shape[:-1], dtype=np.int64))
    return _f(xm).reshape(R, C), shape


def _unrows(a2d, shape, dim, ndim):
    """Inverse of _rows."""
    if ndim == 0:
        return a2d.reshape(())
    a = _reshape(a2d, shape)
    return a if dim == ndim - 1 else np.moveaxis(a, ndim - 1, dim)


# ============================================================================ linear
class _Linear(Function):
    """y = x @ W^T + b with the bias added in the GEMM's pass over each output tile."""

    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        ctx.has_b = b is not None
        ctx.bshape = None if b is None else b.shape
        in_f = W.shape[1]
        M = int(np.prod(x.shape[:-1], dtype=np.int64))
        ctx.M = M
        x2 = x.reshape(M, in_f)
        out = np.empty((M, W.shape[0]), x.dtype)
        if b is not None and b.shape != (W.shape[0],):   # () or (1,): one value for every column
            b = np.broadcast_to(b.reshape(()), (W.shape[0],))
        _k_gemm(x2, W.T, out, 1.0, 0.0, b)
        return out.reshape(x.shape[:-1] + (W.shape[0],))

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        in_f, out_f, M = W.shape[1], W.shape[0], ctx.M
        g2 = g.reshape(M, out_f)
        gx = gW = gb = None
        if ctx.needs_input_grad[0]:
            gx = np.empty((M, in_f), x.dtype)
            _k_gemm(g2, W, gx)
            gx = _reshape(gx, x.shape)
        if ctx.needs_input_grad[1]:
            gW = np.empty(W.shape, W.dtype)
            _k_gemm(g2.T, x.reshape(M, in_f), gW)
        if ctx.has_b and ctx.needs_input_grad[2]:
            gb = unbroadcast(g2.sum(axis=0), ctx.bshape)
        return gx, gW, gb


def linear(input, weight, bias=None):
    """y = input @ weight^T + bias; input (*, in_features), weight (out_features, in_features)."""
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, Tensor):
            raise TypeError("linear(): argument '%s' must be Tensor, not %s"
                            % (name, type(t).__name__))
    if input._data.dtype != weight._data.dtype or (
            bias is not None and bias._data.dtype != input._data.dtype):
        other = weight if input._data.dtype != weight._data.dtype else bias
        raise RuntimeError("mat1 and mat2 must have the same dtype, but got %s and %s"
                           % (_torch_dtype(input), _torch_dtype(other)))
    if input._data.dtype.kind != "f":
        raise RuntimeError("\"addmm_impl_cpu_\" not implemented for '%s'" % _torch_dtype(input))
    if weight.dim() != 2:
        raise RuntimeError("linear(): weight must be 2-D (out_features, in_features), got %d-D"
                           % weight.dim())
    if input.dim() == 0:
        raise RuntimeError("both arguments to linear need to be at least 1D, but they are 0D "
                           "and 2D")
    in_f = input.shape[-1]
    if in_f != weight.shape[1]:
        rows = input.numel() // in_f if in_f else 0
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (%dx%d and %dx%d)"
                           % (rows if input.dim() > 1 else 1, in_f, weight.shape[1],
                              weight.shape[0]))
    if bias is not None and tuple(bias.shape) not in ((weight.shape[0],), (), (1,)):
        raise RuntimeError("linear(): bias of shape %s does not match out_features=%d"
                           % (list(bias.shape), weight.shape[0]))
    return _Linear.apply(input, weight, bias)


# ============================================================================ activations
# In-place forms (inplace=True, relu_, ...) write into the input and rebase its history (version
# bump, new grad_fn) like torch; a leaf that requires grad is refused under autograd.
def relu(input, inplace=False):
    return _act.relu_(input) if inplace else _act.relu(input)


def relu_(input):
    return _act.relu_(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    if inplace:
        return _act._act_(input, "leaky_relu", float(negative_slope))
    return _act.leaky_relu(input, negative_slope)


def leaky_relu_(input, negative_slope=0.01):
    return leaky_relu(input, negative_slope, inplace=True)


def sigmoid(input):
    return _act.sigmoid(input)


def tanh(input):
    return _act.tanh(input)


def gelu(input, approximate="none"):
    return _act.gelu(input, approximate)


def silu(input, inplace=False):
    return _act._act_(input, "silu") if inplace else _act.silu(input)


def softplus(input, beta=1.0, threshold=20.0):
    return _act.softplus(input, beta, threshold)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return _act.hardtanh(input, min_val, max_val, inplace)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return _act.hardtanh(input, min_val, max_val, True)


def relu6(input, inplace=False):
    return _act.hardtanh(input, 0.0, 6.0, inplace)


def _float_act(name, input):
    """torch's error for float-only activations given an integer/bool tensor."""
    if isinstance(input, Tensor) and input._data.dtype.kind != "f":
        raise NotImplementedError("\"%s\" not implemented for '%s'" % (name, _torch_dtype(input)))


def _elu(input, alpha):
    from ..ops.elementwise import where, expm1
    return where(input > 0, input, expm1(input.clamp(max=0)) * alpha)


def elu(input, alpha=1.0, inplace=False):
    _float_act("elu_cpu", input)
    if inplace:
        return _act.inplace_composite(input, lambda t: _elu(t, alpha))
    return _elu(input, alpha)


def elu_(input, alpha=1.0):
    return elu(input, alpha, inplace=True)


def logsigmoid(input):
    _float_act("log_sigmoid_cpu", input)
    return -_act.softplus(-input)


def _mish(input):
    return input * _act.tanh(_act.softplus(input))


def mish(input, inplace=False):
    _float_act("mish_cpu", input)
    if inplace:
        return _act.inplace_composite(input, _mish)
    return _mish(input)


def glu(input, dim=-1):
    """a * sigmoid(b) where a, b are the two halves of input along dim."""
    if input.dim() == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = wrap_dim(dim, input.dim())
    n = input.shape[d]
    if n % 2:
        raise RuntimeError("Halving dimension must be even, but dimension %d is size %d" % (d, n))
    a, b = input.chunk(2, d)
    return a * _act.sigmoid(b)


# ============================================================================ softmax
class _Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim, log):
        x2, shape = _rows(x, dim)
        y2 = _k_softmax_forward(x2, log)
        y = _unrows(y2, shape, dim, x.ndim)
        ctx.save_for_backward(y)  # the output itself: in-place changes to it are detected
        ctx.meta = (shape, dim, x.ndim, log)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        shape, dim, ndim, log = ctx.meta
        y2, _ = _rows(y, dim)  # a view again (y was built from the contiguous rows)
        g2, _ = _rows(g, dim)
        if g2.dtype != y2.dtype:
            g2 = g2.astype(y2.dtype)
        dx = _k_softmax_backward(y2, g2, log)
        return _unrows(dx, shape, dim, ndim), None, None


def _get_softmax_dim(name, ndim):
    warnings.warn("Implicit dimension choice for %s has been deprecated. Change the call to "
                  "include dim=X as an argument." % name, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_impl(name, input, dim, dtype, log):
    if not isinstance(input, Tensor):
        raise TypeError("%s(): argument 'input' (position 1) must be Tensor, not %s"
                        % (name, type(input).__name__))
    if dim is None:
        dim = _get_softmax_dim(name, input.dim())
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind != "f":
        raise RuntimeError("\"%s_lastdim_kernel_impl\" not implemented for '%s'"
                           % (name, _torch_dtype(input)))
    d = wrap_dim(dim, input.dim())
    dt = input._data.dtype
    if dt not in (np.float32, np.float64):   # float16: rows in float32, result in float16
        from ..ops.elementwise import cast
        return cast(_Softmax.apply(cast(input, np.float32), d, log), dt)
    return _Softmax.apply(input, d, log)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x - max) / sum(exp(x - max)) along dim (C row kernel; Jacobian-free backward)."""
    return _softmax_impl("softmax", input, dim, dtype, False)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """x - logsumexp(x) along dim (C row kernel; backward dx = dy - exp(y) * sum(dy))."""
    return _softmax_impl("log_softmax", input, dim, dtype, True)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    return _softmax_impl("softmin", -input, dim, dtype, False)


# ============================================================================ dropout
def _check_p(p):
    if not isinstance(p, numbers.Real) or p < 0.0 or p > 1.0:
        raise ValueError("dropout probability has to be between 0 and 1, but got %s" % (p,))


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only).
    The mask comes from cengine's generator (reproducible with cengine.manual_seed)."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    x = input._data
    if p == 1.0:
        mask = np.zeros(x.shape, x.dtype)
    else:
        keep = _rng(None).random(x.shape, dtype=np.float32 if x.dtype == np.float32
                                 else np.float64) >= p
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    if inplace:
        _act._check_inplace_target(input)
        return _act.MulMaskInplace.apply(input, mask)
    return input * _wrap(mask)


# ============================================================================ normalization
def _norm_shape(normalized_shape):
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(s) for s in normalized_shape)


def _check_norm_input(input, ns, weight, bias):
    k = len(ns)
    if k == 0:
        raise RuntimeError("Expected normalized_shape to be at least 1-dimensional, i.e., "
                           "containing at least one element, but got normalized_shape = []")
    if input.dim() < k or tuple(input.shape[input.dim() - k:]) != ns:
        raise RuntimeError("Given normalized_shape=%s, expected input with shape [*, %s], but got "
                           "input of size%s" % (list(ns), ", ".join(str(s) for s in ns),
                                                list(input.shape)))
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != ns:
            raise RuntimeError("Expected %s to be of same shape as normalized_shape, but got %s "
                               "of shape %s and normalized_shape = %s"
                               % (name, name, list(t.shape), list(ns)))


class _LayerNorm(Function):
    @staticmethod
    def forward(ctx, x, w, b, R, D, eps):
        x2 = _f(x).reshape(R, D)
        y, mean, rstd = _k_layer_norm_forward(
            x2, None if w is None else _f(w).reshape(D), None if b is None else _f(b).reshape(D),
            eps)
        ctx.save_for_backward(_keep(x2, x), w, mean, rstd)
        ctx.meta = (x.shape, R, D, None if b is None else b.shape)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        xs, w, mean, rstd = ctx.saved_tensors
        shape, R, D, bshape = ctx.meta
        x2 = _f(xs).reshape(R, D)
        has_b = bshape is not None
        need_w = w is not None and ctx.needs_input_grad[1]
        need_b = has_b and ctx.needs_input_grad[2]
        need_x = ctx.needs_input_grad[0]
        dx, dw, db = _k_layer_norm_backward(
            _f(g.astype(x2.dtype, copy=False)).reshape(R, D), x2,
            None if w is None else _f(w).reshape(D), mean, rstd, need_x, need_w, need_b)
        return (None if dx is None else _reshape(dx, shape),
                None if dw is None else _reshape(dw, w.shape),
                None if db is None else _reshape(db, bshape), None, None, None)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last len(normalized_shape) dims."""
    _float_check("layer_norm", input)
    ns = _norm_shape(normalized_shape)
    _check_norm_input(input, ns, weight, bias)
    D = int(np.prod(ns, dtype=np.int64))
    R = int(np.prod(input.shape[:input.dim() - len(ns)], dtype=np.int64))
    return _LayerNorm.apply(input, weight, bias, R, D, float(eps))


class _RMSNorm(Function):
    @staticmethod
    def forward(ctx, x, w, R, D, eps):
        x2 = _f(x).reshape(R, D)
        y, rstd = _k_rms_norm_forward(x2, None if w is None else _f(w).reshape(D), eps)
        ctx.save_for_backward(_keep(x2, x), w, rstd)
        ctx.meta = (x.shape, R, D)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        xs, w, rstd = ctx.saved_tensors
        shape, R, D = ctx.meta
        x2 = _f(xs).reshape(R, D)
        need_w = w is not None and ctx.needs_input_grad[1]
        need_x = ctx.needs_input_grad[0]
        dx, dw = _k_rms_norm_backward(_f(g.astype(x2.dtype, copy=False)).reshape(R, D), x2,
                                      None if w is None else _f(w).reshape(D), rstd, need_x,
                                      need_w)
        return (None if dx is None else _reshape(dx, shape),
                None if dw is None else _reshape(dw, w.shape), None, None, None)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) * weight over the last len(normalized_shape) dims;
    eps=None uses the dtype's machine epsilon (like torch)."""
    _float_check("rms_norm", input)
    ns = _norm_shape(normalized_shape)
    _check_norm_input(input, ns, weight, None)
    if eps is None:
        eps = float(np.finfo(input._data.dtype).eps)
    D = int(np.prod(ns, dtype=np.int64))
    R = int(np.prod(input.shape[:input.dim() - len(ns)], dtype=np.int64))
    return _RMSNorm.apply(input, weight, R, D, float(eps))


class _BatchNorm(Function):
    """Training-mode batch norm over all axes but 1 on the C kernels of conv.pxi (input seen as
    (N, C, S)): batch statistics in one threaded pass per channel, y = x*a[c] + b[c] in another;
    backward fused per channel. Saves x, mean, rstd."""

    @staticmethod
    def forward(ctx, x, w, b, eps):
        N, C = x.shape[0], x.shape[1]
        S = int(np.prod(x.shape[2:], dtype=np.int64))
        x3 = _f(x).reshape(N, C, S)
        mean, var = _C.bn_stats(x3)
        rstd = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(x.dtype)
        a = rstd * w.astype(x.dtype, copy=False) if w is not None else rstd
        shift = -mean * a
        if b is not None:
            shift = shift + b.astype(x.dtype, copy=False)
        y = _C.bn_apply(x3, _f(a), _f(shift))
        ctx.save_for_backward(_keep(x3, x), mean, rstd, w)
        ctx.meta = (x.shape, N, C, S, b is not None)
        ctx.stats = (mean, var)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        xs, mean, rstd, w = ctx.saved_tensors
        shape, N, C, S, has_b = ctx.meta
        need_w = w is not None and ctx.needs_input_grad[1]
        need_b = has_b and ctx.needs_input_grad[2]
        dt = mean.dtype
        dx, dw, db = _C.bn_backward(
            _f(g.astype(dt, copy=False)).reshape(N, C, S), _f(xs).reshape(N, C, S), mean, rstd,
            None if w is None else _f(w.astype(dt, copy=False)), ctx.needs_input_grad[0],
            need_w, need_b)
        return (None if dx is None else dx.reshape(shape),
                None if dw is None else dw.astype(w.dtype, copy=False),
                db, None)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise over the batch (and length) axes per channel (dim 1). training=True uses the
    batch statistics and updates running_mean/var in place (unbiased variance); otherwise the
    running statistics are used."""
    _float_check("batch_norm", input)
    if input.dim() < 2:
        raise ValueError("expected 2D or 3D input (got %dD input)" % input.dim())
    C = input.shape[1]
    bshape = (1, C) + (1,) * (input.dim() - 2)
    if training:
        n = input.numel() // C if C else 0
        if n <= 1:
            raise ValueError("Expected more than 1 value per channel when training, got input "
                             "size %s" % (input.shape,))
        out = _BatchNorm.apply(input, weight, bias, float(eps))
        node = out.grad_fn
        # the batch statistics (recomputed when no graph was recorded)
        x = input._data
        axes = (0,) + tuple(range(2, x.ndim))
        if node is not None:
            mean, var = node.stats
        else:
            mean, var = x.mean(axis=axes), x.var(axis=axes)
        if running_mean is not None:
            rm = running_mean._data
            rm *= (1 - momentum)
            rm += momentum * mean.astype(rm.dtype)
            running_mean._version[0] += 1
        if running_var is not None:
            rv = running_var._data
            rv *= (1 - momentum)
            rv += momentum * (var * n / (n - 1)).astype(rv.dtype)
            running_var._version[0] += 1
        return out
    if running_mean is None or running_var is None:
        raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
    scale = (running_var + eps).rsqrt()
    if weight is not None:
        scale = scale * weight
    out = (input - running_mean.reshape(bshape)) * scale.reshape(bshape)
    if bias is not None:
        out = out + bias.reshape(bshape)
    return out


# ============================================================================ embedding
class _Embedding(Function):
    @staticmethod
    def forward(ctx, W, idx, padding_idx, scale_grad_by_freq):
        flat = np.ascontiguousarray(idx.reshape(-1), dtype=np.int64)
        out = _k_embedding_forward(_f(W), flat)
        ctx.save_for_backward(flat)
        ctx.meta = (W.shape, W.dtype, idx.shape, padding_idx, scale_grad_by_freq)
        return out.reshape(idx.shape + (W.shape[1],))

    @staticmethod
    def backward(ctx, g):
        (flat,) = ctx.saved_tensors
        wshape, wdtype, _, padding_idx, freq = ctx.meta
        dy = _f(g.astype(wdtype, copy=False)).reshape(-1, wshape[1])
        if freq:
            counts = np.bincount(flat, minlength=wshape[0])
            dy = dy / counts[flat][:, None].astype(wdtype)
            dy = _f(dy)
        return _k_embedding_backward(dy, flat, wshape[0], padding_idx), None, None, None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """weight[input]: rows of weight (V, D) gathered by the integer tensor input."""
    if not isinstance(input, Tensor) or input._data.dtype.kind not in "iu":
        got = _torch_dtype(input) if isinstance(input, Tensor) else type(input).__name__
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           "following scalar types: Long, Int; but got %s instead (while "
                           "checking arguments for embedding)" % got)
    if weight.dim() != 2:
        raise RuntimeError("'weight' must be 2-D")
    if sparse:
        raise NotImplementedError("sparse embedding gradients are not supported by cengine")
    V = weight.shape[0]
    if padding_idx is not None:
        if padding_idx > 0 and padding_idx >= V:
            raise AssertionError("Padding_idx must be within num_embeddings")
        if padding_idx < 0:
            if padding_idx < -V:
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx += V
    idx = input._data
    if max_norm is not None:
        if idx.size and (idx.min() < 0 or idx.max() >= V):
            raise IndexError("index out of range in self")
        _embedding_renorm_(weight, idx, max_norm, norm_type)
    return _Embedding.apply(weight, idx, padding_idx, bool(scale_grad_by_freq))


def _embedding_renorm_(weight, idx, max_norm, norm_type):
    """Rescale (in place, no graph) the referenced rows whose norm exceeds max_norm."""
    rows = np.unique(idx.reshape(-1))
    W = weight._data
    norms = np.linalg.norm(W[rows].astype(np.float64), ord=norm_type, axis=1)
    big = norms > max_norm
    if np.any(big):
        r = rows[big]
        W[r] *= (max_norm / (norms[big] + 1e-7))[:, None].astype(W.dtype)
        weight._version[0] += 1


def one_hot(tensor, num_classes=-1):
    """(…,) int64 -> (…, num_classes) int64 with a 1 at each index."""
    if not isinstance(tensor, Tensor) or tensor._data.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    idx = tensor._data
    if num_classes == -1:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    if idx.size and idx.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if idx.size and idx.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = np.zeros(idx.shape + (num_classes,), np.int64)
    np.put_along_axis(out, idx[..., None].astype(np.int64), 1, axis=-1)
    return _wrap(out)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p, eps) along dim."""
    from ..ops.reduce import norm
    den = norm(input, p, dim, keepdim=True).clamp(min=eps)
    return input / den


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad)//2 dims: pad = (left_last, right_last, left_prev, right_prev, ...).
    mode 'constant' (negative pads crop), 'reflect', 'replicate' or 'circular'."""
    if mode != "constant":
        from ..ops.conv import pad as _pad_modes
        return _pad_modes(input, pad, mode, value)
    if len(pad) % 2 or len(pad) // 2 > input.dim():
        raise RuntimeError("Padding length must be divisible by 2 and at most twice the number "
                           "of dimensions of the input")
    value = 0.0 if value is None else value
    return _Pad.apply(input, tuple(int(v) for v in pad), value)


class _Pad(Function):
    @staticmethod
    def forward(ctx, x, pad, value):
        nd = x.ndim
        widths = [(0, 0)] * nd
        crops = [slice(None)] * nd
        for i in range(len(pad) // 2):
            d = nd - 1 - i
            lo, hi = pad[2 * i], pad[2 * i + 1]
            widths[d] = (builtins.max(lo, 0), builtins.max(hi, 0))
            crops[d] = slice(builtins.max(-lo, 0), x.shape[d] - builtins.max(-hi, 0))
        xc = x[tuple(crops)]
        out = np.pad(xc, widths, mode="constant", constant_values=value)
        ctx.meta = (x.shape, tuple(crops), widths)
        return out

    @staticmethod
    def backward(ctx, g):
        shape, crops, widths = ctx.meta
        inner = tuple(slice(lo, g.shape[d] - hi) for d, (lo, hi) in enumerate(widths))
        gx = np.zeros(shape, g.dtype)
        gx[crops] = g[inner]
        return gx, None, None


# ============================================================================ attention
def _heads_empty(shape, dtype):
    """empty (..., L, E) array; for 4-D (b, h, L, E) the (b, h, L, E) view of a C-contiguous
    (b, L, h, E) array, the layout a (b, L, h*E) tensor's heads come from and go back to: the
    model's transpose(1, 2).reshape(b, L, h*E) of the result is then free."""
    if len(shape) == 4:
        b, h, L, E = shape
        return np.empty((b, L, h, E), dtype).transpose(0, 2, 1, 3)
    return np.empty(shape, dtype)


def _packed_qkv_grads(ctx, q, k, v):
    """(gq, gk, gv) as views of one packed gradient G, when this attention node's q, k, v are,
    through reshape / permute views only, the three pieces of one 3-way split along the last
    dimension (the `chunk(3, -1)` of a fused qkv projection, llm.c's inp (B, T, 3C): what
    MultiheadAttention and the usual transformer block do). G is laid out like the split's input
    and handed to the Split node (its `packed_grad` contract), whose backward then returns it
    without concatenating. The layout is read off the graph (which Split node, which piece,
    which views), never inferred from the arrays' addresses. None in every other case."""
    from ..ops.shape import Split, Reshape, Permute
    split, chains, nrs = None, {}, []
    for arr, edge in zip((q, k, v), ctx.next_functions[:3]):
        if edge is None:
            return None
        node, nr = edge
        shape, ops = arr.shape, []          # walk from the tensor back to its split piece
        while node._fn is not Split:
            if node._fn is Permute:
                perm = tuple(int(i) for i in np.argsort(node.inv))
                shape = tuple(shape[i] for i in node.inv)
                ops.append(("permute", perm))
            elif node._fn is Reshape:
                ops.append(("reshape", shape))
                shape = node.shape
            else:
                return None
            e = node.next_functions[0]
            if e is None:
                return None
            node, nr = e
        if split is None:
            split = node
        if node is not split or nr in chains:
            return None
        chains[nr] = (ops, shape)
        nrs.append(nr)
    d, xshape, sizes = split.d, split.shape, split.sizes
    if len(sizes) != 3 or d != len(xshape) - 1 or len(set(sizes)) != 1:
        return None
    G = np.empty(xshape, q.dtype)
    views, start = {}, 0
    for nr in range(3):
        ops, pshape = chains[nr]
        g = G[..., start:start + sizes[nr]]
        start += sizes[nr]
        if g.shape != pshape:
            return None
        for op, arg in reversed(ops):
            if op == "permute":
                g = np.transpose(g, arg)
            else:
                try:
                    g = np.reshape(g, arg, copy=False)
                except ValueError:   # that reshape copied: no view of G to write into
                    return None
        views[nr] = g
    out = tuple(views[nr] for nr in nrs)
    if any(g.shape != a.shape for g, a in zip(out, (q, k, v))):
        return None
    split.packed_grad = G
    _PACKED_QKV[0] += 1
    return out


_PACKED_QKV = [0]   # attention backward passes that wrote packed q/k/v gradients


class _SDPA(Function):
    """O = dropout(softmax(scale * Q K^T + mask)) V on the batched GEMM and the softmax row
    kernel; backward with the Jacobian-free softmax backward. Q (*, L, E), K (*, S, E),
    V (*, S, Ev) with the same one or two batch dimensions * (any strides: head views go to the
    GEMM as they are), mask broadcastable to (*, L, S), additive float, or None. Outputs (O, P)
    with P the attention weights. safe: a query row whose scores are all -inf (every key masked
    out) gets weights 0, hence output 0 and zero gradients (torch's scaled_dot_product_attention;
    its MultiheadAttention with need_weights=True keeps the NaN of a plain softmax)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, scale, dropout_mask, safe=True):
        bd, L, S = q.shape[:-2], q.shape[-2], k.shape[-2]
        R = int(np.prod(bd + (L,), dtype=np.int64))
        s = np.empty(bd + (L, S), q.dtype)
        _k_gemm(q, np.swapaxes(k, -1, -2), s, scale)
        if mask is not None:
            s += mask
        p = _k_softmax_forward(s.reshape(R, S), False).reshape(s.shape)
        if safe and mask is not None and S:
            dead = s.max(axis=-1) == -np.inf
            if dead.any():
                p[dead] = 0.0
        pd = p if dropout_mask is None else p * dropout_mask
        o = _heads_empty(bd + (L, v.shape[-1]), q.dtype)
        _k_gemm(pd, v, o)
        ctx.save_for_backward(q, k, v, p, dropout_mask)
        ctx.scale = scale
        ctx.set_materialize_grads(False)   # the weights are rarely used: no zero-filled grad
        return o, pd

    @staticmethod
    def backward(ctx, go, gp):
        q, k, v, p, dm = ctx.saved_tensors
        scale = ctx.scale
        S = p.shape[-1]
        pd = p if dm is None else p * dm
        need_q, need_k, need_v, need_m = ctx.needs_input_grad[:4]
        if go is None:   # only the weights were used
            go = np.zeros(q.shape[:-1] + (v.shape[-1],), q.dtype)
        go = go.astype(q.dtype, copy=False)
        gv = None
        sib = _packed_qkv_grads(ctx, q, k, v) if need_q and need_k and need_v else None
        if need_v:
            gv = sib[2] if sib else _heads_empty(v.shape, v.dtype)
            _k_gemm(np.swapaxes(pd, -1, -2), go, gv)
        dp = np.empty(p.shape, q.dtype)
        _k_gemm(go, np.swapaxes(v, -1, -2), dp)
        if gp is not None:  # grad of the returned (dropped-out) weights
            dp += gp
        if dm is not None:
            dp *= dm
        R = int(np.prod(p.shape[:-1], dtype=np.int64))
        ds = _k_softmax_backward(p.reshape(R, S), dp.reshape(R, S), False).reshape(p.shape)
        gq = gk = None
        if need_q:
            gq = sib[0] if sib else _heads_empty(q.shape, q.dtype)
            _k_gemm(ds, k, gq, scale)
        if need_k:
            gk = sib[1] if sib else _heads_empty(k.shape, k.dtype)
            _k_gemm(np.swapaxes(ds, -1, -2), q, gk, scale)
        return gq, gk, gv, (ds if need_m else None), None, None, None


def _attention(query, key, value, attn_mask, dropout_p, is_causal, scale, need_weights):
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError("scaled_dot_product_attention(): argument '%s' must be Tensor, not %s"
                            % (name, type(t).__name__))
        if t.dim() < 2:
            raise RuntimeError("scaled_dot_product_attention: %s must be at least 2-D, got %d-D"
                               % (name, t.dim()))
    dt = query._data.dtype
    if dt.kind != "f" or key._data.dtype != dt or value._data.dtype != dt:
        raise RuntimeError("Expected query, key, and value to have the same dtype, but got "
                           "query.dtype: %s key.dtype: %s and value.dtype: %s instead."
                           % (query.dtype, key.dtype, value.dtype))
    if dt not in (np.float32, np.float64):
        raise RuntimeError("scaled_dot_product_attention supports float32 and float64")
    L, E = query.shape[-2:]
    S, Ek = key.shape[-2:]
    Sv, Ev = value.shape[-2:]
    if Ek != E:
        raise RuntimeError("scaled_dot_product_attention: query and key must have the same "
                           "embedding size, got %d and %d" % (E, Ek))
    if Sv != S:
        raise RuntimeError("scaled_dot_product_attention: key and value must have the same "
                           "sequence length, got %d and %d" % (S, Sv))
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set "
                           "when is_causal=True")
    _check_p(dropout_p)
    try:
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise RuntimeError("scaled_dot_product_attention: batch dimensions of query %s, key %s "
                           "and value %s are not broadcastable"
                           % (list(query.shape), list(key.shape), list(value.shape))) from None
    B = int(np.prod(batch, dtype=np.int64))
    # (E = 0: every score is the empty sum 0 whatever the scale; torch then averages v)
    scale = (1.0 / math.sqrt(E) if E else 1.0) if scale is None else float(scale)

    # One or two batch dimensions shared by q, k and v go to the kernel as they are (head views
    # included: the GEMM takes their strides); anything else is folded into one batch dimension.
    direct = len(batch) in (1, 2) and all(tuple(t.shape[:-2]) == batch
                                          for t in (query, key, value))
    kb = batch if direct else (B,)   # the kernel's batch dimensions

    def to3(t, r, c):
        if direct:
            return t
        if tuple(t.shape[:-2]) != batch:
            t = t.expand(*(batch + (r, c)))
        return t.reshape(B, r, c)

    q3, k3, v3 = to3(query, L, E), to3(key, S, E), to3(value, S, Ev)
    mask3 = None
    if is_causal:
        m = np.where(np.tril(np.ones((L, S), bool)), 0.0, -np.inf).astype(dt)
        mask3 = _wrap(m)   # (L, S), broadcast over the batch by the score add
    elif attn_mask is not None:
        if not isinstance(attn_mask, Tensor):
            raise TypeError("attn_mask must be a Tensor")
        try:
            np.broadcast_shapes(tuple(attn_mask.shape), batch + (L, S))
        except ValueError:
            raise RuntimeError("The shape of attn_mask %s is not broadcastable to (%s)"
                               % (list(attn_mask.shape),
                                  ", ".join(str(s) for s in batch + (L, S)))) from None
        if attn_mask._data.dtype == np.bool_:
            m = np.where(attn_mask._data, 0.0, -np.inf).astype(dt)
            mask3 = _wrap(np.broadcast_to(m, batch + (L, S)).reshape(kb + (L, S)))
        else:
            am = attn_mask if attn_mask._data.dtype == dt else attn_mask.to(query.dtype)
            if tuple(am.shape) != batch + (L, S):
                am = am.expand(*(batch + (L, S)))
            mask3 = am if direct else am.reshape(B, L, S)
    dmask = None
    if dropout_p > 0.0:
        if dropout_p == 1.0:
            dmask = np.zeros(kb + (L, S), dt)
        else:
            keep = _rng(None).random(kb + (L, S)) >= dropout_p
            dmask = keep.astype(dt) * dt.type(1.0 / (1.0 - dropout_p))
    # safe softmax (fully masked rows -> 0) for sdpa; a top-left causal mask leaves every row
    # at least one key, so it skips the row scan
    o, p = _SDPA.apply(q3, k3, v3, mask3, scale, dmask, not need_weights and not is_causal)
    if not direct:
        o = o.reshape(*(batch + (L, Ev)))
        p = p.reshape(*(batch + (L, S)))
    if need_weights:
        return o, p
    return o


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """softmax(Q K^T * scale + mask) V with Q (..., L, E), K (..., S, E), V (..., S, Ev).

    attn_mask: bool (True = may attend) or additive float, broadcastable to (..., L, S);
    is_causal: the lower-triangular (top-left aligned) mask; scale defaults to 1/sqrt(E).
    dropout_p > 0 drops attention weights (call with 0.0 in evaluation)."""
    if enable_gqa:
        raise NotImplementedError("enable_gqa is not supported by cengine")
    return _attention(query, key, value, attn_mask, dropout_p, is_causal, scale, False)


# ============================================================================ losses
def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _same_size_warn(input, target, name):
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn("Using a target size (%s) that is different to the input size (%s). This "
                      "will likely lead to incorrect results due to broadcasting. Please ensure "
                      "they have the same size." % (target.shape, input.shape), stacklevel=3)


def _loss_args(name, input, target, reduction):
    for an, t in (("input", input), ("target", target)):
        if not isinstance(t, Tensor):
            raise TypeError("%s(): argument '%s' must be Tensor, not %s"
                            % (name, an, type(t).__name__))
    _check_reduction(reduction)


def _promote(input, target):
    if target._data.dtype != input._data.dtype and input._data.dtype.kind == "f":
        target = target.to(input.dtype)
    return target


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _loss_args("mse_loss", input, target, reduction)
    _same_size_warn(input, target, "mse_loss")
    d = input - _promote(input, target)
    loss = d * d
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _loss_args("l1_loss", input, target, reduction)
    _same_size_warn(input, target, "l1_loss")
    loss = (input - _promote(input, target)).abs()
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta=0: L1)."""
    _loss_args("smooth_l1_loss", input, target, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _same_size_warn(input, target, "smooth_l1_loss")
    d = input - _promote(input, target)
    if beta == 0.0:
        return _reduce(d.abs(), reduction)
    return _reduce(_HuberElem.apply(d, beta, 1.0 / beta), reduction)


class _HuberElem(Function):
    """Elementwise scale * huber_delta(d): 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)
    (smooth_l1 is huber with delta = beta, scale = 1/beta). Gradient scale * clamp(d, -delta,
    delta) written as torch's kernels do: +-delta beyond the edges (finite at infinite d), and
    NaN for NaN d."""

    @staticmethod
    def forward(ctx, d, delta, scale):
        ctx.save_for_backward(d)
        ctx.delta, ctx.scale = delta, scale
        a = np.abs(d)
        inner = a < delta
        out = np.where(inner, 0.5 * d * d, delta * (a - 0.5 * delta))
        return (out * scale).astype(d.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        dl = d.dtype.type(ctx.delta)
        slope = np.where(d < -dl, -dl, np.where(d > dl, dl, d))
        return (g * slope * d.dtype.type(ctx.scale)).astype(d.dtype, copy=False), None, None


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta)."""
    _loss_args("huber_loss", input, target, reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _same_size_warn(input, target, "huber_loss")
    d = input - _promote(input, target)
    loss = _HuberElem.apply(d, delta, 1.0)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


class _BCE(Function):
    """Elementwise -(y log x + (1-y) log(1-x)), logs clamped at -100; torch's gradients:
    dx = (x - y) / max(x (1-x), 1e-12) (finite at x = 0 or 1, where the clamped log's own
    derivative would give 0 * inf), dy = log(1-x) - log(x)."""

    @staticmethod
    def forward(ctx, x, y):
        with np.errstate(divide="ignore"):
            lx, l1x = np.log(x), np.log(1 - x)
        ctx.save_for_backward(x, y)
        loss = -(y * np.maximum(lx, -100) + (1 - y) * np.maximum(l1x, -100))
        return loss.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = gy = None
        if ctx.needs_input_grad[0]:
            gx = (g * (x - y) / np.maximum(x * (1 - x), 1e-12)).astype(x.dtype, copy=False)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gy = (g * (np.log(1 - x) - np.log(x))).astype(y.dtype, copy=False)
        return gx, gy


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """-w (y log x + (1-y) log(1-x)) with the logs clamped at -100 (like torch)."""
    _loss_args("binary_cross_entropy", input, target, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError("Using a target size (%s) that is different to the input size (%s) is "
                         "deprecated. Please ensure they have the same size."
                         % (target.shape, input.shape))
    x = input._data
    if x.size and (np.any(x < 0) or np.any(x > 1) or np.any(np.isnan(x))):
        raise RuntimeError("all elements of input should be between 0 and 1")
    loss = _BCE.apply(input, _promote(input, target))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """BCE on sigmoid(input), stable: (1-y) x + (1 + (pw-1) y) softplus(-x), times weight."""
    _loss_args("binary_cross_entropy_with_logits", input, target, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError("Target size (%s) must be the same as input size (%s)"
                         % (target.shape, input.shape))
    target = _promote(input, target)
    sp = _act.softplus(-input)  # log(1 + exp(-x)), stable for every x
    if pos_weight is not None:
        if pos_weight.dim() and input.dim() and pos_weight.shape[-1] not in (1, input.shape[-1]):
            raise RuntimeError("The size of tensor a (%d) must match the size of tensor b (%d) "
                               "at non-singleton dimension %d"
                               % (pos_weight.shape[-1], input.shape[-1], input.dim() - 1))
        lw = (pos_weight - 1) * target + 1
        loss = (1 - target) * input + lw * sp
    else:
        loss = (1 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) pointwise: target (log target - input); input holds
    log-probabilities. reduction 'batchmean' divides the sum by input.size(0)."""
    if reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError("%s is not a valid value for reduction" % reduction)
    _loss_args("kl_div", input, target, "none")
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", stacklevel=2)
    target = _promote(input, target)
    from ..ops.elementwise import where, log
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # xlogy(t, t) - t * input, with 0 log 0 = 0
        pos = target > 0
        loss = where(pos, target * log(where(pos, target, 1.0)), 0.0) - target * input
    if reduction == "batchmean":
        n = input.shape[0] if input.dim() else 1
        return loss.sum() / n
    return _reduce(loss, reduction)


def _mean_scale(g, denom):
    """g / denom for a 'mean' reduction's backward; denom 0 (empty batch, every row ignored or
    of weight 0) gives inf/NaN like torch's division instead of ZeroDivisionError."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float64(g) / np.float64(denom)


# ---- cross-entropy / nll: shape handling shared by both
def _class_layout(name, input, target):
    """Check shapes of class-index losses; returns (C, out_shape) where out_shape is the shape of
    the per-element loss ((N, d1, ...) or () for unbatched)."""
    if input.dim() == 0:
        raise ValueError("Expected 1 or more dimensions (got 0)")
    if input.dim() == 1:
        if target.dim() != 0:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        return input.shape[0], ()
    N, C = input.shape[0], input.shape[1]
    if target.dim() == 0 or target.shape[0] != N:
        raise ValueError("Expected input batch_size (%d) to match target batch_size (%d)."
                         % (N, target.shape[0] if target.dim() else 0))
    expect = (N,) + tuple(input.shape[2:])
    if tuple(target.shape) != expect:
        if input.dim() == 2:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        raise RuntimeError("Expected target size %s, got %s" % (list(expect),
                                                                   list(target.shape)))
    return C, expect


def _check_weight(weight, C):
    if weight is None:
        return None
    if weight.dim() != 1 or weight.shape[0] != C:
        raise RuntimeError("weight tensor should be defined either for all %d classes or no "
                           "classes but got weight tensor of shape: %s" % (C, list(weight.shape)))
    if _gm._state[0] and weight.requires_grad:
        raise RuntimeError("the derivative for 'weight' is not implemented.")
    return weight


def _logits_rows(x):
    """(N,C,d...) / (C,) / (N,C) array -> contiguous (M, C) rows with classes last."""
    if x.ndim == 1:
        return _f(x).reshape(1, -1)
    xm = x if x.ndim == 2 else np.moveaxis(x, 1, -1)
    return _f(xm).reshape(-1, x.shape[1])


def _unlogits_rows(g2, shape):
    if len(shape) <= 2:
        return _reshape(g2, shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(g2.reshape(moved), -1, 1)


def _check_targets(t, C, ignore_index):
    if t.size:
        bad = (t < 0) | (t >= C)
        bad &= t != ignore_index
        if bad.any():
            raise IndexError("Target %d is out of bounds." % t[np.argmax(bad)])


class _CrossEntropy(Function):
    """Fused log-softmax + NLL on (M, C) rows; the reduction is folded into one backward."""

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, ls, reduction, out_shape):
        z = _logits_rows(x)
        t = np.ascontiguousarray(target.reshape(-1), dtype=np.int64)
        w = None if weight is None else _f(weight).astype(z.dtype, copy=False)
        loss, lse, wrow = _k_cross_entropy_forward(z, t, w, ignore_index, ls)
        ctx.save_for_backward(_keep(z, x), t, w, lse)
        if reduction == "mean":
            denom = wrow.sum(dtype=np.float64)
            out = np.asarray(loss.sum(dtype=np.float64) / denom if denom else np.nan, z.dtype)
        elif reduction == "sum":
            denom = None
            out = np.asarray(loss.sum(dtype=np.float64), z.dtype)
        else:
            denom = None
            out = loss.reshape(out_shape)
        ctx.meta = (x.shape, ignore_index, ls, reduction, denom)
        return out

    @staticmethod
    def backward(ctx, g):
        zs, t, w, lse = ctx.saved_tensors
        shape, ignore_index, ls, reduction, denom = ctx.meta
        z = _logits_rows(zs)
        M = z.shape[0]
        if reduction == "none":
            grow = _f(g).reshape(M).astype(z.dtype, copy=False)
        else:   # (an empty or all-ignored batch: no row to scale, torch's zero gradient)
            gv = _mean_scale(g, denom) if reduction == "mean" else float(g)
            grow = np.full(M, gv, z.dtype)
        dz = _k_cross_entropy_backward(z, t, lse, grow, w, ignore_index, ls)
        return _unlogits_rows(dz, shape), None, None, None, None, None, None


class _CrossEntropyProb(Function):
    """Cross-entropy with class-probability targets (same shape as the input)."""

    @staticmethod
    def forward(ctx, x, target, weight, ls, reduction):
        z = _logits_rows(x)
        q = _logits_rows(target).astype(z.dtype, copy=False)
        w = None if weight is None else _f(weight).astype(z.dtype, copy=False)
        loss, lse = _k_cross_entropy_prob_forward(z, q, w, ls)
        ctx.save_for_backward(_keep(z, x), _keep(q, target), w, lse)
        M = z.shape[0]
        if reduction == "mean":
            out = np.asarray(loss.sum(dtype=np.float64) / M if M else np.nan, z.dtype)
        elif reduction == "sum":
            out = np.asarray(loss.sum(dtype=np.float64), z.dtype)
        else:
            out = loss.reshape(((x.shape[0],) + tuple(x.shape[2:])) if x.ndim > 1 else ())
        ctx.meta = (x.shape, ls, reduction)
        return out

    @staticmethod
    def backward(ctx, g):
        zs, qs, w, lse = ctx.saved_tensors
        shape, ls, reduction = ctx.meta
        z = _logits_rows(zs)
        q = _logits_rows(qs).astype(z.dtype, copy=False)
        M = z.shape[0]
        if reduction == "none":
            grow = _f(g).reshape(M).astype(z.dtype, copy=False)
        else:
            gv = _mean_scale(g, M) if reduction == "mean" else float(g)
            grow = np.full(M, gv, z.dtype)
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = _unlogits_rows(_k_cross_entropy_prob_backward(z, q, lse, grow, w, ls), shape)
        if ctx.needs_input_grad[1]:
            # d loss_i / d target[i,c] = -(1-eps) w_c (x_c - lse_i)
            wz = (z - lse[:, None]) if w is None else (z - lse[:, None]) * w
            gt = _unlogits_rows(-(1 - ls) * grow[:, None] * wz, shape)
        return gx, gt, None, None, None


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits input (N, C) / (N, C, d1, ...) / (C,) and class-index
    targets (N) / (N, d1, ...) / () or class probabilities shaped like input (fused C kernel)."""
    _loss_args("cross_entropy", input, target, reduction)
    _float_check("cross_entropy", input)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError("label_smoothing must be between 0.0 and 1.0. Got: %s"
                           % label_smoothing)
    if input.dim() == 0:
        raise ValueError("Expected 1 or more dimensions (got 0)")
    C = input.shape[0] if input.dim() == 1 else input.shape[1]
    weight = _check_weight(weight, C)
    if tuple(input.shape) == tuple(target.shape):
        if target._data.dtype.kind != "f":
            raise RuntimeError("Expected floating point type for target with class "
                               "probabilities, got %s" % _torch_dtype(target))
        if ignore_index >= 0:   # torch: any negative ignore_index (the default -100) is allowed
            raise RuntimeError("ignore_index is not supported for floating point target")
        return _CrossEntropyProb.apply(input, target, weight, float(label_smoothing), reduction)
    if target._data.dtype.kind not in "iu":
        raise RuntimeError("expected scalar type Long but found %s" % _torch_dtype(target))
    C, out_shape = _class_layout("cross_entropy", input, target)
    # (target range is validated by the kernel: IndexError "Target k is out of bounds.")
    return _CrossEntropy.apply(input, target._data, weight, int(ignore_index),
                               float(label_smoothing), reduction, out_shape)


class _NLL(Function):
    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction, out_shape):
        z = _logits_rows(x)
        t = target.reshape(-1).astype(np.int64, copy=False)
        valid = t != ignore_index
        ts = np.where(valid, t, 0)
        w = np.ones(z.shape[1], z.dtype) if weight is None else weight.astype(z.dtype)
        wt = np.where(valid, w[ts], 0).astype(z.dtype)
        # ignored rows are exactly 0 (torch), even where their log-probability is -inf (0 * -inf
        # would be NaN); a kept row of weight 0 and value -inf stays NaN, as in torch
        with np.errstate(invalid="ignore"):
            loss = np.where(valid, -wt * z[np.arange(z.shape[0]), ts], 0).astype(z.dtype)
        if reduction == "mean":
            denom = wt.sum(dtype=np.float64)
            out = np.asarray(loss.sum(dtype=np.float64) / denom if denom else np.nan, z.dtype)
        elif reduction == "sum":
            denom = None
            out = np.asarray(loss.sum(dtype=np.float64), z.dtype)
        else:
            denom = None
            out = loss.reshape(out_shape)
        ctx.save_for_backward(ts, wt, valid)
        ctx.meta = (x.shape, z.shape, reduction, denom)
        return out

    @staticmethod
    def backward(ctx, g):
        ts, wt, valid = ctx.saved_tensors
        shape, zshape, reduction, denom = ctx.meta
        if reduction == "none":
            grow = g.reshape(-1)
        else:
            grow = np.full(zshape[0], _mean_scale(g, denom) if reduction == "mean" else float(g))
        dz = np.zeros(zshape, wt.dtype)
        with np.errstate(invalid="ignore"):   # ignored rows get 0 even when grow is inf (0/0 mean)
            dz[np.arange(zshape[0]), ts] = np.where(valid, -wt * grow, 0)
        return _unlogits_rows(dz, shape), None, None, None, None, None


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of class-index targets given log-probabilities input."""
    _loss_args("nll_loss", input, target, reduction)
    _float_check("nll_loss", input)
    if target._data.dtype.kind not in "iu":
        raise RuntimeError("expected scalar type Long but found %s" % _torch_dtype(target))
    C, out_shape = _class_layout("nll_loss", input, target)
    weight = _check_weight(weight, C)
    _check_targets(target._data, C, ignore_index)
    return _NLL.apply(input, target._data, None if weight is None else weight._data,
                      int(ignore_index), reduction, out_shape)


# ---- CTC loss (src_c/ctc.c; implementation and autograd Function in cengine/ops/ctc.py)
from ..ops.ctc import ctc_loss  # noqa: E402

# ============================================================================ convolution, pooling
# (cengine/ops/conv.py: im2col tiles on the GEMM, pooling and channel dropout)
from ..ops import conv as _conv_ops  # noqa: E402

conv1d = _conv_ops.conv1d
conv2d = _conv_ops.conv2d
conv_transpose1d = _conv_ops.conv_transpose1d
conv_transpose2d = _conv_ops.conv_transpose2d
max_pool1d = _conv_ops.max_pool1d
max_pool2d = _conv_ops.max_pool2d
avg_pool1d = _conv_ops.avg_pool1d
avg_pool2d = _conv_ops.avg_pool2d
adaptive_avg_pool1d = _conv_ops.adaptive_avg_pool1d
adaptive_avg_pool2d = _conv_ops.adaptive_avg_pool2d
adaptive_max_pool1d = _conv_ops.adaptive_max_pool1d
adaptive_max_pool2d = _conv_ops.adaptive_max_pool2d
dropout1d = _conv_ops.dropout1d
dropout2d = _conv_ops.dropout2d


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    return _conv_ops.max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    return _conv_ops.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


__all__ += ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d",
            "max_pool2d", "avg_pool1d", "avg_pool2d",
            "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
            "adaptive_max_pool2d", "dropout1d", "dropout2d"]


# smaller activations and distances (selu, celu, hardswish, ..., cosine_similarity)
from ._more_functional import *  # noqa: E402,F401,F403
