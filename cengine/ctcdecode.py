"""CTC decoding: a CTC prefix beam-search decoder with ctcdecode's interface, and a greedy decoder.

    from cengine.ctcdecode import CTCBeamDecoder      # was: from ctcdecode import CTCBeamDecoder
    decoder = CTCBeamDecoder(labels, blank_id=0, beam_width=100, log_probs_input=True)
    beam_results, beam_scores, timesteps, out_lens = decoder.decode(log_probs)  # (N, T, C)
    best = beam_results[0, 0, :out_lens[0, 0]]

The search runs in C (src_c/ctc_decode.c): per frame the classes are sorted by probability and
cut by cutoff_prob / cutoff_top_n; every prefix keeps its blank-ending and non-blank-ending
log-probabilities; extensions reaching the same labeling merge (hash table); the best
beam_width prefixes survive. One utterance per thread (num_processes threads).

Language-model fusion (model_path = a KenLM model, needs the `kenlm` package): word (space-label)
boundaries are scored with alpha * ln P_lm(word | history) + beta, as ctcdecode does (every label
is a word when the labels have no space). That path runs the same search in Python."""
import math
import numbers

import numpy as np

from . import _C

__all__ = ["CTCBeamDecoder", "greedy_decode", "prefix_beam_search"]

_NINF = -math.inf
_OOV_SCORE = -1000.0   # ctcdecode's score of a word the language model does not know
_LN10 = math.log(10.0)


def _array(x, name):
    """Tensor / ndarray / nested list -> ndarray (no copy for ndarrays)."""
    from .tensor import Tensor
    if isinstance(x, Tensor):
        return x.detach().numpy()
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):   # a torch tensor
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception:
        raise TypeError("%s must be a Tensor or an array, not %s" % (name, type(x).__name__))


def _lengths(seq_lens, N, T):
    if seq_lens is None:
        return np.full(N, T, dtype=np.int64)
    a = _array(seq_lens, "seq_lens")
    if a.dtype.kind not in "iu":
        raise TypeError("seq_lens must hold integers, got dtype %s" % a.dtype)
    a = np.ascontiguousarray(a.reshape(-1), dtype=np.int64)
    if a.shape[0] != N:
        raise ValueError("seq_lens must have one entry per utterance (%d), got %d"
                         % (N, a.shape[0]))
    if N and (a.min() < 0 or a.max() > T):
        raise ValueError("seq_lens must be in [0, %d] (the number of frames), got %d"
                         % (T, a.min() if a.min() < 0 else a.max()))
    return a


def _lse(a, b):
    if a < b:
        a, b = b, a
    if b == _NINF:
        return a
    return a + math.log1p(math.exp(b - a))


def _frame_classes(row, top_n, cutoff_prob):
    """classes of one frame by log-probability (ties: lower class first), cut as ctcdecode"""
    order = sorted(range(len(row)), key=lambda c: (-row[c], c))[:top_n]
    if cutoff_prob < 1.0:
        cum, k = 0.0, 0
        while k < len(order):
            cum += math.exp(row[order[k]])
            k += 1
            if cum >= cutoff_prob:
                break
        order = order[:k]
    return order


def prefix_beam_search(log_probs, beam_width=100, blank=0, cutoff_top_n=40, cutoff_prob=1.0,
                       lm=None):
    """The beam search in plain Python for one utterance, log_probs (T, C): the reference the C
    search is tested against and the path used with a language model (lm: callable
    (prefix tuple) -> (bonus added when this label ends a scored word, final bonus), or None).
    Returns a list of (labels tuple, starts tuple, -log p(labels)) best first."""
    lp = np.asarray(log_probs, dtype=np.float32).astype(np.float64)
    T = lp.shape[0]
    nodes = {(): [0, 0.0]}                 # labeling -> [start frame of its last label, lp_c]
    beam = [((), 0.0, _NINF, 0.0)]         # (labels, pb, pnb, score incl. LM bonus)
    bonus = {(): 0.0}
    for t in range(T):
        row = lp[t]
        nxt = {}
        for p, _, _, _ in beam:
            nxt[p] = [_NINF, _NINF]
        pend = {}
        for c in _frame_classes(row.tolist(), cutoff_top_n, cutoff_prob):
            lc = float(row[c])
            if lc == _NINF:
                break
            for p, pb, pnb, ps in beam:
                if c == blank:
                    nxt[p][0] = _lse(nxt[p][0], lc + ps)
                    continue
                last = p[-1] if p else -1
                if c == last:
                    nxt[p][1] = _lse(nxt[p][1], lc + pnb)
                    ext = lc + pb
                else:
                    ext = lc + ps
                q = p + (c,)
                if lm is not None:
                    if q not in bonus:
                        bonus[q] = bonus[p] + lm(q)[0]
                    ext += bonus[q] - bonus[p]
                info = nodes.get(q)
                if info is None:
                    info = pend.setdefault(q, [t, np.float32(lc)])
                if info[1] < np.float32(lc):
                    info[0], info[1] = t, np.float32(lc)
                ent = nxt.setdefault(q, [_NINF, _NINF])
                ent[1] = _lse(ent[1], ext)
        cands = []
        for i, (q, (b, nb)) in enumerate(nxt.items()):
            s = _lse(b, nb)
            if s > _NINF:
                cands.append((-s, i, q, b, nb))
        cands.sort()
        beam = []
        for negs, _, q, b, nb in cands[:beam_width]:
            if q not in nodes:
                nodes[q] = pend[q]
            beam.append((q, b, nb, -negs))
    out = []
    for q, b, nb, s in beam:
        fin = s
        if lm is not None and q:
            fin = s + lm(q)[1]
        out.append((fin, q))
    out.sort(key=lambda x: -x[0])   # stable: equal scores keep the beam order
    res = []
    for fin, q in out:
        starts = tuple(nodes[q[:i + 1]][0] for i in range(len(q)))
        ctc = fin - (bonus.get(q, 0.0) + (lm(q)[1] if lm is not None and q else 0.0))
        res.append((q, starts, -ctc))
    return res


