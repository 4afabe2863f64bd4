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
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.data import format_shape
from pipeline.env import quiet_tensorflow_logger
from pipeline.errors import InputError, first_line, printable
from pipeline.json_input import parse_json
from pipeline.limits import MAX_H5_WEIGHT_BYTES, describe_bytes

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "CODE_LAYER_CLASSES",
    "check_h5_file",
    "check_h5_sizes",
    "read_model_config",
    "code_layers",
    "load_keras_model",
    "check_image_model",
    "save_h5_model",
    "H5_LEGACY_WARNING",
]

H5_LEGACY_WARNING = "You are saving your model as an HDF5 file via"
"""The start of the ``UserWarning`` Keras gives on every ``model.save(..., save_format="h5")``."""
CODE_LAYER_CLASSES = frozenset({"Lambda", "__lambda__"})
"""Keras classes whose config holds a Python function (marshalled bytecode, or a name resolved at load time)."""
_CODE_KEYS = ("function_type", "output_shape_type", "mask_type")


def save_h5_model(model: tf.keras.Model, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` as a Keras ``.h5`` (no optimizer), atomically.

    ``.h5`` is the project's model format (what ``convert``, the emulator and ``--teacher`` read);
    Keras's two-line ``UserWarning`` calling it legacy, printed on every save, is silenced here
    (that warning only, by its message and category).
    """
    from pipeline.artifacts import atomic_path

    with atomic_path(Path(path)) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(H5_LEGACY_WARNING), category=UserWarning)
        model.save(tmp, save_format="h5", include_optimizer=False)


def check_h5_file(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` is an existing HDF5 file whose weights fit the limits, without importing TensorFlow.

    Args:
        path: the ``.h5`` file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: the file is missing, is a folder, does not carry the HDF5 signature, or
            declares weights :func:`check_h5_sizes` refuses.
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
    check_h5_sizes(path)
    return path


def _dataset_bytes(dataset: Any) -> int:
    """What reading ``dataset`` allocates: its declared elements times their size (0 for an empty dataspace)."""
    return 0 if dataset.shape is None else int(math.prod(dataset.shape)) * dataset.dtype.itemsize


def _describe(dataset: Any) -> str:
    shape = "empty" if dataset.shape is None else format_shape(dataset.shape)
    size = describe_bytes(_dataset_bytes(dataset))
    return f"dataset {printable(dataset.name.lstrip('/'))} declares {shape} {dataset.dtype}: {size}"


def _stored_problem(dataset: Any) -> str | None:
    """Why ``dataset``'s declared bytes are not all in the file uncompressed (``None``: they are)."""
    plist = dataset.id.get_create_plist()
    if dataset.is_virtual or plist.get_external_count():
        return "its data lives outside this file"
    if plist.get_nfilters():
        names = ", ".join(plist.get_filter(i)[3].decode("ascii", "replace") or "?" for i in range(plist.get_nfilters()))
        return f"it is stored through HDF5 filters ({names}); Keras writes weights uncompressed"
    stored = dataset.id.get_storage_size()
    if stored < _dataset_bytes(dataset):
        return f"the file stores {describe_bytes(stored)} of it (the rest would be the fill value)"
    return None


def _keras_names(group: Any, name: str) -> list[str]:
    """A name list Keras keeps in attribute ``name`` or in chunks ``name0``, ``name1``, ... (read as Keras reads it)."""
    attrs = group.attrs
    if name in attrs:
        chunks = [attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in attrs:
            chunks.append(attrs[f"{name}{len(chunks)}"])
    items = [item for chunk in chunks for item in np.ravel(chunk).tolist()]
    return [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in items]


def _keras_reads(handle: Any) -> list[Any]:
    """Every dataset ``load_model`` reads, in order, once per time a weight list names it.

    Keras (the legacy HDF5 format) reads ``model_weights``'s ``layer_names``, and for each
    layer (and ``top_level_model_weights``) every dataset its ``weight_names`` lists.
    """
    import h5py

    weights = handle.get("model_weights")
    if not isinstance(weights, h5py.Group):
        return []
    groups = [weights.get(name) for name in _keras_names(weights, "layer_names")]
    groups.append(weights.get("top_level_model_weights"))
    return [
        dataset
        for group in groups
        if isinstance(group, h5py.Group)
        for dataset in (group.get(weight) for weight in _keras_names(group, "weight_names"))
        if isinstance(dataset, h5py.Dataset)
    ]


def check_h5_sizes(path: str | os.PathLike[str]) -> None:
    """Refuse an ``.h5`` whose weights Keras would read without bound, before Keras reads any.

    h5py allocates a dataset's declared shape on reading, whatever the file holds: a 42 KB
    file whose weight declares 75,000,000 x 10 float32 (no data, the fill value) took 9.5 GB
    before Keras compared the shape with the model's. Every dataset in the file must store
    its declared bytes in the file itself, uncompressed (no fill value, no filter, no external
    or virtual storage: Keras writes none of them) and no link may lead to another file; the
    datasets Keras reads must be distinct and total at most
    :data:`~pipeline.limits.MAX_H5_WEIGHT_BYTES`. So loading allocates at most the file's
    own size, and at most that limit.

    Raises:
        InputError: one line naming the file and the dataset.
    """
    import h5py

    try:
        with h5py.File(str(path), "r") as handle:
            problem = _h5_size_problem(handle)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise InputError(f"{path}: not a loadable Keras model: cannot read its HDF5 datasets ({first_line(err)})") from None
    if problem is not None:
        raise InputError(f"{path}: {problem}")


def _h5_size_problem(handle: Any) -> str | None:
    """Why :func:`check_h5_sizes` refuses the open file ``handle`` (``None``: it does not)."""
    import h5py

    # The callbacks only collect: an exception raised inside h5py's link visit becomes a SystemError.
    links: list[tuple[str, Any]] = []
    handle.visititems_links(lambda name, link: links.append((name, link)) if isinstance(link, h5py.ExternalLink) else None)
    for name, link in links:
        target = printable(f"{link.filename}:{link.path}")
        return f"{printable(name)} links to another file ({target}); a model holds its own weights"
    datasets: list[Any] = []
    handle.visititems(lambda name, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None)
    for dataset in datasets:
        if _dataset_bytes(dataset) > MAX_H5_WEIGHT_BYTES:
            return f"{_describe(dataset)}, over the {describe_bytes(MAX_H5_WEIGHT_BYTES)} a model may hold"
        stored = _stored_problem(dataset)
        if stored is not None:
            return f"{_describe(dataset)} but {stored}"
    total, seen = 0, set()
    for dataset in _keras_reads(handle):
        if dataset.id in seen:
            name = printable(dataset.name.lstrip("/"))
            return f"dataset {name} is read twice (named twice in the model's layer_names or weight_names)"
        seen.add(dataset.id)
        total += _dataset_bytes(dataset)
        if total > MAX_H5_WEIGHT_BYTES:
            return f"the weights Keras reads pass {describe_bytes(MAX_H5_WEIGHT_BYTES)} at {_describe(dataset)}"
    return None


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
