"""bfloat16 / float16 support shared by the ops: the half-precision GEMM entry point and the
"compute in float32, round once" wrapper for kernels that exist only in float32.

gemm(x, y, out, alpha, beta, bias) has the contract of _C.gemm (up to two batch dimensions,
any strides, broadcasting of missing / size-1 batch dimensions of x and y) for every float
dtype: float32/float64 go to _C.gemm; bfloat16 operands to _C.gemm_bf16 (AMX / AVX512_BF16
tiles, float32 accumulation) and float16 operands to _C.gemm on float32 copies made by the F16C
cast kernel. A half-precision `out` receives the float32 result rounded once (to nearest even).

via_f32(fn, *tensors) runs a float32 op on half tensors: they are cast to float32 (recorded by
autograd), fn runs, and each float32 result is cast back to the inputs' half dtype (unless a
float32/float64 input or a second half dtype makes torch's result wider), so its gradient
arrives in that dtype and flows back through the casts."""

def same_half(*xs):
    """every tensor among xs (None skipped) has one half dtype"""
    d = None
    for x in xs:
        if x is None:
            continue
        xd = getattr(x, "_data", None)
        if xd is None or xd.dtype not in _HALF or (d is not None and xd.dtype != d):
            return False
        d = xd.dtype
    return d is not None


def any_half(*xs):
    return any(getattr(x, "_data", None) is not None and x._data.dtype in _HALF for x in xs)
import threading

import numpy as np

from .. import _device as _dv

from .. import _C
from .. import dtypes as _dt

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_BF16 = _dt.BF16_NP
_HALF = _dt._HALF_NP


def is_half(npd):
    return npd in _HALF


def _to3(a, batch):
    """a (..., r, c) broadcast to batch + (r, c) and merged to one batch dim (2-D stays 2-D)"""
    if a.ndim == 2:
        return a
    if a.shape[:-2] != batch:
        a = np.broadcast_to(a, batch + a.shape[-2:])
    if len(batch) == 1:
        return a
    return np.reshape(a, (-1,) + a.shape[-2:])


def _batched(a, batch):
    """a (..., r, c) for the bf16 kernel with `batch` (<= 2 dims) as C's: 2-D stays 2-D (the
    kernel broadcasts it), missing leading batch dims become size-1 ones (broadcast too)"""
    if a.ndim == 2 or a.ndim == len(batch) + 2:
        return a
    return np.reshape(a, (1,) * (len(batch) + 2 - a.ndim) + a.shape)


class _Scratch(threading.local):
    buf = None


_scr = _Scratch()


def _scratch(shape):
    """a float32 work array of `shape` for the GEMM's sums before they are rounded into a half
    output: one buffer per thread, reused (a fresh one per product costs page faults on every
    call); never handed out of gemm()"""
    n = 1
    for d in shape:
        n *= d
    b = _scr.buf
    if b is None or b.size < n:
        b = _scr.buf = np.empty(max(n, 1 << 16), _F32)
    return b[:n].reshape(shape)


def _gemm_xp(x, y, out, alpha, beta, bias):
    """The GEMM of a CuPy array: out = alpha x @ y + beta out (+ bias) by the array module's
    matmul (cuBLAS), written into out (batch dims broadcast as _C.gemm's)."""
    xp = _dv.xp(x)
    if x.dtype != y.dtype:
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: %s != %s"
                           % (x.dtype.name, y.dtype.name))
    r = xp.matmul(x, y)
    if alpha != 1.0:
        r *= x.dtype.type(alpha)
    if beta != 0.0:
        r += out * out.dtype.type(beta)
    if bias is not None:
        r += bias
    out[...] = r
    return out


