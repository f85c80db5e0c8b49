"""Differentiable ops grouped by kind; importing this package installs the Tensor methods."""
from . import elementwise, reduce, shape, index, creation, activation  # noqa: F401
