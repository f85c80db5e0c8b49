"""A seeded differential fuzzer of cengine's public API.

Every example picks an op spec, draws inputs (awkward shapes: 0-d, size 1, primes, empty
dimensions; float32/float64/int/bool; normal, wide-range and special values; non-contiguous
views) from a numpy Generator seeded per example, and runs the op:

- against torch (when installed): both raise (the same exception class) or both return the
  same structure, shapes, dtypes and values; then the gradients of every float input for one
  random upstream gradient agree;
- on invariants alone (always): only clean exceptions (RuntimeError, ValueError, TypeError,
  IndexError, NotImplementedError), the numpy reference's shape/dtype/values where a spec has
  one, finite outputs and gradients for finite moderate inputs where the op is finite there,
  gradients shaped and typed like their inputs, and a float64 gradcheck on small inputs.

An example is reproduced from the op name and seed the failure report prints:
`compare_with_torch(name, seed, torch)` or `check_invariants(name, seed)`. Intended
deviations from torch are recognised by `known()` (each with its reason); differences in code
maintained elsewhere are listed in ELSEWHERE and reported without failing the run.
"""
import math
import traceback
import warnings
import zlib

import numpy as np

import cengine as ce

CLEAN_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError)
SIZES = [1, 1, 2, 3, 4, 5, 7]


# ------------------------------------------------------------------ input generation
def rand_shape(rng, min_nd=0, max_nd=4, empty=0.08, max_numel=240):
    while True:
        nd = int(rng.integers(min_nd, max_nd + 1))
        s = tuple(int(0 if rng.random() < empty else rng.choice(SIZES)) for _ in range(nd))
        if int(np.prod(s, dtype=np.int64)) <= max_numel:
            return s


def bcast_shape(rng, shape, bad=0.03):
    """a shape broadcastable against `shape` (sometimes not, to compare the errors)"""
    s = list(shape)
    drop = int(rng.integers(0, len(s) + 1)) if rng.random() < 0.3 else 0
    s = s[drop:]
    for i in range(len(s)):
        if rng.random() < 0.25:
            s[i] = 1
    if rng.random() < 0.15 and len(s) < 4:
        s = [1] * int(rng.integers(1, 3)) + s
    if rng.random() < bad and s:
        i = int(rng.integers(0, len(s)))
        s[i] = s[i] + 2
    return tuple(s)


def values(rng, shape, dtype, kind="normal"):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        lo, hi = (-6, 7) if kind != "positive" else (1, 7)
        return rng.integers(lo, hi, size=shape).astype(dtype)
    if kind == "normal":
        a = rng.standard_normal(shape)
    elif kind == "positive":
        a = np.abs(rng.standard_normal(shape)) + 0.1
    elif kind == "unit":
        a = rng.uniform(-0.95, 0.95, shape)
    elif kind == "wide":
        a = np.sign(rng.standard_normal(shape)) * 10.0 ** rng.uniform(-30, 30, shape)
    elif kind == "special":
        pool = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e30, -1e-30, 0.5, 2.0])
        a = rng.choice(pool, size=shape)
    else:
        raise ValueError(kind)
    return np.asarray(a).astype(dtype)


def pick_kind(rng, moderate=False):
    if moderate:
        return "normal"
    r = rng.random()
    return "normal" if r < 0.75 else ("wide" if r < 0.88 else "special")


def float_dtype(rng):
    return np.float32 if rng.random() < 0.6 else np.float64


def any_dtype(rng, ints=True, bools=False):
    r = rng.random()
    if r < 0.55:
        return np.float32
    if r < 0.8 or not ints:
        return np.float64
    if bools and r > 0.95:
        return np.bool_
    return np.int64 if r < 0.9 else np.int32


class Arg:
    """An input array; diff: a float input whose gradient is compared; layout: 'c' or a
    permutation that makes the tensor a non-contiguous view."""
    __slots__ = ("array", "diff", "perm")

    def __init__(self, array, diff=True, perm=None):
        self.array = np.asarray(array)
        self.diff = diff and self.array.dtype.kind == "f"
        self.perm = perm


def maybe_view(rng, a, diff=True, p=0.2):
    a = np.asarray(a)
    perm = None
    if a.ndim >= 2 and rng.random() < p:
        perm = tuple(int(v) for v in rng.permutation(a.ndim))
    return Arg(a, diff, perm)


# ------------------------------------------------------------------ the two libraries
class Lib:
    def __init__(self, mod):
        self.m = mod
        self.F = mod.nn.functional
        self.name = "torch" if mod.__name__ == "torch" else "cengine"

    def tensor(self, arg, grad=True):
        a = np.array(arg.array, copy=True)
        if arg.perm is not None:
            base = np.ascontiguousarray(np.transpose(a, arg.perm))
            leaf = self.m.from_numpy(base)
            if grad and arg.diff:
                leaf.requires_grad_(True)
            inv = tuple(int(v) for v in np.argsort(arg.perm))
            return leaf, leaf.permute(*inv)
        leaf = self.m.from_numpy(a) if a.ndim else self.m.tensor(a.item(), dtype=self.dt(a.dtype))
        if grad and arg.diff:
            leaf.requires_grad_(True)
        return leaf, leaf

    def dt(self, npd):
        return {"float32": self.m.float32, "float64": self.m.float64, "int64": self.m.int64,
                "int32": self.m.int32, "bool": self.m.bool}[np.dtype(npd).name]


def to_numpy(t):
    if hasattr(t, "detach"):
        t = t.detach()
    if hasattr(t, "numpy"):
        return np.asarray(t.numpy())
    return np.asarray(t)


def dtype_name(t):
    return str(t.dtype).replace("torch.", "").replace("cengine.", "")


def flatten_out(o):
    if isinstance(o, (tuple, list)):
        out = []
        for v in o:
            out.extend(flatten_out(v))
        return out
    return [o]


# ------------------------------------------------------------------ specs
class Spec:
    """name, family, gen(rng) -> (args, params) or None, fn(lib, *tensors, **params).

    finite: finite moderate inputs give finite outputs and gradients; ref: numpy reference
    fn(*arrays, **params) for the invariant mode; grad: compare/gradcheck gradients;
    gradcheck: run a float64 gradcheck on small inputs in the invariant mode."""

    def __init__(self, name, family, gen, fn, ref=None, finite=True, grad=True, gradcheck=True,
                 rtol=None, ties=False):
        self.name, self.family, self.gen, self.fn = name, family, gen, fn
        self.ref, self.finite, self.grad, self.gradcheck = ref, finite, grad, gradcheck
        self.rtol, self.ties = rtol, ties


