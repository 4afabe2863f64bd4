"""The project's Larq quantizers (BinaryConnect's stochastic one, 8-bit fixed point) against plain NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)

SAMPLES = 20_000
# The mean of SAMPLES draws of +-1 with mean m has a standard deviation sqrt(1 - m^2) / sqrt(N),
# at most 1 / sqrt(20,000) = 0.0071: 0.035 is five of them, for every one of the 25 weights.
MEAN_TOLERANCE = 0.035


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """BinaryConnect's hard sigmoid, written independently of the code under test."""
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0)


def test_training_forward_is_plus_minus_one():
    import tensorflow as tf

    from train.quantizers import stochastic_binary

    tf.random.set_seed(0)
    x = tf.constant(np.linspace(-1.5, 1.5, 301, dtype=np.float32))
    out = stochastic_binary(x, training=True).numpy()
    assert out.dtype == np.float32 and out.shape == (301,)
    assert set(np.unique(out)) <= {-1.0, 1.0}
    # beyond the clip range the draw is certain
    assert np.all(out[x.numpy() >= 1.0] == 1.0) and np.all(out[x.numpy() <= -1.0] == -1.0)


def test_mean_of_samples_matches_hard_sigmoid():
    import tensorflow as tf

    from train.quantizers import stochastic_binary

    tf.random.set_seed(1)
    weights = np.linspace(-1.2, 1.2, 25, dtype=np.float32)
    tiled = tf.constant(np.tile(weights, (SAMPLES, 1)))
    mean = stochastic_binary(tiled, training=True).numpy().mean(axis=0)
    expected = 2.0 * _hard_sigmoid(weights) - 1.0
    assert np.max(np.abs(mean - expected)) < MEAN_TOLERANCE


@pytest.mark.parametrize("scale", [1.0 / 28.0, 0.5])
def test_scale_stretches_the_probability(scale: float):
    """With latent weights in [-H, H]: P(+1) = hard_sigmoid(w / H), certain beyond +-H, still +-1."""
    import tensorflow as tf

    from train.quantizers import stochastic_binary

    tf.random.set_seed(3)
    weights = np.linspace(-1.2 * scale, 1.2 * scale, 25, dtype=np.float32)
    out = stochastic_binary(tf.constant(np.tile(weights, (SAMPLES, 1))), training=True, scale=scale).numpy()
    assert set(np.unique(out)) <= {-1.0, 1.0}
    expected = 2.0 * _hard_sigmoid(weights / scale) - 1.0
    assert np.max(np.abs(out.mean(axis=0) - expected)) < MEAN_TOLERANCE
    assert np.all(out[:, weights >= scale] == 1.0) and np.all(out[:, weights <= -scale] == -1.0)
    inference = stochastic_binary(tf.constant(weights), training=False, scale=scale).numpy()
    assert np.array_equal(inference, np.where(weights >= 0, 1.0, -1.0))


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_scale_must_be_positive(scale: float):
    from train.quantizers import StochasticBinary, stochastic_binary

    with pytest.raises(ValueError, match="scale must be positive"):
        StochasticBinary(scale=scale)
    with pytest.raises(ValueError, match="scale must be positive"):
        stochastic_binary(np.zeros(3, np.float32), scale=scale)


def test_inference_is_the_deterministic_sign():
    import tensorflow as tf

    from train.quantizers import StochasticBinary, stochastic_binary

    x = np.array([-0.7, -1e-6, 0.0, 1e-6, 0.3, 2.0], dtype=np.float32)
    expected = np.where(x >= 0, 1.0, -1.0)  # sign(0) = +1, like Larq's ste_sign
    first = stochastic_binary(tf.constant(x), training=False).numpy()
    assert np.array_equal(first, expected)
    assert np.array_equal(stochastic_binary(tf.constant(x), training=False).numpy(), first)
    layer = StochasticBinary()
    assert np.array_equal(layer(tf.constant(x)).numpy(), expected)  # no training flag: inference
    assert np.array_equal(layer(tf.constant(x), training=False).numpy(), expected)
    assert np.array_equal(stochastic_binary(tf.constant(x), training=tf.constant(False)).numpy(), expected)


def test_gradient_is_straight_through():
    import tensorflow as tf

    from train.quantizers import stochastic_binary

    x = tf.Variable(np.linspace(-0.9, 0.9, 7, dtype=np.float32))
    upstream = np.arange(1, 8, dtype=np.float32)
    for training in (True, False):
        with tf.GradientTape() as tape:
            out = stochastic_binary(x, training=training)
            loss = tf.reduce_sum(out * upstream)
        assert np.array_equal(tape.gradient(loss, x).numpy(), upstream)


