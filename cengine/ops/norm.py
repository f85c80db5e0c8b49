"""Normalisation layers with autograd on fused C kernels: layer_norm and rms_norm over the last D
elements of each of R rows (src_c/norm.c; mean/rstd saved, one fused backward pass), and
training-mode batch norm over every axis but 1 (the channel kernels of conv.pxi). The torch-named
surface (shape checks, running statistics, evaluation mode) is cengine.nn.functional."""
import numpy as np

from .. import _C
from ..cuda import _ops as _cu
from ..autograd.function import Function
from ._util import _f, _reshape, _keep


def _k_layer_norm_forward(x, w, b, eps):
    """x (R,D) -> (y, mean (R), rstd (R)); y = (x-mean)*rstd*w + b."""
    if type(x) is not np.ndarray:
        return _cu.layer_norm_forward(x, w, b, eps)
    return _C.layer_norm_forward(x, w, b, eps)


def _k_layer_norm_backward(dy, x, w, mean, rstd, need_x, need_w, need_b):
    """-> (dx, dw, db): dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy*w;
    dw = sum dy*xhat, db = sum dy (None where not needed)."""
    if type(x) is not np.ndarray:
        return _cu.layer_norm_backward(dy, x, mean, rstd, w, need_x, need_w, need_b)
    return _C.layer_norm_backward(dy, x, mean, rstd, w, need_dx=need_x, need_dweight=need_w,
                                  need_dbias=need_b)


def _k_rms_norm_forward(x, w, eps):
    """x (R,D) -> (y, rstd (R)); rstd = 1/sqrt(mean(x^2) + eps), y = x*rstd*w."""
    if type(x) is not np.ndarray:
        return _cu.rms_norm_forward(x, w, eps)
    return _C.rms_norm_forward(x, w, eps)


def _k_rms_norm_backward(dy, x, w, rstd, need_x, need_w):
    """-> (dx, dw): dx = rstd (g - xhat mean(g xhat)), g = dy*w, xhat = x*rstd."""
    if type(x) is not np.ndarray:
        return _cu.rms_norm_backward(dy, x, rstd, w, need_x, need_w)
    return _C.rms_norm_backward(dy, x, rstd, w, need_dx=need_x, need_dweight=need_w)


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


class _BatchNorm(Function):
    """Training-mode batch norm over all axes but 1 on the C kernels of conv.pxi (input seen as
    (N, C, S)): batch statistics in one threaded pass per channel, y = x*a[c] + b[c] in another;
    backward fused per channel. Saves x, mean, rstd."""

    @staticmethod
    def forward(ctx, x, w, b, eps):
        N, C = x.shape[0], x.shape[1]
        S = int(np.prod(x.shape[2:], dtype=np.int64))
        x3 = _f(x).reshape(N, C, S)
        if type(x3) is not np.ndarray:           # CuPy storage: the array-module formulas
            mean, var = _cu.bn_stats(x3)
        else:
            mean, var = _C.bn_stats(x3)
        rstd = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(x.dtype)
        a = rstd * w.astype(x.dtype, copy=False) if w is not None else rstd
        shift = -mean * a
        if b is not None:
            shift = shift + b.astype(x.dtype, copy=False)
        y = _C.bn_apply(x3, _f(a), _f(shift)) if type(x3) is np.ndarray else \
            x3 * a[None, :, None] + shift[None, :, None]
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
        dx, dw, db = (_C.bn_backward if type(xs) is np.ndarray else _cu.bn_backward)(
            _f(g.astype(dt, copy=False)).reshape(N, C, S), _f(xs).reshape(N, C, S), mean, rstd,
            None if w is None else _f(w.astype(dt, copy=False)), ctx.needs_input_grad[0],
            need_w, need_b)
        return (None if dx is None else dx.reshape(shape),
                None if dw is None else dw.astype(w.dtype, copy=False),
                db, None)
