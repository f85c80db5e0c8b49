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


def test_train_digits_checkpoint_per_architecture(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    mod = _load("train_digits")
    monkeypatch.chdir(tmp_path)          # the default checkpoints/ folder lands here
    quick = ["--epochs", "1", "--max-steps", "3", "--no-progress"]
    mod.main(quick)
    mod.main(quick + ["--block", "swiglu"])
    relu = tmp_path / "checkpoints" / "digits.safetensors"
    swiglu = tmp_path / "checkpoints" / "digits-swiglu.safetensors"
    assert relu.exists() and swiglu.exists()
    assert mod.default_checkpoint("relu", 128).endswith("digits-h128.safetensors")
    # each resumes its own run
    mod.main(["--epochs", "2", "--max-steps", "6", "--no-progress", "--resume"])
    assert "resumed from checkpoints/digits.safetensors" in capsys.readouterr().out
    mod.main(["--epochs", "2", "--max-steps", "6", "--no-progress", "--resume", "--block",
              "swiglu"])
    assert "resumed from checkpoints/digits-swiglu.safetensors" in capsys.readouterr().out
    # a checkpoint of another architecture is refused with a clear message
    with pytest.raises(SystemExit, match="holds a swiglu model"):
        mod.main(quick + ["--resume", "--checkpoint", str(swiglu)])


def test_train_digits_progress_bar_quiet_without_terminal(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    mod = _load("train_digits")
    mod.main(["--epochs", "1", "--max-steps", "3", "--checkpoint", str(tmp_path / "c.st")])
    err = capsys.readouterr().err    # captured output is not a terminal: no bar
    assert "it/s" not in err and "epoch 1:" not in err


def test_train_cnn_digits_smoke(capsys):
    pytest.importorskip("sklearn")
    mod = _load("train_cnn_digits")
    res = mod.main(["--size", "8", "--epochs", "10", "--threads", "1"])
    losses = res["losses"]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert res["test_acc"] >= 0.97   # the accuracy the example promises
    assert "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))" in capsys.readouterr().out
