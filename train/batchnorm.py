"""Batch-norm statistics: re-estimate them on a fixed set of images after training.

During training, Keras keeps an exponential moving average of each batch's mean and
variance; for a binarized network the last few hundred batches disagree enough that the
test accuracy of the final model moves by tenths of a point with the moving average's noise.
:func:`recalibrate_batchnorm` replaces those averages by the exact mean and variance of each
BatchNormalization layer's input over given images, layer by layer (each layer seeing the
inputs its already recalibrated predecessors produce). Weights and the parameter count do
not change; only the non-trainable ``moving_mean`` and ``moving_variance`` do.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["recalibrate_batchnorm"]


def recalibrate_batchnorm(model: tf.keras.Sequential, images: np.ndarray, *, batch_size: int = 1000) -> int:
    """Set every BatchNormalization layer's moving statistics to those of ``images``.

    Args:
        model: a built Sequential model (layers applied in order).
        images: model inputs, e.g. ``(N, 28, 28, 1)`` float32 raw pixels.
        batch_size: images per forward pass (memory only; the result does not depend on it).

    Returns:
        The number of BatchNormalization layers recalibrated.

    Raises:
        ValueError: ``model`` is not Sequential, or ``images`` is empty.
    """
    if not isinstance(model, tf.keras.Sequential):
        raise ValueError(f"recalibrate_batchnorm needs a Sequential model, got {type(model).__name__}")
    if len(images) == 0:
        raise ValueError("recalibrate_batchnorm needs at least one image")
    count = 0
    for index, layer in enumerate(model.layers):
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        total = None
        total_sq = None
        seen = 0
        for start in range(0, len(images), batch_size):
            x = tf.convert_to_tensor(images[start : start + batch_size])
            for previous in model.layers[:index]:
                x = previous(x, training=False)
            x = tf.cast(x, tf.float64)
            axes = list(range(len(x.shape) - 1))
            part = tf.reduce_sum(x, axis=axes).numpy()
            part_sq = tf.reduce_sum(tf.square(x), axis=axes).numpy()
            total = part if total is None else total + part
            total_sq = part_sq if total_sq is None else total_sq + part_sq
            seen += int(np.prod(x.shape[:-1]))
        mean = total / seen
        variance = np.maximum(total_sq / seen - mean * mean, 0.0)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
        count += 1
    return count
