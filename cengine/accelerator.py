"""cengine.accelerator: torch.accelerator. The one accelerator cengine knows is CUDA through
CuPy (cengine.cuda): with CuPy and a GPU it sees, is_available() is True and the calls act on
the current cuda device; otherwise nothing is available (the CPU is not an accelerator) and the
calls that need one raise RuntimeError."""

__all__ = ["is_available", "current_accelerator", "device_count", "synchronize",
           "current_device_index", "set_device_index", "current_device_idx", "set_device_idx"]

_NONE = "Cannot access accelerator device when none is available."


def _cuda():
    from . import cuda
    return cuda if cuda.is_available() else None


def is_available():
    return _cuda() is not None


def current_accelerator(check_available=False):
    """device('cuda') when a GPU is usable, else None."""
    if _cuda() is None:
        return None
    from .tensor import device
    return device("cuda")


def device_count():
    c = _cuda()
    return 0 if c is None else c.device_count()


def synchronize(device=None):
    c = _cuda()
    if c is None:
        raise RuntimeError(_NONE)
    c.synchronize(device)


def current_device_index():
    c = _cuda()
    if c is None:
        raise RuntimeError(_NONE)
    return c.current_device()


def set_device_index(device):
    c = _cuda()
    if c is None:
        raise RuntimeError(_NONE)
    c.set_device(device)


current_device_idx = current_device_index
set_device_idx = set_device_index
