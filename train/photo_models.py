"""Zoo models for small colour photos (CIFAR-10's 32x32x3 and the like), any channel count and class count.

``colour_bnn`` is the binarized network designed for a Cortex-M (:mod:`train.compact_bnn`): an
8-bit stem on the raw pixels of every channel that writes bits, pooled binary blocks, 8-bit
class scores, every layer a pattern the ``bnn`` engine compiles exactly.

``resnet8`` is MLPerf Tiny's image-classification reference model (ResNet-8, 78,666 parameters
for 32x32x3 and 10 classes, the layers of ``pretrainedResnet.h5`` one for one: three residual
stacks of 16, 32 and 64 channels, L2 1e-4 on the convolutions): the float model to retrain on
the same data for a fair comparison, and a distillation teacher. Like MLPerf's, it takes the raw
pixels 0..255 unscaled (its first batch norm normalises them).
"""

from __future__ import annotations

import tensorflow as tf

from train.compact_bnn import build_compact_bnn

__all__ = ["COLOUR_BNN_STEM", "COLOUR_BNN_BLOCKS", "COLOUR_BNN_TAIL", "build_colour_bnn", "build_resnet8", "photo_problem"]

COLOUR_BNN_STEM = 64
"""Channels of the 8-bit stem (full resolution, then pooled)."""
COLOUR_BNN_BLOCKS = (96, 128)
"""Channels of the binary blocks, each pooled 2x2."""
COLOUR_BNN_TAIL = (192,)
"""Channels of the unpooled binary blocks after them, at a 32x32 input's 4x4. With the blocks this keeps
the network under 10 M instructions per 32x32x3 image on a Cortex-M7 (a third of ResNet-8 int8 under
TFLite-Micro + CMSIS-NN) with four convolutions where (96, 192) and no tail had three (77.9 % after
60 epochs; (128, 256) and no tail took 12.7 M instructions)."""


def photo_problem(shape: tuple[int, ...], dtype: str, classes: int, *, divisor: int) -> str | None:
    """Why a photo model cannot take the dataset's examples, or ``None`` when it can.

    Args:
        shape: one example's shape, ``(H, W)`` or ``(H, W, C)``.
        dtype: the examples' dtype.
        classes: the dataset's class count.
        divisor: height and width must be multiples of this (the model's total downsampling).
    """
    if dtype != "uint8" or len(shape) not in (2, 3):
        return f"takes 8-bit images (H, W, C), not {dtype} examples of shape {shape}"
    height, width = shape[0], shape[1]
    if height % divisor or width % divisor or height < divisor or width < divisor:
        return f"takes images whose height and width are multiples of {divisor}, not {height}x{width}"
    if classes < 2:
        return f"needs at least 2 classes, the dataset has {classes}"
    return None


def build_colour_bnn(
    input_shape: tuple[int, int, int],
    classes: int,
    *,
    stem: int = COLOUR_BNN_STEM,
    blocks: tuple[int, ...] = COLOUR_BNN_BLOCKS,
    tail: tuple[int, ...] = COLOUR_BNN_TAIL,
    name: str = "colour_bnn",
) -> tf.keras.Model:
    """The binarized photo classifier: :func:`train.compact_bnn.build_compact_bnn` with the photo widths.

    Args:
        input_shape: ``(H, W, C)`` of the raw 8-bit images (H and W multiples of ``2 ** (1 + len(blocks))``).
        classes: number of class scores.
        stem: channels of the 8-bit stem.
        blocks: channels of each pooled binary block.
        tail: channels of each unpooled binary block after them.
        name: the Keras model name.

    Returns:
        An uncompiled ``tf.keras.Sequential`` taking raw pixels ``(N, H, W, C)`` float32.
    """
    return build_compact_bnn(input_shape, classes, stem=stem, blocks=blocks, tail=tail, name=name)


def _conv(filters: int, kernel: int, strides: int, name: str) -> tf.keras.layers.Conv2D:
    return tf.keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        kernel_initializer="he_normal",
        kernel_regularizer=tf.keras.regularizers.l2(1e-4),
        name=name,
    )


def build_resnet8(input_shape: tuple[int, int, int], classes: int, *, name: str = "resnet8") -> tf.keras.Model:
    """MLPerf Tiny's ResNet-8 (see the module docstring), for ``input_shape`` and ``classes``.

    Args:
        input_shape: ``(H, W, C)`` of the raw 8-bit images (H and W multiples of 4).
        classes: number of class scores.
        name: the Keras model name.

    Returns:
        An uncompiled functional model taking raw pixels ``(N, H, W, C)`` float32, ending in softmax.
    """
    inputs = tf.keras.Input(shape=tuple(input_shape), name="pixels")
    x = tf.keras.layers.BatchNormalization(name="bn0")(_conv(16, 3, 1, "conv0")(inputs))
    x = tf.keras.layers.Activation("relu", name="relu0")(x)
    for stack, filters in enumerate((16, 32, 64), start=1):
        strides = 1 if stack == 1 else 2
        tag = f"stack{stack}"
        y = tf.keras.layers.BatchNormalization(name=f"{tag}_bn1")(_conv(filters, 3, strides, f"{tag}_conv1")(x))
        y = tf.keras.layers.Activation("relu", name=f"{tag}_relu1")(y)
        y = tf.keras.layers.BatchNormalization(name=f"{tag}_bn2")(_conv(filters, 3, 1, f"{tag}_conv2")(y))
        shortcut = x if stack == 1 else _conv(filters, 1, strides, f"{tag}_shortcut")(x)
        x = tf.keras.layers.Activation("relu", name=f"{tag}_relu2")(tf.keras.layers.Add(name=f"{tag}_add")([shortcut, y]))
    pool = (int(x.shape[1]), int(x.shape[2]))
    x = tf.keras.layers.Flatten(name="flatten")(tf.keras.layers.AveragePooling2D(pool, name="pool")(x))
    outputs = tf.keras.layers.Dense(classes, activation="softmax", name="scores")(x)
    return tf.keras.Model(inputs, outputs, name=name)
