"""Sorting and selection with torch's semantics: sort, argsort, msort, topk, kthvalue, unique.

Order rules follow torch on the CPU: NaN compares greater than every number (last in an
ascending sort, first in a descending one and in topk), `stable=True` keeps equal elements in
their input order in both directions. Values are differentiable: their gradient flows back to
the positions the indices name (a gather of the input)."""
import builtins
from collections import namedtuple

import numpy as np

from .. import _device as _dv

from ..tensor import Tensor, _wrap
from ._util import wrap_dim
from .index import Gather

__all__ = ["sort", "argsort", "msort", "topk", "kthvalue", "unique", "unique_consecutive"]


def _return_type(name, fields=("values", "indices")):
    cls = namedtuple(name, fields)
    cls.__repr__ = lambda self: "cengine.return_types.%s(\n%s)" % (
        name, ",\n".join("%s=%r" % (f, v) for f, v in zip(fields, self)))
    return cls


_sort_rt = _return_type("sort")
_topk_rt = _return_type("topk")
_kthvalue_rt = _return_type("kthvalue")


def _check_tensor(input, name):
    if not isinstance(input, Tensor):
        raise TypeError("%s(): argument 'input' (position 1) must be Tensor, not %s"
                        % (name, type(input).__name__))


def _check_int(v, name, argname, pos):
    if not isinstance(v, (builtins.int, np.integer)) or isinstance(v, builtins.bool):
        raise TypeError("%s(): argument '%s' (position %d) must be int, not %s"
                        % (name, argname, pos, type(v).__name__))
    return builtins.int(v)


def _argsort_np(a, axis, descending):
    """Stable argsort along axis; descending keeps ties in input order too."""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    n = a.shape[axis]
    rev = np.flip(a, axis)
    s = np.argsort(rev, axis=axis, kind="stable")
    return (n - 1) - np.flip(s, axis)


def _values(input, d, idx):
    """input gathered at idx along d (differentiable when input requires grad)."""
    if input._data.ndim == 0:
        return Gather.apply(input.reshape(1), 0, idx.reshape(1)).reshape(())
    return Gather.apply(input, d, idx)


def sort(input, dim=-1, descending=False, stable=False):
    """(values, indices) sorted along dim; ties keep their input order."""
    _check_tensor(input, "sort")
    if isinstance(dim, builtins.bool):  # sort(x, True): torch reads a bool as `descending`
        dim, descending = -1, dim
    a = input._data
    d = wrap_dim(dim, a.ndim)
    if a.ndim == 0:
        return _sort_rt(_values(input, 0, np.zeros((), np.int64)), _wrap(np.zeros((), np.int64)))
    idx = _argsort_np(a, d, builtins.bool(descending)).astype(np.int64, copy=False)
    return _sort_rt(_values(input, d, idx), _wrap(idx))


def argsort(input, dim=-1, descending=False, stable=False):
    _check_tensor(input, "argsort")
    if isinstance(dim, builtins.bool):
        dim, descending = -1, dim
    a = input._data
    d = wrap_dim(dim, a.ndim)
    if a.ndim == 0:
        return _wrap(np.zeros((), np.int64))
    return _wrap(_argsort_np(a, d, builtins.bool(descending)).astype(np.int64, copy=False))


