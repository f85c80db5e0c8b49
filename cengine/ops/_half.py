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
    dx = x.dtype
    if type(x) is not np.ndarray and _dv.is_cuda_array(x):
        return _gemm_xp(x, y, out, alpha, beta, bias)
    if dx == _F32 or dx == _F64:
        return _C.gemm(x, y, out, alpha, beta, bias)
    if y.dtype != dx:
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: %s != %s"
                           % (dx.name, y.dtype.name))
    od = out.dtype
    if od == _F32:
        acc = out
    elif beta == 0:
        acc = _scratch(out.shape)
    else:
        acc = _dt.astype(out, _F32)
    b32 = None
    if bias is not None:
        b32 = bias if bias.dtype == _F32 else _dt.astype(bias, _F32)
    if dx == _BF16:
        # transposed (column-major) operands go to the kernel as they are: it packs them at
        # the row-major speed (in-register transposes), no extra copy pass
        batch = out.shape[:-2]
        if len(batch) <= 1:
            _C.gemm_bf16(x, y, acc, alpha, beta, b32)
        else:
            acc3 = np.reshape(acc, (-1,) + acc.shape[-2:])     # a copy if acc's dims don't merge
            _C.gemm_bf16(_to3(x, batch), _to3(y, batch), acc3, alpha, beta, b32)
            if not np.shares_memory(acc3, acc):
                acc[...] = acc3.reshape(acc.shape)
    else:
        _C.gemm(_dt.astype(x, _F32), _dt.astype(y, _F32), acc, alpha, beta, b32)
    if acc is not out:
        if out.flags.c_contiguous and out.flags.aligned:
            (_C.cast_f32_to_bf16 if od == _BF16 else _C.cast_f32_to_f16)(acc, out=out)
        else:
            out[...] = _dt.astype(acc, od)
    return out


def colsum(g):
    """g (M, N) summed over the rows, accumulated in float32 for half g (result in g's dtype)"""
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
