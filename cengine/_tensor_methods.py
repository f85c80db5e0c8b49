"""Tensor's methods, declared on the class: one mixin per op family, each method a one-line call
of the op that implements it (in cengine/ops/, cengine/random.py, cengine/nn/functional.py).

`Tensor` (cengine/tensor.py) inherits every mixin below, so help(Tensor), IDEs and type checkers
see all methods, with their signatures, as soon as cengine.tensor is imported. The op modules
import Tensor themselves, so they cannot be imported here at the top: cengine/tensor.py calls
_link() right after defining Tensor, which binds the module names the methods call through.

To add a method: write the op in its ops module, then a method in the mixin of that family here
(`def name(self, ...): return _mod.name(self, ...)`, same parameters as the op minus `out=`;
an alias is `other_name = name`). tests/test_tensor_class.py checks that every method is
declared on the class and that the signatures agree with the ops.
"""

# the modules the methods call into; bound by _link() once Tensor exists
_ew = _reduce = _shape = _index = _act = _sorting = _scatter = _linalg = _random = _F = None


def _link():
    """Bind the op modules (called once, by cengine/tensor.py after `class Tensor`)."""
    global _ew, _reduce, _shape, _index, _act, _sorting, _scatter, _linalg, _random, _F
    from .ops import elementwise as _ew, reduce as _reduce, shape as _shape, index as _index
    from .ops import activation as _act, sorting as _sorting, scatter as _scatter
    from .ops import linalg as _linalg
    from . import random as _random
    from .nn import functional as _F


class _ElementwiseMethods:
    """Tensor methods: elementwise math, comparisons, operators and in-place arithmetic
    (cengine/ops/elementwise.py)."""
    __slots__ = ()

    def add(self, other, *, alpha=1):
        return _ew.add(self, other, alpha=alpha)

    def sub(self, other, *, alpha=1):
        return _ew.sub(self, other, alpha=alpha)
    subtract = sub

    def mul(self, other):
        return _ew.mul(self, other)
    multiply = mul

    def div(self, other, *, rounding_mode=None):
        return _ew.div(self, other, rounding_mode=rounding_mode)
    divide = div
    true_divide = div

    def pow(self, exponent):
        return _ew.pow(self, exponent)

    def neg(self):
        return _ew.neg(self)
    negative = neg

    def exp(self):
        return _ew.exp(self)

    def expm1(self):
        return _ew.expm1(self)

    def log(self):
        return _ew.log(self)

    def log2(self):
        return _ew.log2(self)

    def log10(self):
        return _ew.log10(self)

    def log1p(self):
        return _ew.log1p(self)

    def sqrt(self):
        return _ew.sqrt(self)

    def rsqrt(self):
        return _ew.rsqrt(self)

    def abs(self):
        return _ew.abs(self)

    def sin(self):
        return _ew.sin(self)

    def cos(self):
        return _ew.cos(self)

    def tan(self):
        return _ew.tan(self)

    def square(self):
        return _ew.square(self)

    def reciprocal(self):
        return _ew.reciprocal(self)

    def sign(self):
        return _ew.sign(self)

    def floor(self):
        return _ew.floor(self)

    def ceil(self):
        return _ew.ceil(self)

    def round(self, *, decimals=0):
        return _ew.round(self, decimals=decimals)

    def trunc(self):
        return _ew.trunc(self)

    def clamp(self, min=None, max=None):
        return _ew.clamp(self, min, max)
    clip = clamp

    def maximum(self, other):
        return _ew.maximum(self, other)

    def minimum(self, other):
        return _ew.minimum(self, other)

    def eq(self, other):
        return _ew.eq(self, other)

    def ne(self, other):
        return _ew.ne(self, other)

    def lt(self, other):
        return _ew.lt(self, other)

    def le(self, other):
        return _ew.le(self, other)

    def gt(self, other):
        return _ew.gt(self, other)

    def ge(self, other):
        return _ew.ge(self, other)
    greater = gt
    less = lt

    def logical_not(self):
        return _ew.logical_not(self)

    def logical_and(self, other):
        return _ew.logical_and(self, other)

    def logical_or(self, other):
        return _ew.logical_or(self, other)

    def isnan(self):
        return _ew.isnan(self)

    def isinf(self):
        return _ew.isinf(self)

    def isfinite(self):
        return _ew.isfinite(self)

    def equal(self, other):
        return _ew.equal(self, other)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return _ew.allclose(self, other, rtol, atol, equal_nan)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return _ew.isclose(self, other, rtol, atol, equal_nan)

    def remainder(self, other):
        return _ew.remainder(self, other)

    def fmod(self, other):
        return _ew.fmod(self, other)

    def lerp(self, end, weight):
        return _ew.lerp(self, end, weight)

    def add_(self, other, *, alpha=1):
        return _ew.add_(self, other, alpha=alpha)

    def sub_(self, other, *, alpha=1):
        return _ew.sub_(self, other, alpha=alpha)

    def mul_(self, other):
        return _ew.mul_(self, other)

    def div_(self, other):
        return _ew.div_(self, other)

    def pow_(self, other):
        return _ew.pow_(self, other)

    def clamp_(self, min=None, max=None):
        return _ew.clamp_(self, min, max)
    clip_ = clamp_

    def zero_(self):
        return _ew.zero_(self)

    def fill_(self, value):
        return _ew.fill_(self, value)

    def copy_(self, src, non_blocking=False):
        return _ew.copy_(self, src, non_blocking)

    def neg_(self):
        return _ew.neg_(self)

    def exp_(self):
        return _ew.exp_(self)

    def sqrt_(self):
        return _ew.sqrt_(self)

    def abs_(self):
        return _ew.abs_(self)

    def where(self, condition, other):
        return _ew.where(condition, self, other)

    def __add__(self, other):
        return _ew.add(self, other)
    __radd__ = __add__

    def __sub__(self, other):
        return _ew.sub(self, other)

    def __rsub__(self, other):
        return _ew.sub(other, self)

    def __mul__(self, other):
        return _ew.mul(self, other)
    __rmul__ = __mul__

    def __truediv__(self, other):
        return _ew.div(self, other)

    def __rtruediv__(self, other):
        return _ew.div(other, self)

    def __pow__(self, exponent):
        return _ew.pow(self, exponent)

    def __rpow__(self, other):
        return _ew.pow(other, self)

    def __neg__(self):
        return _ew.neg(self)

    def __abs__(self):
        return _ew.abs(self)

    def __eq__(self, other):
        return _ew.eq(self, other)

    def __ne__(self, other):
        return _ew.ne(self, other)

    def __lt__(self, other):
        return _ew.lt(self, other)

    def __le__(self, other):
        return _ew.le(self, other)

    def __gt__(self, other):
        return _ew.gt(self, other)

    def __ge__(self, other):
        return _ew.ge(self, other)

    def __floordiv__(self, other):
        return _ew.floor_divide(self, other)

    def __mod__(self, other):
        return _ew.remainder(self, other)

    def __rmod__(self, other):
        return _ew.remainder(other, self)

    def __rfloordiv__(self, other):
        return _ew.floor_divide(other, self)

    def __and__(self, other):
        return _ew.logical_and(self, other)

    def __or__(self, other):
        return _ew.logical_or(self, other)

    def __xor__(self, other):
        return _ew.logical_xor(self, other)

    def __invert__(self):
        return _ew.logical_not(self)

    def __iadd__(self, other):
        return _ew.add_(self, other)

    def __isub__(self, other):
        return _ew.sub_(self, other)

    def __imul__(self, other):
        return _ew.mul_(self, other)

    def __itruediv__(self, other):
        return _ew.div_(self, other)


