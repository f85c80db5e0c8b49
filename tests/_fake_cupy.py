"""A stand-in for CuPy, for tests only: lets the cuda dispatch code (device tagging, moves
between devices, mixed-device errors, the array-module ops, optimizers, save/load) run on a
machine without a GPU.

The fake keeps CuPy's rules that matter for the dispatch: its ndarray is NOT a numpy array
(`type(a) is np.ndarray` is False, and the C kernels, which take numpy buffers, refuse it), it
refuses implicit conversion to numpy (np.asarray(a) raises TypeError, as CuPy does), and it
refuses to mix with numpy arrays in one operation. numpy functions called on it dispatch
through __array_ufunc__/__array_function__ (as they do for CuPy) and return fake arrays, on
the device of their inputs. Values are computed by numpy on the host underneath.

install(monkeypatch, ndev=1) puts it where cengine looks for CuPy (cengine._device._CP) and in
sys.modules['cupy'] for the test's duration."""
import sys
import types

import numpy as np

_CURRENT = [0]
_NDEV = [1]
_ALLOWED_MODULES = ("numpy", "numpy.linalg", "numpy.fft")


class _Ptr:
    __slots__ = ("ptr",)

    def __init__(self, ptr):
        self.ptr = ptr


class Device:
    """cupy.cuda.Device: a context manager that makes device `id` current."""

    def __init__(self, device=None):
        self.id = _CURRENT[0] if device is None else int(device)
        if not 0 <= self.id < _NDEV[0]:
            raise RuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
        self._prev = []

    def __enter__(self):
        self._prev.append(_CURRENT[0])
        _CURRENT[0] = self.id
        return self

    def __exit__(self, *exc):
        _CURRENT[0] = self._prev.pop()
        return False

    def use(self):
        _CURRENT[0] = self.id

    def synchronize(self):
        _Runtime.syncs += 1

    def __repr__(self):
        return "<CUDA Device %d>" % self.id

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


def _unwrap(x, dev):
    """numpy value of a fake array (recording its device in dev), recursing into lists/tuples;
    a numpy array (other than a 0-d one) is refused, as CuPy refuses host arrays."""
    if isinstance(x, ndarray):
        dev.add(x._dev)
        return x._a
    if type(x) is np.ndarray:
        if x.ndim == 0:
            return x
        raise TypeError("Unsupported type <class 'numpy.ndarray'>")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, dev) for v in x)
    return x


def _pick_dev(dev):
    if len(dev) > 1:
        raise ValueError("The device where the array resides (%s) is different from the "
                         "current device" % sorted(dev))
    return next(iter(dev)) if dev else _CURRENT[0]


def _wrap(x, d):
    if type(x) is np.ndarray or isinstance(x, np.ndarray):
        return ndarray(np.asarray(x), d)
    if isinstance(x, np.generic):        # CuPy returns 0-d arrays, never numpy scalars
        return ndarray(np.asarray(x), d)
    if isinstance(x, tuple):
        return tuple(_wrap(v, d) for v in x)
    if isinstance(x, list):
        return [_wrap(v, d) for v in x]
    return x


class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, k):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[k]


_NO_ATTR = {"ctypes", "__array_interface__", "__array_struct__", "tofile", "dumps", "dump",
            "getfield", "setfield", "byteswap", "newbyteorder", "itemset"}


