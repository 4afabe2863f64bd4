"""``python -m convert``: each format on tiny trained models, --input-range, the check gate, bad inputs.

References are independent of convert's own runners: the flatbuffers are run here with the
raw ``tf.lite.Interpreter`` / LCE ``Interpreter`` APIs and compared with the Keras model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_module, stderr_lines

from pipeline.artifacts import sha256_file

CHECK = 200


def _report(paths: dict[str, Path]) -> dict:
    return json.loads(paths["report"].read_text())


def _keras(h5: Path):
    import larq  # noqa: F401
    import tensorflow as tf

    return tf.keras.models.load_model(h5, compile=False)


def _lce_predict(path: Path, images: np.ndarray) -> np.ndarray:
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(path.read_bytes()).predict(images.astype(np.float32)[..., None])


def _tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """Raw tf.lite API, quantizing by hand: an independent reference for pipeline.interpreters."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scores = []
    for image in images.astype(np.float32):
        x = image.reshape(inp["shape"])
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"]).reshape(-1).astype(np.float32)
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = scale * (y - zero)
        scores.append(y)
    return np.stack(scores)


def _check_written(entry: dict, fmt: str, scores: np.ndarray, labels: np.ndarray, keras: np.ndarray) -> None:
    """The file as recorded, and its accuracy and agreement as computed here from ``scores``
    (an independent run of the written flatbuffer on the same CHECK test images)."""
    path = Path(entry["path"])
    assert path.is_file(), fmt
    assert entry["bytes"] == path.stat().st_size
    assert entry["sha256"] == sha256_file(path)
    assert entry["images"] == CHECK
    assert entry["ops"] == sorted(set(entry["ops"]))
    assert entry["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == labels)), fmt
    assert entry["agreement"] == pytest.approx(np.mean(scores.argmax(1) == keras.argmax(1))), fmt


def test_bcnn_writes_float_and_lce_and_skips_int8(tiny_models, tiny_flatbuffers, mnist):
    paths = tiny_flatbuffers["bcnn"]
    report = _report(paths)
    assert set(report["formats"]) == {"float", "int8", "lce"}
    assert report["formats"]["int8"]["skipped"] is True
    assert "binary" in report["formats"]["int8"]["reason"]
    assert "int8" not in paths and not (paths["report"].parent / "bcnn.int8.tflite").exists()
    assert report["source"]["sha256"] == sha256_file(tiny_models["bcnn"])
    assert report["version"] and report["input_range"] is None
    assert len(report["binary_layers"]) == 5  # QuantConv2D x3 and QuantDense x2
    images, labels = mnist.x_test[:CHECK], mnist.y_test[:CHECK]
    keras = _keras(tiny_models["bcnn"]).predict(images.astype(np.float32)[..., None], verbose=0)
    assert report["keras"]["accuracy"] == pytest.approx(np.mean(keras.argmax(1) == labels))
    independent = {"float": _tflite_predict(paths["float"], images), "lce": _lce_predict(paths["lce"], images)}
    for fmt, scores in independent.items():
        entry = report["formats"][fmt]
        _check_written(entry, fmt, scores, labels, keras)
        assert entry["agreement"] >= 0.999 and entry["passed"] is True
        assert 0 <= entry["excused_images"] <= entry["near_tie_images"] < CHECK
    lce_ops = report["formats"]["lce"]["ops"]
    assert {"LceBconv2d", "LceQuantize"} <= set(lce_ops)
    assert not any(op.startswith("Lce") for op in report["formats"]["float"]["ops"])


def test_cnn_writes_all_three_formats(tiny_models, tiny_flatbuffers, mnist):
    paths = tiny_flatbuffers["cnn"]
    report = _report(paths)
    assert report["binary_layers"] == [] and report["calibration_images"] == 100
    images, labels = mnist.x_test[:CHECK], mnist.y_test[:CHECK]
    keras = _keras(tiny_models["cnn"]).predict(images.astype(np.float32)[..., None], verbose=0)
    scores = _tflite_predict(paths["int8"], images)
    floats = _tflite_predict(paths["float"], images)
    independent = {"float": floats, "int8": scores, "lce": _lce_predict(paths["lce"], images)}
    for fmt, fmt_scores in independent.items():
        _check_written(report["formats"][fmt], fmt, fmt_scores, labels, keras)
    int8 = report["formats"]["int8"]
    assert int8["input_type"] == "INT8" and int8["output_type"] == "INT8"
    assert report["formats"]["float"]["input_type"] == "FLOAT32"
    assert int8["bytes"] < report["formats"]["float"]["bytes"] / 2  # int8 weights are a quarter of float32
    assert "passed" not in int8  # reported, not gated
    assert np.abs(scores - keras).max() < 0.02  # dequantized softmax close to Keras' (steps of 1/256)
    np.testing.assert_allclose(floats, keras, atol=1e-4)


def _tutorial_model(mnist, path: Path) -> None:
    """The zoo BCNN without its Rescaling layer, trained briefly on pixels / 127.5 - 1 (Larq's tutorial)."""
    import tensorflow as tf

    from train.models import build_bcnn

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.layers.InputLayer((28, 28, 1)), *build_bcnn().layers[1:]])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = mnist.x_train[:2000, ..., None].astype(np.float32) / 127.5 - 1
    model.fit(x, mnist.y_train[:2000], epochs=1, batch_size=64, verbose=0)
    model.save(path, save_format="h5")


