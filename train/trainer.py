"""Fit a zoo model with a recipe and evaluate it on the test set.

One ``fit`` call trains every epoch: the data come from the tf.data pipeline of
:mod:`train.input_pipeline` (shuffled, batched, augmented inside the pipeline), the learning
rate follows a Keras schedule over all the run's steps, and a recipe that distils trains its
float teacher first, then the student through :class:`train.distiller.Distiller` (the teacher
labels each batch inside the training step). Under a ``tf.distribute`` strategy the models
are built in its scope and every worker runs the same code.

The model handed back is always a plain zoo model, built outside any strategy, holding the
trained weights: what is saved, evaluated and converted never carries a distributed variable
or the distillation wrapper, and reloads with ``import larq`` alone.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from pipeline.data import Dataset
from train.batchnorm import recalibrate_batchnorm
from train.distiller import Distiller
from train.input_pipeline import evaluation_dataset, steps_per_epoch, training_dataset
from train.losses import scaled_categorical_crossentropy, scaled_sparse_crossentropy
from train.models import ZOO, input_shape_of
from train.optim import make_optimizer, prepare_model
from train.progress import PROGRESS, EpochLines
from train.recipes import Recipe, get_recipe

__all__ = ["TrainResult", "seed_everything", "fit", "validation_split", "weights_sha256", "plain_model", "copy_weights"]


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        model: the trained model as a plain zoo model (no strategy, no wrapper).
        history: per-epoch logs (``loss``, ``accuracy``, ``val_*``, ``test_accuracy`` if tracked).
        test_accuracy: accuracy on the whole test set.
        test_predictions: predicted class per test image.
        train_seconds: wall time of training (teacher included).
        train_cpu_seconds: process CPU time (user + system) of training, teacher included.
        train_images: images trained on.
        val_images: images held out for validation.
        teacher_test_accuracy: the teacher's test accuracy, when the recipe distils.
        kept_epoch: the epoch (from 1) whose weights the model holds: the last one, or the one
            ``keep_best_epochs`` chose.
    """

    model: tf.keras.Model
    history: dict[str, list[float]]
    test_accuracy: float
    test_predictions: np.ndarray
    train_seconds: float
    train_cpu_seconds: float
    train_images: int
    val_images: int
    teacher_test_accuracy: float | None = None
    kept_epoch: int | None = None

    @property
    def validation_accuracy(self) -> float | None:
        """Accuracy on the validation split of the weights the model holds (``None`` without one)."""
        values = self.history.get("val_accuracy")
        if not values:
            return None
        return float(values[(self.kept_epoch or len(values)) - 1])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    tf.keras.utils.set_random_seed(seed)


