"""Reading checkpoints written by torch.save, without torch and without running code.

torch.save writes a pickle whose tensors refer to "storages" (flat typed buffers) by a
persistent id. Two layouts exist:
  - the zip format (the default since torch 1.6): `<name>/data.pkl` is the pickle and
    `<name>/data/<key>` holds the raw bytes of storage <key> (little-endian unless
    `<name>/byteorder` says "big");
  - the legacy format (`_use_new_zipfile_serialization=False`): four pickles in a row (a magic
    number, a protocol version, a system-info dict, the object) then the list of storage keys,
    then for each key an int64 element count and the storage's bytes.

The pickle is read by a small pickle machine written here, which understands the data opcodes
and resolves a global name only from a fixed list: the tensor and parameter rebuild functions,
storage types, dtypes, torch.Size, torch.device, OrderedDict/Counter and a few builtins (set,
frozenset, bytearray, complex, _codecs.encode). It never imports a module named by the file and
never calls anything but those. This is what torch.load(weights_only=True) accepts; anything
else raises pickle.UnpicklingError naming the global it refused.
"""
import bisect
import io
import os
import pickle
import reprlib
import struct
import zipfile
import zlib
from collections import Counter, OrderedDict

import numpy as np

from . import dtypes as _dt

__all__ = ["is_torch_zip", "is_torch_legacy", "load_torch_zip", "load_torch_legacy"]

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001

UnpicklingError = pickle.UnpicklingError

# torch storage type name -> cengine dtype name (None: cengine cannot hold it); the typed ones,
# FloatStorage ... BoolStorage, come from the dtype table
_STORAGE_TYPES = {_dt.torch_type_name(d) + "Storage": d.name for d in _dt._NAMES.values()}
_STORAGE_TYPES.update({
    "UntypedStorage": "uint8",
    "ComplexFloatStorage": None, "ComplexDoubleStorage": None, "QInt8Storage": None,
    "QUInt8Storage": None, "QInt32Storage": None, "QUInt4x2Storage": None,
    "QUInt2x4Storage": None,
})

# torch dtype attribute names (torch.float32, torch.long, ...) -> cengine dtype name: the same
# names cengine.dtypes binds
_TORCH_DTYPES = {n: getattr(_dt, n).name for n in _dt.__all__
                 if isinstance(getattr(_dt, n), _dt.dtype)}
_TORCH_DTYPES_UNSUPPORTED = {
    "complex32", "complex64", "complex128", "cfloat", "cdouble", "chalf", "uint16", "uint32",
    "uint64", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "qint8",
    "quint8", "qint32", "quint4x2", "quint2x4", "bits8", "bits16",
}

_UNSUPPORTED_TENSOR_KINDS = {
    "_rebuild_sparse_tensor": "sparse tensors", "_rebuild_sparse_csr_tensor": "sparse tensors",
    "_rebuild_qtensor": "quantized tensors", "_rebuild_meta_tensor_no_storage": "meta tensors",
    "_rebuild_nested_tensor": "nested tensors",
    "_rebuild_wrapper_subclass": "tensor subclasses",
    "_rebuild_device_tensor_from_numpy": "device tensors",
}


class _StorageType:
    """What GLOBAL torch.FloatStorage (etc.) resolves to: a name and a cengine dtype name."""
    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __repr__(self):
        return "torch." + self.name


