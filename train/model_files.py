"""Trained Keras models read by ``python -m train``: a distillation teacher, or the weights to start from.

Both are untrusted files like any model the pipeline reads: inspected without running their code
(:mod:`pipeline.keras_files`), then checked.

* ``--teacher FILE.h5``: one input that takes the student's batches of the dataset's raw values,
  one output of the dataset's class count, and outputs that are probabilities (a softmax), since
  the student learns from ``(1 - alpha) * one_hot(label) + alpha * softened(teacher)``. Its
  accuracy on the test set is measured once and recorded with its sha256 in ``NAME.train.json``.
* ``--init FILE.h5``: a model whose weights have exactly the shapes, in order, of the zoo model
  being trained for the dataset (fine-tuning: MLPerf Tiny's ``pretrainedResnet.h5`` for
  ``resnet8``); its sha256 is recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

import train.quantizers  # noqa: F401  (registers the project's own quantizers before a teacher loads)
from pipeline.artifacts import sha256_file
from pipeline.data import Dataset
from pipeline.errors import InputError
from pipeline.keras_files import check_image_model, load_keras_model
from train.models import ZOO, input_shape_of

__all__ = ["Teacher", "load_teacher", "InitialWeights", "load_initial_weights"]

_CHECK_EXAMPLES = 64
_PROBABILITY_TOLERANCE = 1e-3


@dataclass
class Teacher:
    """A loaded, checked teacher.

    Attributes:
        model: the Keras model.
        path: the file it was read from.
        sha256: the file's sha256.
        test_accuracy: its accuracy on the dataset's test split.
    """

    model: tf.keras.Model
    path: Path
    sha256: str
    test_accuracy: float

    def describe(self) -> dict[str, Any]:
        """JSON-ready ``{"path", "sha256", "test_accuracy"}`` for ``NAME.train.json``."""
        return {"path": self.path.name, "sha256": self.sha256, "test_accuracy": self.test_accuracy}


def _as_input(model: tf.keras.Model, examples: np.ndarray) -> np.ndarray:
    """The dataset's raw examples as float32 in the model's input shape."""
    return examples.astype(np.float32).reshape((len(examples), *model.input_shape[1:]))


def load_teacher(path: str | os.PathLike[str], data: Dataset, *, trust_model: bool = False) -> Teacher:
    """Load ``path`` as a teacher for ``data`` and measure it on the test split.

    Args:
        path: a Keras ``.h5`` model that takes the dataset's raw examples and ends in a softmax.
        data: the dataset the student trains on.
        trust_model: load a model whose layers carry Python code (runs it).

    Returns:
        The :class:`Teacher`.

    Raises:
        InputError: the file is not a loadable model, does not take one example or return the
            dataset's class count, or does not output probabilities.
    """
    path = Path(path)
    model = load_keras_model(path, trust_model=trust_model)
    check_image_model(model, f"--teacher {path.name}", data.example_shape, data.num_classes)
    expected = input_shape_of(data.example_shape)
    if tuple(model.input_shape[1:]) != expected:
        raise InputError(
            f"--teacher {path.name}: takes inputs of shape {tuple(model.input_shape[1:])}, the student's batches are "
            f"{expected}; the teacher is called on the same batches"
        )
    probe = model.predict(_as_input(model, data.x_test[:_CHECK_EXAMPLES]), verbose=0).reshape(-1, data.num_classes)
    sums = probe.sum(axis=1)
    if not np.isfinite(probe).all() or probe.min() < 0 or np.abs(sums - 1.0).max() > _PROBABILITY_TOLERANCE:
        raise InputError(
            f"--teacher {path.name}: its outputs are not probabilities (row sums {sums.min():.3g}..{sums.max():.3g}); "
            "a teacher must end in a softmax"
        )
    predictions = model.predict(_as_input(model, data.x_test), batch_size=500, verbose=0).reshape(-1, data.num_classes)
    accuracy = float((predictions.argmax(axis=1) == data.y_test).mean())
    return Teacher(model, path, sha256_file(path), accuracy)


@dataclass
class InitialWeights:
    """Weights to start a training from, and the file they came from."""

    weights: list[np.ndarray]
    path: Path
    sha256: str

    def describe(self) -> dict[str, Any]:
        """JSON-ready ``{"path", "sha256"}`` for ``NAME.train.json``."""
        return {"path": self.path.name, "sha256": self.sha256}


def load_initial_weights(
    path: str | os.PathLike[str], model_name: str, data: Dataset, *, trust_model: bool = False
) -> InitialWeights:
    """The weights of ``path``, checked to fit zoo model ``model_name`` built for ``data``.

    Raises:
        InputError: the file is not a loadable model, or its weights differ in number or shape.
    """
    path = Path(path)
    loaded = load_keras_model(path, trust_model=trust_model).get_weights()
    fresh = ZOO[model_name].build(input_shape_of(data.example_shape), data.num_classes).get_weights()
    shapes = [tuple(w.shape) for w in fresh]
    found = [tuple(w.shape) for w in loaded]
    if shapes != found:
        first = next((i for i, (a, b) in enumerate(zip(shapes, found, strict=False)) if a != b), min(len(shapes), len(found)))
        theirs = found[first] if first < len(found) else "none"
        ours = shapes[first] if first < len(shapes) else "none"
        raise InputError(
            f"--init {path.name}: its {len(found)} weights do not fit {model_name} for this dataset "
            f"({len(shapes)} weights; weight {first} is {theirs}, {model_name} needs {ours})"
        )
    return InitialWeights([np.asarray(w) for w in loaded], path, sha256_file(path))
