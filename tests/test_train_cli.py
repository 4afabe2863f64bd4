"""``python -m train`` end to end on a slice, and its bad-input behaviour."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from conftest import run_module, stderr_lines

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_one_epoch_writes_all_artifacts(tiny_models: dict[str, Path]) -> None:
    out = tiny_models["bcnn"].parent
    report = json.loads((out / "bcnn.train.json").read_text())
    assert report["params"] == 93_790 and report["trainable_params"] == 93_322
    from train.recipes import RECIPES, default_recipe

    default = RECIPES[default_recipe("bcnn")]
    assert report["recipe"]["name"] == default.name and report["batch_size"] == default.batch_size
    assert report["epochs"] == 1 and report["seed"] == 1
    assert report["train_images"] + report["val_images"] == 2000
    assert set(report["history"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert report["train_seconds"] > 0
    matrix = report["confusion_matrix"]
    assert sum(map(sum, matrix)) == 10_000
    assert report["test_accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(10)) / 10_000)
    assert len(report["data"]["sha256"]) == 4
    for plot in ("bcnn.history.png", "bcnn.confusion.png"):
        data = (out / plot).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    assert not list(out.glob(".*tmp*")), "temporary files left behind"


def test_h5_reloads_and_predicts(tiny_models: dict[str, Path], mnist) -> None:
    import larq  # noqa: F401  (registers the custom objects)
    import numpy as np
    import tensorflow as tf

    model = tf.keras.models.load_model(tiny_models["bcnn"], compile=False)
    assert model.count_params() == 93_790
    probs = model.predict(mnist.x_test[:500].astype(np.float32)[..., None], verbose=0)
    report = json.loads(tiny_models["bcnn"].with_suffix(".train.json").read_text())
    matrix = np.array(report["confusion_matrix"])
    assert probs.shape == (500, 10)
    # the first 500 predictions are consistent with the recorded accuracy (same weights)
    assert abs(float((probs.argmax(1) == mnist.y_test[:500]).mean()) - report["test_accuracy"]) < 0.1
    assert matrix.trace() / matrix.sum() == pytest.approx(report["test_accuracy"])


def assert_one_line_exit_2(result, out: Path, expect: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1 and expect in lines[0], lines
    assert not out.exists() or not any(out.iterdir())


def test_missing_data_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_module("train", "--model", "bcnn", "--data", "/nonexistent", "--out", out)
    assert_one_line_exit_2(result, out, "/nonexistent: no such file or folder")


def test_unknown_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_module("train", "--model", "resnet", "--out", out)
    assert_one_line_exit_2(result, out, "invalid choice: 'resnet'")


def test_truncated_idx(tmp_path: Path, mnist_path: Path) -> None:
    data = tmp_path / "mnist"
    shutil.copytree(mnist_path, data)
    labels = data / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:5000], mtime=0))
    out = tmp_path / "out"
    result = run_module("train", "--model", "bcnn", "--data", data, "--out", out)
    assert_one_line_exit_2(result, out, "truncated IDX file")


def test_one_progress_line_per_epoch_when_not_a_terminal(tmp_path: Path, mnist_path: Path) -> None:
    """Captured output is not a terminal: one line per epoch, no progress bar drawn with backspaces."""
    out = tmp_path / "out"
    result = run_module(
        "train", "--model", "mlp", "--recipe", "seed", "--epochs", "3", "--limit", "300", "--data", mnist_path, "--out", out
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\b" not in result.stdout and "\r" not in result.stdout and "━" not in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("loss" in line and "val_accuracy" in line and line.endswith(" s") for line in lines)


def test_help_lists_zoo() -> None:
    result = run_module("train", "--help")
    assert result.returncode == 0
    for name in ("bcnn", "cnn", "mlp", "93,790"):
        assert name in result.stdout
