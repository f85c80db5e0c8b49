"""softmax / log_softmax with autograd on the C row kernels (src_c/softmax.c): the rows are the
softmax dimension moved last and made contiguous; backward is Jacobian-free
(softmax dx = y (dy - sum(dy y)), log_softmax dx = dy - exp(y) sum(dy)) and keeps only the output.
The torch-named surface (argument checks, dtype=, float16 routing) is cengine.nn.functional."""
import numpy as np

from .. import _C
from ..cuda import _ops as _cu
from ..autograd.function import Function
from ._util import _f, _reshape


def _k_softmax_forward(x, log):
    """x (R,C) -> softmax or log_softmax over the last axis (C kernel; CuPy: cengine.cuda)."""
    if type(x) is not np.ndarray:
        return _cu.softmax_forward(x, log)
    return _C.softmax_forward(x, log=log)


def _k_softmax_backward(y, dy, log):
    """Jacobian-free: softmax dx = y*(dy - sum(dy*y)); log_softmax dx = dy - exp(y)*sum(dy)."""
    if type(y) is not np.ndarray:
        return _cu.softmax_backward(y, dy, log)
    return _C.softmax_backward(y, dy, log=log)


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
