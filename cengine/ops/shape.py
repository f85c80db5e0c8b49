"""Views and shape ops with autograd: view/reshape/flatten/squeeze/unsqueeze/transpose/permute/
expand/contiguous, cat/stack/split/chunk. View results share storage and the version counter."""
import builtins

import numpy as np

from .. import _device as _dv

from ..autograd.function import Function
from ..autograd import grad_mode as _gm
from ..tensor import Tensor, _wrap
from ._util import wrap_dim, size_args
from .. import _layout

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
    def forward(ctx, x, mf=None):
        if mf is not None:
            return _layout.arrange(x, mf, False)
        return _dv.ascontiguousarray(x)

    @staticmethod
    def backward(ctx, g):
        return g


def contiguous(self, memory_format=None):
    mf = _layout.check(memory_format, "contiguous")
    if mf is _layout.preserve_format:
        if self._data.flags.c_contiguous:
            return self
        raise RuntimeError("preserve memory format is unsupported by the contiguous operator")
    if mf is _layout.channels_last or mf is _layout.channels_last_3d:
        if _layout.is_in(self._data, mf):
            _layout._perm(mf, self._data.ndim)  # rank check, as torch
            return self
        return Contiguous.apply(self, mf)
    if self._data.flags.c_contiguous:
        return self
    return Contiguous.apply(self)


class Clone(Function):
    @staticmethod
    def forward(ctx, x, mf=None):
        if mf is not None:
            return _layout.arrange(x, mf, True)
        return x.copy(order="C")

    @staticmethod
    def backward(ctx, g):
        return g


def clone(input, *, memory_format=None):
    """A copy: C-contiguous, or channels_last(_3d) when asked or when the input is laid out so
    (explicit preserve_format also keeps any other dense order)."""
    mf = _layout.check(memory_format, "clone")
    if mf is None:
        mf = _layout.dense_format(input._data)   # a channels_last input stays channels_last
    if mf is None or mf is _layout.contiguous_format:
        return Clone.apply(input)
    return Clone.apply(input, mf)


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
        return _dv.ascontiguousarray(np.flip(x, dims))

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


# ---------------------------------------------------------------- more of torch's shape surface
__all__ += ["meshgrid", "broadcast_tensors", "broadcast_shapes", "atleast_1d", "atleast_2d",
            "atleast_3d", "moveaxis", "select", "fliplr", "flipud", "dstack", "column_stack"]


def _seq_arg(tensors, name):
    """f(a, b, c) and f([a, b, c]) both (torch's *tensors signatures)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError("%s(): expected Tensor as element %d in argument 0, but got %s"
                            % (name, i, type(t).__name__))
    return tensors


def meshgrid(*tensors, indexing=None):
    """Coordinate grids of 0-d/1-d tensors: 'ij' (matrix, the default) or 'xy' (Cartesian)
    indexing. Each output is an expanded view of its input, so gradients sum back."""
    ts = _seq_arg(tensors, "meshgrid")
    if indexing is None:
        import warnings
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the "
                      "indexing argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise ValueError("torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: "
                         "%s" % indexing)
    if not ts:
        return ()
    for t in ts:
        if t._data.ndim > 1:
            raise RuntimeError("torch.meshgrid: Expected 0D or 1D tensor in the tensor list but "
                               "got: %r" % t)
    d0 = ts[0].dtype
    for t in ts[1:]:
        if t.dtype != d0:
            raise RuntimeError("torch.meshgrid: Expected all tensors in the tensor list to have "
                               "the same dtype.")
    ts = [reshape(t, -1) for t in ts]
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        ts[0], ts[1] = ts[1], ts[0]
    shape = [t._data.shape[0] for t in ts]
    n = len(ts)
    outs = []
    for i, t in enumerate(ts):
        v = reshape(t, *[-1 if k == i else 1 for k in range(n)])
        outs.append(expand(v, *shape))
    if swap:
        outs[0], outs[1] = outs[1], outs[0]
    return tuple(outs)


def broadcast_shapes(*shapes):
    """The shape broadcasting gives to tensors of these shapes (torch.broadcast_shapes)."""
    try:
        return _size_cls()(np.broadcast_shapes(*[(s,) if isinstance(s, int) else tuple(s)
                                                 for s in shapes]))
    except ValueError:
        raise RuntimeError("shape mismatch: objects cannot be broadcast to a single shape. "
                           "Mismatch is between arguments") from None


def _size_cls():
    from ..tensor import Size
    return Size


def broadcast_tensors(*tensors):
    """Expanded views of the tensors to their common broadcast shape."""
    ts = _seq_arg(tensors, "broadcast_tensors")
    try:
        shape = np.broadcast_shapes(*[t._data.shape for t in ts])
    except ValueError:
        a = next((x, y) for x in ts for y in ts
                 if not _bc_ok(x._data.shape, y._data.shape))
        raise RuntimeError("The size of tensor a (%d) must match the size of tensor b (%d) at "
                           "non-singleton dimension %d" % _bc_mismatch(a[0]._data.shape,
                                                                       a[1]._data.shape)) from None
    return tuple(t if t._data.shape == shape else expand(t, *shape) for t in ts)


def _bc_ok(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _bc_mismatch(a, b):
    n = builtins.max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    for k in range(n - 1, -1, -1):
        if a[k] != b[k] and a[k] != 1 and b[k] != 1:
            return a[k], b[k], k
    return a[-1], b[-1], n - 1  # pragma: no cover


def _atleast(tensors, nd, name):
    single = len(tensors) == 1 and isinstance(tensors[0], Tensor)
    ts = _seq_arg(tensors, name)
    out = []
    for t in ts:
        k = t._data.ndim
        if k < nd:
            shp = {0: {1: (1,), 2: (1, 1), 3: (1, 1, 1)},
                   1: {2: (1, -1), 3: (1, -1, 1)},
                   2: {3: tuple(t._data.shape) + (1,)}}[k][nd]
            t = reshape(t, *shp)
        out.append(t)
    return out[0] if single else tuple(out)


def atleast_1d(*tensors):
    return _atleast(tensors, 1, "atleast_1d")


def atleast_2d(*tensors):
    return _atleast(tensors, 2, "atleast_2d")


def atleast_3d(*tensors):
    return _atleast(tensors, 3, "atleast_3d")


moveaxis = movedim


def select(input, dim, index):
    """input[..., index, ...] at dimension dim (a view without that dimension)."""
    nd = input._data.ndim
    if nd == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, nd)
    n = input._data.shape[d]
    if not -n <= index < n:
        raise IndexError("select(): index %d out of range for tensor of size [%s] at dimension %d"
                         % (index, ", ".join(map(str, input._data.shape)), d))
    return input[(slice(None),) * d + (index,)]


def fliplr(input):
    if input._data.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(input, [1])


def flipud(input):
    if input._data.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(input, [0])


def dstack(tensors):
    return cat(list(atleast_3d(*_tensors(tensors, "dstack"))), 2)


def column_stack(tensors):
    ts = [t if t._data.ndim >= 2 else reshape(t, -1, 1) for t in _tensors(tensors, "column_stack")]
    return cat(ts, 1)


def view_inplace_(self, fn):
    """self becomes the view fn(self) (unsqueeze_, squeeze_, t_, transpose_): its shape and
    strides change in place; with a graph, self takes the view's grad_fn (as torch)."""
    if _gm._state[0] and self.requires_grad and self.grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    res = fn(self)
    self._data = res._data
    if res.grad_fn is not None:
        self.grad_fn = res.grad_fn
        self._output_nr = res._output_nr
    return self