def test_config_round_trip_and_registration():
    import larq as lq
    import tensorflow as tf

    from train.quantizers import StochasticBinary

    layer = StochasticBinary(seed=3, scale=0.25, name="q")
    config = layer.get_config()
    assert config["seed"] == 3 and config["scale"] == 0.25
    assert StochasticBinary.from_config(config).seed == 3
    assert StochasticBinary.from_config(config).scale == 0.25
    assert StochasticBinary.from_config({"name": "old", "seed": None}).scale == 1.0  # older .h5 files
    assert StochasticBinary.precision == 1
    assert tf.keras.utils.get_custom_objects()["StochasticBinary"] is StochasticBinary
    assert isinstance(lq.quantizers.get("StochasticBinary"), StochasticBinary)


@pytest.mark.parametrize("training", [True, False])
def test_quant_dense_passes_the_training_flag_down(training: bool):
    """model.fit calls the model with training=True: the kernel quantizer must sample then, and only then."""
    import larq as lq
    import tensorflow as tf

    from train.quantizers import StochasticBinary

    tf.random.set_seed(2)
    dense = lq.layers.QuantDense(
        64,
        kernel_quantizer=StochasticBinary(),
        kernel_constraint="weight_clip",
        kernel_initializer=tf.keras.initializers.Constant(0.0),  # p = 1/2: a fair coin per weight
        use_bias=False,
    )
    model = tf.keras.Sequential([tf.keras.Input((4,)), dense])
    ones = np.ones((1, 4), np.float32)
    outputs = [model(ones, training=training).numpy() for _ in range(3)]
    if training:
        assert not np.array_equal(outputs[0], outputs[1]) or not np.array_equal(outputs[1], outputs[2])
    else:
        assert all(np.array_equal(out, np.full((1, 64), 4.0)) for out in outputs)  # sign(0) = +1 everywhere


def test_fixed_point_rounds_to_exact_multiples_and_clips():
    import tensorflow as tf

    from train.quantizers import fixed_point

    x = np.array([0.0, 0.3, -0.3, 1 / 256, 3 / 256, 0.999, -2.0, 2.0, 5 / 16], dtype=np.float32)
    out = fixed_point(tf.constant(x), bits=8).numpy()
    ks = out * 128
    assert np.array_equal(ks, np.round(ks)) and np.abs(ks).max() == 127  # exact k / 128, |k| <= 127
    # nearest multiple, half to even: 1/256 -> 0, 3/256 -> 2/128; beyond the range: +-127/128
    np.testing.assert_array_equal(ks, [0, 38, -38, 0, 2, 127, -127, 127, 40])
    assert set(np.unique(fixed_point(tf.constant(x), bits=2).numpy() * 2)) <= {-1.0, 0.0, 1.0}


def test_fixed_point_gradient_is_straight_through_inside_the_range():
    import tensorflow as tf

    from train.quantizers import fixed_point

    x = tf.Variable(np.array([-1.5, -1.0, -0.2, 0.0, 0.7, 1.0, 1.2], dtype=np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(fixed_point(x) * np.arange(1, 8, dtype=np.float32))
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), [0, 2, 3, 4, 5, 6, 0])


@pytest.mark.parametrize("bits", [1, 9, 2.5, True])
def test_fixed_point_bits_out_of_range_are_refused(bits):
    from train.quantizers import FixedPointWeights

    with pytest.raises(ValueError, match="bits"):
        FixedPointWeights(bits)


def test_fixed_point_config_round_trip_and_registration():
    import larq as lq
    import tensorflow as tf

    from train.quantizers import FixedPointWeights

    layer = FixedPointWeights(6, name="w")
    assert layer.precision == 6 and layer.get_config()["bits"] == 6
    assert FixedPointWeights.from_config(layer.get_config()).bits == 6
    assert tf.keras.utils.get_custom_objects()["FixedPointWeights"] is FixedPointWeights
    assert isinstance(lq.quantizers.get("FixedPointWeights"), FixedPointWeights)


def test_an_int8_stem_model_reloads_from_h5(tmp_path):
    """The search's 8-bit stem goes through ``NAME.h5`` to convert: the loader knows the quantizer."""
    from convert.keras_io import load_keras_model
    from search.builder import build_model
    from search.space import Arch, Conv
    from train.quantizers import FixedPointWeights

    model = build_model(Arch(Conv(8, 3, "same", True, "int8"), (Conv(16, 3, "valid", True),)))
    path = tmp_path / "i8.h5"
    model.save(path, save_format="h5", include_optimizer=False)
    loaded = load_keras_model(path)
    assert isinstance(loaded.get_layer("stem").kernel_quantizer, FixedPointWeights)
    images = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded(images).numpy(), model(images).numpy())
