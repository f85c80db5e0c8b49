"""cengine.nn.parallel: torch.nn.parallel's names. DataParallel without GPUs is what torch's is
on a CPU machine: a wrapper that runs its module (parameters and state_dict keys under
`module.`, so checkpoints match torch's). DistributedDataParallel trains over MPI
(cengine.distributed)."""
from ..module import Module
from .distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel"]


class DataParallel(Module):
    """DataParallel(module, device_ids=None, output_device=None, dim=0): with no accelerator
    there is nothing to replicate onto, so forward calls the wrapped module directly."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if device_ids:
            from ...tensor import device as _device
            ids = [d if isinstance(d, int) else _device(d).index for d in device_ids]
            if any(i is not None for i in ids):
                raise AssertionError("cengine not compiled with CUDA enabled: DataParallel "
                                     "cannot use device_ids %r" % (device_ids,))
        self.module = module
        self.device_ids = []
        self.output_device = None
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0,
                  module_kwargs=None):
    if not isinstance(inputs, tuple):
        inputs = (inputs,) if inputs is not None else ()
    return module(*inputs, **(module_kwargs or {}))

