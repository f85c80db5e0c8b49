"""CTC decoding: the C prefix beam search against exhaustive search on tiny problems, against
the Python reference search (cengine.ctcdecode.prefix_beam_search) with pruning active, its
scalar linear-scan reference, threads, seq_lens, probability vs log-probability input, greedy
decoding and bad inputs."""
import itertools
import math

import numpy as np
import pytest

import cengine as ce
from cengine import _C
from cengine.ctcdecode import CTCBeamDecoder, greedy_decode, prefix_beam_search


def log_softmax_np(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def rand_lp(rng, N, T, C, scale=2.0):
    return log_softmax_np(rng.standard_normal((N, T, C)) * scale).astype(np.float32)


def collapse(path, blank):
    out, prev = [], None
    for c in path:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return tuple(out)


def exhaustive(lp, blank):
    """labeling -> log-probability, summing every alignment (lp (T, C), tiny only)"""
    T, C = lp.shape
    tot = {}
    lp = lp.astype(np.float64)
    for path in itertools.product(range(C), repeat=T):
        lab = collapse(path, blank)
        v = sum(lp[t, c] for t, c in enumerate(path))
        tot[lab] = np.logaddexp(tot.get(lab, -np.inf), v)
    return sorted(tot.items(), key=lambda kv: -kv[1])


def beams(res, n):
    r, s, ts, l = [x.numpy() for x in res]
    out = []
    for b in range(r.shape[1]):
        if l[n, b] == 0 and not np.isfinite(s[n, b]):
            continue
        out.append((tuple(r[n, b, :l[n, b]].tolist()), tuple(ts[n, b, :l[n, b]].tolist()),
                    float(s[n, b])))
    return out


LABELS = list("_abcdefghijklmnopqrstuvwxyz' ")


@pytest.mark.parametrize("blank", [0, 2])
def test_exhaustive_wide_beam(nthreads, blank):
    rng = np.random.default_rng(0)
    T, C = 5, 3
    lp = rand_lp(rng, 3, T, C, scale=1.5)
    dec = CTCBeamDecoder(LABELS[:C], beam_width=200, cutoff_top_n=C, blank_id=blank,
                         log_probs_input=True, num_processes=nthreads)
    res = dec.decode(lp)
    for n in range(3):
        ex = exhaustive(lp[n], blank)
        got = beams(res, n)
        assert len(got) == len(ex)   # every labeling with non-zero probability, nothing else
        for (lab, _, nll), (elab, elp) in zip(got, ex):
            assert lab == elab
            np.testing.assert_allclose(nll, -elp, rtol=2e-6)


def test_best_labeling_matches_exhaustive_with_pruning():
    """the best labeling (summed over alignments, which can differ from the best path) is found
    by a modest beam"""
    rng = np.random.default_rng(1)
    T, C = 6, 4
    lp = rand_lp(rng, 6, T, C, scale=2.5)
    dec = CTCBeamDecoder(LABELS[:C], beam_width=16, log_probs_input=True)
    res = dec.decode(lp)
    for n in range(6):
        ex = exhaustive(lp[n], 0)
        got = beams(res, n)
        assert got[0][0] == ex[0][0]
        # pruned prefixes lose probability: the beam's NLL can only be higher than the exact one
        assert got[0][2] >= -ex[0][1] - 1e-5


@pytest.mark.parametrize("opts", [
    dict(beam_width=1), dict(beam_width=5), dict(beam_width=20, cutoff_top_n=3),
    dict(beam_width=10, cutoff_prob=0.9), dict(beam_width=64, cutoff_prob=0.99, cutoff_top_n=8),
    dict(beam_width=7, blank_id=6),
])
def test_matches_python_reference(isa, nthreads, opts):
    rng = np.random.default_rng(2)
    N, T, C = 4, 40, 9
    lp = rand_lp(rng, N, T, C, scale=2.5)
    lp[1, 5:9] = np.log(np.float32(1.0 / C))   # exact ties
    sl = np.array([40, 33, 1, 0])
    dec = CTCBeamDecoder(LABELS[:C], log_probs_input=True, num_processes=nthreads, **opts)
    res = dec.decode(lp, sl)
    B = opts["beam_width"]
    for n in range(N):
        ref = prefix_beam_search(lp[n, :sl[n]], B, opts.get("blank_id", 0),
                                 opts.get("cutoff_top_n", 40), opts.get("cutoff_prob", 1.0))
        got = beams(res, n)
        assert [g[0] for g in got] == [r[0] for r in ref]
        assert [g[1] for g in got] == [r[1] for r in ref]
        np.testing.assert_array_equal([g[2] for g in got], np.float32([r[2] for r in ref]))
    r, s, ts, l = [x.numpy() for x in res]
    assert r.shape == (N, B, T) and ts.shape == (N, B, T) and s.shape == (N, B) and l.shape == (N, B)
    assert r.dtype == np.int32 and ts.dtype == np.int32 and l.dtype == np.int32
    assert s.dtype == np.float32
    assert (s[:, :-1] <= s[:, 1:]).all()   # best first (inf for missing beams last)
    assert l[3, 0] == 0 and s[3, 0] == 0   # no frames: the empty labeling, probability 1


def test_hash_vs_linear_reference_and_threads():
    rng = np.random.default_rng(3)
    N, T, C = 6, 120, 30
    lp = rand_lp(rng, N, T, C, scale=3.0)
    sl = rng.integers(1, T + 1, size=N).astype(np.int64)
    a = _C.ctc_beam_search(lp, sl, 40, 0, 40, 1.0, 1)
    b = _C.ctc_beam_search(lp, sl, 40, 0, 40, 1.0, 2)
    c = _C.ctc_beam_search(lp, sl, 40, 0, 40, 1.0, 1, ref=True)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)


