"""Inputs on which Keras binarizes a value within float rounding of zero (a *near tie*).

A Larq layer's ``input_quantizer`` takes the sign of a float value: batch-norm outputs, sums of
an 8-bit stem. Keras and a converted flatbuffer compute those values with the same maths but not
the same float32 roundings (the converter folds the rescaling and the batch norm into the weights
and sums in another order), so a value within a few ulps of zero may take one sign in Keras and
the other in the flatbuffer. That flips one bit of a feature map and moves the class scores
visibly, with no conversion error behind it. ``python -m convert`` still counts such an input
for the argmax agreement, but excuses a score difference on it (:func:`near_tie_rows`) and
reports how many it excused.

A near tie is a value ``x`` with ``0 < |x| <= NEAR_TIE * scale``, ``scale`` the largest ``|x|``
the same quantizer sees over all the inputs checked. Exact zeros are not near ties: ReLU outputs
and padding are exactly 0 on both sides. Only the model's top-level layers are looked at (a
model nested as one layer has no near ties found, and its score gate stays strict); ``convert``
runs it on the model as loaded, before any ``--input-range`` wrapper (:func:`scaled_inputs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.interpreters import prepare_inputs

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["NEAR_TIE", "near_tie_rows", "scaled_inputs"]

NEAR_TIE = 1e-6
"""Relative size of a near tie: float32 rounds at 2**-24 (6e-8) per operation, and a batch norm
or a folded rescaling adds a few operations."""


def _quantizer_inputs(model: tf.keras.Model) -> list[tf.Tensor]:
    """The input tensor of every top-level layer with an ``input_quantizer`` (shared layers, with
    several inputs, are skipped)."""
    taps = []
    for layer in model.layers:
        if getattr(layer, "input_quantizer", None) is None:
            continue
        try:
            taps.append(layer.input)
        except (AttributeError, ValueError):
            continue
    return taps


def scaled_inputs(inputs: np.ndarray, input_range: tuple[float, float] | None) -> np.ndarray:
    """``inputs`` as the model behind ``--input-range LO,HI`` sees them (the prepended Rescaling's
    float32 ``x * (HI - LO) / 255 + LO``), or unchanged without a range."""
    if input_range is None:
        return inputs
    lo, hi = input_range
    return inputs.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)


def near_tie_rows(model: tf.keras.Model, inputs: np.ndarray, relative: float = NEAR_TIE, batch_size: int = 256) -> np.ndarray:
    """Which inputs make Keras binarize a value within float rounding of zero.

    Args:
        model: a single-input Keras model (inference mode).
        inputs: raw inputs, as for :func:`pipeline.interpreters.run_keras`.
        relative: the near-tie size relative to each quantizer's largest ``|x|``.
        batch_size: inputs per forward pass.

    Returns:
        ``(N,)`` bool: True where some quantizer input of that row is a near tie. All False for
        a model without input quantizers.
    """
    import tensorflow as tf

    taps = _quantizer_inputs(model)
    count = len(inputs)
    if not taps or count == 0:
        return np.zeros(count, dtype=bool)
    in_shape = tuple(model.input_shape[1:])
    feed = prepare_inputs(inputs, (1, *in_shape)).reshape((count, *in_shape))
    probe = tf.keras.Model(model.inputs, taps)
    smallest = np.zeros((count, len(taps)))
    largest = np.zeros(len(taps))
    for start in range(0, count, batch_size):
        outputs = probe(feed[start : start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        for index, values in enumerate(outputs):
            flat = np.abs(np.asarray(values, dtype=np.float64).reshape(len(values), -1))
            largest[index] = max(largest[index], float(flat.max(initial=0.0)))
            nonzero = np.where(flat > 0, flat, np.inf)
            smallest[start : start + len(values), index] = nonzero.min(axis=1, initial=np.inf)
    return np.any(smallest <= relative * largest[None, :], axis=1)