class ndarray:
    """The fake cupy.ndarray: a numpy array `_a` said to live on device `_dev`."""
    __slots__ = ("_a", "_dev")
    __array_priority__ = 500    # below cengine.Tensor's, so Tensor's reflected operators win

    def __init__(self, a, dev=None):
        self._a = a
        self._dev = _CURRENT[0] if dev is None else dev

    # -- what CuPy has
    shape = property(lambda s: s._a.shape)
    dtype = property(lambda s: s._a.dtype)
    ndim = property(lambda s: s._a.ndim)
    size = property(lambda s: s._a.size)
    itemsize = property(lambda s: s._a.itemsize)
    nbytes = property(lambda s: s._a.nbytes)
    strides = property(lambda s: s._a.strides)
    base = property(lambda s: None if s._a.base is None else ndarray(s._a.base, s._dev))
    flags = property(lambda s: _Flags(s._a))
    device = property(lambda s: Device(s._dev))
    data = property(lambda s: _Ptr(s._a.__array_interface__["data"][0] + (1 << 40) * (s._dev + 1)))

    @property
    def T(self):
        return ndarray(self._a.T, self._dev)

    @property
    def real(self):
        return ndarray(self._a.real, self._dev)

    def get(self, stream=None, order="C", out=None):
        return np.array(self._a, order=order, copy=True)

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        dev = set()
        ins = _unwrap(inputs, dev)
        outs = kwargs.get("out")
        if outs is not None:
            kwargs["out"] = _unwrap(outs, dev)
        d = _pick_dev(dev)
        with np.errstate(all="ignore"):
            r = getattr(ufunc, method)(*ins, **kwargs)
        if outs is not None:                  # CuPy returns the out= arrays themselves
            outs = outs if isinstance(outs, tuple) else (outs,)
            return outs[0] if len(outs) == 1 else outs
        return _wrap(r, d)

    def __array_function__(self, func, types, args, kwargs):
        if func.__module__ not in _ALLOWED_MODULES:
            return NotImplemented
        dev = set()
        a = _unwrap(args, dev)
        k = {n: _unwrap(v, dev) for n, v in kwargs.items()}
        d = _pick_dev(dev)
        with np.errstate(all="ignore"):
            r = func(*a, **k)
        return _wrap(r, d)

    def __getattr__(self, name):
        if name in _NO_ATTR or name.startswith("__"):
            raise AttributeError("'cupy.ndarray' object has no attribute '%s'" % name)
        v = getattr(self._a, name)
        d = self._dev
        if callable(v):
            def method(*args, **kwargs):
                dev = {d}
                a = _unwrap(args, dev)
                k = {n: _unwrap(x, dev) for n, x in kwargs.items()}
                _pick_dev(dev)
                return _wrap(v(*a, **k), d)
            return method
        return _wrap(v, d)

    # python scalars and lists come out as they do from CuPy
    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __getitem__(self, idx):
        dev = {self._dev}
        i = _unwrap_index(idx, dev)
        _pick_dev(dev)
        return _wrap(self._a[i], self._dev)

    def __setitem__(self, idx, value):
        dev = {self._dev}
        i = _unwrap_index(idx, dev)
        v = _unwrap(value, dev)
        _pick_dev(dev)
        self._a[i] = v

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __complex__(self):
        return complex(self._a)

    def __repr__(self):
        return repr(self._a).replace("array", "fakecupy.array", 1)

    __hash__ = None

    def copy(self, order="C"):
        """As CuPy's: the copy is made on the current device."""
        return ndarray(self._a.copy(order=order), _CURRENT[0])

    def __copy__(self):
        return ndarray(self._a.copy(), self._dev)

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy(), self._dev)

    def __reduce__(self):
        raise TypeError("fake cupy arrays are not picklable here (cengine must move them to the "
                        "host first)")


def _unwrap_index(idx, dev):
    if isinstance(idx, ndarray):
        dev.add(idx._dev)
        return idx._a
    if isinstance(idx, tuple):
        return tuple(_unwrap_index(i, dev) for i in idx)
    return idx


def _binop(ufunc, reflect=False):
    def op(self, other):
        if not isinstance(other, (ndarray, int, float, bool, complex, np.generic)) \
                and not (type(other) is np.ndarray and other.ndim == 0):
            return NotImplemented
        return ufunc(other, self) if reflect else ufunc(self, other)
    return op


def _iop(ufunc):
    def op(self, other):
        if not isinstance(other, (ndarray, int, float, bool, complex, np.generic)):
            return NotImplemented
        ufunc(self, other, out=self)
        return self
    return op


for _n, _u in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
               ("truediv", np.true_divide), ("floordiv", np.floor_divide), ("mod", np.remainder),
               ("pow", np.power), ("matmul", np.matmul), ("and", np.bitwise_and),
               ("or", np.bitwise_or), ("xor", np.bitwise_xor), ("lshift", np.left_shift),
               ("rshift", np.right_shift)]:
    setattr(ndarray, "__%s__" % _n, _binop(_u))
    setattr(ndarray, "__r%s__" % _n, _binop(_u, True))
    setattr(ndarray, "__i%s__" % _n, _iop(_u))
for _n, _u in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
               ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(ndarray, "__%s__" % _n, _binop(_u))
ndarray.__neg__ = lambda s: np.negative(s)
ndarray.__pos__ = lambda s: np.positive(s)
ndarray.__abs__ = lambda s: np.absolute(s)
ndarray.__invert__ = lambda s: np.invert(s)


class _Runtime:
    syncs = 0

    @staticmethod
    def getDeviceCount():
        return _NDEV[0]

    @staticmethod
    def getDevice():
        return _CURRENT[0]

    @staticmethod
    def deviceSynchronize():
        _Runtime.syncs += 1

    @staticmethod
    def getDeviceProperties(i):
        return {"name": b"Fake GPU %d" % i, "totalGlobalMem": 1 << 34, "major": 9, "minor": 0}

    @staticmethod
    def memGetInfo():
        return (1 << 33, 1 << 34)


def _module_fn(fn):
    def f(*args, **kwargs):
        dev = set()
        a = _unwrap(args, dev)
        k = {n: _unwrap(v, dev) for n, v in kwargs.items()}
        d = _pick_dev(dev)
        return _wrap(fn(*a, **k), d)
    f.__name__ = getattr(fn, "__name__", "f")
    return f


