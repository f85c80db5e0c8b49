#!/usr/bin/env bash
# The GPU check of cengine's CUDA path, for a machine with an NVIDIA GPU (run from anywhere):
#   1. build cengine in place (the C extension; the CUDA kernels are compiled by CuPy at run time),
#   2. install CuPy for CUDA 12 when it is missing and nvidia-smi sees a GPU (the cengine[cuda]
#      extra),
#   3. run the cuda tests (test_cuda_device.py: dispatch on the fake CuPy and the real one;
#      test_cuda_ops.py: ops on cuda:0 against numpy/the CPU, the fused kernels (softmax,
#      cross-entropy, norms, AdamW, the GradScaler unscale) against the CPU kernels, autocast
#      float16; the cuda cases of the device-parametrized op/layer/loss/optimizer/GradScaler
#      tests, cuda against the CPU) and fail when they were skipped for want of a GPU,
#   4. run bench/bench_cuda.py (GEMM, softmax, AdamW 100M, transformer step vs torch on the GPU).
# Output goes to $OUT when set (the device runner collects it), else to bench/out/.
# Usage: bash bench/gpu_check.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK="${1:-}"
OUTDIR="${OUT:-bench/out}"
mkdir -p "$OUTDIR"
nvidia-smi > "$OUTDIR/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not available" > "$OUTDIR/nvidia-smi.txt"
CENGINE_BUILD_JOBS="${CENGINE_BUILD_JOBS:-8}" python setup.py -q build_ext --inplace \
    > "$OUTDIR/build.log" 2>&1 || { tail -40 "$OUTDIR/build.log"; exit 1; }
# CuPy only where there is a GPU (nvidia-smi runs): a machine without one keeps its packages
if nvidia-smi -L > /dev/null 2>&1; then
    python -c "import cupy" 2>/dev/null || python -m pip install -q "cupy-cuda12x>=13" \
        > "$OUTDIR/pip-cupy.log" 2>&1 || true
fi
python - <<'PY' | tee "$OUTDIR/cuda-status.txt"
import cengine as ce
from cengine import _device
print("cuda missing reason:", _device.cuda_missing_reason())
print("is_available:", ce.cuda.is_available(), "device_count:", ce.cuda.device_count())
if ce.cuda.is_available():
    print("device:", ce.cuda.get_device_name(0), ce.cuda.get_device_capability(0))
PY
set +e
python -m pytest tests/test_cuda_device.py tests/test_cuda_ops.py -q -p no:cacheprovider -rs \
    > "$OUTDIR/cuda-tests.txt" 2>&1
TESTS_RC=$?
# the cuda cases of the tests parametrized over the devices present (and the fake-CuPy
# autocast/GradScaler dispatch tests beside them)
python -m pytest tests/test_ops_grad.py tests/test_nn_layers.py tests/test_losses.py \
    tests/test_optim.py tests/test_grad_scaler.py tests/test_autocast.py -k cuda -q \
    -p no:cacheprovider -rs >> "$OUTDIR/cuda-tests.txt" 2>&1 || TESTS_RC=1
set -e
tail -25 "$OUTDIR/cuda-tests.txt"
if grep -q "no real CUDA device" "$OUTDIR/cuda-tests.txt"; then
    echo "gpu_check: the cuda tests were skipped (no GPU that CuPy sees)"; TESTS_RC=1
fi
set +e
CENGINE_BENCH_OUT="$OUTDIR" python bench/bench_cuda.py $QUICK > "$OUTDIR/bench-cuda.txt" 2>&1
BENCH_RC=$?
set -e
cat "$OUTDIR/bench-cuda.txt" | tail -30
echo "gpu_check: tests rc=$TESTS_RC bench rc=$BENCH_RC"
exit $(( TESTS_RC != 0 || BENCH_RC != 0 ))
