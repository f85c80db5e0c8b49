"""LayerNorm, RMSNorm, BatchNorm1d, BatchNorm2d."""
import numbers

from .. import dtypes as _dt
from ..ops.creation import ones, zeros, tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["LayerNorm", "RMSNorm", "BatchNorm1d", "BatchNorm2d"]


def _shape(normalized_shape):
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(s) for s in normalized_shape)


def _last_dims_init(m, normalized_shape, eps, elementwise_affine, dtype, bias):
    """LayerNorm / RMSNorm attributes: weight (ones) and, unless bias is None (RMSNorm has
    none), bias (zeros; None when bias is False), registered as torch does"""
    m.normalized_shape = _shape(normalized_shape)
    m.eps = eps
    m.elementwise_affine = elementwise_affine
    dtype = _dt.get_default_dtype() if dtype is None else dtype
    if elementwise_affine:
        m.weight = Parameter(ones(*m.normalized_shape, dtype=dtype))
    else:
        m.register_parameter("weight", None)
    if bias is not None:
        if elementwise_affine and bias:
            m.bias = Parameter(zeros(*m.normalized_shape, dtype=dtype))
        else:
            m.register_parameter("bias", None)


def _last_dims_repr(m):
    return "%s, eps=%s, elementwise_affine=%s" % (m.normalized_shape, m.eps, m.elementwise_affine)


class LayerNorm(Module):
    """Normalise over the last dims (normalized_shape); affine weight=1, bias=0 by default."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        _last_dims_init(self, normalized_shape, eps, elementwise_affine, dtype, bias)

    def reset_parameters(self):
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    extra_repr = _last_dims_repr


class RMSNorm(Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last dims; eps=None: the dtype's epsilon."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None,
                 dtype=None):
        super().__init__()
        _last_dims_init(self, normalized_shape, eps, elementwise_affine, dtype, None)

    def reset_parameters(self):
        if self.elementwise_affine:
            init.ones_(self.weight)

    def forward(self, input):
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    extra_repr = _last_dims_repr


class BatchNorm1d(Module):
    """Batch normalisation of (N, C) or (N, C, L) inputs over N (and L) per channel C.

    Training: batch statistics; running_mean/var updated with momentum (None: cumulative
    average). Eval (or track_running_stats=False): running statistics / batch statistics."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dtype = _dt.get_default_dtype() if dtype is None else dtype
        if affine:
            self.weight = Parameter(ones(num_features, dtype=dtype))
            self.bias = Parameter(zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=_dt.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input_dim(self, input):
        if input.dim() not in (2, 3):
            raise ValueError("expected 2D or 3D input (got %dD input)" % input.dim())

    def forward(self, input):
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise RuntimeError("running_mean should contain %d elements not %d"
                               % (input.shape[1], self.num_features))
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked._data[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked._data)
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(input,
                            self.running_mean if not self.training or self.track_running_stats
                            else None,
                            self.running_var if not self.training or self.track_running_stats
                            else None,
                            self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self):
        return ("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s"
                % (self.num_features, self.eps, self.momentum, self.affine,
                   self.track_running_stats))


class BatchNorm2d(BatchNorm1d):
    """Batch normalisation of (N, C, H, W) inputs over N, H and W per channel C (same options
    and running statistics as BatchNorm1d; fused C kernels threaded over channels)."""

    def _check_input_dim(self, input):
        if input.dim() != 4:
            raise ValueError("expected 4D input (got %dD input)" % input.dim())
