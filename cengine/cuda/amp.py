"""cengine.cuda.amp: torch.cuda.amp's autocast and GradScaler. Without the CUDA path both warn
and disable themselves, as torch's do on a machine without a GPU, so a script that does
`from torch.cuda.amp import GradScaler, autocast` runs unchanged (in float32)."""
import warnings

from ..amp.autocast_mode import autocast as _autocast
from ..amp.grad_scaler import GradScaler as _GradScaler
from .. import dtypes as _dt

__all__ = ["autocast", "GradScaler", "custom_fwd", "custom_bwd"]

_warned = [False]


class autocast(_autocast):
    """torch.cuda.amp.autocast(enabled=True, dtype=float16, cache_enabled=True); warns once per
    process and disables itself when CUDA is not available."""

    def __init__(self, enabled=True, dtype=_dt.float16, cache_enabled=True):
        from . import is_available
        if enabled and not is_available():
            if not _warned[0]:
                _warned[0] = True
                warnings.warn("CUDA is not available. Disabling autocast (cengine.cuda.amp."
                              "autocast runs its region in the default precision on the CPU; "
                              "use cengine.autocast('cpu') for bfloat16).", UserWarning,
                              stacklevel=2)
            enabled = False
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


class GradScaler(_GradScaler):
    """torch.cuda.amp.GradScaler: GradScaler("cuda", ...), which without CUDA warns and
    disables itself (its methods pass their inputs through)."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        super().__init__("cuda", init_scale=init_scale, growth_factor=growth_factor,
                         backoff_factor=backoff_factor, growth_interval=growth_interval,
                         enabled=enabled)


def custom_fwd(fwd=None, *, cast_inputs=None):
    from ..amp.autocast_mode import custom_fwd as _cf
    return _cf(fwd, device_type="cuda", cast_inputs=cast_inputs)


def custom_bwd(bwd):
    from ..amp.autocast_mode import custom_bwd as _cb
    return _cb(bwd, device_type="cuda")