SPECS = {}


def spec(*a, **k):
    s = Spec(*a, **k)
    SPECS[s.name] = s
    return s


def g_unary(dom="normal", ints=True, bools=False):
    def gen(rng, moderate=False):
        dt = any_dtype(rng, ints, bools)
        kind = dom if (moderate or dom != "normal") else pick_kind(rng)
        a = values(rng, rand_shape(rng), dt, kind)
        return [maybe_view(rng, a)], {}
    return gen


def g_binary(dom_b="normal", ints=True, same_dtype=False):
    def gen(rng, moderate=False):
        sa = rand_shape(rng)
        sb = bcast_shape(rng, sa)
        if rng.random() < 0.5:
            sa, sb = sb, sa
        da = any_dtype(rng, ints)
        db = da if same_dtype or rng.random() < 0.7 else any_dtype(rng, ints)
        ka = pick_kind(rng, moderate)
        a = values(rng, sa, da, ka)
        b = values(rng, sb, db, dom_b if dom_b != "normal" else pick_kind(rng, moderate))
        if rng.random() < 0.15:        # a python scalar operand
            return [maybe_view(rng, a)], {"scalar": float(b.reshape(-1)[0]) if b.size else 2.0}
        return [maybe_view(rng, a), maybe_view(rng, b)], {}
    return gen


def binop(name):
    def fn(L, a, b=None, scalar=None):
        other = scalar if b is None else b
        return getattr(L.m, name)(a, other)
    return fn


def unop(name, **kw):
    return lambda L, x: getattr(L.m, name)(x, **kw)


def fop(name, **kw):
    return lambda L, x: getattr(L.F, name)(x, **kw)


def _np_sign(x):
    return np.where(np.isnan(x), 0, np.sign(x)) if x.dtype.kind == "f" else np.sign(x)


_UNARY = [
    ("neg", "normal", True, np.negative, True), ("abs", "normal", True, np.abs, True),
    ("exp", "normal", True, None, True), ("log", "positive", True, None, True),
    ("log2", "positive", True, None, True), ("log10", "positive", True, None, True),
    ("log1p", "positive", True, None, True), ("expm1", "normal", True, None, True),
    ("sqrt", "positive", True, None, True), ("rsqrt", "positive", True, None, True),
    ("sin", "normal", True, None, True), ("cos", "normal", True, None, True),
    ("tan", "unit", True, None, True), ("sigmoid", "normal", True, None, True),
    ("tanh", "normal", True, None, True), ("reciprocal", "positive", True, None, True),
    ("square", "normal", True, np.square, True), ("sign", "normal", True, _np_sign, True),
    ("floor", "normal", False, None, True), ("ceil", "normal", False, None, True),
    ("round", "normal", False, None, True), ("trunc", "normal", False, None, True),
    ("relu", "normal", True, None, True),
]
for _n, _dom, _ints, _ref, _fin in _UNARY:
    spec(_n, "elementwise", g_unary(_dom, ints=_ints), unop(_n), ref=_ref, finite=_fin)
spec("clamp", "elementwise", g_unary(), lambda L, x: L.m.clamp(x, -0.5, 0.7))
spec("clamp_min", "elementwise", g_unary(), lambda L, x: L.m.clamp(x, min=0.1))

_BINARY = [("add", None, np.add), ("sub", None, np.subtract), ("mul", None, np.multiply),
           ("div", "positive", None), ("maximum", None, None), ("minimum", None, None),
           ("remainder", "positive", None), ("fmod", "positive", None),
           ("eq", None, None), ("lt", None, None), ("ge", None, None)]
for _n, _dom, _ref in _BINARY:
    spec(_n, "elementwise", g_binary(_dom or "normal", ints=_n not in ("div",)), binop(_n))
spec("pow", "elementwise", g_binary("normal", ints=False),
     lambda L, a, b=None, scalar=None: L.m.pow(L.m.abs(a) + 0.5, b if b is not None else 2.0),
     rtol=1e-3)
spec("div_floor", "elementwise", g_binary("positive", ints=True),
     lambda L, a, b=None, scalar=None: L.m.div(a, b if b is not None else 2.0,
                                               rounding_mode="floor"))
spec("where", "elementwise", g_binary(), lambda L, a, b=None, scalar=None:
     L.m.where(a > 0, a, b if b is not None else a * 0 + scalar))
spec("lerp", "elementwise", g_binary(ints=False, same_dtype=True),
     lambda L, a, b=None, scalar=None: L.m.lerp(a, b if b is not None else a * 2, 0.3))


# ---- reductions
def g_reduce(dom="normal", ints=True, keep=True, dims=True, multi=True):
    def gen(rng, moderate=False):
        dt = any_dtype(rng, ints)
        s = rand_shape(rng)
        a = values(rng, s, dt, dom if dom != "normal" else pick_kind(rng, moderate))
        p = {}
        if dims and s and rng.random() < 0.75:
            nd = len(s)
            if multi and nd >= 2 and rng.random() < 0.3:
                k = int(rng.integers(1, nd + 1))
                p["dim"] = tuple(int(d) - (nd if rng.random() < 0.3 else 0)
                                 for d in rng.choice(nd, size=k, replace=False))
            else:
                p["dim"] = int(rng.integers(-nd, nd))
            if keep:
                p["keepdim"] = bool(rng.random() < 0.4)
        elif dims and not s and rng.random() < 0.3:
            p["dim"] = int(rng.choice([0, -1]))
        return [maybe_view(rng, a)], p
    return gen


def rop(name, **extra):
    return lambda L, x, **p: getattr(L.m, name)(x, **p, **extra)


spec("sum", "reduce", g_reduce(), rop("sum"))
spec("mean", "reduce", g_reduce(ints=False), rop("mean"))
spec("prod", "reduce", g_reduce(multi=False), rop("prod"), rtol=1e-3)
spec("amax", "reduce", g_reduce(), rop("amax"), ties=True)
spec("amin", "reduce", g_reduce(), rop("amin"), ties=True)
spec("max_dim", "reduce", g_reduce(multi=False),
     lambda L, x, **p: L.m.max(x, **p) if "dim" in p else L.m.max(x), ties=True)
spec("min_dim", "reduce", g_reduce(multi=False),
     lambda L, x, **p: L.m.min(x, **p) if "dim" in p else L.m.min(x), ties=True)
