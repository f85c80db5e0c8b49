"""Reductions with autograd: sum, mean, prod, max/min (values+indices), argmax/argmin, var/std,
logsumexp, norm, cumsum, cumprod-free prod backward (exact with zeros)."""
import builtins
from collections import namedtuple

import numpy as np

from .. import dtypes as _dt
from ..autograd.function import Function
from ..tensor import Tensor, _wrap, _install
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


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        if dtype is None and x.dtype.kind in "bi" and x.dtype != np.int64:
            dtype = np.int64
        return np.asarray(np.sum(x, axis=dims, keepdims=keepdim, dtype=dtype))

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
            return np.asarray(np.sum(x, axis=dims, keepdims=keepdim) / x.dtype.type(0))
        return np.asarray(np.mean(x, axis=dims, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        g = _expand_back(g, ctx.shape, ctx.dims, ctx.keepdim)
        return np.broadcast_to(g / g.dtype.type(ctx.n) if ctx.n else g, ctx.shape), None, None


def mean(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind != "f":
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a "
                           "floating point or complex dtype. Got: %s"
                           % input.dtype.name.capitalize())
    return Mean.apply(input, wrap_dims(dim, input._data.ndim), keepdim)


def _exclusive_prod(x, axis):
    """prod of all other elements along axis, exact when x contains zeros."""
    left = np.cumprod(x, axis=axis)
    right = np.flip(np.cumprod(np.flip(x, axis), axis=axis), axis)
    n = x.shape[axis]
    ones_shape = list(x.shape)
    ones_shape[axis] = 1
    one = np.ones(ones_shape, x.dtype)
    left_ex = np.concatenate([one, np.take(left, range(n - 1), axis=axis)], axis=axis)
    right_ex = np.concatenate([np.take(right, range(1, n), axis=axis), one], axis=axis)
    return left_ex * right_ex


class Prod(Function):
    @staticmethod
    def forward(ctx, x, dim, keepdim):
        ctx.save_for_backward(x)
        ctx.dim, ctx.keepdim = dim, keepdim
        return np.asarray(np.prod(x, axis=dim, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if x.size == 0:
            return np.zeros_like(x), None, None
        if ctx.dim is None:
            ex = _exclusive_prod(x.reshape(-1), 0).reshape(x.shape)
            return g * ex, None, None
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.dim)
        return g * _exclusive_prod(x, ctx.dim), None, None


def prod(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    d = None if dim is None else wrap_dim(dim, input._data.ndim)
    if input._data.ndim == 0:
        d = None
    return Prod.apply(input, d, keepdim)


class _ExtremeAll(Function):
    """max()/min() over all elements: gradient split evenly among ties (torch's amax rule)."""

    @staticmethod
    def forward(ctx, x, is_max, dims, keepdim):
        if x.size == 0 and dims is None:
            raise RuntimeError("max(): Expected reduction dim to be specified for input.numel() "
                               "== 0. Specify the reduction dim with the 'dim' argument.")
        y = np.asarray((np.amax if is_max else np.amin)(x, axis=dims, keepdims=keepdim))
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim = dims, keepdim
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        yb = _expand_back(y, x.shape, ctx.dims, ctx.keepdim)
        gb = _expand_back(g, x.shape, ctx.dims, ctx.keepdim)
        mask = (x == yb)
        cnt = mask.sum(axis=ctx.dims, keepdims=True)
        return (mask * (gb / cnt)).astype(g.dtype, copy=False), None, None, None


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
        out = np.zeros(ctx.shape, g.dtype)
        if not ctx.keepdim:
            g, idx = np.expand_dims(g, ctx.dim), np.expand_dims(idx, ctx.dim)
        np.put_along_axis(out, idx, g, axis=ctx.dim)
        return out, None, None, None


def _extreme(input, dim, keepdim, is_max, other=None):
    if isinstance(dim, Tensor):  # max(a, b) elementwise
        from .elementwise import maximum, minimum
        return (maximum if is_max else minimum)(input, dim)
    if dim is None:
        return _ExtremeAll.apply(input, is_max, None, False)
    d = wrap_dim(dim, input._data.ndim)
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
    return _ExtremeAll.apply(input, True, dims, keepdim)


def amin(input, dim=(), keepdim=False):
    dims = None if dim == () or dim is None else wrap_dims(dim, input._data.ndim)
    return _ExtremeAll.apply(input, False, dims, keepdim)


def argmax(input, dim=None, keepdim=False):
    if dim is None:
        return _wrap(np.asarray(np.argmax(input._data), dtype=np.int64))
    d = wrap_dim(dim, input._data.ndim)
    return _wrap(np.asarray(np.argmax(input._data, axis=d, keepdims=keepdim), dtype=np.int64))


def argmin(input, dim=None, keepdim=False):
    if dim is None:
        return _wrap(np.asarray(np.argmin(input._data), dtype=np.int64))
    d = wrap_dim(dim, input._data.ndim)
    return _wrap(np.asarray(np.argmin(input._data, axis=d, keepdims=keepdim), dtype=np.int64))


class Var(Function):
    @staticmethod
    def forward(ctx, x, dims, correction, keepdim):
        m = np.mean(x, axis=dims, keepdims=True)
        ctx.save_for_backward(x, m)
        n = x.size if dims is None else int(np.prod([x.shape[d] for d in dims]))
        ctx.dims, ctx.keepdim, ctx.den = dims, keepdim, builtins.max(n - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(np.var(x, axis=dims, ddof=correction, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        x, m = ctx.saved_tensors
        g = _expand_back(g, x.shape, ctx.dims, ctx.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g * (2.0 / ctx.den) * (x - m)).astype(x.dtype, copy=False), None, None, None


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    if unbiased is None:
        return 1
    return 1 if unbiased else 0


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, builtins.bool):  # var(unbiased) positional form
        dim, unbiased = None, dim
    x = input if input._data.dtype.kind == "f" else input.float()
    return Var.apply(x, wrap_dims(dim, x._data.ndim), _correction(unbiased, correction), keepdim)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    from .elementwise import sqrt
    return sqrt(var(input, dim, unbiased, keepdim, correction=correction))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        if x.size == 0:
            y = np.full(np.sum(x, axis=dims, keepdims=True).shape, -np.inf, x.dtype)
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
    x = input if input._data.dtype.kind == "f" else input.float()
    dims = wrap_dims(dim, x._data.ndim)
    if x._data.ndim == 0:
        dims = None
    return LogSumExp.apply(x, dims, keepdim)


class Norm(Function):
    @staticmethod
    def forward(ctx, x, p, dims, keepdim):
        a = np.abs(x)
        if p == np.inf:
            y = np.amax(a, axis=dims, keepdims=True) if a.size else np.zeros(())
        elif p == -np.inf:
            y = np.amin(a, axis=dims, keepdims=True)
        elif p == 0:
            y = np.sum(a != 0, axis=dims, keepdims=True).astype(x.dtype)
        elif p == 1:
            y = np.sum(a, axis=dims, keepdims=True)
        elif p == 2:
            y = np.sqrt(np.sum(x * x, axis=dims, keepdims=True))
        else:
            y = np.sum(a ** p, axis=dims, keepdims=True) ** (1.0 / p)
        y = np.asarray(y, dtype=x.dtype)
        ctx.save_for_backward(x, y)
        ctx.p, ctx.dims, ctx.keepdim = p, dims, keepdim
        if keepdim:
            return y
        return y.squeeze(dims) if dims is not None else y.reshape(())

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
                d = np.where(y == 0, 0, np.sign(x) * np.abs(x) ** (p - 1) / y ** (p - 1))
        return (g * d).astype(x.dtype, copy=False), None, None, None


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if p == "fro" or p is None:
        p = 2
    if p == "nuc":
        raise NotImplementedError("nuclear norm is not supported by cengine")
    p = builtins.float(p)
    x = input if input._data.dtype.kind == "f" else input.float()
    dims = wrap_dims(dim, x._data.ndim)
    if x._data.ndim == 0:
        dims = None
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
    npd = None if dtype is None else _dt.to_numpy_dtype(dtype)
    if npd is None and input._data.dtype.kind in "bi" and input._data.dtype != np.int64:
        npd = np.int64
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
    npd = None if dtype is None else _dt.to_numpy_dtype(dtype)
    if npd is None and input._data.dtype.kind in "biu" and input._data.dtype != np.int64:
        npd = np.int64
    return Cumprod.apply(input, d, npd)


def all(input, dim=None, keepdim=False):
    dims = wrap_dims(dim, input._data.ndim)
    return _wrap(np.asarray(np.all(input._data, axis=dims, keepdims=keepdim)))


def any(input, dim=None, keepdim=False):
    dims = wrap_dims(dim, input._data.ndim)
    return _wrap(np.asarray(np.any(input._data, axis=dims, keepdims=keepdim)))


def count_nonzero(input, dim=None):
    dims = wrap_dims(dim, input._data.ndim)
    return _wrap(np.asarray(np.count_nonzero(input._data, axis=dims), dtype=np.int64))


for _name, _fn in {"sum": sum, "mean": mean, "prod": prod, "max": max, "min": min,
                   "amax": amax, "amin": amin, "argmax": argmax, "argmin": argmin, "var": var,
                   "std": std, "logsumexp": logsumexp, "norm": norm, "cumsum": cumsum,
                   "all": all, "any": any, "count_nonzero": count_nonzero,
                   "cumprod": cumprod}.items():
    _install(_name, _fn)
