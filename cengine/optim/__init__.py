"""cengine.optim: optimizers with fused multi-tensor C updates, and LR schedulers
(torch.optim's names, defaults and semantics)."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam
from .adamw import AdamW
from .adagrad import Adagrad
from .rmsprop import RMSprop, RMSProp
from .lbfgs import LBFGS
from .adadelta import Adadelta
from .adamax import Adamax
from .nadam import NAdam
from .radam import RAdam
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "RMSProp", "lr_scheduler",
           "LBFGS", "Adadelta", "Adamax", "NAdam", "RAdam"]
