"""Fused CUDA kernels for CuPy storage (CuPy RawModule source, compiled by NVRTC on first use):
softmax / log_softmax forward and Jacobian-free backward, fused cross-entropy (log-softmax +
NLL, label smoothing, class weights, ignore_index) forward and backward, LayerNorm and RMSNorm
forward and backward (dx fused per row; dweight/dbias are column sums), a multi-tensor
Adam/AdamW step (one launch for a whole parameter group) and the GradScaler's multi-tensor
unscale with its inf/NaN check (one launch for all gradients of one dtype and device).

Import-lazy: CuPy is reached only through the arrays' module when a kernel is first needed, so
importing this file costs nothing without a GPU. cengine/cuda/_ops.py calls these when usable()
says they can run, and otherwise computes the same results with array-module formulas (the
reference the GPU tests compare against). Layout: rows are C-contiguous (R, C); one thread block
per row for the row kernels (block-wide tree reductions in shared memory, accumulation in
float for float32 as the CPU kernels do in their SIMD lanes, double for float64)."""
import math

import numpy as np

from .. import _device as _dv

_BLOCK = 256          # threads per block (a power of two: the tree reductions halve it)
_CHUNK = 1 << 16      # elements per block of the multi-tensor optimizer step

# One source, instantiated for float (f32) and double (f64) by the two typedefs appended
# below; every entry point is extern "C" so it is found by name.
_SRC = r"""
typedef long long i64;

__device__ __forceinline__ T block_sum(T v, T *sh) {
    int tid = threadIdx.x;
    sh[tid] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) sh[tid] += sh[tid + s];
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}

__device__ __forceinline__ T block_max(T v, T *sh) {
    int tid = threadIdx.x;
    sh[tid] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) { T o = sh[tid + s]; if (o > sh[tid] || o != o) sh[tid] = o; }
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}

// x (R,C) -> y (R,C): softmax (lg = 0) or log_softmax (lg = 1) of each row, max subtracted
extern "C" __global__ void softmax_fwd_SFX(const T *x, T *y, i64 C, int lg) {
    __shared__ T sh[BLOCK];
    const T *xr = x + (i64)blockIdx.x * C;
    T *yr = y + (i64)blockIdx.x * C;
    T m = NEG_INF;
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) { T v = xr[c]; if (v > m || v != v) m = v; }
    m = block_max(m, sh);
    T s = 0;
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) s += EXP(xr[c] - m);
    s = block_sum(s, sh);
    if (lg) {
        T ls = LOG(s);
        for (i64 c = threadIdx.x; c < C; c += blockDim.x) yr[c] = xr[c] - m - ls;
    } else {
        T inv = (T)1 / s;
        for (i64 c = threadIdx.x; c < C; c += blockDim.x) yr[c] = EXP(xr[c] - m) * inv;
    }
}

// y, dy (R,C) -> dx: softmax dx = y (dy - sum(dy y)); log_softmax dx = dy - exp(y) sum(dy)
extern "C" __global__ void softmax_bwd_SFX(const T *y, const T *dy, T *dx, i64 C, int lg) {
    __shared__ T sh[BLOCK];
    i64 o = (i64)blockIdx.x * C;
    T s = 0;
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) s += lg ? dy[o + c] : dy[o + c] * y[o + c];
    s = block_sum(s, sh);
    for (i64 c = threadIdx.x; c < C; c += blockDim.x)
        dx[o + c] = lg ? dy[o + c] - EXP(y[o + c]) * s : y[o + c] * (dy[o + c] - s);
}

// logits x (N,C), targets tg (N) -> loss (N), lse (N), wrow (N): the C kernel's results
// loss_i = (1-ls) w[t] (lse - x[t]) + ls/C sum_c w[c] (lse - x[c]); 0 (and wrow 0) if ignored
extern "C" __global__ void xent_fwd_SFX(const T *x, const i64 *tg, const T *w, T *loss, T *lse,
                                        T *wrow, i64 C, i64 ignore, double ls) {
    __shared__ T sh[BLOCK];
    i64 r = blockIdx.x;
    const T *xr = x + r * C;
    T m = NEG_INF;
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) { T v = xr[c]; if (v > m || v != v) m = v; }
    m = block_max(m, sh);
    T s = 0;
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) s += EXP(xr[c] - m);
    s = block_sum(s, sh);
    T l = m + LOG(s);
    T sm = 0;
    if (ls != 0.0) {
        for (i64 c = threadIdx.x; c < C; c += blockDim.x) sm += (w ? w[c] : (T)1) * (l - xr[c]);
        sm = block_sum(sm, sh);
    }
    if (threadIdx.x == 0) {
        lse[r] = l;
        i64 t = tg[r];
        if (t == ignore) { loss[r] = 0; wrow[r] = 0; }
        else {
            T wt = w ? w[t] : (T)1;
            loss[r] = (T)((1.0 - ls) * (double)(wt * (l - xr[t])) + ls / (double)C * (double)sm);
            wrow[r] = wt;
        }
    }
}

// dx[i,c] = g_i ((1-ls) w[t] (p - [c == t]) + ls/C (W p - w[c])), p = exp(x - lse), W = sum(w);
// 0 on ignored rows. One thread per element.
extern "C" __global__ void xent_bwd_SFX(const T *x, const i64 *tg, const T *w, const T *lse,
                                        const T *g, T *dx, i64 N, i64 C, i64 ignore, double ls,
                                        double W) {
    i64 n = N * C;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        i64 r = i / C, c = i - r * C, t = tg[r];
        if (t == ignore) { dx[i] = 0; continue; }
        T p = EXP(x[i] - lse[r]);
        T wt = w ? w[t] : (T)1;
        T d = (T)(1.0 - ls) * wt * (p - (c == t ? (T)1 : (T)0));
        if (ls != 0.0) d += (T)(ls / (double)C) * ((T)W * p - (w ? w[c] : (T)1));
        dx[i] = g[r] * d;
    }
}

// LayerNorm over rows x (R,D): mean, then the variance of (x - mean) (two passes, the second
// also sums x - mean so rounding in the mean is corrected, as the CPU kernel does)
extern "C" __global__ void layer_norm_fwd_SFX(const T *x, const T *w, const T *b, T *y, T *mean,
                                              T *rstd, i64 D, double eps) {
    __shared__ T sh[BLOCK];
    i64 o = (i64)blockIdx.x * D;
    T s = 0;
    for (i64 c = threadIdx.x; c < D; c += blockDim.x) s += x[o + c];
    T m = block_sum(s, sh) / (T)D;
    T d1 = 0, d2 = 0;
    for (i64 c = threadIdx.x; c < D; c += blockDim.x) { T d = x[o + c] - m; d1 += d; d2 += d * d; }
    d1 = block_sum(d1, sh) / (T)D;
    d2 = block_sum(d2, sh) / (T)D;
    m += d1;
    T var = d2 - d1 * d1;
    if (var < 0) var = 0;
    T rs = (T)1 / SQRT(var + (T)eps);
    for (i64 c = threadIdx.x; c < D; c += blockDim.x) {
        T v = (x[o + c] - m) * rs;
        if (w) v *= w[c];
        if (b) v += b[c];
        y[o + c] = v;
    }
    if (threadIdx.x == 0) { mean[blockIdx.x] = m; rstd[blockIdx.x] = rs; }
}

// dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w, xhat = (x - mean) rstd
extern "C" __global__ void layer_norm_bwd_SFX(const T *dy, const T *x, const T *w, const T *mean,
                                              const T *rstd, T *dx, i64 D) {
    __shared__ T sh[BLOCK];
    i64 r = blockIdx.x, o = r * D;
    T m = mean[r], rs = rstd[r];
    T sg = 0, sgx = 0;
    for (i64 c = threadIdx.x; c < D; c += blockDim.x) {
        T g = w ? dy[o + c] * w[c] : dy[o + c];
        sg += g;
        sgx += g * (x[o + c] - m) * rs;
    }
    sg = block_sum(sg, sh) / (T)D;
    sgx = block_sum(sgx, sh) / (T)D;
    for (i64 c = threadIdx.x; c < D; c += blockDim.x) {
        T g = w ? dy[o + c] * w[c] : dy[o + c];
        T xh = (x[o + c] - m) * rs;
        dx[o + c] = rs * (g - sg - xh * sgx);
    }
}

// RMSNorm: rstd = 1/sqrt(mean(x^2) + eps), y = x rstd w
extern "C" __global__ void rms_norm_fwd_SFX(const T *x, const T *w, T *y, T *rstd, i64 D,
                                            double eps) {
    __shared__ T sh[BLOCK];
    i64 o = (i64)blockIdx.x * D;
    T s = 0;
    for (i64 c = threadIdx.x; c < D; c += blockDim.x) s += x[o + c] * x[o + c];
    T rs = (T)1 / SQRT(block_sum(s, sh) / (T)D + (T)eps);
    for (i64 c = threadIdx.x; c < D; c += blockDim.x) y[o + c] = x[o + c] * rs * (w ? w[c] : (T)1);
    if (threadIdx.x == 0) rstd[blockIdx.x] = rs;
}

// dx = rstd (g - xhat mean(g xhat)), g = dy w, xhat = x rstd
extern "C" __global__ void rms_norm_bwd_SFX(const T *dy, const T *x, const T *w, const T *rstd,
                                            T *dx, i64 D) {
    __shared__ T sh[BLOCK];
    i64 r = blockIdx.x, o = r * D;
    T rs = rstd[r];
    T sgx = 0;
    for (i64 c = threadIdx.x; c < D; c += blockDim.x)
        sgx += (w ? dy[o + c] * w[c] : dy[o + c]) * x[o + c] * rs;
    sgx = block_sum(sgx, sh) / (T)D;
    for (i64 c = threadIdx.x; c < D; c += blockDim.x) {
        T g = w ? dy[o + c] * w[c] : dy[o + c];
        dx[o + c] = rs * (g - x[o + c] * rs * sgx);
    }
}

// Adam / AdamW over many tensors in one launch: block k updates chunk k, elements
// [start[k], start[k] + chunk) of tensor tidx[k]; the formula of the CPU reference
// (step_size = lr / (1 - b1^t), bc2s = sqrt(1 - b2^t) per tensor, computed in double)
extern "C" __global__ void adam_multi_SFX(const unsigned long long *P,
                                          const unsigned long long *G,
                                          const unsigned long long *M,
                                          const unsigned long long *V, const i64 *sizes,
                                          const double *step_size, const double *bc2s,
                                          const int *tidx, const i64 *start, i64 chunk,
                                          double lr, double b1, double b2, double eps, double wd,
                                          int maximize, int decoupled) {
    int t = tidx[blockIdx.x];
    i64 s0 = start[blockIdx.x], e = s0 + chunk;
    if (e > sizes[t]) e = sizes[t];
    T *p = (T *)P[t], *m = (T *)M[t], *v = (T *)V[t];
    const T *g = (const T *)G[t];
    T ss = (T)step_size[t], bc = (T)bc2s[t];
    T decay = (T)(1.0 - lr * wd), tb1 = (T)b1, tb2 = (T)b2, c1 = (T)(1.0 - b1),
      c2 = (T)(1.0 - b2), twd = (T)wd, te = (T)eps;
    for (i64 i = s0 + threadIdx.x; i < e; i += blockDim.x) {
        T pi = p[i], gi = maximize ? -g[i] : g[i];
        if (wd != 0.0) {
            if (decoupled) pi = pi * decay;
            else gi = gi + twd * pi;
        }
        T mi = tb1 * m[i] + c1 * gi;
        T vi = tb2 * v[i] + c2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - ss * (mi / (SQRT(vi) / bc + te));
    }
}

// GradScaler's unscale over many tensors in one launch (the chunks of adam_multi): every element
// is multiplied by inv_scale in place, and found[0] is set to 1 when any element was NaN or
// +-inf before scaling (the contract of the CPU's amp.c; every writer stores the same 1)
extern "C" __global__ void amp_unscale_multi_SFX(const unsigned long long *G, const i64 *sizes,
                                                 const int *tidx, const i64 *start, i64 chunk,
                                                 double inv_scale, int *found) {
    int t = tidx[blockIdx.x];
    i64 s0 = start[blockIdx.x], e = s0 + chunk;
    if (e > sizes[t]) e = sizes[t];
    T *g = (T *)G[t];
    T inv = (T)inv_scale;
    int bad = 0;
    for (i64 i = s0 + threadIdx.x; i < e; i += blockDim.x) {
        T v = g[i];
        if (!(fabs(v) <= T_MAX)) bad = 1;      // NaN fails the comparison, +-inf exceeds
        g[i] = v * inv;
    }
    if (bad) *found = 1;
}
"""

