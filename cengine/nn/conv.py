"""Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d: torch's layers with torch's weight layout,
(out_channels, in_channels/groups, *kernel_size) (transposed: (in_channels,
out_channels/groups, *kernel_size)), initialised like torch: kaiming_uniform_(a=sqrt(5)) and
bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
import numbers

from .. import dtypes as _dt
from ..ops.creation import empty
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(v, n):
    if isinstance(v, numbers.Integral):
        return (int(v),) * n
    v = tuple(int(i) for i in v)
    return v * n if len(v) == 1 else v


def _check_groups(in_channels, out_channels, groups):
    if not isinstance(groups, numbers.Integral) or groups <= 0:
        raise ValueError("groups must be a positive integer")
    if in_channels % groups != 0:
        raise ValueError("in_channels must be divisible by groups")
    if out_channels % groups != 0:
        raise ValueError("out_channels must be divisible by groups")


def _init_params(m, weight_shape, out_channels, bias, dtype, device):
    """m.weight of weight_shape and m.bias (out_channels) or None, initialised like torch."""
    dtype = _dt.get_default_dtype() if dtype is None else dtype
    m.weight = Parameter(empty(*weight_shape, dtype=dtype, device=device))
    if bias:
        m.bias = Parameter(empty(out_channels, dtype=dtype, device=device))
    else:
        m.register_parameter("bias", None)
    m.reset_parameters()


def _conv_repr(m):
    """torch's extra_repr of convolution and transposed-convolution modules: the options that
    differ from their defaults, in torch's order"""
    nd = m._nd
    s = "%d, %d, kernel_size=%s, stride=%s" % (m.in_channels, m.out_channels, m.kernel_size,
                                               m.stride)
    if m.padding != (0,) * nd:
        s += ", padding=%s" % (m.padding,)
    if m.dilation != (1,) * nd:
        s += ", dilation=%s" % (m.dilation,)
    if getattr(m, "output_padding", (0,) * nd) != (0,) * nd:
        s += ", output_padding=%s" % (m.output_padding,)
    if m.groups != 1:
        s += ", groups=%d" % m.groups
    if m.bias is None:
        s += ", bias=False"
    if getattr(m, "padding_mode", "zeros") != "zeros":
        s += ", padding_mode=%s" % m.padding_mode
    return s


class _ConvNd(Module):
    _nd = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        nd = self._nd
        _check_groups(in_channels, out_channels, groups)
        kernel_size = _ntuple(kernel_size, nd)
        stride = _ntuple(stride, nd)
        dilation = _ntuple(dilation, nd)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError("Invalid padding string %r, should be one of {'same', 'valid'}"
                                 % padding)
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            padding = _ntuple(padding, nd)
        if padding_mode not in _PADDING_MODES:
            raise ValueError("padding_mode must be one of {'circular', 'reflect', 'replicate', "
                             "'zeros'}, but got padding_mode='%s'" % padding_mode)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = False
        self.output_padding = (0,) * nd
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad order (last dim first) for the non-zero padding modes
        rev = []
        for i in reversed(range(nd)):
            if isinstance(padding, str):
                total = 0 if padding == "valid" else dilation[i] * (kernel_size[i] - 1)
                rev += [total // 2, total - total // 2]
            else:
                rev += [padding[i], padding[i]]
        self._reversed_padding_repeated_twice = rev
        _init_params(self, (out_channels, in_channels // groups) + kernel_size, out_channels,
                     bias, dtype, device)

    def reset_parameters(self):
        init._linear_default_(self.weight, self.bias)

    def _conv_forward(self, input, weight, bias):
        conv = F.conv1d if self._nd == 1 else F.conv2d
        if self.padding_mode != "zeros":
            return conv(F.pad(input, self._reversed_padding_repeated_twice,
                              mode=self.padding_mode),
                        weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input):
        return self._conv_forward(input, self.weight, self.bias)

    def extra_repr(self):
        return _conv_repr(self)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) or (C_in, L) inputs."""
    _nd = 1


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) or (C_in, H, W) inputs."""
    _nd = 2


class _ConvTransposeNd(Module):
    _nd = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__()
        nd = self._nd
        if padding_mode != "zeros":
            raise ValueError('Only "zeros" padding mode is supported for %s'
                             % type(self).__name__)
        _check_groups(in_channels, out_channels, groups)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _ntuple(kernel_size, nd)
        self.stride = _ntuple(stride, nd)
        self.padding = _ntuple(padding, nd)
        self.dilation = _ntuple(dilation, nd)
        self.output_padding = _ntuple(output_padding, nd)
        self.transposed = True
        self.groups = groups
        self.padding_mode = padding_mode
        _init_params(self, (in_channels, out_channels // groups) + self.kernel_size,
                     out_channels, bias, dtype, device)

    reset_parameters = _ConvNd.reset_parameters

    def _output_padding(self, input, output_size):
        """output_padding that gives output_size (torch's rule), or the module's own."""
        if output_size is None:
            return self.output_padding
        nd = self._nd
        output_size = list(int(v) for v in output_size)
        if len(output_size) == nd + 2 or len(output_size) == nd + 1:
            output_size = output_size[-nd:]
        if len(output_size) != nd:
            raise ValueError("ConvTranspose%dD: for %dD input, output_size must have %d or %d "
                             "elements (got %d)" % (nd, input.dim(), nd, nd + 2,
                                                    len(output_size)))
        spatial = tuple(input.shape[-nd:])
        lo, hi = [], []
        for i in range(nd):
            m = ((spatial[i] - 1) * self.stride[i] - 2 * self.padding[i]
                 + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            lo.append(m)
            hi.append(m + self.stride[i] - 1)
        for i in range(nd):
            if not lo[i] <= output_size[i] <= hi[i]:
                raise ValueError("requested an output size of %s, but valid sizes range from %s "
                                 "to %s (for an input of %s)"
                                 % (tuple(output_size), lo, hi, "torch.Size(%s)"
                                    % list(spatial)))
        return tuple(output_size[i] - lo[i] for i in range(nd))

    def forward(self, input, output_size=None):
        op = self._output_padding(input, output_size)
        fn = F.conv_transpose1d if self._nd == 1 else F.conv_transpose2d
        return fn(input, self.weight, self.bias, self.stride, self.padding, op, self.groups,
                  self.dilation)

    def extra_repr(self):
        return _conv_repr(self)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution, weight (in_channels, out_channels/groups, K)."""
    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution, weight (in_channels, out_channels/groups, KH, KW)."""
    _nd = 2
