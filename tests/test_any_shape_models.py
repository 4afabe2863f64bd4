"""Models of other shapes through convert and the emulator's keras, tflite (+ TFLite-Micro) and lce backends.

Two ``.npz`` datasets written here, each with a tiny model trained for two short epochs on it:

* ``kws``: 49x10x1 float32 "MFCC" frames, 12 classes (``num_classes`` given in the file), a
  Larq BNN (binary convs and dense, max-pool, batch norm) on the float input;
* ``cifar``: 32x32x3 uint8 images, 10 classes, a float CNN that rescales its raw pixels
  (conv stride 2, global average pooling, dense): float, int8 and LCE flatbuffers.

Each class is a fixed random pattern (kws) or colour (cifar) plus noise, so two epochs learn it; the checks are
agreement with Keras, what the reports record (shape, dtype, classes) and the one-line
refusals when a model and a dataset do not fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import emulator  # noqa: F401  (legacy Keras before TensorFlow loads)

TRAIN, TEST = 240, 120


def _patterns(rng: np.random.Generator, classes: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.normal(0.0, 1.0, (classes, *shape))


def kws_data(folder: Path) -> Path:
    rng = np.random.default_rng(49)
    patterns = _patterns(rng, 12, (49, 10, 1))
    y = rng.integers(0, 12, TRAIN + TEST)
    x = (patterns[y] + rng.normal(0.0, 0.7, (len(y), 49, 10, 1))).astype(np.float32)
    path = folder / "kws.npz"
    np.savez(path, x_train=x[:TRAIN], y_train=y[:TRAIN], x_test=x[TRAIN:], y_test=y[TRAIN:], num_classes=12)
    return path


def cifar_data(folder: Path) -> Path:
    rng = np.random.default_rng(32)
    colours = rng.uniform(-1.0, 1.0, (10, 1, 1, 3))  # what global average pooling keeps
    y = rng.integers(0, 10, TRAIN + TEST)
    x = np.clip(128 + 90 * colours[y] + rng.normal(0.0, 25.0, (len(y), 32, 32, 3)), 0, 255).astype(np.uint8)
    path = folder / "cifar.npz"
    np.savez(path, x_train=x[:TRAIN], y_train=y[:TRAIN], x_test=x[TRAIN:], y_test=y[TRAIN:])
    return path


def kws_model():
    import larq as lq
    import tensorflow as tf

    binary = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip"}
    binary["use_bias"] = False
    return tf.keras.Sequential(
        [
            tf.keras.Input((49, 10, 1)),
            lq.layers.QuantConv2D(8, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False),
            tf.keras.layers.MaxPooling2D(2),
            tf.keras.layers.BatchNormalization(scale=False),
            lq.layers.QuantConv2D(16, 3, **binary),
            tf.keras.layers.MaxPooling2D(2),
            tf.keras.layers.BatchNormalization(scale=False),
            tf.keras.layers.Flatten(),
            lq.layers.QuantDense(12, **binary),
            tf.keras.layers.BatchNormalization(scale=False),
            tf.keras.layers.Activation("softmax"),
        ],
        name="kws",
    )


def cifar_model():
    import tensorflow as tf

    return tf.keras.Sequential(
        [
            tf.keras.Input((32, 32, 3)),
            tf.keras.layers.Rescaling(1.0 / 127.5, offset=-1.0),
            tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            tf.keras.layers.GlobalAveragePooling2D(),
            tf.keras.layers.Dense(10, activation="softmax"),
        ],
        name="cifar",
    )


def _train(model, data: Path, path: Path) -> Path:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    with np.load(data) as npz:
        x, y = npz["x_train"].astype(np.float32), npz["y_train"]
    model.compile(optimizer=tf.keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.save(path, save_format="h5")
    return path


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """name -> {"data": .npz, "h5": model}: trained once per module, converted by ``python -m convert`` (in-process)."""
    from convert.cli import main as convert

    folder = tmp_path_factory.mktemp("any_shape")
    out = {}
    for name, make_data, make_model in (("kws", kws_data, kws_model), ("cifar", cifar_data, cifar_model)):
        data = make_data(folder)
        h5 = _train(make_model(), data, folder / f"{name}.h5")
        assert convert([str(h5), "--data", str(data), "--check", str(TEST), "--calibration", "100"]) == 0
        out[name] = {"data": data, "h5": h5}
    return out


def _emulate(*args: object) -> int:
    from emulator.cli import main

    return main([str(arg) for arg in args])


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def test_convert_records_the_dataset_and_writes_every_format(zoo: dict[str, dict[str, Path]]) -> None:
    kws = _report(zoo["kws"]["h5"].with_name("kws.convert.json"))
    assert kws["check"]["example_shape"] == [49, 10, 1] and kws["check"]["dtype"] == "float32"
    assert kws["check"]["num_classes"] == 12 and kws["check"]["images"] == TEST
    assert kws["formats"]["int8"]["skipped"] and kws["formats"]["lce"]["agreement"] >= 0.999
    assert "LceBconv2d" in kws["formats"]["lce"]["ops"]
    cifar = _report(zoo["cifar"]["h5"].with_name("cifar.convert.json"))
    assert cifar["check"]["example_shape"] == [32, 32, 3] and cifar["check"]["num_classes"] == 10
    assert cifar["formats"]["int8"]["input_type"] == "INT8" and cifar["calibration_images"] == 100
    assert {"float", "int8", "lce"} <= set(cifar["formats"])


@pytest.mark.parametrize(
    ("name", "artifact", "backend"),
    [
        ("kws", "kws.h5", "keras"),
        ("kws", "kws.lce.tflite", "lce"),
        ("kws", "kws.tflite", "tflite"),
        ("cifar", "cifar.tflite", "tflite"),
        ("cifar", "cifar.int8.tflite", "tflite"),
        ("cifar", "cifar.lce.tflite", "tflite"),  # a float model's LCE flatbuffer has builtin ops only
    ],
)
def test_emulator_runs_each_artifact_on_its_own_data(
    zoo: dict[str, dict[str, Path]], tmp_path: Path, name: str, artifact: str, backend: str
) -> None:
    path = zoo[name]["h5"].with_name(artifact)
    out = tmp_path / "report.json"
    assert _emulate(path, "--data", zoo[name]["data"], "--json", out) == 0
    report = _report(out)
    classes, shape = (12, [49, 10, 1]) if name == "kws" else (10, [32, 32, 3])
    assert report["backend"] == backend and report["images"] == TEST
    assert report["num_classes"] == classes and report["input_shape"] == shape
    if backend != "keras":
        assert report["reference"]["backend"] == "keras"
        floor = 0.9 if artifact.endswith(".int8.tflite") else 0.99
        assert report["agreement"] >= floor, report["agreement"]
    if name == "cifar" and backend == "tflite":  # the auto backend cross-checks with TFLite-Micro
        assert report["tflm"]["agreement_with_tflite"] == 1.0
    if artifact == "kws.tflite":  # a Larq model's float flatbuffer has SIGN, which TFLite-Micro lacks
        assert report["tflm"]["skipped"] is True and "TFLite-Micro has no kernel for SIGN" in report["tflm"]["note"]


def _one_line(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    capsys.readouterr()
    code = _emulate(*args)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, (args, code, lines)
    return lines[0]


def test_emulator_refuses_data_the_model_does_not_take(
    zoo: dict[str, dict[str, Path]], tmp_path: Path, mnist_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lce = zoo["kws"]["h5"].with_name("kws.lce.tflite")
    line = _one_line(capsys, lce, "--data", mnist_path, "--limit", "5")
    assert "model input [1, 49, 10, 1] (490 values) does not take the dataset's 28x28 examples (784 values)" in line
    with np.load(zoo["cifar"]["data"]) as npz:
        x, y = npz["x_test"], npz["y_test"]
    two = tmp_path / "two.npz"
    np.savez(two, x_test=x, y_test=y % 2)  # a 2-class dataset for a 10-class model
    line = _one_line(capsys, zoo["cifar"]["h5"].with_name("cifar.tflite"), "--data", two)
    assert "gives 10 class scores but the dataset has 2 classes" in line
    line = _one_line(capsys, zoo["cifar"]["h5"], "--data", two)
    assert "model output shape (10,) is not the dataset's 2 class scores" in line
    empty = tmp_path / "empty.npz"
    np.savez(empty, x_test=x[:0], y_test=y[:0])
    assert "the test set is empty" in _one_line(capsys, zoo["cifar"]["h5"], "--data", empty)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(zoo["cifar"]["data"].read_bytes()[:1000])
    assert "not a readable .npz archive" in _one_line(capsys, zoo["cifar"]["h5"], "--data", corrupt)
    assert not list(tmp_path.glob("*.emulate.json")) and not list(zoo["cifar"]["h5"].parent.glob("*.emulate.json"))


def test_a_two_class_model_on_mnist_is_refused(tmp_path: Path, mnist_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tensorflow as tf

    from convert.converter import to_tflite_float

    model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(2)])
    path = tmp_path / "person.tflite"
    path.write_bytes(to_tflite_float(model))
    line = _one_line(capsys, path, "--data", mnist_path, "--limit", "5")
    assert "model output [1, 2] gives 2 class scores but the dataset has 10 classes" in line


def test_convert_refusals_name_both_sides(
    zoo: dict[str, dict[str, Path]], tmp_path: Path, mnist_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from convert.cli import main as convert

    with np.load(zoo["cifar"]["data"]) as npz:
        test_only = tmp_path / "test_only.npz"
        np.savez(test_only, x_test=npz["x_test"], y_test=npz["y_test"])
    cases = [
        ([zoo["kws"]["h5"], "--data", mnist_path], "model input shape (49, 10, 1) does not take the dataset's 28x28 examples"),
        ([zoo["kws"]["h5"], "--data", zoo["kws"]["data"], "--input-range=-1,1"], "--input-range maps raw 8-bit values"),
        ([zoo["cifar"]["h5"], "--data", test_only], "no training examples (x_train, y_train) to calibrate int8 on"),
    ]
    out = tmp_path / "out"
    out.mkdir()
    for args, message in cases:
        capsys.readouterr()
        code = convert([str(arg) for arg in (*args, "--out", out, "--check", "10")])
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, lines)
        assert list(out.iterdir()) == []