class _ReduceMethods:
    """Tensor methods: reductions and scans (cengine/ops/reduce.py)."""
    __slots__ = ()

    def sum(self, dim=None, keepdim=False, *, dtype=None):
        return _reduce.sum(self, dim, keepdim, dtype=dtype)

    def mean(self, dim=None, keepdim=False, *, dtype=None):
        return _reduce.mean(self, dim, keepdim, dtype=dtype)

    def prod(self, dim=None, keepdim=False, *, dtype=None):
        return _reduce.prod(self, dim, keepdim, dtype=dtype)

    def max(self, dim=None, keepdim=False):
        return _reduce.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return _reduce.min(self, dim, keepdim)

    def amax(self, dim=(), keepdim=False):
        return _reduce.amax(self, dim, keepdim)

    def amin(self, dim=(), keepdim=False):
        return _reduce.amin(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _reduce.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _reduce.argmin(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _reduce.var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _reduce.std(self, dim, unbiased, keepdim, correction=correction)

    def logsumexp(self, dim, keepdim=False):
        return _reduce.logsumexp(self, dim, keepdim)

    def norm(self, p='fro', dim=None, keepdim=False, dtype=None):
        return _reduce.norm(self, p, dim, keepdim, dtype)

    def cumsum(self, dim, *, dtype=None):
        return _reduce.cumsum(self, dim, dtype=dtype)

    def all(self, dim=None, keepdim=False):
        return _reduce.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return _reduce.any(self, dim, keepdim)

    def count_nonzero(self, dim=None):
        return _reduce.count_nonzero(self, dim)

    def cumprod(self, dim, *, dtype=None):
        return _reduce.cumprod(self, dim, dtype=dtype)


class _ShapeMethods:
    """Tensor methods: views, reshapes, joins and splits (cengine/ops/shape.py)."""
    __slots__ = ()

    def reshape(self, *shape):
        return _shape.reshape(self, *shape)

    def view(self, *shape):
        return _shape.view(self, *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return _shape.flatten(self, start_dim, end_dim)

    def unflatten(self, dim, sizes):
        return _shape.unflatten(self, dim, sizes)

    def squeeze(self, dim=None):
        return _shape.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _shape.unsqueeze(self, dim)

    def permute(self, *dims):
        return _shape.permute(self, *dims)

    def transpose(self, dim0, dim1):
        return _shape.transpose(self, dim0, dim1)
    swapaxes = transpose
    swapdims = transpose

    def t(self):
        return _shape.t(self)

    def movedim(self, source, destination):
        return _shape.movedim(self, source, destination)

    def expand(self, *sizes):
        return _shape.expand(self, *sizes)

    def expand_as(self, other):
        return _shape.expand_as(self, other)

    def broadcast_to(self, size):
        return _shape.broadcast_to(self, size)

    def contiguous(self, memory_format=None):
        return _shape.contiguous(self, memory_format)

    def clone(self, *, memory_format=None):
        return _shape.clone(self, memory_format=memory_format)

    def split(self, split_size_or_sections, dim=0):
        return _shape.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _shape.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return _shape.unbind(self, dim)

    def narrow(self, dim, start, length):
        return _shape.narrow(self, dim, start, length)

    def flip(self, dims):
        return _shape.flip(self, dims)

    def roll(self, shifts, dims=None):
        return _shape.roll(self, shifts, dims)

    def repeat(self, *sizes):
        return _shape.repeat(self, *sizes)

    def tile(self, dims):
        return _shape.tile(self, dims)

    def repeat_interleave(self, repeats, dim=None):
        return _shape.repeat_interleave(self, repeats, dim)

    def diagonal(self, offset=0, dim1=0, dim2=1):
        return _shape.diagonal(self, offset, dim1, dim2)

    def diag(self, diagonal=0):
        return _shape.diag(self, diagonal)

    def tril(self, diagonal=0):
        return _shape.tril(self, diagonal)

    def triu(self, diagonal=0):
        return _shape.triu(self, diagonal)

    @property
    def T(self):
        nd = self._data.ndim
        return _shape.permute(self, *range(nd - 1, -1, -1)) if nd > 1 else self

    @property
    def mT(self):
        if self._data.ndim < 2:
            raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. "
                               "Got %d-D tensor." % self._data.ndim)
        return _shape.transpose(self, -2, -1)

    def view_as(self, other):
        return _shape.view(self, *other.shape)

    def reshape_as(self, other):
        return _shape.reshape(self, *other.shape)


class _IndexMethods:
    """Tensor methods: indexing, gathering and masking (cengine/ops/index.py)."""
    __slots__ = ()

    def index_select(self, dim, index):
        return _index.index_select(self, dim, index)

    def gather(self, dim, index, *, sparse_grad=False):
        return _index.gather(self, dim, index, sparse_grad=sparse_grad)

    def masked_fill(self, mask, value):
        return _index.masked_fill(self, mask, value)

    def masked_fill_(self, mask, value):
        return _index.masked_fill_(self, mask, value)

    def masked_select(self, mask):
        return _index.masked_select(self, mask)

    def nonzero(self, *, as_tuple=False):
        return _index.nonzero(self, as_tuple=as_tuple)

    def take_along_dim(self, indices, dim=None):
        return _index.take_along_dim(self, indices, dim)

    def argwhere(self):
        return _index.argwhere(self)

    def __getitem__(self, idx):
        return _index.getitem(self, idx)

    def __setitem__(self, idx, value):
        return _index.setitem(self, idx, value)


class _ActivationMethods:
    """Tensor methods: activations (cengine/ops/activation.py)."""
    __slots__ = ()

    def relu(self):
        return _act.relu(self)

    def sigmoid(self):
        return _act.sigmoid(self)

    def tanh(self):
        return _act.tanh(self)

    def relu_(self):
        return _act.relu_(self)

    def sigmoid_(self):
        return _act.sigmoid_(self)

    def tanh_(self):
        return _act.tanh_(self)


class _SortingMethods:
    """Tensor methods: sorting, top-k and unique (cengine/ops/sorting.py)."""
    __slots__ = ()

    def sort(self, dim=-1, descending=False, stable=False):
        return _sorting.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return _sorting.argsort(self, dim, descending, stable)

    def msort(self):
        return _sorting.msort(self)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return _sorting.topk(self, k, dim, largest, sorted)

    def kthvalue(self, k, dim=-1, keepdim=False):
        return _sorting.kthvalue(self, k, dim, keepdim)

    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):
        return _sorting.unique(self, sorted, return_inverse, return_counts, dim)

    def unique_consecutive(self, return_inverse=False, return_counts=False, dim=None):
        return _sorting.unique_consecutive(self, return_inverse, return_counts, dim)


class _ScatterMethods:
    """Tensor methods: scatter and index_add/copy/fill (cengine/ops/scatter.py)."""
    __slots__ = ()

    def scatter(self, dim, index, src=None, value=None, *, reduce=None):
        return _scatter.scatter(self, dim, index, src, value, reduce=reduce)

    def scatter_(self, dim, index, src=None, value=None, *, reduce=None):
        return _ew._inplace(self, lambda s: _scatter.scatter(s, dim, index, src, value,
                                                             reduce=reduce))

    def scatter_add(self, dim, index, src):
        return _scatter.scatter_add(self, dim, index, src)

    def scatter_add_(self, dim, index, src):
        return _ew._inplace(self, _scatter.scatter_add, dim, index, src)

    def scatter_reduce(self, dim, index, src, reduce, *, include_self=True):
        return _scatter.scatter_reduce(self, dim, index, src, reduce,
                                       include_self=include_self)

    def scatter_reduce_(self, dim, index, src, reduce, *, include_self=True):
        return _ew._inplace(self, lambda s: _scatter.scatter_reduce(
            s, dim, index, src, reduce, include_self=include_self))

    def index_add(self, dim, index, source, *, alpha=1):
        return _scatter.index_add(self, dim, index, source, alpha=alpha)

    def index_add_(self, dim, index, source, *, alpha=1):
        return _ew._inplace(self, lambda s: _scatter.index_add(s, dim, index, source, alpha=alpha))

    def index_copy(self, dim, index, source):
        return _scatter.index_copy(self, dim, index, source)

    def index_copy_(self, dim, index, source):
        return _ew._inplace(self, _scatter.index_copy, dim, index, source)

    def index_fill(self, dim, index, value):
        return _scatter.index_fill(self, dim, index, value)

    def index_fill_(self, dim, index, value):
        return _ew._inplace(self, _scatter.index_fill, dim, index, value)

    def masked_scatter(self, mask, source):
        return _scatter.masked_scatter(self, mask, source)

    def masked_scatter_(self, mask, source):
        return _ew._inplace(self, _scatter.masked_scatter, mask, source)


class _RandomMethods:
    """Tensor methods: random sampling and in-place initialisation (cengine/random.py)."""
    __slots__ = ()

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        return _random.normal_(self, mean, std, generator=generator)

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        return _random.uniform_(self, a, b, generator=generator)

    def bernoulli_(self, p=0.5, *, generator=None):
        return _random.bernoulli_(self, p, generator=generator)

    def random_(self, low=0, high=None, *, generator=None):
        return _random.random_(self, low, high, generator=generator)

    def exponential_(self, lambd=1.0, *, generator=None):
        return _random.exponential_(self, lambd, generator=generator)

    def bernoulli(self, p=None, *, generator=None):
        return _random.bernoulli(self, p, generator=generator)

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        return _random.multinomial(self, num_samples, replacement, generator=generator)


class _LinalgMethods:
    """Tensor methods: matrix products (cengine/ops/linalg.py)."""
    __slots__ = ()

    def matmul(self, other):
        return _linalg.matmul(self, other)

    def mm(self, mat2):
        return _linalg.mm(self, mat2)

    def bmm(self, mat2):
        return _linalg.bmm(self, mat2)

    def mv(self, vec):
        return _linalg.mv(self, vec)

    def dot(self, other):
        return _linalg.dot(self, other)
    vdot = dot

    def inner(self, other):
        return _linalg.inner(self, other)

    def outer(self, vec2):
        return _linalg.outer(self, vec2)
    ger = outer

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        return _linalg.addmm(self, mat1, mat2, beta=beta, alpha=alpha)

    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return _linalg.baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def addmv(self, mat, vec, *, beta=1, alpha=1):
        return _linalg.addmv(self, mat, vec, beta=beta, alpha=alpha)

    def __matmul__(self, other):
        return _linalg.matmul(self, other)

    def __rmatmul__(self, other):
        return _linalg.matmul(other, self)


class _NNMethods:
    """Tensor methods: softmax and log_softmax (cengine/nn/functional.py)."""
    __slots__ = ()

    def softmax(self, dim, dtype=None):
        return _F.softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim, dtype=None):
        return _F.log_softmax(self, dim, dtype=dtype)

