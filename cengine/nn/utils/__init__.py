"""cengine.nn.utils: gradient clipping and sequence padding helpers."""
from . import rnn  # noqa: F401
from .clip_grad import clip_grad_norm_, clip_grad_value_, get_total_norm, clip_grads_with_norm_  # noqa: F401,E501
from .rnn import pad_sequence  # noqa: F401
from .rnn import (PackedSequence, pack_padded_sequence, pad_packed_sequence, pack_sequence,  # noqa: F401
                  unpack_sequence, unpad_sequence)
from .convert_parameters import parameters_to_vector, vector_to_parameters  # noqa: F401,E402
