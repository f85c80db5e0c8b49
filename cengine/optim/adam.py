"""Adam (torch.optim.Adam), with amsgrad, maximize and optional decoupled weight decay."""
from .. import _C
from .optimizer import Optimizer, _check_adam_args, _check_fused_flags  # noqa: F401

__all__ = ["Adam"]


class Adam(Optimizer):
    r"""Adam, as torch.optim.Adam:

        g = -grad if maximize else grad
        decoupled_weight_decay: p *= 1 - lr*weight_decay   else: g += weight_decay * p
        m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g^2
        amsgrad: v_max = max(v_max, v), used in place of v
        p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)

    Each step updates every parameter of a param group in one fused C call (bias corrections
    computed once per step in double).
    """

    _decoupled_default = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        _check_adam_args(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(float(b) for b in betas), eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        _check_fused_flags(defaults)
        super().__init__(params, defaults)

    _group_setdefaults = dict(amsgrad=False, maximize=False)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("decoupled_weight_decay", self._decoupled_default)

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            amsgrad = bool(group["amsgrad"])
            beta1, beta2 = group["betas"]
            keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
            for b in self._batches(group):
                steps, (exp_avgs, exp_avg_sqs, *max_sqs) = self._fused_state(b, keys)
                b.run(_C.adam_step, exp_avgs, exp_avg_sqs, max_sqs[0] if amsgrad else None, steps,
                      float(group["lr"]), float(beta1), float(beta2), float(group["eps"]),
                      float(group["weight_decay"]), amsgrad, bool(group["maximize"]),
                      bool(group["decoupled_weight_decay"]))
        return loss
