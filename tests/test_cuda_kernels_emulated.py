"""The CUDA source of cengine/cuda/_kernels.py, compiled by the host C++ compiler and run on the
CPU under a small emulation of CUDA's execution model (each block's threads are real threads,
__syncthreads a barrier, shared memory one array per block, blocks one after another), checked
against the CPU kernels. This checks the kernels' arithmetic and their block-reduction logic on
machines without a GPU; timing, memory coalescing and NVRTC specifics need the real GPU
(tests/test_cuda_ops.py). Skipped when no C++20 compiler (std::barrier) is found."""
import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest

from cengine import _C
from cengine.cuda import _kernels as K

_EMU = r"""
#include <barrier>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx;
static dim3 blockIdx, blockDim, gridDim;
static std::barrier<> *g_bar;
static void __syncthreads() { g_bar->arrive_and_wait(); }
static float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
template <class F> static void launch(unsigned grid, unsigned block, F f) {
    gridDim.x = grid; blockDim.x = block;
    for (unsigned b = 0; b < grid; b++) {
        blockIdx.x = b;
        std::barrier<> bar(block);
        g_bar = &bar;
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < block; t++)
            ts.emplace_back([&f, t] { threadIdx.x = t; f(); });
        for (auto &th : ts) th.join();
    }
}
"""

_RUNNERS = r"""
extern "C" {
void run_softmax_fwd(const T *x, T *y, i64 R, i64 C, int lg, int bs) {
    launch(R, bs, [=] { softmax_fwd_SFX(x, y, C, lg); }); }
void run_softmax_bwd(const T *y, const T *dy, T *dx, i64 R, i64 C, int lg, int bs) {
    launch(R, bs, [=] { softmax_bwd_SFX(y, dy, dx, C, lg); }); }
void run_xent_fwd(const T *x, const i64 *tg, const T *w, T *loss, T *lse, T *wrow, i64 N, i64 C,
                  i64 ig, double ls, int bs) {
    launch(N, bs, [=] { xent_fwd_SFX(x, tg, w, loss, lse, wrow, C, ig, ls); }); }
void run_xent_bwd(const T *x, const i64 *tg, const T *w, const T *lse, const T *g, T *dx, i64 N,
                  i64 C, i64 ig, double ls, double W, int grid, int bs) {
    launch(grid, bs, [=] { xent_bwd_SFX(x, tg, w, lse, g, dx, N, C, ig, ls, W); }); }
void run_ln_fwd(const T *x, const T *w, const T *b, T *y, T *m, T *r, i64 R, i64 D, double eps,
                int bs) {
    launch(R, bs, [=] { layer_norm_fwd_SFX(x, w, b, y, m, r, D, eps); }); }
void run_ln_bwd(const T *dy, const T *x, const T *w, const T *m, const T *r, T *dx, i64 R, i64 D,
                int bs) {
    launch(R, bs, [=] { layer_norm_bwd_SFX(dy, x, w, m, r, dx, D); }); }
void run_rms_fwd(const T *x, const T *w, T *y, T *r, i64 R, i64 D, double eps, int bs) {
    launch(R, bs, [=] { rms_norm_fwd_SFX(x, w, y, r, D, eps); }); }
void run_rms_bwd(const T *dy, const T *x, const T *w, const T *r, T *dx, i64 R, i64 D, int bs) {
    launch(R, bs, [=] { rms_norm_bwd_SFX(dy, x, w, r, dx, D); }); }
void run_adam(const unsigned long long *P, const unsigned long long *G,
              const unsigned long long *M, const unsigned long long *V, const i64 *sizes,
              const double *ss, const double *bc, const int *tidx, const i64 *start, i64 chunk,
              double lr, double b1, double b2, double eps, double wd, int mx, int dc, int grid,
              int bs) {
    launch(grid, bs, [=] { adam_multi_SFX(P, G, M, V, sizes, ss, bc, tidx, start, chunk, lr, b1,
                                          b2, eps, wd, mx, dc); }); }
void run_amp_unscale(const unsigned long long *G, const i64 *sizes, const int *tidx,
                     const i64 *start, i64 chunk, double inv, int *found, int grid, int bs) {
    launch(grid, bs, [=] { amp_unscale_multi_SFX(G, sizes, tidx, start, chunk, inv, found); }); }
}
"""


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the emulated CUDA kernels")
    libs = {}
    d = tmp_path_factory.mktemp("cuda_emu")
    for sfx, ct in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        src = (_EMU + K._HEAD[sfx] + "#define BLOCK %d\n" % K._BLOCK + K._SRC + _RUNNERS) \
            .replace("_SFX", "_" + sfx)
        cpp, so = d / ("k_%s.cpp" % sfx), d / ("k_%s.so" % sfx)
        cpp.write_text(src)
        r = subprocess.run([cxx, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread",
                            "-o", str(so), str(cpp)], capture_output=True, text=True)
        if r.returncode != 0:
            if "barrier" in r.stderr:
                pytest.skip("the C++ compiler has no std::barrier (C++20)")
            raise AssertionError("the CUDA source does not compile as C++:\n" + r.stderr[:4000])
        libs[np.dtype(np.float32 if sfx == "f32" else np.float64)] = ctypes.CDLL(str(so))
    return libs