spec("argmax", "reduce", g_reduce(multi=False), rop("argmax"), ties=True, grad=False)
spec("argmin", "reduce", g_reduce(multi=False), rop("argmin"), ties=True, grad=False)
# (one element with correction 1 is nan by definition: no finiteness rule)
spec("var", "reduce", g_reduce(ints=False), rop("var"), finite=False)
spec("var_c0", "reduce", g_reduce(ints=False), rop("var", correction=0))
spec("std", "reduce", g_reduce(ints=False), rop("std"), finite=False)
spec("logsumexp", "reduce", g_reduce(ints=False),
     lambda L, x, **p: L.m.logsumexp(x, **({"dim": p.get("dim", 0) if x.ndim else 0,
                                             "keepdim": p.get("keepdim", False)})))
for _p in (2, 1, 3, 0.5, float("inf")):
    spec("norm_p%s" % _p, "reduce", g_reduce(ints=False),
         (lambda pp: lambda L, x, **p: L.m.norm(x, p=pp, **p))(_p), rtol=1e-3)
spec("cumsum", "reduce", g_reduce(keep=False, multi=False),
     lambda L, x, **p: L.m.cumsum(x, dim=p.get("dim", 0)))
spec("all", "reduce", g_reduce(multi=False, ints=True), rop("all"), grad=False)
spec("any", "reduce", g_reduce(multi=False, ints=True), rop("any"), grad=False)
spec("count_nonzero", "reduce", g_reduce(keep=False, multi=False), rop("count_nonzero"),
     grad=False)


# ---- shape ops
def g_shape(min_nd=0):
    def gen(rng, moderate=False):
        a = values(rng, rand_shape(rng, min_nd=min_nd), any_dtype(rng), pick_kind(rng, moderate))
        return [maybe_view(rng, a)], {"r": int(rng.integers(0, 1 << 30))}
    return gen


def _r(p):
    return np.random.default_rng(p["r"])


def _perm_fn(L, x, r):
    return x.permute(*[int(v) for v in _r({"r": r}).permutation(x.ndim)])


def _reshape_fn(L, x, r):
    n = x.numel()
    rng = _r({"r": r})
    dims = []
    rest = n
    for f in (2, 3, 5, 7):
        while rest and rest % f == 0 and rng.random() < 0.5:
            dims.append(f)
            rest //= f
    dims.append(rest)
    rng.shuffle(dims)
    if n and rng.random() < 0.4:
        dims[int(rng.integers(0, len(dims)))] = -1
    return x.reshape(*dims)


def _dim(x, r):
    return int(_r({"r": r}).integers(-max(x.ndim, 1), max(x.ndim, 1)))


spec("reshape", "shape", g_shape(), _reshape_fn)
spec("permute", "shape", g_shape(1), _perm_fn)
spec("transpose", "shape", g_shape(1), lambda L, x, r: x.transpose(_dim(x, r), _dim(x, r + 1)))
spec("squeeze", "shape", g_shape(), lambda L, x, r: x.squeeze(_dim(x, r)) if r % 2 else
     x.squeeze())
spec("unsqueeze", "shape", g_shape(), lambda L, x, r: x.unsqueeze(
    int(_r({"r": r}).integers(-x.ndim - 1, x.ndim + 1))))
spec("flatten", "shape", g_shape(), lambda L, x, r: L.m.flatten(x, 0, _dim(x, r)) if x.ndim else
     L.m.flatten(x))
spec("flip", "shape", g_shape(1), lambda L, x, r: L.m.flip(x, (_dim(x, r),)))
spec("roll", "shape", g_shape(1), lambda L, x, r: L.m.roll(x, r % 5 - 2, _dim(x, r)))
spec("narrow", "shape", g_shape(1), lambda L, x, r: L.m.narrow(
    x, _dim(x, r), 0, min(1, x.shape[_dim(x, r)])))
spec("chunk", "shape", g_shape(1), lambda L, x, r: L.m.chunk(x, r % 4 + 1, _dim(x, r)))
spec("split", "shape", g_shape(1), lambda L, x, r: L.m.split(x, r % 3 + 1, _dim(x, r)))
spec("unbind", "shape", g_shape(1), lambda L, x, r: L.m.unbind(x, _dim(x, r)))
spec("repeat", "shape", g_shape(), lambda L, x, r: x.repeat(
    *([r % 3 + 1] + [1] * x.ndim)))
spec("tile", "shape", g_shape(), lambda L, x, r: L.m.tile(x, (2,) + (1,) * max(x.ndim - 1, 0)))
spec("expand", "shape", g_shape(), lambda L, x, r: x.expand(
    *((2,) + tuple(s if s != 1 else 3 for s in x.shape))))
spec("movedim", "shape", g_shape(1), lambda L, x, r: L.m.movedim(x, _dim(x, r), _dim(x, r + 7)))
spec("tril", "shape", g_shape(), lambda L, x, r: L.m.tril(x, r % 3 - 1))
spec("triu", "shape", g_shape(), lambda L, x, r: L.m.triu(x, r % 3 - 1))
spec("diagonal", "shape", g_shape(2), lambda L, x, r: L.m.diagonal(x, r % 3 - 1))
spec("t", "shape", g_shape(), lambda L, x, r: L.m.t(x) if x.ndim <= 2 else x.mT)


def g_cat(rng, moderate=False):
    s = rand_shape(rng, min_nd=1)
    dt = any_dtype(rng)
    d = int(rng.integers(-len(s), len(s)))
    arrs = []
    for _ in range(int(rng.integers(1, 4))):
        t = list(s)
        t[d] = int(rng.choice([0, 1, 2, 3]))
        if rng.random() < 0.05:
            t[(d + 1) % len(t)] += 1        # mismatched: compare the errors
        arrs.append(maybe_view(rng, values(rng, tuple(t), dt, pick_kind(rng, moderate))))
    return arrs, {"dim": d}


spec("cat", "shape", g_cat, lambda L, *xs, dim: L.m.cat(xs, dim))


def g_stack(rng, moderate=False):
    s = rand_shape(rng, max_nd=3)
    dt = any_dtype(rng)
    arrs = [maybe_view(rng, values(rng, s, dt, pick_kind(rng, moderate)))
            for _ in range(int(rng.integers(1, 4)))]
    return arrs, {"dim": int(rng.integers(-len(s) - 1, len(s) + 1))}


