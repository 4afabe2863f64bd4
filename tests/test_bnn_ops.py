"""Every op of the bnn engine's registry, compiled alone and compared with the LCE interpreter.

Each case is a tiny Keras model (a float32 input, the op under test, maybe a helper op), converted
by the LCE converter, compiled by ``firmware_gen.bnn`` with ``--input-type float32``, built with
``gcc -std=c99 -Wall -Wextra -Werror`` and run on random inputs (uniform in [-2, 2], 2 % exact
zeros); the model output is the op's output, returned as float scores.

Tolerances: ops whose TFLite reference result is one float32 rounding per element (LCE's bconv
output transform, ADD, MUL, max-pool, PAD, CONCATENATION, ReLUs, PReLU, RESHAPE, LceQuantize /
LceDequantize) must be bit-exact. Ops that sum in an order TFLite's optimized kernels do not
fix (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, MEAN) agree within
``FLOAT_RTOL`` of the output's range: float32 has a 2^-24 relative rounding per operation and
these sums have at most a few hundred terms, so reordering moves a result by far less than
1e-5 of the range. LOGISTIC and SOFTMAX use the engine's own exp (within 2 ulp): the same bound.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bnn_c import lce_run, random_inputs, run_c, write_engine

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

FLOAT_RTOL = 1e-5
N_INPUTS = 24
BINARY = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "use_bias": False}


def _bn():
    import tensorflow as tf

    return tf.keras.layers.BatchNormalization()


def _bconv(filters: int, kernel: int, **kwargs):
    import larq as lq

    return lq.layers.QuantConv2D(filters, kernel, **BINARY, **kwargs)


def _seq(*factories: Callable) -> Callable:
    """A builder applying the layers the ``factories`` make, in turn, to the input."""

    def build(x):
        for factory in factories:
            x = factory()(x)
        return x

    return build


def _k(name: str, *args, **kwargs) -> Callable:
    """A deferred ``tf.keras.layers.NAME(*args, **kwargs)``."""

    def make():
        import tensorflow as tf

        return getattr(tf.keras.layers, name)(*args, **kwargs)

    return make


def _lq(factory: Callable, *args, **kwargs) -> Callable:
    return lambda: factory(*args, **kwargs)


def _bc(layer: str, *args, **kwargs):
    """A BinaryConnect layer: binary weights (``ste_sign`` unless given), float inputs."""
    import larq as lq

    return getattr(lq.layers, layer)(*args, **{"kernel_quantizer": "ste_sign", **kwargs})


def _float_quant_dense(units: int):
    """A dense layer with binarized inputs and float weights: LceQuantize, LceDequantize, float FC."""
    import larq as lq

    return lq.layers.QuantDense(units, input_quantizer="ste_sign")


def _residual(x):
    """Bi-Real style: binary conv + BN, plus the input (ADD of two activations)."""
    import tensorflow as tf

    y = _bn()(_bconv(x.shape[-1], 3, padding="same", pad_values=1.0)(x))
    return tf.keras.layers.Add()([x, y])


def _broadcast_add(x):
    import tensorflow as tf

    pooled = tf.keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    return tf.keras.layers.Add()([x, pooled])


def _mul_two(x):
    import tensorflow as tf

    return tf.keras.layers.Multiply()([x, tf.keras.layers.ReLU()(x)])


def _concat3(x):
    import tensorflow as tf

    a = tf.keras.layers.ReLU()(x)
    b = tf.keras.layers.ReLU(max_value=6.0)(x)
    return tf.keras.layers.Concatenate()([a, x, b])


def _concat_h(x):
    import tensorflow as tf

    return tf.keras.layers.Concatenate(axis=1)([x, tf.keras.layers.ReLU()(x)])


def _scale_shift(x):
    import tensorflow as tf

    x = tf.keras.layers.Rescaling(0.37, 0.5)(x)  # scalar MUL and ADD
    return _bn()(x)  # per-channel MUL and ADD


# name -> (input shape, builder, exact)
CASES: dict[str, tuple[tuple[int, ...], Callable, bool]] = {
    # LceBconv2d, float output (the general kernel: the model ends at the bconv's float output)
    "bconv_3x3_valid": ((6, 6, 5), _seq(_lq(_bconv, 7, 3), _bn), True),
    "bconv_1x1": ((5, 5, 40), _seq(_lq(_bconv, 9, 1)), True),
    "bconv_5x5_same_one": ((7, 7, 3), _seq(_lq(_bconv, 4, 5, padding="same", pad_values=1.0), _bn), True),
    "bconv_3x3_same_zero": ((6, 5, 8), _seq(_lq(_bconv, 6, 3, padding="same"), _bn), True),
    "bconv_3x3_stride2_same_one": ((9, 9, 33), _seq(_lq(_bconv, 5, 3, strides=2, padding="same", pad_values=1.0)), True),
    "bconv_3x3_stride2_same_zero": ((8, 8, 16), _seq(_lq(_bconv, 5, 3, strides=2, padding="same"), _bn), True),
    "bconv_3x3_dilation2": ((9, 9, 4), _seq(_lq(_bconv, 6, 3, dilation_rate=2), _bn), True),
    "bconv_7x7_relu": ((9, 9, 2), _seq(_lq(_bconv, 3, 7, activation="relu")), True),
    "bconv_2x2_64ch": ((4, 4, 64), _seq(_lq(_bconv, 70, 2), _bn), True),
    "bconv_groups2": ((5, 5, 64), _seq(_lq(_bconv, 8, 3, groups=2), _bn), True),
    # LceBconv2d with bit-packed output (sign fused by the converter), then a float bconv
    "bconv_bitpacked_chain": ((7, 7, 6), _seq(_lq(_bconv, 40, 3), _bn, _lq(_bconv, 5, 3)), True),
    "bconv_bitpacked_groups": ((6, 6, 64), _seq(_lq(_bconv, 64, 3, groups=2), _bn, _lq(_bconv, 5, 1)), True),
    # CONV_2D and DEPTHWISE_CONV_2D in float
    "conv_3x3_same_relu": ((6, 6, 3), _seq(_k("Conv2D", 5, 3, padding="same", activation="relu")), False),
    "conv_5x5_stride2": ((9, 9, 2), _seq(_k("Conv2D", 4, 5, strides=2)), False),
    "conv_1x1_relu6": ((4, 4, 7), _seq(_k("Conv2D", 3, 1, activation="relu6")), False),
    "conv_3x3_dilation2_same": ((8, 8, 2), _seq(_k("Conv2D", 3, 3, dilation_rate=2, padding="same")), False),
    "depthwise_3x3_same": ((6, 6, 4), _seq(_k("DepthwiseConv2D", 3, padding="same")), False),
    "depthwise_mult2_stride2": ((7, 7, 3), _seq(_k("DepthwiseConv2D", 3, strides=2, depth_multiplier=2)), False),
    # FULLY_CONNECTED
    "dense_relu": ((3, 3, 4), _seq(_k("Flatten"), _k("Dense", 11, activation="relu")), False),
    "dense_no_bias": ((20,), _seq(_k("Dense", 7, use_bias=False)), False),
    # BinaryConnect: binary weights on float inputs, CONV_2D / FULLY_CONNECTED with +-c weights (packed)
    "bc_conv_3x3_same_relu": (
        (6, 6, 3),
        _seq(_lq(_bc, "QuantConv2D", 5, 3, padding="same", activation="relu")),
        False,
    ),
    "bc_conv_magnitude": (
        (5, 5, 4),
        _seq(_lq(_bc, "QuantConv2D", 6, 3, kernel_quantizer="magnitude_aware_sign")),
        False,
    ),
    "bc_conv_bn": ((6, 6, 2), _seq(_lq(_bc, "QuantConv2D", 4, 3, use_bias=False), _bn), False),
    "bc_dense": ((3, 3, 4), _seq(_k("Flatten"), _lq(_bc, "QuantDense", 7, activation="relu")), False),
    "bc_dense_bn": ((40,), _seq(_lq(_bc, "QuantDense", 5, use_bias=False), _bn), False),
    # ADD / MUL
    "add_residual": ((6, 6, 8), _residual, True),
    "add_broadcast": ((4, 5, 6), _broadcast_add, False),
    "mul_two_activations": ((4, 4, 3), _mul_two, True),
    "mul_add_constants": ((4, 4, 3), _scale_shift, True),
    # pooling, mean
    "maxpool_2x2": ((6, 7, 3), _seq(_k("MaxPooling2D", 2)), True),
    "maxpool_3x3_same_stride2": ((7, 7, 3), _seq(_k("MaxPooling2D", 3, strides=2, padding="same")), True),
    "avgpool_2x2": ((6, 6, 3), _seq(_k("AveragePooling2D", 2)), False),
    "avgpool_3x3_same": ((5, 5, 2), _seq(_k("AveragePooling2D", 3, strides=1, padding="same")), False),
    "mean_global": ((5, 4, 6), _seq(_k("GlobalAveragePooling2D")), False),
    "mean_keepdims": ((3, 3, 5), _seq(_k("GlobalAveragePooling2D", keepdims=True)), False),
    # concatenation, pad, reshape
    "concat_channels": ((4, 4, 3), _concat3, True),
    "concat_height": ((3, 4, 2), _concat_h, True),
    "pad_1": ((4, 4, 3), _seq(_k("ZeroPadding2D", 1)), True),
    "pad_asymmetric": ((4, 5, 2), _seq(_k("ZeroPadding2D", ((1, 2), (0, 1))), _k("ReLU")), True),
    "reshape": ((4, 6, 2), _seq(_k("Reshape", (6, 4, 2)), _k("ReLU")), True),
    # activations
    "relu": ((4, 4, 3), _seq(_k("ReLU")), True),
    "relu6": ((4, 4, 3), _seq(_k("ReLU", max_value=6.0)), True),
    "prelu_shared": ((4, 4, 3), _seq(_k("PReLU", alpha_initializer="random_normal", shared_axes=[1, 2])), True),
    "prelu_full": ((3, 3, 2), _seq(_k("PReLU", alpha_initializer="random_normal")), True),
    "logistic": ((4, 4, 3), _seq(_k("Activation", "sigmoid")), False),
    "softmax": ((13,), _seq(_k("Activation", "softmax")), False),
    # LceQuantize + LceDequantize (a binary FULLY_CONNECTED with float weights stays float)
    "quantize_dequantize": ((3, 3, 5), _seq(_k("Flatten"), _lq(_float_quant_dense, 6)), False),
}


def build_model(shape: tuple[int, ...], builder: Callable, seed: int):
    """The case's Keras model with random weights and batch norms (about 40 % negative scales)."""
    import tensorflow as tf

    inputs = tf.keras.Input(shape)
    model = tf.keras.Model(inputs, builder(inputs))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = weights[0].shape[0]
            gamma = rng.uniform(0.5, 1.5, n) * np.where(rng.random(n) < 0.4, -1.0, 1.0)
            layer.set_weights([gamma, rng.normal(size=n), rng.normal(size=n), rng.uniform(0.5, 2.0, n)])
        else:
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in weights])
    return model


