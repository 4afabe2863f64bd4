"""Fit a zoo model with a recipe and evaluate it on the test set."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from train.data import Dataset
from train.models import ZOO
from train.recipes import Recipe

__all__ = ["TrainResult", "seed_everything", "fit", "validation_split"]


@dataclass
class TrainResult:
    """What a training run produced."""

    model: tf.keras.Model
    history: dict[str, list[float]]
    test_accuracy: float
    test_predictions: np.ndarray
    train_seconds: float
    train_images: int
    val_images: int


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    tf.keras.utils.set_random_seed(seed)


def validation_split(count: int) -> int:
    """Images held out of the training slice for validation: 10%, at most 5,000."""
    return min(5000, count // 10)


def _optimizer(recipe: Recipe, steps: int) -> tf.keras.optimizers.Optimizer:
    lr: float | tf.keras.optimizers.schedules.LearningRateSchedule = recipe.lr
    if recipe.schedule == "cosine":
        lr = tf.keras.optimizers.schedules.CosineDecay(recipe.lr, decay_steps=max(1, steps))
    elif recipe.schedule != "constant":
        raise ValueError(f"unknown schedule {recipe.schedule!r}")
    if recipe.optimizer != "adam":
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}")
    return tf.keras.optimizers.Adam(learning_rate=lr)


def fit(model_name: str, recipe: Recipe, data: Dataset, *, seed: int, limit: int | None, verbose: int = 1) -> TrainResult:
    """Build, compile and train ``model_name`` with ``recipe``, then evaluate on the test set.

    Args:
        model_name: a key of :data:`train.models.ZOO`.
        recipe: optimizer, learning rate, batch size, epochs.
        data: the dataset (uint8 images; the model scales them itself).
        seed: seed for every random source.
        limit: use only the first ``limit`` training images (``None``: all).
        verbose: Keras progress verbosity.

    Returns:
        The trained model, its history, test accuracy, predictions and timing.
    """
    seed_everything(seed)
    tf.get_logger().setLevel("ERROR")
    x = data.x_train[:limit] if limit else data.x_train
    y = data.y_train[:limit] if limit else data.y_train
    held = validation_split(len(x))
    x_fit, y_fit = x[: len(x) - held], y[: len(y) - held]
    x_val, y_val = x[len(x) - held :], y[len(y) - held :]

    model = ZOO[model_name].build()
    steps = int(np.ceil(len(x_fit) / recipe.batch_size)) * recipe.epochs
    model.compile(optimizer=_optimizer(recipe, steps), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    as_input = lambda images: images.astype(np.float32)[..., None]
    start = time.perf_counter()
    history = model.fit(
        as_input(x_fit),
        y_fit,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        validation_data=(as_input(x_val), y_val) if held else None,
        shuffle=True,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    probabilities = model.predict(as_input(data.x_test), batch_size=500, verbose=0)
    predictions = probabilities.argmax(axis=1).astype(np.uint8)
    accuracy = float((predictions == data.y_test).mean()) if len(data.y_test) else 0.0
    return TrainResult(
        model=model,
        history={key: [float(v) for v in values] for key, values in history.history.items()},
        test_accuracy=accuracy,
        test_predictions=predictions,
        train_seconds=seconds,
        train_images=len(x_fit),
        val_images=held,
    )