def asarray(a, dtype=None, order=None):
    """Host data -> a fake device array on the current device (fake arrays pass through)."""
    if isinstance(a, ndarray):
        if a._dev != _CURRENT[0] or (dtype is not None and np.dtype(dtype) != a.dtype):
            return ndarray(np.array(a._a, dtype=dtype, copy=True), _CURRENT[0])
        return a
    if hasattr(a, "_data") and hasattr(a, "grad_fn"):
        raise TypeError("fake cupy.asarray got a cengine Tensor (pass its storage)")
    return ndarray(np.array(a, dtype=dtype, order=order or "K", copy=True), _CURRENT[0])


array = asarray


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError("Unsupported type %s" % type(a))
    return ndarray(np.ascontiguousarray(a._a, dtype=dtype), a._dev)


def asnumpy(a, stream=None, order="C", out=None):
    if isinstance(a, ndarray):
        return np.array(a._a, order=order, copy=True)
    return np.asarray(a, order=order)


class _Stream:
    def synchronize(self):
        _Runtime.syncs += 1


def make_module(ndev=1):
    """A fresh fake `cupy` module object."""
    m = types.ModuleType("cupy")
    m.__file__ = __file__
    m._is_fake = True
    m.ndarray = ndarray
    m.asarray, m.array, m.asnumpy = asarray, array, asnumpy
    m.ascontiguousarray = ascontiguousarray
    m.get_array_module = lambda *args: m if any(isinstance(a, ndarray) for a in args) else np
    for name in ("zeros", "ones", "empty", "full", "arange", "linspace", "eye", "zeros_like",
                 "ones_like", "empty_like", "full_like", "exp", "log", "sqrt", "maximum",
                 "minimum", "where", "sum", "max", "matmul", "einsum", "concatenate", "stack",
                 "moveaxis", "take_along_axis", "abs", "square", "tanh", "clip", "result_type",
                 "broadcast_to", "may_share_memory", "shares_memory", "multiply", "add",
                 "subtract", "divide", "logical_not", "isnan", "isfinite", "any", "all",
                 "log1p", "expm1", "sign", "mean", "prod", "cumsum", "take", "argmax",
                 "reshape", "transpose", "swapaxes", "copyto", "erf" if hasattr(np, "erf")
                 else "exp"):
        setattr(m, name, _module_fn(getattr(np, name)))
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                 "bool_", "dtype", "newaxis", "nan", "inf", "pi", "e", "errstate", "ndim",
                 "shape", "iinfo", "finfo", "integer", "floating", "generic"):
        setattr(m, name, getattr(np, name))
    rnd = types.SimpleNamespace()
    rs = [np.random.RandomState(0)]
    rnd.seed = lambda s=None: rs.__setitem__(0, np.random.RandomState(s))
    rnd.random = lambda size=None, dtype=np.float64: ndarray(
        rs[0].random_sample(size).astype(dtype), _CURRENT[0])
    rnd.standard_normal = lambda size=None, dtype=np.float64: ndarray(
        rs[0].standard_normal(size).astype(dtype), _CURRENT[0])
    m.random = rnd
    cuda = types.SimpleNamespace()
    cuda.Device = Device
    cuda.runtime = _Runtime
    cuda.get_device_id = lambda: _CURRENT[0]
    cuda.Stream = types.SimpleNamespace(null=_Stream())
    m.cuda = cuda
    m.fuse = None
    _NDEV[0] = ndev
    _CURRENT[0] = 0
    _Runtime.syncs = 0
    return m


def _erf(x):
    import math
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x.copy()


def _scatter_add(a, idx, v):
    dev = {a._dev}
    np.add.at(a._a, _unwrap(idx, dev), _unwrap(v, dev))
    _pick_dev(dev)


def make_cupyx():
    """The fake `cupyx` (scipy.special.erf, scatter_add) and its submodules."""
    x = types.ModuleType("cupyx")
    x.scipy = types.ModuleType("cupyx.scipy")
    x.scipy.special = types.ModuleType("cupyx.scipy.special")
    x.scipy.special.erf = _module_fn(_erf)
    x.scatter_add = _scatter_add
    return {"cupyx": x, "cupyx.scipy": x.scipy, "cupyx.scipy.special": x.scipy.special}


def install(monkeypatch, ndev=1):
    """Make cengine see the fake CuPy (ndev GPUs); uninstall() (the fixture's teardown) puts the
    previous state back. Returns the module."""
    from cengine import _device
    m = make_module(ndev)
    monkeypatch.setitem(sys.modules, "cupy", m)
    for k, v in make_cupyx().items():
        monkeypatch.setitem(sys.modules, k, v)
    _SAVED.append(_device._CP[0])
    _device._CP[0] = m
    return m


_SAVED = []


def uninstall():
    from cengine import _device
    _device._CP[0] = _SAVED.pop()
