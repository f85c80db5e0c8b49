"""Autocast: regions where matrix products run in a lower precision (torch.autocast's API and
its CPU op policy).

    with cengine.autocast("cpu", dtype=cengine.bfloat16):
        loss = loss_fn(model(x), y)     # linear/matmul/conv/attention in bfloat16,
    loss.backward()                     # losses in float32, gradients to the float32 params

State is per thread, as in torch (a new thread starts with autocast off). Inside an enabled CPU
region the ops consult this module:
  * lower-precision ops (matmul, mm, bmm, linear, addmm, baddbmm, einsum, conv1d/conv2d,
    conv_transpose1d/2d, scaled_dot_product_attention, LSTM and RNN layers; GRU stays
    float32 as in torch) cast their float32/float16/bfloat16 inputs to the region's dtype
    (cast_lowp) and return that dtype; float64 and integer inputs are left alone;
  * float32 ops (the losses: cross_entropy, nll_loss, mse_loss, l1/smooth_l1/huber,
    binary_cross_entropy(_with_logits), kl_div, ctc_loss; prod) cast half inputs to float32
    (cast_fp32);
  * everything else runs in the dtype of its inputs; mixed inputs of elementwise ops promote
    by torch's rules (bfloat16 + float32 -> float32). Softmax, log_softmax, layer_norm and
    the reductions keep a bfloat16 input's dtype for their output, as torch's CPU autocast
    does, but compute in float32 and round once.
Inside an enabled CUDA region (autocast("cuda"), float16 only: CuPy has no bfloat16) the same
lists apply to cuda tensors, plus torch's CUDA rule that softmax, log_softmax, layer_norm, sum,
cumsum, cumprod, norm and logsumexp are float32 ops (a float16 input is cast up and the result
is float32; torch's other CUDA float32 ops, e.g. exp/log/pow, keep float16 here); CPU tensors
are left to the CPU region, as in torch.
Casts of leaf tensors that require grad (the parameters) are cached until the outermost region
exits (cache_enabled), so a weight is converted once per step however often it is used. The
casts are recorded by autograd, so gradients reach the float32 parameters in float32.
Float32 parameters keep their low-precision copy in a persistent per-parameter buffer (reused
across regions, cast again only when the parameter changed); SGD and Adam/AdamW write the copies
of the weights they update in the update's own pass (optimizer_lowp), so a training step casts
no weight at all; and F.linear on float32 parameters in a bfloat16 CPU region is one graph node
reading those copies (ops/_half.py linear_autocast) rather than two cast nodes and a product.
Values and gradients are the same either way.
"""
import functools
import sys
import threading
import weakref
import warnings

import numpy as np

from .. import dtypes as _dt

__all__ = ["autocast", "is_autocast_available", "is_autocast_enabled", "get_autocast_dtype",
           "set_autocast_enabled", "set_autocast_dtype", "is_autocast_cache_enabled",
           "set_autocast_cache_enabled", "clear_autocast_cache", "custom_fwd", "custom_bwd",
           "is_autocast_cpu_enabled", "get_autocast_cpu_dtype", "set_autocast_cpu_enabled",
           "set_autocast_cpu_dtype", "get_autocast_gpu_dtype"]

_DEVICE_TYPES = ("cpu", "cuda")
_CPU_DTYPES = (_dt.bfloat16, _dt.float16)
_F32 = np.dtype(np.float32)
_ELIGIBLE = frozenset((np.dtype(np.float32), np.dtype(np.float16), _dt.BF16_NP))
_HALF = frozenset((np.dtype(np.float16), _dt.BF16_NP))
_BF16 = _dt.BF16_NP


class _State(threading.local):
    """one thread's autocast state"""

    def __init__(self):
        self.enabled = {"cpu": False, "cuda": False}
        self.dtype = {"cpu": _dt.bfloat16, "cuda": _dt.float16}
        self.cache_enabled = True
        self.nesting = 0
        self.cache = {}      # id(tensor) -> (tensor, its cast); cleared when nesting drops to 0
        self.persist = {}    # id(param) -> _Persist: its low-precision buffer kept across regions
        self.lowp_cpu = None    # numpy dtype of the enabled CPU region, else None
        self.lowp_cuda = None   # numpy dtype (float16) of the enabled CUDA region, else None
        self.lowp = None     # the ops' one check: the CPU region's dtype, else the CUDA
        #                      region's, None when neither is enabled


