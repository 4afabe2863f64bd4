"""The layer pattern of the zoo's binarized networks for microcontrollers: 8-bit stem, binary blocks, 8-bit scores.

Every layer is a pattern the ``bnn`` engine compiles exactly (integer sums and per-channel
thresholds, no float feature map):

* stem: ``QuantConv2D`` with :class:`train.quantizers.FixedPointWeights` (8-bit weights) on the
  raw values rescaled to [-1, 1] (every input channel), 3x3, ``same`` padding, a 2x2 max-pool,
  batch norm: its output is binarized by the next layer, so the stem writes bits;
* blocks: binary ``QuantConv2D`` (``ste_sign`` inputs and weights), 3x3, ``same`` padding with
  +1 (``pad_values=1``: no border masks in the engine), a 2x2 max-pool, batch norm;
* tail: more binary blocks at the last blocks' resolution, without the pool (depth where a
  pixel costs least);
* head: flatten, ``QuantDense`` with 8-bit weights on the binarized features, batch norm,
  softmax (the engine's exact int64 class scores).

:mod:`train.photo_models` (``colour_bnn``) and :mod:`train.audio_models` (``kws_bnn``) choose the widths.
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

from train.quantizers import FixedPointWeights

__all__ = ["build_compact_bnn"]

_BINARY = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip", "use_bias": False}


def build_compact_bnn(
    input_shape: tuple[int, int, int],
    classes: int,
    *,
    stem: int,
    blocks: tuple[int, ...],
    name: str,
    tail: tuple[int, ...] = (),
) -> tf.keras.Model:
    """The pattern above: ``stem`` stem channels, a pooled binary block per ``blocks`` entry, an unpooled one per ``tail`` entry.

    Args:
        input_shape: ``(H, W, C)`` of the raw 8-bit inputs (H and W at least ``2 ** (1 + len(blocks))``).
        classes: number of class scores.
        stem: channels of the 8-bit stem.
        blocks: channels of each pooled binary block.
        name: the Keras model name.
        tail: channels of each unpooled binary block after them.

    Returns:
        An uncompiled ``tf.keras.Sequential`` taking raw values ``(N, H, W, C)`` float32.
    """
    eight_bit = {"kernel_quantizer": FixedPointWeights(8), "kernel_constraint": "weight_clip", "use_bias": False}
    layers: list[tf.keras.layers.Layer] = [
        tf.keras.layers.Rescaling(scale=2.0 / 255.0, offset=-1.0, input_shape=tuple(input_shape), name="rescale"),
        lq.layers.QuantConv2D(stem, (3, 3), padding="same", name="stem", **eight_bit),
        tf.keras.layers.MaxPooling2D((2, 2), name="stem_pool"),
        tf.keras.layers.BatchNormalization(scale=False, name="stem_bn"),
    ]
    for index, channels in enumerate(blocks + tail, start=1):
        layers.append(lq.layers.QuantConv2D(channels, (3, 3), padding="same", pad_values=1.0, name=f"block{index}", **_BINARY))
        if index <= len(blocks):
            layers.append(tf.keras.layers.MaxPooling2D((2, 2), name=f"block{index}_pool"))
        layers.append(tf.keras.layers.BatchNormalization(scale=False, name=f"block{index}_bn"))
    layers += [
        tf.keras.layers.Flatten(name="flatten"),
        lq.layers.QuantDense(classes, input_quantizer="ste_sign", name="scores", **eight_bit),
        tf.keras.layers.BatchNormalization(scale=False, name="scores_bn"),
        tf.keras.layers.Activation("softmax", name="softmax"),
    ]
    return tf.keras.Sequential(layers, name=name)
