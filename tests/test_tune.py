"""python -m cengine.tune and the tune file applied at import (temporary cache folders only)."""
import json
import os
import warnings

import numpy as np
import pytest

from cengine import _C, _tunefile, tune
from _util import run_python



@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """an empty XDG cache folder, tuning enabled, and every block size restored afterwards"""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CENGINE_TUNE", raising=False)
    old = {(dt, isa): _C.gemm_blocking(dt, isa) for dt in ("float32", "float64")
           for isa in _C.ISA_NAMES}
    state = dict(_tunefile._applied)
    yield tmp_path
    for (dt, isa), b in old.items():
        if b["source"] == "set":
            _C.gemm_set_blocking(dt, isa, b["kc"], b["mc"], b["nc"])
        else:
            _C.gemm_set_blocking(dt, isa, 0, 0, 0)
    _tunefile._applied.update(state)


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def test_cache_path_follows_xdg(cache_home, monkeypatch):
    assert tune.cache_path() == os.path.join(str(cache_home), "cengine", "tune.json")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert tune.cache_path() == os.path.join(os.path.expanduser("~"), ".cache", "cengine",
                                             "tune.json")


def test_apply_uses_this_cpus_entry(cache_home):
    key = tune.cpu_key()
    _write(tune.cache_path(), {"version": 1, "cpus": {
        key: {"float32/avx2": {"kc": 200, "mc": 120, "nc": 320, "gflops": 1.0}},
        "Some Other CPU | L1=1K": {"float32/avx512": {"kc": 64, "mc": 48, "nc": 64}}}})
    before = _C.gemm_blocking("float32", "avx512")
    assert tune.apply() == 1
    b = _C.gemm_blocking("float32", "avx2")
    assert (b["kc"], b["mc"], b["nc"], b["source"]) == (200, 120, 320, "set")
    assert _C.gemm_blocking("float32", "avx512") == before   # the other CPU's entry unused
    path, status, entries = tune.status()
    assert path == tune.cache_path() and status == "1 entry applied"
    assert entries == {"float32/avx2": {"kc": 200, "mc": 120, "nc": 320}}


def test_disabled_by_env(cache_home, monkeypatch):
    _write(tune.cache_path(), {"version": 1, "cpus": {
        tune.cpu_key(): {"float64/generic": {"kc": 64, "mc": 40, "nc": 64}}}})
    monkeypatch.setenv("CENGINE_TUNE", "0")
    before = _C.gemm_blocking("float64", "generic")
    assert tune.apply() == 0
    assert _C.gemm_blocking("float64", "generic") == before
    assert "disabled" in tune.status()[1]


@pytest.mark.parametrize("content", ["{not json", json.dumps([1, 2]),
                                     json.dumps({"version": 99, "cpus": {}}),
                                     json.dumps({"version": 1, "cpus": []}), "\xff\xfe"])
def test_corrupt_file_is_ignored_with_a_warning(cache_home, content):
    _write(tune.cache_path(), content)
    before = _C.gemm_blocking("float32")
    with pytest.warns(RuntimeWarning, match="ignoring the GEMM tune file"):
        assert tune.apply() == 0
    assert _C.gemm_blocking("float32") == before
    assert "unreadable" in tune.status()[1]


def test_invalid_entries_are_skipped_with_a_warning(cache_home):
    _write(tune.cache_path(), {"version": 1, "cpus": {tune.cpu_key(): {
        "float32/avx2": {"kc": 5, "mc": 48, "nc": 64},          # kc out of range
        "float32/generic": {"kc": "64", "mc": 48, "nc": 64},     # not an int
        "int8/avx2": {"kc": 64, "mc": 48, "nc": 64},             # unknown dtype
        "float64/generic": {"kc": 64, "mc": 40, "nc": 64}}}})
    with pytest.warns(RuntimeWarning, match="ignoring invalid entries"):
        assert tune.apply() == 1
    b = _C.gemm_blocking("float64", "generic")
    assert (b["kc"], b["mc"], b["nc"]) == (64, 40, 64)


def test_no_file_is_silent(cache_home):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tune.apply() == 0
    assert tune.status()[1] == "no tune file"


def test_tune_measures_saves_and_applies(cache_home):
    lines = []
    res = tune.tune(dtypes=("float32",), isa="generic", size=96, rounds=1, log=lines.append)
    e = res["float32/generic"]
    mr, nr = _C.gemm_tile("float32", "generic")
    assert e["kc"] % 8 == 0 and e["mc"] % mr == 0 and e["nc"] % nr == 0
    assert e["gflops"] > 0 and e["threads"] == 1
    with open(tune.cache_path()) as f:
        data = json.load(f)
    assert data["version"] == 1
    assert data["cpus"][tune.cpu_key()]["float32/generic"]["kc"] == e["kc"]
    b = _C.gemm_blocking("float32", "generic")
    assert (b["kc"], b["mc"], b["nc"], b["source"]) == (e["kc"], e["mc"], e["nc"], "set")
    assert any("->" in ln for ln in lines)
    # a second run for float64 keeps the float32 entry
    tune.tune(dtypes=("float64",), isa="generic", size=64, rounds=1, log=lambda s: None)
    with open(tune.cache_path()) as f:
        keys = set(json.load(f)["cpus"][tune.cpu_key()])
    assert keys == {"float32/generic", "float64/generic"}


def test_tune_replaces_a_broken_file_and_keeps_results_exact(cache_home):
    _write(tune.cache_path(), "garbage")
    tune.tune(dtypes=("float64",), isa="generic", size=64, rounds=1, log=lambda s: None)
    assert tune.load()["float64/generic"]["size"] == 64
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((77, 130)), rng.standard_normal((130, 51))
    C = np.empty((77, 51))
    old = _C.get_isa()
    _C.set_isa("generic")
    try:
        _C.gemm(A, B, C)
    finally:
        _C.set_isa(old)
    np.testing.assert_allclose(C, A @ B, rtol=1e-12, atol=1e-12)


def _run(args, env):
    return run_python(args, env["XDG_CACHE_HOME"], env)


def test_command_line_and_import_time_apply(cache_home):
    env = {"XDG_CACHE_HOME": str(cache_home), "OMP_NUM_THREADS": "1"}
    r = _run(["-m", "cengine.tune", "--dtypes", "float32", "--isa", "generic", "--size", "64",
              "--rounds", "1"], env)
    assert r.returncode == 0, r.stderr
    assert "saved to" in r.stdout and "RuntimeWarning" not in r.stderr
    saved = tune.load()["float32/generic"]
    # a new process applies it at import
    code = ("from cengine import _C; b = _C.gemm_blocking('float32', 'generic'); "
            "print(b['kc'], b['mc'], b['nc'], b['source'])")
    r = _run(["-c", code], env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(saved["kc"]), str(saved["mc"]), str(saved["nc"]), "set"]
    r = _run(["-c", code], dict(env, CENGINE_TUNE="0"))
    assert r.stdout.split()[-1] in ("caches", "fixed")
    r = _run(["-m", "cengine.tune", "--show"], env)
    assert r.returncode == 0 and '"float32/generic"' in r.stdout
    r = _run(["-m", "cengine.tune", "--reset"], env)
    assert r.returncode == 0 and "removed" in r.stdout
    assert tune.load() == {}
    r = _run(["-m", "cengine.tune", "--dtypes", "int8"], env)
    assert r.returncode == 2 and "expected float32 and/or float64" in r.stderr
