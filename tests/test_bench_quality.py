"""bench/_quality.py: where results go (untracked bench/out unless told), and the sample-spread
test that flags a busy machine."""
import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")


def _quality():
    import atexit
    spec = importlib.util.spec_from_file_location("_quality_t", os.path.join(BENCH, "_quality.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    atexit.unregister(mod._at_exit)   # no report from the test process itself
    return mod


def test_spread_flags_scattered_samples():
    q = _quality()
    assert q.spread([1.0, 1.01, 0.99, 1.0, 1.02, 1.0, 0.98]) < 0.05
    assert q.spread([1.0, 3.0, 1.0, 4.0, 1.0, 5.0, 2.0]) > q.NOISY_SPREAD
    assert q.spread([1.0]) == 0.0
    q.record([1.0, 1.0, 1.0, 1.0])
    q.record([1.0, 9.0, 1.0, 9.0, 5.0])
    assert q._seen["n"] == 2 and q._seen["noisy"] == 1
    assert "1 of 2 measurements" in q.summary(2, 1, 3.0)


def test_out_dir_is_untracked_by_default(tmp_path, monkeypatch):
    q = _quality()
    monkeypatch.delenv("CENGINE_BENCH_OUT", raising=False)
    assert q.out_dir() == os.path.join(BENCH, "out")
    monkeypatch.setenv("CENGINE_BENCH_OUT", str(tmp_path / "x"))
    assert q.out_dir() == str(tmp_path / "x") and os.path.isdir(tmp_path / "x")
    if os.path.isdir(os.path.join(ROOT, ".git")):
        r = subprocess.run(["git", "check-ignore", "-q", "bench/out/report.md"], cwd=ROOT)
        assert r.returncode == 0, "bench/out/ must be ignored by git"


def test_noisy_process_warns_at_exit(tmp_path):
    code = ("import sys; sys.path.insert(0, %r); import _quality; "
            "_quality.record([1, 5, 1, 9, 2, 7])" % BENCH)
    env = dict(os.environ, CENGINE_BENCH_OUT=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "machine looks loaded" in r.stdout
    assert any(f.startswith("_quality-") for f in os.listdir(tmp_path))
