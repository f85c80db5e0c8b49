"""Adamax (torch.optim.Adamax): Adam with the infinity norm."""
from .. import _C
from .adam import _check_adam_args
from .optimizer import (Optimizer, _check_fused_flags, _check_lr, _next_step, _state_zeros,
                        _step_tensor)

__all__ = ["Adamax"]


class Adamax(Optimizer):
    r"""Adamax, as torch.optim.Adamax:

        g = -grad if maximize else grad;  g += weight_decay * p
        exp_avg = lerp(exp_avg, g, 1-beta1);  exp_inf = max(beta2*exp_inf, |g| + eps)
        p -= lr/(1-beta1^t) * exp_avg / exp_inf

    State per parameter: step, exp_avg, exp_inf. One fused C call per param group and dtype.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        _check_lr(lr)
        _check_adam_args(0.0, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        _check_fused_flags(defaults)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for b in self._batches(group):
                steps, ms, us = [], [], []
                for p, a in zip(b.params, b.arrays):
                    st = self.state[p]
                    if not st:
                        st["step"] = _step_tensor()
                        st["exp_avg"] = _state_zeros(a)
                        st["exp_inf"] = _state_zeros(a)
                    steps.append(_next_step(st))
                    ms.append(st["exp_avg"]._data)
                    us.append(st["exp_inf"]._data)
                b.run(_C.adamax_step, ms, us, steps, float(group["lr"]), float(beta1),
                      float(beta2), float(group["eps"]), float(group["weight_decay"]),
                      bool(group["maximize"]))
        return loss
