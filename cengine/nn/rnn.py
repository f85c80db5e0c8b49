"""Recurrent layers: RNN (tanh/relu), LSTM (optional projections), GRU and their cells, with
torch's parameter names, shapes, initialisation, options and shapes of inputs and outputs.

Each layer runs as one autograd Function over all time steps (cengine.ops.rnn): the input
projection of every step in one GEMM, the time loop in C with one recurrent GEMM and one fused
gate kernel per step, and a hand-written backward through time. PackedSequence inputs give
PackedSequence outputs and final states taken at each sequence's own last step."""
import math
import numbers
import warnings

import numpy as np

from .. import dtypes as _dt
from ..ops.creation import empty
from ..ops.rnn import rnn_layer
from ..ops.shape import cat
from ..tensor import Tensor, _wrap
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter
from .utils.rnn import PackedSequence

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_NAMES = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def _factory(dtype):
    return _dt.get_default_dtype() if dtype is None else dtype


def _dtype_str(dt):
    return "torch." + str(dt).split(".")[-1]


class RNNBase(Module):
    """Shared implementation of RNN, LSTM and GRU (torch.nn.RNNBase's constructor)."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          "dropout=%s and num_layers=%s" % (dropout, num_layers), stacklevel=2)
        if not isinstance(bias, bool):
            raise TypeError("bias should be of type bool, got: %s" % type(bias).__name__)
        if not isinstance(batch_first, bool):
            raise TypeError("batch_first should be of type bool, got: %s"
                            % type(batch_first).__name__)
        if not isinstance(input_size, int):
            raise TypeError("input_size should be of type int, got: %s" % type(input_size).__name__)
        if input_size <= 0:
            raise ValueError("input_size must be greater than zero")
        if not isinstance(hidden_size, int):
            raise TypeError("hidden_size should be of type int, got: %s"
                            % type(hidden_size).__name__)
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             "projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + mode)
        if proj_size > 0 and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        D = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        dtype = _factory(dtype)
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            for direction in range(D):
                layer_in = input_size if layer == 0 else real_hidden * D
                params = [Parameter(empty(gate_size, layer_in, dtype=dtype, device=device)),
                          Parameter(empty(gate_size, real_hidden, dtype=dtype, device=device))]
                names = ["weight_ih_l%d", "weight_hh_l%d"]
                if bias:
                    params += [Parameter(empty(gate_size, dtype=dtype, device=device)),
                               Parameter(empty(gate_size, dtype=dtype, device=device))]
                    names += ["bias_ih_l%d", "bias_hh_l%d"]
                if proj_size > 0:
                    params.append(Parameter(empty(proj_size, hidden_size, dtype=dtype,
                                                  device=device)))
                    names.append("weight_hr_l%d")
                suffix = "_reverse" if direction == 1 else ""
                names = [n % layer + suffix for n in names]
                for n, p in zip(names, params):
                    setattr(self, n, p)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self):
        """No-op (the weights are used where they are; kept for torch code that calls it)."""

    @property
    def _flat_weights(self):
        return [getattr(self, n, None) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def extra_repr(self):
        s = "%d, %d" % (self.input_size, self.hidden_size)
        if self.proj_size != 0:
            s += ", proj_size=%d" % self.proj_size
        if self.num_layers != 1:
            s += ", num_layers=%d" % self.num_layers
        if self.bias is not True:
            s += ", bias=%s" % self.bias
        if self.batch_first is not False:
            s += ", batch_first=%s" % self.batch_first
        if self.dropout != 0:
            s += ", dropout=%s" % self.dropout
        if self.bidirectional is not False:
            s += ", bidirectional=%s" % self.bidirectional
        return s

    def _layer_weights(self, layer):
        D = 2 if self.bidirectional else 1
        out = []
        for d in range(D):
            sfx = "_reverse" if d == 1 else ""
            g = lambda n: getattr(self, "%s_l%d%s" % (n, layer, sfx), None)  # noqa: E731
            out.append((g("weight_ih"), g("weight_hh"), g("bias_ih") if self.bias else None,
                        g("bias_hh") if self.bias else None,
                        g("weight_hr") if self.proj_size > 0 else None))
        return out

    def _check_hidden(self, hx, expected, msg):
        if tuple(hx.shape) != tuple(expected):
            raise RuntimeError(msg.format(tuple(expected), list(hx.shape)))
        w0 = getattr(self, self._flat_weights_names[0])
        if hx.dtype != w0.dtype:
            raise RuntimeError("hidden state dtype (%s) does not match weight dtype (%s)"
                               % (_dtype_str(hx.dtype), _dtype_str(w0.dtype)))

    def forward(self, input, hx=None):
        mode, name = self.mode, _NAMES[self.mode]
        lstm = mode == "LSTM"
        D = 2 if self.bidirectional else 1
        H, P = self.hidden_size, self.proj_size
        Hs = P if P > 0 else H
        w0 = getattr(self, self._flat_weights_names[0])
        packed = isinstance(input, PackedSequence)
        sorted_indices = unsorted_indices = None
        is_batched = True
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            bs = np.asarray(batch_sizes._data if isinstance(batch_sizes, Tensor) else batch_sizes,
                            dtype=np.int64)
            x = data
            if x.dim() != 2:
                raise RuntimeError("input must have 2 dimensions, got %d" % x.dim())
            if bs.ndim != 1 or bs.shape[0] == 0 or int(bs.sum()) != x.shape[0]:
                raise RuntimeError("PackedSequence: batch_sizes %s do not add up to the %d rows "
                                   "of its data" % (bs.tolist(), x.shape[0]))
            N = int(bs[0])
        else:
            nd = input.dim()
            if nd not in (2, 3):
                raise ValueError("%s: Expected input to be 2D or 3D, got %dD %sinstead"
                                 % (name, nd, "tensor " if name == "RNN" else ""))
            is_batched = nd == 3
            if not is_batched:
                input = input.unsqueeze(0 if self.batch_first else 1)
            if self.batch_first:
                input = input.transpose(0, 1)
            T, N = int(input.shape[0]), int(input.shape[1])
            x = input
        if x.dtype != w0.dtype:
            raise ValueError("RNN input dtype (%s) does not match weight dtype (%s). Convert "
                             "input: input.to(%s), or convert model: model.to(%s)"
                             % (_dtype_str(x.dtype), _dtype_str(w0.dtype), _dtype_str(w0.dtype),
                                _dtype_str(x.dtype)))
        if x.shape[-1] != self.input_size:
            raise RuntimeError("input.size(-1) must be equal to input_size. Expected %d, got %d"
                               % (self.input_size, x.shape[-1]))
        h0 = c0 = None
        exp_h = (self.num_layers * D, N, Hs)
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError("LSTM: hx must be a tuple (h_0, c_0)")
                h0, c0 = hx
                if not packed:
                    want = 3 if is_batched else 2
                    if h0.dim() != want or c0.dim() != want:
                        raise RuntimeError(
                            "For %s input, hx and cx should also be %d-D but got (%d-D, %d-D) "
                            "tensors" % ("batched 3-D" if is_batched else "unbatched 2-D", want,
                                         h0.dim(), c0.dim()))
                    if not is_batched:
                        h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
                self._check_hidden(h0, exp_h, "Expected hidden[0] size {}, got {}")
                self._check_hidden(c0, (self.num_layers * D, N, H),
                                   "Expected hidden[1] size {}, got {}")
            else:
                h0 = hx
                if not packed:
                    want = 3 if is_batched else 2
                    if h0.dim() != want:
                        raise RuntimeError(
                            "For %s input, hx should also be %d-D but got %d-D tensor"
                            % ("batched 3-D" if is_batched else "unbatched 2-D", want, h0.dim()))
                    if not is_batched:
                        h0 = h0.unsqueeze(1)
                self._check_hidden(h0, exp_h, "Expected hidden size {}, got {}")
            if sorted_indices is not None:
                h0 = h0.index_select(1, sorted_indices)
                if c0 is not None:
                    c0 = c0.index_select(1, sorted_indices)
        if not packed:
            if T == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
            if N == 0:
                return self._empty_result(x, T, is_batched, D, Hs, H)
            bs = np.full(T, N, dtype=np.int64)
            x = x.reshape(T * N, self.input_size)
        hns, cns = [], []
        for layer in range(self.num_layers):
            sl = slice(layer * D, (layer + 1) * D)
            res = rnn_layer(mode, x, None if h0 is None else h0[sl],
                            None if c0 is None else c0[sl], self._layer_weights(layer), H, P, D,
                            bs)
            x = res[0]
            hns.append(res[1])
            if lstm:
                cns.append(res[2])
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = hns[0] if len(hns) == 1 else cat(hns, 0)
        c_n = (cns[0] if len(cns) == 1 else cat(cns, 0)) if lstm else None
        if packed:
            if unsorted_indices is not None:
                h_n = h_n.index_select(1, unsorted_indices)
                if lstm:
                    c_n = c_n.index_select(1, unsorted_indices)
            out = PackedSequence(x, batch_sizes, sorted_indices, unsorted_indices)
        else:
            out = x.reshape(T, N, D * Hs)
            if self.batch_first:
                out = out.transpose(0, 1)
            if not is_batched:
                out = out.squeeze(0 if self.batch_first else 1)
                h_n = h_n.squeeze(1)
                if lstm:
                    c_n = c_n.squeeze(1)
        return (out, (h_n, c_n)) if lstm else (out, h_n)

    def _empty_result(self, x, T, is_batched, D, Hs, H):
        dt = x._data.dtype
        shape = (0, T, D * Hs) if self.batch_first else (T, 0, D * Hs)
        out = _wrap(np.zeros(shape, dt))
        h_n = _wrap(np.zeros((self.num_layers * D, 0, Hs), dt))
        if self.mode == "LSTM":
            return out, (h_n, _wrap(np.zeros((self.num_layers * D, 0, H), dt)))
        return out, h_n


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), torch's
    nn.RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False)."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            self.nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError("Unknown nonlinearity '%s'. Select from 'tanh' or 'relu'."
                             % self.nonlinearity)
        super().__init__(mode, *args, **kwargs)

    def extra_repr(self):
        s = super().extra_repr()
        if self.nonlinearity != "tanh":
            s += ", nonlinearity=%s" % self.nonlinearity
        return s


class LSTM(RNNBase):
    """Long short-term memory, torch's nn.LSTM(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, proj_size=0); forward returns
    (output, (h_n, c_n))."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit, torch's nn.GRU(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False)."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


