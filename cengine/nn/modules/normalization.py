"""torch.nn.modules.normalization"""
from ..normalization import LayerNorm, RMSNorm  # noqa: F401

__all__ = ["LayerNorm", "RMSNorm"]
