"""Load a Keras ``.h5`` (from ``python -m train`` or plain Larq/Keras code) and adapt its input.

Larq and :mod:`train.quantizers` are imported before loading so their custom objects (quantized
layers, quantizers, constraints) are registered and an ``.h5`` reloads without a custom-objects dict.
The file is untrusted input: :mod:`pipeline.keras_files` (re-exported here) inspects it without
running its code and refuses a model whose layers carry Python code unless ``trust_model`` says
to run it; every way a file can fail to be a Keras model ends in one line.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from pipeline.errors import InputError
from pipeline.keras_files import CODE_LAYER_CLASSES, check_h5_file, check_image_model, code_layers, read_model_config
from pipeline.keras_files import load_keras_model as _load_keras_model

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "CODE_LAYER_CLASSES",
    "check_h5_file",
    "read_model_config",
    "code_layers",
    "load_keras_model",
    "with_input_range",
    "check_image_model",
]


def load_keras_model(path: str | os.PathLike[str], *, trust_model: bool = False) -> tf.keras.Model:
    """:func:`pipeline.keras_files.load_keras_model` with the project's own quantizers registered first.

    Raises:
        InputError: see :func:`pipeline.keras_files.load_keras_model`.
    """
    import train.quantizers  # noqa: F401  (registers the project's own quantizers: BinaryConnect's, 8-bit fixed point)

    return _load_keras_model(path, trust_model=trust_model)


def with_input_range(model: tf.keras.Model, lo: float, hi: float) -> tf.keras.Model:
    """Prepend a Rescaling that maps raw 8-bit values 0..255 (pixels) onto ``[lo, hi]``.

    Use it for a model trained on already-scaled pixels (Larq's MNIST tutorial takes
    ``pixels / 127.5 - 1``, i.e. ``lo, hi = -1, 1``): the result takes raw pixels like the
    zoo's models, so every flatbuffer converted from it does too.

    Args:
        model: a single-input Keras model.
        lo: value raw pixel 0 maps to.
        hi: value raw pixel 255 maps to.

    Returns:
        A new functional model ``Rescaling -> model`` named like ``model``, sharing its weights.

    Raises:
        InputError: ``lo`` or ``hi`` is not finite, or ``lo >= hi``.
    """
    import tensorflow as tf

    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise InputError(f"input range {lo},{hi} is invalid: need finite LO < HI, for example -1,1 or 0,1")
    inputs = tf.keras.Input(shape=model.input_shape[1:], dtype=tf.float32, name="raw_pixels")
    scaled = tf.keras.layers.Rescaling(scale=(hi - lo) / 255.0, offset=lo, name="input_range")(inputs)
    return tf.keras.Model(inputs, model(scaled), name=model.name)