@pytest.mark.parametrize("name", list(CASES))
def test_op_matches_lce(name: str, tmp_path: Path) -> None:
    from convert.converter import to_lce

    shape, builder, exact = CASES[name]
    flatbuffer = to_lce(build_model(shape, builder, seed=len(name)))
    report = write_engine(flatbuffer, tmp_path, input_type="float32")
    inputs = random_inputs(shape, N_INPUTS, seed=len(name) + 1)
    options = {"use_indirect_bgemm": True} if "groups" in name else {}
    expected = lce_run(flatbuffer, inputs, **options)
    got = run_c(tmp_path, report, inputs).scores
    assert report["signature"]["score_dtype"] == "float32"
    if exact:
        np.testing.assert_array_equal(got, expected)
    else:
        span = float(np.max(np.abs(expected))) or 1.0
        np.testing.assert_allclose(got, expected, rtol=0, atol=FLOAT_RTOL * span)


@pytest.mark.parametrize("name", [name for name in CASES if name.startswith("bc_")])
def test_binary_weights_on_float_inputs_take_one_bit_each(name: str, tmp_path: Path) -> None:
    """The BinaryConnect cases keep sign bits and a scale per output, no float weight array."""
    from convert.converter import to_lce

    shape, builder, _ = CASES[name]
    model = build_model(shape, builder, seed=len(name))
    report = write_engine(to_lce(model), tmp_path, input_type="float32")
    source = (tmp_path / "bnn_model.c").read_text()
    assert "l0_signs[" in source and "l0_scales[" in source
    assert "l0_weights" not in source
    kernel = next(layer for layer in model.layers if layer.get_weights()).get_weights()[0]  # (..., in, out)
    outputs, per_output = kernel.shape[-1], kernel.size // kernel.shape[-1]
    assert report["layers"][0]["packed_weight_bytes"] == 4 * outputs * -(-per_output // 32)


@pytest.mark.parametrize(("size", "pad_value"), [(1, 0.0), (2, 0.0), (3, 0.0), (2, 1.0)])
def test_same_padding_on_small_maps_against_keras(size: int, pad_value: float, tmp_path: Path) -> None:
    """Keras is the truth where LCE 0.16 is wrong: its zero-padding correction picks one border
    case per output, so a map smaller than the 3x3 kernel (padded on two opposite sides) gets a
    wrong value. The engine adds the exact correction: it equals Keras (to float rounding) on
    every map, and LCE bit for bit wherever LCE is right (3x3 and up, and one-padding)."""
    from convert.converter import to_lce

    builder = _seq(_lq(_bconv, 6, 3, padding="same", pad_values=pad_value), _bn)
    model = build_model((size, size, 5), builder, seed=size)
    flatbuffer = to_lce(model)
    report = write_engine(flatbuffer, tmp_path, input_type="float32")
    inputs = random_inputs((size, size, 5), N_INPUTS, seed=7)
    keras = model.predict(inputs, verbose=0).reshape(N_INPUTS, -1)
    lce = lce_run(flatbuffer, inputs)
    got = run_c(tmp_path, report, inputs).scores
    span = float(np.abs(keras).max())
    np.testing.assert_allclose(got, keras, rtol=0, atol=FLOAT_RTOL * span)
    if size < 3 and pad_value == 0.0:
        assert np.abs(lce - keras).max() > 0.01 * span, "LCE got small zero-padded maps right: revisit this test"
    else:
        np.testing.assert_array_equal(got, lce)


def _gap(x):
    import tensorflow as tf

    return tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.ReLU()(x))


