"""cengine.load of files written by torch.save (zip and legacy formats), read the way
torch.load(weights_only=True) reads them: hand-built files (no torch needed) and, when torch is
installed, files torch itself wrote. Nothing from a file is ever imported or run."""
import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import cengine as ce
from cengine.serialization import load


# ------------------------------------------------------------------ a pickle written by hand
def _g(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _s(text):
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _i(n):
    return b"J" + struct.pack("<i", n)


def _t(*items):
    return b"(" + b"".join(items) + b"t"


_EMPTY_OD = _g("collections", "OrderedDict") + b")R"


def _tensor(storage_type, key, numel, offset, size, stride, location="cpu", rg=False):
    """_rebuild_tensor_v2(<storage key>, offset, size, stride, requires_grad, OrderedDict())"""
    pid = _t(_s("storage"), _g("torch", storage_type), _s(key), _s(location), _i(numel)) + b"Q"
    return (_g("torch._utils", "_rebuild_tensor_v2")
            + _t(pid, _i(offset), _t(*map(_i, size)), _t(*map(_i, stride)),
                 b"\x88" if rg else b"\x89", _EMPTY_OD) + b"R")


def _zip(pkl, records, byteorder=b"little", prefix="archive"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "/data.pkl", pkl)
        if byteorder is not None:
            z.writestr(prefix + "/byteorder", byteorder)
        for key, raw in records.items():
            z.writestr(prefix + "/data/" + key, raw)
        z.writestr(prefix + "/version", b"3\n")
    return buf.getvalue()


def _state_dict_pickle(entries):
    """OrderedDict([(name, tensor pickle), ...]) as protocol 2."""
    body = b"".join(_s(k) + v for k, v in entries)
    return b"\x80\x02" + _EMPTY_OD + b"(" + body + b"u."


@pytest.mark.parametrize("byteorder", [b"little", b"big", None])
def test_hand_built_torch_zip(tmp_path, byteorder):
    w = np.arange(6, dtype=np.float32) - 2.5
    idx = np.array([3, -1, 7], dtype=np.int64)
    big = byteorder == b"big"
    pkl = _state_dict_pickle([
        ("w", _tensor("FloatStorage", "0", 6, 0, (2, 3), (3, 1))),
        ("wt", _tensor("FloatStorage", "0", 6, 0, (3, 2), (1, 3))),   # a transposed view
        ("row", _tensor("FloatStorage", "0", 6, 3, (3,), (1,))),      # an offset view
        ("idx", _tensor("LongStorage", "1", 3, 0, (3,), (1,))),
        ("flag", _tensor("BoolStorage", "2", 2, 0, (2,), (1,))),
        ("scalar", _tensor("DoubleStorage", "3", 1, 0, (), ())),
        ("p", _tensor("FloatStorage", "0", 6, 0, (6,), (1,), rg=True)),
    ])
    order = ">" if big else "<"
    records = {"0": w.astype(order + "f4").tobytes(), "1": idx.astype(order + "i8").tobytes(),
               "2": b"\x01\x00", "3": np.array([2.25], order + "f8").tobytes()}
    path = tmp_path / "hand.pt"
    path.write_bytes(_zip(pkl, records, byteorder))
    sd = load(path)
    assert type(sd) is OrderedDict
    assert list(sd) == ["w", "wt", "row", "idx", "flag", "scalar", "p"]
    assert sd["w"].dtype == ce.float32 and sd["w"].tolist() == w.reshape(2, 3).tolist()
    assert sd["wt"].tolist() == w.reshape(2, 3).T.tolist()
    assert sd["row"].tolist() == [0.5, 1.5, 2.5]
    assert sd["idx"].dtype == ce.int64 and sd["idx"].tolist() == [3, -1, 7]
    assert sd["flag"].dtype == ce.bool and sd["flag"].tolist() == [True, False]
    assert sd["scalar"].shape == () and sd["scalar"].item() == 2.25
    assert sd["scalar"].dtype == ce.float64
    assert sd["p"].requires_grad and not sd["w"].requires_grad
    # tensors of one storage share memory, as in torch
    sd["w"]._data[1, 0] = 100.0
    assert sd["row"].tolist()[0] == 100.0 and sd["wt"].tolist()[0][1] == 100.0
    # the same bytes from a file object, and under another archive name
    sd2 = load(io.BytesIO(_zip(pkl, records, byteorder, prefix="model")))
    assert sd2["idx"].tolist() == [3, -1, 7]


def test_hand_built_zip_loads_into_a_model(tmp_path):
    lin = ce.nn.Linear(3, 2)
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    b = np.array([0.5, -0.5], np.float32)
    pkl = _state_dict_pickle([("weight", _tensor("FloatStorage", "0", 6, 0, (2, 3), (3, 1))),
                              ("bias", _tensor("FloatStorage", "1", 2, 0, (2,), (1,)))])
    path = tmp_path / "lin.pt"
    path.write_bytes(_zip(pkl, {"0": w.tobytes(), "1": b.tobytes()}))
    lin.load_state_dict(load(path))
    out = lin(ce.ones(1, 3))
    np.testing.assert_allclose(out.detach().numpy(), [w.sum(1) + b], rtol=1e-6)


def test_corrupt_torch_zips_raise(tmp_path):
    pkl = _state_dict_pickle([("w", _tensor("FloatStorage", "0", 6, 0, (2, 3), (3, 1)))])
    good = _zip(pkl, {"0": np.zeros(6, np.float32).tobytes()})
    path = tmp_path / "bad.pt"
    for data, match in [
            (good[: len(good) // 2], "truncated or corrupt PyTorch zip"),
            (_zip(pkl, {}), "storage '0' is missing"),
            (_zip(pkl, {"0": b"\0" * 8}), "holds 8 bytes, 24 expected"),
            (_zip(_state_dict_pickle([("w", _tensor("FloatStorage", "0", 6, 4, (2, 3),
                                                    (3, 1)))]),
                  {"0": np.zeros(6, np.float32).tobytes()}), "reaches past the end"),
            (_zip(pkl[:-5], {"0": np.zeros(6, np.float32).tobytes()}), "truncated")]:
        path.write_bytes(data)
        with pytest.raises((RuntimeError, pickle.UnpicklingError), match=match):
            load(path)
    # a flipped bit in the pickle fails its CRC check
    raw = bytearray(good)
    at = raw.index(pkl)
    raw[at + 20] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="not a valid checkpoint.*CRC"):
        load(path)


def test_unsupported_storage_and_dtype_are_named(tmp_path):
    path = tmp_path / "c.pt"
    pkl = _state_dict_pickle([("z", _tensor("ComplexFloatStorage", "0", 1, 0, (1,), (1,)))])
    path.write_bytes(_zip(pkl, {"0": b"\0" * 8}))
    with pytest.raises(pickle.UnpicklingError, match="torch.ComplexFloatStorage"):
        load(path)


def test_half_storages_load_with_their_bits(tmp_path):
    # BFloat16Storage / HalfStorage (a strided view of each), written by hand
    path = tmp_path / "h.pt"
    bits = np.array([0x3f80, 0xc040, 0x7f80, 0xffff, 0x0001, 0x4049], np.uint16)
    pkl = _state_dict_pickle([("b", _tensor("BFloat16Storage", "0", 6, 1, (2, 2), (1, 2))),
                              ("h", _tensor("HalfStorage", "1", 6, 0, (3,), (2,)))])
    path.write_bytes(_zip(pkl, {"0": bits.tobytes(), "1": bits.tobytes()}))
    out = load(path)
    assert out["b"].dtype == ce.bfloat16 and out["b"].shape == (2, 2)
    assert out["h"].dtype == ce.float16 and out["h"].shape == (3,)
    want = bits[1:].view(ce.bfloat16.np)
    np.testing.assert_array_equal(out["b"].numpy().view(np.uint16),
                                  np.array([[bits[1], bits[3]], [bits[2], bits[4]]]))
    assert out["b"].numpy().dtype == want.dtype
    np.testing.assert_array_equal(out["h"].numpy().view(np.uint16), bits[::2])


def test_cuda_storages_need_map_location(tmp_path):
    pkl = _state_dict_pickle([("w", _tensor("FloatStorage", "0", 2, 0, (2,), (1,),
                                            location="cuda:0"))])
    path = tmp_path / "gpu.pt"
    path.write_bytes(_zip(pkl, {"0": np.array([1, 2], np.float32).tobytes()}))
    with pytest.raises(RuntimeError, match="on a CUDA device.*map_location='cpu'"):
        load(path)
    for ml in ("cpu", ce.device("cpu"), {"cuda:0": "cpu"}, lambda storage, loc: storage):
        assert load(path, map_location=ml)["w"].tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="on a CUDA device"):
        load(path, map_location={"cuda:1": "cpu"})


# ------------------------------------------------------------------ never runs code
_MARKER = []


class _System:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, ("touch " + self.path,))


