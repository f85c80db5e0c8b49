"""gradcheck: compare analytic gradients with float64 central differences."""
import numpy as np

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, nondet_tol=0.0):
    """Check d fn(*inputs) / d inputs: the full Jacobian from backward (one pass per output
    element) against central differences, for every input Tensor that requires grad.
    Inputs that require grad must be float64."""
    from ..tensor import Tensor, _wrap
    from .engine import grad as _grad
    from .grad_mode import no_grad
    inputs = _as_tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck expects at least one input tensor to require gradient")
    for i in diff:
        if inputs[i].dtype.np != np.float64:
            raise GradcheckError("gradcheck needs float64 inputs for precision; input %d is %s"
                                 % (i, inputs[i].dtype))
    outs = _as_tuple(fn(*inputs))
    outs = [o for o in outs if isinstance(o, Tensor) and o.requires_grad]
    for oi, out in enumerate(outs):
        n_out = out._data.size
        # analytic Jacobian rows, one backward per output element
        analytic = [np.zeros((n_out, inputs[i]._data.size)) for i in diff]
        for k in range(n_out):
            go = np.zeros(out._data.shape)
            go.flat[k] = 1.0
            gs = _grad([out], [inputs[i] for i in diff], [_wrap(go)], retain_graph=True,
                       allow_unused=True)
            for j, g in enumerate(gs):
                if g is not None:
                    analytic[j][k] = g._data.reshape(-1)
        # numerical Jacobian columns
        for j, i in enumerate(diff):
            x = inputs[i]._data
            numeric = np.zeros_like(analytic[j])
            for p in range(x.size):
                idx = np.unravel_index(p, x.shape)
                orig = x[idx]
                with no_grad():
                    x[idx] = orig + eps
                    fp = np.array(_as_tuple(fn(*inputs))[oi]._data, dtype=np.float64, copy=True)
                    x[idx] = orig - eps
                    fm = np.array(_as_tuple(fn(*inputs))[oi]._data, dtype=np.float64, copy=True)
                    x[idx] = orig
                numeric[:, p] = ((fp - fm) / (2 * eps)).reshape(-1)
            if not np.allclose(analytic[j], numeric, atol=atol, rtol=rtol, equal_nan=True):
                if not raise_exception:
                    return False
                worst = np.nanmax(np.abs(analytic[j] - numeric))
                raise GradcheckError(
                    "Jacobian mismatch for output %d with respect to input %d (max abs diff %.3g)"
                    ",\nnumerical:%s\nanalytical:%s\n" % (oi, i, worst, numeric, analytic[j]))
    return True