class _TypeMarker:
    """torch.Tensor / torch.nn.parameter.Parameter as the `new_type` of _rebuild_from_type_v2."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


_TENSOR_TYPE = _TypeMarker("torch.Tensor")
_PARAMETER_TYPE = _TypeMarker("torch.nn.parameter.Parameter")


class _Storage:
    """One torch storage: raw bytes (a writable uint8 array), the dtype the pickle declared and
    the device it was saved from. Tensors are numpy views of `raw`."""
    __slots__ = ("raw", "dtype", "location", "key")

    def __init__(self, raw, dtype, location, key):
        self.raw = raw
        self.dtype = dtype
        self.location = location
        self.key = key

    def __repr__(self):
        return "<storage %s: %d bytes of %s on %s>" % (self.key, self.raw.nbytes, self.dtype,
                                                       self.location)


def _np_dtype(name, what):
    from . import dtypes
    d = getattr(dtypes, name)
    if d.np is None:
        raise RuntimeError("%s holds %s data, which cengine cannot store in this build"
                           % (what, name))
    return d.np


class _Loader:
    """The state of one load: where (for messages), map_location, deferred copies."""

    def __init__(self, where, map_location, weights_only):
        self.where = where
        self.map_location = map_location
        self.weights_only = weights_only
        self.fixups = []  # (tensor, view): overlapping views copied once the data is in
        self.storages = {}
        self._g = self._make_globals()
        self._callables = {id(v): v for k, v in self._g.items()
                           if k not in ("torch.Tensor", "torch.nn.parameter.Parameter")}
        # globals the user allowed (cengine.serialization.add_safe_globals): trusted as torch
        # trusts them, i.e. they may be called and their instances built
        self.user = {}
        for name, obj in user_globals():
            self.user[name] = obj
        self.user_ids = {id(v): v for v in self.user.values()}

    # ------------------------------------------------------------------ locations
    def restore_location(self, storage):
        ml = self.map_location
        loc = storage.location
        if callable(ml):
            out = ml(storage, loc)
            if out is None:
                out = storage
            if not isinstance(out, _Storage):
                raise TypeError("map_location callable must return the storage it was given "
                                "(or None); got %s" % type(out).__name__)
            return out
        if isinstance(ml, dict):
            loc = ml.get(loc, loc)
            loc = str(loc)
        elif ml is not None:
            loc = str(ml)
        if not loc.startswith("cpu"):
            raise RuntimeError(
                "Attempting to deserialize object on a %s device but cengine runs on the CPU "
                "only. Use cengine.load with map_location='cpu' (or "
                "map_location=cengine.device('cpu')) to map your storages to the CPU."
                % loc.split(":")[0].upper() if loc.startswith("cuda") else
                "Attempting to deserialize object on device %r, but cengine runs on the CPU "
                "only. Use cengine.load with map_location='cpu' to map your storages to the CPU."
                % loc)
        return storage

    # ------------------------------------------------------------------ tensors
    def tensor(self, storage, storage_offset, size, stride, requires_grad=False,
               backward_hooks=None, metadata=None, dtype=None):
        from .tensor import _wrap
        if not isinstance(storage, _Storage):
            raise UnpicklingError("%s: a tensor refers to %r, not a storage"
                                  % (self.where, type(storage).__name__))
        size = _int_tuple(size, "size", self.where)
        stride = _int_tuple(stride, "stride", self.where)
        if len(size) != len(stride):
            raise UnpicklingError("%s: a tensor has size %s but stride %s"
                                  % (self.where, size, stride))
        if not _is_int(storage_offset) or storage_offset < 0:
            raise UnpicklingError("%s: invalid storage offset %r" % (self.where, storage_offset))
        if backward_hooks:
            raise UnpicklingError("%s: a tensor was saved with backward hooks, which cengine "
                                  "does not restore" % self.where)
        dname = storage.dtype if dtype is None else dtype.name
        npd = _np_dtype(dname, "%s: a tensor" % self.where)
        item = npd.itemsize
        raw = storage.raw
        if raw.nbytes % item:
            raise UnpicklingError("%s: storage %s has %d bytes, not a whole number of %s"
                                  % (self.where, storage.key, raw.nbytes, dname))
        numel_storage = raw.nbytes // item
        n = 1
        for s in size:
            n *= s
        if n:
            last = storage_offset + sum((sz - 1) * st for sz, st in zip(size, stride))
            if last >= numel_storage:
                raise UnpicklingError(
                    "%s: a tensor of size %s, stride %s and offset %d reaches past the end of "
                    "its storage (%d elements): corrupt file"
                    % (self.where, list(size), list(stride), storage_offset, numel_storage))
            arr = np.ndarray(size, dtype=npd, buffer=raw, offset=storage_offset * item,
                             strides=tuple(st * item for st in stride))
        else:
            arr = np.empty(size, dtype=npd)
        if not arr.flags.c_contiguous and _overlapping(size, stride):
            if arr.size > max(16 * numel_storage, 1 << 24):
                raise UnpicklingError(
                    "%s: a view of size %s repeats its storage of %d elements %d-fold; "
                    "refusing to expand it" % (self.where, _brief(list(size)), numel_storage,
                                               arr.size // max(numel_storage, 1)))
            t = _wrap(arr)
            self.fixups.append((t, arr))  # copied once the storage data is read
        else:
            t = _wrap(arr)
        if requires_grad:
            if not _is_bool(requires_grad):
                raise UnpicklingError("%s: invalid requires_grad %s" % (self.where,
                                                                       _brief(requires_grad)))
            if not np.issubdtype(npd, np.floating):
                raise UnpicklingError("%s: a %s tensor cannot require gradients"
                                      % (self.where, dname))
            t.requires_grad_(True)
        return t

    def finish(self):
        for t, view in self.fixups:
            t._data = np.array(view)
        self.fixups = []

    # ------------------------------------------------------------------ globals
    def find_class(self, module, name):
        if module == "__builtin__":  # protocol <= 2 spells builtins the python 2 way
            module = "builtins"
        full = "%s.%s" % (module, name)
        g = self._g.get(full)
        if g is not None:
            return g
        if full in self.user:
            return self.user[full]
        if module == "torch":
            if name in _STORAGE_TYPES:
                d = _STORAGE_TYPES[name]
                if d is None:
                    raise UnpicklingError("%s: the checkpoint holds a torch.%s, a kind of tensor "
                                          "cengine cannot hold" % (self.where, name))
                return _StorageType(name, d)
            if name in _TORCH_DTYPES:
                from . import dtypes
                return getattr(dtypes, _TORCH_DTYPES[name])
            if name in _TORCH_DTYPES_UNSUPPORTED:
                raise UnpicklingError("%s: the checkpoint names the dtype torch.%s, which "
                                      "cengine does not have" % (self.where, name))
        if module == "torch._utils" and name in _UNSUPPORTED_TENSOR_KINDS:
            raise UnpicklingError("%s: the checkpoint holds %s (%s), which cengine cannot load"
                                  % (self.where, _UNSUPPORTED_TENSOR_KINDS[name], full))
        if module == "torch.storage" and name == "UntypedStorage":
            return _StorageType(name, "uint8")
        msg = ("Weights only load failed: %s refers to the global %s, which is not allowed. "
               "cengine loads PyTorch checkpoints the way torch.load(weights_only=True) does: "
               "only tensors, storages, OrderedDict and plain containers (dict, list, tuple, "
               "set, str, bytes, numbers, None), and it never imports or runs code named by a "
               "file. Re-save the data as a state_dict of tensors (torch.save(model.state_dict(), "
               "path)) to load it here, or, if you trust this file and that global, allow it "
               "with cengine.serialization.add_safe_globals([...]) as in torch."
               % (self.where, full))
        if self.weights_only is False:
            msg += (" (weights_only=False is accepted but changes nothing: cengine never "
                    "unpickles arbitrary objects.)")
        raise UnpicklingError(msg)

    def _make_globals(self):
        return {
            "collections.OrderedDict": OrderedDict,
            "collections.Counter": Counter,
            "builtins.set": set,
            "builtins.frozenset": frozenset,
            "builtins.bytearray": bytearray,
            "builtins.complex": complex,
            "_codecs.encode": _codecs_encode,
            "torch._utils._rebuild_tensor": self._rebuild_tensor,
            "torch._utils._rebuild_tensor_v2": self._rebuild_tensor_v2,
            "torch._utils._rebuild_tensor_v3": self._rebuild_tensor_v3,
            "torch._utils._rebuild_parameter": self._rebuild_parameter,
            "torch._utils._rebuild_parameter_with_state": self._rebuild_parameter_with_state,
            "torch._tensor._rebuild_from_type_v2": self._rebuild_from_type_v2,
            "torch.Tensor": _TENSOR_TYPE,
            "torch.nn.parameter.Parameter": _PARAMETER_TYPE,
            "torch.Size": _torch_size,
            "torch.device": _torch_device,
        }

    def callables(self):
        return self._callables

    # the rebuild functions torch's pickles call
    def _rebuild_tensor(self, storage, storage_offset, size, stride):
        return self.tensor(storage, storage_offset, size, stride)

    def _rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad=False,
                           backward_hooks=None, metadata=None):
        return self.tensor(storage, storage_offset, size, stride, requires_grad, backward_hooks)

    def _rebuild_tensor_v3(self, storage, storage_offset, size, stride, requires_grad,
                           backward_hooks, dtype, metadata=None):
        from . import dtypes
        if not isinstance(dtype, dtypes.dtype):
            raise UnpicklingError("%s: invalid tensor dtype %r" % (self.where, dtype))
        return self.tensor(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                           dtype=dtype)

    def _parameter(self, data, requires_grad):
        from .tensor import Tensor
        from .nn.parameter import Parameter
        if not isinstance(data, Tensor):
            raise UnpicklingError("%s: a Parameter's data is %s, not a tensor"
                                  % (self.where, type(data).__name__))
        p = Parameter(data, requires_grad=bool(requires_grad))
        for i, (t, view) in enumerate(self.fixups):
            if t is data:
                self.fixups[i] = (p, view)
        return p

    def _rebuild_parameter(self, data, requires_grad, backward_hooks=None):
        if backward_hooks:
            raise UnpicklingError("%s: a Parameter was saved with backward hooks, which cengine "
                                  "does not restore" % self.where)
        return self._parameter(data, requires_grad)

    def _rebuild_parameter_with_state(self, data, requires_grad, backward_hooks, state):
        if state:
            raise UnpicklingError("%s: a Parameter was saved with Python attributes %s, which "
                                  "cengine does not restore" % (self.where, _keys(state)))
        return self._rebuild_parameter(data, requires_grad, backward_hooks)

    def _rebuild_from_type_v2(self, func, new_type, args, state):
        if new_type is not _TENSOR_TYPE and new_type is not _PARAMETER_TYPE:
            raise UnpicklingError("%s: cannot rebuild a tensor of type %r"
                                  % (self.where, new_type))
        if self._callables.get(id(func)) is not func or not getattr(func, "__name__", "") \
                .startswith("_rebuild_"):
            raise UnpicklingError("%s: invalid tensor rebuild function" % self.where)
        if not isinstance(args, tuple):
            raise UnpicklingError("%s: malformed tensor arguments" % self.where)
        t = func(*args)
        if state:
            raise UnpicklingError("%s: a tensor was saved with Python attributes %s, which "
                                  "cengine does not restore" % (self.where, _keys(state)))
        if new_type is _PARAMETER_TYPE:
            from .nn.parameter import Parameter
            if not isinstance(t, Parameter):
                t = self._parameter(t, t.requires_grad)
        return t


def user_globals():
    """(name, object) pairs the user allowed with cengine.serialization.add_safe_globals."""
    from . import serialization
    out = []
    for g in serialization._SAFE_GLOBALS:
        if isinstance(g, tuple):
            out.append((g[1], g[0]))
        else:
            out.append(("%s.%s" % (g.__module__, g.__qualname__), g))
    return out


def _keys(state):
    if isinstance(state, dict):
        return sorted(map(str, state))
    return repr(state)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_bool(v):
    return isinstance(v, bool) or v in (0, 1)


def _int_tuple(v, what, where):
    if not isinstance(v, (tuple, list)) or not all(_is_int(x) and x >= 0 for x in v):
        raise UnpicklingError("%s: invalid tensor %s %s" % (where, what, _brief(v)))
    return tuple(v)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxtuple, _REPR.maxlist, _REPR.maxdict = 3, 6, 6, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def _brief(x):
    """a bounded repr of a value read from the file (its full repr could be exponential)"""
    try:
        return _REPR.repr(x)
    except Exception:
        return "<%s>" % type(x).__name__


def _overlapping(size, stride):
    """True when two indices of a view (size, stride) reach the same element."""
    dims = sorted((st, sz) for sz, st in zip(size, stride) if sz > 1)
    extent = 1
    for st, sz in dims:
        if st < extent:
            return True
        extent += st * (sz - 1)
    return False


_CODECS = ("latin1", "latin-1", "iso-8859-1", "iso8859-1", "utf-8", "utf8", "ascii")


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    # how protocol-2 pickles spell bytes: _codecs.encode(str, 'latin1')
    if not isinstance(obj, str) or not isinstance(encoding, str) or \
            encoding.lower() not in _CODECS:   # (no codecs.lookup: it imports codec modules)
        raise UnpicklingError("_codecs.encode is only allowed on a str with a latin-1, utf-8 "
                              "or ascii encoding")
    return obj.encode(encoding, errors if errors in ("strict", "replace", "ignore") else "strict")


def _torch_size(*args):
    if len(args) > 1 or (args and not isinstance(args[0], (tuple, list))):
        raise UnpicklingError("malformed torch.Size")
    v = tuple(args[0]) if args else ()
    if not all(_is_int(x) for x in v):
        raise UnpicklingError("malformed torch.Size %s" % _brief(v))
    return v


def _torch_device(*args):
    from .tensor import device
    if not args or len(args) > 2 or not isinstance(args[0], str) or \
            (len(args) == 2 and args[1] is not None and not _is_int(args[1])):
        raise UnpicklingError("malformed torch.device%s" % _brief(args))
    try:
        return device(*args)
    except (RuntimeError, ValueError) as e:
        raise UnpicklingError("unsupported torch.device%s: %s" % (_brief(args), e)) from None


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# what the allowed builtin constructors may be called with (never a size: bytearray(10**12)
# would allocate it)
_BUILTIN_ARGS = {
    OrderedDict: lambda a: len(a) == 0 or (len(a) == 1 and isinstance(a[0], (list, tuple, dict))),
    Counter: lambda a: len(a) == 0 or (len(a) == 1 and isinstance(a[0], (list, tuple, dict))),
    set: lambda a: len(a) == 0 or (len(a) == 1 and isinstance(a[0], (list, tuple, set))),
    frozenset: lambda a: len(a) == 0 or (len(a) == 1 and isinstance(a[0], (list, tuple, set))),
    bytearray: lambda a: len(a) == 0 or (len(a) == 1 and isinstance(a[0], (bytes, bytearray)))
    or (len(a) == 2 and isinstance(a[0], str) and a[1] in ("latin-1", "latin1")),
    complex: lambda a: 1 <= len(a) <= 2 and all(_is_number(x) for x in a),
}

_MAX_KEY_DEPTH = 100
_HASHING = (set, frozenset, OrderedDict, Counter)
_MAX_KEY_NODES = 100000   # a tuple DAG (t = (t, t) repeated) is shallow but exponentially wide


def _check_depth(k, unpickler):
    """refuse keys that hashing would recurse into too deeply or walk for too long (counting
    every visit, shared sub-tuples included, since hash() visits them again too)"""
    todo = [(k, 0)]
    nodes = 0
    while todo:
        v, d = todo.pop()
        nodes += 1
        if nodes > _MAX_KEY_NODES:
            unpickler._fail("corrupt pickle: a key with more than %d parts" % _MAX_KEY_NODES)
        if isinstance(v, (tuple, frozenset)):
            if d >= _MAX_KEY_DEPTH:
                unpickler._fail("corrupt pickle: a key nested more than %d levels deep"
                                % _MAX_KEY_DEPTH)
            todo.extend((x, d + 1) for x in v)


# ---------------------------------------------------------------------------- pickle machine
class _Unpickler:
    """Reads one pickle from `file` without importing or calling anything outside `loader`'s
    fixed list of globals. Supports the opcodes of protocols 0-5 that build data; those that
    would import by other means (EXT1/2/4, INST, OBJ) or build arbitrary objects are refused."""

    def __init__(self, file, loader, persistent_load, encoding="utf-8", allow_globals=True):
        self.allow_globals = allow_globals
        self.size = _file_size(file)
        self.tell = file.tell
        self.read = file.read
        self.readline = file.readline
        self.loader = loader
        self.persistent_load = persistent_load
        self.encoding = encoding
        self.callables = loader.callables()

    def _fail(self, msg):
        raise UnpicklingError("%s: %s" % (self.loader.where, msg))

    def _readn(self, n):
        if n < 0:
            self._fail("corrupt pickle (negative length)")
        if n > self.size - self.tell():  # never ask read() for more than the file holds
            self._fail("pickle data was truncated (truncated or corrupt file)")
        data = self.read(n)
        if len(data) != n:
            self._fail("pickle data was truncated (truncated or corrupt file)")
        return data

    def _line(self):
        data = self.readline()
        if not data.endswith(b"\n"):
            self._fail("pickle data was truncated (truncated or corrupt file)")
        return data[:-1]

    def _decode_str(self, b):
        if self.encoding == "bytes":
            return b
        return b.decode(self.encoding, "strict")

    def _call(self, func, args):
        if self.loader.user_ids.get(id(func)) is func and isinstance(args, tuple):
            return func(*args)  # allowed by the user
        if id(func) not in self.callables or self.callables[id(func)] is not func:
            self._fail("the pickle calls %r, which is not an allowed function"
                       % (type(func).__name__,))
        if not isinstance(args, tuple):
            self._fail("malformed call arguments")
        check = _BUILTIN_ARGS.get(func)
        if check is not None and not check(args):
            self._fail("invalid arguments for %s" % func.__name__)
        if func in _HASHING and args:   # these hash their elements (or keys) in C
            items = args[0].keys() if isinstance(args[0], dict) else args[0]
            for x in items:
                _check_depth(x, self)
        try:
            return func(*args)
        except (UnpicklingError, RuntimeError):
            raise
        except (TypeError, ValueError, OverflowError, MemoryError) as e:
            self._fail("invalid arguments for %s: %s"
                       % (getattr(func, "__name__", type(func).__name__), e))

    def load(self):
        stack = []
        metastack = []
        memo = {}
        readn = self._readn

        def pop_mark():
            nonlocal stack
            if not metastack:
                self._fail("corrupt pickle (no mark)")
            items = stack
            stack = metastack.pop()
            return items

        def top():
            if not stack:
                self._fail("corrupt pickle (stack underflow)")
            return stack[-1]

        def pop():
            if not stack:
                self._fail("corrupt pickle (stack underflow)")
            return stack.pop()

        def memo_get(i):
            try:
                return memo[i]
            except KeyError:
                self._fail("corrupt pickle (memo key %r missing)" % (i,))

        def hashable(k):
            _check_depth(k, self)  # hashing a deeply nested tuple recurses in C
            try:
                hash(k)
            except TypeError:
                self._fail("corrupt pickle: unhashable key of type %s" % type(k).__name__)
            return k

        def setitems(d, items):
            if not isinstance(d, dict):
                self._fail("corrupt pickle (SETITEM on a %s)" % type(d).__name__)
            if len(items) % 2:
                self._fail("corrupt pickle (odd SETITEMS)")
            for i in range(0, len(items), 2):
                d[hashable(items[i])] = items[i + 1]

        while True:
            op = self.read(1)
            if not op:
                self._fail("pickle data was truncated (truncated or corrupt file)")
            c = op[0]
            if c == 0x80:  # PROTO
                proto = readn(1)[0]
                if proto > 5:
                    self._fail("unsupported pickle protocol %d" % proto)
            elif c == 0x95:  # FRAME
                readn(8)
            elif c == 0x2e:  # STOP
                return pop()
            elif c == 0x28:  # MARK
                metastack.append(stack)
                stack = []
            elif c == 0x30:  # POP
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif c == 0x31:  # POP_MARK
                pop_mark()
            elif c == 0x32:  # DUP
                stack.append(top())
            elif c == 0x4e:  # NONE
                stack.append(None)
            elif c == 0x88:  # NEWTRUE
                stack.append(True)
            elif c == 0x89:  # NEWFALSE
                stack.append(False)
            elif c == 0x49:  # INT (text)
                line = self._line()
                if line == b"00":
                    stack.append(False)
                elif line == b"01":
                    stack.append(True)
                else:
                    stack.append(self._text_int(line))
            elif c == 0x4c:  # LONG (text)
                line = self._line()
                if line.endswith(b"L"):
                    line = line[:-1]
                stack.append(self._text_int(line))
            elif c == 0x4a:  # BININT
                stack.append(struct.unpack("<i", readn(4))[0])
            elif c == 0x4b:  # BININT1
                stack.append(readn(1)[0])
            elif c == 0x4d:  # BININT2
                stack.append(struct.unpack("<H", readn(2))[0])
            elif c == 0x8a:  # LONG1
                n = readn(1)[0]
                stack.append(int.from_bytes(readn(n), "little", signed=True))
            elif c == 0x8b:  # LONG4
                (n,) = struct.unpack("<i", readn(4))
                stack.append(int.from_bytes(readn(n), "little", signed=True))
            elif c == 0x46:  # FLOAT (text)
                try:
                    stack.append(float(self._line().decode("ascii")))
                except (ValueError, UnicodeDecodeError):
                    self._fail("corrupt pickle (bad FLOAT)")
            elif c == 0x47:  # BINFLOAT
                stack.append(struct.unpack(">d", readn(8))[0])
            elif c == 0x58:  # BINUNICODE
                (n,) = struct.unpack("<I", readn(4))
                stack.append(self._utf8(readn(n)))
            elif c == 0x8c:  # SHORT_BINUNICODE
                stack.append(self._utf8(readn(readn(1)[0])))
            elif c == 0x8d:  # BINUNICODE8
                (n,) = struct.unpack("<Q", readn(8))
                stack.append(self._utf8(readn(n)))
            elif c == 0x56:  # UNICODE (text, raw-unicode-escape)
                try:
                    stack.append(self._line().decode("raw-unicode-escape"))
                except UnicodeDecodeError:
                    self._fail("corrupt pickle (bad UNICODE)")
            elif c == 0x54:  # BINSTRING (python 2 str)
                (n,) = struct.unpack("<i", readn(4))
                stack.append(self._py2str(readn(n)))
            elif c == 0x55:  # SHORT_BINSTRING
                stack.append(self._py2str(readn(readn(1)[0])))
            elif c == 0x42:  # BINBYTES
                (n,) = struct.unpack("<I", readn(4))
                stack.append(readn(n))
            elif c == 0x43:  # SHORT_BINBYTES
                stack.append(readn(readn(1)[0]))
            elif c == 0x8e:  # BINBYTES8
                (n,) = struct.unpack("<Q", readn(8))
                stack.append(readn(n))
            elif c == 0x96:  # BYTEARRAY8
                (n,) = struct.unpack("<Q", readn(8))
                stack.append(bytearray(readn(n)))
            elif c == 0x29:  # EMPTY_TUPLE
                stack.append(())
            elif c == 0x74:  # TUPLE
                v = tuple(pop_mark())  # (evaluated before `stack` is looked up)
                stack.append(v)
            elif c == 0x85:  # TUPLE1
                stack.append((pop(),))
            elif c == 0x86:  # TUPLE2
                b = pop()
                a = pop()
                stack.append((a, b))
            elif c == 0x87:  # TUPLE3
                cc = pop()
                b = pop()
                a = pop()
                stack.append((a, b, cc))
            elif c == 0x5d:  # EMPTY_LIST
                stack.append([])
            elif c == 0x6c:  # LIST
                v = list(pop_mark())
                stack.append(v)
            elif c == 0x61:  # APPEND
                v = pop()
                lst = top()
                if not isinstance(lst, list):
                    self._fail("corrupt pickle (APPEND to a %s)" % type(lst).__name__)
                lst.append(v)
            elif c == 0x65:  # APPENDS
                items = pop_mark()
                lst = top()
                if not isinstance(lst, list):
                    self._fail("corrupt pickle (APPENDS to a %s)" % type(lst).__name__)
                lst.extend(items)
            elif c == 0x7d:  # EMPTY_DICT
                stack.append({})
            elif c == 0x64:  # DICT
                items = pop_mark()
                d = {}
                setitems(d, items)
                stack.append(d)
            elif c == 0x73:  # SETITEM
                v = pop()
                k = pop()
                setitems(top(), [k, v])
            elif c == 0x75:  # SETITEMS
                items = pop_mark()
                setitems(top(), items)
            elif c == 0x8f:  # EMPTY_SET
                stack.append(set())
            elif c == 0x90:  # ADDITEMS
                items = pop_mark()
                s = top()
                if not isinstance(s, set):
                    self._fail("corrupt pickle (ADDITEMS to a %s)" % type(s).__name__)
                for v in items:
                    s.add(hashable(v))
            elif c == 0x91:  # FROZENSET
                v = frozenset(hashable(x) for x in pop_mark())
                stack.append(v)
            elif c == 0x70:  # PUT (text)
                memo[self._text_int(self._line())] = top()
            elif c == 0x71:  # BINPUT
                memo[readn(1)[0]] = top()
            elif c == 0x72:  # LONG_BINPUT
                memo[struct.unpack("<I", readn(4))[0]] = top()
            elif c == 0x94:  # MEMOIZE
                memo[len(memo)] = top()
            elif c == 0x67:  # GET (text)
                stack.append(memo_get(self._text_int(self._line())))
            elif c == 0x68:  # BINGET
                stack.append(memo_get(readn(1)[0]))
            elif c == 0x6a:  # LONG_BINGET
                stack.append(memo_get(struct.unpack("<I", readn(4))[0]))
            elif c == 0x63:  # GLOBAL
                module = self._line().decode("utf-8", "replace")
                name = self._line().decode("utf-8", "replace")
                stack.append(self._find_class(module, name))
            elif c == 0x93:  # STACK_GLOBAL
                name = pop()
                module = pop()
                if not isinstance(module, str) or not isinstance(name, str):
                    self._fail("corrupt pickle (STACK_GLOBAL of non-strings)")
                stack.append(self._find_class(module, name))
            elif c == 0x52:  # REDUCE
                args = pop()
                func = pop()
                stack.append(self._call(func, args))
            elif c == 0x81:  # NEWOBJ
                args = pop()
                cls = pop()
                stack.append(self._newobj(cls, args, {}))
            elif c == 0x92:  # NEWOBJ_EX
                kwargs = pop()
                args = pop()
                cls = pop()
                stack.append(self._newobj(cls, args, kwargs))
            elif c == 0x62:  # BUILD
                state = pop()
                self._build(top(), state)
            elif c == 0x51:  # BINPERSID
                stack.append(self.persistent_load(pop()))
            elif c == 0x50:  # PERSID (text)
                stack.append(self.persistent_load(self._line().decode("ascii", "replace")))
            elif c in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
                self._fail("the pickle uses the copyreg extension registry (EXT opcodes), "
                           "which cengine does not allow")
            elif c in (0x69, 0x6f):  # INST, OBJ
                self._fail("the pickle builds an arbitrary object (INST/OBJ opcode), which "
                           "cengine does not allow")
            else:
                self._fail("unsupported or corrupt pickle opcode 0x%02x" % c)

    def _find_class(self, module, name):
        if not self.allow_globals:
            self._fail("the pickle names the global %s.%s where only data may be" % (module,
                                                                                 name))
        return self.loader.find_class(module, name)

    def _text_int(self, line):
        try:
            return int(line.decode("ascii"), 0 if line[:2] in (b"0x", b"0o") else 10)
        except (ValueError, UnicodeDecodeError):
            self._fail("corrupt pickle (bad integer %r)" % line[:40])

    def _utf8(self, b):
        try:
            return b.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            self._fail("corrupt pickle (invalid utf-8 string)")

    def _py2str(self, b):
        try:
            return self._decode_str(b)
        except (UnicodeDecodeError, LookupError) as e:
            self._fail("cannot decode a python 2 string (%s); pass encoding='latin1' or "
                       "encoding='bytes'" % e)

    def _newobj(self, cls, args, kwargs):
        if self.loader.user_ids.get(id(cls)) is cls and isinstance(cls, type) and \
                isinstance(args, tuple) and isinstance(kwargs, dict):
            return cls.__new__(cls, *args, **kwargs)  # allowed by the user
        if cls not in (OrderedDict, Counter, dict, list, set) or not isinstance(args, tuple) \
                or args or kwargs:
            self._fail("the pickle creates an object of %r, which cengine does not allow"
                       % (getattr(cls, "__name__", type(cls).__name__),))
        return cls()

    def _build(self, inst, state):
        if self.loader.user_ids.get(id(type(inst))) is type(inst):  # allowed by the user
            setstate = getattr(inst, "__setstate__", None)
            if setstate is not None:
                setstate(state)
                return
            slotstate = None
            if isinstance(state, tuple) and len(state) == 2:
                state, slotstate = state
            if state:
                inst.__dict__.update(state)
            for k, v in (slotstate or {}).items():
                setattr(inst, k, v)
            return
        # only the dict subclasses created here take attributes (a state_dict's `_metadata`)
        if type(inst) not in (OrderedDict, Counter):
            self._fail("the pickle sets the state of a %s, which cengine does not allow"
                       % type(inst).__name__)
        slotstate = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slotstate = state
        if slotstate:
            self._fail("the pickle sets slots of a %s" % type(inst).__name__)
        if state is None:
            return
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            self._fail("malformed object state")
        for k, v in state.items():
            if k.startswith("__"):
                self._fail("the pickle sets the attribute %r" % k)
            inst.__dict__[k] = v


# ---------------------------------------------------------------------------- the zip format
def is_torch_zip(head):
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def is_torch_legacy(head):
    """Legacy torch.save files start with the pickled magic number (protocol 2 by default)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _storage_pid(pid, loader, legacy):
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
        if isinstance(pid, tuple) and pid and pid[0] == "module":
            raise UnpicklingError("%s holds a whole pickled Module, which cengine does not load "
                                  "(it would need to run the pickled code). Load it with torch "
                                  "and save model.state_dict() instead." % loader.where)
        raise UnpicklingError("%s: unknown persistent id %r" % (loader.where, pid[:1] if
                                                                isinstance(pid, tuple) else pid))
    n = 6 if legacy else 5
    if len(pid) != n:
        raise UnpicklingError("%s: malformed storage reference" % loader.where)
    stype, key, location, numel = pid[1:5]
    if not isinstance(stype, _StorageType):
        from . import dtypes
        if isinstance(stype, dtypes.dtype):  # torch >= 2 may name the dtype itself
            stype = _StorageType(stype.name, stype.name)
        else:
            raise UnpicklingError("%s: malformed storage type %s" % (loader.where, _brief(stype)))
    if not isinstance(key, str) or not isinstance(location, str) or not _is_int(numel) \
            or numel < 0:
        raise UnpicklingError("%s: malformed storage reference" % loader.where)
    return stype, key, location, numel, (pid[5] if legacy else None)