def msort(input):
    """sort(input, dim=0).values"""
    _check_tensor(input, "msort")
    return sort(input, 0).values


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) elements along dim and their indices (sorted=False still
    returns them sorted, which is one of the orders torch allows)."""
    _check_tensor(input, "topk")
    k = _check_int(k, "topk", "k", 2)
    a = input._data
    if a.dtype == np.bool_:
        raise RuntimeError("topk does not support bool dtypes on CPU")
    d = wrap_dim(dim, a.ndim)
    n = a.shape[d] if a.ndim else 1
    if k < 0 or k > n:
        raise RuntimeError("selected index k out of range")
    if a.ndim == 0:  # torch returns the element itself for k = 0 and k = 1 alike
        return _topk_rt(_values(input, 0, np.zeros((), np.int64)), _wrap(np.zeros((), np.int64)))
    if k == 0 or a.size == 0:
        shp = list(a.shape)
        shp[d] = k
        idx = np.zeros(shp, np.int64)
    elif 4 * k < n and n >= 64:
        # partial selection, then a stable sort of the k chosen: O(n + k log k) per row
        part = np.argpartition(a, n - k if largest else k - 1, axis=d)
        sel = np.sort(np.take(part, range(n - k, n) if largest else range(0, k), axis=d), axis=d)
        order = _argsort_np(np.take_along_axis(a, sel, d), d, largest)
        idx = np.take_along_axis(sel, order, d)  # ties in index order, as a full stable sort
    else:
        idx = np.take(_argsort_np(a, d, largest), range(k), axis=d)
    idx = _dv.ascontiguousarray(idx, dtype=np.int64)
    return _topk_rt(_values(input, d, idx), _wrap(idx))


def kthvalue(input, k, dim=-1, keepdim=False):
    """The k-th smallest element (k counts from 1) along dim and its index."""
    _check_tensor(input, "kthvalue")
    k = _check_int(k, "kthvalue", "k", 2)
    a = input._data
    d = wrap_dim(dim, a.ndim)
    n = a.shape[d] if a.ndim else 1
    if k < 1 or k > n:
        raise RuntimeError("kthvalue(): selected number k out of range for dimension %d" % d)
    if a.ndim == 0:
        return _kthvalue_rt(_values(input, 0, np.zeros((), np.int64)),
                            _wrap(np.zeros((), np.int64)))
    idx = np.take(_argsort_np(a, d, False), [k - 1], axis=d).astype(np.int64, copy=False)
    vals = _values(input, d, idx)
    if not keepdim:
        idx = idx.squeeze(d)
        vals = vals.squeeze(d)
    return _kthvalue_rt(vals, _wrap(_dv.ascontiguousarray(idx)))


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """Unique elements (always sorted, as torch on the CPU), optionally with the inverse
    indices (input's shape; along dim: one per slice) and the counts. NaNs are not merged."""
    _check_tensor(input, "unique")
    a = input._data
    if dim is None:
        flat = a.reshape(-1)
        order = np.argsort(flat, kind="stable")
        s = flat[order]
        if s.size:
            new = np.empty(s.size, bool)
            new[0] = True
            new[1:] = s[1:] != s[:-1]  # NaN != NaN: every NaN stays its own entry, as torch
        else:
            new = np.zeros(0, bool)
        starts = np.flatnonzero(new)
        vals = s[starts]
        outs = [_wrap(_dv.ascontiguousarray(vals))]
        if return_inverse:
            inv = np.empty(flat.size, np.int64)
            inv[order] = np.cumsum(new) - 1
            outs.append(_wrap(inv.reshape(a.shape)))
        if return_counts:
            outs.append(_wrap(np.diff(np.append(starts, s.size)).astype(np.int64)))
    else:
        d = wrap_dim(dim, a.ndim)
        if a.ndim == 0:
            raise IndexError("Dimension out of range (expected to be in range of [-1, 0], "
                             "but got %d)" % dim)
        if a.shape[d] == 0 and a.size == 0 and builtins.any(
                s == 0 for i, s in enumerate(a.shape) if i != d):
            raise RuntimeError("Number of zero sized dimensions is more than one, so unique "
                               "cannot be applied ")
        vals, inv, cnt = np.unique(a, return_inverse=True, return_counts=True, axis=d)
        outs = [_wrap(_dv.ascontiguousarray(vals))]
        if return_inverse:
            outs.append(_wrap(inv.reshape(-1).astype(np.int64)))
        if return_counts:
            outs.append(_wrap(cnt.astype(np.int64)))
    return outs[0] if len(outs) == 1 else tuple(outs)


def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """Collapse runs of equal consecutive elements (flattened when dim is None)."""
    _check_tensor(input, "unique_consecutive")
    a = input._data
    if dim is not None:
        d = wrap_dim(dim, a.ndim)
        m = np.moveaxis(a, d, 0).reshape(a.shape[d], -1)
        new = np.ones(m.shape[0], bool)
        if m.shape[0] > 1:
            new[1:] = np.any(m[1:] != m[:-1], axis=1)
        starts = np.flatnonzero(new)
        vals = np.take(a, starts, axis=d)
    else:
        m = a.reshape(-1)
        new = np.ones(m.size, bool)
        if m.size > 1:
            new[1:] = m[1:] != m[:-1]
        starts = np.flatnonzero(new) if m.size else np.zeros(0, np.int64)
        vals = m[starts]
    outs = [_wrap(_dv.ascontiguousarray(vals))]
    if return_inverse:
        inv = (np.cumsum(new) - 1).astype(np.int64)
        outs.append(_wrap(inv.reshape(a.shape) if dim is None else inv))
    if return_counts:
        outs.append(_wrap(np.diff(np.append(starts, new.size)).astype(np.int64)))
    return outs[0] if len(outs) == 1 else tuple(outs)