spec("stack", "shape", g_stack, lambda L, *xs, dim: L.m.stack(xs, dim))


# ---- indexing
def g_index(kind):
    def gen(rng, moderate=False):
        s = rand_shape(rng, min_nd=1, max_nd=3)
        dt = any_dtype(rng)
        a = values(rng, s, dt, pick_kind(rng, moderate))
        d = int(rng.integers(-len(s), len(s)))
        n = s[d]
        lo = -1 if rng.random() < 0.05 else 0             # sometimes out of range
        hi = n + (1 if rng.random() < 0.05 else 0)
        p = {"dim": d}
        if kind == "index_select":
            m = int(rng.integers(0, 6))
            ix = rng.integers(lo, max(hi, lo + 1), size=m) if (n or lo < 0) else \
                np.zeros(0, np.int64)
            return [maybe_view(rng, a), Arg(ix.astype(np.int64), False)], p
        ishape = list(s)
        for k in range(len(s)):
            if k == d % len(s):
                ishape[k] = int(rng.integers(0, 5))
            elif rng.random() < 0.3:
                ishape[k] = int(rng.integers(0, s[k] + 1))
        if kind == "take_along_dim":
            for k in range(len(s)):
                if k != d % len(s) and rng.random() < 0.3:
                    ishape[k] = 1
        ix = rng.integers(lo, max(hi, lo + 1), size=tuple(ishape)) if (n or lo < 0) else \
            np.zeros(tuple(ishape), np.int64)
        if n == 0:
            ix = np.zeros(tuple(ishape), np.int64)
            if ix.size:
                return None
        args = [maybe_view(rng, a), Arg(ix.astype(np.int64), False)]
        if kind == "scatter_add":
            src = values(rng, tuple(ishape), dt, "normal")
            args.append(maybe_view(rng, src))
        return args, p
    return gen


spec("index_select", "index", g_index("index_select"),
     lambda L, x, i, dim: L.m.index_select(x, dim, i))
spec("gather", "index", g_index("gather"), lambda L, x, i, dim: L.m.gather(x, dim, i))
spec("take_along_dim", "index", g_index("take_along_dim"),
     lambda L, x, i, dim: L.m.take_along_dim(x, i, dim))
spec("scatter_add", "index", g_index("scatter_add"),
     lambda L, x, i, s, dim: L.m.scatter_add(x, dim, i, s))


def g_getitem(rng, moderate=False):
    s = rand_shape(rng, min_nd=1, max_nd=3)
    a = values(rng, s, any_dtype(rng), pick_kind(rng, moderate))
    return [maybe_view(rng, a)], {"r": int(rng.integers(0, 1 << 30))}


def _getitem_fn(L, x, r):
    rng = np.random.default_rng(r)
    idx = []
    for k, n in enumerate(x.shape):
        c = rng.random()
        if c < 0.3:
            idx.append(slice(None))
        elif c < 0.5 and n:
            idx.append(int(rng.integers(-n, n)))
        elif c < 0.7:
            a, b = sorted(int(v) for v in rng.integers(-n - 1, n + 2, size=2))
            idx.append(slice(a, b, int(rng.integers(1, 3))))
        elif c < 0.85 and not any(not isinstance(i, (int, slice)) for i in idx):
            idx.append(L.m.tensor(rng.integers(0, max(n, 1), size=int(rng.integers(0, 4))))
                       if n else L.m.tensor(np.zeros(0, np.int64)))
        else:
            idx.append(None)
    return x[tuple(idx)]


spec("getitem", "index", g_getitem, _getitem_fn)


def g_mask(rng, moderate=False):
    s = rand_shape(rng, min_nd=0, max_nd=3)
    a = values(rng, s, any_dtype(rng), pick_kind(rng, moderate))
    ms = bcast_shape(rng, s, bad=0.0)
    return [maybe_view(rng, a), Arg(rng.random(ms) < 0.5, False)], {}


spec("masked_fill", "index", g_mask, lambda L, x, m: L.m.masked_fill(x, m, 0.25))
spec("masked_select", "index", g_mask, lambda L, x, m: L.m.masked_select(x, m))


# ---- in-place ops under autograd (version counters, graph rebase)
def _inplace_fn(op):
    def fn(L, a, b=None, scalar=None):
        y = a * 1                           # a non-leaf copy that may be modified in place
        other = scalar if b is None else b
        if op == "clamp_":
            y.clamp_(-0.5, 0.5)
        elif op == "masked_fill_":
            y.masked_fill_(y > 0, 0.5)
        elif op == "setitem":
            y[..., :1] = other if b is None else b.sum()
        else:
            getattr(y, op)(other)
        return y * 2
    return fn


for _op in ("add_", "sub_", "mul_", "div_", "clamp_", "masked_fill_", "setitem"):
    spec("inplace." + _op, "inplace", g_binary("positive" if _op == "div_" else "normal",
                                                ints=False, same_dtype=True),
         _inplace_fn(_op))


# ---- matrix products
def g_matmul(rng, moderate=False):
    M, K, N = (int(rng.choice([0, 1, 2, 3, 5])) for _ in range(3))
    ra, rb = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    batch = rand_shape(rng, 0, 2, empty=0.05)
    dt = float_dtype(rng)
    sa = (K,) if ra == 1 else tuple(batch[len(batch) - max(0, ra - 2):]) + (M, K)
    sb = (K,) if rb == 1 else bcast_shape(rng, batch, bad=0.0)[:max(0, rb - 2)] + (K, N)
    if rng.random() < 0.03:
        sb = sb[:-2] + (K + 1,) + sb[-1:] if len(sb) >= 2 else (K + 1,)
    kind = pick_kind(rng, True)
    return [maybe_view(rng, values(rng, sa, dt, kind)),
            maybe_view(rng, values(rng, sb, dt, kind))], {}


spec("matmul", "linalg", g_matmul, lambda L, a, b: L.m.matmul(a, b), rtol=1e-4)


def g_mm(kind):
    def gen(rng, moderate=False):
        M, K, N, B = (int(rng.choice([0, 1, 2, 3, 5])) for _ in range(4))
        dt = float_dtype(rng)
        sh = {"mm": ((M, K), (K, N)), "bmm": ((B, M, K), (B, K, N)), "mv": ((M, K), (K,)),
              "dot": ((K,), (K,)), "outer": ((M,), (N,)), "inner": ((M, K), (N, K))}[kind]
        return [maybe_view(rng, values(rng, s, dt, "normal")) for s in sh], {}
    return gen


