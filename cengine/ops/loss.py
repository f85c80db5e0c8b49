"""Losses with their own autograd Functions: cross-entropy (class indices or class probabilities;
fused log-softmax + NLL C kernels of src_c/loss.c, the reduction folded into one backward pass),
nll_loss, the elementwise Huber / smooth-L1 and binary cross-entropy terms (torch's gradients at
the edges). Losses composed of differentiable ops (mse, l1, kl_div, BCE with logits) and the
torch-named surface (argument checks, shapes, warnings) are in cengine.nn.functional."""
import numpy as np

from .. import _device as _dv

from .. import _C
from .. import dtypes as _dt
from ..cuda import _ops as _cu
from ..autograd.function import Function
from ._util import _f, _reshape, _keep


_F32 = np.dtype(np.float32)
_BF16 = _dt.BF16_NP


def lowp_logits_ok(x, target, weight):
    """class-index cross_entropy whose logits x may stay bfloat16 under CPU autocast (the kernel
    reads them in float32 math: torch casts them to float32, with the same results): x a CPU
    bfloat16 tensor, integer targets, weight None or float32"""
    xd = getattr(x, "_data", None)
    td = getattr(target, "_data", None)
    return (type(xd) is np.ndarray and xd.dtype == _BF16 and xd.ndim >= 1 and
            td is not None and td.dtype.kind in "iu" and tuple(xd.shape) != tuple(td.shape) and
            (weight is None or getattr(weight, "_data", None) is not None and
             weight._data.dtype == _F32))


def _k_cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    """logits (N,C), target (N) int64 -> (loss_rows (N), lse (N), wrow (N)), fused C kernel.
    loss_i = (1-eps) w[t](lse - x[t]) + eps/C sum_c w[c](lse - x[c]); 0 on ignored rows;
    wrow_i = weight of row i in a 'mean' reduction (w[t] or 1, 0 when ignored).
    Raises IndexError "Target k is out of bounds." for a bad target."""
    if type(logits) is not np.ndarray:
        return _cu.cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing)
    return _C.cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing)


def _k_cross_entropy_backward(logits, target, lse, g, weight, ignore_index, label_smoothing):
    """dlogits (N,C) = g_i [((1-eps) w[t] + eps/C sum(w)) p - eps/C w - (1-eps) w[t] onehot(t)]."""
    if type(logits) is not np.ndarray:
        return _cu.cross_entropy_backward(logits, target, lse, g, weight, ignore_index,
                                          label_smoothing)
    return _C.cross_entropy_backward(logits, target, lse, g, weight, ignore_index,
                                     label_smoothing)


def _k_cross_entropy_prob_forward(logits, target, weight, label_smoothing):
    """logits, target (N,C) -> (loss_rows, lse); q = (1-eps) target + eps/C,
    loss_i = -sum_c w[c] q[i,c] (x[i,c] - lse_i)."""
    if type(logits) is not np.ndarray:
        return _cu.cross_entropy_prob_forward(logits, target, weight, label_smoothing)
    return _C.cross_entropy_prob_forward(logits, target, weight, label_smoothing)


def _k_cross_entropy_prob_backward(logits, target, lse, g, weight, label_smoothing):
    """dlogits = g_i (p_c sum_k w_k q_k - w_c q_c)."""
    if type(logits) is not np.ndarray:
        return _cu.cross_entropy_prob_backward(logits, target, lse, g, weight, label_smoothing)
    return _C.cross_entropy_prob_backward(logits, target, lse, g, weight, label_smoothing)


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


def _mean_scale(g, denom):
    """g / denom for a 'mean' reduction's backward; denom 0 (empty batch, every row ignored or
    of weight 0) gives inf/NaN like torch's division instead of ZeroDivisionError."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float64(float(g)) / np.float64(float(denom))


def _reduce_rows(loss, reduction, denom, out_shape, dtype):
    """The output of a loss over M rows (loss (M) per-row values): 'mean' divides the float64
    sum by denom (NaN when denom is 0: an empty batch, every row ignored or of weight 0, as
    torch), 'sum' sums in float64, 'none' gives the rows in out_shape."""
    if reduction == "mean":
        return _dv.asarray(loss.sum(dtype=np.float64) / denom if denom else np.nan, dtype, loss)
    if reduction == "sum":
        return _dv.asarray(loss.sum(dtype=np.float64), dtype)
    return loss.reshape(out_shape)


def _row_grads(g, M, reduction, denom, dtype=None):
    """The upstream gradient of each of the M rows: g's rows for 'none', else its one value
    (divided by denom for 'mean'; an empty or all-ignored batch: no row to scale, torch's zero
    gradient). dtype None keeps g's rows as they are and a float64 fill."""
    if reduction == "none":
        r = _f(g).reshape(M)
        return r if dtype is None else r.astype(dtype, copy=False)
    return _dv.xp(g).full(M, _mean_scale(g, denom) if reduction == "mean" else float(g), dtype)


