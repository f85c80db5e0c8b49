"""Reductions with autograd: sum, mean, prod, max/min (values+indices), argmax/argmin, var/std,
logsumexp, norm, cumsum, cumprod-free prod backward (exact with zeros)."""
import builtins
import functools
import warnings
from collections import namedtuple

import numpy as np

from .. import _device as _dv

from .. import dtypes as _dt
from ..autograd.function import Function
from ..tensor import Tensor, _wrap
from ._util import wrap_dims, wrap_dim, float_dtype_for

__all__ = ["sum", "mean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "var", "std",
           "var_mean", "std_mean", "logsumexp", "norm", "cumsum", "all", "any", "count_nonzero",
           "cumprod"]

_values_indices = namedtuple("return_types", ["values", "indices"])


def _axis(dims):
    return dims  # None (all) or tuple


def _expand_back(g, shape, dims, keepdim):
    """Reshape a reduced gradient so it broadcasts against the input shape."""
    if dims is None:
        return g.reshape((1,) * len(shape)) if len(shape) else g
    if not keepdim:
        g = np.expand_dims(g, dims) if dims else g
    return g


def _int_acc(dt, requested=None):
    """The numpy dtype sum / prod / cumsum / cumprod accumulate in: the requested one, else
    torch's int64 for bool and integer inputs (numpy would keep uint64 for unsigned ones,
    a dtype cengine has not), else None (the input's)."""
    if requested is None and dt.kind in "biu" and dt != np.int64:
        return np.int64
    return requested


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        dtype = _int_acc(x.dtype, dtype)
        return _dv.asarray(np.sum(x, axis=dims, keepdims=keepdim, dtype=dtype))

    @staticmethod
    def backward(ctx, g):
        g = _expand_back(g, ctx.shape, ctx.dims, ctx.keepdim)
        return np.broadcast_to(g, ctx.shape), None, None, None


def sum(input, dim=None, keepdim=False, *, dtype=None):
    dims = wrap_dims(dim, input._data.ndim)
    return Sum.apply(input, dims, keepdim, None if dtype is None else _dt.to_numpy_dtype(dtype))


