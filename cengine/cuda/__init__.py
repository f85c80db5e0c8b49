"""cengine.cuda: torch.cuda over CuPy. With CuPy and a GPU it sees, is_available() is True and
the calls act on the CUDA devices (cuda tensors store CuPy arrays); without them,
is_available() is False and device_count() 0, the seeding, cache and memory-statistics calls are
accepted and do nothing (they seed nothing else: the CPU generator is untouched, as in torch),
and the calls that need a device (synchronize, set_device, current_device, get_device_name, ...)
raise the AssertionError torch raises when it was built without CUDA, saying what is missing.
Nothing here imports CuPy before a function needs it."""
import types as _types

from ..tensor import device as _device
from .. import _device as _dv

__all__ = ["is_available", "device_count", "is_initialized", "init", "manual_seed",
           "manual_seed_all", "seed", "seed_all", "initial_seed", "is_bf16_supported",
           "is_tf32_supported", "synchronize", "empty_cache", "set_device", "current_device",
           "get_device_name", "get_device_capability", "get_device_properties", "mem_get_info",
           "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
           "reset_peak_memory_stats", "reset_max_memory_allocated", "get_arch_list",
           "get_rng_state", "set_rng_state", "get_rng_state_all", "set_rng_state_all",
           "ipc_collect", "device", "is_built"]

_NO_CUDA = "cengine not compiled with CUDA enabled"
_seed = [None]


def _cp():
    """The cupy module when a GPU can be used, else AssertionError (torch's, with the reason)."""
    why = _dv.cuda_missing_reason()
    if why is not None:
        raise AssertionError("%s: its CUDA path needs CuPy and a GPU: %s" % (_NO_CUDA, why))
    return _dv._CP[0]


def _fail(*args, **kwargs):
    _cp()


def _index(device):
    """A device index from None (current) / int / 'cuda:i' / device."""
    if device is None:
        return int(_cp().cuda.runtime.getDevice())
    if isinstance(device, str):
        device = _device(device)
    if isinstance(device, _device):
        if device.type != "cuda":
            raise ValueError("Expected a cuda device, but got: %s" % device)
        return int(_cp().cuda.runtime.getDevice()) if device.index is None else device.index
    i = int(device)
    n = device_count()
    if not 0 <= i < n:
        _cp()
        raise RuntimeError("CUDA error: invalid device ordinal (device %d requested, %d "
                           "visible)" % (i, n))
    return i


def is_available():
    """True when CuPy is importable and sees at least one GPU; never raises."""
    try:
        return _dv.cuda_missing_reason() is None
    except Exception:
        return False


def is_built():
    return is_available()


def device_count():
    try:
        return _dv.device_count()
    except Exception:
        return 0


def is_initialized():
    return _dv._CP[0] is not None


def init():
    _cp()


def manual_seed(seed):
    """Seed CuPy's generator (what cuda tensors draw from, e.g. dropout masks) when a GPU is
    usable; accepted and ignored otherwise. The CPU generator is untouched, as in torch."""
    seed = int(seed)
    if is_available():
        _dv._CP[0].random.seed(seed & ((1 << 63) - 1))
        _seed[0] = seed


def manual_seed_all(seed):
    manual_seed(seed)


def seed():
    import random
    if is_available():
        manual_seed(random.getrandbits(63))


def seed_all():
    seed()


def initial_seed():
    _cp()
    return _seed[0] if _seed[0] is not None else 0


def is_bf16_supported(including_emulation=True):
    return False      # CuPy has no bfloat16 arrays


def is_tf32_supported():
    return False


def synchronize(device=None):
    """Wait for every kernel queued on the device."""
    cp = _cp()
    with cp.cuda.Device(_index(device)) as d:
        d.synchronize()


def _pool():
    cp = _dv._CP[0]
    f = getattr(cp, "get_default_memory_pool", None) if cp is not None else None
    return None if f is None else f()


def empty_cache():
    p = _pool()
    if p is not None:
        p.free_all_blocks()


def ipc_collect():
    _fail()


def set_device(device):
    d = device
    if isinstance(d, str):
        d = _device(d)
    if isinstance(d, _device) and d.type != "cuda":
        raise ValueError("Expected a cuda device, but got: %s" % d)
    _cp().cuda.Device(_index(d)).use()


def current_device():
    return int(_cp().cuda.runtime.getDevice())


def _props(device):
    return _cp().cuda.runtime.getDeviceProperties(_index(device))


def get_device_name(device=None):
    n = _props(device)["name"]
    return n.decode() if isinstance(n, bytes) else str(n)


def get_device_capability(device=None):
    p = _props(device)
    return (int(p["major"]), int(p["minor"]))


def get_device_properties(device=None):
    p = _props(device)
    n = p["name"]
    return _types.SimpleNamespace(name=n.decode() if isinstance(n, bytes) else str(n),
                                  total_memory=int(p["totalGlobalMem"]), major=int(p["major"]),
                                  minor=int(p["minor"]),
                                  multi_processor_count=int(p.get("multiProcessorCount", 0)))


def mem_get_info(device=None):
    cp = _cp()
    with cp.cuda.Device(_index(device)):
        free, total = cp.cuda.runtime.memGetInfo()
    return (int(free), int(total))


def get_rng_state(device="cuda"):
    _fail()


def set_rng_state(new_state, device="cuda"):
    _fail()


def get_rng_state_all():
    return []


def set_rng_state_all(new_states):
    pass


def memory_allocated(device=None):
    p = _pool()
    return 0 if p is None else int(p.used_bytes())


def max_memory_allocated(device=None):
    return memory_allocated(device)


def memory_reserved(device=None):
    p = _pool()
    return 0 if p is None else int(p.total_bytes())


def max_memory_reserved(device=None):
    return memory_reserved(device)


def reset_peak_memory_stats(device=None):
    pass


def reset_max_memory_allocated(device=None):
    pass


def get_arch_list():
    return []


class device:
    """Context manager selecting a CUDA device: constructing it is fine, entering it with a
    device index needs CuPy and a GPU (AssertionError otherwise, as torch without CUDA)."""

    def __init__(self, device):
        self.idx = device.index if isinstance(device, _device) else device
        self._ctx = None

    def __enter__(self):
        if self.idx is not None and self.idx != -1:
            self._ctx = _cp().cuda.Device(_index(self.idx))
            self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
            self._ctx = None
        return False

from . import amp  # noqa: E402,F401  (cengine.cuda.amp.autocast / GradScaler)
