"""CTC loss with autograd (torch.nn.functional.ctc_loss's signature and semantics).

Forward and backward are the C kernels of src_c/ctc.c: log-space alpha (forward, saved) and beta
(backward) recursions over the extended label sequence, one sequence per OpenMP task. The
backward computes d loss / d log_probs directly from alpha*beta in torch's form
(exp(log_probs) - occupancy; entries past a sequence's input length are zero), so there is no
autograd through the recursion."""
import numbers

import numpy as np

from .. import _C
from .. import _device as _dv
from .. import dtypes as _dt
from ..autograd.function import Function
from ..tensor import Tensor

__all__ = ["ctc_loss"]

_WHERE = " (while checking arguments for ctc_loss)"


class CTCLossFunction(Function):
    """forward(ctx, log_probs (T,N,C), tgt, off, il, tl, blank, reduction, zero_infinity)"""
    _no_cuda = "ctc_loss"

    @staticmethod
    def forward(ctx, lp, tgt, off, il, tl, blank, reduction, zero_infinity):
        lp = np.ascontiguousarray(lp)
        nll, alpha = _C.ctc_loss_forward(lp, tgt, off, il, tl, blank)
        loss = nll
        if zero_infinity:
            loss = np.where(np.isinf(nll), np.zeros((), nll.dtype), nll)
        if reduction == "sum":
            out = np.asarray(loss.sum(dtype=loss.dtype))
        elif reduction == "mean":
            div = np.maximum(tl, 1).astype(loss.dtype)
            out = np.asarray((loss / div).mean(dtype=loss.dtype) if loss.size else
                             np.array(np.nan, loss.dtype))
        else:
            out = loss
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(lp, alpha, nll)
        ctx.args = (tgt, off, il, tl, blank, reduction, zero_infinity)
        return out

    @staticmethod
    def backward(ctx, grad):
        lp, alpha, nll = ctx.saved_tensors
        tgt, off, il, tl, blank, reduction, zero_infinity = ctx.args
        N = nll.shape[0]
        grad = np.asarray(grad, dtype=lp.dtype)
        if reduction == "none":
            g = np.ascontiguousarray(np.broadcast_to(grad, (N,)), dtype=lp.dtype)
        elif reduction == "sum":
            g = np.full(N, grad, dtype=lp.dtype)
        else:
            g = (grad / np.maximum(tl, 1).astype(lp.dtype) / lp.dtype.type(N)).astype(lp.dtype)
        dlp = _C.ctc_loss_backward(lp, alpha, nll, np.ascontiguousarray(g), tgt, off, il, tl,
                                   blank, zero_infinity)
        return dlp, None, None, None, None, None, None, None


