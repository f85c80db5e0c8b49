"""Optimizer base class, following torch.optim.Optimizer.

Parameters are cengine Tensors; the update itself runs in C: each optimizer's step() collects,
per param group and dtype, the parameters that have a gradient, their gradients and their state
buffers as numpy arrays and makes ONE fused call (cengine._C.sgd_step / adam_step / ...), which
splits the whole group across threads and SIMD lanes.
"""
from collections import OrderedDict, defaultdict
from copy import deepcopy
from functools import wraps
from itertools import chain

import numpy as np

from .. import _device as _dv

from ..tensor import Tensor, _wrap
from .. import dtypes as _dt
from ..amp import autocast_mode as _am
from ..utils.hooks import RemovableHandle

__all__ = ["Optimizer", "required", "register_optimizer_step_pre_hook",
           "register_optimizer_step_post_hook"]

_global_optimizer_pre_hooks = OrderedDict()
_global_optimizer_post_hooks = OrderedDict()


def register_optimizer_step_pre_hook(hook):
    """hook(optimizer, args, kwargs) -> None or (args, kwargs), before every optimizer's step."""
    handle = RemovableHandle(_global_optimizer_pre_hooks)
    _global_optimizer_pre_hooks[handle.id] = hook
    return handle


def register_optimizer_step_post_hook(hook):
    """hook(optimizer, args, kwargs), after every optimizer's step."""
    handle = RemovableHandle(_global_optimizer_post_hooks)
    _global_optimizer_post_hooks[handle.id] = hook
    return handle


def _hooked_step(func):
    """Wrap a subclass's step() so the global and per-optimizer step hooks run around it (as
    torch does, `args` given to the hooks starts with the optimizer itself)."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        self = args[0]
        for hook in chain(_global_optimizer_pre_hooks.values(),
                          self._optimizer_step_pre_hooks.values()):
            result = hook(self, args, kwargs)
            if result is not None:
                if isinstance(result, tuple) and len(result) == 2:
                    args, kwargs = result
                else:
                    raise RuntimeError(f"{func} must return None or a tuple of (new_args, "
                                       f"new_kwargs), but got {result}.")
        out = func(*args, **kwargs)
        for hook in chain(self._optimizer_step_post_hooks.values(),
                          _global_optimizer_post_hooks.values()):
            hook(self, args, kwargs)
        return out

    wrapper._ce_hooked = True
    return wrapper


class _RequiredParameter:
    """Singleton marking a hyper-parameter that every param group must give."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _typename(obj):
    if isinstance(obj, Tensor):
        return obj.type()
    t = type(obj)
    mod = t.__module__
    return t.__qualname__ if mod in ("builtins", None) else "%s.%s" % (mod, t.__qualname__)


def _scalar_np_dtype():
    """dtype of state['step'] (torch: float32 unless the default dtype is float64)."""
    return np.float64 if _dt.get_default_dtype().np == np.float64 else np.float32


def _step_tensor(value=0.0):
    return _wrap(np.array(value, dtype=_scalar_np_dtype()))


def _state_dtype(npd):
    """dtype of the optimizer state of a parameter of numpy dtype npd: its own, float32 for
    bfloat16/float16 parameters (their update is computed in float32, see _Batch.run)"""
    return np.dtype(np.float32) if _dt.is_half(npd) else npd


def _state_zeros(a, fill=0.0):
    """A state buffer for parameter array `a`: C-contiguous, same shape, the state dtype."""
    xp = np if type(a) is np.ndarray else _dv.xp(a)      # on the parameter's device
    if fill == 0.0:
        return _wrap(xp.zeros(a.shape, _state_dtype(a.dtype)))
    return _wrap(xp.full(a.shape, fill, _state_dtype(a.dtype)))


