"""RAdam (torch.optim.RAdam): Adam with a rectified adaptive learning rate."""
from .. import _C
from .optimizer import _FUSED_FLAG_SETDEFAULTS, Optimizer, _check_adam_args, _check_lr

__all__ = ["RAdam"]


class RAdam(Optimizer):
    r"""RAdam, as torch.optim.RAdam:

        g = -grad if maximize else grad
        decoupled_weight_decay: p *= 1 - lr*weight_decay   else: g += weight_decay * p
        exp_avg = lerp(exp_avg, g, 1-beta1);  exp_avg_sq = beta2*exp_avg_sq + (1-beta2)*g^2
        rho_inf = 2/(1-beta2) - 1;  rho_t = rho_inf - 2t*beta2^t/(1-beta2^t)
        rho_t > 5: p -= lr * exp_avg/(1-beta1^t) * rect_t * sqrt(1-beta2^t)/(sqrt(exp_avg_sq)+eps)
        else:      p -= lr * exp_avg/(1-beta1^t)

    with rect_t = sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t)). State per
    parameter: step, exp_avg, exp_avg_sq. One fused C call per param group and dtype.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        _check_lr(lr)
        _check_adam_args(0.0, betas, eps, weight_decay)
        super().__init__(params, self._fused_defaults(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
            foreach=foreach, capturable=capturable,
            decoupled_weight_decay=decoupled_weight_decay, differentiable=differentiable))

    _group_setdefaults = dict(_FUSED_FLAG_SETDEFAULTS, decoupled_weight_decay=False)

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for b in self._batches(group):
                steps, (ms, vs) = self._fused_state(b, ("exp_avg", "exp_avg_sq"))
                b.run(_C.radam_step, ms, vs, steps, float(group["lr"]), float(beta1),
                      float(beta2), float(group["eps"]), float(group["weight_decay"]),
                      bool(group["decoupled_weight_decay"]), bool(group["maximize"]))
        return loss
