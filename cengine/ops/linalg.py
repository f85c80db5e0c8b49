"""Matrix products with autograd, all on the C GEMM (cengine._C.gemm, src_c/gemm.c):
dot, mv, mm, bmm, matmul (torch's rules: 1-D operands promoted and squeezed, batch dimensions
broadcast), addmm, baddbmm, outer, einsum (contractions of one or two operands that reduce to a
batched matrix product).

Backward: dA = dC @ B^T and dB = A^T @ dC, computed by the strided GEMM on transposed *views*
(no transposed copies), then summed over broadcast batch dimensions. When a batched operand meets
a 2-D one (x (B,T,K) @ W (K,N), the Linear case) the batch is folded into the rows, so forward and
both gradients are single large GEMMs. float32/float64 run on the kernels; integer dtypes fall
back to numpy (no autograd for them, like torch)."""
import builtins

import numpy as np

from .. import _device as _dv

from .. import _C
from .. import dtypes as _dt
from ..autograd.function import Function
from ..tensor import Tensor, _wrap
from ._util import unbroadcast, _reshape, write_out

__all__ = ["matmul", "mm", "bmm", "mv", "dot", "vdot", "inner", "outer", "ger", "addmm",
           "baddbmm", "addmv", "einsum"]

# c = alpha * a @ b + beta * c (+ bias (N,) along the columns), 2-D or batched with up to two
# batch dimensions, any strides: float32/float64 go straight to _C.gemm, bfloat16/float16 to
# the half-precision GEMM (ops/_half.py)
from ._half import gemm as _gemm  # noqa: E402
from . import _half  # noqa: E402
from ..amp import autocast_mode as _am  # noqa: E402
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)

def _tn(dt):
    return _dt.torch_cpp_name(dt)


def _check(x, name):
    if not isinstance(x, Tensor):
        raise TypeError("%s(): argument '%s' must be Tensor, not %s"
                        % (name.split(".")[0], name.split(".")[-1], type(x).__name__))


def _same_dtype(a, b):
    if a._data.dtype != b._data.dtype:
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: %s != %s"
                           % (_tn(a._data.dtype), _tn(b._data.dtype)))


def _shape_str(s):
    return "x".join(str(d) for d in s)


# ------------------------------------------------------------------ array-level products
def _as3d(x, batch):
    """(batch..., r, c) view of x broadcast to `batch`, merged to one batch dim: a 2-D array
    stays 2-D (the kernel broadcasts it); None when the batch dims cannot merge without a copy."""
    if x.ndim == 2:
        return x
    if x.shape[:-2] != batch:
        x = np.broadcast_to(x, batch + x.shape[-2:])
    if len(batch) == 1:
        return x
    try:
        return np.reshape(x, (_rows(batch + (1,)),) + x.shape[-2:], copy=False)
    except ValueError:
        return None


def _gemm_into(x, y, out, alpha=1.0, beta=0.0):
    """out (batch..., M, N) = alpha * x @ y + beta * out, x (..., M, K), y (..., K, N), batch dims
    of x and y broadcast to out's; x/y may be any strided views; float32/float64."""
    batch = out.shape[:-2]
    if len(batch) <= 2:
        # the kernel takes up to two batch dimensions with any strides and broadcasts missing
        # or size-1 ones of x and y (such as (b, h, L, E) head views) without copies
        _gemm(x, y, out, alpha, beta)
        return out
    o3 = np.reshape(out, (_rows(batch + (1,)),) + out.shape[-2:], copy=False) \
        if len(batch) > 1 else out
    x3, y3 = _as3d(x, batch), _as3d(y, batch)
    if x3 is not None and y3 is not None:
        _gemm(x3, y3, o3, alpha, beta)
        return out
    # batch dims that do not merge: loop over all but the last one
    xb = np.broadcast_to(x, batch + x.shape[-2:])
    yb = np.broadcast_to(y, batch + y.shape[-2:])
    for idx in np.ndindex(*batch[:-1]):
        _gemm(xb[idx], yb[idx], out[idx], alpha, beta)
    return out


