"""Attention and transformer blocks: MultiheadAttention, TransformerEncoderLayer,
TransformerEncoder and the LLaMA-style SwiGLU feed-forward block. Attention runs on
F.scaled_dot_product_attention (batched GEMM + softmax row kernel)."""
import copy

import numpy as np

from .. import dtypes as _dt
from ..ops.creation import empty
from ..tensor import Tensor, _wrap
from . import functional as F
from . import init
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm
from .parameter import Parameter

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "SwiGLU",
           "TransformerDecoderLayer", "TransformerDecoder", "Transformer"]


def _additive(mask, dtype, name):
    """bool mask (True = masked out) or float mask -> additive float Tensor."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError("%s must be a Tensor" % name)
    if mask._data.dtype == np.bool_:
        return _wrap(np.where(mask._data, -np.inf, 0.0).astype(dtype.np))
    if not _dt.is_floating(mask._data.dtype):
        raise AssertionError("only bool and floating types of %s are supported" % name)
    return mask if mask.dtype == dtype else mask.to(dtype)


class MultiheadAttention(Module):
    """Multi-head attention with torch's parameters (in_proj_weight (3E, E), in_proj_bias,
    out_proj) and call signature; batch_first=True takes (N, L, E) inputs, otherwise (L, N, E).

    attn_mask: (L, S) or (N*num_heads, L, S), bool (True = not allowed) or additive float;
    key_padding_mask: (N, S), bool (True = ignore that key) or additive float.
    Returns (attn_output, attn_weights averaged over heads, or per head, or None)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None,
                 dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError("embed_dim and num_heads must be greater than 0, got embed_dim=%s "
                             "and num_heads=%s instead" % (embed_dim, num_heads))
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("add_bias_kv / add_zero_attn are not supported by cengine")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")
        dt = _dt.get_default_dtype() if dtype is None else dtype
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dt))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, dtype=dt))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, dtype=dt))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, dtype=dt))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, dtype=dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dt)
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def _project(self, query, key, value):
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self._qkv_same_embed_dim:
            W = self.in_proj_weight
            if query is key and key is value:
                return F.linear(query, W, b).chunk(3, -1)
            return (F.linear(query, W[:E], bq), F.linear(key, W[E:2 * E], bk),
                    F.linear(value, W[2 * E:], bv))
        return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                F.linear(value, self.v_proj_weight, bv))

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        batched = query.dim() == 3
        if not batched:
            if query.dim() != 2:
                raise AssertionError("query should be unbatched 2D or batched 3D tensor but "
                                     "received %dD query tensor" % query.dim())
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            same_kv = key is value
            same_qk = query is key
            query = query.transpose(0, 1)
            key = query if same_qk else key.transpose(0, 1)
            value = key if same_kv else value.transpose(0, 1)
        N, L, E = query.shape
        S = key.shape[1]
        if E != self.embed_dim:
            raise AssertionError("was expecting embedding dimension of %d, but got %d"
                                 % (self.embed_dim, E))
        H, D = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value)
        q = q.reshape(N, L, H, D).transpose(1, 2)
        k = k.reshape(N, S, H, D).transpose(1, 2)
        v = v.reshape(N, S, H, D).transpose(1, 2)
        dt = query.dtype
        mask = _additive(attn_mask, dt, "attn_mask")
        if mask is not None:
            if mask.dim() == 3:
                if tuple(mask.shape) != (N * H, L, S):
                    raise RuntimeError("The shape of the 3D attn_mask is %s, but should be %s."
                                       % (tuple(mask.shape), (N * H, L, S)))
                mask = mask.reshape(N, H, L, S)
            elif mask.dim() == 2:
                if tuple(mask.shape) != (L, S):
                    raise RuntimeError("The shape of the 2D attn_mask is %s, but should be %s."
                                       % (tuple(mask.shape), (L, S)))
            else:
                raise RuntimeError("attn_mask's dimension %d is not supported" % mask.dim())
        elif is_causal:
            mask = _wrap(np.where(np.tril(np.ones((L, S), bool)), 0.0, -np.inf).astype(dt.np))
        kpm = _additive(key_padding_mask, dt, "key_padding_mask")
        if kpm is not None:
            if tuple(kpm.shape) != (N, S):
                raise AssertionError("expecting key_padding_mask shape of %s, but got %s"
                                     % ((N, S), tuple(kpm.shape)))
            kpm = kpm.reshape(N, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        p = self.dropout if self.training else 0.0
        res = F._attention(q, k, v, mask, p, False, None, need_weights)
        o, w = res if need_weights else (res, None)
        o = o.transpose(1, 2).reshape(N, L, E)
        out = self.out_proj(o)
        if w is not None and average_attn_weights:
            w = w.mean(dim=1)
        if not batched:
            out = out.squeeze(0)
            if w is not None:
                w = w.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, w

    def extra_repr(self):
        return ""


def _activation(act):
    if isinstance(act, str):
        if act == "relu":
            return F.relu
        if act == "gelu":
            return F.gelu
        raise RuntimeError("activation should be relu/gelu, not %s" % act)
    return act


def _clones(layer, n):
    """n independent deep copies of a layer (a stack's layers)"""
    return ModuleList([copy.deepcopy(layer) for _ in range(n)])


def _self_attention(layer, x, attn_mask, key_padding_mask, is_causal):
    """the encoder/decoder layers' self-attention block: attention over x, then dropout1"""
    x = layer.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                        need_weights=False, is_causal=is_causal)[0]
    return layer.dropout1(x)


