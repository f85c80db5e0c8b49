"""gradcheck: compare analytic gradients with float64 central differences (torch.autograd.gradcheck).

The analytic Jacobian of every output that requires grad is built row by row from backward
passes (twice, to catch a backward that is not reentrant); the numerical one column by column
from central differences of all outputs. When no output requires grad, the numerical Jacobian
must be zero: a function whose result was detached from its inputs fails instead of passing
vacuously. Indices in the messages count differentiable inputs and outputs only, as torch's do.
"""
import warnings

import numpy as np

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    if isinstance(x, tuple):
        return x
    if isinstance(x, list):
        return tuple(x)
    return (x,)


def _outputs(fn, inputs):
    from ..tensor import Tensor
    outs = _as_tuple(fn(*inputs))
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError("gradcheck: the function must return a Tensor or a sequence of "
                            "Tensors, but output %d is %s" % (k, type(o).__name__))
    return outs


def _numerical(fn, inputs, diff, out_sizes, eps):
    """numerical[k][j]: (numel of output k, numel of input diff[j]) central differences."""
    from .grad_mode import no_grad
    jac = [[None] * len(diff) for _ in out_sizes]
    for j, i in enumerate(diff):
        x = inputs[i]._data
        cols = [np.zeros((m, x.size)) for m in out_sizes]
        for p in range(x.size):
            idx = np.unravel_index(p, x.shape)
            orig = x[idx].copy()
            with no_grad():
                x[idx] = orig + eps
                fp = [np.array(o._data, dtype=np.float64, copy=True).reshape(-1)
                      for o in _as_tuple(fn(*inputs))]
                x[idx] = orig - eps
                fm = [np.array(o._data, dtype=np.float64, copy=True).reshape(-1)
                      for o in _as_tuple(fn(*inputs))]
                x[idx] = orig
            for k in range(len(out_sizes)):
                cols[k][:, p] = (fp[k] - fm[k]) / (2 * eps)
        for k in range(len(out_sizes)):
            jac[k][j] = cols[k]
    return jac


def _analytical(out, inputs, diff, check_grad_dtypes):
    """(numel of out, numel of input) Jacobian per differentiable input, one backward per row."""
    from ..tensor import Tensor
    from .engine import grad as _grad
    n_out = out._data.size
    jac = [np.zeros((n_out, inputs[i]._data.size)) for i in diff]
    for r in range(n_out):
        go = np.zeros(out._data.shape, out._data.dtype)
        go.flat[r] = 1
        gs = _grad([out], [inputs[i] for i in diff], [Tensor(go)], retain_graph=True,
                   allow_unused=True)
        for j, g in enumerate(gs):
            if g is None:
                continue
            x = inputs[diff[j]]._data
            if g._data.shape != x.shape:
                raise GradcheckError("Analytical gradient has incorrect size: got %s for input %d "
                                     "of shape %s" % (list(g._data.shape), j, list(x.shape)))
            if check_grad_dtypes and g._data.dtype != x.dtype:
                raise GradcheckError("Gradient has dtype mismatch")
            jac[j][r] = g._data.reshape(-1)
    return jac


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, nondet_tol=0.0,
              check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
              check_batched_forward_grad=False, check_forward_ad=False, check_backward_ad=True,
              fast_mode=False, masked=None):
    """Check the gradients of fn(*inputs) with respect to every input Tensor that requires grad
    against central differences, as torch.autograd.gradcheck does (slow mode; fast_mode=True
    runs the same full check). Returns True, or on a failure raises GradcheckError (False when
    raise_exception=False).

    Failures: an analytic Jacobian entry that differs from the numerical one beyond
    atol + rtol * |numerical| (NaN counts as different), a backward that gives different
    results on two runs (beyond nondet_tol), a function none of whose outputs requires grad
    while its numerical Jacobian is not zero, and (with check_grad_dtypes) a gradient of
    another dtype than its input. Inputs should be float64; others draw a warning."""
    from ..tensor import Tensor
    if check_batched_grad or check_batched_forward_grad or check_forward_ad:
        raise NotImplementedError("gradcheck: batched gradients and forward-mode AD are not "
                                  "supported by cengine")
    # check_undefined_grad: cengine's engine gives every backward real (zero-filled) gradients
    # for outputs that received none, so there is no undefined-gradient path to check
    inputs = _as_tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of them have requires_grad=True.")
    for n, i in enumerate(diff):
        x = inputs[i]._data
        if x.dtype != np.float64:
            warnings.warn("Input #%d requires gradient and is not a double precision floating "
                          "point or complex. This check will likely fail if all the inputs are "
                          "not of double precision floating point or complex." % n)
        if x.size and any(st == 0 and sz > 1 for st, sz in zip(x.strides, x.shape)):
            raise RuntimeError("The %dth input has a dimension with stride 0. gradcheck only "
                               "supports inputs that are non-overlapping to be able to compute "
                               "the numerical gradients correctly. You should call .contiguous "
                               "on the input before passing it to gradcheck." % i)
        if not x.flags.writeable:
            raise RuntimeError("gradcheck perturbs its inputs in place, but input %d is "
                               "read-only; pass a clone() of it" % i)

    def fail(msg):
        if raise_exception:
            raise GradcheckError(msg)
        return False

    outs = _outputs(fn, inputs)
    diff_out = [k for k, o in enumerate(outs) if o.requires_grad]
    if not check_backward_ad:
        return True
    numerical = _numerical(fn, inputs, diff, [o._data.size for o in outs], eps)
    if not diff_out:
        # nothing to differentiate: the function must not depend on its inputs
        for per_input in numerical:
            for n in per_input:
                if np.any(n != 0):
                    return fail("Numerical gradient for function expected to be zero")
        return True
    for oi, k in enumerate(diff_out):
        out = outs[k]
        first = _analytical(out, inputs, diff, check_grad_dtypes)
        second = _analytical(out, inputs, diff, False)
        for j in range(len(diff)):
            if not np.allclose(first[j], second[j], rtol=0, atol=nondet_tol, equal_nan=True):
                return fail("Backward is not reentrant, i.e., running backward with same input "
                            "and grad_output multiple times gives different values, although "
                            "analytical gradient matches numerical gradient.The tolerance for "
                            "nondeterminism was %s." % nondet_tol)
        for j in range(len(diff)):
            a, n = first[j], numerical[k][j]
            if not np.allclose(a, n, rtol=rtol, atol=atol, equal_nan=False):
                with np.errstate(invalid="ignore"):
                    worst = np.max(np.abs(a - n)) if a.size else 0.0
                return fail("Jacobian mismatch for output %d with respect to input %d,\n"
                            "numerical:%s\nanalytical:%s\n(max abs difference %.3g)\n"
                            % (oi, j, n, a, worst))
    return True
