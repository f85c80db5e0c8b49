"""GEMM block sizes: cache detection, the analytical derivation (BLIS model) on given cache
geometries, setting block sizes at run time, and results that do not depend on the blocking."""
import os

import numpy as np
import pytest

from cengine import _C

KIB, MIB = 1 << 10, 1 << 20


def _lv(size, ways, shared=1, line=64):
    return {"size": size, "ways": ways, "line": line, "shared": shared}


# cache geometries of CPU families (per core L1d / L2, L3 per instance and its sharing)
GEOMS = {
    "sapphire_rapids": {"L1": _lv(48 * KIB, 12), "L2": _lv(2 * MIB, 16),
                        "L3": _lv(105 * MIB, 15, 112)},
    "zen4": {"L1": _lv(32 * KIB, 8), "L2": _lv(1 * MIB, 8), "L3": _lv(32 * MIB, 16, 16)},
    "zen5": {"L1": _lv(48 * KIB, 12), "L2": _lv(1 * MIB, 16), "L3": _lv(32 * MIB, 16, 16)},
    "skylake_client": {"L1": _lv(32 * KIB, 8), "L2": _lv(256 * KIB, 4), "L3": _lv(8 * MIB, 16, 8)},
    "no_l3": {"L1": _lv(32 * KIB, 8), "L2": _lv(512 * KIB, 8), "L3": None},
    "ways_unknown": {"L1": _lv(64 * KIB, 0), "L2": _lv(1 * MIB, 0), "L3": None},
    "huge_vm_l3": {"L1": _lv(48 * KIB, 12), "L2": _lv(2 * MIB, 16), "L3": _lv(480 * MIB, 16, 2)},
    "smt_l2": {"L1": _lv(32 * KIB, 8), "L2": _lv(1 * MIB, 16, 2), "L3": _lv(16 * MIB, 16, 16)},
}
# (mr, nr, itemsize) of every kernel: avx512 / avx2 / generic, float32 and float64
TILES = [(12, 32, 4), (12, 16, 8), (6, 16, 4), (6, 8, 8), (4, 16, 4), (4, 8, 8)]


@pytest.mark.parametrize("tile", TILES, ids=lambda t: "%dx%d_%d" % t)
@pytest.mark.parametrize("geom", sorted(GEOMS))
def test_derived_blocking_fits_the_caches(geom, tile):
    mr, nr, S = tile
    g = GEOMS[geom]
    kc, mc, nc = _C.gemm_derive_blocking(g, mr, nr, S)
    assert kc % 8 == 0 and mc % mr == 0 and nc % nr == 0
    assert 32 <= kc <= 2048 and 4 * mr <= mc <= 4096 and 2 * nr <= nc <= 8192

    def share(lv):   # bytes of one way of this CPU's share, ways
        w = g[lv]["ways"] or 8
        return g[lv]["size"] // w // (1 if lv == "L1" else g[lv]["shared"]), w

    # L1: the resident A micro-panel and one streaming B micro-panel, in all ways but one
    way1, w1 = share("L1")
    assert (mr + nr) * kc * S <= (w1 - 1) * way1
    # ... and KC is as deep as the model allows: one more 8 would overflow the B panel's ways
    cb = int((w1 - 1) / (1 + mr / nr))
    assert nr * kc * S <= cb * way1 < nr * (kc + 8) * S
    # L2: the KC x NC block of B plus an A micro-panel, leaving one way
    way2, w2 = share("L2")
    assert kc * nc * S + mr * kc * S <= (w2 - 1) * way2
    # L3: the MC x KC block of A in this CPU's share (never more than the cap of 4096 rows)
    if g["L3"] is not None:
        way3, w3 = share("L3")
        assert mc * kc * S <= (w3 - 1) * way3 or mc == 4096 // mr * mr
    else:
        assert mc * kc * S <= 4 * g["L2"]["size"]


