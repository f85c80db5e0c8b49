"""cengine.accelerator: torch.accelerator on a machine without an accelerator (the CPU is not
an accelerator): nothing is available, and the calls that need one raise RuntimeError."""

__all__ = ["is_available", "current_accelerator", "device_count", "synchronize",
           "current_device_index", "set_device_index", "current_device_idx", "set_device_idx"]

_NONE = "Cannot access accelerator device when none is available."


def is_available():
    return False


def current_accelerator(check_available=False):
    """The accelerator's device type, or None: there is none."""
    return None


def device_count():
    return 0


def synchronize(device=None):
    raise RuntimeError(_NONE)


def current_device_index():
    raise RuntimeError(_NONE)


def set_device_index(device):
    raise RuntimeError(_NONE)


current_device_idx = current_device_index
set_device_idx = set_device_index
