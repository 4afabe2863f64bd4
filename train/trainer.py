"""Fit a zoo model with a recipe and evaluate it on the test set."""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pipeline.data import Dataset
from train.augment import augment_images
from train.batchnorm import recalibrate_batchnorm
from train.distill import soft_targets
from train.losses import scaled_categorical_crossentropy, scaled_sparse_crossentropy
from train.models import ZOO
from train.optim import make_optimizer, prepare_model
from train.recipes import Recipe, get_recipe

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
    teacher_test_accuracy: float | None = None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    tf.keras.utils.set_random_seed(seed)


def validation_split(count: int) -> int:
    """Images held out of the training slice for validation: 10%, at most 5,000."""
    return min(5000, count // 10)


def _as_input(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, 28, 28, 1)`` raw pixels (the model rescales)."""
    return images.astype(np.float32)[..., None]


def _fit_per_epoch(
    model: tf.keras.Model,
    recipe: Recipe,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    *,
    teacher: tf.keras.Model | None,
    seed: int,
    verbose: int,
    callbacks: list[tf.keras.callbacks.Callback],
) -> dict[str, list[float]]:
    """Train one epoch at a time, each on a fresh shifted/rotated copy of the images
    (if the recipe augments) with fresh teacher targets (if it distills)."""
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {}
    for epoch in range(recipe.epochs):
        # Each fit() leaves reference cycles that hold its copy of the images: without this,
        # memory grows by ~100-400 MB per epoch (5 GB after 40 epochs instead of 1.5 GB).
        gc.collect()
        images = train[0]
        if recipe.augments:
            images = augment_images(images, rng, max_shift=recipe.augment_shift, max_rotation=recipe.augment_rotation)
        targets = train[1]
        if teacher is not None:
            predicted = teacher.predict(_as_input(images), batch_size=1000, verbose=0)
            targets = soft_targets(train[1], predicted, alpha=recipe.distill_alpha, temperature=recipe.distill_temperature)
        step = model.fit(
            _as_input(images),
            targets,
            batch_size=recipe.batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            validation_data=validation,
            shuffle=True,
            verbose=verbose,
            callbacks=callbacks,
        )
        for key, values in step.history.items():
            history.setdefault(key, []).extend(values)
    return history


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``predictions`` equal to ``labels`` (0 for no labels)."""
    return float((predictions == labels).mean()) if len(labels) else 0.0


class PerEpochTestAccuracy(tf.keras.callbacks.Callback):
    """Keras callback: test-set accuracy after every epoch, in ``accuracies``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        super().__init__()
        self.images, self.labels = images, labels
        self.accuracies: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Predict the whole test set and record the accuracy."""
        predicted = self.model.predict(self.images, batch_size=1000, verbose=0).argmax(axis=1)
        self.accuracies.append(_accuracy(predicted, self.labels))


def _loss(recipe: Recipe) -> str | object:
    """The Keras loss: sparse labels, or target distributions when distilling."""
    if recipe.distill_teacher:
        return scaled_categorical_crossentropy(recipe.logit_scale)
    if recipe.logit_scale == 1.0:
        return "sparse_categorical_crossentropy"
    return scaled_sparse_crossentropy(recipe.logit_scale)


def fit(
    model_name: str,
    recipe: Recipe,
    data: Dataset,
    *,
    seed: int,
    limit: int | None,
    verbose: int = 1,
    callbacks: list[tf.keras.callbacks.Callback] | None = None,
    track_test: bool = False,
) -> TrainResult:
    """Build, compile and train ``model_name`` with ``recipe``, then evaluate on the test set.

    Args:
        model_name: a key of :data:`train.models.ZOO`.
        recipe: optimizer, learning rate, batch size, epochs.
        data: the dataset (uint8 images; the model scales them itself).
        seed: seed for every random source.
        limit: use only the first ``limit`` training images (``None``: all).
        verbose: Keras progress verbosity.
        callbacks: extra Keras callbacks (for example, per-epoch measurements).
        track_test: also measure the test set after every epoch, as ``history["test_accuracy"]``.
            An observation (BNN accuracy swings from epoch to epoch); nothing is selected on it.

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

    start = time.perf_counter()
    teacher = teacher_accuracy = None
    if recipe.distill_teacher:
        taught = fit("cnn", get_recipe(recipe.distill_teacher), data, seed=seed, limit=limit, verbose=verbose)
        teacher, teacher_accuracy = taught.model, taught.test_accuracy
        seed_everything(seed)

    model = prepare_model(ZOO[model_name].build(), recipe)
    steps = int(np.ceil(len(x_fit) / recipe.batch_size)) * recipe.epochs
    model.compile(optimizer=make_optimizer(recipe, steps), loss=_loss(recipe), metrics=["accuracy"])

    validation = None
    if held:
        validation = (_as_input(x_val), np.eye(10, dtype=np.float32)[y_val] if teacher is not None else y_val)
    callbacks = list(callbacks or [])
    tracker = PerEpochTestAccuracy(_as_input(data.x_test), data.y_test) if track_test else None
    if tracker is not None:
        callbacks.append(tracker)
    if recipe.augments or teacher is not None:
        history = _fit_per_epoch(
            model, recipe, (x_fit, y_fit), validation, teacher=teacher, seed=seed, verbose=verbose, callbacks=callbacks
        )
    else:
        history = model.fit(
            _as_input(x_fit),
            y_fit,
            batch_size=recipe.batch_size,
            epochs=recipe.epochs,
            validation_data=validation,
            shuffle=True,
            verbose=verbose,
            callbacks=callbacks,
        ).history
    if tracker is not None:
        history = {**history, "test_accuracy": tracker.accuracies}
    if recipe.bn_recalibration_images:
        recalibrate_batchnorm(model, _as_input(x_fit[: recipe.bn_recalibration_images]))
    seconds = time.perf_counter() - start
    probabilities = model.predict(_as_input(data.x_test), batch_size=500, verbose=0)
    predictions = probabilities.argmax(axis=1).astype(np.uint8)
    accuracy = _accuracy(predictions, data.y_test)
    return TrainResult(
        model=model,
        history={key: [float(v) for v in values] for key, values in history.items()},
        test_accuracy=accuracy,
        test_predictions=predictions,
        train_seconds=seconds,
        train_images=len(x_fit),
        val_images=held,
        teacher_test_accuracy=teacher_accuracy,
    )