for _k in ("mm", "bmm", "mv", "dot", "outer", "inner"):
    spec(_k, "linalg", g_mm(_k), (lambda k: lambda L, a, b: getattr(L.m, k)(a, b))(_k),
         rtol=1e-4)


def g_addmm(rng, moderate=False):
    M, K, N = (int(rng.choice([0, 1, 2, 3, 5])) for _ in range(3))
    dt = float_dtype(rng)
    si = bcast_shape(rng, (M, N), bad=0.0)
    return [maybe_view(rng, values(rng, s, dt, "normal")) for s in (si, (M, K), (K, N))], \
        {"beta": float(rng.choice([0.0, 1.0, 0.5])), "alpha": float(rng.choice([1.0, -2.0]))}


spec("addmm", "linalg", g_addmm,
     lambda L, i, a, b, beta, alpha: L.m.addmm(i, a, b, beta=beta, alpha=alpha), rtol=1e-4)

_EINSUM = ["ij,jk->ik", "bij,bjk->bik", "ij->ji", "ii->i", "ij->", "i,i->", "i,j->ij",
           "bhqd,bhkd->bhqk", "ij,ij->i"]


def g_einsum(rng, moderate=False):
    eq = _EINSUM[int(rng.integers(0, len(_EINSUM)))]
    sizes = {c: int(rng.choice([0, 1, 2, 3])) for c in "bhijkqd"}
    lhs = eq.split("->")[0].split(",")
    dt = float_dtype(rng)
    return [maybe_view(rng, values(rng, tuple(sizes[c] for c in t), dt, "normal"))
            for t in lhs], {"eq": eq}


spec("einsum", "linalg", g_einsum, lambda L, *xs, eq: L.m.einsum(eq, *xs), rtol=1e-4)


# ---- activations (nn.functional)
_ACTS = [("relu", {}), ("relu6", {}), ("leaky_relu", {"negative_slope": 0.1}), ("gelu", {}),
         ("gelu", {"approximate": "tanh"}), ("silu", {}), ("sigmoid", {}), ("tanh", {}),
         ("softplus", {}), ("elu", {}), ("hardtanh", {}), ("mish", {}), ("logsigmoid", {})]
for _n, _kw in _ACTS:
    spec("F." + _n + ("_" + "_".join(map(str, _kw.values())) if _kw else ""), "activation",
         g_unary(ints=True), fop(_n, **_kw), rtol=1e-4)


def g_softmax(rng, moderate=False):
    s = rand_shape(rng)
    a = values(rng, s, float_dtype(rng), pick_kind(rng, moderate))
    return [maybe_view(rng, a)], {"dim": int(rng.integers(-max(len(s), 1), max(len(s), 1)))}


for _n in ("softmax", "log_softmax", "softmin"):
    spec("F." + _n, "activation", g_softmax, (lambda n: lambda L, x, dim:
                                               getattr(L.F, n)(x, dim=dim))(_n), rtol=1e-4)


def g_glu(rng, moderate=False):
    s = list(rand_shape(rng, min_nd=1))
    d = int(rng.integers(-len(s), len(s)))
    s[d] = int(rng.choice([0, 2, 4, 6]))
    return [maybe_view(rng, values(rng, tuple(s), float_dtype(rng), pick_kind(rng, moderate)))], \
        {"dim": d}


spec("F.glu", "activation", g_glu, lambda L, x, dim: L.F.glu(x, dim), rtol=1e-4)


# ---- losses
def g_pair_loss(rng, moderate=False):
    s = rand_shape(rng)
    dt = float_dtype(rng)
    return [maybe_view(rng, values(rng, s, dt, pick_kind(rng, moderate))),
            maybe_view(rng, values(rng, s, dt, "normal"))], \
        {"reduction": str(rng.choice(["mean", "sum", "none"]))}


for _n in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"):
    spec("F." + _n, "loss", g_pair_loss, (lambda n: lambda L, a, b, reduction:
                                          getattr(L.F, n)(a, b, reduction=reduction))(_n),
         rtol=1e-4)


def g_bce(logits):
    def gen(rng, moderate=False):
        s = rand_shape(rng)
        dt = float_dtype(rng)
        x = values(rng, s, dt, pick_kind(rng, moderate) if logits else "normal")
        if not logits:
            x = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(dt) * 0.98 + 0.01
        y = rng.random(s).astype(dt)
        return [maybe_view(rng, x), Arg(y, False)], \
            {"reduction": str(rng.choice(["mean", "sum", "none"]))}
    return gen


spec("F.binary_cross_entropy", "loss", g_bce(False),
     lambda L, x, y, reduction: L.F.binary_cross_entropy(x, y, reduction=reduction), rtol=1e-4)
spec("F.binary_cross_entropy_with_logits", "loss", g_bce(True),
     lambda L, x, y, reduction: L.F.binary_cross_entropy_with_logits(x, y, reduction=reduction),
     rtol=1e-4)


def g_ce(probs):
    def gen(rng, moderate=False):
        N, C = int(rng.choice([0, 1, 2, 3, 5])), int(rng.choice([1, 2, 3, 7]))
        extra = (int(rng.choice([1, 2, 3])),) if rng.random() < 0.25 else ()
        dt = float_dtype(rng)
        x = values(rng, (N, C) + extra, dt, pick_kind(rng, moderate))
        p = {"reduction": str(rng.choice(["mean", "sum", "none"]))}
        if probs:
            t = rng.random((N, C) + extra)
            t = (t / t.sum(axis=1, keepdims=True)).astype(dt)
            if rng.random() < 0.3:
                p["label_smoothing"] = 0.1
            return [maybe_view(rng, x), Arg(t, False)], p
        t = rng.integers(0, C, size=(N,) + extra).astype(np.int64)
        if rng.random() < 0.3 and t.size:
            t.reshape(-1)[0] = -100
            p["ignore_index"] = -100
        if rng.random() < 0.2:
            p["label_smoothing"] = 0.2
        return [maybe_view(rng, x), Arg(t, False)], p
    return gen


# (every target ignored: the mean over no rows is nan, as in torch)
spec("F.cross_entropy", "loss", g_ce(False),
     lambda L, x, t, **p: L.F.cross_entropy(x, t, **p), rtol=1e-4, finite=False)
spec("F.cross_entropy_probs", "loss", g_ce(True),
     lambda L, x, t, **p: L.F.cross_entropy(x, t, **p), rtol=1e-4)
