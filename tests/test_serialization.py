"""cengine.save / cengine.load: round trips, atomic writes, corrupt files, no code execution."""
import io
import math
import os
import pathlib
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import cengine as ce
import cengine.nn as nn
from cengine.serialization import save, load

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _model():
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 3),
                         nn.BatchNorm1d(3))


def test_state_dict_roundtrip(tmp_path):
    m = _model()
    m(ce.randn(5, 4))  # updates BatchNorm running stats
    path = tmp_path / "model.safetensors"
    save(m.state_dict(), path)
    sd = load(path)
    assert isinstance(sd, OrderedDict) and list(sd) == list(m.state_dict())
    m2 = _model()
    assert repr(m2.load_state_dict(sd)) == "<All keys matched successfully>"
    for (k, a), b in zip(m.state_dict().items(), m2.state_dict().values()):
        assert a.dtype == b.dtype and a.shape == b.shape, k
        np.testing.assert_array_equal(a._data, b._data, err_msg=k)
    m.eval()
    m2.eval()
    x = ce.randn(3, 4)
    np.testing.assert_array_equal(m(x)._data, m2(x)._data)
    # a flat state_dict is a plain safetensors file with the same keys
    raw = safetensors_numpy.load_file(str(path))
    assert sorted(raw) == sorted(m.state_dict())
    assert raw["4.num_batches_tracked"].shape == () and raw["4.num_batches_tracked"] == 1


def test_nested_structures(tmp_path):
    p = nn.Parameter(ce.randn(2, 2))
    shared = ce.arange(6).reshape(2, 3)
    obj = {
        "model": OrderedDict(w=ce.randn(3, dtype=ce.float64)),
        "optimizer": {"state": {0: {"step": ce.tensor(3.0), "exp_avg": ce.zeros(2, 2)}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0],
                                        "amsgrad": False, "foreach": None}]},
        "epoch": 7, "best": float("inf"), "nan": float("nan"), "name": "run-1",
        "flags": [True, False, None], (1, "a"): "tuple key", 2.5: "float key",
        "param": p, "rg": ce.ones(2, requires_grad=True), "bools": ce.tensor([True, False]),
        "empty": ce.zeros(0, 3), "scalar": ce.tensor(5), "noncontig": ce.randn(3, 4).t(),
        "a": shared, "b": shared, "np": np.arange(4, dtype=np.int32), "dtype": ce.float64,
    }
    path = tmp_path / "ckpt.st"
    save(obj, str(path))
    out = load(path)
    assert out["epoch"] == 7 and out["best"] == math.inf and math.isnan(out["nan"])
    assert out["name"] == "run-1" and out["flags"] == [True, False, None]
    assert out[(1, "a")] == "tuple key" and out[2.5] == "float key"
    assert isinstance(out["model"], OrderedDict) and not isinstance(out["optimizer"], OrderedDict)
    st = out["optimizer"]["state"][0]
    assert st["step"].item() == 3.0 and st["exp_avg"].shape == (2, 2)
    g = out["optimizer"]["param_groups"][0]
    assert g["betas"] == (0.9, 0.999) and isinstance(g["betas"], tuple) and g["params"] == [0]
    assert g["amsgrad"] is False and g["foreach"] is None
    assert isinstance(out["param"], nn.Parameter) and out["param"].requires_grad
    np.testing.assert_array_equal(out["param"]._data, p._data)
    assert out["rg"].requires_grad and not out["bools"].requires_grad
    assert out["bools"].dtype == ce.bool and out["bools"].tolist() == [True, False]
    assert out["empty"].shape == (0, 3) and out["scalar"].shape == () and out["scalar"].item() == 5
    np.testing.assert_array_equal(out["noncontig"]._data, obj["noncontig"]._data)
    assert out["model"]["w"].dtype == ce.float64
    assert out["a"]._data is out["b"]._data  # shared storage stays shared
    assert isinstance(out["np"], np.ndarray) and out["np"].dtype == np.int32
    assert out["dtype"] is ce.float64
    # loaded tensors are writable and independent of the file
    out["a"]._data[0, 0] = 100
    assert load(path)["a"]._data[0, 0] == 0


def test_file_objects_and_pathlike(tmp_path):
    buf = io.BytesIO()
    save({"x": ce.ones(3)}, buf)
    buf.seek(0)
    assert load(buf)["x"].tolist() == [1.0, 1.0, 1.0]
    path = pathlib.Path(tmp_path) / "p.st"
    save([ce.zeros(1), 3], path)
    assert load(path)[1] == 3