def _logits_rows(x):
    """(N,C,d...) / (C,) / (N,C) array -> contiguous (M, C) rows with classes last."""
    if x.ndim == 1:
        return _f(x).reshape(1, -1)
    xm = x if x.ndim == 2 else np.moveaxis(x, 1, -1)
    # (rows counted from the shape: -1 cannot be inferred when there are no classes)
    return _f(xm).reshape(x.size // x.shape[1] if x.shape[1] else
                          int(np.prod(xm.shape[:-1], dtype=np.int64)), x.shape[1])


def _unlogits_rows(g2, shape):
    if len(shape) <= 2:
        return _reshape(g2, shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(g2.reshape(moved), -1, 1)


class _CrossEntropy(Function):
    """Fused log-softmax + NLL on (M, C) rows; the reduction is folded into one backward.
    bfloat16 logits (CPU; autocast's float32 cross_entropy, see lowp_logits_ok) are read by the
    kernel as they are: float32 math, loss and weight, the results of casting the logits to
    float32 first bit for bit, and a bfloat16 gradient (the float32 one rounded once, as the
    cast's backward rounds it) without float32 copies of the logits and their gradient."""

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, ls, reduction, out_shape):
        z = _logits_rows(x)
        cd = _F32 if z.dtype == _BF16 else z.dtype     # the dtype of the math and the loss
        t = _dv.ascontiguousarray(target.reshape(-1), dtype=np.int64)
        w = None if weight is None else _f(weight).astype(cd, copy=False)
        loss, lse, wrow = _k_cross_entropy_forward(z, t, w, ignore_index, ls)
        ctx.save_for_backward(_keep(z, x), t, w, lse)
        denom = wrow.sum(dtype=np.float64) if reduction == "mean" else None
        out = _reduce_rows(loss, reduction, denom, out_shape, cd)
        ctx.meta = (x.shape, ignore_index, ls, reduction, denom)
        return out

    @staticmethod
    def backward(ctx, g):
        zs, t, w, lse = ctx.saved_tensors
        shape, ignore_index, ls, reduction, denom = ctx.meta
        z = _logits_rows(zs)
        grow = _row_grads(g, z.shape[0], reduction, denom, lse.dtype)
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
        out_shape = ((x.shape[0],) + tuple(x.shape[2:])) if x.ndim > 1 else ()
        out = _reduce_rows(loss, reduction, z.shape[0], out_shape, z.dtype)
        ctx.meta = (x.shape, ls, reduction)
        return out

    @staticmethod
    def backward(ctx, g):
        zs, qs, w, lse = ctx.saved_tensors
        shape, ls, reduction = ctx.meta
        z = _logits_rows(zs)
        q = _logits_rows(qs).astype(z.dtype, copy=False)
        M = z.shape[0]
        grow = _row_grads(g, M, reduction, M, z.dtype)
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = _unlogits_rows(_k_cross_entropy_prob_backward(z, q, lse, grow, w, ls), shape)
        if ctx.needs_input_grad[1]:
            # d loss_i / d target[i,c] = -(1-eps) w_c (x_c - lse_i)
            wz = (z - lse[:, None]) if w is None else (z - lse[:, None]) * w
            gt = _unlogits_rows(-(1 - ls) * grow[:, None] * wz, shape)
        return gx, gt, None, None, None


class _NLL(Function):
    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction, out_shape):
        z = _logits_rows(x)
        t = target.reshape(-1).astype(np.int64, copy=False)
        valid = t != ignore_index
        ts = np.where(valid, t, 0)
        w = _dv.ones(z, z.shape[1], z.dtype) if weight is None else weight.astype(z.dtype)
        wt = np.where(valid, w[ts], 0).astype(z.dtype)
        # ignored rows are exactly 0 (torch), even where their log-probability is -inf (0 * -inf
        # would be NaN); a kept row of weight 0 and value -inf stays NaN, as in torch
        with np.errstate(invalid="ignore"):
            loss = np.where(valid, -wt * z[_dv.arange(z, z.shape[0]), ts], 0).astype(z.dtype)
        denom = wt.sum(dtype=np.float64) if reduction == "mean" else None
        out = _reduce_rows(loss, reduction, denom, out_shape, z.dtype)
        ctx.save_for_backward(ts, wt, valid)
        ctx.meta = (x.shape, z.shape, reduction, denom)
        return out

    @staticmethod
    def backward(ctx, g):
        ts, wt, valid = ctx.saved_tensors
        shape, zshape, reduction, denom = ctx.meta
        grow = _row_grads(g, zshape[0], reduction, denom)
        dz = _dv.zeros(wt, zshape, wt.dtype)
        with np.errstate(invalid="ignore"):   # ignored rows get 0 even when grow is inf (0/0 mean)
            dz[_dv.arange(wt, zshape[0]), ts] = np.where(valid, -wt * grow, 0)
        return _unlogits_rows(dz, shape), None, None, None, None, None
