"""parameters_to_vector / vector_to_parameters (torch.nn.utils.convert_parameters)."""
from ...tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters):
    """One 1-d tensor: every parameter flattened, concatenated in order (differentiable)."""
    from ...ops.shape import cat
    vec = [p.reshape(-1) for p in parameters]
    if not vec:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    return cat(vec)


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of vec into the parameters' data (in place, not recorded)."""
    if not isinstance(vec, Tensor):
        raise TypeError("expected torch.Tensor, but got: %s" % type(vec).__name__)
    params = list(parameters)
    n = sum(p.numel() for p in params)
    if vec.dim() != 1 or vec.numel() != n:
        raise RuntimeError("vector of %d elements cannot fill parameters of %d elements"
                           % (vec.numel(), n))
    pointer = 0
    for p in params:
        k = p.numel()
        p.data = vec[pointer:pointer + k].view_as(p).detach().clone().to(p.dtype)
        pointer += k