class _Batch:
    """The parameters of one param group and one dtype that have a gradient, as the arrays the
    fused kernel takes. run() calls the kernel on them directly; only when the binding rejects
    an array (a parameter that is not a writeable C-contiguous array, a gradient of another
    dtype or layout) are copies made, and updated parameter copies are written back."""
    __slots__ = ("params", "arrays", "grads")

    def __init__(self):
        self.params = []
        self.arrays = []
        self.grads = []

    def run(self, kernel, *args):
        """kernel(params, grads, *args): one fused call for the whole batch; then bump the
        parameters' version counters (an in-place update, as torch does). bfloat16/float16
        parameters are updated in float32 (their state is float32): the kernel runs on float32
        copies of parameters and gradients, and the results are rounded back to the
        parameters' dtype (round to nearest even)."""
        if self.arrays and type(self.arrays[0]) is not np.ndarray \
                and _dv.is_cuda_array(self.arrays[0]):
            return self._run_cuda(kernel, args)
        if self.arrays and _dt.is_half(self.arrays[0].dtype):
            hd = self.arrays[0].dtype
            p32 = [_dt.astype(a, np.float32) for a in self.arrays]
            g32 = [_dt.astype(np.ascontiguousarray(g).reshape(a.shape), np.float32)
                   for a, g in zip(self.arrays, self.grads)]
            kernel(p32, g32, *args)
            for a, t in zip(self.arrays, p32):
                a[...] = _dt.astype(t, hd)
            for p in self.params:
                p._version[0] += 1
            return
        kw = {}
        lowp = None
        if kernel.__name__ in _LOWP_KERNELS and self.arrays and \
                self.arrays[0].dtype == np.float32:
            # float32 master weights with autocast copies (amp.autocast_mode): the kernel
            # writes each updated weight's copy in the same pass, so the next region finds
            # them current instead of casting every weight again
            lowp = _am.optimizer_lowp(self.params)
            if lowp is not None:
                kw = dict(lowp=lowp[0], lowp_f16=lowp[1])
        try:
            kernel(self.arrays, self.grads, *args, **kw)
        except (TypeError, ValueError):
            writeback = self._normalize()
            if writeback is None:
                raise
            kernel(self.arrays, self.grads, *args, **kw)
            for a, tmp in writeback:
                a[...] = tmp
        for p in self.params:
            p._version[0] += 1
        if lowp is not None:
            _am.optimizer_lowp_done(self.params, lowp[2])

    def _run_cuda(self, kernel, args):
        """The step on CuPy parameters: SGD and Adam/AdamW by their device implementations (the
        multi-tensor CUDA kernel where it runs), other optimizers by their C kernel on host
        copies written back. Gradients are cast to the parameters' dtype."""
        from ..cuda import _ops as cu
        grads = [g if g.dtype == a.dtype else g.astype(a.dtype)
                 for a, g in zip(self.arrays, self.grads)]
        for a, g in zip(self.arrays, grads):
            if g.shape != a.shape:
                if g.size != a.size:
                    raise RuntimeError("the gradient of a parameter has shape %s but the "
                                       "parameter has shape %s" % (tuple(g.shape),
                                                                   tuple(a.shape)))
        grads = [g if g.shape == a.shape else g.reshape(a.shape)
                 for a, g in zip(self.arrays, grads)]
        _dv.check_same_device(list(self.arrays) + grads)
        fn = _CUDA_STEPS.get(kernel.__name__)
        if fn is not None:
            getattr(cu, fn)(self.arrays, grads, *args)
        else:
            cu.run_on_host(kernel, self.arrays, grads, *args)
        for p in self.params:
            p._version[0] += 1

    def _normalize(self):
        """Make every parameter array writeable and C-contiguous (via copies) and every gradient
        a C-contiguous array of its parameter's dtype and shape. Returns the (original, copy)
        pairs to write back, or None when nothing needed changing."""
        changed = False
        writeback = []
        for i, (a, g) in enumerate(zip(self.arrays, self.grads)):
            if not (a.flags.c_contiguous and a.flags.writeable):
                tmp = np.array(a, order="C", copy=True)
                writeback.append((a, tmp))
                self.arrays[i] = a = tmp
                changed = True
            if g.dtype != a.dtype or not g.flags.c_contiguous or g.shape != a.shape:
                if g.size != a.size:
                    raise RuntimeError("the gradient of a parameter has shape %s but the "
                                       "parameter has shape %s" % (tuple(g.shape),
                                                                   tuple(a.shape)))
                self.grads[i] = np.ascontiguousarray(g, dtype=a.dtype).reshape(a.shape)
                changed = True
        return writeback if changed else None


_CUDA_STEPS = {"sgd_step": "sgd_step", "adam_step": "adam_step"}
# the float32 kernels that refresh autocast copies of the parameters they update (lowp=)
_LOWP_KERNELS = frozenset(("sgd_step", "adam_step"))


