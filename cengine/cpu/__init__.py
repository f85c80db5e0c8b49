"""cengine.cpu: torch.cpu's names (the CPU is always there): is_available, device_count,
current_device, synchronize, and cengine.cpu.amp.autocast."""
from . import amp  # noqa: F401

__all__ = ["is_available", "device_count", "current_device", "synchronize", "amp"]


def is_available():
    return True


def device_count():
    return 1


def current_device():
    return "cpu"


def synchronize(device=None):
    """CPU work is synchronous: nothing to wait for."""
