"""Checkpoints: cengine.save(obj, f) / cengine.load(f).

Format: one safetensors file. Every tensor (and numpy array) in `obj` is a safetensors entry,
named after its path in the object ("model.0.weight"; a flat state_dict is therefore a plain
safetensors file other tools can read). The rest of the structure (dicts, lists, tuples,
strings, numbers, bools, None) is JSON in the header's metadata under "cengine.structure".
Loading parses JSON and raw tensor bytes only: no pickle, no code from the file is ever run.

Writes to a path are atomic (_atomicfile.py): the data goes to a temporary file in the same
directory, is flushed to disk, then renamed over the target (os.replace), so a crash leaves
either the old file or the new one, never half a file. The temporary file of a save that was
killed is removed by the next save to the same path.

load() also reads files written by torch.save (zip and legacy formats) the way
torch.load(weights_only=True) does, without torch and without running code (_torch_format.py).
"""
import io
import json
import os
import struct
from collections import OrderedDict

import ml_dtypes
import numpy as np

from ._atomicfile import write_atomic

__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals",
           "safe_globals"]

_FORMAT = "cengine.format"
_STRUCT = "cengine.structure"
_VERSION = "1"


def _safetensors():
    try:
        import safetensors.numpy as sn
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("cengine.save/load need the 'safetensors' package "
                          "(pip install safetensors)") from e
    return sn


