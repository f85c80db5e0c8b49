"""Differentiable ops grouped by kind; importing this package installs the Tensor methods."""
from . import elementwise, reduce, shape, index, creation, activation  # noqa: F401
from . import sorting, scatter  # noqa: F401,E402
