"""cengine.nn.functional: the stateless layer functions (torch.nn.functional's API).

This module is the torch-named surface: it checks arguments (raising torch's errors), resolves
defaults, shapes and dtypes, and calls the op. The autograd Functions and the kernel calls live in
cengine/ops/, one module per op family: linalg (linear), activation, softmax, norm (layer_norm,
rms_norm, batch_norm), embedding, attention (scaled_dot_product_attention), loss, ctc, conv
(convolution, pooling, channel dropout, pad). Ops composed of other differentiable ops (elu,
mish, mse_loss, kl_div, ...) are written here directly.
"""
import math
import numbers
import warnings

import numpy as np

from .. import dtypes as _dt
from ..amp import autocast_mode as _am
from ..ops import _half
from ..autograd import grad_mode as _gm
from ..dtypes import torch_type_name
from ..tensor import Tensor, _wrap
from ..ops._util import wrap_dim
from ..ops import activation as _act
from ..ops.softmax import _Softmax
from ..ops.norm import _LayerNorm, _RMSNorm, _BatchNorm
from ..ops.loss import _HuberElem, _BCE, _CrossEntropy, _CrossEntropyProb, _NLL, \
    lowp_logits_ok
from ..ops.attention import _SDPA
from ..ops.linalg import _Linear
from ..ops.embedding import _Embedding
from ..ops.conv import _Pad
from ..random import _rng
from .. import _device as _dv

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


# ============================================================================ helpers
def _check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError("%s is not a valid value for reduction" % reduction)


def _float_check(name, t):
    if not isinstance(t, Tensor):
        raise TypeError("%s(): argument 'input' (position 1) must be Tensor, not %s"
                        % (name, type(t).__name__))
    if not _dt.is_floating(t._data.dtype):
        raise RuntimeError("\"%s\" not implemented for '%s'" % (name, _torch_dtype(t)))


def _torch_dtype(t):
    return torch_type_name(t.dtype)


# ============================================================================ linear
_F32, _BF16 = np.dtype(np.float32), _dt.BF16_NP


def linear(input, weight, bias=None):
    """y = input @ weight^T + bias; input (*, in_features), weight (out_features, in_features)."""
    mixed = False
    if _am._tls.lowp is not None:    # autocast: a lower-precision op
        # float32 parameters in a bfloat16 CPU region: one node reading their persistent
        # bfloat16 copies (no cast nodes); None where that does not apply
        y = _half.linear_autocast(input, weight, bias)
        if y is not None:
            return y
        weight, bias = _am.cast_lowp(weight), _am.cast_lowp(bias)
        # a float32 activation meets a bfloat16 weight as it is: the bf16 GEMM rounds it while
        # packing (torch's cast, without a bfloat16 copy in memory), its gradient comes back
        # in float32 straight from the GEMM
        mixed = (_am._tls.lowp == _BF16 and isinstance(input, Tensor)
                 and input._data.dtype == _F32 and isinstance(weight, Tensor)
                 and weight._data.dtype == _BF16)
        if not mixed:
            input = _am.cast_lowp(input)
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, Tensor):
            raise TypeError("linear(): argument '%s' must be Tensor, not %s"
                            % (name, type(t).__name__))
    if (input._data.dtype != weight._data.dtype and not mixed) or (
            bias is not None and bias._data.dtype != weight._data.dtype):
        other = weight if input._data.dtype != weight._data.dtype else bias
        raise RuntimeError("mat1 and mat2 must have the same dtype, but got %s and %s"
                           % (_torch_dtype(input), _torch_dtype(other)))
    if not _dt.is_floating(input._data.dtype):
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
        # torch adds any bias that broadcasts against the output (addmm semantics); the fused
        # GEMM epilogue takes only a per-feature bias, so the rest is a product plus an add
        return _Linear.apply(input, weight, None) + bias
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
    if isinstance(input, Tensor) and not _dt.is_floating(input._data.dtype):
        raise NotImplementedError("\"%s\" not implemented for '%s'" % (name, _torch_dtype(input)))


