"""cengine.utils: data loading (cengine.utils.data), torch.utils-style."""
from . import data  # noqa: F401
from . import hooks  # noqa: F401,E402
