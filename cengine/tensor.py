"""Tensor: a numpy array plus autograd state, with torch's API.

Storage (`_data`) is a numpy ndarray on the CPU, a CuPy ndarray on a cuda device (see
cengine/_device.py); the device is read from the storage. Views (reshape, transpose, basic indexing, ...) share the
storage and the version counter `_version` (a one-element list) of their base, so in-place
changes of a tensor saved for backward are detected.
"""
import builtins

import sys

import numpy as np

from . import dtypes as _dt
from .autograd import grad_mode as _gm
from .autograd.function import AccumulateGrad, Function
from . import _tensor_methods as _tm
from . import _device as _dv

__all__ = ["Tensor", "device", "Size"]


class Size(tuple):
    """torch.Size: a tuple of ints with torch's repr."""

    def __repr__(self):
        return "cengine.Size([%s])" % ", ".join(str(s) for s in self)

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n


class device:
    """A device, as torch.device: device('cpu'), device('cuda'), device('cuda:1'),
    device('cuda', 0), device(0) (an index names a cuda device)."""
    __slots__ = ("type", "index")

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, builtins.int) and not isinstance(type, builtins.bool):
            type, index = "cuda", type
        elif not isinstance(type, str):
            raise TypeError("device() received an invalid combination of arguments - got (%s)"
                            % builtins.type(type).__name__)
        if ":" in type:
            type, idx = type.split(":", 1)
            if not idx.isdigit():
                raise RuntimeError("Invalid device string: '%s:%s'" % (type, idx))
            index = builtins.int(idx)
        if type not in ("cpu", "cuda"):
            raise RuntimeError("Expected one of cpu, cuda device type at start of device string: "
                               + type)
        if index is not None:
            if not isinstance(index, builtins.int) or isinstance(index, builtins.bool):
                raise TypeError("device(): argument 'index' must be int, not %s"
                                % builtins.type(index).__name__)
            if index < 0:
                raise RuntimeError("Device index must not be negative")
        self.type = type
        self.index = index

    def __repr__(self):
        if self.index is None:
            return "device(type='%s')" % self.type
        return "device(type='%s', index=%d)" % (self.type, self.index)

    def __str__(self):
        return self.type if self.index is None else "%s:%d" % (self.type, self.index)

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


_CPU = device("cpu")


def _check_device(dev):
    """None, or the device `dev` names (a device, 'cpu'/'cuda[:i]' or an index) once checked
    usable: cuda needs CuPy and a GPU it sees (RuntimeError naming which is missing) and an
    index below the device count."""
    if dev is None:
        return None
    d = dev if isinstance(dev, device) else device(dev if isinstance(dev, builtins.int)
                                                   else str(dev))
    if d.type != "cpu":
        why = _dv.cuda_missing_reason()
        if why is not None:
            raise RuntimeError("cengine cannot use a cuda device here (got %r): %s"
                               % (str(d), why))
        if d.index is not None and d.index >= _dv.device_count():
            raise RuntimeError("CUDA error: invalid device ordinal (device %d requested, %d "
                               "visible)" % (d.index, _dv.device_count()))
    return d


def _device_of(arr):
    """The device holding storage `arr`."""
    if type(arr) is np.ndarray:
        return _CPU
    if _dv.is_cuda_array(arr):
        return device("cuda", _dv.device_index(arr))
    return _CPU


def _move(arr, dev):
    """`arr` on device `dev` (a checked device; no copy when it is already there)."""
    if dev.type == "cpu":
        return _dv.to_host(arr)
    return _dv.to_cuda(arr, dev.index)


_TO_FORMS = ("(cengine.device device = None, cengine.dtype dtype = None, bool non_blocking = "
             "False, bool copy = False, *, memory_format memory_format = None)",
             "(cengine.dtype dtype, bool non_blocking = False, bool copy = False, *, "
             "memory_format memory_format = None)",
             "(Tensor tensor, bool non_blocking = False, bool copy = False, *, memory_format "
             "memory_format = None)")
_PY_DTYPES = {builtins.float: _dt.float64, builtins.int: _dt.int64, builtins.bool: _dt.bool}


