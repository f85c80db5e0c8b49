"""Special functions with autograd (torch.erf/erfc/erfinv/logit, torch.special.*), computed in
numpy: scipy.special's vectorised erf family when scipy is installed, otherwise python's
math.erf/erfc element by element (exact, slower) and Newton steps for erfinv."""
import math

import numpy as np

from .. import dtypes as _dt
from ..autograd.function import Function
from ..tensor import Tensor
from .elementwise import _out, cast
from .._fpe import quiet_enter as _quiet_enter, quiet_exit as _quiet_exit

__all__ = ["erf", "erfc", "erfinv", "logit"]

try:
    from scipy import special as _sp
except ImportError:  # pragma: no cover - scipy is a test dependency
    _sp = None

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf_np(x):
    if _sp is not None:
        return _sp.erf(x).astype(x.dtype, copy=False)
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x.copy()


def _erfc_np(x):
    if _sp is not None:
        return _sp.erfc(x).astype(x.dtype, copy=False)
    return np.vectorize(math.erfc, otypes=[x.dtype])(x) if x.size else x.copy()


def _erfinv_np(y):
    if _sp is not None:
        return _sp.erfinv(y).astype(y.dtype, copy=False)
    y64 = y.astype(np.float64)
    # start from a log-based approximation, then Newton on erf(x) - y (quadratic convergence)
    a = 0.147
    ln = np.log1p(-y64 * y64)
    t = 2.0 / (np.pi * a) + ln / 2.0
    x = np.sign(y64) * np.sqrt(np.sqrt(t * t - ln / a) - t)
    erf = np.vectorize(math.erf, otypes=[np.float64])
    inner = np.abs(y64) < 1
    for _ in range(4):
        if not inner.any():
            break
        xi = x[inner]
        x[inner] = xi - (erf(xi) - y64[inner]) / (_TWO_OVER_SQRT_PI * np.exp(-xi * xi))
    x[y64 == 1] = np.inf
    x[y64 == -1] = -np.inf
    x[np.abs(y64) > 1] = np.nan
    return x.astype(y.dtype)


class Erf(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _erf_np(x)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * (_TWO_OVER_SQRT_PI * np.exp(-x * x)).astype(x.dtype, copy=False)


class Erfc(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _erfc_np(x)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * (-_TWO_OVER_SQRT_PI * np.exp(-x * x)).astype(x.dtype, copy=False)


class Erfinv(Function):
    @staticmethod
    def forward(ctx, y):
        tok = _quiet_enter()
        try:
            x = _erfinv_np(y)
        finally:
            _quiet_exit(tok)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        tok = _quiet_enter()
        try:
            d = (np.exp(x * x) / _TWO_OVER_SQRT_PI).astype(x.dtype, copy=False)
        finally:
            _quiet_exit(tok)
        return g * d


class Logit(Function):
    @staticmethod
    def forward(ctx, x, eps):
        z = x if eps is None else np.clip(x, eps, 1 - eps)
        ctx.save_for_backward(x)
        ctx.eps = eps
        tok = _quiet_enter()
        try:
            return np.log(z / (1 - z)).astype(x.dtype, copy=False)
        finally:
            _quiet_exit(tok)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        tok = _quiet_enter()
        try:
            d = 1.0 / (x * (1 - x))
            if ctx.eps is not None:   # torch: zero gradient where the input was clamped
                d = np.where((x < ctx.eps) | (x > 1 - ctx.eps), 0.0, d)
        finally:
            _quiet_exit(tok)
        return g * d.astype(x.dtype, copy=False)


def _float_input(input, name):
    if not isinstance(input, Tensor):
        raise TypeError("%s(): argument 'input' (position 1) must be Tensor, not %s"
                        % (name, type(input).__name__))
    if not _dt.is_floating(input._data.dtype):
        input = cast(input, _dt.get_default_dtype().np)
    return input


def _apply(fn, input):
    """fn on a float tensor; bfloat16/float16 are computed in float32 and rounded back."""
    if input._data.dtype in _dt._HALF_NP:
        from ._half import via_f32
        return via_f32(fn, input)
    return fn(input)


def erf(input, *, out=None):
    """The error function 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise."""
    return _out(_apply(Erf.apply, _float_input(input, "erf")), out)


def erfc(input, *, out=None):
    """1 - erf(x), accurate for large x."""
    return _out(_apply(Erfc.apply, _float_input(input, "erfc")), out)


def erfinv(input, *, out=None):
    """The inverse of erf on (-1, 1); +-inf at +-1, nan outside."""
    return _out(_apply(Erfinv.apply, _float_input(input, "erfinv")), out)


def logit(input, eps=None, *, out=None):
    """log(p / (1 - p)); with eps the input is first clamped to [eps, 1 - eps]."""
    e = None if eps is None else float(eps)
    return _out(_apply(lambda t: Logit.apply(t, e), _float_input(input, "logit")), out)
