"""cengine._atomicfile.write_atomic: the one atomic-replace helper (checkpoints, tune file)."""
import json
import os
import stat

import pytest

from cengine import _atomicfile, _tunefile
from cengine._atomicfile import write_atomic


def _write_bytes(data):
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    return write


def test_creates_and_replaces(tmp_path):
    path = tmp_path / "a.bin"
    write_atomic(path, _write_bytes(b"one"))
    assert path.read_bytes() == b"one"
    write_atomic(str(path), _write_bytes(b"two, longer"))
    assert path.read_bytes() == b"two, longer"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_failure_midway_keeps_old_content_and_removes_temporary(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old content")
    seen = []

    def half_then_fail(tmp):
        seen.append(tmp)
        with open(tmp, "wb") as f:
            f.write(b"new hal")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, half_then_fail)
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["a.bin"]
    # the temporary was in the target's folder, named after it
    assert os.path.dirname(seen[0]) == str(tmp_path)
    assert os.path.basename(seen[0]).startswith(".a.bin.p%d-" % os.getpid())

    def interrupted(tmp):
        _write_bytes(b"x")(tmp)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # not only Exception subclasses
        write_atomic(path, interrupted)
    assert path.read_bytes() == b"old content" and os.listdir(tmp_path) == ["a.bin"]


def test_failed_rename_removes_temporary(tmp_path):
    target = tmp_path / "d"
    target.mkdir()
    (target / "inside").write_bytes(b"")
    with pytest.raises(OSError):  # a non-empty directory cannot be replaced by a file
        write_atomic(target, _write_bytes(b"data"))
    assert sorted(os.listdir(tmp_path)) == ["d"]
    assert os.listdir(target) == ["inside"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_mode_follows_umask(tmp_path, mask):
    path = tmp_path / "m.bin"
    old = os.umask(mask)
    try:
        assert _atomicfile._umask() == mask
        write_atomic(path, _write_bytes(b"x"))
        assert os.umask(mask) == mask  # the helper left the umask as it was
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
    plain = tmp_path / "plain.bin"
    old = os.umask(mask)
    try:
        with open(plain, "wb"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


def test_file_and_folder_are_flushed_before_and_after_rename(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.getsize(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomic(path, _write_bytes(b"12345"))
    assert events == [("fsync", False), ("replace", 5), ("fsync", True)]


def test_makedirs(tmp_path):
    path = tmp_path / "x" / "y" / "t.json"
    with pytest.raises(FileNotFoundError):
        write_atomic(path, _write_bytes(b"{}"))
    write_atomic(path, _write_bytes(b"{}"), makedirs=True)
    assert path.read_bytes() == b"{}"


def test_stale_temporary_of_dead_writer_is_removed(tmp_path):
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    stale = tmp_path / (".t.json.p%d-zzzzzzzz.tmp" % proc.pid)
    stale.write_bytes(b"half")
    live = tmp_path / (".t.json.p%d-abcdefgh.tmp" % os.getpid())
    live.write_bytes(b"in progress")
    other = tmp_path / (".u.json.p%d-zzzzzzzz.tmp" % proc.pid)  # another target's: kept
    other.write_bytes(b"")
    write_atomic(tmp_path / "t.json", _write_bytes(b"{}"))
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "t.json"])


def test_tune_file_write_failing_midway_keeps_old_file(tmp_path):
    path = tmp_path / "cengine" / "tune.json"
    good = {"version": _tunefile.FILE_VERSION, "cpus": {"k": {}}}
    _tunefile._write_atomic(str(path), good)
    before = path.read_text()
    assert json.loads(before) == good
    with pytest.raises(TypeError):  # json.dump has written part of the file when it meets this
        _tunefile._write_atomic(str(path), {"version": 1, "cpus": {"a": 1, "b": object()}})
    assert path.read_text() == before
    assert os.listdir(path.parent) == ["tune.json"]