def _rows(shape):
    """number of rows when all but the last dim are folded (no -1: K or N may be 0)"""
    n = 1
    for s in shape[:-1]:
        n *= s
    return n


def _fold_rows(x):
    """(..., M, K) -> (prod(...)*M, K) view when possible, else a copy"""
    return np.reshape(x, (_rows(x.shape), x.shape[-1]))


def _matmul_nd(x, y):
    """x (..., M, K) @ y (..., K, N), both >= 2-D, broadcasting batch dims; new array."""
    M, K, N = x.shape[-2], x.shape[-1], y.shape[-1]
    dt = x.dtype
    if x.ndim == 2 and y.ndim == 2:
        out = _empty(x, (M, N), dt)
        _gemm(x, y, out)
        return out
    if y.ndim == 2:
        # batch folded into the rows: one (B*M, K) @ (K, N) product
        out = _empty(x, x.shape[:-1] + (N,), dt)
        _gemm(_fold_rows(x), y, np.reshape(out, (_rows(out.shape), N)))
        return out
    try:
        batch = np.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    except ValueError:
        _raise_broadcast(x.shape[:-2], y.shape[:-2])
    out = _empty(x, batch + (M, N), dt)
    return _gemm_into(x, y, out)


def _raise_broadcast(sa, sb):
    n = max(len(sa), len(sb))
    pa, pb = (1,) * (n - len(sa)) + tuple(sa), (1,) * (n - len(sb)) + tuple(sb)
    for i in range(n - 1, -1, -1):
        if pa[i] != pb[i] and pa[i] != 1 and pb[i] != 1:
            raise RuntimeError("The size of tensor a (%d) must match the size of tensor b (%d) at "
                               "non-singleton dimension %d" % (pa[i], pb[i], i))
    raise RuntimeError("shapes %s and %s cannot be broadcast" % (sa, sb))


def _empty(ref, shape, dt):
    """An uninitialised output array on the device of `ref`."""
    if type(ref) is np.ndarray:
        return np.empty(shape, dt)
    return _dv.xp(ref).empty(shape, dt)


def _swap(x):
    return x.swapaxes(-1, -2)


def _grad_a(g, b, a_shape):
    """dA = g @ b^T reduced to A's shape; g (batch..., M, N), b (..., K, N)"""
    if b.ndim == 2 and len(a_shape) == g.ndim:
        # same batch as the output: one folded product (B*M, N) @ (N, K)
        out = _empty(g, g.shape[:-1] + (b.shape[0],), g.dtype)
        _gemm(_fold_rows(g), _swap(b), np.reshape(out, (_rows(out.shape), b.shape[0])))
        return out
    full = _matmul_nd(g, _swap(b))
    return unbroadcast(full, a_shape)


def _grad_b(g, a, b_shape):
    """dB = a^T @ g reduced to B's shape; g (batch..., M, N), a (..., M, K)"""
    if len(b_shape) == 2 and g.ndim > 2 and a.shape[:-2] == g.shape[:-2]:
        # B broadcast over the whole batch (Linear on a batch): (B*M, K)^T @ (B*M, N)
        out = _empty(g, (a.shape[-1], g.shape[-1]), g.dtype)
        _gemm(_swap(_fold_rows(a)), _fold_rows(g), out)
        return out
    full = _matmul_nd(_swap(a), g)
    return unbroadcast(full, b_shape)


