"""Load a Keras ``.h5`` (from ``python -m train`` or plain Larq/Keras code) and adapt its input.

Larq and :mod:`train.quantizers` are imported before loading so their custom objects (quantized
layers, quantizers, constraints) are registered and an ``.h5`` reloads without a custom-objects dict. Every way
a file can fail to be a Keras model ends in :class:`~pipeline.errors.InputError` with one line.
TensorFlow is imported lazily, so :func:`check_h5_file` answers before it loads.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.data import IMAGE_SHAPE
from pipeline.errors import InputError, first_line

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["check_h5_file", "load_keras_model", "with_input_range", "check_image_model"]


def check_h5_file(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` is an existing HDF5 file, without importing TensorFlow.

    Args:
        path: the ``.h5`` file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: the file is missing, is a folder, or does not carry the HDF5 signature.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: is not a file (expected a Keras .h5 model)")
    try:
        is_hdf5 = h5py.is_hdf5(str(path))
    except OSError as err:
        raise InputError(f"{path}: cannot read ({first_line(err)})") from None
    if not is_hdf5:
        raise InputError(f"{path}: not an HDF5 file (expected a Keras .h5 model saved with model.save(..., save_format='h5'))")
    return path


def load_keras_model(path: str | os.PathLike[str]) -> tf.keras.Model:
    """Load a Keras ``.h5`` model uncompiled, with Larq's custom objects registered.

    Args:
        path: an ``.h5`` written by ``python -m train`` or by ``model.save(...)`` in Larq/Keras code.

    Returns:
        The loaded, built model.

    Raises:
        InputError: the file is missing, not HDF5, truncated or corrupt, or holds no Keras model.
    """
    path = check_h5_file(path)
    import larq  # noqa: F401  (registers Larq's custom objects)
    import tensorflow as tf

    import train.quantizers  # noqa: F401  (registers the project's own quantizer, BinaryConnect's)

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        model = tf.keras.models.load_model(str(path), compile=False)
    except Exception as err:  # h5py, Keras and TF raise many types for a bad file
        detail = re.sub(r" at <[^>]*>", "", first_line(err))
        if "No model config found" in detail:
            detail = "an HDF5 file without a Keras model config; save the model with model.save(PATH, save_format='h5')"
        raise InputError(f"{path}: not a loadable Keras model ({detail})") from None
    finally:
        logger.setLevel(level)
    if not isinstance(model, tf.keras.Model):
        raise InputError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    return model


def check_image_model(model: tf.keras.Model, name: str, classes: int = 10) -> None:
    """Check that ``model`` takes one 28x28 image and returns ``classes`` scores.

    Args:
        model: the Keras model.
        name: the model's file name, for the message.
        classes: expected number of output scores.

    Raises:
        InputError: several inputs or outputs, an input that is not 784 values, or a
            different number of outputs.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"{name}: model has {len(model.inputs)} inputs and {len(model.outputs)} outputs, expected 1 and 1")
    in_shape = tuple(model.input_shape[1:])
    if None in in_shape or math.prod(in_shape) != math.prod(IMAGE_SHAPE):
        raise InputError(f"{name}: model input shape {in_shape} does not take a 28x28 image (784 values)")
    out_shape = tuple(model.output_shape[1:])
    if None in out_shape or math.prod(out_shape) != classes:
        raise InputError(f"{name}: model output shape {out_shape} is not {classes} class scores")


def with_input_range(model: tf.keras.Model, lo: float, hi: float) -> tf.keras.Model:
    """Prepend a Rescaling that maps raw pixels 0..255 onto ``[lo, hi]``.

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
