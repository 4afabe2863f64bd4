"""convert.interpreters and convert.keras_io: runners agree with Keras, loading fails cleanly."""

from __future__ import annotations

import numpy as np
import pytest

from convert.interpreters import dequantize, prepare_images, quantize
from train.errors import InputError

N = 100


def test_quantize_matches_the_affine_formula():
    values = np.array([-1000.0, 0.0, 0.4, 0.6, 1.0, 127.0, 255.0, 1000.0])
    q = quantize(values, scale=1.0, zero_point=-128, dtype=np.int8)
    assert q.dtype == np.int8
    assert q.tolist() == [-128, -128, -128, -127, -127, -1, 127, 127]
    np.testing.assert_allclose(dequantize(q, 0.5, 3), 0.5 * (q.astype(np.float64) - 3))
    assert quantize(np.array([-5.0, 300.0]), 1.0, 0, np.uint8).tolist() == [0, 255]


def test_prepare_images_accepts_image_shapes_and_rejects_others():
    images = np.arange(2 * 784, dtype=np.uint8).reshape(2, 28, 28)
    for shaped in (images, images.reshape(2, 784), images[..., None]):
        out = prepare_images(shaped)
        assert out.dtype == np.float32 and out.shape == (2, 784)
        np.testing.assert_array_equal(out, images.reshape(2, 784))
    for bad in (np.zeros((2, 27, 28)), np.zeros((0, 28, 28)), np.zeros(784), np.array([["a"] * 784])):
        with pytest.raises(InputError):
            prepare_images(bad)


def test_runners_agree_with_keras(tiny_models, tiny_flatbuffers, mnist):
    from convert.interpreters import run_flatbuffer, run_keras, run_lce, run_tflite
    from convert.keras_io import load_keras_model

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
    np.testing.assert_array_equal(run_flatbuffer(paths["int8"].read_bytes(), images), int8)

    bcnn = run_keras(load_keras_model(tiny_models["bcnn"]), images)
    lce_bytes = tiny_flatbuffers["bcnn"]["lce"].read_bytes()
    lce = run_lce(lce_bytes, images)
    assert np.mean(lce.argmax(1) == bcnn.argmax(1)) >= 0.99
    np.testing.assert_array_equal(run_flatbuffer(lce_bytes, images), lce)
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
    check_image_model(model, "mlp.h5")


def test_check_image_model_rejects_other_shapes():
    import tensorflow as tf

    from convert.keras_io import check_image_model

    wide = tf.keras.Sequential([tf.keras.layers.Dense(10, input_shape=(100,))])
    with pytest.raises(InputError, match="28x28"):
        check_image_model(wide, "wide.h5")
    five = tf.keras.Sequential([tf.keras.layers.Dense(5, input_shape=(784,))])
    with pytest.raises(InputError, match="10 class scores"):
        check_image_model(five, "five.h5")
