"""RMSprop (torch.optim.RMSprop), also exported as RMSProp."""
from .. import _C
from .optimizer import Optimizer, _check_fused_flags, _next_step, _state_zeros, _step_tensor

__all__ = ["RMSprop", "RMSProp"]


class RMSprop(Optimizer):
    r"""RMSprop, as torch.optim.RMSprop:

        g = -grad if maximize else grad;  g += weight_decay * p
        sq = alpha*sq + (1-alpha)*g^2
        centered: gavg = alpha*gavg + (1-alpha)*g;  avg = sqrt(sq - gavg^2) + eps
        else:     avg = sqrt(sq) + eps
        momentum > 0: buf = momentum*buf + g/avg;  p -= lr*buf     else: p -= lr*g/avg

    One fused C call per param group.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        _check_fused_flags(defaults)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("maximize", False)

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            momentum = float(group["momentum"])
            centered = bool(group["centered"])
            for b in self._batches(group):
                sqs, gavgs, bufs = [], [], []
                for p, a in zip(b.params, b.arrays):
                    st = self.state[p]
                    if not st:
                        st["step"] = _step_tensor()
                        st["square_avg"] = _state_zeros(a)
                    if momentum > 0 and "momentum_buffer" not in st:
                        st["momentum_buffer"] = _state_zeros(a)
                    if centered and "grad_avg" not in st:
                        st["grad_avg"] = _state_zeros(a)
                    _next_step(st)
                    sqs.append(st["square_avg"]._data)
                    if centered:
                        gavgs.append(st["grad_avg"]._data)
                    if momentum > 0:
                        bufs.append(st["momentum_buffer"]._data)
                b.run(_C.rmsprop_step, sqs, gavgs if centered else None,
                      bufs if momentum > 0 else None, float(group["lr"]), float(group["alpha"]),
                      float(group["eps"]), float(group["weight_decay"]), momentum, centered,
                      bool(group["maximize"]))
        return loss


RMSProp = RMSprop