def test_plain_safetensors_file_loads(tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors_numpy.save_file({"emb": np.ones((2, 3), np.float32)}, str(path))
    out = load(path)
    assert list(out) == ["emb"] and isinstance(out["emb"], ce.Tensor)


def test_unsupported_objects_raise_and_leave_no_file(tmp_path):
    path = tmp_path / "x.st"
    with pytest.raises(TypeError, match=r"cannot save a whole Module \(Linear\).*"
                                        r"ce\.save\(model\.state_dict\(\), path\).*"
                                        r"model\.load_state_dict\(ce\.load\(path\)\)"):
        save(nn.Linear(2, 2), path)
    with pytest.raises(TypeError, match=r"Module \(Linear\) \(at 'net'\)"):
        save({"net": nn.Linear(2, 2)}, path)
    opt = ce.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"ce\.save\(optimizer\.state_dict\(\), path\).*"
                                        r"optimizer\.load_state_dict\(ce\.load\(path\)\)"):
        save(opt, path)
    with pytest.raises(TypeError, match="cannot save an object of type object"):
        save({"a": object()}, path)
    with pytest.raises(TypeError, match="dict keys"):
        save({frozenset(): 1}, path)
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_old_file_on_crash(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.st"
    save({"v": ce.tensor([1.0])}, path)
    before = path.read_bytes()

    def crashing_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt("simulated crash mid-write")

    monkeypatch.setattr(safetensors_numpy, "save_file", crashing_save_file)
    with pytest.raises(KeyboardInterrupt):
        save({"v": ce.tensor([2.0])}, path)
    assert path.read_bytes() == before  # old checkpoint intact
    assert os.listdir(tmp_path) == ["ckpt.st"]  # temporary file removed
    monkeypatch.undo()
    save({"v": ce.tensor([2.0])}, path)
    assert load(path)["v"].tolist() == [2.0]
    assert os.listdir(tmp_path) == ["ckpt.st"]
    mode = os.stat(path).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


@pytest.mark.parametrize("cut", [0, 5, 8, 20, -10, -1])
def test_truncated_file_raises(tmp_path, cut):
    path = tmp_path / "ok.st"
    save({"w": ce.randn(4, 4), "n": 3}, path)
    data = path.read_bytes()
    bad = tmp_path / "bad.st"
    bad.write_bytes(data[:cut] if cut else b"")
    with pytest.raises(RuntimeError, match="not a valid checkpoint"):
        load(bad)


def test_corrupt_files_raise(tmp_path):
    bad = tmp_path / "bad.st"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(RuntimeError, match="corrupt header"):
        load(bad)
    bad.write_bytes(os.urandom(64))
    with pytest.raises(RuntimeError, match="not a valid checkpoint"):
        load(bad)
    # valid safetensors, but a structure pointing at a missing tensor
    safetensors_numpy.save_file({"a": np.zeros(2, np.float32)}, str(bad),
                                metadata={"cengine.format": "1",
                                          "cengine.structure": '{"tensor": "zzz"}'})
    with pytest.raises(RuntimeError, match="missing tensor"):
        load(bad)
    safetensors_numpy.save_file({"a": np.zeros(2, np.float32)}, str(bad),
                                metadata={"cengine.format": "1", "cengine.structure": "{oops"})
    with pytest.raises(RuntimeError, match="corrupt structure"):
        load(bad)
    safetensors_numpy.save_file({"a": np.zeros(2, np.float32)}, str(bad),
                                metadata={"cengine.format": "1",
                                          "cengine.structure": '{"pickle": "x"}'})
    with pytest.raises(RuntimeError, match="unknown structure entry"):
        load(bad)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.st")


_EXECUTED = []


class _Evil:
    def __reduce__(self):
        return (_EXECUTED.append, ("pwned",))


def test_pickle_payload_is_never_executed(tmp_path):
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"x": _Evil()}))
    with pytest.raises(RuntimeError, match="not a valid checkpoint"):
        load(bad)
    assert _EXECUTED == []


# ------------------------------------------------------------------ edge cases
def _safetensors_blob(entries, metadata=None):
    """A safetensors file by hand: entries name -> (dtype string, shape, raw bytes)."""
    import json
    import struct
    header, body = {}, b""
    for name, (dt, shape, raw) in entries.items():
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(body),
                                                                      len(body) + len(raw)]}
        body += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


@pytest.mark.parametrize("dt,nbytes", [("U64", 8), ("U32", 4), ("U16", 2), ("C64", 8),
                                       ("F8_E4M3", 1)])
def test_dtype_cengine_cannot_hold_is_rejected_at_load(tmp_path, dt, nbytes):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(_safetensors_blob({"w": (dt, [1], b"\0" * nbytes)}))
    with pytest.raises(RuntimeError, match=r"tensor 'w' has dtype %s, which cengine cannot "
                                           r"hold" % dt):
        load(bad)
    # the same through cengine's structure (a Tensor node)
    bad.write_bytes(_safetensors_blob({"w": (dt, [1], b"\0" * nbytes)},
                                      {"cengine.format": "1",
                                       "cengine.structure": '{"tensor": "w"}'}))
    with pytest.raises(RuntimeError, match="cannot hold"):
        load(bad)


def test_unsigned_numpy_arrays_still_round_trip(tmp_path):
    # numpy arrays (not Tensors) of unsigned types are saved and loaded as arrays
    arr = np.arange(5, dtype=np.uint64) * (2 ** 40)
    save({"a": arr}, tmp_path / "u.st")
    out = load(tmp_path / "u.st")["a"]
    assert isinstance(out, np.ndarray) and out.dtype == np.uint64
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("key", ['{"dict": []}', '{"list": [{"list": []}]}',
                                 '{"tuple": [{"dict": []}]}'])