def test_input_range_makes_flatbuffers_take_raw_pixels(tmp_path, mnist, mnist_path):
    import tensorflow as tf

    h5 = tmp_path / "tutorial.h5"
    _tutorial_model(mnist, h5)
    out = tmp_path / "out"
    args = ("--out", out, "--data", mnist_path, "--check", CHECK, "--formats", "lce")
    result = run_module("convert", h5, "--input-range", "-1,1", *args)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "tutorial.convert.json").read_text())
    assert report["input_range"] == [-1.0, 1.0]
    assert set(report["formats"]) == {"lce"} and not (out / "tutorial.tflite").exists()
    assert not any(line.split()[:1] == ["int8"] for line in result.stdout.splitlines())  # no int8 row
    # the printed table carries the report's figures
    from convert.report import render_table

    assert render_table(report) in result.stdout

    images, labels = mnist.x_test[:CHECK], mnist.y_test[:CHECK]
    model = tf.keras.models.load_model(h5, compile=False)
    keras = model.predict(images[..., None].astype(np.float32) / 127.5 - 1, verbose=0).argmax(1)
    lce = _lce_predict(out / "tutorial.lce.tflite", images).argmax(1)  # raw 0..255 pixels in
    assert np.mean(lce == keras) >= 0.999
    assert report["formats"]["lce"]["accuracy"] == pytest.approx(np.mean(lce == labels))
    assert report["formats"]["lce"]["accuracy"] > 0.5  # trained: the scaling really is the model's
    # control: without --input-range, raw pixels go into a model that expects [-1, 1]
    unscaled = model.predict(images[..., None].astype(np.float32), verbose=0).argmax(1)
    assert np.mean(unscaled == labels) < report["formats"]["lce"]["accuracy"]


def test_failed_check_writes_nothing(tiny_models, mnist_path, tmp_path, monkeypatch, capsys):
    """A format that agrees with Keras on < 99.9% exits 1 naming it, and OUT stays empty."""
    import pipeline.interpreters
    from convert.cli import main

    def wrong(model_bytes, images, num_threads=1):
        return np.eye(10, dtype=np.float32)[(np.arange(len(images)) % 10)]

    monkeypatch.setattr(pipeline.interpreters, "run_tflite", wrong)
    out = tmp_path / "out"
    code = main([str(tiny_models["mlp"]), "--out", str(out), "--formats", "float", "--check", "50", "--data", str(mnist_path)])
    captured = capsys.readouterr()
    assert code == 1
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "float agrees with Keras on" in lines[0] and "nothing written" in lines[0]
    assert "FAIL" in captured.out
    assert not out.exists() or not any(out.iterdir())


