"""cengine.cuda: torch.cuda as it behaves on a machine without CUDA, so scripts written for a
GPU run on the CPU unchanged.

is_available() is False and device_count() 0; the seeding, cache and memory-statistics calls
are accepted and do nothing (they seed nothing else: the CPU generator is untouched, as in
torch); the calls that need a device (synchronize, set_device, current_device,
get_device_name, ...) raise the AssertionError torch raises when it was built without CUDA."""
from ..tensor import device as _device

__all__ = ["is_available", "device_count", "is_initialized", "init", "manual_seed",
           "manual_seed_all", "seed", "seed_all", "initial_seed", "is_bf16_supported",
           "is_tf32_supported", "synchronize", "empty_cache", "set_device", "current_device",
           "get_device_name", "get_device_capability", "get_device_properties", "mem_get_info",
           "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
           "reset_peak_memory_stats", "reset_max_memory_allocated", "get_arch_list",
           "get_rng_state", "set_rng_state", "get_rng_state_all", "set_rng_state_all",
           "ipc_collect", "device", "is_built"]

_NO_CUDA = ("cengine not compiled with CUDA enabled: this build runs on the CPU only "
            "(use device='cpu')")


def _fail(*args, **kwargs):
    raise AssertionError(_NO_CUDA)


def is_available():
    return False


def is_built():
    return False


def device_count():
    return 0


def is_initialized():
    return False


def init():
    _fail()


def manual_seed(seed):
    """No CUDA generator to seed; accepted and ignored (the CPU generator is untouched)."""
    int(seed)


def manual_seed_all(seed):
    int(seed)


def seed():
    pass


def seed_all():
    pass


def initial_seed():
    _fail()


def is_bf16_supported(including_emulation=True):
    return False


def is_tf32_supported():
    return False


def synchronize(device=None):
    _fail()


def empty_cache():
    pass


def ipc_collect():
    _fail()


def set_device(device):
    d = device
    if isinstance(d, str):
        d = _device(d)
    if isinstance(d, _device) and d.type != "cuda":
        raise ValueError("Expected a cuda device, but got: %s" % d)
    _fail()


def current_device():
    _fail()


def get_device_name(device=None):
    _fail()


def get_device_capability(device=None):
    _fail()


def get_device_properties(device=None):
    _fail()


def mem_get_info(device=None):
    _fail()


def get_rng_state(device="cuda"):
    _fail()


def set_rng_state(new_state, device="cuda"):
    _fail()


def get_rng_state_all():
    return []


def set_rng_state_all(new_states):
    pass


def memory_allocated(device=None):
    return 0


def max_memory_allocated(device=None):
    return 0


def memory_reserved(device=None):
    return 0


def max_memory_reserved(device=None):
    return 0


def reset_peak_memory_stats(device=None):
    pass


def reset_max_memory_allocated(device=None):
    pass


def get_arch_list():
    return []


class device:
    """Context manager that would select a CUDA device: constructing it is fine, entering it
    with a real device index raises (no CUDA)."""

    def __init__(self, device):
        self.idx = device.index if isinstance(device, _device) else device

    def __enter__(self):
        if self.idx is not None and self.idx != -1:
            _fail()
        return self

    def __exit__(self, *exc):
        return False

from . import amp  # noqa: E402,F401  (cengine.cuda.amp.autocast / GradScaler)
