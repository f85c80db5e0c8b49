"""torch.nn.modules.batchnorm"""
from ..normalization import BatchNorm1d  # noqa: F401

__all__ = ["BatchNorm1d"]
