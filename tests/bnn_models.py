"""A family of small Larq architectures for the bnn engine's model tests (and the CIFAR measurement).

Every builder returns an uncompiled functional Keras model with random weights; :func:`calibrate`
then sets each batch norm from the statistics of its real input on calibration data (and about
40 % negative scales), so signs vary and the predicted class is spread over the classes.
Inputs: ``uint8`` models take raw 8-bit values and rescale them (the zoo's convention); ``float``
models take float features (the keyword-spotting MFCCs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

__all__ = ["Spec", "FAMILY", "build", "calibrate", "example_inputs"]

BINARY = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip", "use_bias": False}


@dataclass(frozen=True)
class Spec:
    """One architecture: input shape and type, classes, and the layer graph after the input."""

    shape: tuple[int, ...]
    classes: int
    dtype: str
    body: Callable
    what: str


def _tf():
    import tensorflow as tf

    return tf


def _lq():
    import larq as lq

    return lq


def _bn(x):
    return _tf().keras.layers.BatchNormalization()(x)


def _rescale(x, lo: float = -1.0):
    tf = _tf()
    return tf.keras.layers.Rescaling(1 / 127.5, -1.0)(x) if lo < 0 else tf.keras.layers.Rescaling(1 / 255.0)(x)


def _bconv(x, filters: int, kernel: int = 3, **kwargs):
    options = {**BINARY, **kwargs}
    return _lq().layers.QuantConv2D(filters, kernel, **options)(x)


def _stem(x, filters: int, strides: int = 1):
    """Float 3x3 conv + batch norm (no ReLU: the binary layers after it take its sign)."""
    tf = _tf()
    return _bn(tf.keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x))


def _head(x, classes: int, softmax: bool = True):
    tf = _tf()
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(classes)(x)
    return tf.keras.layers.Activation("softmax")(x) if softmax else x


def _bireal(x, filters: int, strides: int = 1):
    """Bi-Real block: approx-sign binary conv + BN, plus a float shortcut (pooled, 1x1 conv when it downsamples)."""
    tf = _tf()
    shortcut = x
    if strides > 1 or x.shape[-1] != filters:
        shortcut = tf.keras.layers.AveragePooling2D(strides)(x) if strides > 1 else x
        shortcut = _bn(tf.keras.layers.Conv2D(filters, 1, use_bias=False)(shortcut))
    y = _bconv(x, filters, strides=strides, padding="same", pad_values=1.0, input_quantizer="approx_sign")
    return tf.keras.layers.Add()([_bn(y), shortcut])


def binary_mlp(x):
    tf, lq = _tf(), _lq()
    x = _rescale(x)
    for units in (96, 48):
        x = _bn(lq.layers.QuantDense(units, **BINARY)(x))
    x = _bn(lq.layers.QuantDense(10, **BINARY)(x))
    return tf.keras.layers.Activation("softmax")(x)


def float_stem_head(x):
    tf = _tf()
    x = _stem(_rescale(x), 12)
    x = tf.keras.layers.MaxPooling2D(2)(_bn(_bconv(x, 24)))
    x = _bn(_bconv(x, 24))
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.layers.Activation("softmax")(tf.keras.layers.Dense(10)(x))


def bireal(x):
    tf = _tf()
    x = _stem(_rescale(x), 8, strides=2)
    x = _bireal(_bireal(x, 8), 8)
    x = _bireal(x, 16, strides=2)
    return _head(tf.keras.layers.PReLU(shared_axes=[1, 2])(x), 10)


def densenet(x):
    tf = _tf()
    x = _stem(_rescale(x), 16, strides=2)
    for _ in range(2):
        y = _bn(_bconv(x, 8, padding="same", pad_values=1.0))
        x = tf.keras.layers.Concatenate()([x, y])
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = _bn(tf.keras.layers.Conv2D(24, 1, use_bias=False)(tf.keras.layers.Activation("relu")(x)))
    y = _bn(_bconv(x, 8, padding="same", pad_values=1.0))
    return _head(tf.keras.layers.Concatenate()([x, y]), 10)


def global_pool(x):
    """All-binary convs on the pixels (integer pixel conv), batch norm, then global average pooling as the head."""
    tf, lq = _tf(), _lq()
    x = lq.layers.QuantConv2D(16, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)(_rescale(x))
    x = tf.keras.layers.MaxPooling2D(2)(_bn(x))
    x = _bn(_bconv(x, 32))
    x = _bn(_bconv(x, 10))
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.layers.Activation("softmax")(x)


def cifar(x):
    """The zoo's shape on 32x32x3: a float stem (stride 2), Bi-Real blocks with residual shortcuts
    (16x16x32, 8x8x64, 4x4x128; average pool + 1x1 float conv shortcuts where they downsample),
    global average pooling and a float head."""
    x = _stem(_rescale(x), 32, strides=2)
    x = _bireal(_bireal(x, 32), 32)
    x = _bireal(_bireal(x, 64, strides=2), 64)
    x = _bireal(x, 128, strides=2)
    return _head(x, 10)


def kws(x):
    """Keyword spotting on 49x10 float MFCCs, 12 classes."""
    tf = _tf()
    x = _stem(x, 16)
    x = tf.keras.layers.MaxPooling2D((2, 1))(_bn(_bconv(x, 32, padding="same", pad_values=1.0)))
    x = _bn(_bconv(x, 32, strides=2, padding="same", pad_values=1.0))
    return _head(x, 12)


def two_classes(x):
    tf = _tf()
    x = _stem(_rescale(x, lo=0.0), 8, strides=2)
    x = tf.keras.layers.MaxPooling2D(2)(_bn(_bconv(x, 16)))
    x = _bn(_bconv(x, 16))
    return _head(x, 2)


def hundred_classes(x):
    tf = _tf()
    x = _stem(_rescale(x), 16)
    x = _bireal(x, 32, strides=2)
    x = tf.keras.layers.Flatten()(tf.keras.layers.MaxPooling2D(2)(x))
    return tf.keras.layers.Activation("softmax")(tf.keras.layers.Dense(100)(x))


def xnor(x):
    """XNOR-Net: magnitude-aware weights (a per-channel scale LCE keeps as the post-multiplier)."""
    tf = _tf()
    xnor_kernel = {"kernel_quantizer": "magnitude_aware_sign"}
    x = _stem(_rescale(x), 16)
    x = tf.keras.layers.MaxPooling2D(2)(_bn(_bconv(x, 32, **xnor_kernel)))
    x = _bn(_bconv(x, 32, **xnor_kernel))
    x = _bn(_lq().layers.QuantDense(10, **{**BINARY, **xnor_kernel})(tf.keras.layers.Flatten()(x)))
    return tf.keras.layers.Activation("softmax")(x)


def same_one_stride2(x):
    tf = _tf()
    x = _stem(_rescale(x), 16)
    x = _bn(_bconv(x, 32, strides=2, padding="same", pad_values=1.0))
    x = _bn(_bconv(x, 32, strides=2, padding="same", pad_values=1.0))
    return tf.keras.layers.Activation("softmax")(tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(x)))


def binaryconnect(x):
    """BinaryConnect (the study's bc_cnn shape, narrower): binary weights on float ReLU activations, float
    biases, pixels read through the rescaling table; the binary head batch-normed."""
    tf, lq = _tf(), _lq()
    bc = {"kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip"}
    x = tf.keras.layers.MaxPooling2D(2)(lq.layers.QuantConv2D(8, 3, activation="relu", **bc)(_rescale(x, lo=0.0)))
    x = tf.keras.layers.MaxPooling2D(2)(lq.layers.QuantConv2D(16, 3, padding="same", activation="relu", **bc)(x))
    x = lq.layers.QuantDense(24, activation="relu", **bc)(tf.keras.layers.Flatten()(x))
    x = _bn(lq.layers.QuantDense(10, use_bias=False, **bc)(x))
    return tf.keras.layers.Activation("softmax")(x)


def int8_stem(x):
    """An 8-bit 5x5 stem (FixedPointWeights, same padding) on the pixels, a binary block, 8-bit class scores."""
    from train.quantizers import FixedPointWeights

    tf, lq = _tf(), _lq()
    x = lq.layers.QuantConv2D(
        12, 5, padding="same", kernel_quantizer=FixedPointWeights(8), kernel_constraint="weight_clip", use_bias=False
    )(_rescale(x))
    x = _bn(tf.keras.layers.MaxPooling2D(2)(x))
    x = tf.keras.layers.MaxPooling2D(2)(_bn(_bconv(x, 32)))
    x = _bn(lq.layers.QuantDense(10, **{**BINARY, "kernel_quantizer": FixedPointWeights(8)})(tf.keras.layers.Flatten()(x)))
    return tf.keras.layers.Activation("softmax")(x)


def colour_stem(x):
    """An 8-bit 3x3 stem on 3 channels (same padding, a SAME 2x2 max-pool over an odd map), a binary
    block, 8-bit class scores: the pixel conv's int8 form on Cortex-M0 and its int16-pair form (SMLAD)
    on Cortex-M4/M7."""
    from train.quantizers import FixedPointWeights

    tf, lq = _tf(), _lq()
    x = lq.layers.QuantConv2D(
        16, 3, padding="same", kernel_quantizer=FixedPointWeights(8), kernel_constraint="weight_clip", use_bias=False
    )(_rescale(x))
    x = _bn(tf.keras.layers.MaxPooling2D(2, padding="same")(x))
    x = tf.keras.layers.MaxPooling2D(2)(_bn(_bconv(x, 32)))
    x = _bn(lq.layers.QuantDense(10, **{**BINARY, "kernel_quantizer": FixedPointWeights(8)})(tf.keras.layers.Flatten()(x)))
    return tf.keras.layers.Activation("softmax")(x)


def kws_words(x):
    """49x10 8-bit features (issue 34): an 8-bit 3x3 stem to 16 channels (one word per position), a
    valid binary conv to 48 channels (two words per position), a 2x1 max-pool over the height only,
    binary class scores. gcc 12.2 at -O3 with AVX-512 VPOPCNTDQ dropped the whole binary conv
    (docs/gcc12_null_base.c); its output stayed all zero."""
    from train.quantizers import FixedPointWeights

    tf, lq = _tf(), _lq()
    x = lq.layers.QuantConv2D(
        16, 3, padding="same", kernel_quantizer=FixedPointWeights(8), kernel_constraint="weight_clip", use_bias=False
    )(_rescale(x))
    x = tf.keras.layers.MaxPooling2D((2, 1))(_bconv(_bn(x), 48))
    x = _bn(lq.layers.QuantDense(12, **BINARY)(tf.keras.layers.Flatten()(_bn(x))))
    return tf.keras.layers.Activation("softmax")(x)


FAMILY: dict[str, Spec] = {
    "binary_mlp": Spec((784,), 10, "uint8", binary_mlp, "binary MLP on flattened 28x28 images"),
    "float_stem_head": Spec((28, 28, 1), 10, "uint8", float_stem_head, "float stem and float head around binary blocks"),
    "bireal": Spec((28, 28, 1), 10, "uint8", bireal, "Bi-Real residual blocks, PReLU, global pooling"),
    "densenet": Spec((28, 28, 1), 10, "uint8", densenet, "DenseNet-style concatenation"),
    "global_pool": Spec((28, 28, 1), 10, "uint8", global_pool, "binary convs, global average pooling head"),
    "cifar": Spec((32, 32, 3), 10, "uint8", cifar, "32x32x3 zoo style, 10 classes"),
    "kws": Spec((49, 10, 1), 12, "float32", kws, "49x10x1 float MFCCs, 12 classes"),
    "two_classes": Spec((32, 32, 1), 2, "uint8", two_classes, "2 classes"),
    "hundred_classes": Spec((16, 16, 3), 100, "uint8", hundred_classes, "100 classes"),
    "xnor": Spec((28, 28, 1), 10, "uint8", xnor, "XNOR-Net magnitude_aware_sign weights"),
    "binaryconnect": Spec((28, 28, 1), 10, "uint8", binaryconnect, "BinaryConnect: binary weights, float activations"),
    "same_one_stride2": Spec((28, 28, 1), 10, "uint8", same_one_stride2, "SAME-one padding with stride 2"),
    "int8_stem": Spec((28, 28, 1), 10, "uint8", int8_stem, "8-bit 5x5 stem on the pixels, binary block, 8-bit scores"),
    "colour_stem": Spec((17, 13, 3), 10, "uint8", colour_stem, "8-bit 3x3 stem on 17x13x3 colour pixels, 8-bit scores"),
    "kws_words": Spec((49, 10, 1), 12, "uint8", kws_words, "49x10x1, 16 to 48 channels, 2x1 max-pool, 12 classes"),
}


def example_inputs(spec: Spec, count: int, seed: int, mnist=None) -> np.ndarray:
    """Inputs for ``spec``: MNIST test images where the shape fits and ``mnist`` is given, else
    random values (uint8 0..255, or float N(0, 1))."""
    rng = np.random.default_rng(seed)
    if mnist is not None and spec.shape in ((28, 28, 1), (784,)):
        images = mnist.x_test[seed : seed + count]
        return images.reshape(count, *spec.shape)
    if spec.dtype == "uint8":
        return rng.integers(0, 256, size=(count, *spec.shape)).astype(np.uint8)
    return rng.normal(size=(count, *spec.shape)).astype(np.float32)


def build(name: str, seed: int = 0):
    """The uncalibrated model of ``FAMILY[name]`` with random weights."""
    tf = _tf()
    spec = FAMILY[name]
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(spec.shape)
    return tf.keras.Model(inputs, spec.body(inputs), name=name)


def calibrate(model, data: np.ndarray, seed: int = 0):
    """Set every batch norm from its input's statistics on ``data`` (40 % negative scales)."""
    tf = _tf()
    rng = np.random.default_rng(seed)
    x = data.astype(np.float32)
    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        acts = tf.keras.Model(model.inputs, layer.input)(x, training=False).numpy()
        axes = tuple(range(acts.ndim - 1))
        mean, var = acts.mean(axis=axes), acts.var(axis=axes) + 1e-3
        n = mean.shape[0]
        gamma = rng.uniform(0.5, 1.5, n) * np.where(rng.random(n) < 0.4, -1.0, 1.0)
        mean = mean + rng.normal(size=n) * np.sqrt(var) * 0.3
        layer.set_weights([a.astype(np.float32) for a in (gamma, rng.normal(size=n) * 0.2, mean, var)])
    dense = [layer for layer in model.layers if type(layer) is tf.keras.layers.Dense]
    if dense:  # the float head: logits centred and scaled per class, so every class gets predicted
        head = dense[-1]
        logits = tf.keras.Model(model.inputs, head.output)(x, training=False).numpy()
        scale = 1.0 / (logits.std(axis=0) + 1e-6)
        kernel, bias = head.get_weights()
        head.set_weights([(kernel * scale).astype(np.float32), ((bias - logits.mean(axis=0)) * scale).astype(np.float32)])
    return model
