"""Convolution, pooling, channel-wise dropout and padding: the autograd Functions and the
argument handling of torch.nn.functional's conv1d/conv2d, max/avg/adaptive pools, dropout1d/2d
and pad (all modes).

Layout is channels-first like torch: (N, C, L) and (N, C, H, W), unbatched (C, L) / (C, H, W)
accepted. 1-D ops run as 2-D ones with H = 1. Heavy passes are C kernels (cengine/_C/conv.pxi):
convolution unfolds tiles of images (im2col) and multiplies on cengine's GEMM; backward-data is
a GEMM followed by col2im; the pools work plane by plane. Argument checks raise torch's errors.
"""
import builtins
import numbers
import warnings

import numpy as np

from .. import dtypes as _dt
from .. import _C
from ..amp import autocast_mode as _am
from . import _half
from ..autograd.function import Function
from ..random import _rng
from ..tensor import Tensor, _wrap

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d",
           "max_pool2d", "avg_pool1d", "avg_pool2d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "dropout1d", "dropout2d", "pad"]

def _f(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _tuple(v, n, name, what="convolution dimensions"):
    """int or sequence -> tuple of n ints (torch's message for a wrong length)."""
    if isinstance(v, numbers.Integral):
        return (int(v),) * n
    v = tuple(int(i) for i in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise RuntimeError("expected %s to be a single integer value or a list of %d values to "
                           "match the %s, but got %s=%s" % (name, n, what, name, list(v)))
    return v


def _check_tensor(name, t, arg="input"):
    if not isinstance(t, Tensor):
        raise TypeError("%s(): argument '%s' must be Tensor, not %s"
                        % (name, arg, type(t).__name__))


# ============================================================================ convolution
def _conv_save(ctx, x, w, b, geom, x4, w4):
    """what both convolution Functions keep for backward; x and w as 4-D C arrays"""
    ctx.save_for_backward(x, w)
    ctx.geom = geom
    ctx.has_b = b is not None
    return _f(x).reshape(x4), _f(w).reshape(w4)


def _conv_args(name, nd, input, weight, bias, stride, dilation, groups, weight_msg):
    """the checks conv and conv_transpose share (torch's messages, in torch's order; weight_msg
    gives the message for a weight of the wrong rank); returns stride and dilation as
    nd-tuples"""
    _check_tensor(name, input)
    _check_tensor(name, weight, "weight")
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError("Expected %dD (unbatched) or %dD (batched) input to %s, but got "
                           "input of size: %s" % (nd + 1, nd + 2, name, list(input.shape)))
    if weight.dim() != nd + 2:
        raise RuntimeError(weight_msg())
    xdt, wdt = input._data.dtype, weight._data.dtype
    if xdt != wdt:
        raise RuntimeError("expected scalar type %s but found %s"
                           % (_dt.torch_type_name(xdt),
                              _dt.torch_type_name(wdt)))
    if bias is not None and bias._data.dtype != xdt:
        raise RuntimeError("Input type (%s) and bias type (%s) should be the same"
                           % (_dt.torch_cpp_name(xdt),
                              _dt.torch_cpp_name(bias._data.dtype)))
    if not _dt.is_floating(xdt) or xdt.itemsize < 4:
        raise RuntimeError("\"%s\" not implemented for '%s'"
                           % (name, _dt.torch_type_name(xdt)))
    stride = _tuple(stride, nd, "stride")
    dilation = _tuple(dilation, nd, "dilation")
    if not isinstance(groups, numbers.Integral) or groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if builtins.min(stride) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if builtins.min(dilation) <= 0:
        raise RuntimeError("non-positive dilation is not supported")
    return stride, dilation


class _Conv2d(Function):
    """y = conv2d(x, w) + b on 4-D arrays (the wrappers reshape 1-D / unbatched inputs)."""
    _no_cuda = "conv2d"

    @staticmethod
    def forward(ctx, x, w, b, geom):
        stride, pad, dil, groups, out_hw, x4, w4, yshape = geom
        xa, wa = _conv_save(ctx, x, w, b, geom, x4, w4)
        # the weight gradient reuses the stride-1 driver's packed input when there is one
        y, ctx.grid = _C.conv2d_forward(xa, wa, None if b is None else _f(b), stride, pad, dil,
                                        groups, out_hw, keep_grid=True)
        if not ctx.needs_input_grad[1]:
            ctx.grid = None
        return y.reshape(yshape)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        stride, pad, dil, groups, out_hw, x4, w4, yshape = ctx.geom
        need = ctx.needs_input_grad
        g4 = _f(g.astype(x.dtype, copy=False)).reshape((x4[0], w4[0]) + tuple(out_hw))
        dx, dw, db = _C.conv2d_backward(g4, _f(x).reshape(x4), _f(w).reshape(w4), stride, pad,
                                        dil, groups, need[0], need[1],
                                        ctx.has_b and need[2], grid=ctx.grid)
        return (None if dx is None else dx.reshape(x.shape),
                None if dw is None else dw.reshape(w.shape), db, None)


def _same_pads(k, d):
    total = [di * (ki - 1) for ki, di in zip(k, d)]
    return [(t // 2, t - t // 2) for t in total]


def _conv(nd, input, weight, bias, stride, padding, dilation, groups):
    if _am._tls.lowp is not None:     # autocast: a lower-precision op
        input, weight, bias = _am.cast_lowp(input), _am.cast_lowp(weight), _am.cast_lowp(bias)
    if _half.same_half(input, weight, bias):   # bfloat16/float16: float32 compute, one rounding
        return _half.via_f32(lambda x, w, b: _conv(nd, x, w, b, stride, padding, dilation, groups),
                             input, weight, bias)
    name = "conv%dd" % nd
    stride, dilation = _conv_args(
        name, nd, input, weight, bias, stride, dilation, groups,
        lambda: "expected stride to be a single integer value or a list of %d values to match "
        "the convolution dimensions, but got stride=%s" % (weight.dim() - 2, [1] * nd))
    k = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * nd
        elif padding == "same":
            if builtins.max(stride) > 1:
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            pads = _same_pads(k, dilation)
        else:
            raise RuntimeError("Invalid padding string: '%s'" % padding)
    else:
        p = _tuple(padding, nd, "padding")
        if builtins.min(p) < 0:
            raise RuntimeError("negative padding is not supported")
        pads = [(v, v) for v in p]
    batched = input.dim() == nd + 2
    xshape = tuple(input.shape) if batched else (1,) + tuple(input.shape)
    O, Cg = weight.shape[0], weight.shape[1]
    C = xshape[1]
    if O % groups:
        raise RuntimeError("Given groups=%d, expected weight to be divisible by %d at dimension "
                           "0, but got weight of size [%s] instead"
                           % (groups, groups, list(weight.shape)))
    if Cg * groups != C:
        raise RuntimeError("Given groups=%d, weight of size %s, expected input%s to have %d "
                           "channels, but got %d channels instead"
                           % (groups, list(weight.shape), list(xshape), Cg * groups, C))
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != O):
        raise RuntimeError("Given weight of size %s, expected bias to be 1-dimensional with %d "
                           "elements, but got bias of size %s instead"
                           % (list(weight.shape), O, list(bias.shape)))
    spatial = xshape[2:]
    padded = [s + lo + hi for s, (lo, hi) in zip(spatial, pads)]
    eff = [di * (ki - 1) + 1 for ki, di in zip(k, dilation)]
    if any(p < e for p, e in zip(padded, eff)):
        raise RuntimeError("Calculated padded input size per channel: (%s). Kernel size: (%s). "
                           "Kernel size can't be greater than actual input size"
                           % (" x ".join(str(p) for p in padded),
                              " x ".join(str(e) for e in eff)))
    out = [(p - e) // s + 1 for p, e, s in zip(padded, eff, stride)]
    yshape = (xshape[0], O) + tuple(out)
    if not batched:
        yshape = yshape[1:]
    if nd == 1:
        x4 = (xshape[0], C, 1, spatial[0])
        w4 = (O, Cg, 1, k[0])
        geom = ((1, stride[0]), (0, pads[0][0]), (1, dilation[0]), groups, (1, out[0]))
    else:
        x4 = xshape
        w4 = tuple(weight.shape)
        geom = (stride, (pads[0][0], pads[1][0]), dilation, groups, tuple(out))
    return _Conv2d.apply(input, weight, bias, geom + (x4, w4, yshape))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation) of (N, C_in, L) or (C_in, L) with weight
    (C_out, C_in/groups, K); padding an int, a 1-tuple, 'valid' or 'same'."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of (N, C_in, H, W) or (C_in, H, W) with weight
    (C_out, C_in/groups, KH, KW); padding an int, a pair, 'valid' or 'same'."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


# ============================================================================ transposed conv
class _ConvTranspose2d(Function):
    """y = conv_transpose2d(x, w) + b: the backward-data pass of a convolution (GEMM, then
    col2im); its gradients are a convolution (input) and a weight gradient (weight)."""
    _no_cuda = "conv_transpose2d"

    @staticmethod
    def forward(ctx, x, w, b, geom):
        stride, pad, dil, groups, in_hw, x4, w4, y4, yshape = geom
        xa, wa = _conv_save(ctx, x, w, b, geom, x4, w4)
        y = _C.conv2d_backward(xa, y4, wa, stride, pad, dil, groups, True, False, False)[0]
        if b is not None:
            _C.conv_bias_add(y, _f(b))
        return y.reshape(yshape)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        stride, pad, dil, groups, in_hw, x4, w4, y4, yshape = ctx.geom
        need = ctx.needs_input_grad
        g4 = _f(g.astype(x.dtype, copy=False)).reshape(y4)
        xa, wa = _f(x).reshape(x4), _f(w).reshape(w4)
        dx = dw = db = None
        if need[0]:
            dx = _C.conv2d_forward(g4, wa, None, stride, pad, dil, groups, in_hw).reshape(x.shape)
        if need[1]:
            dw = _C.conv2d_backward(xa, g4, wa, stride, pad, dil, groups, False, True,
                                    False)[1].reshape(w.shape)
        if ctx.has_b and need[2]:
            db = _C.conv_bias_grad(g4)
        return dx, dw, db, None


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    if _am._tls.lowp is not None:
        input, weight, bias = _am.cast_lowp(input), _am.cast_lowp(weight), _am.cast_lowp(bias)
    if _half.same_half(input, weight, bias):
        return _half.via_f32(lambda x, w, b: _conv_transpose_f(
            nd, x, w, b, stride, padding, output_padding, groups, dilation), input, weight, bias)
    return _conv_transpose_f(nd, input, weight, bias, stride, padding, output_padding, groups,
                             dilation)


def _conv_transpose_f(nd, input, weight, bias, stride, padding, output_padding, groups,
                      dilation):
    name = "conv_transpose%dd" % nd
    stride, dilation = _conv_args(
        name, nd, input, weight, bias, stride, dilation, groups,
        lambda: "%s: expected a %d-D weight (in_channels, out_channels/groups, kernel...), "
        "got %d-D" % (name, nd + 2, weight.dim()))
    if isinstance(padding, str):
        raise TypeError("%s(): argument 'padding' must be tuple of ints, not str" % name)
    padding = _tuple(padding, nd, "padding")
    opad = _tuple(output_padding, nd, "output_padding")
    if builtins.min(padding) < 0:
        raise RuntimeError("negative padding is not supported")
    if builtins.min(opad) < 0:
        raise RuntimeError("negative output_padding is not supported")
    if any(o >= s and o >= d for o, s, d in zip(opad, stride, dilation)):
        o2, s2, d2 = (opad * 2)[-2:], (stride * 2)[-2:], (dilation * 2)[-2:]
        raise RuntimeError("output padding must be smaller than either stride or dilation, but "
                           "got output_padding_height: %d output_padding_width: %d "
                           "stride_height: %d stride_width: %d dilation_height: %d "
                           "dilation_width: %d" % (o2[0], o2[1], s2[0], s2[1], d2[0], d2[1]))
    batched = input.dim() == nd + 2
    xshape = tuple(input.shape) if batched else (1,) + tuple(input.shape)
    Cin, Cog = weight.shape[0], weight.shape[1]
    if Cin % groups:
        raise RuntimeError("Given groups=%d, expected weight to be divisible by %d at dimension "
                           "0, but got weight of size [%s] instead"
                           % (groups, groups, list(weight.shape)))
    if xshape[1] != Cin:
        raise RuntimeError("Given transposed=1, weight of size %s, expected input%s to have %d "
                           "channels, but got %d channels instead"
                           % (list(weight.shape), list(xshape), Cin, xshape[1]))
    Cout = Cog * groups
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != Cout):
        raise RuntimeError("Given transposed=1, weight of size %s, expected bias to be "
                           "1-dimensional with %d elements, but got bias of size %s instead"
                           % (list(weight.shape), Cout, list(bias.shape)))
    k = tuple(weight.shape[2:])
    spatial = xshape[2:]
    out = [(i - 1) * s - 2 * p + d * (kk - 1) + o + 1
           for i, s, p, d, kk, o in zip(spatial, stride, padding, dilation, k, opad)]
    if builtins.min(out) < 0:
        raise RuntimeError("Given input size per channel: (%s). Calculated output size per "
                           "channel: (%s). Output size is too small"
                           % (" x ".join(map(str, spatial)), " x ".join(map(str, out))))
    yshape = (xshape[0], Cout) + tuple(out)
    if not batched:
        yshape = yshape[1:]
    if nd == 1:
        x4 = (xshape[0], Cin, 1, spatial[0])
        w4 = (Cin, Cog, 1, k[0])
        y4 = (xshape[0], Cout, 1, out[0])
        geom = ((1, stride[0]), (0, padding[0]), (1, dilation[0]), groups, (1, spatial[0]))
    else:
        x4, w4 = xshape, tuple(weight.shape)
        y4 = (xshape[0], Cout) + tuple(out)
        geom = (stride, padding, dilation, groups, tuple(spatial))
    return _ConvTranspose2d.apply(input, weight, bias, geom + (x4, w4, y4, yshape))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 1-D convolution of (N, C_in, L) or (C_in, L) with weight
    (C_in, C_out/groups, K) (the gradient of conv1d with respect to its input)."""
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution of (N, C_in, H, W) or (C_in, H, W) with weight
    (C_in, C_out/groups, KH, KW)."""
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# ============================================================================ pooling
def _pool_out(size, k, s, p, d, ceil_mode):
    num = size + 2 * p - d * (k - 1) - 1
    if ceil_mode:
        o = -(-num // s) + 1
        if (o - 1) * s >= size + p:   # the last window must start inside the input or left pad
            o -= 1
    else:
        o = num // s + 1
    return o


class _PoolMax(Function):
    """max pool / adaptive max pool over planes: forward gets (y, idx) computed by the wrapper's
    kernel call; backward scatters dy to idx."""
    _no_cuda = "max_pool"

    @staticmethod
    def forward(ctx, x, kernel_call, planes, yshape):
        P, H, W = planes
        y, idx = kernel_call(_f(x).reshape(P, H, W))
        ctx.meta = (x.shape, P, H, W)
        ctx.save_for_backward(idx)
        ctx.mark_non_differentiable(idx)
        return y.reshape(yshape), idx.reshape(yshape)

    @staticmethod
    def backward(ctx, g, _gidx=None):
        (idx,) = ctx.saved_tensors
        shape, P, H, W = ctx.meta
        dx = _C.pool_scatter_backward(_f(g).reshape(idx.shape), idx, (H, W))
        return dx.reshape(shape), None, None, None


def _pool_input(name, input, nd, msg=None):
    _check_tensor(name, input)
    if input.dim() not in (nd + 1, nd + 2) or any(s == 0 for s in input.shape[-nd - 1:]):
        if msg is None:
            msg = ("non-empty %dD or %dD (batch mode) tensor expected for input"
                   % (nd + 1, nd + 2))
        raise RuntimeError(msg)
    if not _dt.is_floating(input._data.dtype) or input._data.dtype.itemsize < 4:
        raise RuntimeError("\"%s\" not implemented for '%s'"
                           % (name, _dt.torch_type_name(input.dtype)))
    spatial = tuple(input.shape[-nd:])
    P = int(np.prod(input.shape[:-nd], dtype=np.int64))
    if nd == 1:
        return P, (1, spatial[0]), tuple(input.shape[:-1])
    return P, spatial, tuple(input.shape[:-2])


def _pool_params(nd, kernel_size, stride, padding, dilation):
    k = _tuple(kernel_size, nd, "kernel_size", "pooling dimensions")
    s = k if (stride is None or (not isinstance(stride, numbers.Integral) and len(stride) == 0)) \
        else _tuple(stride, nd, "stride", "pooling dimensions")
    p = _tuple(padding, nd, "padding", "pooling dimensions")
    d = _tuple(dilation, nd, "dilation", "pooling dimensions")
    if builtins.min(k) <= 0:
        raise RuntimeError("kernel size should be greater than zero, but got kH: %d kW: %d"
                           % (k[0], k[-1]))
    if builtins.min(s) <= 0:
        raise RuntimeError("stride should not be zero")
    if builtins.min(d) <= 0:
        raise RuntimeError("dilation should be greater than zero, but got dilationH: %d "
                           "dilationW: %d" % (d[0], d[-1]))
    if builtins.min(p) < 0:
        raise RuntimeError("pad must be non-negative, but got pad: %d" % builtins.min(p))
    for ki, pi, di in zip(k, p, d):
        if pi > (di * (ki - 1) + 1) // 2:
            raise RuntimeError("pad should be at most half of effective kernel size, but got "
                               "pad=%d, kernel_size=%d and dilation=%d" % (pi, ki, di))
    return k, s, p, d


def _too_small(lead, spatial, out, nd):
    C = lead[-1] if lead else 1
    if nd == 1:
        sin, sout = (C, 1, spatial[-1]), (C, 1, out[-1])
    else:
        sin, sout = (C,) + tuple(spatial), (C,) + tuple(out)
    raise RuntimeError("Given input size: (%s). Calculated output size: (%s). Output size is too "
                       "small" % ("x".join(map(str, sin)), "x".join(map(str, sout))))


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    if _half.same_half(input):
        return _half.via_f32(lambda x: _max_pool(nd, x, kernel_size, stride, padding, dilation,
                                                 ceil_mode, return_indices), input)
    name = "max_pool%dd" % nd
    msg = None
    if nd == 1:
        msg = ("max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size "
               "for input, but got:%s" % list(input.shape)) if isinstance(input, Tensor) else None
    elif isinstance(input, Tensor) and input.dim() in (3, 4) and 0 in input.shape[-3:]:
        msg = ("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
               "but got:%s" % list(input.shape))
    P, hw, lead = _pool_input(name, input, nd, msg)
    k, s, p, d = _pool_params(nd, kernel_size, stride, padding, dilation)
    if nd == 1:
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    out = tuple(_pool_out(hw[i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(2))
    if builtins.min(out) <= 0:
        if nd == 1:
            raise RuntimeError("max_pool1d() Invalid computed output size: %d" % out[1])
        _too_small(lead, hw, out, nd)
    yshape = lead + (out[1:] if nd == 1 else out)

    def call(x3):
        return _C.maxpool2d_forward(x3, k, s, p, d, out)
    y, idx = _PoolMax.apply(input, call, (P,) + hw, yshape)
    return (y, idx) if return_indices else y


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


class _AvgPool(Function):
    _no_cuda = "avg_pool"
    @staticmethod
    def forward(ctx, x, planes, k, s, p, out, cip, div, yshape):
        P, H, W = planes
        y = _C.avgpool2d_forward(_f(x).reshape(P, H, W), k, s, p, out, cip, div)
        ctx.meta = (x.shape, (H, W), k, s, p, cip, div, (P,) + tuple(out))
        return y.reshape(yshape)

    @staticmethod
    def backward(ctx, g):
        shape, hw, k, s, p, cip, div, gshape = ctx.meta
        dx = _C.avgpool2d_backward(_f(g).reshape(gshape), hw, k, s, p, cip, div)
        return dx.reshape(shape), None, None, None, None, None, None, None, None


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    if _half.same_half(input):
        return _half.via_f32(lambda x: _avg_pool(nd, x, kernel_size, stride, padding, ceil_mode,
                                                 count_include_pad, divisor_override), input)
    name = "avg_pool%dd" % nd
    P, hw, lead = _pool_input(name, input, nd)
    k, s, p, _ = _pool_params(nd, kernel_size, stride, padding, 1)
    if nd == 1:
        k, s, p = (1,) + k, (1,) + s, (0,) + p
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    out = tuple(_pool_out(hw[i], k[i], s[i], p[i], 1, ceil_mode) for i in range(2))
    if builtins.min(out) <= 0:
        _too_small(lead, hw, out, nd)
    yshape = lead + (out[1:] if nd == 1 else out)
    div = 0 if divisor_override is None else int(divisor_override)
    return _AvgPool.apply(input, (P,) + hw, k, s, p, out, bool(count_include_pad), div, yshape)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


class _AdaptiveAvg(Function):
    _no_cuda = "adaptive_avg_pool"
    @staticmethod
    def forward(ctx, x, planes, out, yshape):
        P, H, W = planes
        y = _C.adaptive_avgpool2d_forward(_f(x).reshape(P, H, W), out)
        ctx.meta = (x.shape, (H, W), (P,) + tuple(out))
        return y.reshape(yshape)

    @staticmethod
    def backward(ctx, g):
        shape, hw, gshape = ctx.meta
        dx = _C.adaptive_avgpool2d_backward(_f(g).reshape(gshape), hw)
        return dx.reshape(shape), None, None, None


def _adaptive_args(name, nd, input, output_size):
    _check_tensor(name, input)
    if input.dim() not in (nd + 1, nd + 2):
        if nd == 1:
            raise RuntimeError("Expected 2 to 3 dimensions, but got %d-dimensional tensor for "
                               "argument #1 'self' (while checking arguments for %s)"
                               % (input.dim(), name))
        raise RuntimeError("%s(): Expected 3D or 4D tensor, but got %s"
                           % (name, list(input.shape)))
    for i in range(1, input.dim()):
        if input.shape[i] == 0:
            raise RuntimeError("%s(): Expected input to have non-zero size for non-batch "
                               "dimensions, but input has sizes %s with dimension %d being empty"
                               % (name, list(input.shape), i))
    if not _dt.is_floating(input._data.dtype) or input._data.dtype.itemsize < 4:
        raise RuntimeError("\"%s\" not implemented for '%s'"
                           % (name, _dt.torch_type_name(input.dtype)))
    spatial = tuple(input.shape[-nd:])
    if isinstance(output_size, numbers.Integral) or output_size is None:
        osz = (output_size,) * nd
    else:
        osz = tuple(output_size)
        if len(osz) != nd:
            raise ValueError("%s: output_size must be %d-dimensional" % (name, nd))
    osz = tuple(spatial[i] if o is None else int(o) for i, o in enumerate(osz))
    if builtins.min(osz) < 0:
        raise RuntimeError("%s: elements of output_size must be greater than or equal to 0 but "
                           "received {%s}" % (name, ", ".join(map(str, osz))))
    P = int(np.prod(input.shape[:-nd], dtype=np.int64))
    lead = tuple(input.shape[:-nd])
    if nd == 1:
        return P, (1, spatial[0]), (1, osz[0]), lead + osz
    return P, spatial, osz, lead + osz


def adaptive_avg_pool1d(input, output_size):
    if _half.same_half(input):
        return _half.via_f32(lambda x: adaptive_avg_pool1d(x, output_size), input)
    P, hw, out, yshape = _adaptive_args("adaptive_avg_pool1d", 1, input, output_size)
    return _AdaptiveAvg.apply(input, (P,) + hw, out, yshape)


def adaptive_avg_pool2d(input, output_size):
    if _half.same_half(input):
        return _half.via_f32(lambda x: adaptive_avg_pool2d(x, output_size), input)
    P, hw, out, yshape = _adaptive_args("adaptive_avg_pool2d", 2, input, output_size)
    return _AdaptiveAvg.apply(input, (P,) + hw, out, yshape)


def _adaptive_max(name, nd, input, output_size, return_indices):
    if _half.same_half(input):
        return _half.via_f32(lambda x: _adaptive_max(name, nd, x, output_size, return_indices),
                             input)
    P, hw, out, yshape = _adaptive_args(name, nd, input, output_size)

    def call(x3):
        return _C.adaptive_maxpool2d_forward(x3, out)
    y, idx = _PoolMax.apply(input, call, (P,) + hw, yshape)
    return (y, idx) if return_indices else y


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


# ============================================================================ channel dropout
def _channel_dropout(input, p, training, inplace, batched):
    if p < 0.0 or p > 1.0:
        raise ValueError("dropout probability has to be between 0 and 1, but got %s" % (p,))
    if not training or p == 0.0:
        return input
    x = input._data
    nlead = 2 if batched else 1
    mshape = tuple(x.shape[:nlead]) + (1,) * (x.ndim - nlead)
    if p == 1.0:
        mask = np.zeros(mshape, x.dtype)
    else:
        keep = _rng(None).random(mshape, dtype=np.float32 if x.dtype == np.float32
                                 else np.float64) >= p
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    if inplace:   # as F.dropout(inplace=True): x *= mask in x's storage, history rebased
        from .activation import _check_inplace_target, MulMaskInplace
        _check_inplace_target(input)
        return MulMaskInplace.apply(input, mask)
    return input * _wrap(mask)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability p (scaling the rest
    by 1/(1-p)) in training mode."""
    _check_tensor("dropout1d", input)
    if input.dim() not in (2, 3):
        raise RuntimeError("dropout1d: Expected 2D or 3D input, but received a %dD input. Note "
                           "that dropout1d exists to provide channel-wise dropout on inputs with "
                           "1 spatial dimension, a channel dimension, and an optional batch "
                           "dimension (i.e. 2D or 3D inputs)." % input.dim())
    return _channel_dropout(input, p, training, inplace, input.dim() == 3)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, H, W) or (C, H, W) inputs with probability p in training
    mode (a 3-D input is taken as (N, C, L), with torch's warning)."""
    _check_tensor("dropout2d", input)
    nd = input.dim()
    if nd not in (3, 4):
        warnings.warn("dropout2d: Received a %d-D input to dropout2d, which is deprecated and "
                      "will result in an error in a future release. To retain the behavior "
                      "and silence this warning, please use dropout instead. Note that "
                      "dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      "spatial dimensions, a channel dimension, and an optional batch "
                      "dimension (i.e. 3D or 4D inputs)." % nd)
    if nd == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that "
                      "channel-wise 1D dropout behavior is desired - input is interpreted as "
                      "shape (N, C, L), where C is the channel dim. This behavior will change "
                      "in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise "
                      "dropout behavior, please switch to using dropout1d instead.")
    return _channel_dropout(input, p, training, inplace, nd >= 2)


# ============================================================================ pad
def _pad_index(n, lo, hi, mode):
    """source index along one dim and the kept run [j0, j1) of output positions that read
    consecutive inputs. reflect / replicate pad the whole input, then crop the negative sides
    (torch's index formulas); circular crops first and wraps around what is left (torch's slice
    copies)."""
    if mode == "circular":
        a, b = builtins.max(-lo, 0), n - builtins.max(-hi, 0)
        m = b - a
        i = np.arange(-builtins.max(lo, 0), m + builtins.max(hi, 0), dtype=np.int64)
        j0 = builtins.max(lo, 0)
        return np.mod(i, m) + a if m > 0 else i, j0, j0 + builtins.max(m, 0)
    plo, clo = builtins.max(lo, 0), builtins.max(-lo, 0)
    out = n + lo + hi
    q = np.arange(out, dtype=np.int64) + clo - plo     # position in the input's coordinates
    if mode == "reflect":
        q = np.abs(q)
        q = np.where(q >= n, 2 * (n - 1) - q, q)
    else:  # replicate
        q = np.clip(q, 0, n - 1)
    j0 = builtins.min(builtins.max(plo - clo, 0), out)
    return q, j0, builtins.max(builtins.min(n + plo - clo, out), j0)


def _pad_check(mode, shape, k, pad):
    """torch's checks for the reflect / replicate / circular modes (messages as torch 2.13)"""
    nd = len(shape)
    spatial = shape[nd - k:]
    if mode == "circular":
        for i in range(k):   # first padded dim first, as torch
            n = spatial[i]
            lo, hi = pad[2 * (k - 1 - i)], pad[2 * (k - 1 - i) + 1]
            if lo > n or hi > n:
                raise RuntimeError("Padding value causes wrapping around more than once.")
            if n + lo + hi < 0:
                raise RuntimeError("Negative padding value is resulting in an empty dimension")
        def clip_slice(start, end, size):   # at::slice's bounds: negative ends wrap once
            end = end + size if end < 0 else end
            start, end = builtins.min(start, size), builtins.min(builtins.max(end, 0), size)
            return builtins.max(end - start, 0)

        for i in reversed(range(k)):
            n = spatial[i]
            lo, hi = pad[2 * (k - 1 - i)], pad[2 * (k - 1 - i) + 1]
            m = n - builtins.max(-lo, 0) - builtins.max(-hi, 0)
            out = n + lo + hi
            if m < 0:   # the two crops overlap: torch copies a kept slice that does not fit
                a = clip_slice(builtins.max(lo, 0), out - builtins.max(hi, 0), out)
                b = clip_slice(builtins.max(-lo, 0), n - builtins.max(-hi, 0), n)
                if a != b and b != 1:
                    raise RuntimeError("The size of tensor a (%d) must match the size of tensor "
                                       "b (%d) at non-singleton dimension %d"
                                       % (a, b, nd - k + i))
            # wrapping around less than the padding needs (torch copies overlapping or
            # uninitialised memory there); an empty result is fine
            if out > 0 and (m < 0 or lo > m or hi > m):
                raise RuntimeError("Padding value causes wrapping around more than once.")
        return
    lead = 1 if nd == k + 2 else 0
    if any(v == 0 for v in shape[lead:]):
        raise RuntimeError("Expected %dD or %dD (batch mode) tensor with possibly 0 batch size "
                           "and other non-zero dimensions for input, but got: %s"
                           % (k + 1, k + 2, list(shape)))
    if mode == "reflect":
        for i in range(k):   # the last dim first: Argument #4, then #6, #8
            d = nd - 1 - i
            lo, hi = pad[2 * i], pad[2 * i + 1]
            if lo >= shape[d] or hi >= shape[d]:
                raise RuntimeError("Argument #%d: Padding size should be less than the "
                                   "corresponding input dimension, but got: padding (%d, %d) "
                                   "at dimension %d of input %s"
                                   % (4 + 2 * i, lo, hi, d, list(shape)))
    out = [spatial[i] + pad[2 * (k - 1 - i)] + pad[2 * (k - 1 - i) + 1] for i in range(k)]
    if builtins.max(out) < 1:
        names = "DHW"[3 - k:]
        if k == 1:
            raise RuntimeError("input (W: %d) is too small. Calculated output W: %d"
                               % (spatial[0], out[0]))
        sep = " " if mode == "replicate" and k == 2 else ""
        ins = ("D: %d " % spatial[0] if k == 3 else "") + "H: %d, W: %d" % tuple(spatial[-2:])
        raise RuntimeError("input (%s%s) is too small. Calculated output %s"
                           % (ins, sep, " ".join("%s: %d" % (c, o) for c, o in zip(names, out))))
    if builtins.min(out) < 0:
        oshape = list(shape[:nd - k]) + out
        raise RuntimeError("Trying to create tensor with negative dimension %d: %s"
                           % (next(o for o in out if o < 0), oshape))


def _pad_gather(x, dims_idx):
    out = x
    for d, idx, _, _ in dims_idx:
        out = np.take(out, idx, axis=d)
    return np.ascontiguousarray(out)


# constant mode (F.pad's own Function; its argument checks are in cengine.nn.functional.pad)
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


class _PadIndex(Function):
    """reflect / replicate / circular padding: out = x gathered by one index array per padded
    dim (d, idx, j0, j1), output positions [j0, j1) being the kept input run; backward adds the
    gradient back through the same indices."""

    @staticmethod
    def forward(ctx, x, dims_idx):
        ctx.meta = (x.shape, dims_idx)
        return _pad_gather(x, dims_idx)

    @staticmethod
    def backward(ctx, g):
        shape, dims_idx = ctx.meta
        for d, idx, j0, j1 in reversed(dims_idx):
            n = shape[d]
            gs = list(g.shape)
            gs[d] = n
            acc = np.zeros(gs, g.dtype)
            gm = np.moveaxis(g, d, 0)
            am = np.moveaxis(acc, d, 0)
            # the kept run [j0, j1) of output positions reads consecutive inputs: one slice;
            # each padded position adds into its source, in output order (no np.add.at)
            if j1 > j0:
                am[idx[j0]:idx[j0] + (j1 - j0)] += gm[j0:j1]
            for j in range(len(idx)):
                if j < j0 or j >= j1:
                    am[idx[j]] += gm[j]
            g = acc
        return g, None


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad)//2 dims, pad = (left_last, right_last, left_prev, right_prev, ...).
    mode 'constant' (value, default 0; negative pads crop), 'reflect' (mirror without the edge),
    'replicate' (repeat the edge) or 'circular' (wrap around)."""
    from ..nn import functional as F
    if mode == "constant":
        return F.pad(input, pad, mode, value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError("Unrecognised padding mode %s" % mode)
    _check_tensor("pad", input)
    pad = tuple(int(v) for v in pad)
    if value is not None and value != 0:
        raise AssertionError("Padding mode \"%s\" doesn't take in value argument" % mode)
    k = len(pad) // 2
    nd = input.dim()
    if len(pad) % 2 or k not in (1, 2, 3) or nd not in (k + 1, k + 2):
        raise NotImplementedError("Padding size %d is not supported for %dD input tensor."
                                  % (len(pad), nd))
    _pad_check(mode, tuple(input.shape), k, pad)
    dims_idx = []
    for i in range(k):
        d = nd - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        if lo or hi:
            idx, j0, j1 = _pad_index(input.shape[d], lo, hi, mode)
            dims_idx.append((d, idx, j0, j1))
    if not _dt.is_floating(input._data.dtype):   # no gradient: gather only
        return _wrap(_pad_gather(input._data, dims_idx))
    return _PadIndex.apply(input, dims_idx)
