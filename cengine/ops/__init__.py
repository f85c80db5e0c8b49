"""Differentiable ops grouped by kind (the Tensor methods that call them are declared in
cengine/_tensor_methods.py)."""
from . import elementwise, reduce, shape, index, creation, activation  # noqa: F401
from . import sorting, scatter  # noqa: F401,E402
