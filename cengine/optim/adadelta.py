"""Adadelta (torch.optim.Adadelta)."""
from .. import _C
from .optimizer import _FUSED_FLAG_SETDEFAULTS, Optimizer, _check_ge0, _check_lr

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
        _check_ge0("epsilon", eps)
        _check_ge0("weight_decay", weight_decay)
        super().__init__(params, self._fused_defaults(
            lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
            capturable=capturable, foreach=foreach, differentiable=differentiable))

    _group_setdefaults = _FUSED_FLAG_SETDEFAULTS

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            for b in self._batches(group):
                _, (sqs, accs) = self._fused_state(b, ("square_avg", "acc_delta"))
                b.run(_C.adadelta_step, sqs, accs, float(group["lr"]), float(group["rho"]),
                      float(group["eps"]), float(group["weight_decay"]), bool(group["maximize"]))
        return loss
