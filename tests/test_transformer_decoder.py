"""nn.Transformer, TransformerDecoderLayer, TransformerDecoder: torch's parameter names, outputs
and gradients against torch with copied weights, the causal mask, errors."""
import numpy as np
import pytest

import cengine as ce
from cengine import nn


def _load_from_torch(cm, tm):
    missing = cm.load_state_dict({k: ce.tensor(v.detach().numpy().astype(np.float64))
                                  for k, v in tm.state_dict().items()})
    return missing


def test_square_subsequent_mask():
    m = nn.Transformer.generate_square_subsequent_mask(4)
    ref = np.triu(np.full((4, 4), -np.inf), 1)
    np.testing.assert_array_equal(m.numpy(), ref)
    assert m.dtype is ce.float32
    assert nn.Transformer.generate_square_subsequent_mask(2, dtype=ce.float64).dtype is ce.float64
    assert nn.Transformer.generate_square_subsequent_mask(0).shape == (0, 0)


def test_parameter_names_match_torch():
    torch = pytest.importorskip("torch")
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=3, dim_feedforward=16)
    c, t = nn.Transformer(**kw), torch.nn.Transformer(**kw)
    cs, ts = c.state_dict(), t.state_dict()
    assert list(cs) == list(ts)
    assert all(tuple(cs[k].shape) == tuple(ts[k].shape) for k in cs)
    dl = nn.TransformerDecoderLayer(8, 2, 16)
    assert list(dl.state_dict()) == list(torch.nn.TransformerDecoderLayer(8, 2, 16).state_dict())


def test_xavier_init_and_shapes():
    ce.manual_seed(0)
    m = nn.Transformer(16, 4, 1, 1, 32, dropout=0.0)
    w = m.encoder.layers[0].linear1.weight.detach().numpy()
    bound = np.sqrt(6.0 / (16 + 32))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    out = m(ce.randn(5, 2, 16), ce.randn(3, 2, 16))
    assert out.shape == (3, 2, 16)
    mb = nn.Transformer(16, 4, 1, 1, 32, dropout=0.0, batch_first=True)
    assert mb(ce.randn(2, 5, 16), ce.randn(2, 3, 16)).shape == (2, 3, 16)


def test_transformer_errors():
    m = nn.Transformer(8, 2, 1, 1, 16)
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        m(ce.randn(5, 2, 8), ce.randn(3, 3, 8))
    with pytest.raises(RuntimeError, match="the feature number of src and tgt must be equal"):
        m(ce.randn(5, 2, 8), ce.randn(3, 2, 6))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_matches_torch(norm_first, batch_first):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(d_model=12, nhead=3, num_encoder_layers=2, num_decoder_layers=2,
              dim_feedforward=20, dropout=0.0, norm_first=norm_first, batch_first=batch_first,
              activation="gelu" if norm_first else "relu")
    t = torch.nn.Transformer(**kw).double().eval()
    c = nn.Transformer(**kw, dtype=ce.float64).eval()
    _load_from_torch(c, t)
    rng = np.random.default_rng(1)
    N, S, L = 2, 7, 5
    shp = (lambda n, l: (n, l, 12)) if batch_first else (lambda n, l: (l, n, 12))
    src, tgt = rng.standard_normal(shp(N, S)), rng.standard_normal(shp(N, L))
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(L, dtype=torch.float64)
    skpm = np.zeros((N, S), bool)
    skpm[1, -2:] = True                      # padded source positions of the second sequence
    ts_, tt_ = torch.tensor(src, requires_grad=True), torch.tensor(tgt, requires_grad=True)
    tout = t(ts_, tt_, tgt_mask=tmask, src_key_padding_mask=torch.tensor(skpm),
             memory_key_padding_mask=torch.tensor(skpm), tgt_is_causal=True)
    cs_, ct_ = ce.tensor(src, requires_grad=True), ce.tensor(tgt, requires_grad=True)
    cout = c(cs_, ct_, tgt_mask=nn.Transformer.generate_square_subsequent_mask(
        L, dtype=ce.float64), src_key_padding_mask=ce.tensor(skpm),
        memory_key_padding_mask=ce.tensor(skpm), tgt_is_causal=True)
    np.testing.assert_allclose(cout.detach().numpy(), tout.detach().numpy(), atol=1e-10)
    w = rng.standard_normal(tout.shape)
    (tout * torch.tensor(w)).sum().backward()
    (cout * ce.tensor(w)).sum().backward()
    np.testing.assert_allclose(cs_.grad.numpy(), ts_.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ct_.grad.numpy(), tt_.grad.numpy(), atol=1e-10)
    tp = dict(t.named_parameters())
    for name, p in c.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), atol=1e-9,
                                   err_msg=name)


def test_decoder_alone_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    tl = torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    td = torch.nn.TransformerDecoder(tl, 2, norm=torch.nn.LayerNorm(8)).double().eval()
    cl = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, dtype=ce.float64)
    cd = nn.TransformerDecoder(cl, 2, norm=nn.LayerNorm(8, dtype=ce.float64)).eval()
    _load_from_torch(cd, td)
    rng = np.random.default_rng(3)
    tgt, mem = rng.standard_normal((3, 4, 8)), rng.standard_normal((3, 6, 8))
    mmask = rng.standard_normal((4, 6))      # an additive float memory mask
    tkpm = np.zeros((3, 4), bool)
    tkpm[0, 3] = True
    tout = td(torch.tensor(tgt), torch.tensor(mem), memory_mask=torch.tensor(mmask),
              tgt_key_padding_mask=torch.tensor(tkpm))
    cout = cd(ce.tensor(tgt), ce.tensor(mem), memory_mask=ce.tensor(mmask),
              tgt_key_padding_mask=ce.tensor(tkpm))
    np.testing.assert_allclose(cout.detach().numpy(), tout.detach().numpy(), atol=1e-10)
    # unbatched input (L, E) as torch accepts
    tout1 = td(torch.tensor(tgt[0]), torch.tensor(mem[0]))
    cout1 = cd(ce.tensor(tgt[0]), ce.tensor(mem[0]))
    np.testing.assert_allclose(cout1.detach().numpy(), tout1.detach().numpy(), atol=1e-10)


def test_decoder_layer_gradcheck():
    from cengine.autograd import gradcheck
    ce.manual_seed(4)
    layer = nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, dtype=ce.float64, norm_first=True)
    tgt = ce.randn(3, 1, 4, dtype=ce.float64, requires_grad=True)
    mem = ce.randn(2, 1, 4, dtype=ce.float64, requires_grad=True)
    mask = nn.Transformer.generate_square_subsequent_mask(3, dtype=ce.float64)
    assert gradcheck(lambda a, b: layer(a, b, tgt_mask=mask), (tgt, mem))


def test_transformer_dropout_train_vs_eval():
    ce.manual_seed(5)
    m = nn.Transformer(8, 2, 1, 1, 16, dropout=0.5)
    src, tgt = ce.randn(4, 2, 8), ce.randn(3, 2, 8)
    m.eval()
    a, b = m(src, tgt), m(src, tgt)
    assert ce.equal(a, b)
    m.train()
    assert not ce.equal(m(src, tgt), a)
