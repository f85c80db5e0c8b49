"""Embedding lookup with autograd on the C gather / scatter-add kernels (src_c/embedding.c):
forward gathers rows of the weight, backward adds the output gradient's rows back at their
indices (repeated indices add up, race-free under threads; padding_idx rows stay zero;
scale_grad_by_freq divides by each index's count). The torch-named surface (index checks,
padding_idx wrapping, max_norm renormalisation) is cengine.nn.functional.embedding."""
import numpy as np

from .. import _device as _dv

from .. import _C
from ..cuda import _ops as _cu
from ..autograd.function import Function
from ._util import _f


def _k_embedding_forward(W, idx):
    """W (V,D), idx (n) int64 -> out (n,D) = W[idx] (C gather; IndexError on a bad index)."""
    if type(W) is not np.ndarray:
        return _cu.embedding_forward(W, idx)
    return _C.embedding_forward(W, idx)


def _k_embedding_backward(dy, idx, V, padding_idx):
    """-> dW (V,D) with dy rows added at idx (repeated indices add up; race-free under threads),
    rows equal to padding_idx (None: no padding) left at zero."""
    if type(dy) is not np.ndarray:
        return _cu.embedding_backward(dy, idx, V, padding_idx)
    return _C.embedding_backward(dy, idx, V, padding_idx)


class _Embedding(Function):
    @staticmethod
    def forward(ctx, W, idx, padding_idx, scale_grad_by_freq):
        flat = _dv.ascontiguousarray(idx.reshape(-1), dtype=np.int64)
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
