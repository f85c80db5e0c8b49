"""Adadelta (torch.optim.Adadelta)."""
from .. import _C
from .optimizer import (Optimizer, _check_fused_flags, _check_lr, _next_step, _state_zeros,
                        _step_tensor)

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta, as torch.optim.Adadelta:

        g = -grad if maximize else grad;  g += weight_decay * p
        square_avg = rho*square_avg + (1-rho)*g^2
        delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
        acc_delta = rho*acc_delta + (1-rho)*delta^2;  p -= lr * delta

    State per parameter: step, square_avg, acc_delta. One fused C call per param group and
    dtype.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        _check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
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
            for b in self._batches(group):
                sqs, accs = [], []
                for p, a in zip(b.params, b.arrays):
                    st = self.state[p]
                    if not st:
                        st["step"] = _step_tensor()
                        st["square_avg"] = _state_zeros(a)
                        st["acc_delta"] = _state_zeros(a)
                    _next_step(st)
                    sqs.append(st["square_avg"]._data)
                    accs.append(st["acc_delta"]._data)
                b.run(_C.adadelta_step, sqs, accs, float(group["lr"]), float(group["rho"]),
                      float(group["eps"]), float(group["weight_decay"]), bool(group["maximize"]))
        return loss