def test_scores_are_gated_too_and_nan_never_agrees():
    """Argmax agreement alone passed an all-NaN model (argmax of NaN is 0 on both sides) and scores
    that differ everywhere but keep their order. The gate compares the scores as well."""
    from convert.report import MIN_AGREEMENT, FormatResult, nonfinite_rows, score_agreement

    keras = np.array([[0.1, 0.9], [0.7, 0.3], [0.4, 0.6]] * 400, np.float32)
    assert score_agreement(keras + 5e-4, keras) == 1.0
    shifted = keras.copy()
    shifted[:, 1] += 0.05  # same argmax on every row, other scores
    assert score_agreement(shifted, keras) == pytest.approx(0.0)
    nan = np.full_like(keras, np.nan)
    assert score_agreement(nan, nan) == 0.0 and nonfinite_rows(nan) == len(nan) and nonfinite_rows(keras) == 0
    logits = keras * 1000.0  # tolerance is relative for large scores
    assert score_agreement(logits + 0.5, logits) == 1.0 and score_agreement(logits + 5.0, logits) == 0.0
    ok = FormatResult("float", agreement=1.0, score_agreement=1.0)
    assert ok.passed and ok.failure() == ""
    drifted = FormatResult("float", agreement=1.0, score_agreement=0.5)
    assert not drifted.passed and "50.00% (scores within 0.001)" in drifted.failure()
    all_nan = FormatResult("lce", agreement=1.0, score_agreement=0.0, nonfinite=1200)
    assert not all_nan.passed and "scores NaN or infinite on 1200 images" in all_nan.failure()
    assert FormatResult("int8", agreement=0.5, score_agreement=0.1, nonfinite=3).passed  # int8: reported, not gated
    assert FormatResult("float", agreement=MIN_AGREEMENT, score_agreement=MIN_AGREEMENT).passed


def test_a_score_difference_is_excused_only_on_a_near_tie():
    from convert.report import score_agreement, score_rows

    keras = np.array([[0.1, 0.9], [0.7, 0.3], [0.4, 0.6], [0.5, 0.5]], np.float32)
    flipped = keras.copy()
    flipped[:2] += [[0.05, -0.05], [-0.05, 0.05]]  # a bit flipped upstream: rows 0 and 1 move
    ties = np.array([True, False, True, False])
    assert score_rows(flipped, keras).tolist() == [False, False, True, True]
    assert score_agreement(flipped, keras) == 0.5
    assert score_agreement(flipped, keras, excused=ties) == 0.75  # row 0 excused, row 1 not
    nan = keras.copy()
    nan[0] = np.nan
    assert score_agreement(nan, keras, excused=ties) == 0.75  # a NaN score is never excused


def test_near_ties_are_binarized_values_within_float_rounding_of_zero():
    """A Dense(1) feeding a binarized layer: x0 - x1 is 1.5 (the scale), 0 (exact, not a tie:
    both sides compute 0), 2**-23 = 1.2e-7 (a tie), 0.01 (not one)."""
    import larq as lq
    import tensorflow as tf

    from convert.near_ties import near_tie_rows, scaled_inputs

    model = tf.keras.Sequential(
        [
            tf.keras.Input((2,)),
            tf.keras.layers.Dense(1, use_bias=False, kernel_initializer=tf.keras.initializers.Constant([[1.0], [-1.0]])),
            lq.layers.QuantDense(2, input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False),
        ]
    )
    inputs = np.array([[2.0, 0.5], [1.0, 1.0], [1.0, 1.0 - 2.0**-23], [1.0, 0.99]], np.float32)
    assert near_tie_rows(model, inputs).tolist() == [False, False, True, False]
    assert near_tie_rows(model, inputs, relative=1e-2).tolist() == [False, False, True, True]
    plain = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2)])  # nothing binarized
    assert not near_tie_rows(plain, inputs).any()
    # --input-range: the model as loaded sees the prepended Rescaling's values, bit for bit
    pixels = np.arange(256, dtype=np.float32).reshape(128, 2)
    rescaled = tf.keras.layers.Rescaling(2 / 255.0, offset=-1.0)(pixels).numpy()
    np.testing.assert_array_equal(scaled_inputs(pixels, (-1.0, 1.0)), rescaled)
    assert scaled_inputs(pixels, None) is pixels


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, tiny_models, tiny_flatbuffers) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad_inputs")
    text = folder / "text.h5"
    text.write_text("this is not a model\n")
    h5 = tiny_models["mlp"].read_bytes()
    truncated = folder / "truncated.h5"
    truncated.write_bytes(h5[: len(h5) // 2])
    import h5py

    not_keras = folder / "data.h5"
    with h5py.File(not_keras, "w") as handle:
        handle["x"] = np.arange(10)
    tflite = tiny_flatbuffers["cnn"]["float"].read_bytes()
    truncated_tflite = folder / "truncated.tflite"
    truncated_tflite.write_bytes(tflite[:1000])
    return {
        "missing": folder / "missing.h5",
        "text": text,
        "truncated": truncated,
        "not_keras": not_keras,
        "truncated_tflite": truncated_tflite,
        "folder": folder,
    }


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("missing", (), "no such file"),
        ("text", (), "not an HDF5 file"),
        ("truncated", (), "not a loadable Keras model"),
        ("not_keras", (), "without a Keras model config"),
        ("truncated_tflite", (), "not an HDF5 file"),
        ("folder", (), "is not a file"),
        ("text", ("--formats", "float,int4"), "unknown format 'int4'"),
        ("text", ("--formats", ","), "--formats"),
        ("text", ("--input-range", "1,0"), "LO < HI"),
        ("text", ("--input-range", "-1"), "LO,HI"),
        ("text", ("--input-range", "nan,1"), "LO < HI"),
        ("text", ("--check", "0"), "positive integer"),
        ("text", ("--calibration", "x"), "positive integer"),
    ],
)
def test_bad_input_exits_2_with_one_line(bad_files, tmp_path, mnist_path, case, extra, message):
    out = tmp_path / "out"
    out.mkdir()
    result = run_module("convert", bad_files[case], "--out", out, "--data", mnist_path, *extra)
    lines = stderr_lines(result)
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("python -m convert: error:") and message in lines[0]
    assert list(out.iterdir()) == []
    assert result.stdout == ""