class _KenLMScorer:
    """alpha * ln P(word | previous words) + beta at each word end (ctcdecode's Scorer)."""

    def __init__(self, model_path, alpha, beta, labels, blank_id):
        try:
            import kenlm
        except ImportError as e:
            raise ImportError("CTCBeamDecoder: model_path needs the 'kenlm' package "
                              "(pip install kenlm), which is not installed") from e
        self._kenlm = kenlm
        self.model = kenlm.Model(model_path)
        self.order = self.model.order
        self.alpha, self.beta = float(alpha), float(beta)
        self.labels = list(labels)
        self.space_id = self.labels.index(" ") if " " in self.labels else -1
        self.blank_id = blank_id
        self.character_based = self.space_id < 0
        self._cache = {}

    def _words(self, q):
        text = "".join(self.labels[c] for c in q)
        if self.character_based:
            return [self.labels[c] for c in q]
        return text.split()

    def _cond(self, words):
        """ln P(words[-1] | up to order-1 previous words, sentence start)"""
        key = tuple(words[-self.order:])
        v = self._cache.get(key)
        if v is None:
            hist = list(words[-self.order:])
            if hist[-1] not in self.model:
                v = _OOV_SCORE
            else:
                s = self._kenlm.State()
                s2 = self._kenlm.State()
                if len(words) < self.order:
                    self.model.BeginSentenceWrite(s)
                else:
                    self.model.NullContextWrite(s)
                for w in hist[:-1]:
                    self.model.BaseScore(s, w, s2)
                    s, s2 = s2, s
                v = self.model.BaseScore(s, hist[-1], s2) * _LN10
            self._cache[key] = v
        return v

    def __call__(self, q):
        """(bonus when label q[-1] completes a word here, bonus for ending the utterance)"""
        c = q[-1]
        if self.character_based:
            step = self.alpha * self._cond(self._words(q)) + self.beta
            return step, 0.0
        step = 0.0
        if c == self.space_id:
            words = self._words(q[:-1])
            if words and q[:-1] and q[-2] != self.space_id:
                step = self.alpha * self._cond(words) + self.beta
        fin = 0.0
        if c != self.space_id:
            words = self._words(q)
            if words:
                fin = self.alpha * self._cond(words) + self.beta
        return step, fin