def test_unhashable_key_in_structure_is_runtime_error(tmp_path, key):
    bad = tmp_path / "bad.st"
    structure = '{"dict": [[%s, {"v": 1}]]}' % key
    bad.write_bytes(_safetensors_blob({"w": ("F32", [1], b"\0" * 4)},
                                      {"cengine.format": "1", "cengine.structure": structure}))
    with pytest.raises(RuntimeError, match=r"not a valid checkpoint: malformed dict key of "
                                           r"type (dict|tuple) \(unhashable\)"):
        load(bad)


def _tmp_files(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".tmp"))


_KILLED_SAVE = """
import os, signal, sys
sys.path.insert(0, sys.argv[3])
import cengine as ce
def killed(src, dst):  # SIGKILL between writing the temporary file and the rename
    os.kill(os.getpid(), signal.SIGKILL)
os.replace = killed
ce.save({"v": ce.full((1000,), float(sys.argv[2]))}, sys.argv[1])
"""


def test_killed_save_leaves_old_file_and_next_save_removes_its_temporary(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "ckpt.st"
    save({"v": ce.full((1000,), 1.0)}, path)
    before = path.read_bytes()
    other = tmp_path / "other.st"
    save({"v": ce.ones(1)}, other)
    root = os.path.dirname(os.path.dirname(ce.__file__))
    seen = []
    for value in (2.0, 3.0):
        res = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(path), str(value), root],
                             capture_output=True, timeout=120)
        assert res.returncode == -9, res.stderr.decode()
        seen.append(_tmp_files(tmp_path))
    # each killed save left its temporary; the second save removed the first one's
    assert len(seen[0]) == 1 and len(seen[1]) == 1 and seen[0] != seen[1]
    stale = seen[1]
    assert stale[0].startswith(".ckpt.st.p")
    assert path.read_bytes() == before  # the good checkpoint is untouched
    assert load(path)["v"].tolist() == [1.0] * 1000
    # a save to another file leaves this file's temporaries alone
    save({"v": ce.zeros(1)}, other)
    assert _tmp_files(tmp_path) == stale
    # a temporary of a live writer (this process: another save in progress) is kept
    live = tmp_path / (".ckpt.st.p%d-abcdefgh.tmp" % os.getpid())
    live.write_bytes(b"in progress")
    save({"v": ce.full((3,), 4.0)}, path)
    assert _tmp_files(tmp_path) == [live.name]
    assert load(path)["v"].tolist() == [4.0] * 3


def test_stale_temporary_of_dead_writer_is_removed(tmp_path):
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    path = tmp_path / "m.st"
    save({"v": ce.ones(2)}, path)
    stale = tmp_path / (".m.st.p%d-zzzzzzzz.tmp" % proc.pid)
    stale.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / ".m.st.notours.tmp"  # not a name save() writes: left alone
    unrelated.write_bytes(b"x")
    save({"v": ce.zeros(2)}, path)
    assert not stale.exists() and unrelated.exists()
    assert load(path)["v"].tolist() == [0.0, 0.0]


def test_safetensors_entries_are_validated_before_reading(tmp_path):
    bad = tmp_path / "bad.safetensors"
    four = b"\0" * 4
    for entries, match in [
            ({"w": ("F32", [2], four)}, r"entry 'w' has offsets \[0, 4\] for 8 bytes"),
            ({"w": ("F32", [-1], four)}, "corrupt entry 'w'"),
            ({"w": ("F32", "1", four)}, "corrupt entry 'w'"),
            ({"w": ("BOOL", [2], b"\x01\x07")}, "bool values other than 0 and 1")]:
        bad.write_bytes(_safetensors_blob(entries))
        with pytest.raises(RuntimeError, match=match):
            load(bad)
    # offsets past the end of the data
    blob = bytearray(_safetensors_blob({"w": ("F32", [1], four)}))
    bad.write_bytes(bytes(blob[:-2]))
    with pytest.raises(RuntimeError, match="reaches past the end of the file"):
        load(bad)
    # a structure that is not a string
    bad.write_bytes(_safetensors_blob({"w": ("F32", [1], four)},
                                      {"cengine.format": "1", "cengine.structure": 5}))
    with pytest.raises(RuntimeError, match="corrupt structure metadata"):
        load(bad)
    # a well-formed file written by hand: header order kept, values exact
    vals = np.array([1.5, -2.0, 3.25], np.float32)
    bad.write_bytes(_safetensors_blob({"z": ("F32", [3], vals.tobytes()),
                                       "a": ("I16", [1, 2], np.array([[7, -8]], "<i2")
                                             .tobytes())}))
    out = load(bad)
    assert list(out) == ["z", "a"]
    assert out["z"].tolist() == vals.tolist() and out["a"].tolist() == [[7, -8]]
    assert out["a"].dtype == ce.int16