_tls = _State()


def _refresh():
    s = _tls
    s.lowp_cpu = s.dtype["cpu"].np if s.enabled["cpu"] else None
    s.lowp_cuda = s.dtype["cuda"].np if s.enabled["cuda"] else None
    s.lowp = s.lowp_cpu if s.lowp_cpu is not None else s.lowp_cuda


def _region_dtype(s, a):
    """the low-precision dtype autocast gives storage `a`: the CPU region's for a numpy array,
    the CUDA region's for a CuPy array (None where that device's region is off), as torch's
    autocast("cuda") leaves CPU tensors alone and autocast("cpu") cuda tensors"""
    if type(a) is np.ndarray:
        return s.lowp_cpu
    from .._device import is_cuda_array
    return s.lowp_cuda if is_cuda_array(a) else s.lowp_cpu


def _check_device_type(device_type):
    if not isinstance(device_type, str):
        raise ValueError("Expected `device_type` of type `str`, got: `%s`" % type(device_type))
    from ..tensor import device
    d = device(device_type)      # RuntimeError for an unknown device type, as torch
    return d.type


def is_autocast_available(device_type):
    """True for "cpu"; for "cuda" where cengine's CUDA path (CuPy and a GPU) is available."""
    d = _check_device_type(device_type)
    if d == "cuda":
        from .. import cuda
        return cuda.is_available()
    return d == "cpu"


def is_autocast_enabled(device_type=None):
    """Without an argument: the CUDA state, as torch.is_autocast_enabled();
    is_autocast_enabled("cpu") for the CPU one."""
    return _tls.enabled[_check_device_type("cuda" if device_type is None else device_type)]


def set_autocast_enabled(device_type, enabled=None):
    if enabled is None:        # torch's old one-argument form: the CUDA state
        device_type, enabled = "cuda", device_type
    _tls.enabled[_check_device_type(device_type)] = bool(enabled)
    _refresh()


def get_autocast_dtype(device_type):
    return _tls.dtype[_check_device_type(device_type)]


def set_autocast_dtype(device_type, dtype):
    _tls.dtype[_check_device_type(device_type)] = dtype
    _refresh()


def is_autocast_cache_enabled():
    return _tls.cache_enabled


def set_autocast_cache_enabled(enabled):
    _tls.cache_enabled = bool(enabled)


def clear_autocast_cache():
    _tls.cache.clear()
    _tls.persist.clear()


