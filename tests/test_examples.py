"""Smoke runs of the examples (few steps): they run end to end and the loss goes down."""
import importlib.util
import os

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_digits_smoke(tmp_path, capsys):
    pytest.importorskip("sklearn")
    mod = _load("train_digits")
    ck = str(tmp_path / "digits.safetensors")
    res = mod.main(["--epochs", "3", "--no-progress", "--checkpoint", ck])
    losses = res["losses"]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert res["test_acc"] > 0.8
    out = capsys.readouterr().out
    assert "ISA in use" in out  # prints the config first
    # --resume continues from the checkpoint and trains further
    res2 = mod.main(["--epochs", "4", "--no-progress", "--checkpoint", ck, "--resume"])
    assert "resumed from" in capsys.readouterr().out
    assert len(res2["losses"]) > 0 and np.mean(res2["losses"]) < np.mean(losses[:10])


def test_text_classification_smoke(capsys):
    mod = _load("text_classification")
    losses = mod.main(["--epochs", "1", "--train-size", "640", "--max-steps", "20"])
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    out = capsys.readouterr().out
    assert "ISA in use" in out and "(p=" in out


def test_mnist_cnn_smoke(capsys):
    pytest.importorskip("sklearn")
    mod = _load("mnist_cnn")
    res = mod.main(["--size", "8", "--epochs", "3", "--batch-size", "32"])
    losses = res["losses"]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert res["test_acc"] > 0.8
    assert "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))" in capsys.readouterr().out
