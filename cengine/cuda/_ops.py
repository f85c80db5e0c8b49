"""The kernels of the ops for CuPy arrays, with the signatures and results of the C kernels
they stand in for (cengine._C.*): the ops call these when the storage is a CuPy array.

Each uses the fused CUDA kernel of cengine/cuda/_kernels.py when that can run (real CuPy,
float32/float64 rows), and otherwise the same formula written with the array module's functions
(any CuPy-like module; this is also the reference the GPU kernels are tested against). Nothing
here imports CuPy: the module comes from the arrays (cengine._device.xp)."""
import math

import numpy as np

from .. import _device as _dv
from . import _kernels as _K

_SQRT1_2 = 1.0 / math.sqrt(2.0)


def _erf(xp, x):
    if xp is np:
        from scipy.special import erf
        return erf(x)
    import cupyx.scipy.special as sp   # CuPy's companion package (ships with cupy)
    return sp.erf(x)


# ----------------------------------------------------------------------------- activations
def act_forward(kind, x, out=None, alpha=None, beta=None):
    """_C.act_forward: y = f(x) for kind relu/leaky_relu/sigmoid/tanh/silu/gelu/gelu_tanh/
    softplus (alpha: leaky slope or softplus beta; beta: softplus threshold)."""
    xp = _dv.xp(x)
    t = x.dtype.type
    if kind == "relu":
        y = xp.maximum(x, t(0))
        y = xp.where(x != x, x, y)            # NaN stays NaN, as the C kernel and torch
    elif kind == "leaky_relu":
        a = 0.01 if alpha is None else float(alpha)
        y = xp.where(x > 0, x, x * t(a))
    elif kind == "sigmoid":
        y = t(1) / (t(1) + xp.exp(-x))
    elif kind == "tanh":
        y = xp.tanh(x)
    elif kind == "silu":
        y = x / (t(1) + xp.exp(-x))
    elif kind == "gelu":
        y = t(0.5) * x * (t(1) + _erf(xp, x * t(_SQRT1_2)))
    elif kind == "gelu_tanh":
        k = t(math.sqrt(2.0 / math.pi))
        y = t(0.5) * x * (t(1) + xp.tanh(k * (x + t(0.044715) * x * x * x)))
    elif kind == "softplus":
        b = 1.0 if alpha is None else float(alpha)
        th = 20.0 if beta is None else float(beta)
        bx = x * t(b)
        y = xp.where(bx > t(th), x, xp.log1p(xp.exp(xp.minimum(bx, t(th)))) / t(b))
    else:
        raise ValueError("act_forward: unknown kind %r" % kind)
    y = y.astype(x.dtype, copy=False)
    if out is not None:
        out[...] = y
        return out
    return y


def act_backward(kind, dy, x=None, y=None, out=None, alpha=None, beta=None):
    """_C.act_backward: dx = dy * f'(.) from x (or y for sigmoid/tanh)."""
    s = y if x is None else x
    xp = _dv.xp(s)
    t = s.dtype.type
    if kind == "relu":
        d = xp.where(s <= 0, dy.dtype.type(0), dy)   # NaN passes dy through, as torch
    elif kind == "leaky_relu":
        a = 0.01 if alpha is None else float(alpha)
        d = xp.where(s > 0, dy, dy * t(a))
    elif kind == "sigmoid":
        d = dy * y * (t(1) - y)
    elif kind == "tanh":
        d = dy * (t(1) - y * y)
    elif kind == "silu":
        sg = t(1) / (t(1) + xp.exp(-x))
        d = dy * sg * (t(1) + x * (t(1) - sg))
    elif kind == "gelu":
        cdf = t(0.5) * (t(1) + _erf(xp, x * t(_SQRT1_2)))
        pdf = xp.exp(t(-0.5) * x * x) * t(1.0 / math.sqrt(2.0 * math.pi))
        d = dy * (cdf + x * pdf)
    elif kind == "gelu_tanh":
        k = t(math.sqrt(2.0 / math.pi))
        inner = k * (x + t(0.044715) * x * x * x)
        th = xp.tanh(inner)
        d = dy * (t(0.5) * (t(1) + th) + t(0.5) * x * (t(1) - th * th) * k *
                  (t(1) + t(3 * 0.044715) * x * x))
    elif kind == "softplus":
        b = 1.0 if alpha is None else float(alpha)
        th = 20.0 if beta is None else float(beta)
        bx = x * t(b)
        z = xp.exp(xp.minimum(bx, t(th)))
        d = xp.where(bx > t(th), dy, dy * z / (z + t(1)))
    else:
        raise ValueError("act_backward: unknown kind %r" % kind)
    d = d.astype(s.dtype, copy=False)
    if out is not None:
        out[...] = d
        return out
    return d


