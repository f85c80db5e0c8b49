"""cengine.amp: mixed-precision training helpers (torch.amp's names)."""
from .grad_scaler import GradScaler, OptState  # noqa: F401

__all__ = ["GradScaler"]