def test_seq_lens_truncation():
    rng = np.random.default_rng(4)
    lp = rand_lp(rng, 3, 30, 6)
    dec = CTCBeamDecoder(LABELS[:6], beam_width=10, log_probs_input=True)
    full = dec.decode(lp, ce.tensor([30, 12, 5]))
    for n, L in enumerate([30, 12, 5]):
        part = dec.decode(np.ascontiguousarray(lp[n:n + 1, :L]))
        assert beams(full, n) == beams(part, 0)


def test_probs_vs_log_probs_and_input_types():
    rng = np.random.default_rng(5)
    lp = rand_lp(rng, 2, 25, 7)
    probs = np.exp(lp)
    d1 = CTCBeamDecoder(LABELS[:7], beam_width=8)
    d2 = CTCBeamDecoder(LABELS[:7], beam_width=8, log_probs_input=True)
    r1 = d1.decode(probs)
    r2 = d2.decode(np.log(probs))
    r3 = d1.decode(ce.tensor(probs))
    r4 = d2.decode(ce.tensor(np.log(probs).astype(np.float64)))   # float64 is converted
    for x, y, z, w in zip(r1, r2, r3, r4):
        assert isinstance(x, ce.Tensor)
        np.testing.assert_array_equal(x.numpy(), y.numpy())
        np.testing.assert_array_equal(x.numpy(), z.numpy())
        np.testing.assert_array_equal(x.numpy(), w.numpy())
    # zero probabilities (log = -inf) are fine
    p = np.zeros((1, 4, 3), np.float32)
    p[0, :, 0] = 1
    p[0, 1, 0], p[0, 1, 2] = 0, 1
    r, s, ts, l = [x.numpy() for x in CTCBeamDecoder(LABELS[:3], beam_width=5).decode(p)]
    assert l[0, 0] == 1 and r[0, 0, 0] == 2 and ts[0, 0, 0] == 1 and s[0, 0] == 0
    assert (l[0, 1:] == 0).all() and np.isinf(s[0, 1:]).all()


def test_timesteps_peaked():
    """a clean signal: labels a, b, b (blank between the b's) starting at frames 2, 5, 9"""
    T, C = 12, 3
    path = [0, 0, 1, 1, 0, 2, 2, 2, 0, 2, 0, 0]
    p = np.full((1, T, C), 0.01, np.float32)
    for t, c in enumerate(path):
        p[0, t, c] = 0.98
    r, s, ts, l = [x.numpy() for x in CTCBeamDecoder(LABELS[:3], beam_width=20).decode(p)]
    assert r[0, 0, :l[0, 0]].tolist() == [1, 2, 2]
    assert ts[0, 0, :l[0, 0]].tolist() == [2, 5, 9]
    assert greedy_decode(np.log(p)) == [[1, 2, 2]]


def test_greedy_decode():
    lp = np.log(np.array([[[.1, .8, .1], [.1, .8, .1], [.9, .05, .05], [.1, .8, .1],
                           [.1, .1, .8], [.8, .1, .1]]], np.float32))
    assert greedy_decode(lp) == [[1, 1, 2]]
    assert greedy_decode(ce.tensor(lp), [3]) == [[1]]
    assert greedy_decode(lp[0], blank=1) == [0, 2, 0]
    assert greedy_decode(lp, ce.tensor([0])) == [[]]
    with pytest.raises(ValueError, match="out of range"):
        greedy_decode(lp, blank=3)