# ---------------------------------------------------------------------------- encoding
class _Encoder:
    def __init__(self):
        self.tensors = {}   # safetensors key -> contiguous ndarray
        self._by_id = {}    # id(ndarray) -> key (shared storage is written once)
        self._keep = []     # keep arrays alive so ids stay unique while encoding

    def _key(self, path):
        base = path or "tensor"
        key, n = base, 1
        while key in self.tensors:
            key = "%s#%d" % (base, n)
            n += 1
        return key

    def _array(self, arr, path):
        k = self._by_id.get(id(arr))
        if k is not None and self.tensors[k].shape == arr.shape:
            return k
        key = self._key(path)
        self.tensors[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        self._by_id[id(arr)] = key
        self._keep.append(arr)
        return key

    def encode(self, obj, path):
        from .tensor import Tensor
        from .dtypes import dtype as _ce_dtype
        from .nn.module import Module
        if obj is None or isinstance(obj, (bool, str)):
            return {"v": obj}
        if isinstance(obj, (int, float)):
            return {"v": obj}
        if isinstance(obj, Tensor):
            from .nn.parameter import Parameter
            if obj._data.dtype.kind not in "biuf" and obj._data.dtype != _BF16:
                raise TypeError("cengine.save: tensors of dtype %s are not supported" % obj.dtype)
            a = obj._data
            if type(a) is not np.ndarray:        # a cuda tensor: its values, saved from the host
                from . import _device as _dv
                node = {"tensor": self._array(_dv.to_host(a), path), "dev": str(obj.device)}
            else:
                node = {"tensor": self._array(a, path)}
            if obj.requires_grad:
                node["rg"] = True
            if isinstance(obj, Parameter):
                node["param"] = True
            return node
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in "biuf" and obj.dtype != _BF16:
                raise TypeError("cengine.save: arrays of dtype %s are not supported" % obj.dtype)
            return {"ndarray": self._array(obj, path)}
        if isinstance(obj, np.generic):
            return {"v": obj.item()}
        if isinstance(obj, _ce_dtype):
            return {"dtype": obj.name}
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if not (k is None or isinstance(k, (str, int, float, bool, tuple))):
                    raise TypeError("cengine.save: dict keys must be str, int, float, bool, None "
                                    "or tuples of those, got %s" % type(k).__name__)
                sub = k if isinstance(k, str) else str(k)
                items.append([self.encode(k, None), self.encode(v, _join(path, sub))])
            node = {"dict": items}
            if isinstance(obj, OrderedDict):
                node["ordered"] = True
            return node
        if isinstance(obj, (list, tuple)):
            enc = [self.encode(v, _join(path, str(i))) for i, v in enumerate(obj)]
            return {"list": enc} if isinstance(obj, list) else {"tuple": enc}
        if isinstance(obj, Module) or callable(getattr(obj, "state_dict", None)):
            raise TypeError(_whole_object_message(obj, path))
        raise TypeError("cengine.save: cannot save an object of type %s (supported: Tensor, "
                        "numpy array, dict, list, tuple, str, int, float, bool, None)"
                        % type(obj).__name__)


def _whole_object_message(obj, path):
    from .nn.module import Module
    from .optim.optimizer import Optimizer
    if isinstance(obj, Module):
        what, var = "a whole Module", "model"
    elif isinstance(obj, Optimizer):
        what, var = "a whole Optimizer", "optimizer"
    else:
        what, var = "an object with a state_dict", "obj"
    where = " (at %r)" % path if path else ""
    return ("cengine.save: cannot save %s (%s)%s: that would need pickle, and loading a pickle "
            "can run arbitrary code. Save its state instead: ce.save(%s.state_dict(), path); to "
            "restore, build the %s again and call %s.load_state_dict(ce.load(path))."
            % (what, type(obj).__name__, where, var, "object" if var == "obj" else var, var))


def _join(path, name):
    return name if not path else path + "." + name


# ---------------------------------------------------------------------------- decoding
def _place(arr, saved, ml):
    """The array of a tensor saved from device `saved` ('cpu', 'cuda:0', ...), on the device
    map_location `ml` names: None keeps the saved device, a device or string moves every tensor
    there, a dict renames locations; a callable(tensor, location) returns the tensor to use
    (None: the saved placement)."""
    from .tensor import _check_device, _move, _wrap
    if callable(ml):
        r = ml(_wrap(arr), saved)
        if r is not None:
            if not hasattr(r, "_data"):
                raise TypeError("map_location callable must return a Tensor (or None); got %s"
                                % type(r).__name__)
            return r._data
        loc = saved
    elif isinstance(ml, dict):
        loc = ml.get(saved, saved)
    elif ml is not None:
        loc = ml
    else:
        loc = saved
    d = _check_device(loc)
    if d.type == "cpu" and type(arr) is np.ndarray:
        return arr
    return _move(arr, d)


def _decode(node, arrays, where, ml=None):
    from .tensor import _wrap
    if not isinstance(node, dict) or len(node) == 0:
        raise RuntimeError("%s: malformed structure entry %r" % (where, node))
    if "v" in node:
        v = node["v"]
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise RuntimeError("%s: malformed value %r" % (where, v))
        return v
    if "tensor" in node or "ndarray" in node:
        key = node.get("tensor", node.get("ndarray"))
        if not isinstance(key, str) or key not in arrays:
            raise RuntimeError("%s: the structure refers to a missing tensor %r" % (where, key))
        arr = arrays[key]
        if "ndarray" in node:
            return arr
        _check_tensor_dtype(arr, key, where)
        dev = node.get("dev", "cpu")
        if dev != "cpu" or ml is not None:
            if not isinstance(dev, str):
                raise RuntimeError("%s: malformed device entry %r" % (where, dev))
            arr = _place(arr, dev, ml)
        if node.get("param"):
            from .nn.parameter import Parameter
            return Parameter(_wrap(arr), bool(node.get("rg", False)))
        t = _wrap(arr)
        if node.get("rg"):
            t.requires_grad_(True)
        return t
    if "dtype" in node:
        from . import dtypes
        d = getattr(dtypes, str(node["dtype"]), None)
        if not isinstance(d, dtypes.dtype):
            raise RuntimeError("%s: unknown dtype %r" % (where, node["dtype"]))
        return d
    if "dict" in node:
        items = node["dict"]
        if not isinstance(items, list):
            raise RuntimeError("%s: malformed dict entry" % where)
        out = OrderedDict() if node.get("ordered") else {}
        for kv in items:
            if not isinstance(kv, list) or len(kv) != 2:
                raise RuntimeError("%s: malformed dict item" % where)
            k = _decode(kv[0], arrays, where, ml)
            if isinstance(k, list):
                k = tuple(k)
            try:
                hash(k)
            except TypeError:
                raise RuntimeError("%s: malformed dict key of type %s (unhashable)"
                                   % (where, type(k).__name__)) from None
            out[k] = _decode(kv[1], arrays, where, ml)
        return out
    if "list" in node or "tuple" in node:
        seq = node.get("list", node.get("tuple"))
        if not isinstance(seq, list):
            raise RuntimeError("%s: malformed sequence entry" % where)
        vals = [_decode(v, arrays, where, ml) for v in seq]
        return vals if "list" in node else tuple(vals)
    raise RuntimeError("%s: unknown structure entry %r" % (where, sorted(node)))


_MAX_HEADER = 100 << 20  # as the safetensors library


def _header(fh, size, where):
    """The header dict of a safetensors file (validated JSON; no code) and where its data
    starts."""
    head = fh.read(8)
    if len(head) < 8:
        raise RuntimeError("%s is not a valid checkpoint: file too short (%d bytes; truncated?)"
                           % (where, size))
    (n,) = struct.unpack("<Q", head)
    if n > size - 8:
        raise RuntimeError("%s is not a valid checkpoint: header length %d exceeds the file size "
                           "(truncated or corrupt file; it is neither a safetensors/cengine "
                           "checkpoint nor a PyTorch file)" % (where, n))
    if n > _MAX_HEADER:
        raise RuntimeError("%s is not a valid checkpoint: corrupt header (%d bytes long)"
                           % (where, n))
    try:
        header = json.loads(fh.read(n).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RuntimeError("%s is not a valid checkpoint: corrupt header (%s)" % (where, e)) \
            from None
    if not isinstance(header, dict):
        raise RuntimeError("%s is not a valid checkpoint: corrupt header" % where)
    return header, 8 + n


# safetensors dtype -> numpy dtype (the format is little-endian; BF16 is ml_dtypes.bfloat16,
# whose name safetensors' writer maps back to BF16, as torch writes it)
_BF16 = np.dtype(ml_dtypes.bfloat16)
_ST_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": _BF16, "I64": "<i8", "I32": "<i4",
             "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?", "U64": "<u8", "U32": "<u4",
             "U16": "<u2"}


def _read_safetensors(fh, size, where):
    """(metadata, {name: ndarray}) of a safetensors file, each tensor read straight into its
    own array. Every entry is validated against the file before anything is allocated."""
    header, start = _header(fh, size, where)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise RuntimeError("%s is not a valid checkpoint: corrupt metadata" % where)
    body = size - start
    entries = []
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if not isinstance(v, dict):
            raise RuntimeError("%s is not a valid checkpoint: corrupt entry %r" % (where, k))
        dt, shape, offs = v.get("dtype"), v.get("shape"), v.get("data_offsets")
        if isinstance(dt, str) and dt not in _ST_NUMPY:
            raise _dtype_error(where, k, dt)
        if not isinstance(dt, str) or not isinstance(shape, list) or \
                not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                        for d in shape) or not isinstance(offs, list) or len(offs) != 2 or \
                not all(isinstance(o, int) and not isinstance(o, bool) for o in offs):
            raise RuntimeError("%s is not a valid checkpoint: corrupt entry %r" % (where, k))
        npd = np.dtype(_ST_NUMPY[dt])
        count = 1
        for d in shape:
            count *= d
        begin, end = offs
        if not 0 <= begin <= end or end - begin != count * npd.itemsize:
            raise RuntimeError("%s is not a valid checkpoint: entry %r has offsets %s for %d "
                               "bytes of data" % (where, k, offs, count * npd.itemsize))
        if end > body:
            raise RuntimeError("%s is not a valid checkpoint: entry %r reaches past the end of "
                               "the file (truncated or corrupt file)" % (where, k))
        entries.append((k, npd, shape, count, begin))
    # the entries must tile the data section without overlaps, as the safetensors format
    # requires (overlapping entries would let a small file allocate its data many times over)
    pos = 0
    for k, npd, shape, count, begin in sorted(entries, key=lambda e: (e[4], e[3] * e[1].itemsize)):
        if begin != pos:
            raise RuntimeError("%s is not a valid checkpoint: entry %r starts at byte %d of the "
                               "data, not at %d (overlapping or gapped entries)"
                               % (where, k, begin, pos))
        pos = begin + count * npd.itemsize
    arrays = {}
    for k, npd, shape, count, begin in entries:
        arr = np.empty(count, npd)
        if count:
            fh.seek(start + begin)
            if fh.readinto(memoryview(arr.view(np.uint8)).cast("B")) != arr.nbytes:
                raise RuntimeError("%s is not a valid checkpoint: entry %r is truncated"
                                   % (where, k))
        if npd == np.bool_ and count and arr.view(np.uint8).max() > 1:
            raise RuntimeError("%s is not a valid checkpoint: entry %r holds bool values other "
                               "than 0 and 1" % (where, k))
        if not npd.isnative:
            arr = arr.astype(npd.newbyteorder("="))
        arrays[k] = arr.reshape(shape)
    return meta, arrays


