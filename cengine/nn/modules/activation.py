"""torch.nn.modules.activation (MultiheadAttention lives there in torch)"""
from ..activation import *  # noqa: F401,F403
from ..activation import __all__ as _act_all
from ..transformer import MultiheadAttention  # noqa: F401

__all__ = list(_act_all) + ["MultiheadAttention"]