class Mean(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        n = x.size if dims is None else int(np.prod([x.shape[d] for d in dims]))
        ctx.n = n
        if n == 0:  # torch: nan, and no "Mean of empty slice" warning
            return _dv.asarray(np.sum(x, axis=dims, keepdims=keepdim) / x.dtype.type(0))
        return _dv.asarray(np.mean(x, axis=dims, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        g = _expand_back(g, ctx.shape, ctx.dims, ctx.keepdim)
        return np.broadcast_to(g / g.dtype.type(ctx.n) if ctx.n else g, ctx.shape), None, None


def mean(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if not _dt.is_floating(input._data.dtype):
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a "
                           "floating point or complex dtype. Got: %s"
                           % input.dtype.name.capitalize())
    return Mean.apply(input, wrap_dims(dim, input._data.ndim), keepdim)


def _exclusive_prod(x, axis):
    """prod of all other elements along axis, exact when x contains zeros. float32 runs the
    prefix/suffix products in float64 (they overflow long before the result does)."""
    if x.dtype != np.float64 and _dt.is_floating(x.dtype):
        return _exclusive_prod(x.astype(np.float64), axis).astype(x.dtype)
    left = np.cumprod(x, axis=axis)
    right = np.flip(np.cumprod(np.flip(x, axis), axis=axis), axis)
    n = x.shape[axis]
    ones_shape = list(x.shape)
    ones_shape[axis] = 1
    one = _dv.ones(x, ones_shape, x.dtype)
    left_ex = np.concatenate([one, np.take(left, range(n - 1), axis=axis)], axis=axis)
    right_ex = np.concatenate([np.take(right, range(1, n), axis=axis), one], axis=axis)
    return left_ex * right_ex


class Prod(Function):
    @staticmethod
    def forward(ctx, x, dim, keepdim, keep_dtype=False):
        # keep_dtype: prod(dtype=...) asked for x's dtype (x already cast to it): no int64
        ctx.save_for_backward(x)
        ctx.dim, ctx.keepdim = dim, keepdim
        acc = x.dtype if keep_dtype else _int_acc(x.dtype)
        return _dv.asarray(np.prod(x, axis=dim, keepdims=keepdim, dtype=acc))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if x.size == 0:
            return np.zeros_like(x), None, None, None
        if ctx.dim is None:
            ex = _exclusive_prod(x.reshape(-1), 0).reshape(x.shape)
            return g * ex, None, None, None
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.dim)
        return g * _exclusive_prod(x, ctx.dim), None, None, None


def prod(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    d = None if dim is None else wrap_dim(dim, input._data.ndim)
    if input._data.ndim == 0:
        d = None
    return Prod.apply(input, d, keepdim, dtype is not None)


def _check_nonempty(name, shape, dims):
    """torch's errors for max/min/amax/amin/argmax/argmin over an empty reduction (numpy's
    would be a ValueError with its own wording)."""
    if dims is None:
        if 0 in shape:
            if name in ("argmax", "argmin"):
                raise IndexError("%s(): Expected reduction dim to be specified for "
                                 "input.numel() == 0." % name)
            raise RuntimeError("%s(): Expected reduction dim to be specified for input.numel() "
                               "== 0. Specify the reduction dim with the 'dim' argument." % name)
        return
    for d in dims:
        if shape[d] == 0:
            raise IndexError("%s(): Expected reduction dim %d to have non-zero size." % (name, d))


class _ExtremeAll(Function):
    """max()/min() over all elements: gradient split evenly among ties (torch's amax rule)."""

    @staticmethod
    def forward(ctx, x, is_max, dims, keepdim, nan_wins=False):
        y = _dv.asarray((np.amax if is_max else np.amin)(x, axis=dims, keepdims=keepdim))
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim, ctx.nan_wins = dims, keepdim, nan_wins
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        yb = _expand_back(y, x.shape, ctx.dims, ctx.keepdim)
        gb = _expand_back(g, x.shape, ctx.dims, ctx.keepdim)
        mask = (x == yb)
        if ctx.nan_wins and _dt.is_floating(x.dtype):
            # max()/min(): a NaN result sends the gradient to the NaNs (torch); amax/amin
            # keep torch's plain mask, which makes every gradient NaN then
            mask |= np.isnan(x) & np.isnan(yb)
        cnt = mask.sum(axis=ctx.dims, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (mask * (gb / cnt)).astype(g.dtype, copy=False), None, None, None, None


class _ExtremeDim(Function):
    @staticmethod
    def forward(ctx, x, is_max, dim, keepdim):
        if x.shape[dim] == 0 if x.ndim else False:
            raise IndexError("max(): Expected reduction dim %d to have non-zero size." % dim)
        idx = (np.argmax if is_max else np.argmin)(x, axis=dim, keepdims=True)
        vals = np.take_along_axis(x, idx, axis=dim)
        if not keepdim:
            vals = vals.squeeze(dim)
            idx = idx.squeeze(dim)
        idx = idx.astype(np.int64, copy=False)
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(idx)
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        return vals, idx

    @staticmethod
    def backward(ctx, g, gi):
        (idx,) = ctx.saved_tensors
        out = _dv.zeros(g, ctx.shape, g.dtype)
        if not ctx.keepdim:
            g, idx = np.expand_dims(g, ctx.dim), np.expand_dims(idx, ctx.dim)
        np.put_along_axis(out, idx, g, axis=ctx.dim)
        return out, None, None, None


def _extreme(input, dim, keepdim, is_max, other=None):
    if isinstance(dim, Tensor):  # max(a, b) elementwise
        from .elementwise import maximum, minimum
        return (maximum if is_max else minimum)(input, dim)
    name = "max" if is_max else "min"
    if dim is None:
        _check_nonempty(name, input._data.shape, None)
        return _ExtremeAll.apply(input, is_max, None, False, True)
    d = wrap_dim(dim, input._data.ndim)
    if input._data.ndim:
        _check_nonempty(name, input._data.shape, (d,))
    if input._data.ndim == 0:
        v = _wrap(input._data.copy())
        return _values_indices(input * 1 if input.requires_grad else v,
                               _wrap(np.zeros((), np.int64)))
    vals, idx = _ExtremeDim.apply(input, is_max, d, keepdim)
    return _values_indices(vals, idx)


def max(input, dim=None, keepdim=False):
    return _extreme(input, dim, keepdim, True)


def min(input, dim=None, keepdim=False):
    return _extreme(input, dim, keepdim, False)


def amax(input, dim=(), keepdim=False):
    dims = None if dim == () or dim is None else wrap_dims(dim, input._data.ndim)
    _check_nonempty("amax", input._data.shape, dims)
    return _ExtremeAll.apply(input, True, dims, keepdim)


def amin(input, dim=(), keepdim=False):
    dims = None if dim == () or dim is None else wrap_dims(dim, input._data.ndim)
    _check_nonempty("amin", input._data.shape, dims)
    return _ExtremeAll.apply(input, False, dims, keepdim)


def _arg_extreme(name, npf, input, dim, keepdim):
    if dim is None:
        _check_nonempty(name, input._data.shape, None)
        return _wrap(_dv.asarray(npf(input._data), dtype=np.int64))
    d = wrap_dim(dim, input._data.ndim)
    if input._data.ndim == 0:
        return _wrap(np.zeros((), np.int64))
    _check_nonempty(name, input._data.shape, (d,))
    return _wrap(_dv.asarray(npf(input._data, axis=d, keepdims=keepdim), dtype=np.int64))


def argmax(input, dim=None, keepdim=False):
    return _arg_extreme("argmax", np.argmax, input, dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    return _arg_extreme("argmin", np.argmin, input, dim, keepdim)


def _count(shape, dims):
    if dims is None:
        n = 1
        for v in shape:
            n *= v
        return n
    n = 1
    for d in dims:
        n *= shape[d]
    return n


def _dof_warning(name, dof):
    if dof <= 0:
        warnings.warn("%s(): degrees of freedom is <= 0. Correction should be strictly less than "
                      "the reduction factor (input numel divided by output numel)." % name,
                      stacklevel=5)


def _moments(x, dims, n, correction):
    """(mean, v, s) over dims with keepdims, computed in float64 (float32 input accumulates in
    double, as torch does on the CPU): variance = v * s**2. s is 1 unless the squares of the
    deviations overflow float64 (|x| beyond ~1e154), where deviations are scaled by the largest
    |x| first, so std stays finite where it is finite."""
    xa = x if x.dtype == np.float64 else x.astype(np.float64)
    den = builtins.max(n - correction, 0)
    with np.errstate(all="ignore"):
        m = np.sum(xa, axis=dims, keepdims=True) / n
        dev = xa - m
        v = np.sum(dev * dev, axis=dims, keepdims=True) / den
        if np.all(np.isfinite(v)) and np.all(np.isfinite(m)) or not np.all(np.isfinite(xa)):
            return m, v, 1.0
        s = np.max(np.abs(xa), axis=dims, keepdims=True, initial=0.0)
        s = np.where(s > 0, s, 1.0)
        xs = xa / s
        ms = np.sum(xs, axis=dims, keepdims=True) / n
        dev = xs - ms
        v = np.sum(dev * dev, axis=dims, keepdims=True) / den
        return ms * s, v, s


def _squeeze(y, dims, keepdim):
    if keepdim:
        return y
    return y.reshape(()) if dims is None else y.squeeze(dims)


def _var_grad(g, x, m, dof, all_reduce):
    """torch's var_backward: (2 / dof) * g * (x - mean); a reduction over all elements with
    dof <= 0 gives g * (nan where x == mean, else inf)."""
    with np.errstate(all="ignore"):
        if all_reduce and dof <= 0:
            return g * np.where(x == m, np.nan, np.inf)
        c = 2.0 / dof if dof != 0 else np.inf
        return c * g * (x - m)


def _var_std_forward(ctx, name, x, dims, correction, keepdim):
    """var (name "var") or std ("std") of x over dims; saves what both backwards use"""
    n = _count(x.shape, dims)
    _dof_warning(name, n - correction)
    m, v, s = _moments(x, dims, n, correction)
    with np.errstate(over="ignore"):
        y = (v * (s * s) if name == "var" else np.sqrt(v) * s).astype(x.dtype)
    ctx.save_for_backward(x)
    ctx.y, ctx.m, ctx.dof, ctx.std = y, m, n - correction, name == "std"
    ctx.dims, ctx.keepdim, ctx.all = dims, keepdim, dims is None or x.ndim == 0
    return _squeeze(y, dims, keepdim)


class Var(Function):
    @staticmethod
    def forward(ctx, x, dims, correction, keepdim):
        return _var_std_forward(ctx, "var", x, dims, correction, keepdim)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        g = _expand_back(g, x.shape, ctx.dims, ctx.keepdim)
        if ctx.std:   # d std = d var / (2 std); torch: no gradient through std == 0
            with np.errstate(all="ignore"):
                g = np.where(ctx.y == 0, 0, g / (2 * ctx.y))
        return (_var_grad(g, x, ctx.m, ctx.dof, ctx.all).astype(x.dtype, copy=False),
                None, None, None)


class Std(Var):
    """std = sqrt(var): Var's backward through the chain rule (ctx.std)"""

    @staticmethod
    def forward(ctx, x, dims, correction, keepdim):
        return _var_std_forward(ctx, "std", x, dims, correction, keepdim)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    if unbiased is None:
        return 1
    return 1 if unbiased else 0


def _float_only(input, what):
    if not _dt.is_floating(input._data.dtype):
        raise RuntimeError(what)


def _var_args(input, dim, unbiased, correction):
    if isinstance(dim, builtins.bool):  # var(unbiased) positional form
        dim, unbiased = None, dim
    _float_only(input, "std and var only support floating point and complex dtypes")
    return wrap_dims(dim, input._data.ndim), _correction(unbiased, correction)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dims, c = _var_args(input, dim, unbiased, correction)
    return Var.apply(input, dims, c, keepdim)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dims, c = _var_args(input, dim, unbiased, correction)
    return Std.apply(input, dims, c, keepdim)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        if x.size == 0:
            y = _dv.full(x, np.sum(x, axis=dims, keepdims=True).shape, -np.inf, x.dtype)
        else:
            m = np.amax(x, axis=dims, keepdims=True)
            m = np.where(np.isfinite(m), m, 0)
            y = np.log(np.sum(np.exp(x - m), axis=dims, keepdims=True)) + m
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim = dims, keepdim
        return y if keepdim else (y.squeeze(dims) if dims is not None else y.reshape(()))

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        g = _expand_back(g, x.shape, ctx.dims, ctx.keepdim)
        return g * np.exp(x - y), None, None


def logsumexp(input, dim, keepdim=False):
    x = input if _dt.is_floating(input._data.dtype) else input.float()
    dims = wrap_dims(dim, x._data.ndim)
    if x._data.ndim == 0:
        dims = None
    return LogSumExp.apply(x, dims, keepdim)


class Norm(Function):
    """vector p-norm over dims. float32 (and float16) inputs accumulate in float64, and the
    p-norms other than 0, 1, +-inf divide by the largest |x| before raising to the power p, so
    the result is finite (and not flushed to zero) wherever the true norm is representable."""

    @staticmethod
    def forward(ctx, x, p, dims, keepdim):
        a = np.abs(x if x.dtype == np.float64 else x.astype(np.float64))
        with np.errstate(all="ignore"):
            if p == np.inf:
                y = np.max(a, axis=dims, keepdims=True)
            elif p == -np.inf:
                y = np.min(a, axis=dims, keepdims=True)
            elif p == 0:
                y = np.sum(a != 0, axis=dims, keepdims=True).astype(np.float64)
            elif p == 1:
                y = np.sum(a, axis=dims, keepdims=True)
            else:
                s = np.max(a, axis=dims, keepdims=True, initial=0.0)
                s = np.where((s > 0) & np.isfinite(s), s, 1.0)
                r = a / s
                t = np.sum(r * r if p == 2 else r ** p, axis=dims, keepdims=True)
                y = s * (np.sqrt(t) if p == 2 else t ** (1.0 / p))
            y = _dv.asarray(y).astype(x.dtype)
        ctx.save_for_backward(x, y)
        ctx.p, ctx.dims, ctx.keepdim = p, dims, keepdim
        return _squeeze(y, dims, keepdim)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        p = ctx.p
        g = _expand_back(g, x.shape, ctx.dims, ctx.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                d = np.where(y == 0, 0, x / y)
            elif p == 1:
                d = np.sign(x)
            elif p in (np.inf, -np.inf):
                mask = np.abs(x) == y
                d = np.sign(x) * mask / mask.sum(axis=ctx.dims, keepdims=True)
            elif p == 0:
                d = np.zeros_like(x)
            else:
                # sign(x) * (|x| / y)^(p - 1): no overflow of |x|^(p-1); x == 0 gives 0
                d = np.where((y == 0) | (x == 0), 0, np.sign(x) * (np.abs(x) / y) ** (p - 1))
        return (g * d).astype(x.dtype, copy=False), None, None, None


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if p == "fro" or p is None:
        p = 2
    if p == "nuc":
        raise NotImplementedError("nuclear norm is not supported by cengine")
    p = builtins.float(p)
    x = input
    if not _dt.is_floating(x._data.dtype):
        raise RuntimeError("linalg.vector_norm: Expected a floating point or complex tensor as "
                           "input. Got %s" % _dt.torch_type_name(x.dtype))
    dims = wrap_dims(dim, x._data.ndim)
    if x._data.ndim == 0:
        dims = None
    if p in (np.inf, -np.inf):
        empty = x._data.size == 0 if dims is None else builtins.any(
            x._data.shape[d] == 0 for d in dims)
        if empty:
            what = "inf" if p > 0 else "-inf"
            if dims is None:
                raise RuntimeError("linalg.vector_norm cannot compute the %s norm on an empty "
                                   "tensor because the operation does not have an identity"
                                   % what)
            raise RuntimeError("linalg.vector_norm cannot compute the %s norm on the dimension %d"
                               "because this dimension is empty and the operation does not have "
                               "an identity" % (what, next(d for d in dims
                                                           if x._data.shape[d] == 0)))
    return Norm.apply(x, p, dims, keepdim)


class Cumsum(Function):
    @staticmethod
    def forward(ctx, x, dim, dtype):
        ctx.dim = dim
        if x.ndim == 0:
            return x.astype(dtype or x.dtype, copy=True)
        return np.cumsum(x, axis=dim, dtype=dtype)

    @staticmethod
    def backward(ctx, g):
        if g.ndim == 0:
            return g, None, None
        d = ctx.dim
        return np.flip(np.cumsum(np.flip(g, d), axis=d), d), None, None


def cumsum(input, dim, *, dtype=None):
    d = wrap_dim(dim, input._data.ndim)
    npd = _int_acc(input._data.dtype, None if dtype is None else _dt.to_numpy_dtype(dtype))
    return Cumsum.apply(input, d, npd)


class Cumprod(Function):
    @staticmethod
    def forward(ctx, x, dim, dtype):
        ctx.dim = dim
        y = x.astype(dtype or x.dtype, copy=True) if x.ndim == 0 else \
            np.cumprod(x, axis=dim, dtype=dtype)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        if g.ndim == 0:
            return g.astype(x.dtype, copy=False), None, None
        return _cumprod_grad(x, y, g, ctx.dim), None, None


def _cumprod_grad(x, y, g, dim):
    """d/dx_i of sum_j g_j y_j, y = cumprod(x): exact where x has zeros.
    Before a row's first zero: sum_{j>=i} g_j y_j / x_i (a reversed cumsum); at the first zero z:
    sum_{j>=z} g_j prod_{k<=j, k!=z} x_k; after it: 0."""
    xm = np.moveaxis(x, dim, -1)
    shp = xm.shape
    n = shp[-1]
    xr = xm.reshape(-1, n)
    yr = np.moveaxis(y, dim, -1).reshape(-1, n)
    gr = np.moveaxis(g, dim, -1).reshape(-1, n)
    gy = gr * yr
    rc = np.flip(np.cumsum(np.flip(gy, -1), -1), -1)
    zero = xr == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(zero, 0, rc / np.where(zero, 1, xr)).astype(x.dtype, copy=False)
    for r in np.flatnonzero(zero.any(axis=1)):
        z = int(np.argmax(zero[r]))
        out[r, z + 1:] = 0
        p = yr[r, z - 1] if z > 0 else x.dtype.type(1)
        q = p * np.cumprod(np.concatenate([[1], xr[r, z + 1:]]).astype(x.dtype))
        out[r, z] = np.sum(gr[r, z:] * q)
    return np.moveaxis(out.reshape(shp), -1, dim)


def cumprod(input, dim, *, dtype=None):
    """Cumulative product along dim (gradient exact with zeros, as torch)."""
    d = wrap_dim(dim, input._data.ndim)
    npd = _int_acc(input._data.dtype, None if dtype is None else _dt.to_numpy_dtype(dtype))
    return Cumprod.apply(input, d, npd)


def all(input, dim=None, keepdim=False):
    dims = wrap_dims(dim, input._data.ndim)
    return _wrap(_dv.asarray(np.all(input._data, axis=dims, keepdims=keepdim)))


def any(input, dim=None, keepdim=False):
    dims = wrap_dims(dim, input._data.ndim)
    return _wrap(_dv.asarray(np.any(input._data, axis=dims, keepdims=keepdim)))


def count_nonzero(input, dim=None):
    dims = wrap_dims(dim, input._data.ndim)
    return _wrap(_dv.asarray(np.count_nonzero(input._data, axis=dims), dtype=np.int64))


__all__ += ["bincount"]


def bincount(input, weights=None, minlength=0):
    """Counts (or summed weights) of each value of a 1-d non-negative integer tensor; length
    max(input) + 1, at least minlength. Float weights keep their dtype, integer ones give
    float64 (as torch). Not differentiable."""
    a = input._data
    if a.dtype.kind == "f":
        raise NotImplementedError("\"bincount_cpu\" not implemented for '%s'"
                                  % _dt.torch_type_name(input.dtype).replace("Tensor", ""))
    if a.ndim != 1 or a.dtype.kind not in "iub" or (a.size and a.min() < 0):
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    if weights is None:
        return _wrap(np.bincount(a, minlength=minlength).astype(np.int64))
    w = weights._data
    if w.shape != a.shape:
        raise RuntimeError("weights should be 1-d and have the same length as input")
    out = np.bincount(a, weights=w, minlength=minlength)
    return _wrap(out.astype(w.dtype if w.dtype.kind == "f" else np.float64))


def _half_in_f32(fn, cuda_fp32=False):
    """fn for bfloat16/float16 inputs: computed (accumulated) in float32 and rounded once to
    the input's dtype, as torch does; the casts are recorded, so gradients flow back. With
    cuda_fp32 (sum, cumsum, logsumexp: torch's CUDA autocast float32 ops), a half cuda input
    inside an enabled CUDA region is cast to float32 and the result stays float32."""
    from ._half import via_f32

    @functools.wraps(fn)
    def reduce_half(input, *args, **kwargs):
        if isinstance(input, Tensor) and input._data.dtype in _dt._HALF_NP and \
                kwargs.get("dtype") is None:
            if cuda_fp32 and type(input._data) is not np.ndarray:
                from ..amp import autocast_mode as _am
                if _am._tls.lowp_cuda is not None:
                    return fn(_am.cast_fp32_cuda(input), *args, **kwargs)
            return via_f32(lambda t: fn(t, *args, **kwargs), input)
        return fn(input, *args, **kwargs)
    return reduce_half


sum, logsumexp = _half_in_f32(sum, True), _half_in_f32(logsumexp, True)
mean, prod, norm = (_half_in_f32(f) for f in (mean, prod, norm))


def _prod_policy(fn):
    """prod under autocast is a float32 op (the product needs range), as in torch"""
    from ..amp import autocast_mode as _am

    @functools.wraps(fn)
    def prod(input, *args, **kwargs):
        if _am._tls.lowp is not None:
            input = _am.cast_fp32(input)
        return fn(input, *args, **kwargs)
    return prod


prod = _prod_policy(prod)
var, std, var_mean, std_mean = (_half_in_f32(f) for f in (var, std, var_mean, std_mean))
cumsum, cumprod = _half_in_f32(cumsum, True), _half_in_f32(cumprod)

