"""torch.nn.parallel: DistributedDataParallel (over MPI) and DataParallel (one CPU device)."""
from ..module import Module
from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel", "DataParallel"]


class DataParallel(Module):
    """torch.nn.DataParallel: on a machine without CUDA devices torch runs the wrapped module as
    it is, and so does cengine (its kernels already use every core)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if device_ids not in (None, []):
            raise ValueError("DataParallel device_ids should be None: cengine has no CUDA devices")
        self.module = module
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)
