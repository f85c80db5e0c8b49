"""torch.finfo / torch.iinfo: the numerical limits of cengine's dtypes."""
import numpy as np

from . import dtypes as _dt

__all__ = ["finfo", "iinfo"]

# bfloat16: float32's exponent range with an 8-bit significand
_BF16 = dict(bits=16, eps=0.0078125, max=3.3895313892515355e+38, min=-3.3895313892515355e+38,
             tiny=1.1754943508222875e-38, resolution=0.01)


def _fmt(v):
    return "%g" % v


class finfo:
    """Limits of a floating dtype: bits, eps, max, min, tiny (= smallest_normal), resolution,
    dtype (its name). finfo() describes the default dtype."""

    def __init__(self, type=None):
        d = _dt.get_default_dtype() if type is None else type
        if not isinstance(d, _dt.dtype):
            raise TypeError("finfo(): argument 'type' must be torch.dtype, not %s"
                            % builtins_type(d).__name__)
        if not d.is_floating_point:
            raise TypeError("torch.finfo() requires a floating point input type. Use torch.iinfo "
                            "to handle 'torch.finfo'")
        if d.name == "bfloat16":
            v = _BF16
        else:
            fi = np.finfo(d.np)
            v = dict(bits=fi.bits, eps=float(fi.eps), max=float(fi.max), min=float(fi.min),
                     tiny=float(fi.tiny), resolution=10.0 ** -fi.precision)
        self.bits = v["bits"]
        self.eps = v["eps"]
        self.max = v["max"]
        self.min = v["min"]
        self.tiny = self.smallest_normal = v["tiny"]
        self.resolution = v["resolution"]
        self.dtype = d.name

    def __repr__(self):
        return ("finfo(resolution=%s, min=%s, max=%s, eps=%s, smallest_normal=%s, tiny=%s, "
                "dtype=%s)" % (_fmt(self.resolution), _fmt(self.min), _fmt(self.max),
                               _fmt(self.eps), _fmt(self.smallest_normal), _fmt(self.tiny),
                               self.dtype))


class iinfo:
    """Limits of an integer (or bool) dtype: bits, max, min, dtype (its name)."""

    def __init__(self, type):
        if not isinstance(type, _dt.dtype):
            raise TypeError("iinfo(): argument 'type' must be torch.dtype, not %s"
                            % builtins_type(type).__name__)
        if type.is_floating_point:
            raise TypeError("torch.iinfo() requires an integer input type. Use torch.finfo to "
                            "handle 'torch.iinfo'")
        if type.name == "bool":
            self.bits, self.min, self.max = 8, 0, 1
        else:
            ii = np.iinfo(type.np)
            self.bits, self.min, self.max = ii.bits, int(ii.min), int(ii.max)
        self.dtype = type.name

    def __repr__(self):
        return "iinfo(min=%s, max=%s, dtype=%s)" % (_fmt(self.min), _fmt(self.max), self.dtype)


builtins_type = type