def _lengths(name, v, N):
    """input_lengths / target_lengths: Tensor, ndarray, list/tuple of ints, or an int -> int64 (N,)"""
    if isinstance(v, Tensor):
        a = v._data
    elif isinstance(v, np.ndarray):
        a = v
    elif isinstance(v, (list, tuple)):
        for x in v:
            if isinstance(x, Tensor):
                x = x.item()
            if isinstance(x, bool) or not isinstance(x, (numbers.Integral, np.integer)):
                raise TypeError("ctc_loss(): %s must be a tuple of ints or a Tensor, got an "
                                "element of type %s" % (name, type(x).__name__))
        a = np.array([int(x.item()) if isinstance(x, Tensor) else int(x) for x in v],
                     dtype=np.int64)
    elif isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool):
        a = np.array([int(v)], dtype=np.int64)
    else:
        raise TypeError("ctc_loss(): %s must be a tuple of ints or a Tensor, not %s"
                        % (name, type(v).__name__))
    if a.dtype.kind not in "iu":
        raise RuntimeError("%s must be integral" % name)
    a = np.ascontiguousarray(a.reshape(-1), dtype=np.int64)
    if a.shape[0] != N:
        raise RuntimeError("%s must be of size batch_size" % name)
    return a


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    """Connectionist Temporal Classification loss (torch.nn.functional.ctc_loss).

    log_probs (T, N, C) or unbatched (T, C): log-probabilities (e.g. log_softmax outputs),
    float32 or float64. targets: padded (N, S) or concatenated 1-D (sum(target_lengths)) class
    indices in [0, C), never blank; unbatched: (S,). input_lengths, target_lengths: (N,) as
    Tensors, lists or tuples. reduction: 'none' (N,), 'sum', or 'mean' (each loss divided by its
    target length, then averaged over the batch). zero_infinity: infinite losses (no valid
    alignment) and their gradients become 0."""
    from ..amp import autocast_mode as _am
    if _am._tls.lowp is not None:     # autocast: a float32 op
        log_probs = _am.cast_fp32(log_probs)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError("%s is not a valid value for reduction" % reduction)
    if not isinstance(log_probs, Tensor):
        raise TypeError("ctc_loss(): argument 'log_probs' (position 1) must be Tensor, not %s"
                        % type(log_probs).__name__)
    if not isinstance(targets, Tensor):
        if isinstance(targets, np.ndarray):
            from ..tensor import _wrap
            targets = _wrap(targets)
        else:
            raise TypeError("ctc_loss(): argument 'targets' (position 2) must be Tensor, not %s"
                            % type(targets).__name__)
    if log_probs.is_cuda or targets.is_cuda:
        raise _dv.no_cuda_path("ctc_loss")
    dt = log_probs._data.dtype
    if dt not in (np.float32, np.float64):
        raise NotImplementedError("\"ctc_loss_cpu\" not implemented for '%s'"
                                  % _dt.torch_type_name(dt))
    unbatched = log_probs.dim() == 2
    if log_probs.dim() not in (2, 3):
        raise RuntimeError("Expected 3-dimensional tensor, but got %d-dimensional tensor for "
                           "argument #1 'log_probs'%s" % (log_probs.dim(), _WHERE))
    if unbatched:
        log_probs = log_probs.unsqueeze(1)
    T, N, C = log_probs.shape
    if not isinstance(blank, (numbers.Integral, np.integer)) or not (0 <= blank < C):
        raise RuntimeError("blank must be in label range")
    blank = int(blank)
    tg = targets._data
    if tg.dtype.kind not in "iu":
        raise RuntimeError("ctc_loss: targets must be an integer tensor (Long or Int), got %s"
                           % tg.dtype)
    if unbatched and tg.ndim == 1:
        tg = tg[None, :]
    il = _lengths("input_lengths", input_lengths, N)
    tl = _lengths("target_lengths", target_lengths, N)
    for name, a, hi in (("input_lengths", il, T), ("target_lengths", tl, None)):
        if N and a.min() < 0:
            raise RuntimeError("Expected %s to have value at least 0, but got value %d%s"
                               % (name, a.min(), _WHERE))
        if hi is not None and N and a.max() > hi:
            raise RuntimeError("Expected %s to have value at most %d, but got value %d%s"
                               % (name, hi, a.max(), _WHERE))
    if tg.ndim == 2:
        if tg.shape[0] != N:
            raise RuntimeError("Expected tensor to have size %d at dimension 0, but got size %d "
                               "for argument #2 'targets'%s" % (N, tg.shape[0], _WHERE))
        S = tg.shape[1]
        if N and tl.max() > S:
            raise RuntimeError("Expected tensor to have size at least %d at dimension 1, but got "
                               "size %d for argument #2 'targets'%s" % (tl.max(), S, _WHERE))
        used = np.arange(S)[None, :] < tl[:, None]
        lab = np.ascontiguousarray(np.asarray(tg, dtype=np.int64)[used])   # compacted, row order
    elif tg.ndim == 1:
        tot = int(tl.sum())
        if tg.shape[0] != tot:
            raise RuntimeError("Expected tensor to have size %d at dimension 0, but got size %d "
                               "for argument #2 'targets'%s" % (tot, tg.shape[0], _WHERE))
        lab = np.ascontiguousarray(tg, dtype=np.int64)
    else:
        raise RuntimeError("Expected 1 to 2 dimensions, but got %d-dimensional tensor for "
                           "argument #2 'targets'%s" % (tg.ndim, _WHERE))
    if lab.size:
        lo, hi = int(lab.min()), int(lab.max())
        if lo < 0 or hi >= C:
            raise RuntimeError("ctc_loss: target index %d is out of bounds for %d classes"
                               % (lo if lo < 0 else hi, C))
        if (lab == blank).any():
            raise RuntimeError("ctc_loss: targets must not contain the blank index (%d)" % blank)
    off = (np.concatenate([[0], np.cumsum(tl)[:-1]]) if N else tl).astype(np.int64)
    out = CTCLossFunction.apply(log_probs, lab, off, il, tl, blank, reduction,
                                bool(zero_infinity))
    if unbatched and reduction == "none":
        out = out.squeeze(0)
    return out
