"""Adagrad (torch.optim.Adagrad)."""
from .. import _C
from .optimizer import (Optimizer, _check_fused_flags, _check_ge0, _next_step, _state_zeros,
                        _step_tensor)

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad, as torch.optim.Adagrad:

        g = -grad if maximize else grad;  g += weight_decay * p
        clr = lr / (1 + (t-1)*lr_decay);  sum += g^2;  p -= clr * g / (sqrt(sum) + eps)

    State (step, sum = initial_accumulator_value) is created for every parameter at
    construction, as torch does. One fused C call per param group.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        _check_ge0("lr_decay", lr_decay)
        _check_ge0("weight_decay", weight_decay)
        _check_ge0("initial_accumulator_value", initial_accumulator_value)
        _check_ge0("epsilon", eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        _check_fused_flags(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group):
        st = self.state[p]
        st["step"] = _step_tensor()
        st["sum"] = _state_zeros(p._data, float(group["initial_accumulator_value"]))
        return st

    _group_setdefaults = dict(maximize=False)

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            for b in self._batches(group):
                steps, sums = [], []
                for p in b.params:
                    st = self.state.get(p)
                    if not st:   # a parameter added with add_param_group after construction
                        st = self._init_state(p, group)
                    steps.append(_next_step(st))
                    sums.append(st["sum"]._data)
                b.run(_C.adagrad_step, sums, steps, float(group["lr"]), float(group["lr_decay"]),
                      float(group["weight_decay"]), float(group["eps"]), bool(group["maximize"]))
        return loss
