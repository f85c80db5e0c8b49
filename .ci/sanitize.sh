#!/usr/bin/env bash
# .ci/sanitize.sh - the sanitizer job: build cengine with AddressSanitizer and
# UndefinedBehaviorSanitizer (CENGINE_SANITIZE=1, see setup.py) in a scratch copy of the tree, run
# the tests with the ASan runtime preloaded into Python, and fail on any sanitizer report.
#
#   .ci/sanitize.sh            kernel tests (tests/test_kernels_*.py, tests/test_gemm_kernel.py,
#                              tests/test_alignment.py): the per-landing job
#   .ci/sanitize.sh all        the whole test suite (on demand; several times slower)
#   .ci/sanitize.sh -- ARGS    pytest with ARGS instead (paths relative to the tree root)
# Environment: CENGINE_SANITIZE_DIR (scratch directory, default a new one under /tmp, removed
# afterwards unless KEEP=1), CENGINE_BUILD_JOBS (parallel compiles, default 2).
# Exit status: 0 clean; 1 tests failed or a sanitizer reported (reports are printed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${CENGINE_SANITIZE_DIR:-$(mktemp -d /tmp/cengine-sanitize.XXXXXX)}
cleanup() { if [ "${KEEP:-0}" != 1 ] && [ -z "${CENGINE_SANITIZE_DIR:-}" ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

if [ "${1:-}" = "all" ]; then
    TESTS=(tests)
elif [ "${1:-}" = "--" ]; then
    shift
    TESTS=("$@")
else
    TESTS=(tests/test_kernels_*.py tests/test_gemm_kernel.py tests/test_alignment.py)
fi

# 1. a scratch copy of the tracked and untracked (not ignored) files: the build outputs of the
#    normal in-place build stay untouched
cd "$ROOT"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    if [ -f "$f" ]; then mkdir -p "$WORK/$(dirname "$f")" && cp -p "$f" "$WORK/$f"; fi
done

# 2. the sanitized build, in place in the copy
cd "$WORK"
start=$(date +%s)
CENGINE_SANITIZE=1 CENGINE_BUILD_JOBS=${CENGINE_BUILD_JOBS:-2} \
    python setup.py -q build_ext --inplace >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
built=$(date +%s)

# 3. the tests under the sanitizers. Python itself is not instrumented, so the ASan runtime is
#    preloaded; leak checking is off (the interpreter keeps memory until exit). Every report goes
#    to a file under $WORK/san (worker processes included) and fails the job.
LIBASAN=$(gcc -print-file-name=libasan.so)
mkdir -p "$WORK/san"
set +e
LD_PRELOAD="$LIBASAN" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$WORK/san/asan" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$WORK/san/ubsan" \
    python -m pytest -q -p no:cacheprovider "${TESTS[@]}"
rc=$?
set -e
done_=$(date +%s)
reports=$(find "$WORK/san" -type f | wc -l)
if [ "$reports" -gt 0 ]; then
    echo "=== sanitizer reports ($reports files) ==="
    for f in "$WORK"/san/*; do echo "--- $f"; head -60 "$f"; done
fi
echo "sanitize: build $((built - start)) s, tests $((done_ - built)) s, pytest exit $rc, $reports report file(s)"
[ "$rc" -eq 0 ] && [ "$reports" -eq 0 ]
