"""GradScaler: dynamic loss scaling for mixed-precision training (torch.amp.GradScaler).

scale(loss) multiplies the loss by the current scale so small low-precision gradients do not
flush to zero; unscale_(optimizer) divides the gradients back in place and records whether any
was inf/NaN (one fused, threaded C pass over all gradients of the optimizer; for cuda
gradients one fused CUDA launch per device and dtype, cengine/cuda/_kernels.py); step(optimizer)
skips the update when one was; update() backs the scale off after an overflow and grows it
after growth_interval clean steps. The scale and its arithmetic are float32, as torch's.
"""
import warnings
from collections import abc, defaultdict
from enum import Enum

import numpy as np

from .. import _C
from .. import _device as _dv

__all__ = ["GradScaler", "OptState"]


class OptState(Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _refresh_per_optimizer_state():
    return {"stage": OptState.READY, "found_inf_per_device": {}}


def _device_type(device):
    return str(getattr(device, "type", device)).split(":")[0]


class GradScaler:
    """torch.amp.GradScaler(device="cuda", init_scale=2.**16, growth_factor=2.0,
    backoff_factor=0.5, growth_interval=2000, enabled=True). A scaler for "cuda" works on
    cuda gradients (CuPy storage) where cengine's CUDA path is available; as in torch, on a
    machine without CUDA it warns and disables itself (every method becomes a no-op that
    returns its input), so copied CUDA scripts still run; use device="cpu" for a real one."""

    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0,
                 backoff_factor=0.5, growth_interval=2000, enabled=True):
        self._device = _device_type(device)
        self._enabled = bool(enabled)
        if self._device == "cuda" and self._enabled:
            from .. import cuda
            if not cuda.is_available():
                warnings.warn("torch.cuda.amp.GradScaler is enabled, but CUDA is not "
                              "available.  Disabling.")
                self._enabled = False
        elif self._device not in ("cpu", "cuda"):
            raise RuntimeError("GradScaler: unsupported device type '%s' (cengine runs on "
                               "'cpu')" % self._device)
        if self._enabled:
            if not growth_factor > 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if not backoff_factor < 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
            self._init_scale = init_scale
            self._scale = None                 # np.float32, created by scale()
            self._growth_factor = growth_factor
            self._backoff_factor = backoff_factor
            self._growth_interval = growth_interval
            self._init_growth_tracker = 0
            self._growth_tracker = None        # int, created by scale()
            self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    # ------------------------------------------------------------------ scaling
    def _lazy_init_scale_growth_tracker(self):
        self._scale = np.float32(self._init_scale)
        self._growth_tracker = int(self._init_growth_tracker)

    def _check_scale_growth_tracker(self, funcname):
        fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier " \
              "in the iteration."
        if self._scale is None:
            raise AssertionError("Attempted %s but _scale is None.  %s" % (funcname, fix))
        if self._growth_tracker is None:
            raise AssertionError("Attempted %s but _growth_tracker is None.  %s" % (funcname, fix))

    def scale(self, outputs):
        """outputs * scale: a Tensor, or any (nested) iterable of Tensors of the same kind."""
        from ..tensor import Tensor
        if not self._enabled:
            return outputs
        if self._scale is None:
            self._lazy_init_scale_growth_tracker()
        from ..ops.creation import tensor as _tensor
        factors = {}         # the scale as a 0-d float32 tensor on each output's device

        def apply(v):
            if isinstance(v, Tensor):
                d = v.device
                f = factors.get(d)
                if f is None:
                    f = factors[d] = _tensor(np.float32(self._scale), device=d)
                return v * f
            if isinstance(v, abc.Iterable) and not isinstance(v, (str, bytes)):
                return type(v)(apply(x) for x in v)
            raise ValueError("outputs must be a Tensor or an iterable of Tensors")
        return apply(outputs)

    # ------------------------------------------------------------------ unscaling
    def _unscale_grads_(self, optimizer, inv_scale, allow_fp16):
        by_dtype = defaultdict(list)
        on_cuda = defaultdict(list)   # "cuda:i" -> that device's gradient arrays
        slow = []
        seen = set()
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None or id(p) in seen:
                    continue
                seen.add(id(p))
                g = p.grad._data
                if not allow_fp16 and g.dtype == np.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                if type(g) is not np.ndarray and _dv.is_cuda_array(g):
                    on_cuda["cuda:%d" % _dv.device_index(g)].append(g)
                    p.grad._version[0] += 1
                elif g.dtype in (np.float32, np.float64) and g.flags.c_contiguous and \
                        g.flags.aligned and g.flags.writeable:
                    by_dtype[g.dtype].append(g)
                else:
                    slow.append(p.grad)
        found = 0.0
        any_cpu = bool(by_dtype) or bool(slow)
        per_device = {}
        for dev, arrs in on_cuda.items():     # one fused CUDA launch per dtype and device
            from ..cuda import _ops as _cuda_ops
            per_device[dev] = 1.0 if _cuda_ops.amp_unscale(arrs, float(inv_scale)) else 0.0
        for dt, arrs in by_dtype.items():
            if _C.amp_unscale(arrs, float(inv_scale)):
                found = 1.0
        for t in slow:   # other dtypes or layouts: numpy, same semantics, still in place
            g = t._data
            if not np.all(np.isfinite(g)):
                found = 1.0
            if g.flags.writeable:
                np.multiply(g, g.dtype.type(inv_scale), out=g)
            else:
                t._data = (g * g.dtype.type(inv_scale)).astype(g.dtype, copy=False)
            t._version[0] += 1
        if any_cpu:
            per_device["cpu"] = found
        return per_device

    def unscale_(self, optimizer):
        """Divide the optimizer's gradients by the scale in place (once per step)."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the "
                               "last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = np.float32(1.0 / np.float64(self._scale))
        state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale, False)
        state["stage"] = OptState.UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(*args, **kwargs) unless a gradient was inf/NaN (unscaling first if
        unscale_ was not called); returns what optimizer.step returned, or None when skipped."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if len(state["found_inf_per_device"]) == 0:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = None
        if not sum(state["found_inf_per_device"].values()):
            retval = optimizer.step(*args, **kwargs)
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None):
        """Back off after an inf/NaN step, grow after growth_interval clean ones; or set the
        scale to new_scale (a float or a one-element float32 Tensor)."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("update")
        if new_scale is not None:
            from ..tensor import Tensor
            if isinstance(new_scale, float):
                self._scale = np.float32(new_scale)
            else:
                reason = "new_scale should be a float or a 1-element torch.cuda.FloatTensor or " \
                         "torch.FloatTensor with requires_grad=False."
                if not isinstance(new_scale, Tensor) or new_scale.numel() != 1 or \
                        new_scale._data.dtype != np.float32 or new_scale.requires_grad:
                    raise AssertionError(reason)
                self._scale = np.float32(new_scale._data.reshape(()))
        else:
            found = [v for st in self._per_optimizer_states.values()
                     for v in st["found_inf_per_device"].values()]
            if len(found) == 0:
                raise AssertionError("No inf checks were recorded prior to update.")
            if sum(found):
                # float32 scale times a double factor, stored as float32 (torch's CPU kernel)
                self._scale = np.float32(np.float64(self._scale) * self._backoff_factor)
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self._growth_interval:
                    grown = np.float32(np.float64(self._scale) * self._growth_factor)
                    if np.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
                else:
                    self._growth_tracker = successful
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    # ------------------------------------------------------------------ accessors / state
    def _get_scale_async(self):
        return self._scale

    def get_scale(self):
        if not self._enabled:
            return 1.0
        return float(self._init_scale) if self._scale is None else float(self._scale)

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = new_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = new_factor

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = new_interval

    def _get_growth_tracker(self):
        if self._enabled:
            return self._init_growth_tracker if self._growth_tracker is None \
                else int(self._growth_tracker)
        return 0

    def is_enabled(self):
        return self._enabled

    def state_dict(self):
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale = np.float32(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._init_growth_tracker = state_dict["_growth_tracker"]
        if self._growth_tracker is not None:
            self._growth_tracker = int(state_dict["_growth_tracker"])