class MatMul(Function):
    """a @ b for float32/float64 arrays of ndim >= 1 with torch's matmul rules."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if a.ndim == 1 and b.ndim == 1:
            out = _empty(a, (1, 1), a.dtype)
            _gemm(a[None, :], b[:, None], out)
            return out.reshape(())
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        out = _matmul_nd(a2, b2)
        if a.ndim == 1:
            out = out[..., 0, :]
        if b.ndim == 1:
            out = out[..., 0]
        return out

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1 and b.ndim == 1:
            g2 = np.reshape(g, (1, 1))
        else:
            g2 = g
            if a.ndim == 1:
                g2 = g2[..., None, :]
            if b.ndim == 1:
                g2 = g2[..., None]
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = _grad_a(g2, b2, a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = _grad_b(g2, a2, b2.shape).reshape(b.shape)
        return ga, gb


def _np_matmul(a, b):
    """integer / other dtypes: numpy's matmul (no autograd, like torch for integers)"""
    return _wrap(np.matmul(a._data, b._data))


def _apply_matmul(a, b):
    dt = a._data.dtype
    if dt is _F32 or dt is _F64 or dt == _F32 or dt == _F64 or _dt.is_half(dt):
        return MatMul.apply(a, b)
    if _dt.is_floating(dt):
        if a.requires_grad or b.requires_grad:
            raise RuntimeError("matmul with autograd supports float32 and float64 (got %s)"
                               % _tn(dt))
    return _np_matmul(a, b)


def _as_tensor_operand(x, name):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple)):
        from .creation import tensor
        return tensor(x)
    raise TypeError("%s(): argument '%s' must be Tensor, not %s" % (name.split(".")[0],
                    name.split(".")[-1], type(x).__name__))


# ------------------------------------------------------------------ public API
def matmul(input, other, *, out=None):
    """Matrix product with torch's rules: 1-D @ 1-D is a dot product, a 1-D first operand is
    a row (prepended 1, removed after), a 1-D second operand a column (appended 1, removed
    after), and batch dimensions (all but the last two) broadcast."""
    if _am._tls.lowp is not None:     # autocast region: the product in its low precision
        input, other = _am.cast_lowp(input), _am.cast_lowp(other)
    if out is None and type(input) is Tensor and type(other) is Tensor:
        # fast path: same float dtype, matching inner dims, both >= 2-D
        x, y = input._data, other._data
        if x.ndim >= 2 and y.ndim == 2 and x.shape[-1] == y.shape[0] and x.dtype is y.dtype and \
                (x.dtype is _F32 or x.dtype is _F64):
            return MatMul.apply(input, other)
    a = _as_tensor_operand(input, "matmul.input")
    b = _as_tensor_operand(other, "matmul.other")
    da, db = a._data.ndim, b._data.ndim
    if da == 0 or db == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D, but they are %dD and "
                           "%dD" % (da, db))
    sa, sb = a._data.shape, b._data.shape
    if da == 1 and db == 1:
        if sa[0] != sb[0]:
            raise RuntimeError("inconsistent tensor size, expected tensor [%d] and src [%d] to have "
                               "the same number of elements, but got %d and %d elements "
                               "respectively" % (sa[0], sb[0], sa[0], sb[0]))
    else:
        ka = sa[-1]
        kb = sb[-2] if db >= 2 else sb[0]
        if ka != kb:
            ma = sa[-2] if da >= 2 else 1
            if da <= 2 and db <= 2:
                raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (%dx%d and %s)"
                                   % (ma, ka, _shape_str(sb) if db == 2 else "%dx1" % sb[0]))
            raise RuntimeError("Expected size for first two dimensions of batch2 tensor to be: "
                               "[%s] but got: [%s]." % (
                                   ", ".join(str(s) for s in (sb[:-2] + (ka,) if db > 2 else (ka,))),
                                   ", ".join(str(s) for s in (sb[:-1] if db > 2 else sb[:1]))))
    _same_dtype(a, b)
    return write_out(_apply_matmul(a, b), out, "matmul")