def _parse_to(args, kwargs):
    """torch's argument forms of Tensor.to and Module.to:
        to(device=None, dtype=None, non_blocking=False, copy=False, *, memory_format=None)
        to(dtype, non_blocking=False, copy=False, *, memory_format=None)
        to(tensor, non_blocking=False, copy=False, *, memory_format=None)
    -> (device or None, cengine dtype or None, non_blocking, copy or None when not given,
    memory_format). The device is checked (cuda needs CuPy and a GPU); a python type float/int/bool
    means float64/int64/bool as in torch."""
    def bad():
        got = ", ".join([_to_arg_type(a) for a in args] + ["%s=%s" % (k, _to_arg_type(v))
                                                             for k, v in kwargs.items()])
        return TypeError("to() received an invalid combination of arguments - got (%s), but "
                         "expected one of:\n%s" % (got + ("" if args else ", "),
                                                    "\n".join(" * " + f for f in _TO_FORMS)))
    first = args[0] if args else None
    dt = first if isinstance(first, _dt.dtype) else _PY_DTYPES.get(first) \
        if isinstance(first, type) else None
    if dt is not None or isinstance(first, Tensor):
        names = ("non_blocking", "copy")            # to(dtype, ...) / to(tensor, ...)
        dev = first.device if dt is None else None
        dt = first.dtype if dt is None else dt
        rest = args[1:]
    else:
        names = ("device", "dtype", "non_blocking", "copy")
        dev = dt = None
        rest = args
    if len(rest) > len(names):
        raise bad()
    vals = dict(zip(names, rest))
    for k, v in kwargs.items():
        if k not in names + ("memory_format",) or k in vals:
            raise bad()
        vals[k] = v
    if "device" in vals:
        dev = vals["device"]
        if dev is not None and not isinstance(dev, (str, device, builtins.int)) \
                or isinstance(dev, builtins.bool):
            raise bad()
        if isinstance(dev, builtins.int):
            dev = "cuda:%d" % dev                  # an index names an accelerator, as in torch
    if vals.get("dtype") is not None:
        dt = vals["dtype"]
        dt = _PY_DTYPES.get(dt, dt) if isinstance(dt, type) else dt
        if not isinstance(dt, _dt.dtype):
            raise bad()
    non_blocking, copy = vals.get("non_blocking", False), vals.get("copy")
    if not isinstance(non_blocking, builtins.bool) or not isinstance(copy, (builtins.bool,
                                                                             type(None))):
        raise bad()
    dev = _check_device(dev)
    return dev, dt, non_blocking, copy, vals.get("memory_format")


def _to_arg_type(v):
    if isinstance(v, _dt.dtype):
        return "cengine.dtype"
    if isinstance(v, device):
        return "cengine.device"
    return "Tensor" if isinstance(v, Tensor) else type(v).__name__


def _init_slots(t, arr, version, requires_grad=False):
    """Fill every slot of a Tensor made with Tensor.__new__: storage arr, version counter version
    (a one-element list, shared by views), no graph, no gradient."""
    t._data = arr
    t.requires_grad = requires_grad
    t._grad = None
    t.grad_fn = None
    t._version = version
    t._output_nr = 0
    t._acc = None
    t._retains_grad = False


def _wrap(arr, requires_grad=False):
    """Tensor around an ndarray, no copy (internal fast constructor; the hottest path, so it
    sets the slots of _init_slots itself instead of calling it)."""
    t = Tensor.__new__(Tensor)
    if type(arr) is not np.ndarray:
        arr = _dv.as_storage(arr)
    t._data = arr
    t.requires_grad = requires_grad
    t._grad = None
    t.grad_fn = None
    t._version = [0]
    t._output_nr = 0
    t._acc = None
    t._retains_grad = False
    return t


def _fmt_array(a):
    from ._printing import options as po
    p, sci = po["precision"], po["sci_mode"]
    th = po["threshold"]
    th = sys.maxsize if th == float("inf") else int(th)
    kw = dict(separator=", ", prefix="tensor(", threshold=th, edgeitems=po["edgeitems"],
              max_line_width=po["linewidth"])
    if a.dtype == _dt.BF16_NP or a.dtype == np.float16:   # bfloat16 (kind "V") and float16 print as float32
        a = a.astype(np.float32)
    if _dt.is_floating(a.dtype):
        finite = a[np.isfinite(a)] if a.size else a
        if sci is not True and finite.size and np.all(finite == np.round(finite)) \
                and np.abs(finite).max() < 1e8:
            fmt = lambda v: ("%.0f." % v) if np.isfinite(v) else str(v)  # noqa: E731
        elif sci is True or sci is None and finite.size and (
                np.abs(finite).max() >= 1e8 or
                (np.abs(finite[finite != 0]).min() < 1e-4 if np.any(finite != 0) else False)):
            fmt = lambda v: "%.*e" % (p, v)  # noqa: E731
        else:
            fmt = lambda v: ("%.*f" % (p, v)) if np.isfinite(v) else str(v)  # noqa: E731
        return np.array2string(a, formatter={"float_kind": fmt}, **kw)
    if a.dtype.kind == "b":
        return np.array2string(a, formatter={"bool": lambda v: "True" if v else "False"}, **kw)
    return np.array2string(a, **kw)


