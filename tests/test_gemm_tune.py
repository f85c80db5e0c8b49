"""The GEMM tune file's key (CPU model, CPUID family/model, caches) and the entries applied at
import: only this CPU's, and only when tuned against the default block sizes this build
derives (temporary cache folders only)."""
import os
import platform

import pytest

from cengine import _C, _tunefile, tune


# the tune-file fixture and writer of test_tune.py (a fixture imported here is this module's)
from test_tune import cache_home, _write  # noqa: E402,F401


def _cpuinfo(field):
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def test_cpu_signature_matches_the_kernel_and_is_in_the_key():
    sig = _C.cpu_signature()
    if platform.machine() not in ("x86_64", "AMD64", "i686", "x86"):
        assert sig is None
        return
    fam, model, step = sig
    # Linux decodes the same CPUID leaf 1 fields
    if _cpuinfo("cpu family") is not None:
        assert (fam, model, step) == (int(_cpuinfo("cpu family")), int(_cpuinfo("model")),
                                      int(_cpuinfo("stepping")))
    key = tune.cpu_key()
    assert " | family %d model %d | " % (fam, model) in key
    assert key.startswith(_tunefile._model_name() + " | family ")


def test_entry_of_another_family_or_an_unversioned_key_is_not_applied(cache_home):
    key = tune.cpu_key()
    fam, model = (_C.cpu_signature() or (0, 0, 0))[:2]
    other = key.replace("family %d model %d" % (fam, model), "family %d model %d" % (fam + 1, model))
    # the same model name and caches without the family (files written before it was keyed)
    legacy = key.replace(" | family %d model %d" % (fam, model), "")
    if other == key or legacy == key:
        pytest.skip("no CPUID signature on this machine")
    e = {"float64/generic": {"kc": 64, "mc": 40, "nc": 64}}
    _write(tune.cache_path(), {"version": 1, "cpus": {other: e, legacy: e}})
    before = _C.gemm_blocking("float64", "generic")
    assert tune.apply() == 0
    assert _C.gemm_blocking("float64", "generic") == before
    assert tune.status()[1] == "no entry for this CPU"
    _write(tune.cache_path(), {"version": 1, "cpus": {key: e}})
    assert tune.apply() == 1
    b = _C.gemm_blocking("float64", "generic")
    assert (b["kc"], b["mc"], b["nc"], b["source"]) == (64, 40, 64, "set")


def test_entry_tuned_against_other_defaults_is_skipped(cache_home):
    d = tune.default_blocking("float32", "avx2")
    if d is None:
        pytest.skip("caches unknown: fixed block sizes, nothing derived")
    # the default this build derives is the one the GEMM starts with
    _C.gemm_set_blocking("float32", "avx2", 0, 0, 0)
    b = _C.gemm_blocking("float32", "avx2")
    assert [b["kc"], b["mc"], b["nc"]] == d and b["source"] == "caches"
    stale_default = [d[0] + 8, d[1], d[2]]
    _write(tune.cache_path(), {"version": 1, "cpus": {tune.cpu_key(): {
        "float32/avx2": {"kc": 200, "mc": 120, "nc": 320, "default": stale_default},
        "float64/avx2": {"kc": 96, "mc": 60, "nc": 64,
                         "default": tune.default_blocking("float64", "avx2")}}}})
    with pytest.warns(RuntimeWarning, match="float32/avx2 .*tuned against other default"):
        assert tune.apply() == 1
    b = _C.gemm_blocking("float32", "avx2")
    assert [b["kc"], b["mc"], b["nc"]] == d and b["source"] == "caches"
    b = _C.gemm_blocking("float64", "avx2")
    assert (b["kc"], b["mc"], b["nc"], b["source"]) == (96, 60, 64, "set")
    path, status, entries = tune.status()
    assert status == "1 entry applied (1 stale: float32/avx2)"
    assert entries == {"float64/avx2": {"kc": 96, "mc": 60, "nc": 64}}

