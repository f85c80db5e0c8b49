"""A clean first hour: the message when the kernels are not built, a release build without debug
info, the sdist (examples, benchmarks, tests, LICENSE; no generated files), package metadata."""
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

import cengine
from cengine._C import _build_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_SETUP = os.path.exists(os.path.join(ROOT, "setup.py"))

# drop editable-install finders so the copied source tree is all Python can see
_NO_EDITABLE = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in "
                "getattr(f, '__name__', type(f).__name__)]; ")


def test_unbuilt_source_tree_says_what_to_do(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(os.path.dirname(cengine.__file__), src / "cengine",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    (src / "setup.py").write_text("# marker of a source tree\n")
    r = subprocess.run([sys.executable, "-c", _NO_EDITABLE + "import cengine"], cwd=src,
                       capture_output=True, text=True)
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("ImportError: cengine's compiled kernels (cengine._C._cengine) are "
                          "missing")
    assert "build_ext --inplace" in err and "run Python from another directory" in err
    # an installed package without its extension: reinstall, not "build in place"
    os.remove(src / "setup.py")
    r = subprocess.run([sys.executable, "-c", _NO_EDITABLE + "import cengine"], cwd=src,
                       capture_output=True, text=True)
    assert "installation is incomplete" in r.stderr


def test_release_build_has_no_debug_info():
    flags = _build_info.cflags
    if "-g0" not in flags:
        pytest.skip("a debug or sanitizer build (CENGINE_DEBUG / CENGINE_SANITIZE)")
    so = cengine._C.lib.__file__
    with open(so, "rb") as f:
        data = f.read()
    assert b".debug_info" not in data, "the extension carries DWARF debug info"
    assert len(data) < 6 * 1024 * 1024


@pytest.mark.skipif(not HAS_SETUP, reason="needs the source tree")
def test_sdist_has_examples_bench_tests_and_no_generated_files(tmp_path):
    r = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (path,) = [p for p in os.listdir(tmp_path) if p.endswith(".tar.gz")]
    with tarfile.open(tmp_path / path) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
        pkg_info = tf.extractfile([m for m in tf.getmembers()
                                   if m.name.count("/") == 1 and m.name.endswith("PKG-INFO")][0]
                                  ).read().decode()
    for need in ("LICENSE", "README.md", "examples/train_digits.py", "bench/run.py",
                 "bench/_common.py", "tests/test_examples.py", "tests/conftest.py",
                 "src_c/cengine.h", "src_c/gemm.c", "cengine/_C/core.pxi", "setup.py"):
        assert need in names, need
    for never in ("cengine/_C/_cengine.c", "cengine/_C/_cengine.pyx",
                  "cengine/_C/_build_info.py"):
        assert never not in names, never
    assert not any(n.endswith((".so", ".o", ".pyc")) or n.startswith("bench/out/")
                   for n in names)
    assert "License-Expression: MIT" in pkg_info


def test_metadata_and_extras():
    try:
        import tomllib
    except ImportError:
        pytest.skip("tomllib needs Python 3.11")
    path = os.path.join(ROOT, "pyproject.toml")
    if not os.path.exists(path):
        pytest.skip("needs the source tree")
    with open(path, "rb") as f:
        meta = tomllib.load(f)
    proj = meta["project"]
    assert proj["license"] == "MIT" and proj["license-files"] == ["LICENSE"]
    assert "mpmath" in proj["optional-dependencies"]["test"]  # tests/test_kernels_activation.py
    excl = meta["tool"]["setuptools"]["exclude-package-data"]["cengine._C"]
    assert "_cengine.c" in excl and "_cengine.pyx" in excl     # never inside the wheel
