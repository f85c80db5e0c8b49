"""Gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_).

The 2-norm and the inf-norm over all gradients are one fused, threaded C reduction per dtype
(cengine._C.multi_sumsq / multi_absmax: double accumulation over fixed blocks, so the result does
not depend on the thread count); the rescale is one fused C pass (multi_scale_). Other norm
orders use numpy.
"""
import math

import numpy as np

from ... import _device as _dv

from ... import dtypes as _dt
from ... import _C
from ...tensor import Tensor, _wrap

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _as_list(tensors):
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def _by_dtype(arrays):
    groups = {}
    for a in arrays:
        groups.setdefault(a.dtype, []).append(a)
    return groups


def _result_dtype(arrays):
    return np.result_type(*[a.dtype for a in arrays]) if arrays else np.dtype(np.float32)


def _total_norm_value(arrays, norm_type):
    """The norm of the concatenation of `arrays` as a Python float (double precision)."""
    if arrays and type(arrays[0]) is not np.ndarray and _dv.is_cuda_array(arrays[0]):
        return _total_norm_device(arrays, norm_type)
    if norm_type == 2.0:
        s = 0.0
        for dt, group in _by_dtype(arrays).items():
            if dt in (np.float32, np.float64):
                s += _C.multi_sumsq([np.ascontiguousarray(a) for a in group])
            else:
                s += float(sum(np.sum(np.square(a, dtype=np.float64)) for a in group))
        return math.sqrt(s)
    if norm_type == math.inf:
        m = 0.0
        for dt, group in _by_dtype(arrays).items():
            if dt in (np.float32, np.float64):
                v = _C.multi_absmax([np.ascontiguousarray(a) for a in group])
            else:
                v = float(max(np.max(np.abs(a)) if a.size else 0.0 for a in group))
            m = math.nan if (math.isnan(v) or math.isnan(m)) else max(m, v)
        return m
    flat = [a.astype(np.float64, copy=False).ravel() for a in arrays]
    if norm_type == -math.inf:
        mins = [float(np.min(np.abs(a))) for a in flat if a.size]
        return min(mins) if mins else math.inf
    # torch's definition: the p-norm of the per-gradient p-norms. For p = 0 that counts the
    # gradients with a non-zero (or NaN) entry; for p < 0 a zero entry makes its gradient's
    # norm 0 and an inf entry contributes nothing (0 ** p and inf ** p follow IEEE, no error).
    if norm_type == 0.0:
        return float(sum(1 for a in flat if np.count_nonzero(a)))
    p = norm_type
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if p == 1.0:
            return float(sum(np.sum(np.abs(a)) for a in flat))
        per = np.array([np.sum(np.abs(a) ** p) for a in flat]) ** (1.0 / p)
        return float(np.sum(per ** p) ** (1.0 / p))


def _total_norm_device(arrays, norm_type):
    """_total_norm_value for CuPy gradients: each gradient's reduction in float64 on its
    device, combined on the host as the CPU path combines them."""
    flat = [a.astype(np.float64).ravel() for a in arrays]
    if norm_type == 2.0:
        return math.sqrt(sum(float((a * a).sum()) for a in flat))
    if norm_type == math.inf:
        vals = [float(abs(a).max()) for a in flat if a.size]
        return math.nan if any(math.isnan(v) for v in vals) else max(vals, default=0.0)
    if norm_type == -math.inf:
        mins = [float(abs(a).min()) for a in flat if a.size]
        return min(mins) if mins else math.inf
    if norm_type == 0.0:
        return float(sum(1 for a in flat if bool((a != 0).any())))
    p = norm_type
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if p == 1.0:
            return float(sum(float(abs(a).sum()) for a in flat))
        per = np.array([float((abs(a) ** p).sum()) for a in flat]) ** (1.0 / p)
        return float(np.sum(per ** p) ** (1.0 / p))


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Norm of the concatenation of `tensors` (torch.nn.utils.get_total_norm)."""
    tensors = [t for t in _as_list(tensors) if t is not None]
    norm_type = float(norm_type)
    if not tensors:
        return _wrap(np.array(0.0, np.float32))
    arrays = [t._data for t in tensors]
    total = _total_norm_value(arrays, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    return _wrap(_dv.asarray(total, _result_dtype(arrays), arrays[0]))  # on the grads' device


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients of `parameters` by max_norm / (total_norm + 1e-6) when that is below
    1 (torch.nn.utils.clip_grads_with_norm_)."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    tn = total_norm._data if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    dt = tn.dtype if _dt.is_floating(tn.dtype) else np.dtype(np.float32)
    coef = dt.type(max_norm) / (tn.astype(dt) + dt.type(1e-6))
    coef = float(coef)
    if coef >= 1.0:          # torch multiplies by the clamped coefficient 1.0: a no-op
        return
    for dtype, group in _by_dtype([g._data for g in grads]).items():
        if dtype in (np.float32, np.float64) and type(group[0]) is np.ndarray:
            cont = [a for a in group if a.flags.c_contiguous and a.flags.writeable]
            _C.multi_scale_(cont, coef)
            for a in group:
                if not (a.flags.c_contiguous and a.flags.writeable):
                    a *= dtype.type(coef)
        else:
            for a in group:
                a *= dtype.type(coef)
    for g in grads:
        g._version[0] += 1


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Clip the gradient norm of an iterable of parameters (torch.nn.utils.clip_grad_norm_).

    The norm is computed over all gradients together, as if concatenated into one vector; the
    gradients are scaled in place by max_norm / (total_norm + 1e-6) when that is below 1.
    Returns the total norm (a 0-d Tensor) before clipping.
    """
    params = _as_list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return _wrap(np.array(0.0, np.float32))
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, float(max_norm), total)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient of `parameters` to [-clip_value, clip_value] in place
    (torch.nn.utils.clip_grad_value_)."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        g = p.grad
        if g is None:
            continue
        a = g._data
        if type(a) is not np.ndarray or a.flags.writeable:
            np.clip(a, -clip_value, clip_value, out=a)
        else:
            g._data = np.clip(a, -clip_value, clip_value)
        g._version[0] += 1