# ----------------------------------------------------------------------------- softmax
def softmax_forward_xp(x, log=False):
    """softmax / log_softmax over the last axis, max subtracted (the array-module formula)."""
    xp = _dv.xp(x)
    if x.shape[-1] == 0:
        return x.copy()
    m = x.max(axis=-1, keepdims=True)
    z = x - m
    e = xp.exp(z)
    s = e.sum(axis=-1, keepdims=True)
    return (z - xp.log(s)) if log else e / s


def softmax_backward_xp(y, dy, log=False):
    """softmax dx = y (dy - sum(dy y)); log_softmax dx = dy - exp(y) sum(dy)."""
    xp = _dv.xp(y)
    if log:
        return dy - xp.exp(y) * dy.sum(axis=-1, keepdims=True)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def softmax_forward(x, log=False):
    """_C.softmax_forward for a C-contiguous (R, C) CuPy array."""
    if _K.usable(x):
        return _K.softmax_forward(x, log)
    return softmax_forward_xp(x, log)


def softmax_backward(y, dy, log=False):
    if _K.usable(y, dy):
        return _K.softmax_backward(y, dy, log)
    return softmax_backward_xp(y, dy, log)


# ----------------------------------------------------------------------------- norms
def layer_norm_forward_xp(x, w, b, eps):
    """x (R,D) -> (y, mean (R), rstd (R)); statistics in the dtype, two-pass."""
    xp = _dv.xp(x)
    mean = x.mean(axis=-1)
    xc = x - mean[:, None]
    var = (xc * xc).mean(axis=-1)
    rstd = (1.0 / xp.sqrt(var + x.dtype.type(eps))).astype(x.dtype, copy=False)
    y = xc * rstd[:, None]
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y.astype(x.dtype, copy=False), mean.astype(x.dtype, copy=False), rstd


def layer_norm_backward_xp(dy, x, mean, rstd, w, need_dx=True, need_dweight=False,
                           need_dbias=False):
    xhat = (x - mean[:, None]) * rstd[:, None]
    g = dy * w if w is not None else dy
    dx = dw = db = None
    if need_dx:
        mg = g.mean(axis=-1, keepdims=True)
        mgx = (g * xhat).mean(axis=-1, keepdims=True)
        dx = (rstd[:, None] * (g - mg - xhat * mgx)).astype(x.dtype, copy=False)
    if need_dweight:
        dw = (dy * xhat).sum(axis=0).astype(x.dtype, copy=False)
    if need_dbias:
        db = dy.sum(axis=0).astype(x.dtype, copy=False)
    return dx, dw, db


def rms_norm_forward_xp(x, w, eps):
    xp = _dv.xp(x)
    if eps is None:
        eps = float(np.finfo(x.dtype).eps)
    rstd = (1.0 / xp.sqrt((x * x).mean(axis=-1) + x.dtype.type(eps))).astype(x.dtype,
                                                                            copy=False)
    y = x * rstd[:, None]
    if w is not None:
        y = y * w
    return y.astype(x.dtype, copy=False), rstd


