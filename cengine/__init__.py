"""cengine: a CPU-first deep-learning engine with a PyTorch-shaped API.

    import cengine as ce
    x = ce.randn(4, 3, requires_grad=True)
    (x * x).sum().backward()
"""
__version__ = "0.1.0"

from . import _C  # noqa: F401  (loads the compiled kernels, detects the CPU)
from ._config import set_num_threads, get_num_threads, show_config, get_isa, set_isa
from .dtypes import (dtype, float32, float64, float16, bfloat16, int64, int32, int16, int8,  # noqa
                     uint8, bool, float, double, half, long, int, short, get_default_dtype,
                     set_default_dtype, promote_types)
from .tensor import Tensor, Size, device
from ._legacy import *  # noqa: F401,F403  (FloatTensor, LongTensor, ...)
from . import autograd
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled, inference_mode
from . import ops as _ops  # noqa: F401
from .ops.creation import *  # noqa: F401,F403
from .ops.elementwise import *  # noqa: F401,F403
from .ops.reduce import *  # noqa: F401,F403
from .ops.shape import *  # noqa: F401,F403
from .ops.index import *  # noqa: F401,F403
from .ops.activation import *  # noqa: F401,F403
from .ops.sorting import *  # noqa: F401,F403
from .ops.scatter import *  # noqa: F401,F403
from .ops.elementwise import cast as _cast  # noqa: F401
from .random import *  # noqa: F401,F403
from .random import Generator, manual_seed, default_generator  # noqa: F401

from ._config import _init as _config_init

_config_init()
del _config_init

# ---- subsystems (imported below as they land) ----
from .ops.linalg import *  # noqa: F401,F403  (matmul family on the C GEMM)
from . import utils  # noqa: E402,F401
from . import nn  # noqa: E402,F401
from . import optim  # noqa: E402,F401
from . import distributed  # noqa: E402,F401
from . import amp  # noqa: E402,F401
from .amp.autocast_mode import (autocast, is_autocast_available, is_autocast_enabled,  # noqa
                                get_autocast_dtype, set_autocast_enabled, set_autocast_dtype,
                                is_autocast_cache_enabled, set_autocast_cache_enabled,
                                clear_autocast_cache, is_autocast_cpu_enabled,
                                get_autocast_cpu_dtype, set_autocast_cpu_enabled,
                                set_autocast_cpu_dtype, get_autocast_gpu_dtype)
from . import cpu  # noqa: E402,F401  (torch.cpu: cengine.cpu.amp.autocast)
from .nn.functional import softmax, log_softmax  # noqa: E402,F401
from .serialization import save, load  # noqa: E402,F401
from ._surface import *  # noqa: E402,F401,F403  (set_default_device, compile, ...)
from . import cuda, accelerator, backends  # noqa: E402,F401  (torch's namespaces, CPU-only)