_HEAD = {"f32": "typedef float T;\n#define EXP expf\n#define LOG logf\n#define SQRT sqrtf\n"
                "#define NEG_INF (-__int_as_float(0x7f800000))\n#define T_MAX 3.402823466e+38f\n",
         "f64": "typedef double T;\n#define EXP exp\n#define LOG log\n#define SQRT sqrt\n"
                "#define NEG_INF (-__longlong_as_double(0x7ff0000000000000LL))\n"
                "#define T_MAX 1.7976931348623157e+308\n"}


def _p(a):
    """A kernel argument for an optional array: the array, or a null pointer."""
    return np.uint64(0) if a is None else a

_modules = {}


def available(cp=None):
    """Whether the kernels can run: a CuPy module with RawModule (real CuPy; the test suite's
    stand-in has none) and a visible GPU."""
    cp = cp if cp is not None else _dv._CP[0]
    return cp is not None and hasattr(cp, "RawModule") and not getattr(cp, "_is_fake", False)


def usable(*arrays):
    """True when every non-None array is a C-contiguous float32/float64 CuPy array of one dtype
    and the kernels can run."""
    cp = _dv._CP[0]
    if not available(cp):
        return False
    dt = None
    for a in arrays:
        if a is None:
            continue
        if not isinstance(a, cp.ndarray) or not a.flags.c_contiguous:
            return False
        if a.dtype != np.float32 and a.dtype != np.float64:
            return False
        if dt is None:
            dt = a.dtype
        elif a.dtype != dt:
            return False
    return dt is not None