class _Append:
    def __reduce__(self):
        return (_MARKER.append, ("ran",))


def _legacy(obj_pickle):
    """A legacy-format file around `obj_pickle`: magic, protocol, sys_info, obj, []."""
    return (pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2)
            + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                            "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
            + obj_pickle + pickle.dumps([], protocol=2))


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("proto", [2, 4])
def test_malicious_pickle_is_rejected_without_running(tmp_path, fmt, proto):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"w": _System(str(marker))}, protocol=proto)
    path = tmp_path / "evil.pt"
    path.write_bytes(_zip(evil, {}) if fmt == "zip" else _legacy(evil))
    with pytest.raises(pickle.UnpicklingError,
                       match=r"Weights only load failed: .* refers to the global "
                             r"(posix|os|nt)\.system, which is not allowed"):
        load(path)
    with pytest.raises(pickle.UnpicklingError, match="weights_only=False is accepted but "
                                                     "changes nothing"):
        load(path, weights_only=False)
    assert not marker.exists()
    path.write_bytes(_zip(pickle.dumps([_Append()], protocol=proto), {}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.getattr"):
        load(path)
    assert _MARKER == []


def test_object_building_opcodes_are_refused(tmp_path):
    path = tmp_path / "x.pt"
    cases = [
        # BUILD on a tensor-like result is refused (only OrderedDict takes a state)
        (b"\x80\x02" + _g("builtins", "set") + b")R}b.", "sets the state of a set"),
        # NEWOBJ of an allowed class with arguments
        (b"\x80\x02" + _g("collections", "OrderedDict") + _t(_i(1)) + b"\x81.",
         "creates an object"),
        (b"\x80\x02\x82\x01.", "extension registry"),
        (b"\x80\x02(" + _g("collections", "OrderedDict") + b"o.", "arbitrary object"),
        (b"\x80\x02" + _EMPTY_OD + b"]]s.", "unhashable key"),
        (b"\x80\x02}(" + _s("a") + b"u" + b"\x80\x07.", "opcode|protocol"),
        (b"\x80\x02" + _g("torch", "uint64") + b".", "torch.uint64"),
        (b"\x80\x02" + _g("torch._utils", "_rebuild_sparse_tensor") + b".", "sparse"),
    ]
    for data, match in cases:
        path.write_bytes(_zip(data, {}))
        with pytest.raises(pickle.UnpicklingError, match=match):
            load(path)


def test_plain_pickle_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"w": _Append()}, protocol=4))
    with pytest.raises(RuntimeError, match="not a valid checkpoint: not a PyTorch file"):
        load(path)
    assert _MARKER == []


