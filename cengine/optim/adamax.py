"""Adamax (torch.optim.Adamax): Adam with the infinity norm."""
from .. import _C
from .optimizer import _FUSED_FLAG_SETDEFAULTS, Optimizer, _check_adam_args, _check_lr

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
        super().__init__(params, self._fused_defaults(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
            maximize=maximize, differentiable=differentiable, capturable=capturable))

    _group_setdefaults = _FUSED_FLAG_SETDEFAULTS

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for b in self._batches(group):
                steps, (ms, us) = self._fused_state(b, ("exp_avg", "exp_inf"))
                b.run(_C.adamax_step, ms, us, steps, float(group["lr"]), float(beta1),
                      float(beta2), float(group["eps"]), float(group["weight_decay"]),
                      bool(group["maximize"]))
        return loss