def _fn(name, dtype):
    """The compiled kernel `name` for dtype (compiled once per dtype and device)."""
    cp = _dv.cuda_module()
    sfx = "f32" if dtype == np.float32 else "f64"
    key = (sfx, int(cp.cuda.runtime.getDevice()))
    mod = _modules.get(key)
    if mod is None:
        src = _HEAD[sfx] + ("#define BLOCK %d\n" % _BLOCK) + _SRC.replace("_SFX", "_" + sfx)
        mod = _modules[key] = cp.RawModule(code=src, options=("--std=c++14",))
    return mod.get_function(name + "_" + sfx)


def _rows_launch(name, R, args, dtype):
    if R == 0:
        return
    _fn(name, dtype)((int(R),), (_BLOCK,), args)


def softmax_forward(x, log):
    cp = _dv.cuda_module()
    R, C = x.shape
    y = cp.empty_like(x)
    if C:
        _rows_launch("softmax_fwd", R, (x, y, np.int64(C), np.int32(log)), x.dtype)
    return y


def softmax_backward(y, dy, log):
    cp = _dv.cuda_module()
    R, C = y.shape
    dx = cp.empty_like(y)
    if C:
        _rows_launch("softmax_bwd", R, (y, dy, dx, np.int64(C), np.int32(log)), y.dtype)
    return dx