def test_bad_inputs():
    dec = CTCBeamDecoder(LABELS[:4], beam_width=4)
    p = np.full((2, 5, 4), 0.25, np.float32)
    with pytest.raises(ValueError, match="batch, frames, labels"):
        dec.decode(p[0])
    with pytest.raises(ValueError, match="probs has 3 labels per frame, the decoder has 4"):
        dec.decode(p[:, :, :3])
    with pytest.raises(ValueError, match="one entry per utterance"):
        dec.decode(p, [5])
    with pytest.raises(ValueError, match=r"seq_lens must be in \[0, 5\]"):
        dec.decode(p, [6, 5])
    with pytest.raises(ValueError, match=r"seq_lens must be in \[0, 5\]"):
        dec.decode(p, [-1, 5])
    with pytest.raises(TypeError, match="seq_lens must hold integers"):
        dec.decode(p, [1.5, 5])
    with pytest.raises(ValueError, match="probabilities in"):
        dec.decode(np.log(p))
    with pytest.raises(ValueError, match="expects log-probabilities"):
        CTCBeamDecoder(LABELS[:4], log_probs_input=True).decode(p + 1)
    for kw, msg in ((dict(beam_width=0), "beam_width must be >= 1"),
                    (dict(cutoff_top_n=0), "cutoff_top_n must be >= 1"),
                    (dict(cutoff_prob=0.0), r"cutoff_prob must be in \(0, 1\]"),
                    (dict(cutoff_prob=1.5), r"cutoff_prob must be in \(0, 1\]"),
                    (dict(blank_id=4), "blank_id 4 is out of range for 4 labels"),
                    (dict(num_processes=0), "num_processes must be a positive int")):
        with pytest.raises(ValueError, match=msg):
            CTCBeamDecoder(LABELS[:4], **kw)
    with pytest.raises(TypeError, match="beam_width must be an int"):
        CTCBeamDecoder(LABELS[:4], beam_width=2.5)
    with pytest.raises(ValueError, match="labels must not be empty"):
        CTCBeamDecoder([])


def test_language_model_needs_kenlm(tmp_path):
    try:
        import kenlm  # noqa: F401
        pytest.skip("kenlm is installed")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="needs the 'kenlm' package"):
        CTCBeamDecoder(LABELS, model_path=str(tmp_path / "lm.arpa"), alpha=0.5, beta=1.0)


def test_vs_pyctcdecode():
    pyctcdecode = pytest.importorskip("pyctcdecode")
    rng = np.random.default_rng(6)
    C = 8
    labels = [""] + list("abcdefg")
    lp = rand_lp(rng, 3, 40, C, scale=4.0)
    dec = CTCBeamDecoder(labels, beam_width=50, log_probs_input=True)
    r, s, ts, l = [x.numpy() for x in dec.decode(lp)]
    py = pyctcdecode.build_ctcdecoder(labels)
    for n in range(3):
        text = py.decode(lp[n].astype(np.float64), beam_width=50, beam_prune_logp=-1000.0,
                         token_min_logp=-1000.0)
        assert text == "".join(labels[c] for c in r[n, 0, :l[n, 0]])


ARPA = """\\data\\
ngram 1=5
ngram 2=2

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.5
-1.0\t</s>\t0
-0.3\tab\t-0.2
-3.0\tba\t-0.2

\\2-grams:
-0.2\t<s> ab
-0.5\tab </s>

\\end\\
"""


def test_kenlm_fusion(tmp_path):
    """with a language model that prefers the word 'ab', an utterance that sounds slightly more
    like 'ba' is decoded as 'ab' once alpha is large enough; beam_scores stay the CTC-only NLL"""
    pytest.importorskip("kenlm")
    path = tmp_path / "lm.arpa"
    path.write_text(ARPA)
    labels = ["_", "a", "b", " "]
    p = np.array([[.1, .42, .46, .02], [.6, .2, .18, .02], [.1, .46, .42, .02]], np.float32)
    p = p[None]
    plain = CTCBeamDecoder(labels, beam_width=20)
    r, s, _, l = [x.numpy() for x in plain.decode(p)]
    assert r[0, 0, :l[0, 0]].tolist() == [2, 1]   # 'ba' without a language model
    nll_ab = {tuple(r[0, b, :l[0, b]].tolist()): s[0, b] for b in range(20) if np.isfinite(s[0, b])}[(1, 2)]
    for alpha, want in ((0.0, [2, 1]), (2.0, [1, 2])):
        dec = CTCBeamDecoder(labels, model_path=str(path), alpha=alpha, beta=0.0, beam_width=20)
        assert dec.max_order() == 2 and dec.character_based() is False
        r2, s2, _, l2 = [x.numpy() for x in dec.decode(p)]
        assert r2[0, 0, :l2[0, 0]].tolist() == want
        if want == [1, 2]:
            np.testing.assert_allclose(s2[0, 0], nll_ab, rtol=1e-5)
    # alpha = beta = 0: the Python LM path and the C search agree on everything
    z = CTCBeamDecoder(labels, model_path=str(path), alpha=0.0, beta=0.0, beam_width=20)
    for x, y in zip(z.decode(p), plain.decode(p)):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6)


def test_empty_shapes():
    dec = CTCBeamDecoder(LABELS[:3], beam_width=3, log_probs_input=True)
    r, s, ts, l = dec.decode(np.zeros((0, 5, 3), np.float32))
    assert r.shape == (0, 3, 5) and s.shape == (0, 3) and ts.shape == (0, 3, 5) and l.shape == (0, 3)
    r, s, ts, l = [x.numpy() for x in dec.decode(np.zeros((1, 0, 3), np.float32))]
    assert r.shape == (1, 3, 0) and s[0].tolist() == [0, np.inf, np.inf] and (l == 0).all()
    assert greedy_decode(np.zeros((2, 0, 3), np.float32)) == [[], []]
