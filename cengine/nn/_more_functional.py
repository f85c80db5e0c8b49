"""Smaller torch.nn.functional ops that real models use, composed from cengine's differentiable
ops (so their gradients come from autograd): selu, celu, hardswish, hardsigmoid, softsign,
tanhshrink, softshrink, hardshrink, threshold, prelu, cosine_similarity, pairwise_distance.
Re-exported by cengine.nn.functional."""
from .. import dtypes as _dt
from ..tensor import Tensor

__all__ = ["selu", "celu", "hardswish", "hardsigmoid", "softsign", "tanhshrink", "softshrink",
           "hardshrink", "threshold", "prelu", "cosine_similarity", "pairwise_distance"]

# SELU's constants (Klambauer et al. 2017), as torch uses them
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _float_only(name, input):
    if not isinstance(input, Tensor):
        raise TypeError("%s(): argument 'input' (position 1) must be Tensor, not %s"
                        % (name, type(input).__name__))
    if not _dt.is_floating(input._data.dtype):
        raise NotImplementedError("\"%s\" not implemented for '%s'"
                                  % (name, input.dtype.name.capitalize()))


def _inplace(input, inplace, fn):
    if not inplace:
        return fn(input)
    from ..ops.activation import inplace_composite
    return inplace_composite(input, fn)


def _elu_part(x, alpha):
    from ..ops.elementwise import where, expm1
    return where(x > 0, x, expm1(x.clamp(max=0) / alpha) * alpha)


def celu(input, alpha=1.0, inplace=False):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))"""
    _float_only("celu", input)
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _inplace(input, inplace, lambda x: _elu_part(x, alpha))


def selu(input, inplace=False):
    """scale * (max(0, x) + min(0, alpha * (exp(x) - 1))), torch's alpha and scale."""
    _float_only("selu", input)
    return _inplace(input, inplace, _selu)


def _selu(x):
    from ..ops.elementwise import where, expm1
    return where(x > 0, x, expm1(x.clamp(max=0)) * _SELU_ALPHA) * _SELU_SCALE


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6 (gradient 1/6 strictly inside (-3, 3), as torch)."""
    _float_only("hardsigmoid", input)

    def f(x):
        from ..ops.elementwise import where
        inside = (x > -3) & (x < 3)
        return where(inside, x / 6 + 0.5, (x >= 3).to(x.dtype))
    return _inplace(input, inplace, f)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6 (torch's gradient: 0 below -3, 1 above 3, x/3 + 1/2 between)."""
    _float_only("hardswish", input)

    def f(x):
        from ..ops.elementwise import where
        inside = (x > -3) & (x < 3)
        return where(inside, x * (x + 3) / 6, where(x >= 3, x, x * 0))
    return _inplace(input, inplace, f)


def softsign(input):
    """x / (1 + |x|)"""
    _float_only("softsign", input)
    return input / (input.abs() + 1)


def tanhshrink(input):
    """x - tanh(x)"""
    _float_only("tanhshrink", input)
    return input - input.tanh()


def softshrink(input, lambd=0.5):
    """x - lambd above lambd, x + lambd below -lambd, 0 between."""
    _float_only("softshrink", input)
    if lambd < 0:
        raise RuntimeError("lambda must be greater or equal to 0, but found to be %s." % lambd)
    from ..ops.elementwise import where
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, input * 0))


def hardshrink(input, lambd=0.5):
    """x where |x| > lambd, else 0."""
    _float_only("hardshrink", input)
    from ..ops.elementwise import where
    return where((input > lambd) | (input < -lambd), input, input * 0)


def threshold(input, threshold, value, inplace=False):
    """x where x > threshold, else value."""
    if not isinstance(input, Tensor):
        raise TypeError("threshold(): argument 'input' (position 1) must be Tensor, not %s"
                        % type(input).__name__)

    def f(x):
        from ..ops.elementwise import where
        return where(x > threshold, x, x * 0 + value)
    return _inplace(input, inplace, f)


def prelu(input, weight):
    """max(0, x) + weight * min(0, x); weight has 1 or C (= input.size(1)) elements."""
    _float_only("prelu", input)
    if not isinstance(weight, Tensor):
        raise TypeError("prelu(): argument 'weight' (position 2) must be Tensor, not %s"
                        % type(weight).__name__)
    n = weight.numel()
    if weight.dim() > 1:
        raise RuntimeError("prelu: Expected `weight` to be a scalar or 1D tensor, but got: "
                           "ndim = %d" % weight.dim())
    w = weight.reshape(-1)
    if n != 1:
        if input.dim() < 2 or input.size(1) != n:
            raise RuntimeError("Mismatch of parameter numbers and input channel size. Found "
                               "parameter numbers = %d and channel size = %d."
                               % (n, input.size(1) if input.dim() >= 2 else 1))
        w = w.reshape((1, n) + (1,) * (input.dim() - 2))
    else:
        w = w.reshape(())
    from ..ops.elementwise import where
    return where(input > 0, input, input * w)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 * x2) / (max(||x1||, eps) * max(||x2||, eps)) along dim (broadcasting)."""
    from ..ops.reduce import sum as _sum
    n1 = (x1 * x1).sum(dim, keepdim=True).sqrt().clamp(min=eps)
    n2 = (x2 * x2).sum(dim, keepdim=True).sqrt().clamp(min=eps)
    return _sum((x1 / n1) * (x2 / n2), dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim."""
    from ..ops.reduce import norm
    d = x1 - x2 + eps
    if d.dim() == 0:
        d = d.reshape(1)
    return norm(d, p, -1, keepdim)

