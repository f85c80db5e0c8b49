import importlib.util
import subprocess
import sys

import pytest

import cengine as ce


def test_cuda_request_names_what_is_missing():
    with pytest.raises(RuntimeError, match="without a CUDA backend") as e:
        ce.zeros(2, device="cuda")
    if importlib.util.find_spec("cupy") is None:
        assert 'CuPy is not installed (pip install "cengine[cuda]"' in str(e.value)
    else:
        assert "CuPy array path is not built" in str(e.value)
    with pytest.raises(RuntimeError, match="without a CUDA backend"):
        ce.ones(1).cuda()
    with pytest.raises(RuntimeError, match="without a CUDA backend"):
        ce.ones(1).to("cuda:0")


def test_is_available_false_and_cupy_not_imported():
    assert ce.cuda.is_available() is False
    assert ce.cuda.device_count() == 0
    code = "import sys, cengine; cengine.cuda.is_available(); print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(ce.__file__).parents[1]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
