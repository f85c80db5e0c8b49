"""`python -m bench [--quick] [--only bench_gemm.py ...] [--publish]` from the repository root:
bench/run.py (results in bench/out/; --publish: bench/results/)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import main  # noqa: E402

main()