spec("F.nll_loss", "loss", g_ce(False),
     lambda L, x, t, **p: L.F.nll_loss(x, t, **{k: v for k, v in p.items()
                                                 if k != "label_smoothing"}), rtol=1e-4,
     finite=False)


def g_layer_norm(rng, moderate=False):
    s = rand_shape(rng, min_nd=1)
    k = int(rng.integers(1, len(s) + 1))
    dt = float_dtype(rng)
    ns = s[len(s) - k:]
    return [maybe_view(rng, values(rng, s, dt, pick_kind(rng, moderate))),
            Arg(values(rng, ns, dt, "normal")), Arg(values(rng, ns, dt, "normal"))], {"k": k}


spec("F.layer_norm", "norm", g_layer_norm,
     lambda L, x, w, b, k: L.F.layer_norm(x, tuple(x.shape[x.ndim - k:]), w, b), rtol=1e-3)


# ------------------------------------------------------------------ known deviations
# Differences found in code this fuzzer's owner does not maintain (nn/functional.py's
# activations and losses): (spec name prefix, message fragment, note). They are counted and
# listed as "elsewhere" instead of failing the run; remove an entry once it is fixed.
ELSEWHERE = [
    ("F.", "not implemented for", "activation accepts integer input that torch rejects"),
    ("F.relu6", "dtype float32 vs torch int", "relu6 on integers returns float32"),
    ("F.hardtanh", "dtype float32 vs torch int", "hardtanh on integers returns float32"),
    ("F.huber_loss", "grad 0 differs", "huber/smooth_l1 gradient is nan for infinite inputs"),
    ("F.smooth_l1_loss", "grad 0 differs", "huber/smooth_l1 gradient is nan for infinite inputs"),
    ("F.cross_entropy", "ZeroDivisionError", "cross_entropy backward on an empty batch"),
    ("F.relu", "grad 0 differs", "relu/relu6/hardtanh gradient at NaN inputs is 0 (torch: g)"),
    ("relu", "grad 0 differs", "relu/relu6/hardtanh gradient at NaN inputs is 0 (torch: g)"),
    ("F.hardtanh", "grad 0 differs", "relu/relu6/hardtanh gradient at NaN inputs is 0"),
    ("F.gelu", "values differ", "gelu(+-inf) is inf / nan where torch's is nan"),
    ("F.layer_norm", "values differ", "layer_norm of float32 rows near 1e30: 0 (torch nan)"),
    ("F.nll_loss", "values differ", "nll_loss with -inf in ignored rows is nan"),
    ("F.nll_loss", "grad 0 differs", "nll_loss gradient with -inf in ignored rows"),
    ("F.elu", "grad 0 differs", "elu gradient at NaN/inf inputs"),
    ("F.cross_entropy", "grad 0 differs", "cross_entropy gradient of ignored rows with inf"),
    ("F.layer_norm", "grad", "layer_norm gradients for float32 rows near 1e30"),
]


def elsewhere(name, msg):
    for prefix, frag, note in ELSEWHERE:
        if name.startswith(prefix) and frag in msg:
            return note
    return None


def known(spec_, args, res_ce, res_t):  # noqa: C901 - one case per intended deviation
    """Reason string when a difference from torch is intended, else None."""
    if spec_.name == "index_select" and isinstance(res_ce, IndexError) and \
            "out of DATA bounds" in str(res_t):
        # torch raises "index out of range in self" (IndexError) along some dimensions and
        # "INDICES element is out of DATA bounds" (RuntimeError) along others (dim 1 of a
        # 2-D or 3-D input); cengine raises the IndexError everywhere
        return "torch's out-of-range error type for index_select depends on the dimension"
    if spec_.name == "take_along_dim" and res_t is None and \
            "out of bounds" in str(res_ce):
        return "torch does not bounds-check take_along_dim"
    if isinstance(res_ce, BaseException) or isinstance(res_t, BaseException):
        res_ce = res_t = None
    if (spec_.name.startswith("norm_p") or spec_.name == "std") and res_ce is not None:
        # cengine accumulates float32 norms in float64 and scales p-norms (and float64 std)
        # by the largest |x|: finite where torch overflows to inf or underflows to 0, and
        # so gradients where torch's are 0 or nan
        a, b = res_ce.astype(np.float64), res_t.astype(np.float64)
        with np.errstate(all="ignore"):
            bad = ~((a == b) | (np.isnan(a) & np.isnan(b)) |
                    (np.abs(a - b) <= 1e-3 * np.abs(b) + 1e-6))
        tb = res_t.dtype
        big_or_tiny = any(np.any((np.abs(x.array) > 1e18) |
                                 ((np.abs(x.array) < 1e-12) & (x.array != 0)))
                          for x in args if x.array.dtype.kind == "f")
        if np.all(np.isinf(b[bad]) | (b[bad] == 0) | np.isnan(b[bad])) or \
                np.all(np.abs(a[bad]) > np.finfo(tb).max / 1e30) or big_or_tiny:
            return "float64 accumulation / scaling of norms"
    if spec_.name == "prod" and res_ce is not None and (
            any(np.any(np.isinf(x.array)) for x in args) or
            np.any(np.isinf(res_t) & np.isfinite(res_ce))):
        # cengine's prod gradient is the exact product of the other elements; torch's
        # result / x is nan where x is infinite and inf where the product overflows
        return "exact prod gradient with infinite elements or an overflowing product"
    if spec_.name == "prod" and res_ce is not None and \
            np.any(np.isnan(res_t) & ~np.isnan(res_ce)) and \
            all(np.all(np.isfinite(x.array)) for x in args if x.array.dtype.kind == "f"):
        # a float32 product that both overflows and underflows: inf * 0 (nan) or 0 * inf
        # depending on the order of the multiplications
        return "order of overflow and underflow in a product"
    return None


# ------------------------------------------------------------------ running one example
def example_rng(name, seed):
    return np.random.default_rng([zlib.crc32(name.encode()), seed])