def _p(a):
    return ctypes.c_void_p(0 if a is None else a.ctypes.data)


_i, _d = ctypes.c_longlong, ctypes.c_double
TOL = {np.dtype(np.float32): 3e-5, np.dtype(np.float64): 1e-12}
BLOCKS = [32, 256]     # the reductions for a partly used and a full block


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (4, 300), (2, 1025)])
@pytest.mark.parametrize("bs", BLOCKS)
def test_softmax_kernels(emu, dtype, shape, bs):
    lib = emu[np.dtype(dtype)]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    R, C = shape
    tol = TOL[np.dtype(dtype)]
    for lg in (0, 1):
        y = np.empty_like(x)
        lib.run_softmax_fwd(_p(x), _p(y), _i(R), _i(C), lg, bs)
        ref = _C.softmax_forward(x, log=bool(lg))
        np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)
        dx = np.empty_like(x)
        lib.run_softmax_bwd(_p(ref), _p(dy), _p(dx), _i(R), _i(C), lg, bs)
        np.testing.assert_allclose(dx, _C.softmax_backward(ref, dy, log=bool(lg)), rtol=tol * 10,
                                   atol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,C", [(1, 1), (6, 7), (5, 700)])
@pytest.mark.parametrize("weighted,ls", [(False, 0.0), (True, 0.15)])
def test_cross_entropy_kernels(emu, dtype, N, C, weighted, ls):
    lib = emu[np.dtype(dtype)]
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    t = rng.integers(0, C, N).astype(np.int64)
    if N > 1:
        t[1] = -100
    w = (rng.random(C) + 0.5).astype(dtype) if weighted else None
    g = rng.standard_normal(N).astype(dtype)
    loss, lse, wrow = (np.empty(N, dtype) for _ in range(3))
    lib.run_xent_fwd(_p(x), _p(t), _p(w), _p(loss), _p(lse), _p(wrow), _i(N), _i(C), _i(-100),
                     _d(ls), 64)
    rl, rlse, rw = _C.cross_entropy_forward(x, t, w, -100, ls)
    tol = TOL[np.dtype(dtype)] * 10
    for a, b in ((loss, rl), (lse, rlse), (wrow, rw)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    dx = np.empty_like(x)
    W = float(w.sum()) if weighted else float(C)
    lib.run_xent_bwd(_p(x), _p(t), _p(w), _p(rlse), _p(g), _p(dx), _i(N), _i(C), _i(-100),
                     _d(ls), _d(W), 3, 64)       # 3 blocks of 64: the grid-stride loop wraps
    np.testing.assert_allclose(dx, _C.cross_entropy_backward(x, t, rlse, g, w, -100, ls),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (4, 513)])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("bs", BLOCKS)
def test_norm_kernels(emu, dtype, shape, affine, bs):
    lib = emu[np.dtype(dtype)]
    rng = np.random.default_rng(2)
    R, D = shape
    x = (rng.standard_normal(shape) + 5).astype(dtype)
    w = rng.standard_normal(D).astype(dtype) if affine else None
    b = rng.standard_normal(D).astype(dtype) if affine else None
    dy = rng.standard_normal(shape).astype(dtype)
    tol = TOL[np.dtype(dtype)] * 20
    y, m, r = np.empty_like(x), np.empty(R, dtype), np.empty(R, dtype)
    lib.run_ln_fwd(_p(x), _p(w), _p(b), _p(y), _p(m), _p(r), _i(R), _i(D), _d(1e-5), bs)
    ry, rm, rr = _C.layer_norm_forward(x, w, b, 1e-5)
    for a, c in ((y, ry), (m, rm), (r, rr)):
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol)
    dx = np.empty_like(x)
    lib.run_ln_bwd(_p(dy), _p(x), _p(w), _p(rm), _p(rr), _p(dx), _i(R), _i(D), bs)
    rdx = _C.layer_norm_backward(dy, x, rm, rr, w, need_dx=True)[0]
    np.testing.assert_allclose(dx, rdx, rtol=tol, atol=tol)
    y, r = np.empty_like(x), np.empty(R, dtype)
    lib.run_rms_fwd(_p(x), _p(w), _p(y), _p(r), _i(R), _i(D), _d(1e-6), bs)
    ry, rr = _C.rms_norm_forward(x, w, 1e-6)
    np.testing.assert_allclose(y, ry, rtol=tol, atol=tol)
    np.testing.assert_allclose(r, rr, rtol=tol, atol=tol)
    lib.run_rms_bwd(_p(dy), _p(x), _p(w), _p(rr), _p(dx), _i(R), _i(D), bs)
    np.testing.assert_allclose(dx, _C.rms_norm_backward(dy, x, rr, w, need_dx=True)[0],
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decoupled,maximize", [(False, False), (True, False), (True, True)])
def test_multi_tensor_adam_kernel(emu, dtype, decoupled, maximize):
    lib = emu[np.dtype(dtype)]
    rng = np.random.default_rng(3)
    sizes = [1, 5, 300, 70]
    chunk = 64                      # small chunks: tensors span several blocks
    ps = [rng.standard_normal(n).astype(dtype) for n in sizes]
    gs = [rng.standard_normal(n).astype(dtype) for n in sizes]
    ms = [(rng.standard_normal(n) * 0.1).astype(dtype) for n in sizes]
    vs = [(rng.random(n) * 0.1).astype(dtype) for n in sizes]
    steps = [1, 4, 2, 7]
    ref = [[a.copy() for a in grp] for grp in (ps, gs, ms, vs)]
    lr, b1, b2, eps, wd = 1e-2, 0.9, 0.99, 1e-8, 0.1
    st = np.array(steps, np.float64)
    ss, bc = lr / (1 - b1 ** st), np.sqrt(1 - b2 ** st)
    nchunk = [(n + chunk - 1) // chunk for n in sizes]
    tidx = np.repeat(np.arange(len(sizes), dtype=np.int32), nchunk)
    start = np.concatenate([np.arange(k, dtype=np.int64) * chunk for k in nchunk])
    ptrs = [np.array([a.ctypes.data for a in grp], np.uint64) for grp in (ps, gs, ms, vs)]
    sz = np.array(sizes, np.int64)
    lib.run_adam(*[_p(a) for a in ptrs], _p(sz), _p(ss), _p(bc), _p(tidx), _p(start),
                 _i(chunk), _d(lr), _d(b1), _d(b2), _d(eps), _d(wd), int(maximize),
                 int(decoupled), int(tidx.size), 32)
    _C.adam_step(ref[0], ref[1], ref[2], ref[3], None, steps, lr, b1, b2, eps, wd, False,
                 maximize, decoupled)
    tol = TOL[np.dtype(dtype)] * 10
    for got, want in zip(ps + ms + vs, ref[0] + ref[2] + ref[3]):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [None, "inf", "nan", "-inf"])
def test_multi_tensor_amp_unscale_kernel(emu, dtype, bad):
    """GradScaler's unscale kernel over a group (an empty tensor among them, tensors spanning
    several blocks, the block table of multi_chunks) against the CPU kernel: the same scaled
    values bit for bit and the same inf/NaN flag, wherever the bad element sits"""
    lib = emu[np.dtype(dtype)]
    rng = np.random.default_rng(4)
    sizes = [1, 5, 0, 300, 70]
    chunk = 64
    for where in ([3, 250], [0, 0], [4, 69]):
        gs = [(rng.standard_normal(n) * 1e3).astype(dtype) for n in sizes]
        big = np.finfo(dtype).max
        gs[1][:2] = big, -big                    # the largest finite values are not bad
        gs[1][2] = np.finfo(dtype).smallest_subnormal
        if bad is not None:
            gs[where[0]][where[1]] = float(bad)
        ref = [g.copy() for g in gs]
        inv = float(np.float32(1.0 / 1024.0)) if dtype == np.float32 else 1.0 / 3072.0
        tidx, start = K.multi_chunks(sizes, chunk)
        assert tidx.size == sum((n + chunk - 1) // chunk for n in sizes)
        ptrs = np.array([g.ctypes.data for g in gs], np.uint64)
        sz = np.array(sizes, np.int64)
        found = np.zeros(1, np.int32)
        lib.run_amp_unscale(_p(ptrs), _p(sz), _p(tidx), _p(start), _i(chunk), _d(inv), _p(found),
                            int(tidx.size), 32)
        want_found = _C.amp_unscale(ref, inv)
        assert bool(found[0]) == want_found == (bad is not None)
        for got, want in zip(gs, ref):
            np.testing.assert_array_equal(got, want)
