"""Train a candidate with the project's trainer and a recipe given as data.

:func:`train_candidate` hands the architecture to :func:`train.trainer.fit`, the trainer
``python -m train`` uses, so a trial gets every recipe feature (schedules, augmentation,
distillation, batch-norm momentum) and every improvement of the trainer. ``fit`` builds zoo
models by name; the candidate is registered in :data:`train.models.ZOO` under a unique name
for the duration of the call only (the zoo's own entries are never touched).

Splits: :func:`trial_data` makes the dataset a trial sees. Its "test" split is the held-back
validation slice (the last 10 % of the training images, at most 5,000, which the trainer
also holds out of its training slice), so the search never reads the test set; only the
final retraining (:mod:`search.final`) is given the real one. :func:`image_shape` reads the
image shape the candidates are built for off the dataset (MNIST's 28x28x1, CIFAR-10's 32x32x3,
any 8-bit images or 8-bit features).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from pipeline.data import Dataset
from pipeline.errors import InputError
from search.space import INPUT_RANGE, Arch

__all__ = [
    "TRIAL_RECIPE",
    "image_shape",
    "trial_data",
    "registered",
    "train_candidate",
    "held_out",
    "with_overrides",
    "release_session",
]


def _trial_recipe() -> Any:
    from train.recipes import Recipe

    return Recipe(
        "search-trial",
        "adam",
        2e-3,
        64,
        6,
        schedule="cosine",
        bn_momentum=0.9,
        logit_scale=3.0,
        description="a search trial: Adam 2e-3 cosine to 0, 6 epochs, BN momentum 0.9, logit scale 3, no augmentation",
    )


TRIAL_RECIPE = _trial_recipe()
"""The default recipe of a trial: ``best`` without its teacher and augmentation, 6 epochs instead of 40."""


def held_out(count: int) -> int:
    """Images the trainer holds out of a training slice of ``count`` (its validation split)."""
    from train.trainer import validation_split

    return validation_split(count)


def image_shape(data: Dataset) -> tuple[int, int, int]:
    """Height, width and channels of the dataset's examples: the search takes 8-bit images.

    Grey ``(H, W)`` images have one channel; colour ``(H, W, 3)`` (or any channel count) feed the
    stem's every channel, which the bnn engine compiles as one integer convolution on the raw
    values; the audio front end's features are ``(frames, bands, 1)``.

    Raises:
        InputError: examples that are not uint8 ``(H, W)`` or ``(H, W, C)`` (float inputs would put
            the stem on the engine's float path, which the size estimate does not model), or fewer
            than 2 classes.
    """
    shape = data.example_shape
    if data.dtype != np.uint8 or len(shape) not in (2, 3):
        raise InputError(
            f"search: the examples are {data.dtype} {shape}; the search takes 8-bit images or features, "
            "uint8 (H, W) or (H, W, C) (the bnn engine's integer stem reads raw 8-bit values)"
        )
    if data.num_classes < 2:
        raise InputError(f"search: the dataset has {data.num_classes} class; a classifier needs at least 2")
    return shape[0], shape[1], (shape[2] if len(shape) == 3 else 1)


def trial_data(data: Dataset, limit: int | None) -> Dataset:
    """The dataset of a trial: the first ``limit`` training images, the held-back split as "test".

    Returns:
        A :class:`Dataset` whose ``x_train`` is the training slice (the trainer holds its last
        :func:`held_out` images out of training) and whose ``x_test`` is that same held-out split.
    """
    x = data.x_train[:limit] if limit else data.x_train
    y = data.y_train[:limit] if limit else data.y_train
    held = held_out(len(x))
    return Dataset(
        x,
        y,
        x[len(x) - held :],
        y[len(y) - held :],
        data.source,
        dict(data.sha256),
        data.num_classes,
        data.classes,
        frontend=data.frontend,
    )


@contextmanager
def registered(name: str, arch: Arch) -> Iterator[None]:
    """Make ``arch`` buildable as zoo model ``name`` while the block runs.

    Raises:
        ValueError: ``name`` is already a zoo model.
    """
    from search.builder import build_model
    from train.models import ZOO, ModelSpec

    if name in ZOO:
        raise ValueError(f"{name!r} is already a zoo model")
    ZOO[name] = ModelSpec(
        name,
        f"search candidate {arch.tag()}",
        INPUT_RANGE,
        lambda input_shape, classes: build_model(arch, name),
        lambda shape, dtype, classes: None,
        "the search's dataset",
    )
    try:
        yield
    finally:
        ZOO.pop(name, None)


def train_candidate(arch: Arch, recipe: Any, data: Dataset, *, seed: int, name: str, limit: int | None = None) -> Any:
    """Train ``arch`` with ``recipe`` through :func:`train.trainer.fit` (no progress output).

    Args:
        arch: the architecture.
        recipe: a :class:`train.recipes.Recipe`.
        data: the dataset (:func:`trial_data` for a trial; the real one for the final model).
        seed: seed for every random source.
        name: the model's name (Keras and zoo).
        limit: first ``limit`` training images (``None``: all of ``data``).

    Returns:
        The trainer's ``TrainResult`` (model, history, test accuracy on ``data``'s test split, ...).
    """
    from train.trainer import fit

    gc.collect()
    with registered(name, arch):
        result = fit(name, recipe, data, seed=seed, limit=limit, progress="none")
    return result


def with_overrides(recipe: Any, overrides: dict[str, Any]) -> Any:
    """``recipe`` with ``overrides`` applied (a new recipe; ``name`` kept)."""
    return replace(recipe, **overrides) if overrides else recipe


def release_session() -> None:
    """Free the Keras graph state a trial left behind (memory stays flat over many trials)."""
    import tensorflow as tf

    tf.keras.backend.clear_session()
    gc.collect()