class autocast:
    """torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None): a context
    manager and decorator. dtype defaults to bfloat16 on "cpu" (float16 on "cuda"); on the CPU
    only bfloat16 and float16 are supported (another dtype warns and disables the region, as
    torch does); device_type="cuda" without the CUDA path warns and disables itself, so
    copied GPU scripts run on the CPU in float32.

    On "cuda" (CuPy storage) the region runs the lower-precision ops on cuda tensors in
    float16 (the matmul family on cuBLAS through CuPy) and the float32 ops in float32; CPU
    tensors inside it are left alone, as torch does. bfloat16 on cuda raises torch's
    RuntimeError for a device without bfloat16 (CuPy has no bfloat16 arrays); another dtype
    warns and disables the region."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        self.device = _check_device_type(device_type)
        self.fast_dtype = get_autocast_dtype(self.device) if dtype is None else dtype
        self._cache_enabled = is_autocast_cache_enabled() if cache_enabled is None \
            else bool(cache_enabled)
        self._enabled = bool(enabled)
        if self.device == "cuda" and self._enabled:
            from .. import cuda
            if not cuda.is_available():
                warnings.warn("User provided device_type of 'cuda', but CUDA is not available. "
                              "Disabling", UserWarning, stacklevel=2)
                self._enabled = False
            elif self.fast_dtype is _dt.bfloat16:
                raise RuntimeError("Current CUDA Device does not support bfloat16. Please "
                                   "switch dtype to float16. (cengine's CUDA path stores CuPy "
                                   "arrays, and CuPy has no bfloat16 dtype.)")
            elif self.fast_dtype is not _dt.float16:
                warnings.warn("In CUDA autocast, but the target dtype is not supported. "
                              "Disabling autocast.\nCUDA Autocast (cengine's CuPy path) only "
                              "supports dtypes of cengine.float16 currently.", UserWarning,
                              stacklevel=2)
                self._enabled = False
        if self.device == "cpu" and self._enabled and not any(
                self.fast_dtype is d for d in _CPU_DTYPES):
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling "
                          "autocast.\nCPU Autocast only supports dtypes of cengine.bfloat16, "
                          "cengine.float16 currently.", UserWarning, stacklevel=2)
            self._enabled = False
        self._prev = None

    def __enter__(self):
        s = _tls
        self._prev = (s.enabled[self.device], s.dtype[self.device], s.cache_enabled)
        s.enabled[self.device] = self._enabled
        if self._enabled or self.device == "cpu":
            if isinstance(self.fast_dtype, _dt.dtype):
                s.dtype[self.device] = self.fast_dtype
        s.cache_enabled = self._cache_enabled
        s.nesting += 1
        _refresh()
        return self

    def __exit__(self, exc_type, exc, tb):
        s = _tls
        s.nesting -= 1
        if s.nesting == 0:
            s.cache.clear()
        s.enabled[self.device], s.dtype[self.device], s.cache_enabled = self._prev
        _refresh()
        return False

    def __call__(self, func):
        args = (self.device, self.fast_dtype, self._enabled, self._cache_enabled)

        @functools.wraps(func)
        def decorate_autocast(*a, **k):
            # a fresh region per call, so a decorated function may recurse
            with autocast(*args[:2], enabled=args[2], cache_enabled=args[3]):
                return func(*a, **k)
        decorate_autocast.__autocast_instance = self
        return decorate_autocast


def _autocast_quiet(device, dtype, enabled, cache_enabled):
    """an autocast built without its warnings (the namespaced forms warn their own way)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return autocast(device, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


# ---------------------------------------------------------------------------- op policy helpers
def cast_lowp(t):
    """t (a Tensor or anything else) for a lower-precision op of an enabled region: a
    float32/float16/bfloat16 tensor cast to its device's region dtype (cached for parameters),
    others (and tensors of a device whose region is off) as they are."""
    s = _tls
    lowp = s.lowp
    if lowp is None or not hasattr(t, "_data"):
        return t
    a = t._data
    if s.lowp_cuda is not None or type(a) is not np.ndarray:   # the tensor's device decides
        lowp = _region_dtype(s, a)
        if lowp is None:
            return t
    d = a.dtype
    if d == lowp or d not in _ELIGIBLE:
        return t
    if s.cache_enabled and t.requires_grad and t.grad_fn is None:
        hit = s.cache.get(id(t))
        if hit is not None and hit[0] is t and hit[1]._data.dtype == lowp:
            return hit[1]
        out = _persistent_cast(s, t, lowp)
        s.cache[id(t)] = (t, out)
        return out
    return _cast_op()(t, lowp)


_lazy = {}


def _cast_op():
    """ops.elementwise.cast (imported on first use: ops imports this module)"""
    f = _lazy.get("cast")
    if f is None:
        from ..ops.elementwise import cast as f
        _lazy["cast"] = f
    return f


def _c_mod():
    m = _lazy.get("_C")
    if m is None:
        from .. import _C as m
        _lazy["_C"] = m
    return m


# ---------------------------------------------------------------------------- persistent casts
class _Persist:
    """one parameter's low-precision copy kept across autocast regions: the buffer is reused
    (no fresh allocation, no page faults) and refilled only when the parameter changed"""
    __slots__ = ("ref", "data", "version", "buf", "out_version")


def _buffer_free(e):
    """True when nothing but the entry holds e.buf (no live graph or user tensor views it)"""
    # references: e.buf, the local name in the caller's frame is not taken, getrefcount's arg
    return sys.getrefcount(e.buf) <= 2


def _persistent_cast(s, t, lowp):
    """t (a float32/float16 leaf parameter) cast to lowp as an autograd-recorded op whose
    output storage is a buffer kept per parameter: refilled in place when the parameter's
    version or storage changed, reused untouched when neither did. A buffer that something
    else still holds (a graph not yet backpropagated, a tensor kept by the user) is left to
    its holder and a fresh one is made, so no live value is ever overwritten."""
    a = t._data
    if type(a) is not np.ndarray or a.dtype != _F32 or not a.flags.c_contiguous or a.size == 0:
        return _cast_op()(t, lowp)      # (a cuda parameter: a plain recorded cast on its device)
    e, fill = _persist_entry(s, t, a, lowp)
    out = _PersistCast.apply(t, e.buf, fill)
    e.out_version = out._version
    return out


def _persist_entry(s, t, a, lowp):
    """(entry, fill) for float32 parameter t (storage a) and dtype lowp: its entry's buffer when
    that is free (a fresh entry otherwise), fill False when the buffer already holds the cast of
    a at t's version"""
    key = id(t)
    e = s.persist.get(key)
    if e is not None and (e.ref() is not t or e.buf.dtype != lowp or e.buf.shape != a.shape):
        e = None
    fill = True
    if e is None or not _buffer_free(e):
        e = _Persist()
        e.ref = weakref.ref(t, functools.partial(_drop_persist, s.persist, key))
        e.buf = np.empty(a.shape, lowp)
        s.persist[key] = e
    elif e.data is a and e.version == t._version[0] and e.out_version[0] == 0:
        fill = False    # same storage, same version, the old cast never written in place
    e.data, e.version = a, t._version[0]
    return e, fill


def lowp_param_array(t):
    """The bfloat16 copy (an array) of float32 leaf parameter t for an op of an enabled CPU
    bfloat16 region that records its own graph node with t as the input (the fused autocast
    linear, ops/_half.py): t's persistent buffer, cast again only when stale, without a cast
    node. None when t does not qualify (then the op takes the cast_lowp path). The caller keeps
    the array only inside its graph node: a buffer held there is never refilled (see
    _persistent_cast)."""
    s = _tls
    a = getattr(t, "_data", None)
    if (s.lowp_cpu != _BF16 or s.lowp_cuda is not None or not s.cache_enabled
            or type(a) is not np.ndarray or a.dtype != _F32 or not t.requires_grad
            or t.grad_fn is not None or not a.flags.c_contiguous or a.size == 0):
        return None
    e = s.persist.get(id(t))
    if (e is not None and e.data is a and e.version == t._version[0] and e.out_version[0] == 0
            and e.ref() is t and e.buf.dtype == _BF16):
        return e.buf         # current: shared for reading, held elsewhere (this region) or not
    e, fill = _persist_entry(s, t, a, _BF16)      # a free buffer, or a fresh one
    if fill:
        _c_mod().cast_f32_to_bf16(a, out=e.buf)
    e.out_version = [0]      # no tensor views the buffer: nothing can write to it in place
    return e.buf


def optimizer_lowp(params):
    """The autocast copies an optimizer step on `params` (float32 arrays updated in place, this
    thread) may refresh in its own pass: (bufs, f16, entries) with, per parameter, its persistent
    low-precision buffer (or None: no copy, a copy of another storage, a copy something still
    holds, a second low-precision dtype) and the float16 flag of the copies' dtype; None when
    no parameter has one. After the step, optimizer_lowp_done(params, entries) marks them
    current, so the next region reuses them instead of casting again. The values are exactly
    the cast of the updated parameter (the same rounding), so nothing a region computes
    changes."""
    persist = _tls.persist
    if not persist:
        return None
    bufs, ents = [], []
    kind = None
    for p in params:
        e = persist.get(id(p))
        h = None
        if e is not None and e.ref() is p and e.data is p._data and _buffer_free(e):
            if kind is None:
                kind = e.buf.dtype
            if e.buf.dtype == kind:
                h = e.buf
        bufs.append(h)
        ents.append(None if h is None else e)
    if kind is None:
        return None
    return bufs, kind == np.float16, ents


def optimizer_lowp_done(params, entries):
    """the copies of optimizer_lowp's entries hold the cast of their parameter at its current
    version (the update bumped it)"""
    for p, e in zip(params, entries):
        if e is not None:
            e.version = p._version[0]
            e.out_version = [0]


def _drop_persist(persist, key, _ref):
    e = persist.get(key)
    if e is not None and e.ref is _ref:
        del persist[key]


def _persist_cast_class():
    from ..autograd.function import Function

    class _PersistCast(Function):
        """x (float32) -> buf (its bfloat16/float16 cast, filled in place unless fill is
        False); backward casts the gradient back to float32"""
        @staticmethod
        def forward(ctx, x, buf, fill):
            if fill:
                _C = _c_mod()
                (_C.cast_f32_to_bf16 if buf.dtype == _BF16 else _C.cast_f32_to_f16)(x, out=buf)
            return buf

        @staticmethod
        def backward(ctx, g):
            return (g if g.dtype == _F32 else _dt.astype(g, _F32)), None, None
    return _PersistCast


def takes_f32_grad(edge):
    """True when the graph edge (node, output_nr) leads to a cast of a float32 tensor to a half
    dtype (a parameter's autocast copy): its backward hands a float32 gradient on unchanged, so
    the producer may write that gradient in float32 straight away (no rounding to bfloat16 and
    cast back)"""
    if edge is None:
        return False
    node = edge[0]
    fn = node._fn
    if fn is not None and fn is _LazyPersistCast.cls:
        return True
    C = _lazy.get("Cast")
    if C is None:
        from ..ops.elementwise import Cast as C
        _lazy["Cast"] = C
    return fn is C and getattr(node, "src", None) == _F32


class _LazyPersistCast:
    cls = None

    def apply(self, *args):
        if _LazyPersistCast.cls is None:
            _LazyPersistCast.cls = _persist_cast_class()
        return _LazyPersistCast.cls.apply(*args)


_PersistCast = _LazyPersistCast()


def cast_fp32(t):
    """t for a float32 op of an enabled region: half tensors of that region's device cast to
    float32"""
    if _tls.lowp is None or not hasattr(t, "_data") or t._data.dtype not in _HALF or \
            _region_dtype(_tls, t._data) is None:
        return t
    return _cast_op()(t, _F32)


def cast_fp32_cuda(t):
    """t for an op on torch's CUDA autocast float32 list that the CPU policy keeps in the
    input's dtype (softmax, log_softmax, layer_norm, sum, cumsum, cumprod, norm, logsumexp): a
    half cuda tensor cast to float32 while the CUDA region is enabled, anything else as it is"""
    if _tls.lowp_cuda is None or not hasattr(t, "_data") or type(t._data) is np.ndarray or \
            t._data.dtype not in _HALF:
        return t
    from .._device import is_cuda_array
    if not is_cuda_array(t._data):
        return t
    from ..ops.elementwise import cast
    return cast(t, _F32)


def lowp_dtype():
    """numpy dtype of the enabled CPU region (else of the enabled CUDA region), or None
    outside one"""
    return _tls.lowp


# ---------------------------------------------------------------------------- custom_fwd / bwd
def custom_fwd(fwd=None, *, device_type, cast_inputs=None):
    """torch.amp.custom_fwd for a Function's forward: with cast_inputs, floating tensors are
    cast to it and forward runs with autocast off; the region's state is recorded for
    custom_bwd."""
    if not isinstance(device_type, str):
        raise ValueError("Expected `device_type` of type `str`, got: `%s`" % type(device_type))
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(*args, **kwargs):
        ctx = args[0]
        ctx._fwd_used_autocast = is_autocast_enabled(device_type)
        ctx._dtype = get_autocast_dtype(device_type)
        if cast_inputs is None:
            return fwd(*args, **kwargs)
        in_region = ctx._fwd_used_autocast
        if in_region:
            args = tuple(_cast_to(a, cast_inputs) for a in args)
            kwargs = {k: _cast_to(v, cast_inputs) for k, v in kwargs.items()}
        with autocast(device_type=device_type, enabled=False):
            return fwd(*args, **kwargs)
    return decorate_fwd


def custom_bwd(bwd=None, *, device_type):
    """torch.amp.custom_bwd: backward runs with the autocast state its forward saw"""
    if not isinstance(device_type, str):
        raise ValueError("Expected `device_type` of type `str`, got: `%s`" % type(device_type))
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args, **kwargs):
        ctx = args[0]
        with autocast(device_type=device_type, enabled=getattr(ctx, "_fwd_used_autocast", False),
                      dtype=getattr(ctx, "_dtype", None)):
            return bwd(*args, **kwargs)
    return decorate_bwd


def _cast_to(v, dtype):
    if hasattr(v, "_data") and _dt.is_floating(v._data.dtype) and v._data.dtype != dtype.np:
        return v.to(dtype)
    if isinstance(v, np.ndarray) and _dt.is_floating(v.dtype) and v.dtype != dtype.np:
        return _dt.astype(v, dtype.np)
    return v


# torch's older per-device spellings
def is_autocast_cpu_enabled():
    return _tls.enabled["cpu"]


def get_autocast_cpu_dtype():
    return _tls.dtype["cpu"]


def set_autocast_cpu_enabled(enabled):
    set_autocast_enabled("cpu", enabled)


def set_autocast_cpu_dtype(dtype):
    set_autocast_dtype("cpu", dtype)


def get_autocast_gpu_dtype():
    return _tls.dtype["cuda"]
