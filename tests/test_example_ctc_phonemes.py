"""Smoke run of examples/ctc_phonemes.py (few steps): CTC training lowers the loss and the phoneme
error rate of greedy and beam decoding falls well below the untrained model's."""

import numpy as np

from _util import load_example as _load


def test_ctc_phonemes_smoke(capsys):
    mod = _load("ctc_phonemes")
    res = mod.main(["--epochs", "3", "--train-size", "500", "--test-size", "60", "--threads", "1",
                    "--no-progress"])
    losses = res["losses"]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    g0, b0 = res["per_untrained"]
    assert res["per_greedy"] < 0.3 * g0 and res["per_beam"] < 0.3 * b0
    assert res["per_beam"] < 0.8
    out = capsys.readouterr().out
    assert "ISA in use" in out and "PER greedy" in out


def test_ctc_phonemes_data_deterministic():
    mod = _load("ctc_phonemes")
    a, b = mod.SpeechLikeData(5, seed=3), mod.SpeechLikeData(5, seed=3)
    assert a.labels == b.labels and all(np.array_equal(x, y) for x, y in zip(a.feats, b.feats))
    assert all(p != q for s in a.labels for p, q in zip(s, s[1:]))   # no phoneme twice in a row
    assert mod.edit_distance([1, 2, 3], [1, 3]) == 1 and mod.per([[1, 2]], [[1, 2, 3, 4]]) == 0.5