def _next_step(st):
    """Increment state['step'] (a 0-d Tensor, or a plain number from an old checkpoint) and
    return the new count as an int."""
    s = st["step"]
    if isinstance(s, Tensor):
        a = s._data
        v = a.item() + 1
        a[()] = v
        return int(v)
    v = float(s) + 1
    st["step"] = _step_tensor(v)
    return int(v)


class Optimizer:
    """Base class for all optimizers.

    Args:
        params: an iterable of Tensors, of dicts (param groups with per-group options), or of
            (name, Tensor) pairs.
        defaults: dict of the default values of the optimization options.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_ce_hooked", False):
            cls.step = _hooked_step(step)

    def __init__(self, params, defaults):
        self.defaults = defaults
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got " + _typename(params))
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group):
        """Add a param group (a dict with 'params' and optional per-group options)."""
        if not isinstance(param_group, dict):
            raise TypeError("param_group must be a dict, but got %s" % type(param_group))
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            param_group["params"] = list(params)

        tensors, names = [], []
        for item in param_group["params"]:
            if isinstance(item, tuple):
                names.append(item[0])
                tensors.append(item[1])
            else:
                tensors.append(item)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some param "
                                 "names are missing")
            param_group["param_names"] = names

        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + _typename(p))
            if not self.defaults.get("differentiable", None) and not (p.is_leaf or
                                                                      p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError("parameter group didn't specify a value of required "
                                 "optimization parameter " + name)
            param_group.setdefault(name, default)

        if len(tensors) != len({id(p) for p in tensors}):
            import warnings
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error", stacklevel=3)

        seen = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                txt = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 "cannot add param group %s to the optimizer" % txt)
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # ------------------------------------------------------------------ gradients
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all optimized parameters (to None, or to zeros in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad = False
                    if type(g._data) is not np.ndarray or g._data.flags.writeable:
                        g._data[...] = 0
                    else:
                        g._data = np.zeros_like(g._data)

    def _batches(self, group):
        """The group's parameters that have a gradient, batched by dtype, in group order.

        A parameter listed twice in the group (torch warns, and updates it once per listing)
        goes into a later batch for its second listing: one fused call never updates the same
        array twice, which its threads would race on."""
        batches = {}
        listed = {}
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            a = p._data
            k = listed.get(id(p), 0)
            listed[id(p)] = k + 1
            key = a.dtype if k == 0 else (a.dtype, k)
            b = batches.get(key)
            if b is None:
                if not _dt.is_floating(a.dtype):
                    raise TypeError("%s: parameters must be floating point, got %s"
                                    % (type(self).__name__, a.dtype))
                b = batches[key] = _Batch()
            b.params.append(p)
            b.arrays.append(a)
            b.grads.append(g._data)
        return batches.values()

    def step(self, closure=None):
        raise NotImplementedError

    def register_step_pre_hook(self, hook):
        """hook(optimizer, args, kwargs) -> None or (args, kwargs), called before step()."""
        handle = RemovableHandle(self._optimizer_step_pre_hooks)
        self._optimizer_step_pre_hooks[handle.id] = hook
        return handle

    def register_step_post_hook(self, hook):
        """hook(optimizer, args, kwargs), called after step()."""
        handle = RemovableHandle(self._optimizer_step_post_hooks)
        self._optimizer_step_post_hooks[handle.id] = hook
        return handle

    @staticmethod
    def _eval_closure(closure):
        if closure is None:
            return None
        from ..autograd import enable_grad
        with enable_grad():
            return closure()

    # ------------------------------------------------------------------ state dict
    def state_dict(self):
        """{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]} as torch:
        parameters are replaced by their position across groups; the state tensors are returned
        by reference (deepcopy or save the dict to keep a snapshot)."""
        mapping = {}
        start = 0

        def pack(group):
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                if id(p) not in mapping:
                    mapping[id(p)] = i
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        param_groups = [pack(g) for g in self.param_groups]
        packed_state = {(mapping[id(k)] if isinstance(k, Tensor) else k): v
                        for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": param_groups}

    def load_state_dict(self, state_dict):
        """Load a state dict made by state_dict() (of this optimizer class, same group sizes).
        State tensors are copied and cast to their parameter's dtype, so the loaded optimizer
        continues exactly where the saved one was."""
        state_dict = state_dict.copy()
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))

        def cast(param, value, key=None):
            if isinstance(value, (Tensor, np.ndarray)):
                arr = value._data if isinstance(value, Tensor) else value
                if key == "step":
                    return _wrap(_dv.to_host(arr).copy())
                if _dt.is_floating(arr.dtype) and _dt.is_floating(param._data.dtype):
                    arr = _dt.astype(arr, _state_dtype(param._data.dtype))
                else:
                    arr = arr.copy(order="C")
                if _dv.xp(arr) is not _dv.xp(param._data) or _dv.is_cuda_array(arr):
                    from ..tensor import _move, _device_of
                    arr = _move(arr, _device_of(param._data))     # state follows its parameter
                # (a 0-d entry such as NAdam's mu_product stays 0-d, even for a one-element
                # parameter)
                if (arr.shape != param._data.shape and arr.size == param._data.size
                        and arr.ndim > 0):
                    arr = arr.reshape(param._data.shape)
                return _wrap(arr)
            if isinstance(value, dict):
                return {k: cast(param, v, key=k) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(cast(param, v) for v in value)
            return deepcopy(value)

        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = cast(param, v)
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        self.state = state
        self.param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups)]

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("_optimizer_step_pre_hooks", OrderedDict())
        self.__dict__.setdefault("_optimizer_step_post_hooks", OrderedDict())
        for group in self.__dict__.get("param_groups", ()):
            for key, value in self._group_setdefaults.items():
                group.setdefault(key, value)

    # options an unpickled param group from an older checkpoint may lack, with their defaults
    _group_setdefaults = {}

    @staticmethod
    def _fused_defaults(**defaults):
        """The defaults dict of a fused-kernel optimizer, after the flag checks every one of
        them makes (differentiable, fused with foreach)."""
        _check_fused_flags(defaults)
        return defaults

    def _fused_state(self, b, keys):
        """Per-parameter state of one fused batch `b` for a kernel call: a parameter without
        state gets state['step'] (0-d) first; then each name in `keys` missing from its state
        gets a zero buffer like the parameter. Increments every step. Returns (steps, columns):
        the new step counts and, per key, the list of state arrays, in batch order."""
        state = self.state
        steps = []
        cols = [[] for _ in keys]
        for p, a in zip(b.params, b.arrays):
            st = state[p]
            if not st:
                st["step"] = _step_tensor()
            for col, key in zip(cols, keys):
                buf = st.get(key)
                if buf is None:
                    buf = st[key] = _state_zeros(a)
                col.append(buf._data)
            steps.append(_next_step(st))
        return steps, cols

    def __repr__(self):
        s = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += "\nParameter Group %d" % i
            for key in sorted(group.keys()):
                if key != "params":
                    s += "\n    %s: %s" % (key, group[key])
        return s + "\n)"


# the flag options of torch's optimizers that older checkpoints' param groups may lack
_FUSED_FLAG_SETDEFAULTS = dict(foreach=None, maximize=False, differentiable=False,
                               capturable=False)


def _check_fused_flags(defaults):
    if defaults.get("differentiable"):
        raise RuntimeError("cengine optimizers do not support differentiable=True (the update "
                           "runs as one fused C kernel outside autograd)")
    if defaults.get("fused") and defaults.get("foreach"):
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


def _check_lr(lr):
    """torch's learning-rate check: a Tensor lr must hold one element, and lr >= 0."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")


def _scalar_state(st, key, fill):
    """A 0-d state entry (state['mu_product']) as a Tensor of the scalar dtype, converting a
    plain number from an old checkpoint."""
    v = st.get(key)
    if v is None:
        v = st[key] = _step_tensor(fill)
    elif not isinstance(v, Tensor):
        v = st[key] = _step_tensor(float(v))
    return v


def _check_ge0(name, value):
    """torch's `Invalid <name> value: <value>` check of a hyper-parameter that must be >= 0."""
    if not 0.0 <= value:
        raise ValueError(f"Invalid {name} value: {value}")


def _check_adam_args(lr, betas, eps, weight_decay):
    """The hyper-parameter checks shared by the Adam family, in torch's order and words."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    _check_ge0("epsilon", eps)
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    _check_ge0("weight_decay", weight_decay)
