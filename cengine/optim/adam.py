"""Adam (torch.optim.Adam), with amsgrad, maximize and optional decoupled weight decay."""
from .. import _C
from .optimizer import Optimizer, _check_fused_flags, _next_step, _state_zeros, _step_tensor

__all__ = ["Adam"]


def _check_adam_args(lr, betas, eps, weight_decay):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


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

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("decoupled_weight_decay", self._decoupled_default)

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            amsgrad = bool(group["amsgrad"])
            beta1, beta2 = group["betas"]
            state = self.state
            for b in self._batches(group):
                steps, exp_avgs, exp_avg_sqs, max_sqs = [], [], [], []
                for p, a in zip(b.params, b.arrays):
                    st = state[p]
                    if not st:
                        st["step"] = _step_tensor()
                        st["exp_avg"] = _state_zeros(a)
                        st["exp_avg_sq"] = _state_zeros(a)
                        if amsgrad:
                            st["max_exp_avg_sq"] = _state_zeros(a)
                    elif amsgrad and "max_exp_avg_sq" not in st:
                        st["max_exp_avg_sq"] = _state_zeros(a)
                    steps.append(_next_step(st))
                    exp_avgs.append(st["exp_avg"]._data)
                    exp_avg_sqs.append(st["exp_avg_sq"]._data)
                    if amsgrad:
                        max_sqs.append(st["max_exp_avg_sq"]._data)
                b.run(_C.adam_step, exp_avgs, exp_avg_sqs, max_sqs if amsgrad else None, steps,
                      float(group["lr"]), float(beta1), float(beta2), float(group["eps"]),
                      float(group["weight_decay"]), amsgrad, bool(group["maximize"]),
                      bool(group["decoupled_weight_decay"]))
        return loss