def gemm(x, y, out, alpha=1.0, beta=0.0, bias=None):
    dx, dy = x.dtype, y.dtype
    if type(x) is not np.ndarray and _dv.is_cuda_array(x):
        return _gemm_xp(x, y, out, alpha, beta, bias)
    if (dx == _F32 or dx == _F64) and dy == dx:
        return _C.gemm(x, y, out, alpha, beta, bias)
    if dy != dx and not ((dx == _BF16 and dy == _F32) or (dx == _F32 and dy == _BF16)):
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: %s != %s"
                           % (dx.name, dy.name))
    od = out.dtype
    b32 = None
    if bias is not None:
        b32 = bias if bias.dtype == _F32 else _dt.astype(bias, _F32)
    if dx == _BF16 or dy == _BF16:
        # bfloat16 operands, or one bfloat16 and one float32 (an activation rounded while it is
        # packed: no separate cast pass); transposed (column-major) operands go to the kernel
        # as they are: it packs them at the row-major speed (in-register transposes)
        batch = out.shape[:-2]
        if od == _F32 or od == _BF16:
            # float32 or bfloat16 C written by the kernel itself (a bfloat16 C is rounded once
            # in the tile epilogue: no float32 copy of the result, no cast pass); up to two
            # batch dimensions with any strides (head views as they are)
            if len(batch) <= 2:
                _C.gemm_bf16(_batched(x, batch), _batched(y, batch), out, alpha, beta, b32)
                return out
    if od == _F32:
        acc = out
    elif beta == 0:
        acc = _scratch(out.shape)
    else:
        acc = _dt.astype(out, _F32)
    if dx == _BF16 or dy == _BF16:
        batch = out.shape[:-2]
        if len(batch) <= 2:
            _C.gemm_bf16(_batched(x, batch), _batched(y, batch), acc, alpha, beta, b32)
        else:
            acc3 = np.reshape(acc, (-1,) + acc.shape[-2:])     # a copy if acc's dims don't merge
            _C.gemm_bf16(_to3(x, batch), _to3(y, batch), acc3, alpha, beta, b32)
            if not np.shares_memory(acc3, acc):
                acc[...] = acc3.reshape(acc.shape)
    else:
        _C.gemm(_dt.astype(x, _F32) if dx != _F32 else x,
                _dt.astype(y, _F32) if dy != _F32 else y, acc, alpha, beta, b32)
    if acc is not out:
        if out.flags.c_contiguous and out.flags.aligned:
            (_C.cast_f32_to_bf16 if od == _BF16 else _C.cast_f32_to_f16)(acc, out=out)
        else:
            out[...] = _dt.astype(acc, od)
    return out


def colsum(g, f32=False):
    """g (M, N) summed over the rows, accumulated in float32 for half g (result in g's dtype)"""
    if g.dtype == _BF16 and g.ndim == 2:
        # one pass over g, float32 sums row by row (src_c/ewise_half.c), rounded once; f32=True
        # keeps the float32 sums (for a bias cast from a float32 parameter)
        s = _C.colsum_bf16(g)
        return s if f32 else _dt.astype(s, _BF16)
    if g.dtype in _HALF:
        return _dt.astype(_dt.astype(g, _F32).sum(axis=0), g.dtype)
    return g.sum(axis=0)


def via_f32(fn, *tensors, keep=None):
    """fn(*tensors) computed in float32 for half inputs; results cast back (see the module);
    keep: the numpy dtype the float32 results are cast to, whatever the inputs"""
    from ..tensor import Tensor
    from .elementwise import cast
    half = None
    wider = False      # a float32/float64 tensor, or two half dtypes: torch's result is wider
    args = []
    for t in tensors:
        if isinstance(t, Tensor):
            d = t._data.dtype
            if d in _HALF:
                if half is None:
                    half = d
                elif d != half:
                    wider = True
                t = cast(t, _F32)
            elif d == _F32 or d == _F64:
                wider = True
        args.append(t)
    from ..amp.autocast_mode import _tls
    lowp, _tls.lowp = _tls.lowp, None     # the float32 computation is not autocast again
    try:
        res = fn(*args)
    finally:
        _tls.lowp = lowp
    if keep is not None:
        half = np.dtype(keep)
        if half == _F32:
            return res
    elif half is None or wider:
        return res

    def back(r):
        if isinstance(r, Tensor) and r._data.dtype == _F32:
            return cast(r, half)
        return r
    if isinstance(res, tuple):
        return type(res)(back(r) for r in res) if type(res) is tuple else res
    return back(res)