class CTCBeamDecoder:
    """ctcdecode.CTCBeamDecoder: CTC prefix beam search over (N, T, C) probabilities.

    labels: the C output labels (strings; ' ' marks word ends for a language model).
    model_path: KenLM model for LM fusion (needs the kenlm package) with weights alpha (LM) and
    beta (word bonus). cutoff_top_n / cutoff_prob: classes kept per frame. beam_width: prefixes
    kept. num_processes: threads (one utterance each; None: cengine's thread count).
    log_probs_input: decode() gets log-probabilities instead of probabilities."""

    def __init__(self, labels, model_path=None, alpha=0, beta=0, cutoff_top_n=40,
                 cutoff_prob=1.0, beam_width=100, num_processes=4, blank_id=0,
                 log_probs_input=False):
        self._labels = list(labels)
        self._num_labels = len(self._labels)
        if self._num_labels == 0:
            raise ValueError("labels must not be empty")
        for name, v in (("cutoff_top_n", cutoff_top_n), ("beam_width", beam_width),
                        ("blank_id", blank_id)):
            if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
                raise TypeError("%s must be an int, got %s" % (name, type(v).__name__))
        if beam_width < 1:
            raise ValueError("beam_width must be >= 1, got %d" % beam_width)
        if cutoff_top_n < 1:
            raise ValueError("cutoff_top_n must be >= 1, got %d" % cutoff_top_n)
        if not (0.0 < float(cutoff_prob) <= 1.0):
            raise ValueError("cutoff_prob must be in (0, 1], got %r" % (cutoff_prob,))
        if not (0 <= blank_id < self._num_labels):
            raise ValueError("blank_id %d is out of range for %d labels"
                             % (blank_id, self._num_labels))
        if num_processes is not None and (isinstance(num_processes, bool) or
                                          not isinstance(num_processes, numbers.Integral)
                                          or num_processes < 1):
            raise ValueError("num_processes must be a positive int or None, got %r"
                             % (num_processes,))
        self._cutoff_top_n = int(cutoff_top_n)
        self._cutoff_prob = float(cutoff_prob)
        self._beam_width = int(beam_width)
        self._num_processes = num_processes
        self._blank_id = int(blank_id)
        self._log_probs = bool(log_probs_input)
        self._scorer = None
        if model_path is not None:
            self._scorer = _KenLMScorer(model_path, alpha, beta, self._labels, self._blank_id)

    def reset_params(self, alpha, beta):
        if self._scorer is not None:
            self._scorer.alpha, self._scorer.beta = float(alpha), float(beta)
            self._scorer._cache.clear()

    def character_based(self):
        return self._scorer.character_based if self._scorer is not None else None

    def max_order(self):
        return self._scorer.order if self._scorer is not None else None

    def _log_input(self, probs):
        a = _array(probs, "probs")
        if a.dtype.kind not in "fiu":
            raise TypeError("probs must be a float array, got dtype %s" % a.dtype)
        if a.ndim != 3:
            raise ValueError("probs must have shape (batch, frames, labels), got %s"
                             % (tuple(a.shape),))
        if a.shape[2] != self._num_labels:
            raise ValueError("probs has %d labels per frame, the decoder has %d"
                             % (a.shape[2], self._num_labels))
        a = a.astype(np.float32, copy=False)
        if not self._log_probs:
            if a.size and (np.nanmin(a) < 0 or np.nanmax(a) > 1 + 1e-3):
                raise ValueError("probs must be probabilities in [0, 1] (pass "
                                 "log_probs_input=True for log-probabilities)")
            with np.errstate(divide="ignore"):
                a = np.log(a)
        elif a.size and np.nanmax(a) > 1e-3:
            raise ValueError("log_probs_input=True expects log-probabilities (<= 0)")
        return np.ascontiguousarray(a, dtype=np.float32)

    def decode(self, probs, seq_lens=None):
        """probs (N, T, C) probabilities (or log-probabilities with log_probs_input=True),
        seq_lens (N,) frames per utterance (default: all). Returns cengine tensors
        beam_results (N, beam, T) int32, beam_scores (N, beam) float32 (-log p of each beam's
        labeling; inf for missing beams), timesteps (N, beam, T) int32 (frame where each label
        starts), out_lens (N, beam) int32; beams best first."""
        from .tensor import _wrap
        lp = self._log_input(probs)
        N, T, C = lp.shape
        sl = _lengths(seq_lens, N, T)
        B = self._beam_width
        if self._scorer is None:
            nt = self._num_processes if self._num_processes is not None else 0
            res = _C.ctc_beam_search(lp, sl, B, self._blank_id, self._cutoff_top_n,
                                     self._cutoff_prob, int(nt))
            labels, scores, starts, lens = res
        else:
            labels = np.zeros((N, B, T), np.int32)
            starts = np.zeros((N, B, T), np.int32)
            scores = np.full((N, B), np.inf, np.float32)
            lens = np.zeros((N, B), np.int32)
            for n in range(N):
                out = prefix_beam_search(lp[n, :sl[n]], B, self._blank_id, self._cutoff_top_n,
                                         self._cutoff_prob, lm=self._scorer)
                for b, (q, st, nll) in enumerate(out[:B]):
                    labels[n, b, :len(q)] = q
                    starts[n, b, :len(q)] = st
                    scores[n, b] = nll
                    lens[n, b] = len(q)
        return _wrap(labels), _wrap(scores), _wrap(starts), _wrap(lens)


def greedy_decode(log_probs, lengths=None, blank=0):
    """Best path decoding: argmax per frame, repeats collapsed, blanks dropped.
    log_probs (N, T, C) (or (T, C) for one utterance), lengths (N,) frames per utterance.
    Returns a list of label lists (one per utterance; a single list for (T, C) input)."""
    a = _array(log_probs, "log_probs")
    single = a.ndim == 2
    if single:
        a = a[None]
    if a.ndim != 3:
        raise ValueError("log_probs must have shape (N, T, C) or (T, C), got %s"
                         % (tuple(a.shape),))
    N, T, C = a.shape
    if not (0 <= blank < C):
        raise ValueError("blank %d is out of range for %d labels" % (blank, C))
    sl = _lengths(lengths, N, T)
    best = a.argmax(axis=2) if a.size else np.zeros((N, T), np.int64)
    out = []
    for n in range(N):
        p = best[n, :sl[n]]
        if p.size:
            keep = np.ones(p.shape, bool)
            keep[1:] = p[1:] != p[:-1]
            keep &= p != blank
            out.append(p[keep].tolist())
        else:
            out.append([])
    return out[0] if single else out
