"""Views and shape ops with autograd: view/reshape/flatten/squeeze/unsqueeze/transpose/permute/
expand/contiguous, cat/stack/split/chunk. View results share storage and the version counter."""
import builtins

import numpy as np

from ..autograd.function import Function
from ..autograd import grad_mode as _gm
from ..tensor import Tensor, _wrap
from ._util import wrap_dim, size_args

__all__ = ["reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "transpose", "swapaxes",
           "permute", "movedim", "cat", "concat", "concatenate", "stack", "split", "chunk",
           "narrow", "t", "flip", "roll", "tile", "repeat_interleave", "broadcast_to", "unbind",
           "hstack", "vstack", "diag", "tril", "triu", "diagonal"]


def _view_of(out, base):
    """Mark `out` as a view of `base` when it shares its storage."""
    if out._data.base is not None:
        out._version = base._version
    return out


def _infer_shape(shape, numel):
    shape = list(shape)
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for s in shape:
        if s < -1:
            raise RuntimeError("invalid shape dimension %d" % s)
    known = 1
    for i, s in enumerate(shape):
        if i not in neg:
            known *= s
    if neg:
        if known == 0 or numel % known:
            raise RuntimeError("shape '[%s]' is invalid for input of size %d"
                               % (", ".join(map(str, shape)), numel))
        shape[neg[0]] = numel // known
    elif known != numel:
        raise RuntimeError("shape '[%s]' is invalid for input of size %d"
                           % (", ".join(map(str, shape)), numel))
    return tuple(shape)


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape, must_view):
        ctx.shape = x.shape
        if must_view:
            try:
                return np.reshape(x, shape, copy=False)
            except ValueError:
                raise RuntimeError("view size is not compatible with input tensor's size and "
                                   "stride (at least one dimension spans across two contiguous "
                                   "subspaces). Use .reshape(...) instead.") from None
        return np.reshape(x, shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None, None


def reshape(input, *shape):
    shape = _infer_shape(size_args(shape), input._data.size)
    return _view_of(Reshape.apply(input, shape, False), input)


def view(self, *shape):
    if len(shape) == 1 and not isinstance(shape[0], (builtins.int, tuple, list, np.integer)):
        from ..dtypes import dtype as _dtype
        if isinstance(shape[0], _dtype):
            if shape[0].np == self._data.dtype:
                return self
            return _view_of(_wrap(self._data.view(shape[0].np)), self)
    shape = _infer_shape(size_args(shape), self._data.size)
    return _view_of(Reshape.apply(self, shape, True), self)


def flatten(input, start_dim=0, end_dim=-1):
    nd = input._data.ndim
    if nd == 0:
        return reshape(input, 1)
    s, e = wrap_dim(start_dim, nd), wrap_dim(end_dim, nd)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shp = input._data.shape
    new = shp[:s] + (int(np.prod(shp[s:e + 1])),) + shp[e + 1:]
    return reshape(input, new)


def unflatten(input, dim, sizes):
    d = wrap_dim(dim, input._data.ndim)
    shp = input._data.shape
    sizes = _infer_shape(tuple(sizes), shp[d])
    return reshape(input, shp[:d] + sizes + shp[d + 1:])


def squeeze(input, dim=None):
    shp = input._data.shape
    if dim is None:
        new = tuple(s for s in shp if s != 1)
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {wrap_dim(d, len(shp)) for d in dims}
        new = tuple(s for i, s in enumerate(shp) if not (i in dims and s == 1))
    return reshape(input, new) if new != shp else _view_of(Reshape.apply(input, shp, False), input)


def unsqueeze(input, dim):
    nd = input._data.ndim
    d = wrap_dim(dim, nd + 1)
    shp = input._data.shape
    return reshape(input, shp[:d] + (1,) + shp[d:])


class Permute(Function):
    @staticmethod
    def forward(ctx, x, perm):
        ctx.inv = tuple(np.argsort(perm))
        return np.transpose(x, perm)

    @staticmethod
    def backward(ctx, g):
        return np.transpose(g, ctx.inv), None


def permute(input, *dims):
    dims = size_args(dims)
    nd = input._data.ndim
    if len(dims) != nd:
        raise RuntimeError("permute(sparse_coo): number of dimensions in the tensor input does not "
                           "match the length of the desired ordering of dimensions i.e. input.dim()"
                           " = %d is not equal to len(dims) = %d" % (nd, len(dims)))
    perm = tuple(wrap_dim(d, nd) for d in dims)
    if len(set(perm)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return _view_of(Permute.apply(input, perm), input)


def transpose(input, dim0, dim1):
    nd = input._data.ndim
    if nd == 0:
        wrap_dim(dim0, 0), wrap_dim(dim1, 0)
        return input.detach() if not input.requires_grad else reshape(input, ())
    a, b = wrap_dim(dim0, nd), wrap_dim(dim1, nd)
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return _view_of(Permute.apply(input, tuple(perm)), input)


swapaxes = swapdims = transpose


def t(input):
    nd = input._data.ndim
    if nd > 2:
        raise RuntimeError("t() expects a tensor with <= 2 dimensions, but self is %dD" % nd)
    return transpose(input, 0, 1) if nd == 2 else input


def movedim(input, source, destination):
    nd = input._data.ndim
    src = [wrap_dim(s, nd) for s in (source if isinstance(source, (tuple, list)) else [source])]
    dst = [wrap_dim(s, nd) for s in (destination if isinstance(destination, (tuple, list))
                                      else [destination])]
    perm = [None] * nd
    for s, d in zip(src, dst):
        perm[d] = s
    rest = iter(i for i in range(nd) if i not in src)
    perm = [p if p is not None else next(rest) for p in perm]
    return permute(input, *perm)


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        from ._util import unbroadcast
        return unbroadcast(g, ctx.shape), None


def expand(self, *sizes):
    sizes = size_args(sizes)
    shp = self._data.shape
    if len(sizes) < len(shp):
        raise RuntimeError("expand(torch.FloatTensor{[%s]}, size=[%s]): the number of sizes "
                           "provided (%d) must be greater or equal to the number of dimensions in "
                           "the tensor (%d)" % (", ".join(map(str, shp)),
                                                ", ".join(map(str, sizes)), len(sizes), len(shp)))
    lead = len(sizes) - len(shp)
    new = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s == -1:
                raise RuntimeError("The expanded size of the tensor (-1) isn't allowed in a "
                                   "leading, non-existing dimension %d" % i)
            new.append(s)
        else:
            cur = shp[i - lead]
            if s == -1:
                s = cur
            elif cur != 1 and s != cur:
                raise RuntimeError("The expanded size of the tensor (%d) must match the existing "
                                   "size (%d) at non-singleton dimension %d.  Target sizes: [%s].  "
                                   "Tensor sizes: [%s]" % (s, cur, i, ", ".join(map(str, sizes)),
                                                           ", ".join(map(str, shp))))
            new.append(s)
    return _view_of(Expand.apply(self, tuple(new)), self)


def broadcast_to(input, size):
    return expand(input, *size)


def expand_as(self, other):
    return expand(self, *other.shape)


class Contiguous(Function):
    @staticmethod
    def forward(ctx, x):
        return np.ascontiguousarray(x)

    @staticmethod
    def backward(ctx, g):
        return g


def contiguous(self, memory_format=None):
    if self._data.flags.c_contiguous:
        return self
    return Contiguous.apply(self)


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return np.array(x, copy=True, order="C")

    @staticmethod
    def backward(ctx, g):
        return g


def clone(input, *, memory_format=None):
    return Clone.apply(input)


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *xs):
        ctx.dim = dim
        ctx.sizes = [x.shape[dim] if x.ndim else 0 for x in xs]
        ctx.keep = [x.ndim > 0 for x in xs]
        return np.concatenate([x for x in xs if x.ndim > 0 and (x.size or x.ndim > 1)] or
                              [xs[0].reshape(0)], axis=dim)

    @staticmethod
    def backward(ctx, g):
        out, start = [None], 0
        for n, keep in zip(ctx.sizes, ctx.keep):
            if not keep:
                out.append(None)
                continue
            sl = [slice(None)] * g.ndim
            sl[ctx.dim] = slice(start, start + n)
            out.append(g[tuple(sl)])
            start += n
        return tuple(out)


def _tensors(seq, name):
    if isinstance(seq, Tensor) or not isinstance(seq, (list, tuple)):
        raise TypeError("%s(): argument 'tensors' must be tuple of Tensors, not %s"
                        % (name, type(seq).__name__))
    if len(seq) == 0:
        raise RuntimeError("%s(): expected a non-empty list of Tensors" % name)
    return list(seq)


def cat(tensors, dim=0, *, out=None):
    ts = _tensors(tensors, "cat")
    nonempty = [t for t in ts if not (t._data.ndim == 1 and t._data.size == 0)]
    ref = nonempty[0] if nonempty else ts[0]
    nd = ref._data.ndim
    if nd == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = wrap_dim(dim, nd)
    from .. import dtypes as _dt
    dt = ts[0]._data.dtype
    for t in ts[1:]:
        dt = _dt._promote_np(dt, t._data.dtype)
    for t in nonempty:
        if t._data.ndim != nd:
            raise RuntimeError("Tensors must have same number of dimensions: got %d and %d"
                               % (nd, t._data.ndim))
        for k in range(nd):
            if k != d and t._data.shape[k] != ref._data.shape[k]:
                raise RuntimeError("Sizes of tensors must match except in dimension %d. Expected "
                                   "size %d but got size %d for tensor number %d in the list."
                                   % (d, ref._data.shape[k], t._data.shape[k],
                                      next(j for j, u in enumerate(ts) if u is t)))
    ts = [t if t._data.dtype == dt else t.to(_dt._FROM_NP[dt]) for t in ts]
    ts = [t for t in ts if not (t._data.ndim == 1 and t._data.size == 0)] or ts[:1]
    res = Cat.apply(d, *ts)
    if out is not None:
        from .elementwise import _out
        return _out(res, out)
    return res


concat = concatenate = cat


def stack(tensors, dim=0, *, out=None):
    ts = _tensors(tensors, "stack")
    shp = ts[0]._data.shape
    for i, t in enumerate(ts):
        if t._data.shape != shp:
            raise RuntimeError("stack expects each tensor to be equal size, but got [%s] at entry "
                               "0 and [%s] at entry %d" % (", ".join(map(str, shp)),
                                                           ", ".join(map(str, t._data.shape)), i))
    d = wrap_dim(dim, len(shp) + 1)
    return cat([unsqueeze(t, d) for t in ts], d, out=out)


def hstack(tensors):
    ts = [t if t._data.ndim else reshape(t, 1) for t in tensors]
    return cat(ts, 0 if ts[0]._data.ndim == 1 else 1)


def vstack(tensors):
    ts = [t if t._data.ndim >= 2 else reshape(t, 1, -1) for t in tensors]
    return cat(ts, 0)


def narrow(input, dim, start, length):
    d = wrap_dim(dim, input._data.ndim)
    n = input._data.shape[d]
    if start < 0:
        start += n
    if start < 0 or start + length > n or length < 0:
        raise RuntimeError("start (%d) + length (%d) exceeds dimension size (%d)."
                           % (start, length, n))
    idx = (slice(None),) * d + (slice(start, start + length),)
    return input[idx]


def split(tensor, split_size_or_sections, dim=0):
    d = wrap_dim(dim, tensor._data.ndim)
    n = tensor._data.shape[d]
    if isinstance(split_size_or_sections, (builtins.int, np.integer)):
        s = builtins.int(split_size_or_sections)
        if s <= 0 and not (s == 0 and n == 0):
            raise RuntimeError("split_size can only be 0 if dimension size is 0, but got "
                               "dimension size of %d" % n)
        sizes = [builtins.min(s, n - i) for i in range(0, n, s)] if n else [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError("split_with_sizes expects split_sizes to sum exactly to %d (input "
                               "tensor's size at dimension %d), but got split_sizes=%s"
                               % (n, d, sizes))
    if _gm._state[0] and tensor.requires_grad and len(sizes) > 1:
        # one graph node for all pieces: backward writes the piece gradients into one array
        # instead of a zero-filled full-size gradient per piece summed afterwards
        outs = Split.apply(tensor, d, tuple(sizes))
        for t in outs:
            t._version = tensor._version
        return outs
    out, start = [], 0
    for s in sizes:
        out.append(narrow(tensor, d, start, s))
        start += s
    return tuple(out)


class Split(Function):
    """Views of consecutive pieces of x along dim (split/chunk with autograd).

    Packed-gradient contract: a consumer that writes the gradients of all the pieces into one
    array G laid out like x (attention does, for the q/k/v chunks of a fused projection) hands
    it over by setting `packed_grad = G` on this node during backward; backward then returns G
    instead of concatenating, provided each incoming piece gradient is still exactly the
    consumer's view of G (nothing was added to it on the way). PACKED_TAKEN counts the hand-overs
    taken."""

    PACKED_TAKEN = [0]

    @staticmethod
    def forward(ctx, x, d, sizes):
        ctx.d, ctx.shape, ctx.sizes = d, x.shape, sizes
        out, start = [], 0
        for s in sizes:
            out.append(x[(slice(None),) * d + (slice(start, start + s),)])
            start += s
        return tuple(out)

    @staticmethod
    def backward(ctx, *gs):
        G = ctx.__dict__.pop("packed_grad", None)
        if G is not None and _is_packed(G, gs, ctx.d, ctx.sizes):
            Split.PACKED_TAKEN[0] += 1
            return G, None, None
        return np.concatenate(gs, axis=ctx.d), None, None


def _piece(a, d, start, size):
    return a[(slice(None),) * d + (slice(start, start + size),)]


def _is_packed(G, gs, d, sizes):
    """Whether every gradient piece gs[i] is still the view of G that the consumer wrote."""
    start, root = 0, (G if G.base is None else G.base)
    for g, size in zip(gs, sizes):
        p = _piece(G, d, start, size)
        if (g is None or g.base is not root or g.shape != p.shape or g.strides != p.strides
                or g.__array_interface__["data"][0] != p.__array_interface__["data"][0]):
            return False
        start += size
    return True


def chunk(input, chunks, dim=0):
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: %d" % chunks)
    d = wrap_dim(dim, input._data.ndim)
    n = input._data.shape[d]
    if n == 0:      # torch: `chunks` empty pieces
        return tuple(narrow(input, d, 0, 0) for _ in range(chunks))
    return split(input, -(-n // chunks), d)


def unbind(input, dim=0):
    d = wrap_dim(dim, input._data.ndim)
    return tuple(input[(slice(None),) * d + (i,)] for i in range(input._data.shape[d]))


class Flip(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return np.ascontiguousarray(np.flip(x, dims))

    @staticmethod
    def backward(ctx, g):
        return np.flip(g, ctx.dims), None


def flip(input, dims):
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    return Flip.apply(input, tuple(wrap_dim(d, input._data.ndim) for d in dims))


def roll(input, shifts, dims=None):
    if dims is None:
        return reshape(roll(flatten(input), shifts, 0), input.shape)
    shifts = shifts if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    out = input
    for s, d in zip(shifts, dims):
        d = wrap_dim(d, input._data.ndim)
        n = input._data.shape[d]
        if n == 0:
            continue
        s %= n
        if s:
            out = cat([narrow(out, d, n - s, s), narrow(out, d, 0, n - s)], d)
    return out


def repeat(self, *sizes):
    sizes = size_args(sizes)
    nd = self._data.ndim
    if len(sizes) < nd:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of "
                           "dimensions of tensor")
    x = reshape(self, (1,) * (len(sizes) - nd) + self._data.shape)
    shp = x._data.shape
    # expand to (s0, n0, s1, n1, ...) then merge pairs
    inter = []
    for r, n in zip(sizes, shp):
        inter += [1, n]
    x = reshape(x, tuple(inter))
    exp_shape = []
    for r, n in zip(sizes, shp):
        exp_shape += [r, n]
    x = expand(x, *exp_shape)
    return reshape(contiguous(x), tuple(r * n for r, n in zip(sizes, shp)))


def tile(input, dims):
    dims = tuple(dims)
    nd = input._data.ndim
    if len(dims) < nd:
        dims = (1,) * (nd - len(dims)) + dims
    return repeat(input, *dims)


def repeat_interleave(input, repeats, dim=None):
    if isinstance(repeats, Tensor):
        repeats = repeats._data
    if dim is None:
        input, dim = flatten(input), 0
    d = wrap_dim(dim, input._data.ndim)
    idx = np.repeat(np.arange(input._data.shape[d]), repeats)
    from .index import index_select
    return index_select(input, d, _wrap(idx.astype(np.int64)))


def diagonal(input, offset=0, dim1=0, dim2=1):
    from .index import _Index
    nd = input._data.ndim
    a, b = wrap_dim(dim1, nd), wrap_dim(dim2, nd)
    n = builtins.max(0, builtins.min(input._data.shape[a] - builtins.max(-offset, 0),
                                     input._data.shape[b] - builtins.max(offset, 0)))
    i = np.arange(n) + builtins.max(-offset, 0)
    j = np.arange(n) + builtins.max(offset, 0)
    x = movedim(input, (a, b), (-2, -1))
    return x[..., _wrap(i), _wrap(j)]


def diag(input, diagonal=0):
    if input._data.ndim == 1:
        n = input._data.shape[0] + builtins.abs(diagonal)
        from .creation import zeros
        out = zeros(n, n, dtype=input.dtype)
        i = np.arange(input._data.shape[0])
        rows = i + builtins.max(-diagonal, 0)
        cols = i + builtins.max(diagonal, 0)
        if not input.requires_grad:
            out._data[rows, cols] = input._data
            return out
        from .index import IndexPut
        return IndexPut.apply(out, (rows, cols), input, False)
    if input._data.ndim == 2:
        return globals()["diagonal"](input, diagonal)
    raise RuntimeError("diag(): Supports 1D or 2D tensors. Got %dD" % input._data.ndim)


class _Tri(Function):
    @staticmethod
    def forward(ctx, x, k, upper):
        ctx.k, ctx.upper = k, upper
        return np.triu(x, k) if upper else np.tril(x, k)

    @staticmethod
    def backward(ctx, g):
        return (np.triu(g, ctx.k) if ctx.upper else np.tril(g, ctx.k)), None, None


def tril(input, diagonal=0):
    if input._data.ndim < 2:
        raise RuntimeError("tril: input tensor must have at least 2 dimensions")
    return _Tri.apply(input, diagonal, False)


def triu(input, diagonal=0):
    if input._data.ndim < 2:
        raise RuntimeError("triu: input tensor must have at least 2 dimensions")
    return _Tri.apply(input, diagonal, True)