def test_load_arguments(tmp_path):
    pkl = _state_dict_pickle([("w", _tensor("FloatStorage", "0", 2, 0, (2,), (1,)))])
    path = tmp_path / "a.pt"
    path.write_bytes(_zip(pkl, {"0": np.array([1, 2], np.float32).tobytes()}))
    assert load(str(path), weights_only=True, mmap=True)["w"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="must be a file path in order to use the mmap"):
        load(io.BytesIO(path.read_bytes()), mmap=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        load(path, bogus=1)
    path.write_bytes(_legacy(pickle.dumps({"a": 1}, protocol=2)))
    assert load(path, encoding="latin1") == {"a": 1}
    with pytest.raises(RuntimeError, match="mmap can only be used"):
        load(path, mmap=True)


# ------------------------------------------------------------------ files written by torch
def _compare(got, ref, path="obj"):
    torch = pytest.importorskip("torch")
    if isinstance(ref, torch.Tensor):
        assert isinstance(got, ce.Tensor), path
        assert isinstance(got, ce.nn.Parameter) == isinstance(ref, torch.nn.Parameter), path
        assert got.dtype.name == str(ref.dtype).split(".")[1], path
        assert tuple(got.shape) == tuple(ref.shape), path
        assert got.requires_grad == ref.requires_grad, path
        np.testing.assert_array_equal(got.detach().numpy(), ref.detach().numpy(), err_msg=path)
    elif isinstance(ref, dict):
        assert type(got) is type(ref) and list(got) == list(ref), path
        for k in ref:
            _compare(got[k], ref[k], "%s[%r]" % (path, k))
    elif isinstance(ref, (list, tuple)):
        assert type(got) is type(ref) and len(got) == len(ref), path
        for i, (a, b) in enumerate(zip(got, ref)):
            _compare(a, b, "%s[%d]" % (path, i))
    elif isinstance(ref, torch.dtype):
        assert got is getattr(ce, str(ref).split(".")[1]), path
    elif isinstance(ref, torch.device):
        assert str(got) == str(ref), path
    else:
        assert got == ref and type(got) is type(ref), path


@pytest.mark.parametrize("zipfmt", [True, False])
def test_files_written_by_torch(tmp_path, zipfmt):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    base = torch.arange(24, dtype=torch.float32)
    obj = {
        "model": net.state_dict(),
        "tensors": {
            "f32": torch.randn(3, 5), "f64": torch.randn(4, dtype=torch.float64),
            "i64": torch.arange(-3, 4), "i32": torch.arange(6, dtype=torch.int32),
            "bool": torch.tensor([True, False, True]), "f16": torch.randn(3).half(),
            "u8": torch.arange(4, dtype=torch.uint8), "i16": torch.arange(3, dtype=torch.int16),
            "scalar": torch.tensor(7), "empty": torch.zeros(0, 4),
        },
        "views": [base, base[5:11], base.view(4, 6)[:, 2], base.view(4, 6).t(),
                  base.view(2, 3, 4).permute(2, 0, 1)[1:]],
        "expanded": torch.arange(3.0).view(3, 1).expand(3, 4),
        "param": torch.nn.Parameter(torch.ones(2, 2)),
        "frozen": torch.nn.Parameter(torch.ones(2), requires_grad=False),
        "leaf": torch.ones(3, requires_grad=True),
        "nested": [{"a": (1, 2.5, "s", None, True)}, [[torch.ones(1)], {"deep": {}}]],
        "meta": {"epoch": 3, "lr": 1e-3, "name": "run", "bytes": b"\x00\xff", "set": {1, 2},
                 "dtype": torch.float16, "device": torch.device("cpu"),
                 "size": torch.Size([2, 3])},
    }
    path = tmp_path / "torch.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=zipfmt)
    ref = torch.load(path, weights_only=True)
    got = load(path)
    ref["meta"]["size"] = tuple(ref["meta"]["size"])  # torch.Size comes back as a tuple
    _compare(got, ref)
    # storages stay shared: a write through one view shows in the others
    views = got["views"]
    views[0]._data[8] = -1.0
    assert views[1].tolist()[3] == -1.0 and views[2].tolist()[1] == -1.0
    assert views[3].tolist()[2][1] == -1.0
    # a state_dict loads into the same cengine model
    m = ce.nn.Sequential(ce.nn.Linear(4, 3), ce.nn.BatchNorm1d(3))
    m.load_state_dict(got["model"])
    m.eval()
    net.eval()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(m(ce.tensor(x)).detach().numpy(),
                               net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_torch_saved_tensor_and_file_object(tmp_path):
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save(torch.arange(5.0) * 2, buf)
    out = load(io.BytesIO(buf.getvalue()))
    assert isinstance(out, ce.Tensor) and out.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(2, 3)}, path)
    mm = load(path, mmap=True)
    assert mm["w"].tolist() == [[1.0] * 3] * 2