@pytest.mark.parametrize("tile", TILES, ids=lambda t: "%dx%d_%d" % t)
@pytest.mark.parametrize("geom", sorted(GEOMS))
def test_derived_blocking_prefetching_kernel(geom, tile):
    """pf_rows > 0 (a kernel prefetching the streamed B panel): with at most 8 L1 ways, KC is
    the depth at which the resident A panel fills half the ways, when the A panel, the prefetch
    window and a way for C fit and NC stays >= 16 NR; otherwise the plain model's KC."""
    mr, nr, S = tile
    g = GEOMS[geom]
    pf = 16
    kc0 = _C.gemm_derive_blocking(g, mr, nr, S)[0]
    kc, mc, nc = _C.gemm_derive_blocking(g, mr, nr, S, pf)
    assert kc % 8 == 0 and mc % mr == 0 and nc % nr == 0
    assert 32 <= kc <= 2048 and 4 * mr <= mc <= 4096 and 2 * nr <= nc <= 8192

    def share(lv):
        w = g[lv]["ways"] or 8
        return g[lv]["size"] // w // (1 if lv == "L1" else g[lv]["shared"]), w

    way1, w1 = share("L1")
    way2, w2 = share("L2")
    win = -(-pf * nr * S // way1)   # ways of the prefetch window

    def nc_for(k):
        return max(1, w2 - 1 - -(-mr * k * S // way2)) * way2 // (k * S) // nr * nr

    expect = kc0
    if w1 <= 8:   # the A panel in all ways but the window's and one for C, fewer if NC < 12 NR
        for a in range(w1 - 1 - win, w1 // 2 - 1, -1):
            kh = a * way1 // (mr * S) // 8 * 8
            if kc0 < kh <= 2048 and nc_for(kh) >= 12 * nr:
                expect = kh
                break
    assert kc == expect
    if kc != kc0:   # the A panel, the window and a way for C fit in L1
        assert -(-mr * kc * S // way1) + win + 1 <= w1
    # the L2 rule as in the plain model: the B block plus an A panel leave one way
    assert kc * nc * S + mr * kc * S <= (w2 - 1) * way2


def test_derived_blocking_prefetching_known_values():
    # Zen 4 fp32 12x32, prefetch 16 rows: window 16*32*4 = 2 KiB = 1 of 8 ways of 4 KiB, one
    # way for C -> the A panel gets 6 ways: KC = 6*4096 / (12*4) = 512 (A 24 KiB); L2: A panel
    # in 1 of 8 ways of 128 KiB -> NC = 6 * 128 KiB / (512*4) = 384 = 12 NR (just allowed)
    kc, mc, nc = _C.gemm_derive_blocking(GEOMS["zen4"], 12, 32, 4, 16)
    assert (kc, nc) == (512, 384)
    # L3 share 2 MiB in 16 ways of 128 KiB: B block 768 KiB takes 6 -> MC = 9 * 128 KiB / 2048
    assert mc == 9 * 128 * KIB // 2048 // 12 * 12 == 576
    # fp64 12x16: window 2 KiB = 1 way -> 6*4096 / 96 = 256; NC = 6 * 128 KiB / (256*8) = 384
    assert _C.gemm_derive_blocking(GEOMS["zen4"], 12, 16, 8, 16) == (256, 576, 384)
    # a 768 KiB 8-way L2: 6 ways (KC 512) leave NC = 6 * 96 KiB / 2048 = 288 < 12 NR, 5 ways
    # (KC 424) 320: the A panel gets 4 ways, KC 336, NC = 6 * 96 KiB / 1344 = 438 -> 416
    g = dict(GEOMS["zen4"], L2=_lv(768 * KIB, 8))
    assert _C.gemm_derive_blocking(g, 12, 32, 4, 16)[::2] == (336, 416)
    # 12-way L1 (Sapphire Rapids, Zen 5): the plain model's KC. Zen 5 fp32: B gets
    # floor(11 / 1.375) = 8 of 12 ways of 4 KiB -> KC = 8*4096 / 128 = 256; L2 16 ways of
    # 64 KiB, A panel in 1 -> NC = 14 * 64 KiB / 1024 = 896; L3 share 2 MiB in 16 ways of
    # 128 KiB, B block 896 KiB takes 7 -> MC = 8 * 128 KiB / 1024 = 1024 -> 1020
    assert _C.gemm_derive_blocking(GEOMS["zen5"], 12, 32, 4, 16) == (256, 1020, 896)
    for geom in ("sapphire_rapids", "zen5"):
        assert _C.gemm_derive_blocking(GEOMS[geom], 12, 32, 4, 16) == \
            _C.gemm_derive_blocking(GEOMS[geom], 12, 32, 4)
    # Skylake client (256 KiB 4-way L2): KC 336 would leave NC = 2 * 64 KiB / 1344 = 96 < 12*32
    assert _C.gemm_derive_blocking(GEOMS["skylake_client"], 12, 32, 4, 16) == \
        _C.gemm_derive_blocking(GEOMS["skylake_client"], 12, 32, 4)
    with pytest.raises(ValueError, match="pf_rows >= 0"):
        _C.gemm_derive_blocking(GEOMS["zen4"], 12, 32, 4, -1)


def test_derived_blocking_known_values():
    # worked by hand from the model (see ce_gemm_derive_blocking):
    # Sapphire Rapids fp32 12x32: B gets floor(11 / (1 + 12/32)) = 8 of 12 ways of 4 KiB ->
    # KC = 8*4096 / (32*4) = 256; L2: A panel 12 KiB takes 1 way of 128 KiB -> NC = 14 * 128 KiB
    # / (256*4) = 1792.
    kc, mc, nc = _C.gemm_derive_blocking(GEOMS["sapphire_rapids"], 12, 32, 4)
    assert (kc, nc) == (256, 1792)
    # its L3 share (105 MiB / 112 = 960 KiB) cannot hold the 1.75 MiB B block as well: the
    # A block takes the whole share (non-inclusive L3): 14 ways of 64 KiB -> 896 KiB / 1 KiB.
    assert mc == 14 * 960 * KIB // 15 // (256 * 4) // 12 * 12
    # Zen 4 fp32 12x32: floor(7 / 1.375) = 5 ways of 4 KiB -> KC = 160; L2 8 ways of 128 KiB,
    # A panel 7.5 KiB in 1 -> NC = 6 * 128 KiB / 640 = 1228 -> 1216 (multiple of 32)
    kc, mc, nc = _C.gemm_derive_blocking(GEOMS["zen4"], 12, 32, 4)
    assert (kc, nc) == (160, 1216)
    # L3 share 2 MiB, 16 ways of 128 KiB; B block 760 KiB takes 6 -> MC = 9 * 128 KiB / 640
    assert mc == 9 * 128 * KIB // 640 // 12 * 12
    # AVX2 fp64 6x8 on Zen 5: floor(11 / 1.75) = 6 ways -> KC = 6*4096/64 = 384
    assert _C.gemm_derive_blocking(GEOMS["zen5"], 6, 8, 8)[0] == 384


def test_derived_blocking_needs_l1_and_l2():
    assert _C.gemm_derive_blocking({"L1": _lv(32 * KIB, 8), "L2": None, "L3": None}, 12, 32, 4) is None
    assert _C.gemm_derive_blocking({"L1": None, "L2": _lv(MIB, 8), "L3": None}, 12, 32, 4) is None
    with pytest.raises(ValueError, match="must be positive"):
        _C.gemm_derive_blocking(GEOMS["zen4"], 0, 32, 4)
    with pytest.raises(ValueError, match="invalid L1 geometry"):
        _C.gemm_derive_blocking({"L1": _lv(32 * KIB, 8, line=0), "L2": _lv(MIB, 8)}, 12, 32, 4)


def test_cpu_caches_detected():
    c = _C.cpu_caches()
    assert c["source"] in _C.CACHE_SOURCES
    sysfs = "/sys/devices/system/cpu/cpu0/cache/index0/size"
    if os.path.exists(sysfs):
        assert c["source"] == "sysfs"
        assert c["L1"]["size"] > 0 and c["L1"]["line"] > 0 and c["L2"]["size"] > c["L1"]["size"]
        # the L1d entry is the one sysfs lists as level 1 Data
        for d in sorted(os.listdir(os.path.dirname(os.path.dirname(sysfs)))):
            base = os.path.join(os.path.dirname(os.path.dirname(sysfs)), d)
            if not d.startswith("index"):
                continue
            lvl = open(os.path.join(base, "level")).read().strip()
            typ = open(os.path.join(base, "type")).read().strip()
            if lvl == "1" and typ == "Data":
                size = open(os.path.join(base, "size")).read().strip()
                assert size.endswith("K") and int(size[:-1]) * KIB == c["L1"]["size"]
    for lv in ("L1", "L2", "L3"):
        if c[lv] is not None:
            assert c[lv]["shared"] >= 1 and c[lv]["ways"] >= 0
    if c["L1"] is not None and c["L2"] is not None:
        # the defaults in use were derived from exactly these caches
        for dt, S in (("float32", 4), ("float64", 8)):
            for isa in _C.ISA_NAMES:
                b = _C.gemm_blocking(dt, isa)
                if b["source"] == "caches":
                    assert (b["kc"], b["mc"], b["nc"]) == _C.gemm_derive_blocking(
                        c, b["mr"], b["nr"], S, _C.gemm_prefetch_rows(isa))
    assert isinstance(_C.cpu_model(), str)


@pytest.fixture
def restore_blocking():
    old = {(dt, isa): _C.gemm_blocking(dt, isa) for dt in ("float32", "float64")
           for isa in _C.ISA_NAMES}
    yield
    for (dt, isa), b in old.items():
        if b["source"] == "set":
            _C.gemm_set_blocking(dt, isa, b["kc"], b["mc"], b["nc"])
        else:
            _C.gemm_set_blocking(dt, isa, 0, 0, 0)


def test_set_blocking_roundtrip_and_errors(restore_blocking):
    default = _C.gemm_blocking("float32", "avx2")
    _C.gemm_set_blocking("float32", "avx2", 100, 50, 70)     # rounded to 8 / MR 6 / NR 16
    b = _C.gemm_blocking("float32", "avx2")
    assert (b["kc"], b["mc"], b["nc"], b["source"]) == (96, 48, 64, "set")
    _C.gemm_set_blocking(np.float32, "avx2", 0, 0, 0)
    assert _C.gemm_blocking("float32", "avx2") == default
    with pytest.raises(ValueError, match="need 32 <= kc <= 2048"):
        _C.gemm_set_blocking("float32", "avx2", 16, 48, 64)
    with pytest.raises(ValueError, match="need 32 <= kc"):
        _C.gemm_set_blocking("float64", "avx512", 256, 4, 64)
    with pytest.raises(TypeError, match="kc must be an int"):
        _C.gemm_set_blocking("float32", "avx2", 256.0, 48, 64)
    with pytest.raises(TypeError, match="expected float32 or float64"):
        _C.gemm_blocking("int32")
    with pytest.raises(ValueError, match="unknown ISA"):
        _C.gemm_blocking("float32", "sse9")
    assert _C.gemm_tile("float32", "avx512") == (12, 32)
    assert _C.gemm_tile("float64", "avx2") == (6, 8)


def _layout(x, kind):
    if kind == "c":
        return np.ascontiguousarray(x)
    if kind == "f":
        return np.asfortranarray(x)
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3 + 1), x.dtype)
    v = big[::2, 1::3]
    v[...] = x
    return v


# small blockings make every block loop run many times (and leave edge blocks) on small shapes
BLOCKINGS = ["default", (32, 1, 1), (40, 2, 3), (64, 5, 2)]   # mc, nc in units of MR, NR


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("blk", BLOCKINGS, ids=str)
@pytest.mark.parametrize("shape,la,lb", [((97, 131, 203), "c", "c"), ((64, 300, 77), "f", "c"),
                                         ((45, 70, 301), "c", "f"), ((130, 61, 99), "f", "f"),
                                         ((33, 95, 64), "s", "s"), ((1, 200, 300), "c", "c"),
                                         ((250, 1, 41), "f", "s")],
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_results_do_not_depend_on_blocking(isa, nthreads, restore_blocking, dtype, blk, shape,
                                           la, lb):
    M, N, K = shape
    rng = np.random.default_rng(M + 7 * N + 13 * K)
    A = _layout(rng.standard_normal((M, K)).astype(dtype), la)
    B = _layout(rng.standard_normal((K, N)).astype(dtype), lb)
    bias = rng.standard_normal(N).astype(dtype)
    dt = np.dtype(dtype).name
    if blk != "default":
        mr, nr = _C.gemm_tile(dt, isa)
        _C.gemm_set_blocking(dt, isa, blk[0], blk[1] * mr, blk[2] * nr)
    ref = A.astype(np.float64) @ B.astype(np.float64) + bias
    C = np.full((M, N), np.nan, dtype)
    _C.gemm(A, B, C, bias=bias)
    tol = (dict(rtol=2e-5, atol=1e-4 * np.sqrt(K)) if dtype == np.float32
           else dict(rtol=1e-12, atol=1e-12 * np.sqrt(K)))
    np.testing.assert_allclose(C, ref, **tol)
    # batched, C transposed, beta != 0: the same
    Ab = np.stack([A, 2 * A]).astype(dtype)
    C2 = np.asfortranarray(np.ones((M, N), dtype))
    Cb = np.stack([C2, C2])
    _C.gemm(Ab, B, Cb, alpha=0.5, beta=2.0)
    np.testing.assert_allclose(Cb[1], 0.5 * 2 * (A.astype(np.float64) @ B) + 2.0, **tol)


def test_blocking_in_show_config():
    import io
    import cengine as ce
    buf = io.StringIO()
    ce.show_config(file=buf)
    out = buf.getvalue()
    b = _C.gemm_blocking("float32")
    assert "GEMM float32: %dx%d tile, KC=%d MC=%d NC=%d" % (
        b["mr"], b["nr"], b["kc"], b["mc"], b["nc"]) in out
    assert "caches:" in out and "GEMM tune file:" in out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("la", ["f", "s"])
def test_packed_a_row_panels(isa, nthreads, dtype, la):
    """Packed A blocks end in 8-row panels where that saves kernel rows (AVX-512: M = 64 is
    12*4 + 8*2); every M from 1 to 40 and a few beyond, with the whole team packing A (one
    product sliced by columns on 2 threads) and with several MC blocks."""
    rng = np.random.default_rng(3)
    N, K = 300, 700
    B = rng.standard_normal((K, N)).astype(dtype)
    for M in list(range(1, 41)) + [52, 64, 100, 109]:
        A = _layout(rng.standard_normal((M, K)).astype(dtype), la)
        C = np.full((M, N), np.nan, dtype)
        _C.gemm(A, B, C)
        np.testing.assert_allclose(C, A.astype(np.float64) @ B, rtol=1e-4 if dtype == np.float32
                                   else 1e-11, atol=1e-3 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1024, 32, 32, 32), (256, 64, 64, 64), (37, 1, 1, 1),
                                   (9, 96, 33, 512), (5, 13, 200, 7), (3, 97, 20, 30),
                                   (4, 20, 40, 513)], ids=lambda s: "x".join(map(str, s)))
def test_small_batched_products_in_place(isa, nthreads, dtype, shape):
    """The no-pack path for small products (M <= 96, K <= 512, B small), batch split across
    threads; also just outside it (M = 97, K = 513), broadcast B, strided C, alpha/beta."""
    b, M, N, K = shape
    rng = np.random.default_rng(b + M + N + K)
    A = rng.standard_normal((b, M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)           # broadcast over the batch
    big = np.ones((b, M, 2 * N), dtype)
    C = big[:, :, ::2]                                      # column stride 2
    _C.gemm(A, B[None], C, alpha=0.5, beta=-1.0)
    ref = 0.5 * (A.astype(np.float64) @ B) - 1.0
    tol = dict(rtol=1e-5, atol=1e-4 * np.sqrt(K)) if dtype == np.float32 else \
        dict(rtol=1e-12, atol=1e-12 * np.sqrt(K))
    np.testing.assert_allclose(C, ref, **tol)
    assert np.all(big[:, :, 1::2] == 1)                     # nothing written between columns
    Bb = rng.standard_normal((b, K, N)).astype(dtype)
    C2 = np.full((b, M, N), np.nan, dtype)
    _C.gemm(A, Bb, C2)
    np.testing.assert_allclose(C2, A.astype(np.float64) @ Bb, **tol)
    # the same path on 1 and 2 threads: bitwise equal
    old = _C.get_num_threads()
    try:
        _C.set_num_threads(3 - nthreads)
        C3 = np.empty_like(C2)
        _C.gemm(A, Bb, C3)
    finally:
        _C.set_num_threads(old)
    np.testing.assert_array_equal(C2, C3)