# ---------------------------------------------------------------------------- API
def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True):
    """Save obj (a state_dict or any nesting of dicts/lists/tuples of tensors, numpy arrays,
    strings, numbers, bools and None) to f: a path (written atomically) or a binary file."""
    sn = _safetensors()
    enc = _Encoder()
    structure = enc.encode(obj, "")
    meta = {_FORMAT: _VERSION, _STRUCT: json.dumps(structure, separators=(",", ":"))}
    if hasattr(f, "write"):
        f.write(sn.save(enc.tensors, metadata=meta))
        return
    write_atomic(f, lambda tmp: sn.save_file(enc.tensors, tmp, metadata=meta))


_LOAD_KWARGS = ("encoding", "errors", "fix_imports")


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **kwargs):
    """Load a checkpoint: what save() wrote (tensors come back as cengine Tensors; Parameters
    and requires_grad are restored), a plain safetensors file (a dict of Tensors), or a file
    written by torch.save (zip or legacy format), read the way torch.load(weights_only=True)
    reads it: only tensors, storages, OrderedDict and plain containers. Never imports or runs
    code from the file (weights_only=False changes nothing); a truncated or corrupt file raises
    RuntimeError, a disallowed object in a PyTorch file pickle.UnpicklingError.

    map_location (None, 'cpu', a device, a dict of location renames or a callable
    (storage, location)) follows torch. cengine's own files remember the device of each tensor
    (saved from the host): without map_location a cuda tensor comes back on its cuda device
    (RuntimeError naming what is missing where there is none), map_location='cpu' / 'cuda' /
    {'cuda:0': 'cpu'} / a callable(tensor, location) choose another. A PyTorch file saved from
    CUDA needs map_location='cpu' (its tensors are read onto the CPU).
    mmap=True maps the tensor data of a PyTorch zip file from disk (copy-on-write) instead of
    reading it."""
    for k in kwargs:
        if k not in _LOAD_KWARGS:
            raise TypeError("load() got an unexpected keyword argument %r" % k)
    if map_location is not None and not callable(map_location):
        from .tensor import _check_device
        if isinstance(map_location, dict):
            for v in map_location.values():
                _check_device(v)
        else:
            _check_device(map_location)
    encoding = kwargs.get("encoding", "utf-8")
    if hasattr(f, "read"):
        if mmap:
            raise ValueError("f must be a file path in order to use the mmap argument")
        data = f.read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("cengine.load: the file object must be opened in binary mode")
        return _load_opened(io.BytesIO(data), None, "checkpoint", map_location, weights_only,
                            mmap, encoding)
    path = os.fspath(f)
    with open(path, "rb") as fh:
        return _load_opened(fh, path, repr(path), map_location, weights_only, mmap, encoding)


