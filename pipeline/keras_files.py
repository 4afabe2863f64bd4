"""Keras ``.h5`` files as untrusted input: inspect them without running their code, then load them.

A Keras ``Lambda`` layer stores Python bytecode in the file, and Keras runs it while it
rebuilds the model. :func:`load_keras_model` therefore reads the model config from the HDF5
attributes first (h5py, no Keras) and refuses a model with a layer that carries code
(:func:`code_layers`) before anything is deserialised, unless ``trust_model`` says to run it.
Every way a file can fail to be a Keras model ends in :class:`~pipeline.errors.InputError` with
one line. TensorFlow is imported lazily, so :func:`check_h5_file` answers before it loads.

Larq's custom objects are registered before loading. The project's own quantizers
(:mod:`train.quantizers`) register themselves when that module is imported: a stage that loads
models trained with them imports it first (``convert.keras_io`` and ``train`` do).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.data import format_shape
from pipeline.env import quiet_tensorflow_logger
from pipeline.errors import InputError, first_line
from pipeline.json_input import parse_json

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["CODE_LAYER_CLASSES", "check_h5_file", "read_model_config", "code_layers", "load_keras_model", "check_image_model"]

CODE_LAYER_CLASSES = frozenset({"Lambda", "__lambda__"})
"""Keras classes whose config holds a Python function (marshalled bytecode, or a name resolved at load time)."""
_CODE_KEYS = ("function_type", "output_shape_type", "mask_type")


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


def read_model_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``model_config`` JSON a Keras ``.h5`` stores in its root attributes, read with h5py only.

    Returns:
        The decoded config, or ``None`` when the file has no ``model_config`` (weights only).

    Raises:
        InputError: the file cannot be read as HDF5, or its config is not JSON or nested deeper
            than :data:`~pipeline.json_input.MAX_JSON_DEPTH` levels.
    """
    import h5py

    try:
        with h5py.File(str(path), "r") as handle:
            raw = handle.attrs.get("model_config")
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise InputError(f"{path}: not a loadable Keras model: cannot read its HDF5 attributes ({first_line(err)})") from None
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        config = parse_json(text)
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{path}: model_config is not valid JSON ({first_line(err)})") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: model_config is a JSON {type(config).__name__}, not an object")
    return config


def code_layers(config: Any, where: str = "model") -> list[str]:
    """Every place in a Keras model config that carries Python code, as ``where/layer`` names.

    A ``Lambda`` layer (its function is marshalled bytecode, or a name Keras looks up in an
    imported module), or any entry serialised with ``function_type``/``output_shape_type``/
    ``mask_type`` ``lambda`` (bytecode, whatever the class). Nested models and wrappers are
    searched too. Activations and TensorFlow ops named by string are not code from the file.
    """
    found: list[str] = []
    if isinstance(config, dict):
        inner = config.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        here = f"{where}/{name}" if isinstance(name, str) else where
        if config.get("class_name") in CODE_LAYER_CLASSES or any(config.get(key) == "lambda" for key in _CODE_KEYS):
            found.append(f"{here} ({config.get('class_name') or 'function'})")
        else:
            for key, value in config.items():
                if key != "class_name":
                    found.extend(code_layers(value, here))
    elif isinstance(config, list):
        for item in config:
            found.extend(code_layers(item, where))
    return found


def load_keras_model(path: str | os.PathLike[str], *, trust_model: bool = False) -> tf.keras.Model:
    """Load a Keras ``.h5`` model uncompiled, with Larq's custom objects registered.

    Args:
        path: an ``.h5`` written by ``python -m train`` or by ``model.save(...)`` in Larq/Keras code.
        trust_model: load a model whose layers carry Python code (``Lambda``), which RUNS that
            code. Without it such a model is refused before Keras reads it.

    Returns:
        The loaded, built model.

    Raises:
        InputError: the file is missing, not HDF5, truncated or corrupt, holds no Keras model,
            has no layers, or carries code and ``trust_model`` is false.
    """
    path = check_h5_file(path)
    config = read_model_config(path)  # refuses a config that is not JSON or nested too deep, trusted or not
    if not trust_model:
        carriers = code_layers(config) if config is not None else []
        if carriers:
            more = f" and {len(carriers) - 1} more" if len(carriers) > 1 else ""
            raise InputError(
                f"{path}: refusing to load a model whose layers carry Python code ({carriers[0]}{more}): "
                "loading would run it; pass --trust-model only for a model you trust"
            )
    import larq  # noqa: F401  (registers Larq's custom objects)
    import tensorflow as tf

    try:
        with quiet_tensorflow_logger():
            model = tf.keras.models.load_model(str(path), compile=False)
    except Exception as err:  # h5py, Keras and TF raise many types for a bad file
        detail = re.sub(r" at <[^>]*>", "", first_line(err))
        if "No model config found" in detail:
            detail = "an HDF5 file without a Keras model config; save the model with model.save(PATH, save_format='h5')"
        raise InputError(f"{path}: not a loadable Keras model ({detail})") from None
    if not isinstance(model, tf.keras.Model):
        raise InputError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    if not model.layers or not model.inputs or not model.outputs:
        raise InputError(f"{path}: the Keras model has no layers or no defined input (an empty or unbuilt model)")
    return model


def check_image_model(model: tf.keras.Model, name: str, example_shape: tuple[int, ...], classes: int) -> None:
    """Check that ``model`` takes one example of the dataset and returns ``classes`` scores.

    The input may be shaped differently from the dataset's examples (``(28, 28)`` examples
    feed a ``(28, 28, 1)`` or a ``(784,)`` input) as long as it holds as many values.

    Args:
        model: the Keras model.
        name: the model's file name, for the message.
        example_shape: the shape of one example of the dataset (``Dataset.example_shape``).
        classes: the dataset's number of classes: the model must output that many scores.

    Raises:
        InputError: several inputs or outputs, an input that does not hold one example's
            values, or a different number of outputs (the message names both shapes or counts).
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"{name}: model has {len(model.inputs)} inputs and {len(model.outputs)} outputs, expected 1 and 1")
    in_shape = tuple(model.input_shape[1:])
    values = math.prod(example_shape)
    if None in in_shape or math.prod(in_shape) != values:
        raise InputError(
            f"{name}: model input shape {in_shape} does not take the dataset's {format_shape(example_shape)} examples "
            f"({values} values each)"
        )
    out_shape = tuple(model.output_shape[1:])
    if None in out_shape or math.prod(out_shape) != classes:
        raise InputError(f"{name}: model output shape {out_shape} is not the dataset's {classes} class scores")
