"""Devices and their array modules: numpy arrays are CPU storage, CuPy arrays CUDA storage.

`import cengine` never imports CuPy: it is imported the first time a cuda device is asked for
(cuda_module()), and until then every array is a numpy array, so the checks below cost one
`type(a) is np.ndarray` on the CPU path. Ops reach an array's functions through xp(arr) (numpy
or cupy), so one implementation serves both devices; the C kernels take numpy arrays only and
the ops route CuPy arrays to cengine.cuda's kernels instead."""
import importlib
import importlib.util

import numpy as np

_INSTALL = 'pip install "cengine[cuda]" brings CuPy for CUDA 12'

# the cupy module once it has been imported for a cuda request (None: CPU only so far). A list,
# so the hot paths read one item and tests can install a stand-in backend.
_CP = [None]


def cuda_missing_reason():
    """One sentence naming what is missing for device='cuda' (CuPy, or a GPU CuPy can see);
    None when cuda can be used. Never raises."""
    cp = _CP[0]
    if cp is None:
        if importlib.util.find_spec("cupy") is None:
            return "CuPy is not installed (%s)" % _INSTALL
        try:
            cp = importlib.import_module("cupy")
        except Exception as e:       # a broken install (driver/toolkit mismatch) says why
            return "CuPy is installed but cannot be imported (%s: %s)" % (type(e).__name__, e)
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as e:
        return "CuPy is installed, but it sees no CUDA GPU (%s: %s)" % (type(e).__name__, e)
    if n < 1:
        return "CuPy is installed, but it sees no CUDA GPU (0 devices)"
    _CP[0] = cp
    return None


def cuda_module():
    """The cupy module, imported on first use; RuntimeError naming what is missing."""
    cp = _CP[0]
    if cp is not None:
        return cp
    why = cuda_missing_reason()
    if why is not None:
        raise RuntimeError("cengine cannot use a cuda device here: " + why)
    return _CP[0]


def device_count():
    """Number of GPUs CuPy sees (0 without CuPy or a GPU); never raises."""
    if cuda_missing_reason() is not None:
        return 0
    return int(_CP[0].cuda.runtime.getDeviceCount())


def is_cuda_array(a):
    """True for a CuPy array (False without touching CuPy when none was ever made)."""
    if type(a) is np.ndarray:
        return False
    cp = _CP[0]
    return cp is not None and isinstance(a, cp.ndarray)


def xp(a):
    """The array module of `a`: numpy for numpy arrays and scalars, cupy for CuPy arrays."""
    if type(a) is np.ndarray:    # the CPU path: no call
        return np
    return _CP[0] if is_cuda_array(a) else np


array_module = xp


def xp_of(*arrays):
    """The array module of the first CuPy array among `arrays` (None entries skipped), else
    numpy."""
    cp = _CP[0]
    if cp is not None:
        for a in arrays:
            if a is not None and type(a) is not np.ndarray and isinstance(a, cp.ndarray):
                return cp
    return np


def device_index(a):
    """The CUDA device index of a CuPy array."""
    return int(a.device.id)


def as_storage(a):
    """A numpy or CuPy array for `a` (no copy when it already is one)."""
    if type(a) is np.ndarray or is_cuda_array(a):
        return a
    return np.asarray(a)


def to_host(a):
    """A numpy array with the values of `a` (a itself when it is already on the CPU)."""
    if type(a) is np.ndarray:
        return a
    cp = _CP[0]
    if cp is not None and isinstance(a, cp.ndarray):
        return cp.asnumpy(a)
    return np.asarray(a)


def to_cuda(a, index=None):
    """A CuPy array on device `index` (None: the current device) with the values of `a` (a numpy
    or CuPy array); no copy when `a` is already there."""
    cp = cuda_module()
    if index is None:
        index = int(cp.cuda.runtime.getDevice())
    if isinstance(a, cp.ndarray) and int(a.device.id) == index:
        return a
    with cp.cuda.Device(index):
        if isinstance(a, cp.ndarray):
            return a.copy()          # a copy between devices
        return cp.asarray(np.ascontiguousarray(a) if a.ndim else a)


def current_device_index():
    return int(cuda_module().cuda.runtime.getDevice())


def mixed_device_error(devs):
    """torch's RuntimeError for an op given tensors on two devices (cuda named first)."""
    devs = sorted(devs, key=lambda d: (d.type != "cuda", str(d)))
    return RuntimeError("Expected all tensors to be on the same device, but found at least two "
                        "devices, %s and %s!" % (devs[0], devs[1]))


def check_same_device(arrays):
    """RuntimeError as torch when the arrays (numpy/CuPy; other values skipped) live on more than
    one device. Called only once a CuPy array has existed (_CP set), so the CPU path never pays.
    Returns the device of the arrays: -1 for the CPU, the GPU's id, None when there were none."""
    cp = _CP[0]
    first = None
    for a in arrays:
        if type(a) is np.ndarray:
            key = -1
        elif cp is not None and isinstance(a, cp.ndarray):
            key = int(a.device.id)
        else:
            continue
        if first is None:
            first = key
        elif key != first:
            from .tensor import device
            mk = lambda k: device("cpu") if k < 0 else device("cuda", k)  # noqa: E731
            raise mixed_device_error({mk(first), mk(key)})
    return first


def asarray(x, dtype=None, like=None):
    """np.asarray for op results that may live on a GPU: a CuPy array stays a CuPy array (cast
    to dtype if given); a scalar or host value becomes an array on the device of `like` when
    `like` is a CuPy array, else a numpy array."""
    if type(x) is np.ndarray and dtype is None:
        return x
    cp = _CP[0]
    if cp is not None:
        if type(x) is not np.ndarray and isinstance(x, cp.ndarray):
            return x if dtype is None else x.astype(dtype, copy=False)
        if like is not None and type(like) is not np.ndarray and isinstance(like, cp.ndarray):
            with cp.cuda.Device(int(like.device.id)):
                return cp.asarray(np.asarray(x, dtype))
    return np.asarray(x, dtype)


def ascontiguousarray(a, dtype=None):
    """np.ascontiguousarray for numpy or CuPy arrays (the array keeps its device)."""
    if type(a) is np.ndarray:
        return np.ascontiguousarray(a, dtype)
    return xp(a).ascontiguousarray(a, dtype=dtype)


def zeros(ref, shape, dtype):
    """np.zeros(shape, dtype) on the device of array `ref`."""
    if type(ref) is np.ndarray:
        return np.zeros(shape, dtype)
    return xp(ref).zeros(shape, dtype)


def ones(ref, shape, dtype):
    if type(ref) is np.ndarray:
        return np.ones(shape, dtype)
    return xp(ref).ones(shape, dtype)


def empty(ref, shape, dtype):
    if type(ref) is np.ndarray:
        return np.empty(shape, dtype)
    return xp(ref).empty(shape, dtype)


def full(ref, shape, value, dtype):
    if type(ref) is np.ndarray:
        return np.full(shape, value, dtype)
    return xp(ref).full(shape, value, dtype)


def arange(ref, *args, **kwargs):
    if type(ref) is np.ndarray:
        return np.arange(*args, **kwargs)
    return xp(ref).arange(*args, **kwargs)


def no_cuda_path(name):
    """NotImplementedError (torch's type for an op a backend lacks) for an op that has no cuda
    path yet."""
    return NotImplementedError(
        f"Could not run '{name}' with arguments from the 'CUDA' backend: cengine has no cuda "
        "path for it yet; move its inputs to the CPU with .cpu()")