def _call(L, s, args, params, grad=True):
    pairs = [L.tensor(a, grad) for a in args]
    leaves = [p[0] for p in pairs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = s.fn(L, *[p[1] for p in pairs], **params)
    return leaves, out


def _run(L, s, args, params, grad=True):
    try:
        leaves, out = _call(L, s, args, params, grad)
        return leaves, out, None
    except Exception as e:      # noqa: BLE001 - every exception is a result to compare
        return None, None, e


def _tol(s, arrs_dtype):
    if arrs_dtype == np.float64:
        return 1e-9, 1e-10
    r = s.rtol or 2e-5
    return max(r, 2e-5), 1e-5


def _close(a, b, rtol, atol):
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "b" or b.dtype.kind == "b" or a.dtype.kind in "iu":
        return np.array_equal(a, b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    fin = np.isfinite(a64) & np.isfinite(b64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)):
        return False
    inf = ~np.isnan(a64) & ~fin
    if not np.array_equal(a64[inf], b64[inf]):
        return False
    if not fin.any():
        return True
    scale = max(1.0, float(np.max(np.abs(b64[fin]))))
    return bool(np.all(np.abs(a64[fin] - b64[fin]) <= atol * scale + rtol * np.abs(b64[fin])))


class Finding(Exception):
    pass


def _grads(L, out, leaves, seed):
    """gradients of sum(out * w) for a seeded w, w.r.t. the leaves that require grad"""
    outs = [o for o in flatten_out(out) if hasattr(o, "requires_grad") and o.requires_grad]
    if not outs:
        return None
    diff = [t for t in leaves if t.requires_grad]
    if not diff:
        return None
    rng = np.random.default_rng(seed)
    ws = []
    for o in outs:
        w = rng.standard_normal(tuple(o.shape)).astype(to_numpy(o).dtype)
        ws.append(L.m.from_numpy(w) if w.ndim else L.m.tensor(w.item(), dtype=o.dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs = L.m.autograd.grad(outs, diff, ws, allow_unused=True)
    return [np.zeros(tuple(t.shape), to_numpy(t).dtype) if g is None else to_numpy(g)
            for t, g in zip(diff, gs)]


def compare_with_torch(name, seed, torch):
    """Run one example in cengine and torch; raise Finding on a difference."""
    s = SPECS[name]
    rng = example_rng(name, seed)
    g = s.gen(rng)
    if g is None:
        return "skipped"
    args, params = g
    lc, lt = Lib(ce), Lib(torch)
    leaves_c, out_c, err_c = _run(lc, s, args, params)
    leaves_t, out_t, err_t = _run(lt, s, args, params)
    if err_t is not None or err_c is not None:
        if err_t is None and known(s, args, err_c, None):
            return "known: " + known(s, args, err_c, None)
        if err_t is None:
            raise Finding("cengine raises %s: %s; torch does not"
                          % (type(err_c).__name__, str(err_c)[:200]))
        if err_c is None:
            raise Finding("torch raises %s: %s; cengine returns"
                          % (type(err_t).__name__, str(err_t)[:200]))
        tc, tt = type(err_c), type(err_t)
        if tc is not tt and known(s, args, err_c, err_t):
            return "known: " + known(s, args, err_c, err_t)
        if not (issubclass(tc, tt) or issubclass(tt, tc) or
                (tt is RuntimeError and tc is NotImplementedError)):
            raise Finding("error types differ: cengine %s(%s) vs torch %s(%s)"
                          % (tc.__name__, str(err_c)[:120], tt.__name__, str(err_t)[:120]))
        return "both raise"
    fc, ft = flatten_out(out_c), flatten_out(out_t)
    if len(fc) != len(ft):
        raise Finding("%d outputs vs torch's %d" % (len(fc), len(ft)))
    for k, (a, b) in enumerate(zip(fc, ft)):
        if not hasattr(b, "shape"):
            if a != b and not (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
                raise Finding("output %d: %r vs torch %r" % (k, a, b))
            continue
        if tuple(a.shape) != tuple(b.shape):
            raise Finding("output %d shape %s vs torch %s" % (k, tuple(a.shape), tuple(b.shape)))
        if dtype_name(a) != dtype_name(b):
            raise Finding("output %d dtype %s vs torch %s" % (k, dtype_name(a), dtype_name(b)))
        if bool(a.requires_grad) != bool(b.requires_grad):
            raise Finding("output %d requires_grad %s vs torch %s"
                          % (k, a.requires_grad, b.requires_grad))
        na, nb = to_numpy(a), to_numpy(b)
        if s.ties and na.dtype == np.int64 and k > 0 or (s.ties and s.name.startswith("arg")):
            continue     # index of a tie may differ; the values are compared
        rtol, atol = _tol(s, nb.dtype)
        if not _close(na, nb, rtol, atol):
            why = known(s, args, na, nb)
            if why:
                return "known: " + why
            raise Finding("output %d values differ (max abs diff %s)\ncengine %s\ntorch   %s"
                          % (k, _maxdiff(na, nb), _short(na), _short(nb)))
    if not s.grad:
        return "ok"
    try:
        gc = _grads(lc, out_c, leaves_c, seed)
    except Exception as e:      # noqa: BLE001
        raise Finding("cengine backward raises %s: %s" % (type(e).__name__, str(e)[:200]))
    gt = _grads(lt, out_t, leaves_t, seed)
    if (gc is None) != (gt is None):
        raise Finding("gradient availability differs: cengine %s, torch %s"
                      % (gc is not None, gt is not None))
    if gc is None:
        return "ok"
    # a float64 input mixed with float32 ones computes in float32: use the lowest precision
    low = np.float32 if any(a.array.dtype == np.float32 for a in args) else np.float64
    for k, (a, b) in enumerate(zip(gc, gt)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise Finding("grad %d shape/dtype %s %s vs torch %s %s"
                          % (k, a.shape, a.dtype, b.shape, b.dtype))
        rtol, atol = _tol(s, np.dtype(low) if low == np.float32 else b.dtype)
        if not _close(a, b, max(rtol, 1e-3 if low == np.float32 else 1e-7), atol * 10):
            why = known(s, args, a, b)
            if why:
                return "known: " + why
            raise Finding("grad %d differs (max abs diff %s)\ncengine %s\ntorch   %s"
                          % (k, _maxdiff(a, b), _short(a), _short(b)))
    return "ok"


def _maxdiff(a, b):
    with np.errstate(all="ignore"):
        try:
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            d = d[~np.isnan(d)]
            return float(d.max()) if d.size else "nan"
        except ValueError:
            return "n/a"


def _short(a):
    return np.array2string(np.asarray(a), threshold=12, edgeitems=3, precision=6)


def check_invariants(name, seed):
    """Run one example in cengine alone; raise Finding when an invariant breaks."""
    s = SPECS[name]
    rng = example_rng(name, seed)
    moderate = rng.random() < 0.5
    g = s.gen(rng, moderate=moderate)
    if g is None:
        return "skipped"
    args, params = g
    L = Lib(ce)
    leaves, out, err = _run(L, s, args, params)
    if err is not None:
        if not isinstance(err, CLEAN_ERRORS):
            raise Finding("unclean exception %s: %s\n%s" % (
                type(err).__name__, err, "".join(traceback.format_exception(err))[-1500:]))
        return "raises"
    outs = [o for o in flatten_out(out) if hasattr(o, "shape")]
    for o in outs:
        if not isinstance(o, ce.Tensor):
            raise Finding("returns %s, not a Tensor" % type(o).__name__)
        a = to_numpy(o)
        if tuple(o.shape) != a.shape:
            raise Finding("shape %s but storage %s" % (tuple(o.shape), a.shape))
        if a.dtype.name not in ("float32", "float64", "float16", "int64", "int32", "bool",
                                "int16", "int8", "uint8"):
            raise Finding("storage dtype %s" % a.dtype)
    in_dtypes = {np.dtype(a.array.dtype) for a in args if a.diff}
    for o in outs:
        a = to_numpy(o)
        if a.dtype.kind == "f" and in_dtypes and a.dtype not in in_dtypes and \
                s.family not in ("shape", "index"):
            raise Finding("float inputs %s give a %s output" % (sorted(map(str, in_dtypes)),
                                                               a.dtype))
    # finite where finite: finite inputs with elements (an empty reduction is nan by rule)
    finite_in = all(np.all(np.isfinite(a.array)) and a.array.size
                    for a in args if a.array.dtype.kind == "f")
    if s.finite and moderate and finite_in:
        for o in outs:
            a = to_numpy(o)
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise Finding("non-finite output for finite moderate inputs: %s" % _short(a))
    if s.ref is not None:
        ref = np.asarray(s.ref(*[a.array for a in args], **params))
        a = to_numpy(outs[0])
        if a.shape != ref.shape:
            raise Finding("shape %s, numpy %s" % (a.shape, ref.shape))
        if a.dtype.kind == "f" and not _close(a, ref.astype(a.dtype), *_tol(s, a.dtype)):
            raise Finding("values differ from numpy: %s vs %s" % (_short(a), _short(ref)))
    if not s.grad:
        return "ok"
    try:
        gs = _grads(L, out, leaves, seed)
    except Exception as e:      # noqa: BLE001
        if isinstance(e, CLEAN_ERRORS):
            raise Finding("backward raises %s: %s" % (type(e).__name__, str(e)[:300]))
        raise Finding("backward crashes with %s: %s\n%s" % (
            type(e).__name__, e, "".join(traceback.format_exception(e))[-1500:]))
    if gs is None:
        return "ok"
    diff = [t for t in leaves if t.requires_grad]
    for t, gv in zip(diff, gs):
        if gv.shape != tuple(t.shape) or gv.dtype != to_numpy(t).dtype:
            raise Finding("gradient %s %s for an input %s %s" % (gv.shape, gv.dtype,
                                                                tuple(t.shape), t.dtype))
        if s.finite and moderate and finite_in and not np.all(np.isfinite(gv)):
            raise Finding("non-finite gradient for finite moderate inputs: %s" % _short(gv))
    finite_out = all(np.all(np.isfinite(to_numpy(o))) for o in outs
                     if to_numpy(o).dtype.kind == "f")
    if s.gradcheck and moderate and finite_in and finite_out and rng.random() < 0.3:
        _gradcheck(s, args, params)
    return "ok"


def _gradcheck(s, args, params):
    if sum(a.array.size for a in args if a.diff) > 12 or not any(a.diff for a in args):
        return
    args64 = [Arg(a.array.astype(np.float64), True, a.perm) if a.diff else a for a in args]
    L = Lib(ce)
    pairs = [L.tensor(a) for a in args64]
    leaves = [p[0] for p in pairs]
    diff_idx = [i for i, t in enumerate(leaves) if t.requires_grad]

    def f(*xs):
        ts = list(leaves)
        for i, x in zip(diff_idx, xs):
            ts[i] = x
        views = [t if a.perm is None else t.permute(*np.argsort(a.perm).tolist())
                 for t, a in zip(ts, args64)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = s.fn(L, *views, **params)
        return tuple(o for o in flatten_out(out) if isinstance(o, ce.Tensor) and
                     o.dtype.is_floating_point)
    try:
        outs = f(*[leaves[i] for i in diff_idx])
    except CLEAN_ERRORS:
        return
    if not any(o.requires_grad for o in outs):
        return
    try:
        ok = ce.autograd.gradcheck(f, tuple(leaves[i] for i in diff_idx), eps=1e-6, atol=1e-5,
                                   rtol=1e-3, raise_exception=False)
    except CLEAN_ERRORS as e:
        raise Finding("gradcheck raises %s: %s" % (type(e).__name__, str(e)[:300]))
    if not ok:
        raise Finding("float64 gradcheck fails")


# ------------------------------------------------------------------ campaigns
def campaign(n_examples, base_seed, torch=None, only=None):
    """Run n_examples spread over the specs; returns (counts, findings)."""
    names = sorted(SPECS) if only is None else [n for n in sorted(SPECS) if n in only]
    counts, findings, others = {}, [], {}
    for i in range(n_examples):
        name = names[i % len(names)]
        seed = base_seed + i // len(names)
        try:
            with np.errstate(all="ignore"):
                r = (compare_with_torch(name, seed, torch) if torch is not None
                     else check_invariants(name, seed))
        except Finding as f:
            note = elsewhere(name, str(f))
            if note is None:
                findings.append((name, seed, str(f)))
                r = "finding"
            else:
                r = "elsewhere: " + note
                others.setdefault((name, note), seed)
        counts[r.split(":")[0]] = counts.get(r.split(":")[0], 0) + 1
    campaign.elsewhere = others
    return counts, findings


def report(findings, limit=40):
    by = {}
    for name, seed, msg in findings:
        by.setdefault(name, []).append((seed, msg))
    lines = ["%d findings in %d ops" % (len(findings), len(by))]
    for name in sorted(by):
        seed, msg = by[name][0]
        lines.append("- %s: %d example(s); first: seed %d: %s" % (name, len(by[name]), seed,
                                                                  msg.splitlines()[0]))
    return "\n".join(lines[:limit + 1])