def _product(name, input, mat2, out, nd, nd_msgs, fits, mismatch):
    """mm / bmm after the operand checks: each operand nd-D (else RuntimeError nd_msgs[0] /
    nd_msgs[1]), fits(sa, sb) on the shapes (else RuntimeError mismatch.format(sa, sb)), one
    dtype; the product, written to out."""
    if input._data.ndim != nd:
        raise RuntimeError(nd_msgs[0])
    if mat2._data.ndim != nd:
        raise RuntimeError(nd_msgs[1])
    sa, sb = input._data.shape, mat2._data.shape
    if not fits(sa, sb):
        raise RuntimeError(mismatch.format(sa, sb))
    _same_dtype(input, mat2)
    return write_out(_apply_matmul(input, mat2), out, name)


def mm(input, mat2, *, out=None):
    """(n, m) @ (m, p) -> (n, p); both operands must be 2-D."""
    if _am._tls.lowp is not None:
        input, mat2 = _am.cast_lowp(input), _am.cast_lowp(mat2)
    _check(input, "mm.input")
    _check(mat2, "mm.mat2")
    return _product("mm", input, mat2, out, 2, ("self must be a matrix", "mat2 must be a matrix"),
                    lambda sa, sb: sa[1] == sb[0],
                    "mat1 and mat2 shapes cannot be multiplied ({0[0]}x{0[1]} and {1[0]}x{1[1]})")


def bmm(input, mat2, *, out=None):
    """(b, n, m) @ (b, m, p) -> (b, n, p); no broadcasting."""
    if _am._tls.lowp is not None:
        input, mat2 = _am.cast_lowp(input), _am.cast_lowp(mat2)
    _check(input, "bmm.input")
    _check(mat2, "bmm.mat2")
    return _product("bmm", input, mat2, out, 3,
                    ("batch1 must be a 3D tensor", "batch2 must be a 3D tensor"),
                    lambda sa, sb: sb[0] == sa[0] and sb[1] == sa[2],
                    "Expected size for first two dimensions of batch2 tensor to be: "
                    "[{0[0]}, {0[2]}] but got: [{1[0]}, {1[1]}].")


def mv(input, vec, *, out=None):
    """(n, m) @ (m,) -> (n,)"""
    _check(input, "mv.input")
    _check(vec, "mv.vec")
    if input._data.ndim != 2 or vec._data.ndim != 1:
        raise RuntimeError("vector + matrix @ vector expected, got 1, %d, %d"
                           % (input._data.ndim, vec._data.ndim))
    sa, sv = input._data.shape, vec._data.shape
    if sa[1] != sv[0]:
        raise RuntimeError("size mismatch, got input (%d), mat (%dx%d), vec (%d)"
                           % (sa[0], sa[0], sa[1], sv[0]))
    _same_dtype(input, vec)
    return write_out(_apply_matmul(input, vec), out, "mv")


def dot(input, other, *, out=None):
    """inner product of two 1-D tensors (no complex conjugation)"""
    _check(input, "dot.input")
    _check(other, "dot.tensor")
    da, db = input._data.ndim, other._data.ndim
    if da != 1 or db != 1:
        raise RuntimeError("1D tensors expected, but got %dD and %dD tensors" % (da, db))
    if input._data.dtype != other._data.dtype:
        raise RuntimeError("dot : expected both vectors to have same dtype, but found %s and %s"
                           % (_dt.torch_type_name(input._data.dtype),
                              _dt.torch_type_name(other._data.dtype)))
    n, m = input._data.shape[0], other._data.shape[0]
    if n != m:
        raise RuntimeError("inconsistent tensor size, expected tensor [%d] and src [%d] to have "
                           "the same number of elements, but got %d and %d elements respectively"
                           % (n, m, n, m))
    return write_out(_apply_matmul(input, other), out, "dot")


vdot = dot  # real dtypes only: no conjugation to do


