"""Scatter and index-put ops with torch's semantics and autograd: scatter / scatter_,
scatter_add / scatter_add_, scatter_reduce (sum, prod, mean, amax, amin; include_self),
index_add, index_copy, index_fill, masked_scatter (each also in place, with a trailing _).

Index checks happen here, before numpy sees the index: a negative or too large index is a
RuntimeError naming the dimension (numpy would wrap negative indices silently)."""
import builtins

import numpy as np

from .. import _device as _dv

from .. import dtypes as _dt
from ..autograd.function import Function
from ..tensor import Tensor, _wrap
from ._util import wrap_dim

__all__ = ["scatter", "scatter_add", "scatter_reduce", "index_add", "index_copy", "index_fill",
           "masked_scatter"]

def _tname(a):
    return _dt.torch_type_name(a.dtype)


def _shape_str(s):
    return "[%s]" % ", ".join(str(v) for v in s)


# ---------------------------------------------------------------------------- scatter family
def _index_array(name, index):
    """index's array after torch's checks for the index argument of scatter / index_* ops"""
    if not isinstance(index, Tensor):
        raise TypeError("%s(): argument 'index' must be Tensor, not %s"
                        % (name, type(index).__name__))
    ix = index._data
    if ix.dtype not in (np.int64, np.int32):
        raise RuntimeError("%s(): Expected dtype int32/int64 for index" % name)
    return ix