def _int8_model(x):
    """A small int8 classifier: float-trained stem and binary block, quantized by the converter."""
    import tensorflow as tf

    x = _bn()(tf.keras.layers.Conv2D(8, 3, padding="same")(x))
    x = tf.keras.layers.MaxPooling2D(2)(_bn()(_bconv(8, 3, padding="same", pad_values=1.0)(x)))
    x = tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(x))
    return tf.keras.layers.Activation("softmax")(x)


# int8 flatbuffers (LCE converter, default int8 range): name -> (input shape, builder)
INT8_CASES: dict[str, tuple[tuple[int, ...], Callable]] = {
    "conv_3x3_same_relu": ((6, 6, 3), _seq(_k("Conv2D", 5, 3, padding="same", activation="relu"))),
    "conv_1x1_stride2": ((7, 7, 4), _seq(_k("Conv2D", 6, 1, strides=2))),
    "depthwise_3x3": ((6, 6, 4), _seq(_k("DepthwiseConv2D", 3, depth_multiplier=2))),
    "depthwise_5x5_stride2_same": ((9, 9, 3), _seq(_k("DepthwiseConv2D", 5, strides=2, padding="same", activation="relu"))),
    "dense_relu": ((3, 3, 4), _seq(_k("Flatten"), _k("Dense", 9, activation="relu"))),
    "add_residual": ((6, 6, 8), _residual),
    "mul_add_constants": ((4, 4, 3), _scale_shift),
    "mul_two_activations": ((4, 4, 3), _mul_two),
    "maxpool": ((6, 6, 3), _seq(_k("MaxPooling2D", 2))),
    "avgpool_same": ((5, 5, 3), _seq(_k("AveragePooling2D", 3, strides=2, padding="same"))),
    "pad": ((4, 4, 3), _seq(_k("ZeroPadding2D", 1), _k("ReLU"))),
    "concat": ((4, 4, 3), _concat3),
    "relu6": ((4, 4, 3), _seq(_k("ReLU", max_value=6.0))),
    "softmax": ((13,), _seq(_k("Activation", "softmax"))),
    "model": ((8, 8, 1), _int8_model),
}


