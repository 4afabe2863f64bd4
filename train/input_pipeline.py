"""The tf.data input pipeline of a training run: shuffle, batch, augment, prefetch.

:func:`training_dataset` yields every epoch of a run from one iterator (``fit`` is called once,
with ``steps_per_epoch``): the images are reshuffled each epoch with the run's seed, cut into
batches of the global batch size (the last batch of an epoch may be short), turned into float32
raw pixels ``(B, H, W, C)`` and, when the recipe augments, shifted and rotated by
:func:`train.augment_tf.augment_batch` and/or translated by whole pixels and mirrored by
:func:`train.augment_tf.crop_flip_batch` (photos), with seeds made of the run's seed and the
batch's number, so every batch of every epoch draws fresh parameters and a run is repeatable.

Under ``tf.distribute`` both datasets are sharded by data (``AutoShardPolicy.DATA``): every
worker builds the same stream of global batches and keeps its own part of each one (Keras
splits a global batch of B images into B / replicas per replica), so a step of N workers
trains on exactly the images a one-process step would.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from train.augment_tf import augment_batch, crop_flip_batch

__all__ = ["steps_per_epoch", "training_dataset", "evaluation_dataset"]

# Small enough that one batch's activations stay small (the bcnn's first convolution alone
# holds 86 kB per image in float32: 86 MB for a batch of 1,000).
EVAL_BATCH = 250


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Global steps in one pass over ``count`` images (the last batch may be short)."""
    return max(1, math.ceil(count / batch_size))


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return options


def _as_input(images: tf.Tensor) -> tf.Tensor:
    """uint8 ``(B, H, W)`` (or ``(B, H, W, 1)``) -> float32 ``(B, H, W, 1)`` raw pixels (the model rescales)."""
    pixels = tf.cast(images, tf.float32)
    return pixels[..., None] if images.shape.rank == 3 else pixels


def training_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    epochs: int,
    seed: int,
    max_shift: float = 0.0,
    max_rotation: float = 0.0,
    max_crop: int = 0,
    flip: bool = False,
) -> tf.data.Dataset:
    """All ``epochs`` of a run as one dataset of ``(images, labels)`` batches.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)`` uint8 training images.
        labels: ``(N,)`` integer labels.
        batch_size: the global batch size.
        epochs: passes over the images; the dataset holds ``epochs * steps_per_epoch`` batches.
        seed: shuffling and augmentation seed.
        max_shift: largest random shift in pixels (0 with ``max_rotation`` 0: no augmentation).
        max_rotation: largest random rotation in degrees.
        max_crop: largest random whole-pixel translation (zero fill: pad-and-crop), after the above.
        flip: mirror left-right with probability 1/2 (with ``max_crop``'s draw).

    Returns:
        A dataset of float32 ``(B, H, W, C)`` images (``C = 1`` for ``(N, H, W)`` images) and int32
        ``(B,)`` labels.

    Raises:
        ValueError: empty or mismatched arrays, or a batch size or epoch count below 1.
    """
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(f"need as many labels as images (at least one), got {len(images)} and {len(labels)}")
    if batch_size < 1 or epochs < 1:
        raise ValueError(f"batch_size and epochs must be >= 1, got {batch_size} and {epochs}")
    augments = max_shift > 0 or max_rotation > 0
    crops = max_crop > 0 or flip

    pixels_all = tf.convert_to_tensor(np.asarray(images, np.uint8))
    classes_all = tf.convert_to_tensor(np.asarray(labels).astype(np.int32))

    def prepare(index: tf.Tensor, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        pixels = _as_input(tf.gather(pixels_all, rows))
        if augments:
            batch_seed = tf.stack([tf.constant(seed, tf.int64), index])
            pixels = augment_batch(pixels, batch_seed, max_shift=max_shift, max_rotation=max_rotation)
        if crops:
            crop_seed = tf.stack([tf.constant(seed, tf.int64) + 0x5EED, index])
            pixels = crop_flip_batch(pixels, crop_seed, max_crop=max_crop, flip=flip)
        return pixels, tf.gather(classes_all, rows)

    # Shuffling row numbers, not images: one copy of the images, gathered batch by batch.
    dataset = tf.data.Dataset.range(len(images)).shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).repeat(epochs).enumerate()
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())


def evaluation_dataset(images: np.ndarray, labels: np.ndarray, *, batch_size: int = EVAL_BATCH) -> tf.data.Dataset:
    """Unaugmented ``(images, labels)`` batches in order, for validation.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)`` uint8 images.
        labels: ``(N,)`` integer labels.
        batch_size: images per batch (changes no figure, only memory).

    Returns:
        A dataset of float32 ``(B, H, W, C)`` images and int32 ``(B,)`` labels.
    """
    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(images, np.uint8), np.asarray(labels)))
    dataset = dataset.batch(batch_size).map(lambda x, y: (_as_input(x), tf.cast(y, tf.int32)))
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())