def rms_norm_backward_xp(dy, x, rstd, w, need_dx=True, need_dweight=False):
    xhat = x * rstd[:, None]
    g = dy * w if w is not None else dy
    dx = dw = None
    if need_dx:
        mgx = (g * xhat).mean(axis=-1, keepdims=True)
        dx = (rstd[:, None] * (g - xhat * mgx)).astype(x.dtype, copy=False)
    if need_dweight:
        dw = (dy * xhat).sum(axis=0).astype(x.dtype, copy=False)
    return dx, dw


def layer_norm_forward(x, w, b, eps):
    if _K.usable(x, w, b):
        return _K.layer_norm_forward(x, w, b, eps)
    return layer_norm_forward_xp(x, w, b, eps)


def layer_norm_backward(dy, x, mean, rstd, w, need_dx=True, need_dweight=False,
                        need_dbias=False):
    if _K.usable(dy, x, w):
        return _K.layer_norm_backward(dy, x, mean, rstd, w, need_dx, need_dweight, need_dbias)
    return layer_norm_backward_xp(dy, x, mean, rstd, w, need_dx, need_dweight, need_dbias)


def rms_norm_forward(x, w, eps):
    if _K.usable(x, w):
        return _K.rms_norm_forward(x, w, eps)
    return rms_norm_forward_xp(x, w, eps)


def rms_norm_backward(dy, x, rstd, w, need_dx=True, need_dweight=False):
    if _K.usable(dy, x, w):
        return _K.rms_norm_backward(dy, x, rstd, w, need_dx, need_dweight)
    return rms_norm_backward_xp(dy, x, rstd, w, need_dx, need_dweight)


def bn_stats(x3):
    """_C.bn_stats: x (N,C,S) -> per-channel mean and biased variance (C), in x's dtype."""
    mean = x3.mean(axis=(0, 2), dtype=np.float64)
    var = ((x3 - mean[None, :, None].astype(x3.dtype)) ** 2).mean(axis=(0, 2), dtype=np.float64)
    return mean.astype(x3.dtype), var.astype(x3.dtype)


def bn_backward(dy, x3, mean, rstd, w, need_dx, need_dw, need_db):
    """_C.bn_backward (training mode): xhat = (x - mean) rstd over (N,C,S);
    db = sum dy, dw = sum dy xhat, dx = w rstd / M (M dy - db - xhat dw), M = N*S."""
    M = x3.shape[0] * x3.shape[2]
    xhat = (x3 - mean[None, :, None]) * rstd[None, :, None]
    db = dy.sum(axis=(0, 2))
    dw = (dy * xhat).sum(axis=(0, 2))
    dx = None
    if need_dx:
        scale = rstd if w is None else rstd * w
        dx = (scale[None, :, None] / M * (M * dy - db[None, :, None] - xhat * dw[None, :, None]))
        dx = dx.astype(x3.dtype, copy=False)
    return dx, (dw if need_dw else None), (db if need_db else None)


# ----------------------------------------------------------------------------- cross-entropy
def _check_targets(target, C, ignore_index):
    bad = (target != ignore_index) & ((target < 0) | (target >= C))
    if bool(bad.any()):
        t = int(target[bad.argmax()].item()) if bad.ndim else int(target.item())
        raise IndexError("Target %d is out of bounds." % t)


