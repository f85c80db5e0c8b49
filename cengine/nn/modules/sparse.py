"""torch.nn.modules.sparse"""
from ..embedding import Embedding  # noqa: F401

__all__ = ["Embedding"]