# ---- cells -------------------------------------------------------------------------------------
class RNNCellBase(Module):
    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        dtype = _factory(dtype)
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, dtype=dtype,
                                         device=device))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, dtype=dtype,
                                         device=device))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, dtype=dtype, device=device))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self):
        s = "%d, %d" % (self.input_size, self.hidden_size)
        if self.bias is not True:
            s += ", bias=%s" % self.bias
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += ", nonlinearity=%s" % self.nonlinearity
        return s

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _check(self, input, hxs, name):
        if input.dim() not in (1, 2):
            raise ValueError("%s: Expected input to be 1D or 2D, got %dD instead"
                             % (name, input.dim()))
        w = self.weight_ih
        if input.dtype != w.dtype:
            raise ValueError("%s input dtype (%s) does not match weight dtype (%s)"
                             % (name, _dtype_str(input.dtype), _dtype_str(w.dtype)))
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
        if input.shape[1] != self.input_size:
            raise RuntimeError("input has inconsistent input_size: got %d expected %d"
                               % (input.shape[1], self.input_size))
        out = []
        for i, h in enumerate(hxs):
            if h is None:
                out.append(None)
                continue
            if not batched:
                h = h.unsqueeze(0)
            if h.shape[0] != input.shape[0]:
                raise RuntimeError("Input batch size %d doesn't match hidden%d batch size %d"
                                   % (input.shape[0], i, h.shape[0]))
            if h.shape[1] != self.hidden_size:
                raise RuntimeError("hidden%d has inconsistent hidden_size: got %d, expected %d"
                                   % (i, h.shape[1], self.hidden_size))
            if h.dtype != w.dtype:
                raise RuntimeError("hidden%d dtype (%s) does not match weight dtype (%s)"
                                   % (i, _dtype_str(h.dtype), _dtype_str(w.dtype)))
            out.append(h)
        return input, out, batched

    def _step(self, mode, x, h, c):
        N = int(x.shape[0])
        H = self.hidden_size
        if N == 0:
            z = _wrap(np.zeros((0, H), x._data.dtype))
            return z, z
        w = [(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, None)]
        res = rnn_layer(mode, x, None if h is None else h.unsqueeze(0),
                        None if c is None else c.unsqueeze(0), w, H, 0, 1,
                        np.array([N], dtype=np.int64))
        return res[0], (res[2][0] if mode == "LSTM" else None)


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu); torch's nn.RNNCell."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        if hx is not None and hx.dim() not in (1, 2):
            raise ValueError("RNNCell: Expected hidden to be 1D or 2D, got %dD instead" % hx.dim())
        x, (h,), batched = self._check(input, [hx], "RNNCell")
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise RuntimeError("Unknown nonlinearity: %s" % self.nonlinearity)
        out, _ = self._step(mode, x, h, None)
        return out if batched else out.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step; forward(input, (h, c)) -> (h', c'); torch's nn.LSTMCell."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        if hx is not None:
            for i, v in enumerate(hx):
                if v.dim() not in (1, 2):
                    raise ValueError("LSTMCell: Expected hx[%d] to be 1D or 2D, got %dD instead"
                                     % (i, v.dim()))
        x, (h, c), batched = self._check(input, [None, None] if hx is None else list(hx),
                                         "LSTMCell")
        hn, cn = self._step("LSTM", x, h, c)
        if not batched:
            return hn.squeeze(0), cn.squeeze(0)
        return hn, cn


class GRUCell(RNNCellBase):
    """One GRU step; torch's nn.GRUCell."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        if hx is not None and hx.dim() not in (1, 2):
            raise ValueError("GRUCell: Expected hidden to be 1D or 2D, got %dD instead" % hx.dim())
        x, (h,), batched = self._check(input, [hx], "GRUCell")
        out, _ = self._step("GRU", x, h, None)
        return out if batched else out.squeeze(0)