def cross_entropy_forward(logits, target, weight, ignore_index, ls):
    cp = _dv.cuda_module()
    N, C = logits.shape
    loss, lse, wrow = (cp.empty(N, logits.dtype) for _ in range(3))
    tg = cp.ascontiguousarray(target, dtype=np.int64)
    _rows_launch("xent_fwd", N, (logits, tg, _p(weight), loss, lse, wrow, np.int64(C),
                                 np.int64(ignore_index), np.float64(ls)), logits.dtype)
    return loss, lse, wrow


def cross_entropy_backward(logits, target, lse, g, weight, ignore_index, ls):
    cp = _dv.cuda_module()
    N, C = logits.shape
    dx = cp.empty_like(logits)
    n = N * C
    if n == 0:
        return dx
    W = float(weight.sum()) if weight is not None else float(C)
    g = cp.ascontiguousarray(g, dtype=logits.dtype)
    tg = cp.ascontiguousarray(target, dtype=np.int64)
    blocks = min((n + _BLOCK - 1) // _BLOCK, 65535)
    _fn("xent_bwd", logits.dtype)((blocks,), (_BLOCK,),
                                  (logits, tg, _p(weight), lse, g, dx, np.int64(N), np.int64(C),
                                   np.int64(ignore_index), np.float64(ls), np.float64(W)))
    return dx


def layer_norm_forward(x, w, b, eps):
    cp = _dv.cuda_module()
    R, D = x.shape
    y = cp.empty_like(x)
    mean, rstd = cp.empty(R, x.dtype), cp.empty(R, x.dtype)
    if D:
        _rows_launch("layer_norm_fwd", R, (x, _p(w), _p(b), y, mean, rstd, np.int64(D),
                                           np.float64(eps)), x.dtype)
    return y, mean, rstd


def layer_norm_backward(dy, x, mean, rstd, w, need_dx, need_dweight, need_dbias):
    cp = _dv.cuda_module()
    R, D = x.shape
    dy = cp.ascontiguousarray(dy)
    dx = dw = db = None
    if need_dx:
        dx = cp.empty_like(x)
        if D:
            _rows_launch("layer_norm_bwd", R, (dy, x, _p(w), mean, rstd, dx, np.int64(D)), x.dtype)
    if need_dweight:
        dw = (dy * ((x - mean[:, None]) * rstd[:, None])).sum(axis=0)
    if need_dbias:
        db = dy.sum(axis=0)
    return dx, dw, db


def rms_norm_forward(x, w, eps):
    cp = _dv.cuda_module()
    if eps is None:
        eps = float(np.finfo(x.dtype).eps)
    R, D = x.shape
    y = cp.empty_like(x)
    rstd = cp.empty(R, x.dtype)
    if D:
        _rows_launch("rms_norm_fwd", R, (x, _p(w), y, rstd, np.int64(D), np.float64(eps)), x.dtype)
    else:
        rstd[...] = 1.0 / math.sqrt(eps)
    return y, rstd


def rms_norm_backward(dy, x, rstd, w, need_dx, need_dweight):
    cp = _dv.cuda_module()
    R, D = x.shape
    dy = cp.ascontiguousarray(dy)
    dx = dw = None
    if need_dx:
        dx = cp.empty_like(x)
        if D:
            _rows_launch("rms_norm_bwd", R, (dy, x, _p(w), rstd, dx, np.int64(D)), x.dtype)
    if need_dweight:
        dw = (dy * (x * rstd[:, None])).sum(axis=0)
    return dx, dw


def adamw_usable(params, grads, exp_avgs, exp_avg_sqs):
    """The multi-tensor step needs every array C-contiguous, of one float dtype, on one device,
    each gradient/state of its parameter's size."""
    return multi_usable(params, grads, exp_avgs, exp_avg_sqs)


def multi_chunks(sizes, chunk=_CHUNK):
    """The block table of a multi-tensor launch over tensors of `sizes` elements: (tidx, start),
    block k handling elements [start[k], start[k] + chunk) of tensor tidx[k] (empty tensors
    get no block)."""
    sizes = np.asarray(sizes, np.int64)
    nchunk = (sizes + chunk - 1) // chunk
    tidx = np.repeat(np.arange(sizes.size, dtype=np.int32), nchunk)
    start = np.concatenate([np.arange(k, dtype=np.int64) * chunk for k in nchunk]) \
        if sizes.size else np.zeros(0, np.int64)
    return tidx, start


def _ptrs(cp, arrs):
    return cp.asarray(np.array([a.data.ptr for a in arrs], np.uint64))


def multi_usable(*groups):
    """The multi-tensor kernels need every array of the groups C-contiguous, of one float dtype
    and on one device, group k's i-th array of the size of group 0's i-th."""
    first = groups[0]
    if not first:
        return False
    dev = first[0].device.id
    for group in groups:
        if not usable(first[0], *group):
            return False
        for a, p in zip(group, first):
            if a.size != p.size or a.device.id != dev:
                return False
    return True


def amp_unscale(grads, inv_scale):
    """grads *= inv_scale in place for a list of CuPy arrays (one dtype, one device: see
    multi_usable) in one launch; returns a one-element int32 CuPy array, 1 when any element was
    NaN or +-inf before scaling (left on the device: reading it waits for the kernel)."""
    cp = _dv.cuda_module()
    found = cp.zeros(1, np.int32)
    tidx, start = multi_chunks([g.size for g in grads])
    if tidx.size:
        _fn("amp_unscale_multi", grads[0].dtype)(
            (int(tidx.size),), (_BLOCK,),
            (_ptrs(cp, grads), cp.asarray(np.array([g.size for g in grads], np.int64)),
             cp.asarray(tidx), cp.asarray(start), np.int64(_CHUNK), np.float64(inv_scale),
             found))
    return found


def adam_step(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay,
              maximize, decoupled):
    """One launch updating every tensor of the group (chunks of _CHUNK elements per block)."""
    cp = _dv.cuda_module()
    sizes = np.array([p.size for p in params], np.int64)
    st = np.asarray([float(s) for s in steps], np.float64)
    step_size = lr / (1.0 - beta1 ** st)
    bc2s = np.sqrt(1.0 - beta2 ** st)
    tidx, start = multi_chunks(sizes)
    if tidx.size == 0:
        return
    ptr = lambda arrs: _ptrs(cp, arrs)  # noqa: E731
    _fn("adam_multi", params[0].dtype)(
        (int(tidx.size),), (_BLOCK,),
        (ptr(params), ptr(grads), ptr(exp_avgs), ptr(exp_avg_sqs), cp.asarray(sizes),
         cp.asarray(step_size), cp.asarray(bc2s), cp.asarray(tidx), cp.asarray(start),
         np.int64(_CHUNK), np.float64(lr), np.float64(beta1), np.float64(beta2),
         np.float64(eps), np.float64(weight_decay), np.int32(maximize), np.int32(decoupled)))