def _scatter_index(name, self, d, index, src):
    """Validate a scatter's index (and src, when a tensor) the way torch does; return the
    numpy index tuple addressing self (the positions written) and the index array."""
    ix = _index_array(name, index)
    a = self._data
    nd = builtins.max(a.ndim, 1)
    if ix.ndim != a.ndim and not (ix.size == 0 and ix.ndim <= 1) and \
            not (a.ndim == 0 and ix.ndim == 1 and ix.size == 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    if isinstance(src, Tensor):
        s = src._data
        if s.ndim != ix.ndim and ix.size:
            raise RuntimeError("Index tensor must have the same number of dimensions as src "
                               "tensor")
        if s.dtype != a.dtype:
            raise RuntimeError("%s(): Expected self.dtype to be equal to src.dtype"
                               % name.rstrip("_"))
    if ix.size == 0:
        return None, ix
    ishape = ix.shape if ix.ndim else (1,)
    ashape = a.shape if a.ndim else (1,)
    bad = builtins.any(ishape[k] > ashape[k] for k in range(nd) if k != d)
    if isinstance(src, Tensor):
        sshape = src._data.shape if src._data.ndim else (1,)
        bad = bad or builtins.any(ishape[k] > sshape[k] for k in range(nd))
        if bad:
            raise RuntimeError("Expected index %s to be no larger than self %s apart from "
                               "dimension %d and to be no larger size than src %s"
                               % (_shape_str(ishape), _shape_str(ashape), d, _shape_str(sshape)))
    elif bad:
        raise RuntimeError("Expected index %s to be no larger than self %s apart from "
                           "dimension %d" % (_shape_str(ishape), _shape_str(ashape), d))
    n = ashape[d]
    lo, hi = builtins.int(ix.min()), builtins.int(ix.max())
    if lo < 0 or hi >= n:
        raise RuntimeError("index %d is out of bounds for dimension %d with size %d"
                           % (lo if lo < 0 else hi, d, n))
    ix2 = ix.reshape(ishape).astype(np.intp, copy=False)
    grids = np.indices(ishape, sparse=True) if type(ix) is np.ndarray else \
        [_dv.arange(ix, n_k).reshape((1,) * k + (n_k,) + (1,) * (nd - k - 1))
         for k, n_k in enumerate(ishape)]
    pos = tuple(ix2 if k == d else grids[k] for k in range(nd))
    return pos, ix2


def _add_at(a, idx, v):
    """np.add.at(a, idx, v); CuPy arrays through cupyx.scatter_add (atomic adds)."""
    if type(a) is np.ndarray:
        np.add.at(a, idx, v)
        return
    import cupyx
    if not _dv.is_cuda_array(v):
        v = _dv.asarray(v, a.dtype, a)
    cupyx.scatter_add(a, idx, v)


def _src_part(src, ishape):
    """The leading index-shaped block of src (torch reads src only where index has entries)."""
    if src.ndim == 0:
        return src.reshape((1,) * len(ishape))
    return src[tuple(slice(0, s) for s in ishape)]


def _embed(part, sshape):
    """Inverse of _src_part for gradients: zeros of src's shape with part in the corner."""
    out = _dv.zeros(part, sshape if sshape else (1,) * part.ndim, part.dtype)
    out[tuple(slice(0, s) for s in part.shape)] = part
    return out.reshape(sshape)


def _flat(a):
    return a.reshape((1,)) if a.ndim == 0 else a


class _Scatter(Function):
    """out = self; out[pos] = src (later writes win, as torch's CPU loop)."""

    @staticmethod
    def forward(ctx, x, pos, src, is_tensor):
        out = x.copy()
        of = _flat(out)
        if pos is not None:
            of[pos] = _src_part(src, _pos_shape(pos)) if is_tensor else src
        ctx.pos, ctx.sshape, ctx.is_tensor = pos, (src.shape if is_tensor else ()), is_tensor
        return out

    @staticmethod
    def backward(ctx, g):
        pos = ctx.pos
        gx = gs = None
        if ctx.needs_input_grad[0]:
            gx = g.copy()
            if pos is not None:
                _flat(gx)[pos] = 0
        if ctx.is_tensor and ctx.needs_input_grad[2]:
            if pos is None:
                gs = _dv.zeros(g, ctx.sshape, g.dtype)
            else:
                gs = _embed(_dv.asarray(_flat(g)[pos]), ctx.sshape)
        return gx, None, gs, None


def _pos_shape(pos):
    return np.broadcast_shapes(*[p.shape for p in pos])


def _scatter_reduce_legacy(name, self, d, index, src, reduce):
    if reduce not in ("add", "multiply"):
        raise RuntimeError("reduce argument must be either add or multiply.")
    if not isinstance(src, Tensor):
        src = _wrap(np.full(index._data.shape, src, self._data.dtype))
    return scatter_reduce(self, d, index, src, "sum" if reduce == "add" else "prod")


def scatter(input, dim, index, src=None, value=None, *, reduce=None):
    """out-of-place scatter: input with src (a tensor or a number) written at index along dim."""
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() missing required argument 'src' or 'value'")
    d = wrap_dim(dim, input._data.ndim)
    if reduce is not None:
        return _scatter_reduce_legacy("scatter", input, d, index, src, reduce)
    is_t = isinstance(src, Tensor)
    if not is_t and not isinstance(src, (builtins.int, builtins.float, builtins.bool,
                                         np.generic)):
        raise TypeError("scatter(): argument 'src' must be Tensor or Number, not %s"
                        % type(src).__name__)
    pos, _ = _scatter_index("scatter", input, d, index, src if is_t else None)
    return _Scatter.apply(input, pos, src, is_t)


class _ScatterAdd(Function):
    @staticmethod
    def forward(ctx, x, pos, src):
        out = x.copy()
        if pos is not None:
            _add_at(_flat(out), pos, _src_part(src, _pos_shape(pos)))
        ctx.pos, ctx.sshape = pos, src.shape
        return out

    @staticmethod
    def backward(ctx, g):
        gs = None
        if ctx.needs_input_grad[2]:
            gs = _dv.zeros(g, ctx.sshape, g.dtype) if ctx.pos is None else \
                _embed(_dv.asarray(_flat(g)[ctx.pos]), ctx.sshape)
        return g, None, gs


def scatter_add(input, dim, index, src):
    """input with src added at index along dim (repeated indices accumulate)."""
    d = wrap_dim(dim, input._data.ndim)
    if not isinstance(src, Tensor):
        raise TypeError("scatter_add(): argument 'src' (position 4) must be Tensor, not %s"
                        % type(src).__name__)
    pos, _ = _scatter_index("scatter_add", input, d, index, src)
    return _ScatterAdd.apply(input, pos, src)


_REDUCES = ("sum", "prod", "mean", "amax", "amin")


def _identity(red, dt):
    if red in ("sum", "mean"):
        return 0
    if red == "prod":
        return 1
    if _dt.is_floating(dt):
        return -np.inf if red == "amax" else np.inf
    if dt.kind == "b":
        return red != "amax"
    info = np.iinfo(dt)
    return info.min if red == "amax" else info.max


class _ScatterReduce(Function):
    @staticmethod
    def forward(ctx, x, pos, src, red, include_self):
        out = x.copy()
        of = _flat(out)
        ctx.pos, ctx.sshape, ctx.red, ctx.inc = pos, src.shape, red, include_self
        if pos is None:
            return out
        part = _src_part(src, _pos_shape(pos))
        hit = np.zeros(of.shape, np.int64)   # sources landing on each position
        _add_at(hit, pos, 1)
        if not include_self:
            of[pos] = _identity(red, x.dtype)
        if red in ("sum", "mean"):
            _add_at(of, pos, part)
        elif red == "prod":
            np.multiply.at(of, pos, part)
        elif red == "amax":
            np.maximum.at(of, pos, part)
        else:
            np.minimum.at(of, pos, part)
        if red == "mean":
            cnt = hit + (1 if include_self else 0)
            cnt = np.maximum(cnt, 1)
            if _dt.is_floating(x.dtype):
                of[...] = of / cnt.astype(x.dtype)
            else:
                of[...] = np.floor_divide(of, cnt).astype(x.dtype)
        ctx.hit = hit
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[2]:
            ctx.save_for_backward(x, src, out)
        return out

    @staticmethod
    def backward(ctx, g):
        pos, red, inc = ctx.pos, ctx.red, ctx.inc
        n = ctx.needs_input_grad
        if pos is None:
            return g if n[0] else None, None, _dv.zeros(g, ctx.sshape, g.dtype) if n[2] else None, \
                None, None
        x, src, out = ctx.saved_tensors
        xf, gf, of = _flat(x), _flat(g), _flat(out)
        hit = ctx.hit
        part = _src_part(src, _pos_shape(pos))
        untouched = hit == 0
        gx = gp = None
        if red == "sum":
            gx = np.where(untouched | inc, gf, 0).astype(g.dtype)
            gp = _dv.asarray(gf[pos])
        elif red == "mean":
            cnt = np.maximum(hit + (1 if inc else 0), 1).astype(g.dtype)
            gx = np.where(untouched, gf, gf / cnt if inc else 0).astype(g.dtype)
            gp = _dv.asarray((gf / cnt)[pos])
        elif red == "prod":
            # products exact with zeros: count zeros among the factors of each position
            zeros = np.zeros(xf.shape, np.int64)
            _add_at(zeros, pos, (part == 0).astype(np.int64))
            nzprod = np.ones(xf.shape, x.dtype)
            np.multiply.at(nzprod, pos, np.where(part == 0, 1, part).astype(x.dtype))
            if inc:
                zeros = zeros + (xf == 0)
                nzprod_all = nzprod * np.where(xf == 0, 1, xf)
            else:
                nzprod_all = nzprod
            # gradient to x (a factor only when include_self, or where nothing landed)
            gx_t = np.where(zeros == 0, nzprod, np.where((zeros == 1) & (xf == 0), nzprod, 0))
            gx = np.where(untouched, gf, gf * gx_t if inc else 0).astype(g.dtype)
            z_at, p_at, g_at = zeros[pos], nzprod_all[pos], gf[pos]
            with np.errstate(divide="ignore", invalid="ignore"):
                d_src = np.where(z_at == 0, p_at / np.where(part == 0, 1, part),
                                 np.where((z_at == 1) & (part == 0), p_at, 0))
            gp = (g_at * d_src).astype(g.dtype)
        else:   # amax / amin: the gradient is shared evenly by the elements equal to the result
            pick_x = (xf == of) if inc else np.zeros(xf.shape, bool)
            pick_p = part == of[pos]
            cnt = pick_x.astype(np.int64)
            _add_at(cnt, pos, pick_p.astype(np.int64))
            cnt = np.maximum(cnt, 1).astype(g.dtype)
            gx = np.where(untouched, gf, np.where(pick_x, gf / cnt, 0)).astype(g.dtype)
            gp = np.where(pick_p, (gf / cnt)[pos], 0).astype(g.dtype)
            # where the result is NaN nothing equals it: torch's gradient there is NaN (0/0)
            nan_at = np.isnan(of) & ~untouched if _dt.is_floating(of.dtype) else None
            if nan_at is not None and nan_at.any():
                if inc:
                    gx = np.where(nan_at, np.nan, gx).astype(g.dtype)
                gp = np.where(nan_at[pos], np.nan, gp).astype(g.dtype)
        gx = gx.reshape(g.shape) if n[0] else None
        gs = _embed(_dv.asarray(gp), ctx.sshape) if n[2] else None
        return gx, None, gs, None, None


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """Reduce src into input at index along dim: reduce in sum, prod, mean, amax, amin;
    include_self=False leaves input's own values out of the positions that receive a source."""
    if reduce not in _REDUCES:
        raise RuntimeError("reduce argument must be either sum, prod, mean, amax or amin, got %s"
                           % reduce)
    d = wrap_dim(dim, input._data.ndim)
    if not isinstance(src, Tensor):
        raise TypeError("scatter_reduce(): argument 'src' (position 3) must be Tensor, not %s"
                        % type(src).__name__)
    pos, _ = _scatter_index("scatter_reduce", input, d, index, src)
    return _ScatterReduce.apply(input, pos, src, reduce, builtins.bool(include_self))


# ---------------------------------------------------------------------------- index_* family
def _index_vector(name, self, d, index, err=RuntimeError):
    ix = _index_array(name, index)
    if ix.ndim > 1:
        raise IndexError("%s(): Index is supposed to be a vector, but got dim: %d with type: %s "
                         "and size: %s" % (name, ix.ndim, _tname(ix), _shape_str(ix.shape)))
    ix = ix.reshape(-1).astype(np.intp, copy=False)
    n = self._data.shape[d] if self._data.ndim else 1
    if ix.size:
        lo, hi = builtins.int(ix.min()), builtins.int(ix.max())
        if lo < 0 or hi >= n:
            prefix = "%s(): " % name if err is IndexError and name == "index_copy_" else ""
            raise err("%sindex %d is out of bounds for dimension %d with size %d"
                      % (prefix, lo if lo < 0 else hi, d, n))
    return ix


def _check_source(name, self, d, ix, source, err=RuntimeError, colon=True):
    if not isinstance(source, Tensor):
        raise TypeError("%s(): argument 'source' must be Tensor, not %s"
                        % (name, type(source).__name__))
    s = source._data
    if s.dtype != self._data.dtype:
        raise RuntimeError("%s(): self (%s) and source (%s) must have the same scalar type"
                           % (name, _tname(self._data), _tname(s)))
    ns = s.shape[d] if s.ndim else 1
    if ns != ix.size:
        if colon:
            raise err("%s(): Number of indices (%d) should be equal to source.size(dim): (%d), "
                      "for dim: %d" % (name, ix.size, ns, d))
        raise err("%s(): Number of indices (%d) should be equal to source.size(dim) (%d)"
                  % (name, ix.size, ns))
    a = self._data
    want = a.shape[:d] + (ix.size,) + a.shape[d + 1:] if a.ndim else (ix.size,) if s.ndim else ()
    if s.ndim and a.ndim and s.shape != want:
        raise RuntimeError("%s(): source %s and self %s must have the same size apart from "
                           "dimension %d" % (name, _shape_str(s.shape), _shape_str(a.shape), d))


def _sel(d, ix):
    return (slice(None),) * d + (ix,)


class _IndexAdd(Function):
    @staticmethod
    def forward(ctx, x, d, ix, src, alpha):
        out = x.copy()
        v = src if alpha == 1 else src * _dv.asarray(alpha, x.dtype, x)
        _add_at(_flat(out), _sel(d, ix), v.reshape(_flat(out)[_sel(d, ix)].shape))
        ctx.d, ctx.ix, ctx.alpha, ctx.sshape = d, ix, alpha, src.shape
        return out

    @staticmethod
    def backward(ctx, g):
        gs = None
        if ctx.needs_input_grad[3]:
            gs = _dv.asarray(_flat(g)[_sel(ctx.d, ctx.ix)])
            if ctx.alpha != 1:
                gs = gs * _dv.asarray(ctx.alpha, g.dtype, g)
            gs = gs.reshape(ctx.sshape)
        return g, None, None, gs, None


def index_add(input, dim, index, source, *, alpha=1):
    """input with alpha * source added at the entries of index along dim."""
    d = wrap_dim(dim, input._data.ndim)
    ix = _index_vector("index_add_", input, d, index)
    _check_source("index_add_", input, d, ix, source)
    return _IndexAdd.apply(input, d, ix, source, alpha)


class _IndexCopy(Function):
    @staticmethod
    def forward(ctx, x, d, ix, src):
        out = x.copy()
        of = _flat(out)
        of[_sel(d, ix)] = src.reshape(of[_sel(d, ix)].shape)
        ctx.d, ctx.ix, ctx.sshape = d, ix, src.shape
        return out

    @staticmethod
    def backward(ctx, g):
        gx = gs = None
        sel = _sel(ctx.d, ctx.ix)
        if ctx.needs_input_grad[0]:
            gx = g.copy()
            _flat(gx)[sel] = 0
        if ctx.needs_input_grad[3]:
            gs = _dv.asarray(_flat(g)[sel]).reshape(ctx.sshape)
        return gx, None, None, gs


def index_copy(input, dim, index, source):
    """input with the slices of source copied to the entries of index along dim."""
    d = wrap_dim(dim, input._data.ndim)
    ix = _index_vector("index_copy_", input, d, index, IndexError)
    _check_source("index_copy_", input, d, ix, source, IndexError, colon=False)
    return _IndexCopy.apply(input, d, ix, source)


class _IndexFill(Function):
    @staticmethod
    def forward(ctx, x, d, ix, value):
        out = x.copy()
        _flat(out)[_sel(d, ix)] = value
        ctx.d, ctx.ix = d, ix
        return out

    @staticmethod
    def backward(ctx, g):
        gx = g.copy()
        _flat(gx)[_sel(ctx.d, ctx.ix)] = 0
        return gx, None, None, None


def index_fill(input, dim, index, value):
    """input with value written in the slices index names along dim."""
    d = wrap_dim(dim, input._data.ndim)
    ix = _index_vector("index_fill_", input, d, index, IndexError)
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            raise RuntimeError("index_fill_ only supports a 0-dimensional value tensor, but got "
                               "tensor with %d dimension(s)." % value._data.ndim)
        if value.requires_grad:
            raise NotImplementedError("index_fill with a value tensor that requires grad is not "
                                      "supported by cengine; pass value.item() or a constant")
        value = value.item()
    return _IndexFill.apply(input, d, ix, value)


class _MaskedScatter(Function):
    @staticmethod
    def forward(ctx, x, mask, src):
        out = x.copy()
        m = np.broadcast_to(mask, x.shape)
        k = builtins.int(np.count_nonzero(m))
        out[m] = src.reshape(-1)[:k]
        ctx.m, ctx.k, ctx.sshape = m, k, src.shape
        return out

    @staticmethod
    def backward(ctx, g):
        gx = gs = None
        if ctx.needs_input_grad[0]:
            gx = np.where(ctx.m, _dv.zeros(g, (), g.dtype), g)
        if ctx.needs_input_grad[2]:
            flat = _dv.zeros(g, int(np.prod(ctx.sshape)), g.dtype)
            flat[:ctx.k] = g[ctx.m]
            gs = flat.reshape(ctx.sshape)
        return gx, None, gs


def masked_scatter(input, mask, source):
    """input with the leading elements of source copied, in order, where mask is True."""
    if not isinstance(mask, Tensor) or mask._data.dtype != np.bool_:
        raise RuntimeError("masked_scatter_ only supports boolean masks, but got mask with dtype "
                           "%s" % (_tname(mask._data) if isinstance(mask, Tensor)
                                   else type(mask).__name__))
    if not isinstance(source, Tensor):
        raise TypeError("masked_scatter(): argument 'source' must be Tensor, not %s"
                        % type(source).__name__)
    if source._data.dtype != input._data.dtype:
        raise RuntimeError("masked_scatter: expected self and source to have same dtypes but got"
                           "%s and %s" % (_tname(input._data), _tname(source._data)))
    try:
        m = np.broadcast_to(mask._data, input._data.shape)
    except ValueError:
        raise RuntimeError("The size of mask %s must be broadcastable to self %s"
                           % (_shape_str(mask._data.shape), _shape_str(input._data.shape))) \
            from None
    if np.count_nonzero(m) > source._data.size:
        raise RuntimeError("Number of elements of source < number of ones in mask")
    return _MaskedScatter.apply(input, mask._data, source)