def load_torch_zip(fh, where, map_location, weights_only, mmap_path=None, encoding="utf-8"):
    """Load a torch zip checkpoint from the seekable binary file `fh`."""
    try:
        zf = zipfile.ZipFile(fh)
        names = zf.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        raise RuntimeError("%s is not a valid checkpoint: truncated or corrupt PyTorch zip file "
                           "(%s)" % (where, e)) from None
    pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1
           and n.rsplit("/", 1)[-1] == "data.pkl"]
    if len(pkl) != 1:
        raise RuntimeError("%s is a zip file but not a PyTorch checkpoint (no <name>/data.pkl "
                           "inside)" % where)
    prefix = pkl[0][:-len("data.pkl")]
    infos = {i.filename: i for i in zf.infolist()}
    if prefix + "constants.pkl" in infos or any(n.startswith(prefix + "code/") for n in names):
        raise RuntimeError("%s is a TorchScript archive (torch.jit.save), which holds code: "
                           "cengine does not load it. Load it with torch and save its "
                           "state_dict() instead." % where)
    big = False
    if prefix + "byteorder" in infos:
        order = zf.read(prefix + "byteorder").strip()
        if order not in (b"little", b"big"):
            raise RuntimeError("%s: unknown byte order %r" % (where, order))
        big = order == b"big"
    loader = _Loader(where, map_location, weights_only)
    file_size = _file_size(fh)

    used = []   # sorted byte ranges of the records read so far

    def read_record(key, nbytes):
        name = prefix + "data/" + key
        info = infos.get(name)
        if info is None:
            raise RuntimeError("%s is not a valid checkpoint: storage %r is missing (truncated "
                               "or corrupt file)" % (where, key))
        if info.file_size != nbytes:
            raise RuntimeError("%s is not a valid checkpoint: storage %r holds %d bytes, %d "
                               "expected" % (where, key, info.file_size, nbytes))
        if nbytes > file_size:  # a size claimed by the zip directory: check before allocating
            raise RuntimeError("%s is not a valid checkpoint: storage %r claims %d bytes, more "
                               "than the file holds" % (where, key, nbytes))
        if nbytes == 0:
            return np.empty(0, np.uint8)
        if info.compress_type == zipfile.ZIP_STORED:
            fh.seek(info.header_offset)
            local = fh.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise RuntimeError("%s is not a valid checkpoint: corrupt zip entry %r"
                                   % (where, name))
            nlen, xlen = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + nlen + xlen
            if start + nbytes > file_size:
                raise RuntimeError("%s is not a valid checkpoint: storage %r is truncated"
                                   % (where, key))
            # records may not share bytes (a directory of many names for one record would make
            # a small file allocate its data many times over)
            i = bisect.bisect(used, (start, start + nbytes))
            if (i and used[i - 1][1] > start) or (i < len(used) and used[i][0] < start + nbytes):
                raise RuntimeError("%s is not a valid checkpoint: storage %r overlaps another "
                                   "record" % (where, key))
            used.insert(i, (start, start + nbytes))
            if mmap_path is not None:
                return np.memmap(mmap_path, dtype=np.uint8, mode="c", offset=start,
                                 shape=(nbytes,))
            raw = np.empty(nbytes, np.uint8)
            fh.seek(start)
            got = fh.readinto(memoryview(raw))
            if got != nbytes:
                raise RuntimeError("%s is not a valid checkpoint: storage %r is truncated"
                                   % (where, key))
            # (like torch, the tensor data's CRC is not checked: it would cost more than the
            # read itself; the pickle's is, by zipfile)
            return raw
        if info.compress_size * 64 < nbytes:   # deflate rarely beats 64x on tensor data
            raise RuntimeError("%s is not a valid checkpoint: storage %r expands %d-fold when "
                               "decompressed" % (where, key, nbytes // max(info.compress_size, 1)))
        try:  # a compressed entry (torch never writes one, but a zip tool may)
            return np.frombuffer(bytearray(zf.read(name)), np.uint8)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
            raise RuntimeError("%s is not a valid checkpoint: storage %r: %s"
                               % (where, key, e)) from None

    def persistent_load(pid):
        stype, key, location, numel, _ = _storage_pid(pid, loader, legacy=False)
        npd = _np_dtype(stype.dtype, "%s: storage %s" % (where, key))
        st = loader.storages.get(key)
        if st is None:
            raw = read_record(key, numel * npd.itemsize)
            if big and npd.itemsize > 1:
                raw = raw.view(npd).byteswap().view(np.uint8)
            st = loader.restore_location(_Storage(raw, stype.dtype, location, key))
            loader.storages[key] = st
        elif st.raw.nbytes != numel * npd.itemsize and stype.dtype == st.dtype:
            raise UnpicklingError("%s: storage %s is referenced with two sizes" % (where, key))
        if stype.dtype != st.dtype:  # the same bytes seen as another dtype (a dtype view)
            st = _Storage(st.raw, stype.dtype, st.location, key)
        return st

    pinfo = zf.getinfo(pkl[0])
    if pinfo.compress_type != zipfile.ZIP_STORED and pinfo.file_size > (1 << 20) and \
            pinfo.file_size > 64 * max(pinfo.compress_size, 1):
        raise RuntimeError("%s is not a valid checkpoint: its compressed pickle expands %d-fold"
                           % (where, pinfo.file_size // max(pinfo.compress_size, 1)))
    try:
        data = zf.read(pkl[0])
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
        raise RuntimeError("%s is not a valid checkpoint: %s" % (where, e)) from None
    obj = _Unpickler(io.BytesIO(data), loader, persistent_load, encoding).load()
    loader.finish()
    return obj


# ---------------------------------------------------------------------------- the legacy format
def load_torch_legacy(fh, where, map_location, weights_only, encoding="utf-8"):
    """Load a checkpoint written with torch.save(..., _use_new_zipfile_serialization=False)."""
    loader = _Loader(where, map_location, weights_only)

    def no_pid(pid):
        raise UnpicklingError("%s: unexpected persistent id in the header" % where)

    def header_pickle():
        # the three header pickles are plain data: no global may even be named there, so a
        # pickle that is not a torch file is refused before anything in it is looked up
        try:
            return _Unpickler(fh, loader, no_pid, encoding, allow_globals=False).load()
        except UnpicklingError as e:
            raise RuntimeError("%s is not a valid checkpoint: not a PyTorch file, or a corrupt "
                               "one (%s)" % (where, str(e).replace(where + ": ", ""))) from None

    magic = header_pickle()
    if magic != _LEGACY_MAGIC:
        raise RuntimeError("%s is not a valid checkpoint: invalid magic number (not a PyTorch "
                           "file, or a corrupt one)" % where)
    protocol = header_pickle()
    if protocol != _LEGACY_PROTOCOL:
        raise RuntimeError("%s: invalid PyTorch protocol version %r" % (where, protocol))
    sys_info = header_pickle()
    little = True
    if isinstance(sys_info, dict):
        little = bool(sys_info.get("little_endian", True))
    roots = {}  # key -> (_Storage of the root, numel)
    views = {}

    def persistent_load(pid):
        stype, key, location, numel, view = _storage_pid(pid, loader, legacy=True)
        npd = _np_dtype(stype.dtype, "%s: storage %s" % (where, key))
        root = roots.get(key)
        if root is None:
            if numel * npd.itemsize > _file_size(fh):
                raise RuntimeError("%s is not a valid checkpoint: storage %s is larger than the "
                                   "file (truncated or corrupt)" % (where, key))
            st = _Storage(np.zeros(numel * npd.itemsize, np.uint8), stype.dtype, location, key)
            st = loader.restore_location(st)
            roots[key] = (st, numel)
            root = roots[key]
        st = root[0]
        if view is None:
            return st
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and _is_int(view[1]) and _is_int(view[2]) and view[1] >= 0 and view[2] >= 0
                and view[1] + view[2] <= root[1]):
            raise UnpicklingError("%s: malformed storage view" % where)
        vk, off, vsize = view
        if vk not in views:
            item = npd.itemsize
            views[vk] = _Storage(st.raw[off * item:(off + vsize) * item], st.dtype, st.location,
                                 vk)
        return views[vk]

    obj = _Unpickler(fh, loader, persistent_load, encoding).load()
    keys = _Unpickler(fh, loader, no_pid, encoding).load()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise RuntimeError("%s is not a valid checkpoint: corrupt storage list" % where)
    if len(set(keys)) != len(keys) or set(keys) != set(roots):
        raise RuntimeError("%s is not a valid checkpoint: its storage list does not match the "
                           "storages its tensors use" % where)
    for key in keys:
        st, numel = roots[key]
        head = fh.read(8)
        if len(head) != 8:
            raise RuntimeError("%s is not a valid checkpoint: truncated storage data" % where)
        (n,) = struct.unpack("<q" if little else ">q", head)
        if n != numel:
            raise RuntimeError("%s is not a valid checkpoint: storage %s holds %d elements, %d "
                               "expected" % (where, key, n, numel))
        if st.raw.nbytes and fh.readinto(memoryview(st.raw)) != st.raw.nbytes:
            raise RuntimeError("%s is not a valid checkpoint: truncated storage data" % where)
        npd = _np_dtype(st.dtype, where)
        if not little and npd.itemsize > 1:
            typed = st.raw.view(npd)
            typed.byteswap(inplace=True)
    loader.finish()
    return obj


def _file_size(fh):
    try:
        return os.fstat(fh.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        pos = fh.tell()
        end = fh.seek(0, 2)
        fh.seek(pos)
        return end
