"""The fuzzer's short seeded run (part of the normal suite) and its long run on demand:

    CENGINE_FUZZ_EXAMPLES=100000 python -m pytest tests/fuzz        # long run
    CENGINE_FUZZ_SEED=7 CENGINE_FUZZ_ONLY=gather,F.softmax python -m pytest tests/fuzz

Findings are collected over the whole run and reported together (op, seed, first message);
`fuzzlib.compare_with_torch(name, seed, torch)` / `fuzzlib.check_invariants(name, seed)`
replay one example."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import fuzzlib  # noqa: E402

N = int(os.environ.get("CENGINE_FUZZ_EXAMPLES", "0"))
SEED = int(os.environ.get("CENGINE_FUZZ_SEED", "0"))
ONLY = set(filter(None, os.environ.get("CENGINE_FUZZ_ONLY", "").split(","))) or None


def _n(default):
    return N if N > 0 else default


def test_fuzz_invariants():
    counts, findings = fuzzlib.campaign(_n(12 * len(fuzzlib.SPECS)), SEED, None, ONLY)
    assert not findings, fuzzlib.report(findings)
    assert counts.get("ok", 0) > 0


def test_fuzz_against_torch():
    torch = pytest.importorskip("torch")
    counts, findings = fuzzlib.campaign(_n(6 * len(fuzzlib.SPECS)), SEED, torch, ONLY)
    assert not findings, fuzzlib.report(findings)
    assert counts.get("ok", 0) > 0


def test_replay_is_deterministic():
    torch = pytest.importorskip("torch")
    name = "gather"
    assert fuzzlib.compare_with_torch(name, 3, torch) == fuzzlib.compare_with_torch(name, 3,
                                                                                    torch)


def test_fuzzer_detects_a_planted_difference():
    """The machinery can fail: an op whose gradient is wrong is caught by the gradcheck of
    the invariant mode, and one whose value differs is caught against torch."""
    import numpy as np
    import cengine as ce

    from _util import twice_function
    Wrong = twice_function("Wrong", lambda ctx, g: g * 3)

    def fn(L, x):
        return Wrong.apply(x) if L.name == "cengine" else x * 2

    s = fuzzlib.spec("_planted", "test", fuzzlib.g_unary(ints=False), fn)
    try:
        counts, findings = fuzzlib.campaign(40, 0, None, {"_planted"})
        assert findings and "gradcheck" in findings[0][2]
        torch = pytest.importorskip("torch")
        counts, findings = fuzzlib.campaign(20, 0, torch, {"_planted"})
        assert findings and "grad 0 differs" in findings[0][2]
    finally:
        del fuzzlib.SPECS[s.name]
    del np
