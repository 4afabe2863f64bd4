"""pipeline.interpreters and convert.keras_io: runners agree with Keras, timed runs equal untimed ones,
loading fails cleanly."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.interpreters import TimedRun, dequantize, median_us, prepare_inputs, quantize, time_calls

N = 100


def test_quantize_matches_the_affine_formula():
    values = np.array([-1000.0, 0.0, 0.4, 0.6, 1.0, 127.0, 255.0, 1000.0])
    q = quantize(values, scale=1.0, zero_point=-128, dtype=np.int8)
    assert q.dtype == np.int8
    assert q.tolist() == [-128, -128, -128, -127, -127, -1, 127, 127]
    np.testing.assert_allclose(dequantize(q, 0.5, 3), 0.5 * (q.astype(np.float64) - 3))
    assert quantize(np.array([-5.0, 300.0]), 1.0, 0, np.uint8).tolist() == [0, 255]


def test_prepare_inputs_takes_any_row_shape_that_fits_the_model():
    images = np.arange(2 * 784, dtype=np.uint8).reshape(2, 28, 28)
    for shaped in (images, images.reshape(2, 784), images[..., None]):
        out = prepare_inputs(shaped, (1, 28, 28, 1))
        assert out.dtype == np.float32 and out.shape == (2, 784)
        np.testing.assert_array_equal(out, images.reshape(2, 784))
    assert prepare_inputs(np.zeros((3, 49, 10, 1)), (1, 49, 10, 1)).shape == (3, 490)
    for bad in (np.zeros((2, 27, 28)), np.zeros((0, 28, 28)), np.zeros(784), np.array([["a"] * 784])):
        with pytest.raises(InputError):
            prepare_inputs(bad, (1, 28, 28, 1))


def test_runners_agree_with_keras(tiny_models, tiny_flatbuffers, mnist):
    from convert.keras_io import load_keras_model
    from pipeline.interpreters import run_keras, run_lce, run_tflite

    images = mnist.x_test[:N]
    keras = run_keras(load_keras_model(tiny_models["cnn"]), images)
    assert keras.shape == (N, 10) and keras.dtype == np.float32
    np.testing.assert_allclose(keras.sum(axis=1), 1.0, rtol=1e-5)  # softmax output
    paths = tiny_flatbuffers["cnn"]
    floats = run_tflite(paths["float"].read_bytes(), images)
    np.testing.assert_allclose(floats, keras, atol=1e-4)
    np.testing.assert_allclose(run_lce(paths["float"].read_bytes(), images), keras, atol=1e-4)
    int8 = run_tflite(paths["int8"].read_bytes(), images)
    assert np.abs(int8 - keras).max() < 0.02  # dequantized softmax: steps of 1/256
    top2 = np.sort(keras, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.04  # where Keras' winner is clear, int8 picks it too
    assert clear.sum() >= 10
    np.testing.assert_array_equal(int8.argmax(1)[clear], keras.argmax(1)[clear])

    bcnn = run_keras(load_keras_model(tiny_models["bcnn"]), images)
    lce_bytes = tiny_flatbuffers["bcnn"]["lce"].read_bytes()
    lce = run_lce(lce_bytes, images)
    assert np.mean(lce.argmax(1) == bcnn.argmax(1)) >= 0.99
    with pytest.raises(InputError, match="do not fit the model input"):
        run_lce(lce_bytes, np.zeros((2, 32, 32, 3)))
    with pytest.raises(InputError, match="cannot load"):
        run_tflite(lce_bytes, images[:2])  # LCE custom ops need the LCE interpreter
    with pytest.raises(InputError):
        run_tflite(b"not a model", images[:2])


def test_with_input_range_maps_0_and_255_to_lo_and_hi():
    import tensorflow as tf

    from convert.keras_io import with_input_range

    identity = tf.keras.Sequential([tf.keras.layers.Reshape((784,), input_shape=(28, 28, 1))], name="identity")
    wrapped = with_input_range(identity, -1.0, 1.0)
    pixels = np.linspace(0, 255, 784, dtype=np.float32).reshape(1, 28, 28, 1)
    np.testing.assert_allclose(wrapped(pixels).numpy().ravel(), pixels.ravel() / 127.5 - 1, atol=1e-6)
    assert wrapped.name == "identity" and wrapped.input_shape == (None, 28, 28, 1)
    with pytest.raises(InputError):
        with_input_range(identity, 1.0, 1.0)


def test_load_keras_model_rejects_every_truncation(tiny_models, tmp_path):
    from convert.keras_io import check_image_model, load_keras_model

    data = tiny_models["mlp"].read_bytes()
    path = tmp_path / "cut.h5"
    for cut in (0, 7, 8, 100, 2048, len(data) // 3, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(InputError) as err:
            load_keras_model(path)
        assert "\n" not in str(err.value)
    model = load_keras_model(tiny_models["mlp"])
    check_image_model(model, "mlp.h5", (28, 28), 10)


def test_check_image_model_takes_the_dataset_shape_and_class_count():
    import tensorflow as tf

    from convert.keras_io import check_image_model

    wide = tf.keras.Sequential([tf.keras.layers.Dense(12, input_shape=(490,))])
    check_image_model(wide, "wide.h5", (49, 10, 1), 12)  # same number of values, any layout
    check_image_model(wide, "wide.h5", (490,), 12)
    with pytest.raises(InputError, match=r"input shape \(490,\) does not take the dataset's 28x28 examples \(784 values"):
        check_image_model(wide, "wide.h5", (28, 28), 12)
    with pytest.raises(InputError, match=r"output shape \(12,\) is not the dataset's 10 class scores"):
        check_image_model(wide, "wide.h5", (49, 10, 1), 10)
    two = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(96, 96, 1)), tf.keras.layers.Dense(2)])
    check_image_model(two, "person.h5", (96, 96, 1), 2)


def test_time_calls_warms_up_then_times_every_input_once():
    calls = []

    def call(item: np.ndarray) -> np.ndarray:
        calls.append(int(item[0]))
        return item * 2

    feed = np.arange(10).reshape(5, 2)
    run = time_calls(call, feed, warmup=3)
    assert calls == [0, 2, 4, 0, 2, 4, 6, 8]  # 3 warm-up calls, then each input once, in order
    np.testing.assert_array_equal(run.scores, feed * 2)
    assert run.nanoseconds.shape == (5,) and run.nanoseconds.dtype == np.int64 and (run.nanoseconds >= 0).all()
    assert run.warmup == 3
    assert time_calls(call, feed[:2], warmup=50).warmup == 2


def test_median_us():
    assert median_us(np.array([1000, 3000, 2000])) == 2.0
    assert TimedRun(np.zeros((2, 1)), np.array([4000, 6000]), 0).median_us == 5.0
    with pytest.raises(ValueError):
        median_us(np.array([]))


def test_timed_runs_equal_untimed_runs_and_tflm_equals_tflite_on_int8(tiny_cnn_tflite, mnist):
    from pipeline.interpreters import run_lce, run_tflite, run_tflm, time_lce, time_tflite, time_tflm

    images = mnist.x_test[:30]
    for path in (tiny_cnn_tflite["float"], tiny_cnn_tflite["int8"]):
        data = path.read_bytes()
        timed = time_tflite(data, images, warmup=2)
        assert timed.scores.shape == (30, 10) and timed.scores.dtype == np.float32 and timed.nanoseconds.shape == (30,)
        np.testing.assert_array_equal(timed.scores, run_tflite(data, images))  # XNNPACK, one thread, both
        builtin = time_tflite(data, images, delegates=False).scores
        np.testing.assert_array_equal(builtin, run_tflite(data, images, delegates=False))
        tflm = run_tflm(data, images)
        np.testing.assert_array_equal(time_tflm(data, images).scores, tflm)
        np.testing.assert_array_equal(time_lce(data, images).scores, run_lce(data, images))  # LCE runs builtins too
        if path == tiny_cnn_tflite["int8"]:  # the reference kernels of both are integer-exact
            np.testing.assert_array_equal(tflm, builtin)
        else:
            np.testing.assert_allclose(tflm, builtin, atol=1e-5)
    with pytest.raises(InputError, match="cannot load"):
        time_tflite(b"TFL3 but not a model", images[:2])
