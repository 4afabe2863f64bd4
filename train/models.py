"""The model zoo: every model takes raw pixels 0..255 (float32, 28x28x1) and scales them itself.

Each entry has a one-line description (shown by ``python -m train --help``) and a builder.
The seed BCNN is reproduced exactly, including its 93,790 parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import larq as lq
import tensorflow as tf

from train.autograph import leave_tf_keras_unconverted
from train.study_models import build_bc_cnn, build_bc_mlp, build_logreg

__all__ = ["ModelSpec", "ZOO", "build_model", "INPUT_SHAPE", "NUM_CLASSES"]

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10

leave_tf_keras_unconverted()  # every fit/predict of a zoo model traces faster (see train.autograph)


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry: its name, a one-line description, the input range it scales to, a builder."""

    name: str
    description: str
    input_range: tuple[float, float]
    build: Callable[[], tf.keras.Model]


def _rescaling(lo: float, hi: float) -> tf.keras.layers.Layer:
    """Map raw pixels 0..255 onto [lo, hi] inside the model."""
    return tf.keras.layers.Rescaling(scale=(hi - lo) / 255.0, offset=lo, input_shape=INPUT_SHAPE, name="rescale")


def build_bcnn() -> tf.keras.Model:
    """The seed binarized CNN (Larq's MNIST example), inputs scaled to [-1, 1]."""
    binary = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip"}
    return tf.keras.Sequential(
        [
            _rescaling(-1.0, 1.0),
            lq.layers.QuantConv2D(32, (3, 3), kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False),
            tf.keras.layers.MaxPooling2D((2, 2)),
            tf.keras.layers.BatchNormalization(scale=False),
            lq.layers.QuantConv2D(64, (3, 3), use_bias=False, **binary),
            tf.keras.layers.MaxPooling2D((2, 2)),
            tf.keras.layers.BatchNormalization(scale=False),
            lq.layers.QuantConv2D(64, (3, 3), use_bias=False, **binary),
            tf.keras.layers.BatchNormalization(scale=False),
            tf.keras.layers.Flatten(),
            lq.layers.QuantDense(64, use_bias=False, **binary),
            tf.keras.layers.BatchNormalization(scale=False),
            lq.layers.QuantDense(10, use_bias=False, **binary),
            tf.keras.layers.BatchNormalization(scale=False),
            tf.keras.layers.Activation("softmax"),
        ],
        name="bcnn",
    )


def build_cnn() -> tf.keras.Model:
    """The BCNN's topology in full precision (ReLU, biases), inputs scaled to [0, 1]."""
    return tf.keras.Sequential(
        [
            _rescaling(0.0, 1.0),
            tf.keras.layers.Conv2D(32, (3, 3), activation="relu"),
            tf.keras.layers.MaxPooling2D((2, 2)),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Conv2D(64, (3, 3), activation="relu"),
            tf.keras.layers.MaxPooling2D((2, 2)),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Conv2D(64, (3, 3), activation="relu"),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Dense(10),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Activation("softmax"),
        ],
        name="cnn",
    )


def build_mlp() -> tf.keras.Model:
    """The seed study's full-precision MLP, inputs scaled to [0, 1]."""
    return tf.keras.Sequential(
        [
            _rescaling(0.0, 1.0),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dropout(0.25),
            tf.keras.layers.Dense(10, activation="softmax"),
        ],
        name="mlp",
    )


ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("bcnn", "seed binarized CNN (Larq QuantConv2D/QuantDense, ste_sign), 93,790 params", (-1.0, 1.0), build_bcnn),
        ModelSpec("cnn", "same topology in full precision (ReLU, biases), the float/int8 baseline", (0.0, 1.0), build_cnn),
        ModelSpec("mlp", "full-precision MLP: Dense128-ReLU, Dense128-ReLU, Dropout 0.25, Dense10", (0.0, 1.0), build_mlp),
        # The comparison study's models (train.study_models).
        ModelSpec("logreg", "logistic regression: one dense softmax layer on the 784 pixels", (0.0, 1.0), build_logreg),
        ModelSpec("bc_mlp", "mlp with BinaryConnect weights (stochastic +-1, / sqrt(fan-in))", (0.0, 1.0), build_bc_mlp),
        ModelSpec("bc_cnn", "cnn with binary weights (sign), no batch norm, / sqrt(fan-in)", (0.0, 1.0), build_bc_cnn),
    )
}


def build_model(name: str) -> tf.keras.Model:
    """Build the zoo model ``name`` (uncompiled).

    Raises:
        KeyError: ``name`` is not in :data:`ZOO`.
    """
    return ZOO[name].build()
