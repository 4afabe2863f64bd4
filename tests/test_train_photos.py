"""Training on colour images: the photo zoo models, crop-and-flip recipes and a teacher from a file.

A synthetic 16x16x3 dataset of three classes (each class one dominant colour channel, plus
noise) is small enough to train for an epoch in seconds and easy enough to learn in one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_module, stderr_lines


def _colour_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 3
    images = rng.integers(0, 90, (count, 16, 16, 3))
    images[np.arange(count), :, :, labels] += 160
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture(scope="module")
def colour_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x_train, y_train = _colour_images(360, 0)
    x_test, y_test = _colour_images(90, 1)
    path = tmp_path_factory.mktemp("colour") / "colour.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def _keras_teacher(path: Path, *, softmax: bool = True, classes: int = 3, shape: tuple[int, ...] = (16, 16, 3)) -> Path:
    """A small float model that sorts the colours (fixed weights: the mean of each channel)."""
    import tensorflow as tf

    inputs = tf.keras.Input(shape)
    pooled = tf.keras.layers.GlobalAveragePooling2D()(inputs if len(shape) == 3 else tf.keras.layers.Reshape((16, 16, 3))(inputs))
    dense = tf.keras.layers.Dense(classes, activation="softmax" if softmax else None)
    outputs = dense(pooled)
    model = tf.keras.Model(inputs, outputs)
    weights = np.zeros((3, classes), np.float32)
    weights[:3, :3] = np.eye(3, dtype=np.float32)[:, : min(3, classes)] / 8.0
    dense.set_weights([weights, np.zeros(classes, np.float32)])
    model.save(path, save_format="h5")
    return path


def test_colour_bnn_trains_with_crop_flip_and_a_teacher(tmp_path: Path, colour_npz: Path) -> None:
    teacher = _keras_teacher(tmp_path / "teacher.h5")
    out = tmp_path / "out"
    result = run_module(
        "train",
        "--model", "colour_bnn", "--data", colour_npz, "--recipe", "fast", "--epochs", "2",
        "--set", "augment_crop=2", "--set", "augment_flip=true", "--set", "augment_shift=0", "--set", "augment_rotation=0",
        "--teacher", teacher, "--out", out, "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "colour_bnn.train.json").read_text())
    assert report["teacher"]["path"] == "teacher.h5" and len(report["teacher"]["sha256"]) == 64
    assert report["teacher"]["test_accuracy"] == 1.0, "the fixed-weight teacher sorts the colours"
    assert report["recipe"]["augment_crop"] == 2 and report["recipe"]["augment_flip"] is True
    assert report["recipe"]["distill_alpha"] == 0.5
    assert report["test_accuracy"] > 0.6, report["test_accuracy"]


def test_resnet8_trains_on_colour_images(tmp_path: Path, colour_npz: Path) -> None:
    args = ("--model", "resnet8", "--data", colour_npz, "--recipe", "seed", "--epochs", "1", "--out", tmp_path)
    result = run_module("train", *args)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "resnet8.train.json").read_text())
    assert report["params"] == 78_666 - 650 + 195  # 3 classes: the dense layer is 64 x 3 + 3, not 64 x 10 + 10


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: _keras_teacher(p, softmax=False), "not probabilities"),
        (lambda p: _keras_teacher(p, classes=4), "is not the dataset's 3 class scores"),
        (lambda p: _keras_teacher(p, shape=(768,)), "the student's batches are (16, 16, 3)"),
        (lambda p: p.write_bytes(b"not hdf5") and p, "not an HDF5 file"),
    ],
)
def test_a_teacher_that_does_not_fit_is_refused_in_one_line(tmp_path: Path, colour_npz: Path, make, words: str) -> None:
    teacher = make(tmp_path / "teacher.h5")
    out = tmp_path / "out"
    result = run_module("train", "--model", "colour_bnn", "--data", colour_npz, "--teacher", teacher, "--out", out)
    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1 and words in lines[0], lines
    assert not out.exists()


def test_an_mnist_model_refuses_colour_images(tmp_path: Path, colour_npz: Path) -> None:
    result = run_module("train", "--model", "bcnn", "--data", colour_npz, "--out", tmp_path / "out")
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and "bcnn takes 28x28 8-bit grey images" in lines[0] and "16x16x3 uint8" in lines[0], lines


def test_init_starts_from_a_model_file_and_name_names_the_files(tmp_path: Path, colour_npz: Path) -> None:
    """--init loads the weights of a same-architecture model (recorded by sha256); --name is the files' stem."""
    from train.models import build_model

    start = build_model("resnet8", (16, 16, 3), 3)
    start.save(tmp_path / "start.h5", save_format="h5")
    args = ("--model", "resnet8", "--data", colour_npz, "--recipe", "seed", "--epochs", "1", "--set", "lr=1e-9")
    result = run_module("train", *args, "--init", tmp_path / "start.h5", "--name", "tuned", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "tuned.train.json").read_text())
    assert report["init"]["path"] == "start.h5" and len(report["init"]["sha256"]) == 64
    import tensorflow as tf

    tuned = tf.keras.models.load_model(tmp_path / "out" / "tuned.h5", compile=False)
    kernels = [w for w in tuned.get_weights() if w.ndim == 4]
    start_kernels = [w for w in start.get_weights() if w.ndim == 4]
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(kernels, start_kernels, strict=True)), "lr 1e-9 keeps the start"


def test_init_from_another_architecture_is_refused(tmp_path: Path, colour_npz: Path) -> None:
    from train.models import build_model

    build_model("colour_bnn", (16, 16, 3), 3).save(tmp_path / "other.h5", save_format="h5")
    init = ("--init", tmp_path / "other.h5")
    result = run_module("train", "--model", "resnet8", "--data", colour_npz, *init, "--out", tmp_path / "o")
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and "do not fit resnet8" in lines[0], lines


def test_a_bad_name_is_refused_before_training(tmp_path: Path, colour_npz: Path) -> None:
    result = run_module("train", "--model", "resnet8", "--data", colour_npz, "--name", "../escape", "--out", tmp_path / "o")
    assert result.returncode == 2 and "--name '../escape'" in stderr_lines(result)[0]


def test_bfloat16_training_saves_a_float32_model(tmp_path: Path, colour_npz: Path) -> None:
    """precision=mixed_bfloat16 computes in bfloat16 while training; what is saved and measured is float32."""
    args = ("--model", "colour_bnn", "--data", colour_npz, "--recipe", "fast", "--epochs", "1")
    result = run_module("train", *args, "--set", "precision=mixed_bfloat16", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    import tensorflow as tf

    from train.models import build_model

    saved = tf.keras.models.load_model(tmp_path / "colour_bnn.h5", compile=False)
    assert {layer.dtype for layer in saved.layers} == {"float32"}
    plain = build_model("colour_bnn", (16, 16, 3), 3)
    assert [w.shape for w in saved.get_weights()] == [w.shape for w in plain.get_weights()]
    assert json.loads((tmp_path / "colour_bnn.train.json").read_text())["recipe"]["precision"] == "mixed_bfloat16"
    bad = run_module("train", *args, "--set", "precision=float16", "--out", tmp_path / "bad")
    assert bad.returncode == 2 and "precision 'float16' is not one of float32, mixed_bfloat16" in bad.stderr