def cross_entropy_forward_xp(logits, target, weight, ignore_index, ls):
    """-> (loss_rows, lse, wrow), the results of _C.cross_entropy_forward."""
    xp = _dv.xp(logits)
    N, C = logits.shape
    dt = logits.dtype
    m = logits.max(axis=-1, keepdims=True) if C else xp.zeros((N, 1), dt)
    lse = (xp.log(xp.exp(logits - m).sum(axis=-1, keepdims=True)) + m)[:, 0]
    keep = target != ignore_index
    t = xp.where(keep, target, 0)
    xt = xp.take_along_axis(logits, t[:, None], axis=1)[:, 0] if C else xp.zeros(N, dt)
    wt = weight[t] if weight is not None else xp.ones(N, dt)
    nll = lse - xt
    loss = (1 - ls) * wt * nll
    if ls:
        wc = weight if weight is not None else xp.ones(C, dt)
        loss = loss + ls / C * ((lse[:, None] - logits) * wc).sum(axis=-1)
    loss = xp.where(keep, loss, dt.type(0)).astype(dt, copy=False)
    wrow = xp.where(keep, wt, dt.type(0)).astype(dt, copy=False)
    return loss, lse.astype(dt, copy=False), wrow


def cross_entropy_backward_xp(logits, target, lse, g, weight, ignore_index, ls):
    xp = _dv.xp(logits)
    N, C = logits.shape
    dt = logits.dtype
    p = xp.exp(logits - lse[:, None])
    keep = target != ignore_index
    t = xp.where(keep, target, 0)
    wt = weight[t] if weight is not None else xp.ones(N, dt)
    wt = xp.where(keep, wt, dt.type(0))
    onehot = (xp.arange(C)[None, :] == t[:, None]).astype(dt)
    d = (1 - ls) * wt[:, None] * (p - onehot)
    if ls:
        wc = weight if weight is not None else xp.ones(C, dt)
        d = d + (ls / C) * (wc.sum() * p - wc[None, :])
    d = xp.where(keep[:, None], d * g[:, None], dt.type(0))
    return d.astype(dt, copy=False)


def cross_entropy_forward(logits, target, weight, ignore_index, ls):
    _check_targets(target, logits.shape[1], ignore_index)
    if _K.usable(logits, weight):
        return _K.cross_entropy_forward(logits, target, weight, ignore_index, ls)
    return cross_entropy_forward_xp(logits, target, weight, ignore_index, ls)


def cross_entropy_backward(logits, target, lse, g, weight, ignore_index, ls):
    if _K.usable(logits, weight):
        return _K.cross_entropy_backward(logits, target, lse, g, weight, ignore_index, ls)
    return cross_entropy_backward_xp(logits, target, lse, g, weight, ignore_index, ls)


def cross_entropy_prob_forward(logits, target, weight, ls):
    xp = _dv.xp(logits)
    N, C = logits.shape
    q = (1 - ls) * target + ls / C if ls else target
    lse = softmax_forward_xp(logits, True)
    wc = weight if weight is not None else xp.ones(C, logits.dtype)
    loss = -(wc * q * lse).sum(axis=-1)
    m = logits.max(axis=-1, keepdims=True)
    l = (xp.log(xp.exp(logits - m).sum(axis=-1, keepdims=True)) + m)[:, 0]
    return loss.astype(logits.dtype, copy=False), l.astype(logits.dtype, copy=False)


def cross_entropy_prob_backward(logits, target, lse, g, weight, ls):
    xp = _dv.xp(logits)
    N, C = logits.shape
    q = (1 - ls) * target + ls / C if ls else target
    p = xp.exp(logits - lse[:, None])
    wc = weight if weight is not None else xp.ones(C, logits.dtype)
    wq = wc * q
    d = g[:, None] * (p * wq.sum(axis=-1, keepdims=True) - wq)
    return d.astype(logits.dtype, copy=False)


# ----------------------------------------------------------------------------- embedding
def embedding_forward(weight, indices):
    return weight[indices]


def embedding_backward(dy, indices, num_embeddings, padding_idx=None):
    xp = _dv.xp(dy)
    D = dy.shape[-1]
    out = xp.zeros((num_embeddings, D), dy.dtype)
    idx = indices.reshape(-1)
    g = dy.reshape(-1, D)
    if padding_idx is not None:
        pi = padding_idx + num_embeddings if padding_idx < 0 else padding_idx
        keep = idx != pi
        idx, g = idx[keep], g[keep]
    if xp is np:
        np.add.at(out, idx, g)
    else:
        import cupyx
        cupyx.scatter_add(out, idx, g)
    return out


