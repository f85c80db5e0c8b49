"""Indexing with autograd: __getitem__ (ints, slices, None, Ellipsis, bool masks, integer index
tensors; backward scatters and accumulates repeated indices), __setitem__, index_select, gather,
masked_fill, nonzero (the scatter family lives in scatter.py)."""
import builtins

import numpy as np

from .. import _device as _dv

from .. import dtypes as _dt
from ..autograd import grad_mode as _gm
from ..autograd.function import Function
from ..tensor import Tensor, _wrap
from ._util import wrap_dim, unbroadcast

__all__ = ["index_select", "gather", "masked_fill", "nonzero",
           "take_along_dim", "masked_select", "argwhere"]


def _conv_index(idx):
    """Turn Tensors inside an index into numpy arrays; return (index, is_basic)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    out, basic = [], True
    for i in idx:
        if isinstance(i, Tensor):
            a = i._data
            if _dt.is_floating(a.dtype):
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            if a.ndim == 0 and a.dtype.kind in "iu":
                out.append(builtins.int(a))
                continue
            out.append(a)
            basic = False
        elif isinstance(i, (list, np.ndarray)):
            a = np.asarray(i)
            if _dt.is_floating(a.dtype):
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            out.append(a)
            basic = False
        elif isinstance(i, builtins.bool):
            out.append(i)
            basic = False
        elif isinstance(i, range):  # a python range indexes like the list of its values
            out.append(np.arange(i.start, i.stop, i.step, dtype=np.int64))
            basic = False
        elif i is None or i is Ellipsis or isinstance(i, (builtins.int, np.integer, slice)):
            if isinstance(i, slice) and i.step is not None and i.step <= 0:
                raise ValueError("step must be greater than zero")
            out.append(i)
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte "
                             "Variables are valid indices (got %s)" % type(i).__name__)
    return tuple(out), basic


def _is_arr(i):
    """an index array: numpy, or CuPy for a cuda tensor's index"""
    return isinstance(i, np.ndarray) or _dv.is_cuda_array(i)


def _is_unique_adv(idx):
    """True when the advanced part of idx cannot hit one element twice (bool masks only)."""
    return builtins.all(not _is_arr(i) or i.dtype == np.bool_ for i in idx)


class Index(Function):
    @staticmethod
    def forward(ctx, x, idx, basic):
        ctx.shape, ctx.dtype, ctx.idx, ctx.basic = x.shape, x.dtype, idx, basic
        try:
            return x[idx] if basic else _np_get(x, idx)
        except IndexError as e:
            raise IndexError(str(e).replace("axis", "dimension")) from None

    @staticmethod
    def backward(ctx, g):
        out = _dv.zeros(g, ctx.shape, g.dtype)
        if ctx.basic:
            out[ctx.idx] = g
        elif _is_unique_adv(ctx.idx):
            _np_set(out, ctx.idx, g)
        else:
            _np_add_at(out, ctx.idx, g)
        return out, None, None


_Index = Index


def _split_int_and_advanced(idx):
    """torch applies integer indices before index tensors (numpy counts an int among the
    advanced indices, which moves the result dims when a slice separates them): split such an
    index into a basic step (ints, Nones) and an advanced step, or return None."""
    if not builtins.any(_is_arr(i) for i in idx) or \
            not builtins.any(isinstance(i, (builtins.int, np.integer)) and
                             not isinstance(i, builtins.bool) for i in idx):
        return None
    if builtins.any(isinstance(i, builtins.bool) for i in idx):
        return None
    first, second = [], []
    for i in idx:
        if _is_arr(i):
            first.append(slice(None))
            second.append(i)
        elif isinstance(i, (builtins.int, np.integer)):
            first.append(i)
        elif i is None:
            first.append(None)
            second.append(slice(None))
        else:                           # slice or Ellipsis: applied in the first step
            first.append(i)
            second.append(slice(None) if isinstance(i, slice) else i)
    return tuple(first), tuple(second)


def _np_get(a, idx):
    st = _split_int_and_advanced(idx)
    return a[idx] if st is None else a[st[0]][st[1]]


def _np_set(a, idx, v):
    st = _split_int_and_advanced(idx)
    if st is None:
        a[idx] = v
    else:
        a[st[0]][st[1]] = v      # a[st[0]] is a view: the write lands in a


def _np_add_at(a, idx, v):
    st = _split_int_and_advanced(idx)
    if st is not None:
        a, idx = a[st[0]], st[1]
    if type(a) is not np.ndarray and _dv.is_cuda_array(a):
        import cupyx                       # CuPy's unbuffered a[idx] += v (repeats add up)
        cupyx.scatter_add(a, idx, v)
    else:
        np.add.at(a, idx, v)