def _layer_modules(layer, cross, d_model, nhead, dim_feedforward, dropout, activation,
                   layer_norm_eps, batch_first, norm_first, bias, dtype):
    """the sub-modules of an encoder layer (cross False) or a decoder layer (cross True: the
    cross-attention, norm3 and dropout3 too), registered in torch's order so state_dict keys
    match"""
    def attn():
        return MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                  batch_first=batch_first, dtype=dtype)

    def norm():
        return LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)

    layer.self_attn = attn()
    if cross:
        layer.multihead_attn = attn()
    layer.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
    layer.dropout = Dropout(dropout)
    layer.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
    layer.norm_first = norm_first
    layer.norm1, layer.norm2 = norm(), norm()
    if cross:
        layer.norm3 = norm()
    layer.dropout1, layer.dropout2 = Dropout(dropout), Dropout(dropout)
    if cross:
        layer.dropout3 = Dropout(dropout)
    layer.activation = _activation(activation)


class TransformerEncoderLayer(Module):
    """Self-attention + feed-forward block with residuals and LayerNorm (post-norm by default,
    norm_first=True for pre-norm), torch's parameter names and defaults."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        _layer_modules(self, False, d_model, nhead, dim_feedforward, dropout, activation,
                       layer_norm_eps, batch_first, norm_first, bias, dtype)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        return _self_attention(self, x, attn_mask, key_padding_mask, is_causal)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x


class TransformerEncoder(Module):
    """num_layers deep copies of encoder_layer applied in turn, then an optional norm."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                        is_causal=bool(is_causal))
        if self.norm is not None:
            out = self.norm(out)
        return out


class SwiGLU(Module):
    """LLaMA-style feed-forward block: down_proj(silu(gate_proj(x)) * up_proj(x))."""

    def __init__(self, dim, hidden_dim, bias=False, device=None, dtype=None):
        super().__init__()
        self.gate_proj = Linear(dim, hidden_dim, bias=bias, dtype=dtype)
        self.up_proj = Linear(dim, hidden_dim, bias=bias, dtype=dtype)
        self.down_proj = Linear(hidden_dim, dim, bias=bias, dtype=dtype)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class TransformerDecoderLayer(Module):
    """Self-attention, cross-attention over the encoder's memory, then feed-forward; each with a
    residual and LayerNorm (post-norm by default, norm_first=True for pre-norm). torch's
    parameter names (self_attn, multihead_attn, linear1/2, norm1/2/3) so state_dicts load."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        _layer_modules(self, True, d_model, nhead, dim_feedforward, dropout, activation,
                       layer_norm_eps, batch_first, norm_first, bias, dtype)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        return _self_attention(self, x, attn_mask, key_padding_mask, is_causal)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, is_causal=is_causal,
                                need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                    memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                               memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x


class TransformerDecoder(Module):
    """num_layers deep copies of decoder_layer applied in turn over (tgt, memory), then an
    optional norm."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        out = tgt
        for layer in self.layers:
            out = layer(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        if self.norm is not None:
            out = self.norm(out)
        return out


class Transformer(Module):
    """The encoder-decoder transformer of "Attention Is All You Need" with torch's defaults,
    parameter names (encoder.layers.N..., encoder.norm, decoder.layers.N..., decoder.norm) and
    call signature; parameters with more than one dimension start Xavier-uniform as in torch."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=False, norm_first=False,
                 bias=True, device=None, dtype=None):
        super().__init__()
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation,
                                            layer_norm_eps, batch_first, norm_first, bias,
                                            dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation,
                                            layer_norm_eps, batch_first, norm_first, bias,
                                            dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, norm)
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def _reset_parameters(self):
        for p in self.parameters():
            if p.dim() > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        batched = src.dim() == 3
        if not self.batch_first and batched and src.size(1) != tgt.size(1):
            raise RuntimeError("the batch number of src and tgt must be equal")
        if self.batch_first and batched and src.size(0) != tgt.size(0):
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.size(-1) != self.d_model or tgt.size(-1) != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """(sz, sz) float mask: 0 on and below the diagonal, -inf above (a causal mask)."""
        from .. import dtypes as _dtm
        npd = (_dtm.get_default_dtype() if dtype is None else dtype).np
        if sz < 0:
            raise RuntimeError("Trying to create tensor with negative dimension %d: [%d, %d]"
                               % (sz, sz, sz))
        m = _wrap(np.triu(np.full((sz, sz), -np.inf, npd), 1))
        return m if device is None else m.to(device)
