"""cengine.amp: mixed-precision training helpers (torch.amp's names)."""
from .grad_scaler import GradScaler, OptState  # noqa: F401
from .autocast_mode import (autocast, is_autocast_available, custom_fwd,  # noqa: F401
                            custom_bwd)

__all__ = ["GradScaler", "autocast", "is_autocast_available", "custom_fwd", "custom_bwd"]
