"""NAdam (torch.optim.NAdam): Adam with Nesterov momentum, optionally decoupled weight decay."""
from .. import _C
from .optimizer import (_FUSED_FLAG_SETDEFAULTS, Optimizer, _check_adam_args, _check_ge0,
                        _check_lr, _next_step, _scalar_state, _state_zeros, _step_tensor)

__all__ = ["NAdam"]


class NAdam(Optimizer):
    r"""NAdam, as torch.optim.NAdam:

        g = -grad if maximize else grad
        decoupled_weight_decay: p *= 1 - lr*weight_decay   else: g += weight_decay * p
        mu_t = beta1*(1 - 0.5*0.96^(t*momentum_decay));  mu_product *= mu_t
        exp_avg = lerp(exp_avg, g, 1-beta1);  exp_avg_sq = beta2*exp_avg_sq + (1-beta2)*g^2
        denom = sqrt(exp_avg_sq / (1-beta2^t)) + eps
        p -= lr*(1-mu_t)/(1-mu_product) * g/denom
             + lr*mu_{t+1}/(1-mu_product*mu_{t+1}) * exp_avg/denom

    State per parameter: step, mu_product (0-d, kept in the scalar dtype as torch keeps it),
    exp_avg, exp_avg_sq. One fused C call per param group and dtype.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        _check_lr(lr)
        _check_adam_args(0.0, betas, eps, weight_decay)
        _check_ge0("momentum_decay", momentum_decay)
        super().__init__(params, self._fused_defaults(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize, foreach=foreach, capturable=capturable,
            differentiable=differentiable))

    _group_setdefaults = dict(_FUSED_FLAG_SETDEFAULTS, decoupled_weight_decay=False)

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = (float(b) for b in group["betas"])
            md = float(group["momentum_decay"])
            for b in self._batches(group):
                steps, mus, ms, vs = [], [], [], []
                for p, a in zip(b.params, b.arrays):
                    st = self.state[p]
                    if not st:
                        st["step"] = _step_tensor()
                        st["mu_product"] = _step_tensor(1.0)
                        st["exp_avg"] = _state_zeros(a)
                        st["exp_avg_sq"] = _state_zeros(a)
                    step = _next_step(st)
                    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * md)))
                    # mu_product *= mu in the 0-d state's own dtype (float32 by default: the
                    # product is rounded there every step, as torch's is)
                    mp = _scalar_state(st, "mu_product", 1.0)._data
                    mp[()] = mp * mu
                    steps.append(step)
                    mus.append(float(mp))
                    ms.append(st["exp_avg"]._data)
                    vs.append(st["exp_avg_sq"]._data)
                b.run(_C.nadam_step, ms, vs, steps, mus, float(group["lr"]), beta1, beta2,
                      float(group["eps"]), float(group["weight_decay"]), md,
                      bool(group["decoupled_weight_decay"]), bool(group["maximize"]))
        return loss
