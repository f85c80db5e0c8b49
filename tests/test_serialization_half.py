"""bfloat16 / float16 through safetensors: files torch's safetensors writer makes load with the
same bits, cengine's files load in torch (and in safetensors' reader) unchanged. Without torch,
the BF16/F16 files are built byte by byte."""
import json
import struct

import numpy as np
import pytest

import cengine as ce

ml_dtypes = pytest.importorskip("ml_dtypes")

BITS = np.array([0x3f80, 0xc040, 0x7f80, 0xff80, 0xffff, 0x7fc0, 0x0001, 0x8000, 0x4049, 0x3c00],
                np.uint16)


def _blob(entries):
    """a safetensors file: {name: (dtype, shape, raw bytes)} in order"""
    header, body = {}, b""
    for name, (dt, shape, raw) in entries.items():
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def test_hand_built_bf16_f16_file_loads(tmp_path):
    p = tmp_path / "h.safetensors"
    p.write_bytes(_blob({"b": ("BF16", [2, 5], BITS.tobytes()), "h": ("F16", [10], BITS.tobytes()),
                         "e": ("BF16", [0, 3], b"")}))
    out = ce.load(p)
    assert out["b"].dtype == ce.bfloat16 and out["b"].shape == (2, 5)
    assert out["h"].dtype == ce.float16 and out["e"].shape == (0, 3)
    assert out["b"].numpy().dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(out["b"].numpy().view(np.uint16).ravel(), BITS)
    np.testing.assert_array_equal(out["h"].numpy().view(np.uint16), BITS)
    assert out["b"][0, 0].item() == 1.0 and out["h"][9].item() == 1.0


def test_wrong_bf16_byte_count_is_refused(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(_blob({"b": ("BF16", [3], b"\0" * 4)}))
    with pytest.raises(RuntimeError, match="entry 'b' has offsets"):
        ce.load(p)


def test_round_trip_keeps_bits(tmp_path):
    b = ce.from_numpy(BITS.view(ml_dtypes.bfloat16).reshape(2, 5))
    h = ce.from_numpy(BITS.view(np.float16))
    p = tmp_path / "rt.safetensors"
    ce.save({"b": b, "h": h, "nested": [b[:, 1:3]]}, p)
    out = ce.load(p)
    assert out["b"].dtype == ce.bfloat16 and out["h"].dtype == ce.float16
    np.testing.assert_array_equal(out["b"].numpy().view(np.uint16), BITS.reshape(2, 5))
    np.testing.assert_array_equal(out["h"].numpy().view(np.uint16), BITS)
    np.testing.assert_array_equal(out["nested"][0].numpy().view(np.uint16),
                                  BITS.reshape(2, 5)[:, 1:3])
    # the file's header names the dtypes as safetensors spells them
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    dts = {v["dtype"] for k, v in json.loads(raw[8:8 + n]).items() if k != "__metadata__"}
    assert dts == {"BF16", "F16"}


def test_interop_with_torch_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    g = torch.Generator().manual_seed(0)
    src = {"w": torch.randn(4, 3, generator=g).bfloat16(), "h": torch.randn(6, generator=g).half(),
           "s": torch.tensor(2.5).bfloat16()}
    p = tmp_path / "torch.safetensors"
    st.save_file(src, str(p))
    out = ce.load(p)
    for k, t in src.items():
        assert tuple(out[k].shape) == tuple(t.shape)
        np.testing.assert_array_equal(out[k].numpy().view(np.uint16),
                                      t.view(torch.int16).numpy().view(np.uint16))
    assert out["w"].dtype == ce.bfloat16 and out["h"].dtype == ce.float16
    # and back: a plain (flat) dict of cengine tensors saved by cengine, read by torch
    q = tmp_path / "ce.safetensors"
    ce.save(dict(out), q)
    back = st.load_file(str(q))
    for k, t in src.items():
        assert back[k].dtype == t.dtype
        assert torch.equal(back[k].view(torch.int16), t.view(torch.int16))