def _elu(input, alpha):
    from ..ops.elementwise import where, expm1
    # NaN takes the identity branch (gradient 1), as torch
    return where(input <= 0, expm1(input.clamp(max=0)) * alpha, input)


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
    elif _am._tls.lowp_cuda is not None:    # CUDA autocast: a float32 op (torch's CUDA list)
        input = _am.cast_fp32_cuda(input)
    if not _dt.is_floating(input._data.dtype):
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


def _on_device_of(arr, ref):
    """Host array `arr` on the device of array `ref` (arr itself for a CPU ref)."""
    if type(ref) is np.ndarray:
        return arr
    return _dv.to_cuda(arr, _dv.device_index(ref))


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only).
    The mask comes from cengine's generator (reproducible with cengine.manual_seed)."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    x = input._data
    xp = np if type(x) is np.ndarray else _dv.xp(x)
    if p == 1.0:
        mask = xp.zeros(x.shape, x.dtype)
    else:
        rdt = np.float32 if x.dtype == np.float32 else np.float64
        # a cuda tensor's mask comes from CuPy's generator (cengine.cuda.manual_seed), as
        # torch's cuda tensors draw from the cuda generator
        r = _rng(None).random(x.shape, dtype=rdt) if xp is np else xp.random.random(x.shape, rdt)
        mask = (r >= p).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
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


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last len(normalized_shape) dims."""
    _float_check("layer_norm", input)
    if _am._tls.lowp_cuda is not None:    # CUDA autocast: a float32 op (torch's CUDA list)
        input, weight, bias = (_am.cast_fp32_cuda(t) for t in (input, weight, bias))
    if _half.any_half(input, weight, bias):   # float32 compute, the input's dtype out (torch)
        return _half.via_f32(lambda x, w, b: layer_norm(x, normalized_shape, w, b, eps),
                             input, weight, bias, keep=input._data.dtype)
    ns = _norm_shape(normalized_shape)
    _check_norm_input(input, ns, weight, bias)
    D = int(np.prod(ns, dtype=np.int64))
    R = int(np.prod(input.shape[:input.dim() - len(ns)], dtype=np.int64))
    return _LayerNorm.apply(input, weight, bias, R, D, float(eps))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) * weight over the last len(normalized_shape) dims;
    eps=None uses the dtype's machine epsilon (like torch)."""
    _float_check("rms_norm", input)
    if _half.any_half(input, weight):
        if eps is None:
            eps = float(np.finfo(input._data.dtype).eps)
        return _half.via_f32(lambda x, w: rms_norm(x, normalized_shape, w, eps), input, weight,
                             keep=input._data.dtype)
    ns = _norm_shape(normalized_shape)
    _check_norm_input(input, ns, weight, None)
    if eps is None:
        eps = float(np.finfo(input._data.dtype).eps)
    D = int(np.prod(ns, dtype=np.int64))
    R = int(np.prod(input.shape[:input.dim() - len(ns)], dtype=np.int64))
    return _RMSNorm.apply(input, weight, R, D, float(eps))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise over the batch (and length) axes per channel (dim 1). training=True uses the
    batch statistics and updates running_mean/var in place (unbiased variance); otherwise the
    running statistics are used."""
    _float_check("batch_norm", input)
    if _half.any_half(input, weight, bias):
        return _half.via_f32(lambda x, w, b: batch_norm(x, running_mean, running_var, w, b,
                                                        training, momentum, eps),
                             input, weight, bias, keep=input._data.dtype)
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
    if _half.is_half(weight._data.dtype):   # the gather / scatter-add kernels run in float32
        return _half.via_f32(lambda w: _Embedding.apply(w, idx, padding_idx,
                                                        bool(scale_grad_by_freq)), weight)
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
    if type(idx) is not np.ndarray:       # a cuda tensor: compared against the class ids
        return _wrap((idx[..., None] == _dv.arange(idx, num_classes)).astype(np.int64))
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


# ============================================================================ attention
def _attention(query, key, value, attn_mask, dropout_p, is_causal, scale, need_weights):
    if _am._tls.lowp is not None:    # autocast: a lower-precision op
        query, key, value = _am.cast_lowp(query), _am.cast_lowp(key), _am.cast_lowp(value)
    lowp_attn = (not need_weights and isinstance(query, Tensor) and isinstance(key, Tensor)
                 and isinstance(value, Tensor) and query._data.dtype == _BF16
                 and key._data.dtype == _BF16 and value._data.dtype == _BF16)
    if not lowp_attn and _half.same_half(query, key, value):
        # float32 compute (the fused kernels), one rounding
        if isinstance(attn_mask, Tensor) and _half.is_half(attn_mask._data.dtype):
            attn_mask = attn_mask.float()
        return _half.via_f32(lambda q, k, v: _attention(q, k, v, attn_mask, dropout_p, is_causal,
                                                        scale, need_weights), query, key, value)
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError("scaled_dot_product_attention(): argument '%s' must be Tensor, not %s"
                            % (name, type(t).__name__))
        if t.dim() < 2:
            raise RuntimeError("scaled_dot_product_attention: %s must be at least 2-D, got %d-D"
                               % (name, t.dim()))
    dt = query._data.dtype
    if not _dt.is_floating(dt) or key._data.dtype != dt or value._data.dtype != dt:
        raise RuntimeError("Expected query, key, and value to have the same dtype, but got "
                           "query.dtype: %s key.dtype: %s and value.dtype: %s instead."
                           % (query.dtype, key.dtype, value.dtype))
    if dt not in (np.float32, np.float64) and not lowp_attn:
        raise RuntimeError("scaled_dot_product_attention supports float32 and float64")
    if lowp_attn:   # bfloat16 q/k/v on the bf16 GEMM: float32 scores, mask and weights
        dt = _F32
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
        mask3 = _wrap(_on_device_of(m, query._data))   # (L, S), broadcast by the score add
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
            mask3 = _wrap(_dv.ascontiguousarray(np.broadcast_to(m, batch + (L, S))).reshape(
                kb + (L, S)))
        else:
            am = attn_mask if attn_mask._data.dtype == dt else (
                attn_mask.float() if lowp_attn else attn_mask.to(query.dtype))
            if tuple(am.shape) != batch + (L, S):
                am = am.expand(*(batch + (L, S)))
            mask3 = am if direct else am.reshape(B, L, S)
    dmask = None
    if dropout_p > 0.0:
        if dropout_p == 1.0:
            dmask = _dv.zeros(query._data, kb + (L, S), dt)
        else:
            qa = query._data
            keep = (_rng(None).random(kb + (L, S)) if type(qa) is np.ndarray else
                    _dv.xp(qa).random.random(kb + (L, S))) >= dropout_p
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
    if target._data.dtype != input._data.dtype and _dt.is_floating(input._data.dtype):
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


def _check_targets(t, C, ignore_index):
    if t.size:
        bad = (t < 0) | (t >= C)
        bad &= t != ignore_index
        if bad.any():
            raise IndexError("Target %d is out of bounds." % t[np.argmax(bad)])


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
        if not _dt.is_floating(target._data.dtype):
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


def _loss_policy(fn):
    """a loss under autocast runs in float32 (its half inputs cast up, torch's CPU policy);
    outside autocast half inputs are computed in float32 and the loss rounded once to their
    dtype"""
    import functools
    direct = fn is cross_entropy     # (bound before the names below are rebound)

    @functools.wraps(fn)
    def loss_half(input, target, *args, **kwargs):
        if _am._tls.lowp is not None:
            if direct and lowp_logits_ok(input, target, args[0] if args else kwargs.get("weight")):
                # bfloat16 logits read by the kernel in float32 math (no cast pass)
                return fn(input, target, *args, **kwargs)
            input, target = _am.cast_fp32(input), _am.cast_fp32(target)
        if _half.any_half(input, target):
            return _half.via_f32(lambda i, t: fn(i, t, *args, **kwargs), input, target)
        return fn(input, target, *args, **kwargs)
    return loss_half


cross_entropy, nll_loss, mse_loss, l1_loss = (_loss_policy(f) for f in (
    cross_entropy, nll_loss, mse_loss, l1_loss))
smooth_l1_loss, huber_loss, kl_div = (_loss_policy(f) for f in (smooth_l1_loss, huber_loss,
                                                                  kl_div))
binary_cross_entropy, binary_cross_entropy_with_logits = (_loss_policy(f) for f in (
    binary_cross_entropy, binary_cross_entropy_with_logits))


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