def _load_opened(fh, path, where, map_location, weights_only, mmap, encoding):
    from . import _torch_format as tf
    head = fh.read(512)
    fh.seek(0)
    if tf.is_torch_zip(head):
        return tf.load_torch_zip(fh, where, map_location, weights_only,
                                 mmap_path=path if mmap else None, encoding=encoding)
    if not _looks_like_safetensors(head) and tf.is_torch_legacy(head):
        if mmap:
            raise RuntimeError("mmap can only be used with files saved with "
                               "`torch.save(_use_new_zipfile_serialization=True)`, please "
                               "torch.save your checkpoint with this option in order to use mmap.")
        return tf.load_torch_legacy(fh, where, map_location, weights_only, encoding)
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise RuntimeError("%s is a checkpoint in PyTorch's old tar format, which cengine does "
                           "not read: load it with torch and save it again" % where)
    return _load_safetensors(fh, where, map_location)


def _looks_like_safetensors(head):
    # a safetensors header is JSON right after its 8-byte length; a legacy torch file has a
    # byte of its pickled magic number there (0xf9)
    return head[8:9] == b"{"


# safetensors dtypes cengine Tensors can hold (numpy arrays saved by ce.save may also be U16-U64)
_ST_TENSOR_DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL")


def _dtype_error(where, key, name):
    return RuntimeError("%s: tensor %r has dtype %s, which cengine cannot hold (cengine tensors "
                        "hold %s)" % (where, key, name, ", ".join(_ST_TENSOR_DTYPES)))


