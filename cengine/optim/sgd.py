"""SGD with momentum, dampening, Nesterov, weight decay and maximize (torch.optim.SGD)."""
import numpy as np

from .. import _device as _dv

from .. import _C
from ..tensor import _wrap
from .optimizer import _state_dtype, Optimizer, _check_fused_flags

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as torch.optim.SGD:

        g = -grad if maximize else grad;  g += weight_decay * p
        if momentum: buf = g (first step) or momentum*buf + (1-dampening)*g
                     g = g + momentum*buf if nesterov else buf
        p -= lr * g

    Each step updates every parameter of a param group in one fused C call.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach,
                        differentiable=differentiable, fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        _check_fused_flags(defaults)
        super().__init__(params, defaults)

    _group_setdefaults = dict(nesterov=False, maximize=False)

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            momentum = group["momentum"]
            fresh = None
            for b in self._batches(group):
                bufs = first = None
                if momentum != 0:
                    if fresh is None:
                        # parameters without a buffer when the step starts: every listing of
                        # a parameter listed twice starts its own buffer, as in torch
                        fresh = {id(p) for p in group["params"]
                                 if self.state[p].get("momentum_buffer") is None}
                    bufs, first = [], []
                    for p, a in zip(b.params, b.arrays):
                        st = self.state[p]
                        if id(p) in fresh:
                            buf = st["momentum_buffer"] = _wrap(_dv.xp(a).empty(a.shape,
                                                                         _state_dtype(a.dtype)))
                            first.append(True)
                        else:
                            buf = st["momentum_buffer"]
                            first.append(False)
                        bufs.append(buf._data)
                b.run(_C.sgd_step, bufs, first, float(group["lr"]), float(momentum),
                      float(group["dampening"]), float(group["weight_decay"]),
                      bool(group["nesterov"]), bool(group["maximize"]))
        return loss