def getitem(self, idx):
    idx, basic = _conv_index(idx)
    if not (_gm._state[0] and self.requires_grad):
        try:
            r = self._data[idx] if basic else _np_get(self._data, idx)
        except IndexError as e:
            raise IndexError(str(e).replace("axis", "dimension")) from None
        t = _wrap(r if isinstance(r, np.ndarray) else _dv.asarray(r))
        if basic:
            t._version = self._version
        return t
    t = Index.apply(self, idx, basic)
    if basic:
        t._version = self._version
    return t


class IndexPut(Function):
    """out = x.clone(); out[idx] = v  (accumulate=False) or out[idx] += v."""

    @staticmethod
    def forward(ctx, x, idx, v, accumulate):
        out = x.copy()
        if accumulate:
            _np_add_at(out, idx, v)
        else:
            _np_set(out, idx, v)
        ctx.idx, ctx.accumulate = idx, accumulate
        ctx.vshape = v.shape if _is_arr(v) else ()
        return out

    @staticmethod
    def backward(ctx, g):
        gx = None
        if ctx.needs_input_grad[0]:
            if ctx.accumulate:
                gx = g
            else:
                gx = g.copy()
                _np_set(gx, ctx.idx, 0)
        gv = None
        if ctx.needs_input_grad[2]:
            gv = unbroadcast(_dv.asarray(_np_get(g, ctx.idx)), ctx.vshape)
        return gx, None, gv, None


def setitem(self, idx, value):
    idx, basic = _conv_index(idx)
    if isinstance(value, Tensor):
        needs = _gm._state[0] and (self.requires_grad or value.requires_grad)
    else:
        needs = _gm._state[0] and self.requires_grad
    if _dv._CP[0] is not None and isinstance(value, Tensor):
        from .elementwise import _cpu_scalar_to     # t_cuda[i] = torch.tensor(1.) is allowed
        value = _cpu_scalar_to(value, self._data)
    if not needs:
        v = value._data if isinstance(value, Tensor) else value
        if _dv._CP[0] is not None and isinstance(value, Tensor):
            _dv.check_same_device((self._data, v))
        try:
            _np_set(self._data, idx, v)
        except ValueError as e:
            raise RuntimeError(str(e)) from None
        self._version[0] += 1
        return
    from .elementwise import _inplace, cast
    if isinstance(value, Tensor) and value._data.dtype != self._data.dtype:
        value = cast(value, self._data.dtype)
    _inplace(self, lambda s, v: IndexPut.apply(s, idx, v, False), value)


class IndexSelect(Function):
    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        return np.take(x, index, axis=dim)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        out = _dv.zeros(g, ctx.shape, g.dtype)
        idx = (slice(None),) * ctx.dim + (index,)
        np.add.at(out, idx, g)
        return out, None, None


def _check_index_tensor(index, name, long_only=False):
    if not isinstance(index, Tensor):
        raise TypeError("%s(): argument 'index' must be Tensor, not %s"
                        % (name, type(index).__name__))
    kind = index._data.dtype.kind
    if kind not in "iu" or (long_only and index._data.dtype != np.int64):
        raise RuntimeError("%s(): Expected dtype int64 for index" % name)


def _sz(shape):
    return "[%s]" % ", ".join(str(s) for s in shape)


def index_select(input, dim, index):
    _check_index_tensor(index, "index_select")
    if index._data.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    d = wrap_dim(dim, input._data.ndim)
    n = input._data.shape[d] if input._data.ndim else 1
    ix = index._data.reshape(-1)
    # torch raises for every index outside [0, n): negative indices do not wrap
    if ix.size and (ix.min() < 0 or ix.max() >= n):
        raise IndexError("index out of range in self")
    if input._data.ndim == 0:       # a 0-d input behaves as one element and stays 0-d
        return IndexSelect.apply(input.reshape(1), 0, ix).reshape(())
    return IndexSelect.apply(input, d, ix)


class Gather(Function):
    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        if index.size == 0:
            return np.empty(index.shape, x.dtype)
        return np.take_along_axis(x, index, axis=dim)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        out = _dv.zeros(g, ctx.shape, g.dtype)
        if index.size:
            _scatter_add_np(out, ctx.dim, index, g)
        return out, None, None


def _scatter_add_np(out, dim, index, src):
    """out[index[i][j]][j] += src[i][j] along dim (index may be smaller than out)."""
    if type(out) is not np.ndarray:          # CuPy: device index grids, atomic scatter-add
        from .scatter import _add_at
        nd = index.ndim
        grids = [_dv.arange(index, n).reshape((1,) * k + (n,) + (1,) * (nd - k - 1))
                 for k, n in enumerate(index.shape)]
        full = tuple(index if k == dim else grids[k] for k in range(nd))
        _add_at(out, full, src[tuple(slice(0, s) for s in index.shape)])
        return
    grids = np.indices(index.shape, sparse=True)
    full = tuple(index if k == dim else grids[k] for k in range(index.ndim))
    np.add.at(out, full, src[tuple(slice(0, s) for s in index.shape)])