def _check_tensor_dtype(arr, key, where):
    from .dtypes import _FROM_NP
    if arr.dtype not in _FROM_NP:
        raise _dtype_error(where, key, {"uint16": "U16", "uint32": "U32", "uint64": "U64"}.get(
            arr.dtype.name, arr.dtype.name))
    return arr


def _load_safetensors(fh, where, map_location=None):
    size = fh.seek(0, 2)
    fh.seek(0)
    meta, arrays = _read_safetensors(fh, size, where)
    struct_json = meta.get(_STRUCT)
    if struct_json is None:
        from .tensor import _wrap
        return OrderedDict((k, _wrap(_check_tensor_dtype(v, k, where) if map_location is None
                                     else _place(_check_tensor_dtype(v, k, where), "cpu",
                                                 map_location)))
                           for k, v in arrays.items())
    if meta.get(_FORMAT) != _VERSION:
        raise RuntimeError("%s was written by an unsupported cengine checkpoint format %r"
                           % (where, meta.get(_FORMAT)))
    try:
        structure = json.loads(struct_json)
    except (ValueError, TypeError, RecursionError) as e:
        raise RuntimeError("%s is not a valid checkpoint: corrupt structure metadata (%s)"
                           % (where, e)) from None
    try:
        return _decode(structure, arrays, where + " is not a valid checkpoint", map_location)
    except RecursionError:
        raise RuntimeError("%s is not a valid checkpoint: its structure is nested too deeply"
                           % where) from None


# ---------------------------------------------------------------------------- safe globals
# torch.serialization's allow-list for weights_only loading. cengine's own (safetensors) files
# hold no globals, so for them these change nothing; for files written by torch.save they
# allow exactly what torch would: the listed classes and functions may be named by the file,
# called and their instances built -- only add what you trust.
_SAFE_GLOBALS = []


def _check_safe_globals(safe_globals):
    if not isinstance(safe_globals, (list, tuple)):
        raise TypeError("safe_globals must be a list of classes or functions (or (object, "
                        "'module.name') tuples), got %s" % type(safe_globals).__name__)
    for g in safe_globals:
        if isinstance(g, tuple):
            if len(g) != 2 or not isinstance(g[1], str):
                raise TypeError("a safe global given as a tuple must be (object, 'module.name')")
        elif not (hasattr(g, "__module__") and hasattr(g, "__qualname__")):
            raise TypeError("%r is not a class or function: give it as (object, 'module.name')"
                            % (g,))
    return list(safe_globals)


def add_safe_globals(safe_globals):
    """Allow these globals when loading files written by torch.save (as
    torch.serialization.add_safe_globals)."""
    _SAFE_GLOBALS.extend(_check_safe_globals(safe_globals))


def get_safe_globals():
    return list(_SAFE_GLOBALS)


def clear_safe_globals():
    del _SAFE_GLOBALS[:]


class safe_globals:
    """Context manager: the globals are allowed inside the `with` block only."""

    def __init__(self, safe_globals):
        self.safe_globals = _check_safe_globals(safe_globals)

    def __enter__(self):
        self._saved = list(_SAFE_GLOBALS)
        _SAFE_GLOBALS.extend(self.safe_globals)
        return self

    def __exit__(self, *exc):
        _SAFE_GLOBALS[:] = self._saved
        return False