def test_torch_saved_module_is_refused_with_its_name(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "m.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(pickle.UnpicklingError, match=r"torch\.nn\.modules\.linear\.Linear"):
        load(path)


def test_torch_saved_half_tensors_keep_their_bits(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "h.pt"
    g = torch.Generator().manual_seed(0)
    src = {"b": torch.randn(3, 5, generator=g).bfloat16(), "h": torch.randn(7, generator=g).half(),
           "bv": torch.randn(4, 6, generator=g).bfloat16()[:, 1::2],
           "nan": torch.tensor([float("nan"), float("inf"), -0.0]).bfloat16()}
    torch.save(src, path)
    out = load(path)
    for k, t in src.items():
        assert out[k].dtype == (ce.bfloat16 if t.dtype == torch.bfloat16 else ce.float16)
        assert tuple(out[k].shape) == tuple(t.shape)
        np.testing.assert_array_equal(out[k].numpy().view(np.uint16),
                                      t.contiguous().view(torch.int16).numpy().view(np.uint16))


def test_hostile_sizes_and_nesting_are_refused(tmp_path):
    path = tmp_path / "x.pt"
    cases = [
        # bytearray(10**12) would allocate a terabyte
        (b"\x80\x02" + _g("builtins", "bytearray") + _t(b"\x8a\x05\x00\x10\xa5\xd4\xe8")
         + b"R.", "invalid arguments for bytearray"),
        # a BINBYTES8 claiming 2**60 bytes: refused before anything is read
        (b"\x80\x04\x8e" + struct.pack("<Q", 1 << 60) + b"abc.", "truncated"),
        # a dict key nested 10**5 tuples deep (hashing it would recurse in C)
        (b"\x80\x02}" + b"N" + b"\x85" * 100000 + b"Ns.", "nested more than"),
    ]
    for data, match in cases:
        path.write_bytes(_zip(data, {}))
        with pytest.raises(pickle.UnpicklingError, match=match):
            load(path)


def test_hostile_constructors_keys_views_and_records_are_refused(tmp_path):
    path = tmp_path / "x.pt"
    deep = b")" + b"\x85" * 200000                        # a tuple nested 2*10**5 deep
    dag = b")" + b"2\x86" * 64                            # t = (t, t) 64 times: 2**64 leaves
    cases = [
        # set / OrderedDict called (REDUCE) on a deeply nested tuple: hashing recursed in C
        (b"\x80\x02" + _g("builtins", "set") + b"(" + deep + b"\x85" + b"tR.",
         "nested more than"),
        (b"\x80\x02" + _g("collections", "OrderedDict") + b"(" + deep + b"\x85" + b"tR.",
         "nested more than"),
        # a shallow but exponentially wide key: hashing it would never finish
        (b"\x80\x02}" + dag + b"Ns.", "more than 100000 parts"),
        (b"\x80\x02" + _g("builtins", "set") + b"(" + dag + b"\x85" + b"tR.",
         "more than 100000 parts"),
    ]
    for data, match in cases:
        path.write_bytes(_zip(data, {}))
        with pytest.raises(pickle.UnpicklingError, match=match):
            load(path)
    # an invalid size whose repr would be exponential: the message stays short
    path.write_bytes(_zip(b"\x80\x02" + _g("torch", "Size") + b"(" + b"]" + dag + b"tR.", {}))
    with pytest.raises(pickle.UnpicklingError) as e:
        load(path)
    assert len(str(e.value)) < 400
    # a stride-0 view repeating one element 2e9 times: refused instead of copied
    big = _tensor("ByteStorage", "0", 1, 0, [2000000000], [0])
    path.write_bytes(_zip(_state_dict_pickle([("w", big)]), {"0": b"\x01"}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to expand"):
        load(path)
    # the codec of _codecs.encode is checked before any codec lookup (which imports modules)
    import sys
    sys.modules.pop("encodings.rot_13", None)
    enc = b"\x80\x02" + _g("_codecs", "encode") + _t(_s("a"), _s("rot_13")) + b"R."
    path.write_bytes(_zip(enc, {}))
    with pytest.raises(pickle.UnpicklingError, match="latin-1, utf-8"):
        load(path)
    assert "encodings.rot_13" not in sys.modules


def test_records_sharing_bytes_and_gapped_safetensors_are_refused(tmp_path):
    # two directory names for one stored record: a small file must not allocate it twice
    buf = io.BytesIO()
    pkl = _state_dict_pickle([("a", _tensor("FloatStorage", "0", 4, 0, [4], [1])),
                              ("b", _tensor("FloatStorage", "1", 4, 0, [4], [1]))])
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/data/0", np.ones(4, np.float32).tobytes())
        z.writestr("archive/version", b"3\n")
    data = buf.getvalue()
    # append a copy of record 0's central-directory entry, renamed to data/1 (same bytes)
    cd_at, end_at = data.find(b"PK\x01\x02"), data.find(b"PK\x05\x06")
    cd_all, name0 = data[cd_at:end_at], b"archive/data/0"
    i0 = cd_all.find(name0) - 46
    rec1 = cd_all[i0:i0 + 46] + b"archive/data/1"
    eocd = bytearray(data[end_at:])
    n_entries = struct.unpack("<H", eocd[10:12])[0] + 1
    eocd[8:12] = struct.pack("<HH", n_entries, n_entries)
    eocd[12:16] = struct.pack("<I", len(cd_all) + len(rec1))
    path = tmp_path / "dup.pt"
    path.write_bytes(data[:cd_at] + cd_all + rec1 + bytes(eocd))
    with pytest.raises(RuntimeError, match="overlaps another record"):
        load(path)
    # safetensors entries that overlap
    import json
    header = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    st = tmp_path / "x.safetensors"
    st.write_bytes(struct.pack("<Q", len(header)) + header + np.ones(2, np.float32).tobytes())
    with pytest.raises(RuntimeError, match="overlapping or gapped"):
        load(st)


class _Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


def test_safe_globals_allow_what_the_user_trusts(tmp_path):
    from cengine import serialization as S
    path = tmp_path / "p.pt"
    path.write_bytes(_zip(pickle.dumps({"p": _Point(1, 2.5)}, protocol=2), {}))
    name = "%s._Point" % _Point.__module__
    with pytest.raises(pickle.UnpicklingError, match=r"global %s\b.*add_safe_globals" % name):
        load(path)
    with S.safe_globals([_Point]):
        assert S.get_safe_globals() == [_Point]
        p = load(path)["p"]
        assert type(p) is _Point and (p.x, p.y) == (1, 2.5)
    assert S.get_safe_globals() == []
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        load(path)
    # the (object, "module.name") form, for an object whose pickled name differs
    S.add_safe_globals([(_Point, name)])
    try:
        assert load(path)["p"].y == 2.5
    finally:
        S.clear_safe_globals()
    with pytest.raises(TypeError, match="list of classes or functions"):
        S.add_safe_globals(_Point)
    # safetensors files hold no globals: the allow-list changes nothing for them
    with S.safe_globals([_Point]):
        ce.save({"w": ce.ones(2)}, tmp_path / "w.st")
        assert load(tmp_path / "w.st")["w"].tolist() == [1.0, 1.0]


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_archive_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # the layout torch.jit.save writes
        z.writestr("m/data.pkl", b"\x80\x02N.")
        z.writestr("m/constants.pkl", b"\x80\x02).")
        z.writestr("m/code/__torch__.py", b"")
    path = tmp_path / "script.pt"
    path.write_bytes(buf.getvalue())
    with pytest.raises(RuntimeError, match="TorchScript archive"):
        load(path)
    torch = pytest.importorskip("torch")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(RuntimeError, match="TorchScript archive"):
        load(path)
