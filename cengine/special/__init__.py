"""cengine.special: torch.special's functions that cengine has (all with autograd)."""
from ..ops.special import erf, erfc, erfinv, logit  # noqa: F401
from ..ops.elementwise import expm1, log1p  # noqa: F401
from ..ops.activation import sigmoid as expit  # noqa: F401
from ..ops.reduce import logsumexp  # noqa: F401
from ..nn.functional import softmax, log_softmax  # noqa: F401

__all__ = ["erf", "erfc", "erfinv", "logit", "expm1", "log1p", "expit", "logsumexp", "softmax",
           "log_softmax"]
