"""cengine.nn.utils: gradient clipping and sequence padding helpers."""
from . import rnn  # noqa: F401
from .rnn import pad_sequence  # noqa: F401