def inner(input, other):
    """sum over the last dimension of both: inner(a, b)[i.., j..] = sum_k a[i.., k] b[j.., k]"""
    _check(input, "inner.input")
    _check(other, "inner.other")
    if input._data.ndim == 0 or other._data.ndim == 0:
        return input * other
    if input._data.shape[-1] != other._data.shape[-1]:
        raise RuntimeError("inner() the last dimension must match on both input tensors but got "
                           "shapes %s and %s" % (list(input.shape), list(other.shape)))
    _same_dtype(input, other)
    if input._data.ndim == 1 and other._data.ndim == 1:
        return dot(input, other)
    ra, rb = input._data.shape[:-1], other._data.shape[:-1]
    a2 = input.reshape(_rows(input._data.shape), input._data.shape[-1])
    b2 = other.reshape(_rows(other._data.shape), other._data.shape[-1])
    return matmul(a2, b2.t()).reshape(*(ra + rb))


class Outer(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        out = _empty(a, (a.shape[0], b.shape[0]), a.dtype)
        _gemm(a[:, None], b[None, :], out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:          # g @ b
            ga = _empty(g, (g.shape[0], 1), g.dtype)
            _gemm(g, b[:, None], ga)
            ga = ga[:, 0]
        if ctx.needs_input_grad[1]:          # g^T @ a
            gb = _empty(g, (g.shape[1], 1), g.dtype)
            _gemm(g.T, a[:, None], gb)
            gb = gb[:, 0]
        return ga, gb


def outer(input, vec2, *, out=None):
    """outer product of two 1-D tensors: (n,) x (m,) -> (n, m)"""
    _check(input, "outer.input")
    _check(vec2, "outer.vec2")
    if input._data.ndim != 1 or vec2._data.ndim != 1:
        raise RuntimeError("outer: expected 1D tensors, but got %dD and %dD tensors"
                           % (input._data.ndim, vec2._data.ndim))
    _same_dtype(input, vec2)
    if not _dt.is_floating(input._data.dtype):
        return write_out(_wrap(np.outer(input._data, vec2._data)), out, "outer")
    return write_out(Outer.apply(input, vec2), out, "outer")


ger = outer


class AddMM(Function):
    """beta * input + alpha * (m1 @ m2) for 2-D (addmm) or 3-D batched (baddbmm) m1, m2; input
    broadcasts to the result. beta == 0 ignores input (NaN in it does not propagate)."""

    @staticmethod
    def forward(ctx, inp, m1, m2, beta, alpha):
        ctx.save_for_backward(m1, m2)
        ctx.inp_shape = inp.shape
        ctx.beta, ctx.alpha = beta, alpha
        shape = m1.shape[:-1] + (m2.shape[-1],)
        if beta == 0:
            out = _empty(m1, shape, m1.dtype)
        else:
            out = _dv.xp(inp).array(np.broadcast_to(inp, shape), dtype=m1.dtype, order="C")
        _gemm(m1, m2, out, alpha, beta)
        return out

    @staticmethod
    def backward(ctx, g):
        m1, m2 = ctx.saved_tensors
        ga = g1 = g2 = None
        alpha, beta = ctx.alpha, ctx.beta
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(g * beta if beta != 1 else g, ctx.inp_shape)
        if ctx.needs_input_grad[1]:
            g1 = _empty(g, m1.shape, g.dtype)
            _gemm(g, _swap(m2), g1, alpha)
        if ctx.needs_input_grad[2]:
            g2 = _empty(g, m2.shape, g.dtype)
            _gemm(_swap(m1), g, g2, alpha)
        return ga, g1, g2, None, None


# F.linear (its torch-named surface and checks are in cengine.nn.functional)
class _Linear(Function):
    """y = x @ W^T + b with the bias added in the GEMM's pass over each output tile."""

    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        ctx.has_b = b is not None
        ctx.bshape = None if b is None else b.shape
        in_f = W.shape[1]
        M = int(np.prod(x.shape[:-1], dtype=np.int64))
        ctx.M = M
        x2 = x.reshape(M, in_f)
        out = _empty(x, (M, W.shape[0]), x.dtype)
        if b is not None and b.shape != (W.shape[0],):   # () or (1,): one value for every column
            b = np.broadcast_to(b.reshape(()), (W.shape[0],))
        _gemm(x2, W.T, out, 1.0, 0.0, b)
        return out.reshape(x.shape[:-1] + (W.shape[0],))

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        in_f, out_f, M = W.shape[1], W.shape[0], ctx.M
        g2 = g.reshape(M, out_f)
        gx = gW = gb = None
        if ctx.needs_input_grad[0]:
            gx = _empty(x, (M, in_f), x.dtype)
            _gemm(g2, W, gx)
            gx = _reshape(gx, x.shape)
        if ctx.needs_input_grad[1]:
            gW = _empty(W, W.shape, W.dtype)
            if _half.is_half(g2.dtype) and in_f < out_f:
                # the bf16 GEMM wants a row-major A: transpose the narrower of g and x
                # (gW^T = x^T @ g) rather than always g
                _gemm(x.reshape(M, in_f).T, g2, gW.T)
            else:
                _gemm(g2.T, x.reshape(M, in_f), gW)
        if ctx.has_b and ctx.needs_input_grad[2]:
            gb = unbroadcast(_half.colsum(g2), ctx.bshape)
        return gx, gW, gb


def _addmm_common(name, input, m1, m2, beta, alpha, nd, out):
    if _am._tls.lowp is not None:
        input, m1, m2 = _am.cast_lowp(input), _am.cast_lowp(m1), _am.cast_lowp(m2)
    _check(input, name + ".input")
    _check(m1, name + (".mat1" if nd == 2 else ".batch1"))
    _check(m2, name + (".mat2" if nd == 2 else ".batch2"))
    s1, s2 = m1._data.shape, m2._data.shape
    if nd == 2:
        if m1._data.ndim != 2:
            raise RuntimeError("mat1 must be a matrix, got %d-D tensor" % m1._data.ndim)
        if m2._data.ndim != 2:
            raise RuntimeError("mat2 must be a matrix, got %d-D tensor" % m2._data.ndim)
        if s1[1] != s2[0]:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (%dx%d and %dx%d)"
                               % (s1[0], s1[1], s2[0], s2[1]))
        shape = (s1[0], s2[1])
    else:
        if m1._data.ndim != 3:
            raise RuntimeError("batch1 must be a 3D tensor")
        if m2._data.ndim != 3:
            raise RuntimeError("batch2 must be a 3D tensor")
        if s2[0] != s1[0] or s2[1] != s1[2]:
            raise RuntimeError("Expected size for first two dimensions of batch2 tensor to be: "
                               "[%d, %d] but got: [%d, %d]." % (s1[0], s1[2], s2[0], s2[1]))
        shape = (s1[0], s1[1], s2[2])
    _same_dtype(m1, m2)
    try:
        if np.broadcast_shapes(input._data.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise RuntimeError("The expanded size of the tensor (%d) must match the existing size "
                           "(%d) at non-singleton dimension. Target sizes: %s. Tensor sizes: %s"
                           % (shape[-1], input._data.shape[-1] if input._data.ndim else 1,
                              list(shape), list(input._data.shape))) from None
    if input._data.dtype != m1._data.dtype:
        raise RuntimeError("self and mat2 must have the same dtype, but got %s and %s"
                           % (_dt.torch_type_name(input._data.dtype),
                              _dt.torch_type_name(m1._data.dtype)))
    beta, alpha = _scalar(beta), _scalar(alpha)
    dt = m1._data.dtype
    if dt != _F32 and dt != _F64 and not _dt.is_half(dt):
        prod = np.matmul(m1._data, m2._data)
        res = (alpha * prod if alpha != 1 else prod)
        if beta != 0:
            res = res + beta * input._data
        return write_out(_wrap(_dv.asarray(res).astype(dt, copy=False)), out, name)
    return write_out(AddMM.apply(input, m1, m2, beta, alpha), out, name)


def _scalar(x):
    if isinstance(x, Tensor):
        x = x.item()
    return builtins.float(x) if not isinstance(x, builtins.bool) else builtins.float(x)


def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    """beta * input + alpha * (mat1 @ mat2); input broadcasts to (n, p)"""
    return _addmm_common("addmm", input, mat1, mat2, beta, alpha, 2, out)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    """beta * input + alpha * bmm(batch1, batch2); input broadcasts to (b, n, p)"""
    return _addmm_common("baddbmm", input, batch1, batch2, beta, alpha, 3, out)


def addmv(input, mat, vec, *, beta=1, alpha=1, out=None):
    """beta * input + alpha * (mat @ vec)"""
    _check(vec, "addmv.vec")
    if vec._data.ndim != 1:
        raise RuntimeError("vector + matrix @ vector expected, got %d, %d, %d"
                           % (input._data.ndim, mat._data.ndim, vec._data.ndim))
    if mat._data.ndim == 2 and mat._data.shape[1] != vec._data.shape[0]:
        raise RuntimeError("size mismatch, got input (%d), mat (%dx%d), vec (%d)"
                           % (mat._data.shape[0], mat._data.shape[0], mat._data.shape[1],
                              vec._data.shape[0]))
    inp = input.unsqueeze(-1) if input._data.ndim == 1 else input
    res = _addmm_common("addmv", inp, mat, vec.unsqueeze(1), beta, alpha, 2, None)
    return write_out(res.squeeze(1), out, "addmv")


# ------------------------------------------------------------------ einsum
def _einsum_parse(equation, nops):
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->")
    else:
        lhs, rhs = eq, None
    terms = lhs.split(",")
    if len(terms) != nops:
        raise RuntimeError("einsum(): more operands were provided than specified in the equation"
                           if nops > len(terms) else
                           "einsum(): fewer operands were provided than specified in the equation")
    if "." in eq:
        raise RuntimeError("einsum(): ellipsis ('...') is not supported by cengine's einsum")
    for t in terms + ([rhs] if rhs is not None else []):
        for c in t:
            if not c.isalpha():
                raise RuntimeError("einsum(): invalid subscript given at index %d in the equation "
                                   "string, subscripts must be in [a-zA-Z]" % eq.index(c))
    if rhs is None:
        counts = {}
        for t in terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        rhs = "".join(sorted(c for c, n in counts.items() if n == 1))
    return terms, rhs


def einsum(equation, *operands):
    """Einstein summation for one or two operands (torch.einsum subset, no ellipsis). Two-operand
    contractions run as one batched GEMM: operand axes are permuted (views) into
    (batch, free, contracted) groups; single-operand equations (traces, transposes, sums) use
    differentiable permute/diagonal/sum."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    for i, op in enumerate(operands):
        if not isinstance(op, Tensor):
            raise TypeError("einsum(): argument 'operands' must be tuple of Tensors, but found "
                            "element of type %s at pos %d" % (type(op).__name__, i))
    if _am._tls.lowp is not None:
        operands = tuple(_am.cast_lowp(op) for op in operands)
    terms, rhs = _einsum_parse(equation, len(operands))
    for t, op in zip(terms, operands):
        if len(t) != op._data.ndim:
            raise RuntimeError("einsum(): the number of subscripts in the equation (%d) does not "
                               "match the number of dimensions (%d) for operand %d and no "
                               "ellipsis was given" % (len(t), op._data.ndim, terms.index(t)))
    if len(set(rhs)) != len(rhs):
        raise RuntimeError("einsum(): output subscript %s appears more than once in the output"
                           % next(c for c in rhs if rhs.count(c) > 1))
    sizes = {}
    for t, op in zip(terms, operands):
        for c, s in zip(t, op._data.shape):
            if c in sizes and sizes[c] != s and s != 1 and sizes[c] != 1:
                raise RuntimeError("einsum(): operands do not broadcast with remapped shapes "
                                   "(original->remapped): subscript %s has size %d and %d"
                                   % (c, sizes[c], s))
            sizes[c] = max(sizes.get(c, s), s)
    for c in rhs:
        if c not in sizes:
            raise RuntimeError("einsum(): output subscript %s does not appear in the equation for "
                               "any input operand" % c)
    ops = [_einsum_diag(t, op) for t, op in zip(terms, operands)]
    terms = [o[0] for o in ops]
    ops = [o[1] for o in ops]
    if len(ops) == 1:
        return _einsum_single(terms[0], ops[0], rhs)
    if len(ops) > 2:
        # left to right, keeping every index still needed later or in the output
        t0, o0 = terms[0], ops[0]
        for k in range(1, len(ops)):
            rest = "".join(terms[k + 1:]) + rhs
            keep = "".join(c for c in dict.fromkeys(t0 + terms[k]) if c in rest)
            o0 = _einsum_pair(t0, o0, terms[k], ops[k], keep)
            t0 = keep
        return _einsum_single(t0, o0, rhs)
    return _einsum_pair(terms[0], ops[0], terms[1], ops[1], rhs)


def _einsum_diag(t, op):
    """repeated subscripts in one operand (ii->i) take the diagonal"""
    while len(set(t)) != len(t):
        c = next(c for c in t if t.count(c) > 1)
        i = t.index(c)
        j = t.index(c, i + 1)
        op = op.diagonal(0, i, j)       # the diagonal goes last
        t = t[:i] + t[i + 1:j] + t[j + 1:] + c
    return t, op


def _einsum_single(t, op, rhs):
    drop = tuple(i for i, c in enumerate(t) if c not in rhs)
    if drop:
        op = op.sum(dim=drop)
        t = "".join(c for c in t if c in rhs)
    if t != rhs:
        op = op.permute(*[t.index(c) for c in rhs])
    return op


def _einsum_pair(ta, a, tb, b, rhs):
    # indices summed away that appear in only one operand are summed first
    only_a = [c for c in ta if c not in tb and c not in rhs]
    only_b = [c for c in tb if c not in ta and c not in rhs]
    if only_a:
        a = a.sum(dim=tuple(ta.index(c) for c in only_a))
        ta = "".join(c for c in ta if c not in only_a)
    if only_b:
        b = b.sum(dim=tuple(tb.index(c) for c in only_b))
        tb = "".join(c for c in tb if c not in only_b)
    batch = [c for c in ta if c in tb and c in rhs]
    contr = [c for c in ta if c in tb and c not in rhs]
    free_a = [c for c in ta if c not in tb]
    free_b = [c for c in tb if c not in ta]
    sa = dict(zip(ta, a._data.shape))
    sb = dict(zip(tb, b._data.shape))

    def prod(cs, s):
        p = 1
        for c in cs:
            p *= s[c]
        return p

    # broadcast size-1 batch dims between the operands
    bsz = [builtins.max(sa[c], sb[c]) for c in batch]
    a = a.permute(*[ta.index(c) for c in batch + free_a + contr])
    b = b.permute(*[tb.index(c) for c in batch + contr + free_b])
    Ma, Kc, Nb = prod(free_a, sa), prod(contr, sa), prod(free_b, sb)
    if prod(contr, sb) != Kc:
        raise RuntimeError("einsum(): operands do not broadcast with remapped shapes: contracted "
                           "dimensions differ")
    a = a.reshape(*([sa[c] for c in batch] + [Ma, Kc]))
    b = b.reshape(*([sb[c] for c in batch] + [Kc, Nb]))
    if not batch:
        a = a.reshape(Ma, Kc)
        b = b.reshape(Kc, Nb)
    res = matmul(a, b)
    res = res.reshape(*(bsz + [sa[c] for c in free_a] + [sb[c] for c in free_b]))
    cur = "".join(batch + free_a + free_b)
    if cur != rhs:
        res = res.permute(*[cur.index(c) for c in rhs])
    return res