def _check_bounds(ix, d, n):
    if ix.size:
        lo, hi = ix.min(), ix.max()
        if lo < 0 or hi >= n:
            raise RuntimeError("index %d is out of bounds for dimension %d with size %d"
                               % (lo if lo < 0 else hi, d, n))


def gather(input, dim, index, *, sparse_grad=False):
    """out[i][j] = input[index[i][j]][j] along dim (torch.gather): index has input's number of
    dimensions and is no larger than input apart from dim; the result has index's shape."""
    _check_index_tensor(index, "gather")
    d = wrap_dim(dim, input._data.ndim)
    ix = index._data
    if input._data.ndim == 0:       # 0-d input: one element, seen as 1-d
        return gather(input.reshape(1), 0, index.reshape(-1) if ix.ndim == 0 else index
                      ).reshape(ix.shape)
    if ix.size == 0:                # torch checks nothing more for an empty index
        if ix.ndim != input._data.ndim:
            return _wrap(np.empty(ix.shape, input._data.dtype))
        return Gather.apply(input, d, ix)
    if ix.ndim == 0 and input._data.ndim == 1:
        return gather(input, d, index.reshape(1)).reshape(())
    if ix.ndim != input._data.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    xs = input._data.shape
    for k in range(ix.ndim):
        if k != d and ix.shape[k] > xs[k]:
            raise RuntimeError("Size does not match at dimension %d expected index %s to be no "
                               "larger than self %s apart from dimension %d"
                               % (k, _sz(ix.shape), _sz(xs), d))
    _check_bounds(ix, d, xs[d])
    if ix.shape != xs:
        sl = tuple(slice(0, s) if k != d else slice(None) for k, s in enumerate(ix.shape))
        input = input[sl]
    return Gather.apply(input, d, ix)


def take_along_dim(input, indices, dim=None):
    """Values of input at indices along dim (torch.take_along_dim): input and indices broadcast
    against each other in every dimension but dim; dim=None gathers from the flattened input."""
    if not isinstance(indices, Tensor):
        raise TypeError("take_along_dim(): argument 'indices' must be Tensor, not %s"
                        % type(indices).__name__)
    if indices._data.dtype != np.int64:
        raise RuntimeError("torch.take_along_dim(): dtype of indices should be Long but got %s"
                           % _dt.torch_type_name(indices.dtype))
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    nd = input._data.ndim
    d = wrap_dim(dim, nd)
    if nd != indices._data.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same "
                           "number of dimensions, but got %d dimensions for input, and %d "
                           "dimensions for indices" % (nd, indices._data.ndim))
    if nd == 0:
        return gather(input, 0, indices)
    xs, js = input._data.shape, indices._data.shape
    shape = []
    for k in range(nd):
        if k == d:
            shape.append(None)
        elif xs[k] == js[k] or js[k] == 1:
            shape.append(xs[k])
        elif xs[k] == 1:
            shape.append(js[k])
        else:
            raise RuntimeError("The size of tensor a (%d) must match the size of tensor b (%d) at "
                               "non-singleton dimension %d" % (xs[k], js[k], k))
    n = xs[d]
    ix = indices._data
    if ix.size and ix.min() < 0:     # indices along dim may count from the end, as in torch
        if ix.min() < -n:
            _check_bounds(ix, d, n)
        ix = np.where(ix < 0, ix + n, ix)
    xshape = tuple(xs[k] if k == d else shape[k] for k in range(nd))
    jshape = tuple(js[k] if k == d else shape[k] for k in range(nd))
    if xshape != xs:
        input = input.expand(*xshape)
    if jshape != ix.shape:
        ix = np.broadcast_to(ix, jshape)
    return gather(input, d, _wrap(_dv.ascontiguousarray(ix)))


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        ctx.shape = x.shape
        return np.where(mask, _dv.asarray(value, x.dtype, x), x)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return unbroadcast(np.where(mask, _dv.zeros(g, (), g.dtype), g), ctx.shape), None, None


def masked_fill(input, mask, value):
    if not isinstance(mask, Tensor) or mask._data.dtype != np.bool_:
        raise RuntimeError("masked_fill_ only supports boolean masks, but got mask with dtype %s"
                           % (mask.dtype.name if isinstance(mask, Tensor) else type(mask).__name__))
    if isinstance(value, Tensor):
        value = value.item()
    return MaskedFill.apply(input, mask._data, value)


def masked_fill_(self, mask, value):
    from .elementwise import _inplace
    return _inplace(self, lambda s: masked_fill(s, mask, value))


def masked_select(input, mask):
    b = np.broadcast_arrays(input._data, mask._data)[1]
    return getitem(input.expand(*b.shape) if input.shape != b.shape else input, _wrap(b))


def nonzero(input, *, as_tuple=False):
    nz = np.nonzero(input._data)
    if as_tuple:
        return tuple(_wrap(a.astype(np.int64)) for a in nz)
    return _wrap(np.stack(nz, axis=1).astype(np.int64) if nz else np.zeros((0, 0), np.int64))


def argwhere(input):
    return nonzero(input)