# ---------------------------------------------------------------------------- autocast linear
def _linear_autocast_cls():
    from ..autograd.function import Function

    class _LinearAutocast(Function):
        """y = x @ W^T + b under CPU bfloat16 autocast for float32 leaf parameters W (and b) in
        one graph node: the product reads W's persistent bfloat16 copy (amp.autocast_mode
        lowp_param_array, no cast node), the bias is b rounded to bfloat16 (added in float32
        by the GEMM's epilogue, then the output rounded once), x float32 (rounded while packed)
        or bfloat16; y bfloat16. The values are those of torch's cast + addmm; the gradients of
        W and b are float32 straight from the GEMM's sums and the column sums (what the cast
        nodes of the unfused path hand on), x's in x's dtype."""

        @staticmethod
        def forward(ctx, x, W, b, Wh, bh):
            # W, b: the float32 parameters (the graph's edges); Wh (N, K) bfloat16: W's copy;
            # bh (N,) float32: the values of b's bfloat16 copy, or None
            K, N = W.shape[1], W.shape[0]
            M = x.size // K if K else int(np.prod(x.shape[:-1], dtype=np.int64))
            ctx.M, ctx.has_b = M, b is not None
            ctx.save_for_backward(x, Wh)
            out = np.empty((M, N), _BF16)
            gemm(x.reshape(M, K), Wh.T, out, 1.0, 0.0, bh)
            return out.reshape(x.shape[:-1] + (N,))

        @staticmethod
        def backward(ctx, g):
            x, Wh = ctx.saved_tensors
            N, K = Wh.shape
            M = ctx.M
            g2 = g.reshape(M, N)
            need = ctx.needs_input_grad
            gx = gW = gb = None
            if need[0]:
                gx = np.empty((M, K), x.dtype)
                gemm(g2, Wh, gx)
                gx = gx.reshape(x.shape)
            if need[1]:
                gW = np.empty((N, K), _F32)
                gemm(g2.T, x.reshape(M, K), gW)
            if ctx.has_b and need[2]:
                gb = colsum(g2, True)
                if gb.dtype != _F32:
                    gb = gb.astype(_F32)
            return gx, gW, gb, None, None
    return _LinearAutocast


_LA = []      # (the Function class, Tensor, lowp_param_array), imported on first use


def linear_autocast(x, W, b):
    """F.linear(x, W, b) inside an enabled CPU bfloat16 region as one _LinearAutocast node,
    or None where it does not apply (W or b not a float32 leaf parameter on the CPU, x neither
    float32 nor bfloat16, shapes F.linear must check or broadcast itself): the caller then
    takes the cast_lowp path"""
    if not _LA:
        from ..tensor import Tensor
        from ..amp.autocast_mode import lowp_param_array
        _LA.extend((_linear_autocast_cls(), Tensor, lowp_param_array))
    fn, Tensor, lowp_param_array = _LA
    if not isinstance(x, Tensor):
        return None
    xa = x._data
    if type(xa) is not np.ndarray or (xa.dtype != _F32 and xa.dtype != _BF16) or xa.ndim == 0:
        return None
    if not isinstance(W, Tensor) or W._data.ndim != 2 or W._data.shape[1] != xa.shape[-1]:
        return None
    bh = None
    if b is not None:
        if not isinstance(b, Tensor) or b._data.shape != (W._data.shape[0],):
            return None
        bh16 = lowp_param_array(b)
        if bh16 is None:
            return None
    Wh = lowp_param_array(W)
    if Wh is None:
        return None
    if b is not None:
        bh = _C.cast_bf16_to_f32(bh16)
    return fn.apply(x, W, b, Wh, bh)
