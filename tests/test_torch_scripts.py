"""Real-code check: small torch programs written the way public PyTorch code is written (a
GPT-style model with its training step and top-k / multinomial sampling loop, legacy-constructor
code, one-hot / scatter / unique idioms), run unmodified except for the import lines. Where
torch is installed the same source also runs under torch, so the snippets stay real torch code,
and deterministic results are compared."""
import textwrap

import numpy as np
import pytest

IMPORTS_CE = {
    "import torch\n": "import cengine as torch\n",
    "import torch.nn as nn\n": "import cengine.nn as nn\n",
    "from torch.nn import functional as F\n": "from cengine.nn import functional as F\n",
}


def _run(src, lib):
    src = textwrap.dedent(src)
    if lib == "cengine":
        for a, b in IMPORTS_CE.items():
            src = src.replace(a, b)
        assert "torch." not in "".join(line for line in src.splitlines(True)
                                       if line.startswith(("import", "from")))
    else:
        pytest.importorskip("torch")
    ns = {"__name__": "__script__"}
    exec(compile(src, "<%s script>" % lib, "exec"), ns)
    return ns["RESULT"]


GPT = '''
import math
import torch
import torch.nn as nn
from torch.nn import functional as F

torch.manual_seed(1337)
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
device = 'cuda' if torch.cuda.is_available() else 'cpu'


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.n_embd = n_embd
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size))
                             .view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(n_embd, 4 * n_embd),
                                      c_proj=nn.Linear(4 * n_embd, n_embd),
                                      act=nn.GELU(approximate='tanh')))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        m = self.mlp
        return x + m.c_proj(m.act(m.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=32):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head, block_size) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd)))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        else:
            logits = self.lm_head(x[:, [-1], :])
            loss = None
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.size(1) <= self.block_size else idx[:, -self.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float('Inf')
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


model = GPT().to(device)
model = torch.compile(model, backend="eager")
n_params = sum(p.numel() for p in model.parameters())
decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1},
                               {'params': no_decay, 'weight_decay': 0.0}], lr=3e-3,
                              betas=(0.9, 0.95))
data = torch.randint(32, (512,))        # the two-argument form
# a learnable pattern: every token is followed by token + 1 (mod 32)
data = (torch.arange(512) + data[0]) % 32
losses = []
for it in range(30):
    ix = torch.randint(len(data) - 17, (8,))
    x = torch.stack([data[i:i + 16] for i in ix])
    y = torch.stack([data[i + 1:i + 17] for i in ix])
    logits, loss = model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    losses.append(loss.item())
model.eval()
start = torch.zeros((2, 1), dtype=torch.long, device=device)
out = model.generate(start, max_new_tokens=20, temperature=0.8, top_k=5)
RESULT = dict(n_params=n_params, losses=losses, out=out.tolist())
'''


@pytest.mark.parametrize("lib", ["cengine", "torch"])
def test_gpt_training_and_sampling_script(lib):
    r = _run(GPT, lib)
    assert r["n_params"] == 27008      # by hand: tied wte/lm_head, 2 blocks of 12704, wpe, ln_f
    assert np.mean(r["losses"][-5:]) < 0.6 * np.mean(r["losses"][:5])
    out = np.array(r["out"])
    assert out.shape == (2, 21) and out.min() >= 0 and out.max() < 32
    # learned "next = previous + 1": most sampled transitions follow it
    follows = np.mean((out[:, 1:] - out[:, :-1]) % 32 == 1)
    assert follows > 0.5


def test_gpt_script_parameter_count_matches_torch():
    pytest.importorskip("torch")
    assert _run(GPT, "cengine")["n_params"] == _run(GPT, "torch")["n_params"]


LEGACY = '''
import torch

x = torch.Tensor(3, 4)
x.uniform_(-1, 1)
w = torch.FloatTensor([[1, 2], [3, 4]])
b = torch.Tensor([1, 2, 3])
idx = torch.LongTensor([0, 2, 2])
mask = torch.ByteTensor([1, 0, 1]).bool()
flags = torch.BoolTensor([True, False, True])
ints = torch.IntTensor([5, 6, 7])
acc = torch.DoubleTensor(3).zero_()
acc.index_add_(0, idx, b.double())
one_hot = torch.zeros(3, 4).scatter_(1, idx.unsqueeze(1), 1.0)
counts = torch.zeros(4).scatter_add_(0, idx, torch.ones(3))
uniq, inv = torch.unique(torch.LongTensor([3, 1, 3, 2]), return_inverse=True)
vals, order = torch.sort(b, descending=True)
k = torch.topk(torch.Tensor([0.1, 0.7, 0.2]), 2)
picked = torch.where(mask, b, 0.0)
clipped = torch.where(b > 1, 1, 0)
cp = torch.cumprod(b, dim=0)
rows = w[range(1, 2)]
RESULT = dict(
    shapes=[tuple(x.shape), tuple(w.shape)],
    types=[w.type(), idx.type(), mask.dtype == torch.bool, ints.type(), acc.type()],
    isinst=[isinstance(w, torch.FloatTensor), isinstance(idx, torch.LongTensor),
            isinstance(w, torch.LongTensor)],
    acc=acc.tolist(), one_hot=one_hot.tolist(), counts=counts.tolist(), uniq=uniq.tolist(),
    inv=inv.tolist(), vals=vals.tolist(), order=order.tolist(), kv=k.values.tolist(),
    ki=k.indices.tolist(), picked=picked.tolist(), clipped=clipped.tolist(), cp=cp.tolist(),
    rows=rows.tolist(), flags=flags.tolist(), in_range=bool((x.abs() <= 1).all()),
    cuda=torch.cuda.is_available(), ndev=torch.cuda.device_count(),
)
'''


def test_legacy_constructor_script():
    r = _run(LEGACY, "cengine")
    assert r["types"][0].endswith("FloatTensor") and r["types"][1].endswith("LongTensor")
    assert r["isinst"] == [True, True, False]
    assert r["acc"] == [1.0, 0.0, 5.0] and r["counts"] == [1.0, 0.0, 2.0, 0.0]
    assert r["one_hot"] == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]
    assert r["uniq"] == [1, 2, 3] and r["inv"] == [2, 0, 2, 1]
    assert r["picked"] == [1.0, 0.0, 3.0] and r["clipped"] == [0, 1, 1]
    assert r["cp"] == [1.0, 2.0, 6.0] and r["rows"] == [[3.0, 4.0]]
    assert r["in_range"] and r["cuda"] is False and r["ndev"] == 0


def test_legacy_constructor_script_matches_torch():
    pytest.importorskip("torch")
    c, t = _run(LEGACY, "cengine"), _run(LEGACY, "torch")
    for key in t:
        if key == "types":   # "torch.FloatTensor" vs "cengine.FloatTensor"
            assert [str(v).split(".")[-1] for v in c[key]] == \
                [str(v).split(".")[-1] for v in t[key]]
        else:
            assert c[key] == t[key], key