def test_check_larger_than_test_set_and_out_file(tiny_models, tmp_path, mnist_path):
    result = run_module("convert", tiny_models["mlp"], "--out", tmp_path, "--data", mnist_path, "--check", "10001")
    assert result.returncode == 2 and "exceeds the 10000 test examples" in stderr_lines(result)[0]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_module("convert", tiny_models["mlp"], "--out", blocker, "--data", mnist_path)
    assert result.returncode == 2 and len(stderr_lines(result)) == 1 and "not a folder" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_help_and_input_range_with_negative_value():
    from convert.cli import _join_negative_values, parse_formats, parse_input_range

    assert _join_negative_values(["m.h5", "--input-range", "-1,1"]) == ["m.h5", "--input-range=-1,1"]
    assert parse_input_range("-1,1") == (-1.0, 1.0)
    assert parse_formats("lce,float,lce") == ("float", "lce")
    result = run_module("convert", "--help")
    assert result.returncode == 0 and "--input-range" in result.stdout


def test_lce_conversion_of_an_uncompiled_model_prints_no_tensorflow_warning():
    """LCE's converter saves the model first; Keras warns about every uncompiled one (the search's
    untrained prebuilds printed it on stderr). The logger's level comes back afterwards."""
    import logging

    import larq as lq
    import tensorflow as tf

    from convert.converter import to_lce

    model = tf.keras.Sequential(
        [
            tf.keras.layers.Flatten(input_shape=(4, 4, 1)),
            lq.layers.QuantDense(32, input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False),
        ]
    )
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = tf.get_logger()
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel("WARNING")
    try:
        assert to_lce(model)[4:8] == b"TFL3"
        assert logger.level == logging.WARNING
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)  # the other tests see the level they had
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []


def test_the_defaults_take_every_example_of_a_small_dataset(tiny_models, tmp_path, mnist):
    """--check and --calibration default to 1,000 and 500, or all a dataset has when it has fewer."""
    data = tmp_path / "small.npz"
    np.savez(data, x_train=mnist.x_train[:40], y_train=mnist.y_train[:40], x_test=mnist.x_test[:30], y_test=mnist.y_test[:30])
    result = run_module("convert", tiny_models["cnn"], "--out", tmp_path / "out", "--data", data, "--formats", "float,int8")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "cnn.convert.json").read_text())
    assert report["check"]["images"] == 30 and report["calibration_images"] == 40
