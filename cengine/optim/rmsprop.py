"""RMSprop (torch.optim.RMSprop), also exported as RMSProp."""
from .. import _C
from .optimizer import Optimizer, _check_ge0

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
        _check_ge0("epsilon", eps)
        _check_ge0("momentum", momentum)
        _check_ge0("weight_decay", weight_decay)
        _check_ge0("alpha", alpha)
        super().__init__(params, self._fused_defaults(
            lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
            weight_decay=weight_decay, capturable=capturable, foreach=foreach,
            maximize=maximize, differentiable=differentiable))

    _group_setdefaults = dict(momentum=0, centered=False, maximize=False)

    def step(self, closure=None):
        """Perform a single optimization step; closure re-evaluates the model and returns the
        loss."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            momentum = float(group["momentum"])
            centered = bool(group["centered"])
            for b in self._batches(group):
                # created in torch's order: square_avg, momentum_buffer, grad_avg
                keys = (("square_avg",) + (("momentum_buffer",) if momentum > 0 else ())
                        + (("grad_avg",) if centered else ()))
                _, cols = self._fused_state(b, keys)
                col = dict(zip(keys, cols))
                b.run(_C.rmsprop_step, col["square_avg"], col.get("grad_avg"),
                      col.get("momentum_buffer"), float(group["lr"]), float(group["alpha"]),
                      float(group["eps"]), float(group["weight_decay"]), momentum, centered,
                      bool(group["maximize"]))
        return loss


RMSProp = RMSprop
