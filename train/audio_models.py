"""Zoo models for keyword spotting on 8-bit time-frequency features ``(frames, bands, 1)``.

The features come from the project's integer audio front end (:mod:`pipeline.frontend`), which
runs in Python for training and in C on the chip; both models take its raw uint8 values.

``kws_bnn`` is the binarized keyword spotter designed for a 16 KiB / 4 KiB Cortex-M0
(:mod:`train.compact_bnn`): an 8-bit stem on the features that writes bits, two pooled binary
blocks and 8-bit class scores, every layer a pattern the ``bnn`` engine compiles exactly.
``ds_cnn`` is MLPerf Tiny's keyword-spotting reference architecture (DS-CNN: a 10x4 stride-2
convolution of 64 channels, four depthwise-separable blocks, average pooling, a dense softmax;
L2 1e-4, dropout 0.2 and 0.4), for the same features: the float model to train and quantize to
int8 for the comparison.
"""

from __future__ import annotations

import math

import tensorflow as tf

from train.compact_bnn import build_compact_bnn

__all__ = ["KWS_BNN_STEM", "KWS_BNN_BLOCKS", "build_kws_bnn", "build_ds_cnn", "features_problem"]

KWS_BNN_STEM = 32
"""Channels of the 8-bit stem (3x3 on the features, pooled 2x2)."""
KWS_BNN_BLOCKS = (64, 48)
"""Channels of the binary blocks (3x3, pooled 2x2)."""


def features_problem(shape: tuple[int, ...], dtype: str, classes: int, *, minimum: int) -> str | None:
    """Why a keyword model cannot take the dataset's examples, or ``None`` when it can.

    Args:
        shape: one example's shape, ``(frames, bands)`` or ``(frames, bands, 1)``.
        dtype: the examples' dtype.
        classes: the dataset's class count.
        minimum: the smallest number of frames and bands the model's pooling allows.
    """
    if dtype != "uint8" or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 1):
        return f"takes 8-bit features (frames, bands, 1), not {dtype} examples of shape {shape}"
    if shape[0] < minimum or shape[1] < minimum:
        return f"takes at least {minimum} frames and {minimum} bands, not {shape[0]}x{shape[1]}"
    if classes < 2:
        return f"needs at least 2 classes, the dataset has {classes}"
    return None


def build_kws_bnn(
    input_shape: tuple[int, int, int],
    classes: int,
    *,
    stem: int = KWS_BNN_STEM,
    blocks: tuple[int, ...] = KWS_BNN_BLOCKS,
    name: str = "kws_bnn",
) -> tf.keras.Model:
    """The binarized keyword spotter: :func:`train.compact_bnn.build_compact_bnn` with the keyword widths.

    Args:
        input_shape: ``(frames, bands, 1)`` of the uint8 features.
        classes: number of class scores.
        stem: channels of the 8-bit stem.
        blocks: channels of each binary block.
        name: the Keras model name.

    Returns:
        An uncompiled ``tf.keras.Sequential`` taking raw features ``(N, frames, bands, 1)`` float32.
    """
    return build_compact_bnn(input_shape, classes, stem=stem, blocks=blocks, name=name)


def _bn_relu(x: tf.Tensor, name: str) -> tf.Tensor:
    return tf.keras.layers.Activation("relu", name=f"{name}_relu")(tf.keras.layers.BatchNormalization(name=f"{name}_bn")(x))


def build_ds_cnn(input_shape: tuple[int, int, int], classes: int, *, filters: int = 64, name: str = "ds_cnn") -> tf.keras.Model:
    """MLPerf Tiny's DS-CNN (see the module docstring) for ``input_shape`` features and ``classes``.

    Args:
        input_shape: ``(frames, bands, 1)`` of the uint8 features (scaled to [0, 1] inside).
        classes: number of class scores.
        filters: channels of every convolution (MLPerf: 64).
        name: the Keras model name.

    Returns:
        An uncompiled functional model ending in softmax.
    """
    regularizer = tf.keras.regularizers.l2(1e-4)
    inputs = tf.keras.Input(shape=tuple(input_shape), name="features")
    x = tf.keras.layers.Rescaling(scale=1.0 / 255.0, name="rescale")(inputs)
    x = tf.keras.layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=regularizer, name="conv0")(x)
    x = _bn_relu(x, "conv0")
    x = tf.keras.layers.Dropout(0.2, name="dropout0")(x)
    for block in range(1, 5):
        x = tf.keras.layers.DepthwiseConv2D((3, 3), padding="same", depthwise_regularizer=regularizer, name=f"dw{block}")(x)
        x = _bn_relu(x, f"dw{block}")
        x = tf.keras.layers.Conv2D(filters, (1, 1), padding="same", kernel_regularizer=regularizer, name=f"pw{block}")(x)
        x = _bn_relu(x, f"pw{block}")
    x = tf.keras.layers.Dropout(0.4, name="dropout1")(x)
    pool = (math.ceil(input_shape[0] / 2), math.ceil(input_shape[1] / 2))
    x = tf.keras.layers.Flatten(name="flatten")(tf.keras.layers.AveragePooling2D(pool, name="pool")(x))
    outputs = tf.keras.layers.Dense(classes, activation="softmax", name="scores")(x)
    return tf.keras.Model(inputs, outputs, name=name)