def validation_split(count: int) -> int:
    """Images held out of the training slice for validation: 10%, at most 5,000."""
    return min(5000, count // 10)


def weights_sha256(model: tf.keras.Model) -> str:
    """sha256 over every weight of ``model`` (shapes and float32 bytes, in order): equal weights, equal digest."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        array = np.ascontiguousarray(array, dtype=np.float32)
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _as_input(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W)`` (or ``(N, H, W, 1)``) -> float32 ``(N, H, W, 1)`` raw pixels (the model rescales)."""
    pixels = images.astype(np.float32)
    return pixels[..., None] if pixels.ndim == 3 else pixels


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``predictions`` equal to ``labels`` (0 for no labels)."""
    return float((predictions == labels).mean()) if len(labels) else 0.0


class _Classifier:
    """Predicted classes of a plain model over a dataset, by direct calls in one traced function.

    Not ``model.predict``: inside ``fit`` (the per-epoch tracker) Keras would distribute the
    plain model's predictions with the training strategy.
    """

    def __init__(self, model: tf.keras.Model) -> None:
        self._classes = tf.function(lambda images: tf.argmax(model(images, training=False), axis=1))

    def __call__(self, images: tf.data.Dataset) -> np.ndarray:
        """Predicted class per image (uint8) of an :func:`~train.input_pipeline.evaluation_dataset`."""
        return np.concatenate([self._classes(batch).numpy() for batch, _ in images]).astype(np.uint8)


@contextmanager
def _global_policy(name: str) -> Iterator[None]:
    """Keras' global dtype policy set to ``name`` while the block runs (layers built in it keep it)."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def _training_model(model_name: str, recipe: Recipe, data: Dataset, *, sync_bn: bool) -> tf.keras.Model:
    """The zoo model as trained (built in the caller's strategy scope); synchronized batch norm on request.

    Under ``precision == "mixed_bfloat16"`` the layers compute in bfloat16 and a float32 identity
    is appended, so the loss sees float32 probabilities; the weights, in order, are the plain model's.
    """
    with _global_policy(recipe.precision):
        model = ZOO[model_name].build(input_shape_of(data.example_shape), data.num_classes)
        if model.outputs[0].dtype != tf.float32:
            as_float = tf.keras.layers.Activation("linear", dtype="float32", name="float32_output")
            model = tf.keras.Model(model.inputs, as_float(model.outputs[0]), name=model.name)
    if sync_bn:
        config = model.get_config()
        for layer in config["layers"]:
            if layer["class_name"] == "BatchNormalization":
                layer["config"]["synchronized"] = True
        synced = type(model).from_config(config)
        synced.set_weights(model.get_weights())
        model = synced
    return prepare_model(model, recipe)


def plain_model(model_name: str, recipe: Recipe, data: Dataset) -> tf.keras.Model:
    """A fresh zoo model for ``data``'s examples with the recipe's BN momentum; build it outside any strategy scope."""
    return prepare_model(ZOO[model_name].build(input_shape_of(data.example_shape), data.num_classes), recipe)


def copy_weights(trained: tf.keras.Model, into: tf.keras.Model) -> tf.keras.Model:
    """Set ``into``'s weights to ``trained``'s and return ``into``.

    Under a multi-worker strategy every worker must call this at the same point: reading the
    batch-norm moving statistics averages them across the replicas (a collective operation).
    """
    into.set_weights(trained.get_weights())
    return into


class TestSetTracker(tf.keras.callbacks.Callback):
    """Keras callback: the test-set accuracy of the model in training after every epoch.

    The weights are copied into a plain model first (:func:`copy_weights`), so the figure is
    the one the final evaluation would give at that epoch, on every worker.
    """

    def __init__(self, trained: tf.keras.Model, plain: tf.keras.Model, images: tf.data.Dataset, labels: np.ndarray) -> None:
        super().__init__()
        self.trained, self.plain = trained, plain
        self.images, self.labels = images, labels
        self.accuracies: list[float] = []
        self._classify = _Classifier(plain)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Predict the whole test set with this epoch's weights and record the accuracy."""
        copy_weights(self.trained, self.plain)
        self.accuracies.append(_accuracy(self._classify(self.images), self.labels))
        if logs is not None:
            logs["test_accuracy"] = self.accuracies[-1]


class BestEpochKeeper(tf.keras.callbacks.Callback):
    """Keras callback: the weights of the epoch most accurate on validation among the last few.

    Ties keep the later epoch. :meth:`restore` puts the kept weights back into the model.
    """

    def __init__(self, trained: tf.keras.Model, epochs: int, last: int) -> None:
        super().__init__()
        self.trained, self.first = trained, epochs - last
        self.best = -1.0
        self.kept_epoch: int | None = None
        self._weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Copy the weights when this epoch is one of the last and at least as accurate as the best."""
        if epoch < self.first or logs is None or "val_accuracy" not in logs:
            return
        if float(logs["val_accuracy"]) >= self.best:
            self.best, self.kept_epoch = float(logs["val_accuracy"]), epoch + 1
            self._weights = [np.array(w, copy=True) for w in self.trained.get_weights()]

    def restore(self) -> int | None:
        """Load the kept weights into the model; returns their epoch (from 1), ``None`` if none was kept."""
        if self._weights is not None:
            self.trained.set_weights(self._weights)
        return self.kept_epoch


def _loss(recipe: Recipe, distils: bool) -> Any:
    """The Keras loss: sparse labels, or target distributions when distilling."""
    if distils:
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
    progress: str = "bar",
    callbacks: list[tf.keras.callbacks.Callback] | None = None,
    track_test: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    sync_bn: bool = False,
    label: str = "",
    teacher: tf.keras.Model | None = None,
    initial_weights: list[np.ndarray] | None = None,
) -> TrainResult:
    """Build, compile and train ``model_name`` with ``recipe``, then evaluate on the test set.

    Args:
        model_name: a key of :data:`train.models.ZOO`.
        recipe: optimizer, learning-rate schedule, batch size (global), epochs, augmentation,
            distillation.
        data: the dataset (uint8 images; the model scales them itself).
        seed: seed for every random source (shuffling and augmentation included).
        limit: use only the first ``limit`` training images (``None``: all).
        progress: ``bar`` (Keras' progress bar), ``lines`` (one line per epoch) or ``none``.
        callbacks: extra Keras callbacks (for example, per-epoch measurements).
        track_test: also measure the test set after every epoch, as ``history["test_accuracy"]``.
            An observation (BNN accuracy swings from epoch to epoch); nothing is selected on it.
        strategy: the ``tf.distribute`` strategy to train under (default: none).
        sync_bn: synchronize batch-norm batch statistics across the strategy's replicas.
        label: prefix of the progress lines (``"teacher "`` for a distillation teacher).
        teacher: a trained model to distil from (``python -m train --teacher FILE.h5``), with the
            recipe's ``distill_alpha`` and ``distill_temperature``; it takes the same raw examples
            and returns the same class count. Without it, a recipe with ``distill_teacher`` first
            trains its ``teacher_model`` with that recipe.
        initial_weights: start from these weights (``python -m train --init FILE.h5``: a trained model
            of the same architecture) instead of a fresh initialisation.

    Returns:
        The trained model (a plain zoo model, see :func:`copy_weights`), its history, test accuracy,
        predictions and timing.

    Raises:
        ValueError: unknown ``progress``.
    """
    if progress not in PROGRESS:
        raise ValueError(f"progress must be one of {', '.join(PROGRESS)}, got {progress!r}")
    strategy = strategy or tf.distribute.get_strategy()
    seed_everything(seed)
    tf.get_logger().setLevel("ERROR")
    x = data.x_train[:limit] if limit else data.x_train
    y = data.y_train[:limit] if limit else data.y_train
    held = validation_split(len(x))
    if recipe.keep_best_epochs and not held:
        raise ValueError(f"recipe {recipe.name!r}: keep_best_epochs needs a validation split ({len(x)} training images)")
    x_fit, y_fit = x[: len(x) - held], y[: len(y) - held]
    x_val, y_val = x[len(x) - held :], y[len(y) - held :]

    start, cpu_start = time.perf_counter(), time.process_time()
    teacher_accuracy = None
    if teacher is None and recipe.distill_teacher:
        teacher_recipe = get_recipe(recipe.distill_teacher)
        taught = fit(
            recipe.teacher_model,
            teacher_recipe,
            data,
            seed=seed,
            limit=limit,
            progress=progress,
            strategy=strategy,
            sync_bn=sync_bn,
            label="teacher ",
        )
        teacher, teacher_accuracy = taught.model, taught.test_accuracy
        seed_everything(seed)

    steps = steps_per_epoch(len(x_fit), recipe.batch_size)
    with strategy.scope():
        model = _training_model(model_name, recipe, data, sync_bn=sync_bn)
        if initial_weights is not None:
            model.set_weights(initial_weights)
        if teacher is not None:
            teacher_copy = tf.keras.models.clone_model(teacher)
            teacher_copy.set_weights(teacher.get_weights())
            trainee: tf.keras.Model = Distiller(
                model, teacher_copy, alpha=recipe.distill_alpha, temperature=recipe.distill_temperature
            )
            metrics: list[Any] = [tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        else:
            trainee, metrics = model, ["accuracy"]
        optimizer = make_optimizer(recipe, steps * recipe.epochs)
        trainee.compile(optimizer=optimizer, loss=_loss(recipe, teacher is not None), metrics=metrics)

    dataset = training_dataset(
        x_fit,
        y_fit,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        seed=seed,
        max_shift=recipe.augment_shift,
        max_rotation=recipe.augment_rotation,
        max_crop=recipe.augment_crop,
        flip=recipe.augment_flip,
    )
    validation = evaluation_dataset(x_val, y_val) if held else None
    # Built here, outside the strategy scope Keras keeps open during fit().
    final = plain_model(model_name, recipe, data)
    test_images = evaluation_dataset(data.x_test, data.y_test)
    tracker = TestSetTracker(model, final, test_images, data.y_test) if track_test else None
    keeper = BestEpochKeeper(model, recipe.epochs, recipe.keep_best_epochs) if recipe.keep_best_epochs else None
    callbacks = [*(callbacks or []), *([tracker] if tracker else []), *([keeper] if keeper else [])]
    if progress == "lines":
        callbacks.append(EpochLines(recipe.epochs, prefix=label))
    history = trainee.fit(
        dataset,
        epochs=recipe.epochs,
        steps_per_epoch=steps,
        validation_data=validation,
        verbose=1 if progress == "bar" else 0,
        callbacks=callbacks,
    ).history
    if tracker is not None:
        history = {**history, "test_accuracy": tracker.accuracies}  # also in logs, for the progress line
    kept_epoch = (keeper.restore() if keeper else None) or recipe.epochs
    trained = copy_weights(model, final)
    if recipe.bn_recalibration_images:
        recalibrate_batchnorm(trained, _as_input(x_fit[: recipe.bn_recalibration_images]))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    predictions = _Classifier(trained)(test_images)
    return TrainResult(
        model=trained,
        history={key: [float(v) for v in values] for key, values in history.items()},
        test_accuracy=_accuracy(predictions, data.y_test),
        test_predictions=predictions,
        train_seconds=seconds,
        train_cpu_seconds=cpu_seconds,
        train_images=len(x_fit),
        val_images=held,
        teacher_test_accuracy=teacher_accuracy,
        kept_epoch=kept_epoch,
    )
