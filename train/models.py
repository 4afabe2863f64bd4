"""The model zoo: every model takes raw 8-bit values 0..255 (float32) and scales them itself.

Each entry has a one-line description (shown by ``python -m train --help``), the inputs it
takes and a builder called with the dataset's example shape ``(H, W, C)`` and class count. The
MNIST models (the seed BCNN, reproduced exactly with its 93,790 parameters, and the study's
baselines) take 28x28x1 grey images of 10 classes; the photo models (:mod:`train.photo_models`)
take 8-bit images of any size, channel count and class count their layers allow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import larq as lq
import tensorflow as tf

from train.audio_models import build_ds_cnn, build_kws_bnn, features_problem
from train.autograph import leave_tf_keras_unconverted
from train.photo_models import build_colour_bnn, build_resnet8, photo_problem
from train.study_models import build_bc_cnn, build_bc_mlp, build_logreg

__all__ = ["ModelSpec", "ZOO", "build_model", "input_shape_of", "INPUT_SHAPE", "NUM_CLASSES"]

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10

leave_tf_keras_unconverted()  # every fit/predict of a zoo model traces faster (see train.autograph)


Builder = Callable[[tuple[int, int, int], int], tf.keras.Model]
"""``build(input_shape, classes)``: an uncompiled model for ``(H, W, C)`` examples and that many classes."""
InputCheck = Callable[[tuple[int, ...], str, int], "str | None"]
"""``problem(example_shape, dtype, classes)``: why the model cannot take such examples, or ``None``."""


def mnist_problem(shape: tuple[int, ...], dtype: str, classes: int) -> str | None:
    """The MNIST models take 28x28 (or 28x28x1) uint8 grey images of 10 classes."""
    if tuple(shape) in (INPUT_SHAPE[:2], INPUT_SHAPE) and dtype == "uint8" and classes == NUM_CLASSES:
        return None
    return f"takes 28x28 8-bit grey images of {NUM_CLASSES} classes, not {dtype} {shape} examples of {classes} classes"


def input_shape_of(example_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The model input ``(H, W, C)`` for a dataset's examples: ``(H, W)`` images get one channel."""
    shape = tuple(int(d) for d in example_shape)
    if len(shape) == 2:
        return (shape[0], shape[1], 1)
    if len(shape) == 3:
        return (shape[0], shape[1], shape[2])
    raise ValueError(f"expected (H, W) or (H, W, C) examples, got shape {shape}")


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry: its name, a one-line description, the input range it scales to, a builder.

    Attributes:
        name: the zoo name (``python -m train --model NAME``).
        description: one line for ``--help``.
        input_range: the range the model maps raw values 0..255 onto (recorded for convert).
        build: ``build(input_shape, classes)``, see :data:`Builder`.
        problem: ``problem(example_shape, dtype, classes)``, see :data:`InputCheck`.
        takes: what the model takes, in words (for ``--help`` and refusals).
    """

    name: str
    description: str
    input_range: tuple[float, float]
    build: Builder
    problem: InputCheck = mnist_problem
    takes: str = "28x28 8-bit grey images, 10 classes"


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


def _mnist(build: Callable[[], tf.keras.Model]) -> Builder:
    """An MNIST builder as a :data:`Builder` (the shape and class count were checked by ``mnist_problem``)."""
    return lambda input_shape, classes: build()


def _photo(divisor: int) -> InputCheck:
    return lambda shape, dtype, classes: photo_problem(shape, dtype, classes, divisor=divisor)


def _features(minimum: int) -> InputCheck:
    return lambda shape, dtype, classes: features_problem(shape, dtype, classes, minimum=minimum)


_PHOTOS = "8-bit images, any channel count and classes"
_UNIT = (0.0, 1.0)
ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "bcnn", "seed binarized CNN (Larq QuantConv2D/QuantDense, ste_sign), 93,790 params", (-1.0, 1.0), _mnist(build_bcnn)
        ),
        ModelSpec("cnn", "same topology in full precision (ReLU, biases), the float/int8 baseline", _UNIT, _mnist(build_cnn)),
        ModelSpec("mlp", "full-precision MLP: Dense128-ReLU, Dense128-ReLU, Dropout 0.25, Dense10", _UNIT, _mnist(build_mlp)),
        # The comparison study's models (train.study_models).
        ModelSpec("logreg", "logistic regression: one dense softmax layer on the 784 pixels", (0.0, 1.0), _mnist(build_logreg)),
        ModelSpec("bc_mlp", "mlp with BinaryConnect weights (stochastic +-1, / sqrt(fan-in))", (0.0, 1.0), _mnist(build_bc_mlp)),
        ModelSpec("bc_cnn", "cnn with binary weights (sign), no batch norm, / sqrt(fan-in)", (0.0, 1.0), _mnist(build_bc_cnn)),
        # Photos (train.photo_models).
        ModelSpec(
            "colour_bnn",
            "binarized photo classifier for a Cortex-M: 8-bit stem on every channel, binary blocks, 8-bit scores",
            (-1.0, 1.0),
            build_colour_bnn,
            _photo(8),
            f"{_PHOTOS}; height and width multiples of 8 (designed for 32x32x3)",
        ),
        ModelSpec(
            "resnet8",
            "MLPerf Tiny's ResNet-8 (float, 78,666 params for CIFAR-10), to retrain on the same data or as a teacher",
            (0.0, 255.0),
            build_resnet8,
            _photo(4),
            f"{_PHOTOS}; height and width multiples of 4",
        ),
        # Keyword spotting on the audio front end's 8-bit features (train.audio_models).
        ModelSpec(
            "kws_bnn",
            "binarized keyword spotter for a 16 KiB Cortex-M0: 8-bit stem on the features, binary blocks, 8-bit scores",
            (-1.0, 1.0),
            build_kws_bnn,
            _features(8),
            "8-bit features (frames, bands, 1) of the audio front end, at least 8x8, any classes",
        ),
        ModelSpec(
            "ds_cnn",
            "MLPerf Tiny's DS-CNN keyword spotter (float: 10x4 conv, 4 depthwise-separable blocks of 64), for int8",
            (0.0, 1.0),
            build_ds_cnn,
            _features(2),
            "8-bit features (frames, bands, 1) of the audio front end, any classes",
        ),
    )
}


def build_model(name: str, input_shape: tuple[int, int, int] = INPUT_SHAPE, classes: int = NUM_CLASSES) -> tf.keras.Model:
    """Build the zoo model ``name`` (uncompiled) for ``input_shape`` examples and ``classes`` classes.

    Raises:
        KeyError: ``name`` is not in :data:`ZOO`.
    """
    return ZOO[name].build(input_shape, classes)