class Tensor(_tm._ElementwiseMethods, _tm._ReduceMethods, _tm._ShapeMethods, _tm._IndexMethods,
             _tm._ActivationMethods, _tm._SortingMethods, _tm._ScatterMethods, _tm._LinalgMethods,
             _tm._RandomMethods, _tm._NNMethods):
    """A multi-dimensional array with autograd, following torch.Tensor. The methods that run an
    op are declared in cengine/_tensor_methods.py (one base class per op family)."""
    __slots__ = ("_data", "requires_grad", "_grad", "grad_fn", "_version", "_output_nr", "_acc",
                 "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, *args, device=None, dtype=None, requires_grad=False):
        # torch's legacy constructor: Tensor(*sizes) uninitialised, Tensor(data) of the default
        # dtype, Tensor(other) an alias of other (see _legacy.py)
        from ._legacy import legacy_array
        res = legacy_array("Tensor", args, None if dtype is None else _dt.to_numpy_dtype(dtype),
                           device)
        if isinstance(res, tuple):
            _init_slots(self, res[1]._data, res[1]._version)
        else:
            _init_slots(self, res, [0])
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------------ metadata
    @property
    def dtype(self):
        return _dt._FROM_NP[self._data.dtype]

    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        from .ops._util import wrap_dim
        return self._data.shape[wrap_dim(dim, self._data.ndim)]

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    ndimension = dim

    def numel(self):
        return self._data.size

    nelement = numel

    def element_size(self):
        return self._data.itemsize

    @property
    def itemsize(self):
        return self._data.itemsize

    @property
    def nbytes(self):
        return self._data.nbytes

    def stride(self, dim=None):
        it = self._data.itemsize
        st = tuple(s // it for s in self._data.strides)
        if dim is None:
            return st
        from .ops._util import wrap_dim
        return st[wrap_dim(dim, self._data.ndim)]

    @property
    def layout(self):
        from . import _layout
        return _layout.strided

    def is_contiguous(self, memory_format=None):
        from . import _layout
        return _layout.is_in(self._data, _layout.check(memory_format, "is_contiguous"))

    @property
    def device(self):
        if type(self._data) is np.ndarray:
            return _CPU
        return _device_of(self._data)

    def get_device(self):
        """The cuda device index, -1 on the CPU (torch)."""
        d = self.device
        return -1 if d.type == "cpu" else d.index

    @property
    def is_cuda(self):
        return type(self._data) is not np.ndarray and _dv.is_cuda_array(self._data)

    @property
    def is_cpu(self):
        return not self.is_cuda

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def is_floating_point(self):
        return _dt.is_floating(self._data.dtype)

    def data_ptr(self):
        if type(self._data) is not np.ndarray and _dv.is_cuda_array(self._data):
            return self._data.data.ptr
        return self._data.__array_interface__["data"][0]

    @property
    def _version_count(self):
        return self._version[0]

    # ------------------------------------------------------------------ autograd
    def _grad_edge(self):
        """(node, output_nr) that receives this tensor's gradient."""
        if self.grad_fn is not None:
            return (self.grad_fn, self._output_nr)
        acc = self._acc
        if acc is None:
            acc = self._acc = AccumulateGrad(self)
        return (acc, 0)

    @property
    def grad(self):
        """The accumulated gradient (a Tensor of this tensor's shape and dtype) or None: of a
        leaf, or of a non-leaf after retain_grad() (reading it otherwise warns, as torch)."""
        if self.grad_fn is not None and not self._retains_grad:
            import warnings
            warnings.warn("The .grad attribute of a Tensor that is not a leaf Tensor is being "
                          "accessed. backward() does not fill it for non-leaf Tensors: call "
                          ".retain_grad() on it before backward() if you want its gradient, or "
                          "read .grad of the leaf Tensor you meant.", UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value):
        # torch validates the assignment: an optimizer applies .grad element by element, so a
        # gradient of another shape or dtype would silently update the wrong entries
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError("assigned grad expected to be a Tensor or None but got grad of "
                                "type %s" % type(value).__name__)
            if value is self:
                raise RuntimeError("can't assign Variable as its own grad")
            g, a = value._data, self._data
            if g.dtype != a.dtype:
                raise RuntimeError(
                    "attempting to assign a gradient with dtype '%s' to a tensor with grad_dtype "
                    "'%s'. The gradient must match the tensor's grad_dtype (defaults to the "
                    "tensor's dtype)." % (_dt.torch_cpp_name(g.dtype), _dt.torch_type_name(a.dtype)))
            if g.shape != a.shape:
                raise RuntimeError(
                    "attempting to assign a gradient of size '[%s]' to a tensor of size '[%s]'. "
                    "Please ensure that the gradient and the tensor are the same size"
                    % (", ".join(map(str, g.shape)), ", ".join(map(str, a.shape))))
        self._grad = value

    @grad.deleter
    def grad(self):
        self._grad = None

    @property
    def data(self):
        t = _wrap(self._data)
        t._version = self._version
        return t

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError("Tensor.data must be set to a Tensor")
        self._data = value._data

    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf:
            if not requires_grad:
                raise RuntimeError("you can only change requires_grad flags of leaf variables. "
                                   "If you want to use a computed variable in a subgraph that "
                                   "doesn't require differentiation use var_no_grad = var.detach().")
            return self
        if requires_grad and not _dt.is_floating(self._data.dtype):
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self.requires_grad = builtins.bool(requires_grad)
        return self

    def detach(self):
        t = _wrap(self._data)
        t._version = self._version
        return t

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    def retain_grad(self):
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None or self._retains_grad:
            return
        import weakref
        node = self.grad_fn
        if node._retained is None:
            node._retained = []
        node._retained.append((self._output_nr, weakref.ref(self)))
        self._retains_grad = True

    @property
    def retains_grad(self):
        return self._retains_grad

    def register_hook(self, hook):
        """hook(grad) -> Tensor or None, called when this leaf's gradient is computed."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            raise NotImplementedError("cengine supports hooks on leaf tensors only")
        node = self._grad_edge()[0]
        from .utils.hooks import RemovableHandle
        handle = RemovableHandle(node.pre_hooks)
        node.pre_hooks[handle.id] = hook
        return handle

    def register_post_accumulate_grad_hook(self, hook):
        """hook(tensor), called after this leaf's .grad has been updated (gradient ready)."""
        if not self.is_leaf or not self.requires_grad:
            raise RuntimeError("post accumulate grad hooks can only be registered on leaf "
                               "tensors that require grad")
        node = self._grad_edge()[0]
        from .utils.hooks import RemovableHandle
        handle = RemovableHandle(node.post_hooks)
        node.post_hooks[handle.id] = hook
        return handle

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        from .autograd.engine import backward
        backward([self], None if gradient is None else [gradient], retain_graph=retain_graph,
                 create_graph=create_graph, inputs=inputs)

    # ------------------------------------------------------------------ conversion
    def _host_check(self, what):
        if type(self._data) is not np.ndarray and _dv.is_cuda_array(self._data):
            raise TypeError("can't convert %s device type tensor to %s. Use Tensor.cpu() to copy "
                            "the tensor to host memory first." % (self.device, what))

    def numpy(self, *, force=False):
        if force:
            return _dv.to_host(self._data)
        self._host_check("numpy")
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        self._host_check("numpy")
        if dtype is not None and dtype != self._data.dtype:
            return self._data.astype(dtype)
        if copy:
            return self._data.copy()
        return self._data

    def item(self):
        if self._data.size != 1:
            raise RuntimeError("a Tensor with %d elements cannot be converted to Scalar"
                               % self._data.size)
        return self._data.reshape(-1)[0].item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self):
        return builtins.float(self.item())

    def __int__(self):
        return builtins.int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return builtins.bool(self._data.reshape(-1)[0])

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    def __repr__(self):
        a = self._data
        extras = []
        if type(a) is not np.ndarray and _dv.is_cuda_array(a):
            extras.append("device='%s'" % self.device)
            a = _dv.to_host(a)
        if a.size == 0 and a.ndim != 1 or a.size == 0:
            body = "[]"
            if a.ndim != 1:
                extras.append("size=(%s)" % ", ".join(str(s) for s in a.shape))
        else:
            body = _fmt_array(a)
        default_dt = {_dt.get_default_dtype().np, np.dtype(np.int64), np.dtype(np.bool_)}
        if a.dtype not in default_dt:
            extras.append("dtype=%r" % self.dtype)
        if self.grad_fn is not None:
            extras.append("grad_fn=<%s>" % self.grad_fn.name())
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(%s%s)" % (body, "".join(", " + e for e in extras))

    __str__ = __repr__

    def __format__(self, spec):
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    def __reduce_ex__(self, proto):
        if type(self._data) is not np.ndarray and _dv.is_cuda_array(self._data):
            return (_rebuild_device, (_dv.to_host(self._data), self.requires_grad,
                                      str(self.device)))
        return (_rebuild, (self._data, self.requires_grad))

    def __deepcopy__(self, memo):
        if not self.is_leaf:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment")
        t = _wrap(self._data.copy(), self.requires_grad)
        if self._grad is not None:
            t._grad = _wrap(self._grad._data.copy())
        memo[id(self)] = t
        return t

    # ------------------------------------------------------------------ dtype / device
    def to(self, *args, **kwargs):
        """to(dtype) / to(device) / to(device, dtype) / to(other), with non_blocking, copy and
        memory_format, like torch: self when nothing changes and copy is not set."""
        dev, dtype, _, copy, mf = _parse_to(args, kwargs)
        out = self
        moved = False
        if dev is not None and dev.type == "cuda" and dev.index is None:
            # torch: a cuda device without an index is the current device, so a tensor on
            # cuda:1 is copied by .to("cuda") when cuda:0 is current (as .cuda() does)
            dev = device("cuda", _dv.current_device_index())
        if dev is not None and dev != self.device:
            out = _ToDevice.apply(self, dev)
            moved = True
        if dtype is not None and dtype.np != out._data.dtype:
            from .ops.elementwise import cast
            out = cast(out, dtype.np)
        elif copy and not moved:
            out = self.clone()
        if mf is not None:
            from . import _layout
            _layout.check(mf, "to")
            if mf is not _layout.preserve_format and not _layout.is_in(out._data, mf):
                out = out.contiguous(memory_format=mf)
        return out

    def type(self, dtype=None):
        if dtype is None:
            return "cengine.%sTensor" % _dt.torch_type_name(self.dtype)
        return self.to(dtype)

    def cpu(self, memory_format=None):
        if type(self._data) is np.ndarray:
            return self
        return self.to("cpu")

    def pin_memory(self, device=None):
        """CPU tensors stay as they are (no page-locked memory without an accelerator)."""
        return self

    def is_pinned(self, device=None):
        return False

    def cuda(self, device=None, non_blocking=False, memory_format=None):
        """A copy on cuda device `device` (None: the current one; an int names an index); self
        when it is already there."""
        if device is None:
            d = _check_device("cuda")
            d = builtins.type(d)("cuda", _dv.current_device_index())
        else:
            d = _check_device(device)
            if d.type != "cuda":
                raise RuntimeError("Invalid device, must be cuda device")
        return self.to(d, non_blocking=non_blocking)

    def float(self):
        return self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def half(self):
        return self.to(_dt.float16)

    def bfloat16(self):
        return self.to(_dt.bfloat16)

    def long(self):
        return self.to(_dt.int64)

    def int(self):
        return self.to(_dt.int32)

    def bool(self):
        return self.to(_dt.bool)

    def byte(self):
        return self.to(_dt.uint8)

    def char(self):
        return self.to(_dt.int8)

    def short(self):
        return self.to(_dt.int16)

    def type_as(self, other):
        return self.to(other.dtype)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        from .ops.creation import tensor
        return tensor(data, dtype=dtype or self.dtype, device=self.device if device is None
                      else device, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        from .ops.creation import zeros
        return zeros(*size, dtype=dtype or self.dtype, device=self.device if device is None
                  else device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        from .ops.creation import ones
        return ones(*size, dtype=dtype or self.dtype, device=self.device if device is None
                  else device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        from .ops.creation import full
        return full(size, fill_value, dtype=dtype or self.dtype, device=self.device if device is
                    None else device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        from .ops.creation import empty
        return empty(*size, dtype=dtype or self.dtype, device=self.device if device is None
                  else device, requires_grad=requires_grad)


def _rebuild(arr, requires_grad):
    return _wrap(arr, requires_grad)


def _rebuild_device(arr, requires_grad, dev):
    """Unpickle a cuda tensor (pickled with its values on the host): back on its device."""
    return _wrap(_move(arr, _check_device(dev)), requires_grad)


class _ToDevice(Function):
    """Copy to another device, differentiable: the gradient goes back to the source device."""

    @staticmethod
    def forward(ctx, x, dev):
        ctx.src = _device_of(x)
        return _move(x, dev)

    @staticmethod
    def backward(ctx, g):
        return _move(g, ctx.src), None


_tm._link()  # the op modules import Tensor, so the methods reach them only now
