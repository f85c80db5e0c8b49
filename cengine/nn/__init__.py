"""cengine.nn: modules, layers, losses, initialisers (torch.nn's API)."""
from .parameter import Parameter, Buffer
from .module import Module
from .container import Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict
from .linear import Identity, Linear, Flatten, Unflatten
from .embedding import Embedding
from .activation import (ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, Softplus, ELU,
                         Hardtanh, LogSigmoid, Mish, GLU, Softmax, LogSoftmax, Softmin)
from .normalization import LayerNorm, RMSNorm, BatchNorm1d, BatchNorm2d
from .dropout import Dropout, Dropout1d, Dropout2d
from .conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from .pooling import (MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, AdaptiveAvgPool1d,
                      AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d)
from .loss import (MSELoss, L1Loss, SmoothL1Loss, HuberLoss, CrossEntropyLoss, NLLLoss,
                   BCELoss, BCEWithLogitsLoss, KLDivLoss)
from .loss import CTCLoss
from .transformer import MultiheadAttention, TransformerEncoderLayer, TransformerEncoder, SwiGLU
from .transformer import TransformerDecoderLayer, TransformerDecoder, Transformer  # noqa: E402
from .rnn import RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell, LSTMCell, GRUCell
from . import functional
from . import init
from . import utils
from . import modules, parallel  # noqa: E402,F401  (torch.nn.modules.* / torch.nn.parallel)
from .parallel import DataParallel  # noqa: E402,F401
from .misc import *  # noqa: E402,F401,F403  (SELU, PReLU, CosineSimilarity, padding layers, ...)
from .misc import __all__ as _misc_all  # noqa: E402

__all__ = [
    "Parameter", "Buffer", "Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList",
    "ParameterDict", "Identity", "Linear", "Flatten", "Unflatten", "Embedding", "ReLU", "ReLU6",
    "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Softplus", "ELU", "Hardtanh", "LogSigmoid",
    "Mish", "GLU", "Softmax", "LogSoftmax", "Softmin", "LayerNorm", "RMSNorm", "BatchNorm1d",
    "Dropout", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss",
    "BCELoss", "BCEWithLogitsLoss", "KLDivLoss", "MultiheadAttention",
    "TransformerEncoderLayer", "TransformerEncoder", "SwiGLU", "functional", "init",
    "TransformerDecoderLayer", "TransformerDecoder", "Transformer", "DataParallel",
    "RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell",
    "BatchNorm2d", "Dropout1d", "Dropout2d", "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d",
    "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "ConvTranspose1d", "ConvTranspose2d",
]
__all__ += ["CTCLoss"]
__all__ += _misc_all