def to_lce_int8(model) -> bytes:
    """The LCE converter's int8 flatbuffer (int8 input and output, default range [-3, 3])."""
    import larq_compute_engine as lce
    import tensorflow as tf

    return lce.convert_keras_model(
        model, inference_input_type=tf.int8, inference_output_type=tf.int8, experimental_default_int8_range=(-3.0, 3.0)
    )


@pytest.mark.parametrize("name", list(INT8_CASES))
def test_int8_op_matches_lce(name: str, tmp_path: Path) -> None:
    """int8 kernels are TFLite's integer arithmetic: the outputs equal LCE's int8 outputs exactly."""
    shape, builder = INT8_CASES[name]
    flatbuffer = to_lce_int8(build_model(shape, builder, seed=len(name)))
    report = write_engine(flatbuffer, tmp_path)
    assert report["signature"]["input_dtype"] == "int8" and report["signature"]["input_quantization"] is not None
    inputs = np.random.default_rng(len(name)).integers(-128, 128, size=(N_INPUTS, *shape)).astype(np.int8)
    expected = lce_run(flatbuffer, inputs)
    assert expected.dtype == np.int8
    got = run_c(tmp_path, report, inputs)
    np.testing.assert_array_equal(got.scores, expected.astype(np.int32))


def test_int8_mean_is_refused_in_one_line(tmp_path: Path) -> None:
    """int8 MEAN is outside the set (LCE's optimized int8 mean does not round as TFLite's reference
    kernel does; see the README): one line naming the layer."""
    from pipeline.errors import InputError

    flatbuffer = to_lce_int8(build_model((5, 4, 6), _gap, seed=4))
    with pytest.raises(InputError) as caught:
        write_engine(flatbuffer, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "MEAN" in message and "int8" in message
