"""Scaled dot-product attention with autograd: O = dropout(softmax(scale Q K^T + mask)) V on the
batched strided GEMM (src_c/gemm.c; head views go in as they are) and the softmax row kernel, with
the Jacobian-free softmax backward. When q, k and v are the three pieces of one fused projection's
split, their gradients are written into one packed buffer the split's backward takes as it is.
The torch-named surface (argument checks, masks, dropout, batch folding) is
cengine.nn.functional (scaled_dot_product_attention, and _attention for MultiheadAttention)."""
import numpy as np

from .. import _device as _dv

from ..autograd.function import Function
from .linalg import _gemm
from .softmax import _k_softmax_forward, _k_softmax_backward


def _heads_empty(shape, dtype, ref=None):
    """empty (..., L, E) array; for 4-D (b, h, L, E) the (b, h, L, E) view of a C-contiguous
    (b, L, h, E) array, the layout a (b, L, h*E) tensor's heads come from and go back to: the
    model's transpose(1, 2).reshape(b, L, h*E) of the result is then free."""
    if len(shape) == 4:
        b, h, L, E = shape
        return _dv.empty(ref, (b, L, h, E), dtype).transpose(0, 2, 1, 3)
    return _dv.empty(ref, shape, dtype)


def _packed_qkv_grads(ctx, q, k, v):
    """(gq, gk, gv) as views of one packed gradient G, when this attention node's q, k, v are,
    through reshape / permute views only, the three pieces of one 3-way split along the last
    dimension (the `chunk(3, -1)` of a fused qkv projection, llm.c's inp (B, T, 3C): what
    MultiheadAttention and the usual transformer block do). G is laid out like the split's input
    and handed to the Split node (its `packed_grad` contract), whose backward then returns it
    without concatenating. The layout is read off the graph (which Split node, which piece,
    which views), never inferred from the arrays' addresses. None in every other case."""
    from ..ops.shape import Split, Reshape, Permute
    split, chains, nrs = None, {}, []
    for arr, edge in zip((q, k, v), ctx.next_functions[:3]):
        if edge is None:
            return None
        node, nr = edge
        shape, ops = arr.shape, []          # walk from the tensor back to its split piece
        while node._fn is not Split:
            if node._fn is Permute:
                perm = tuple(int(i) for i in np.argsort(node.inv))
                shape = tuple(shape[i] for i in node.inv)
                ops.append(("permute", perm))
            elif node._fn is Reshape:
                ops.append(("reshape", shape))
                shape = node.shape
            else:
                return None
            e = node.next_functions[0]
            if e is None:
                return None
            node, nr = e
        if split is None:
            split = node
        if node is not split or nr in chains:
            return None
        chains[nr] = (ops, shape)
        nrs.append(nr)
    d, xshape, sizes = split.d, split.shape, split.sizes
    if len(sizes) != 3 or d != len(xshape) - 1 or len(set(sizes)) != 1:
        return None
    G = _dv.empty(q, xshape, q.dtype)
    views, start = {}, 0
    for nr in range(3):
        ops, pshape = chains[nr]
        g = G[..., start:start + sizes[nr]]
        start += sizes[nr]
        if g.shape != pshape:
            return None
        for op, arg in reversed(ops):
            if op == "permute":
                g = np.transpose(g, arg)
            else:
                try:
                    g = np.reshape(g, arg, copy=False)
                except ValueError:   # that reshape copied: no view of G to write into
                    return None
        views[nr] = g
    out = tuple(views[nr] for nr in nrs)
    if any(g.shape != a.shape for g, a in zip(out, (q, k, v))):
        return None
    split.packed_grad = G
    _PACKED_QKV[0] += 1
    return out


_PACKED_QKV = [0]   # attention backward passes that wrote packed q/k/v gradients


class _SDPA(Function):
    """O = dropout(softmax(scale * Q K^T + mask)) V on the batched GEMM and the softmax row
    kernel; backward with the Jacobian-free softmax backward. Q (*, L, E), K (*, S, E),
    V (*, S, Ev) with the same one or two batch dimensions * (any strides: head views go to the
    GEMM as they are), mask broadcastable to (*, L, S), additive float, or None. Outputs (O, P)
    with P the attention weights. safe: a query row whose scores are all -inf (every key masked
    out) gets weights 0, hence output 0 and zero gradients (torch's scaled_dot_product_attention;
    its MultiheadAttention with need_weights=True keeps the NaN of a plain softmax)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, scale, dropout_mask, safe=True):
        bd, L, S = q.shape[:-2], q.shape[-2], k.shape[-2]
        R = int(np.prod(bd + (L,), dtype=np.int64))
        s = _dv.empty(q, bd + (L, S), q.dtype)
        _gemm(q, np.swapaxes(k, -1, -2), s, scale)
        if mask is not None:
            s += mask
        p = _k_softmax_forward(s.reshape(R, S), False).reshape(s.shape)
        if safe and mask is not None and S:
            dead = s.max(axis=-1) == -np.inf
            if dead.any():
                p[dead] = 0.0
        pd = p if dropout_mask is None else p * dropout_mask
        o = _heads_empty(bd + (L, v.shape[-1]), q.dtype, q)
        _gemm(pd, v, o)
        ctx.save_for_backward(q, k, v, p, dropout_mask)
        ctx.scale = scale
        ctx.set_materialize_grads(False)   # the weights are rarely used: no zero-filled grad
        return o, pd

    @staticmethod
    def backward(ctx, go, gp):
        q, k, v, p, dm = ctx.saved_tensors
        scale = ctx.scale
        S = p.shape[-1]
        pd = p if dm is None else p * dm
        need_q, need_k, need_v, need_m = ctx.needs_input_grad[:4]
        if go is None:   # only the weights were used
            go = _dv.zeros(q, q.shape[:-1] + (v.shape[-1],), q.dtype)
        go = go.astype(q.dtype, copy=False)
        gv = None
        sib = _packed_qkv_grads(ctx, q, k, v) if need_q and need_k and need_v else None
        if need_v:
            gv = sib[2] if sib else _heads_empty(v.shape, v.dtype, v)
            _gemm(np.swapaxes(pd, -1, -2), go, gv)
        dp = _dv.empty(q, p.shape, q.dtype)
        _gemm(go, np.swapaxes(v, -1, -2), dp)
        if gp is not None:  # grad of the returned (dropped-out) weights
            dp += gp
        if dm is not None:
            dp *= dm
        R = int(np.prod(p.shape[:-1], dtype=np.int64))
        ds = _k_softmax_backward(p.reshape(R, S), dp.reshape(R, S), False).reshape(p.shape)
        gq = gk = None
        if need_q:
            gq = sib[0] if sib else _heads_empty(q.shape, q.dtype, q)
            _gemm(ds, k, gq, scale)
        if need_k:
            gk = sib[1] if sib else _heads_empty(k.shape, k.dtype, k)
            _gemm(np.swapaxes(ds, -1, -2), q, gk, scale)
        return gq, gk, gv, (ds if need_m else None), None, None, None