# ----------------------------------------------------------------------------- optimizers
def sgd_step(params, grads, momentum_buffers, first, lr, momentum=0.0, dampening=0.0,
             weight_decay=0.0, nesterov=False, maximize=False):
    """_C.sgd_step on CuPy arrays (in place), the torch.optim.SGD formula."""
    for i, (p, g) in enumerate(zip(params, grads)):
        t = p.dtype.type
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + t(weight_decay) * p
        if momentum != 0:
            b = momentum_buffers[i]
            if first[i]:
                b[...] = g
            else:
                b *= t(momentum)
                b += t(1.0 - dampening) * g
            g = g + t(momentum) * b if nesterov else b
        p -= t(lr) * g


def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1=0.9,
              beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
              decoupled=False):
    """_C.adam_step on CuPy arrays (in place): Adam / AdamW (decoupled), the formula of the C
    reference (bias corrections in double per tensor). The multi-tensor CUDA kernel does one
    launch for the whole group when it can run."""
    if _K.usable(*params) and not amsgrad and _K.adamw_usable(params, grads, exp_avgs,
                                                              exp_avg_sqs):
        return _K.adam_step(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps,
                            weight_decay, maximize, decoupled)
    xp = _dv.xp_of(*params)
    for i, (p, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        t = p.dtype.type
        step = float(steps[i])
        step_size = t(lr / (1.0 - beta1 ** step))
        bc2s = t(math.sqrt(1.0 - beta2 ** step))
        g = -g if maximize else g
        if weight_decay != 0:
            if decoupled:
                p *= t(1.0 - lr * weight_decay)
            else:
                g = g + t(weight_decay) * p
        m *= t(beta1)
        m += t(1.0 - beta1) * g
        v *= t(beta2)
        v += t(1.0 - beta2) * (g * g)
        vv = v
        if amsgrad:
            mx = max_exp_avg_sqs[i]
            xp.maximum(mx, v, out=mx)
            vv = mx
        p -= step_size * (m / (xp.sqrt(vv) / bc2s + t(eps)))


def run_on_host(kernel, params, grads, *args):
    """Any other fused optimizer kernel on CuPy arrays: the arrays are copied to the host, the
    C kernel updates them there, and the results are copied back in place (correct, not fast;
    SGD and Adam/AdamW have device implementations above)."""
    moved = []

    def host(a):
        if isinstance(a, (list, tuple)):
            return [host(v) for v in a]
        if _dv.is_cuda_array(a):
            h = _dv.to_host(a).copy()
            moved.append((a, h))
            return h
        return a
    hp, hg = host(params), host(grads)
    hargs = [host(a) for a in args]
    kernel(hp, hg, *hargs)
    for dev, h in moved:
        dev[...] = _dv.xp(dev).asarray(h)


# ----------------------------------------------------------------------------- GradScaler
def amp_unscale(grads, inv_scale):
    """_C.amp_unscale for CuPy arrays of one device: every array multiplied by inv_scale in
    place; returns True when any element was NaN or +-inf before scaling. One launch of the
    multi-tensor CUDA kernel per dtype when it can run (float32/float64, C-contiguous); any
    other array by the array-module formula (one device-side flag per array, read once)."""
    fused = {}
    rest = []
    for g in grads:
        if _K.usable(g):
            fused.setdefault(g.dtype, []).append(g)
        else:
            rest.append(g)
    flags = [_K.amp_unscale(arrs, inv_scale) for arrs in fused.values()]
    for g in rest:
        xp = _dv.xp(g)
        flags.append(xp.logical_not(xp.isfinite(g).all()))
        g *= g.dtype.type(inv_scale)
    return any(bool(f.any()) for f in flags)
