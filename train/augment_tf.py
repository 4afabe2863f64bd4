"""Random shifts and rotations, and random crops and mirror images, of a batch of images as TensorFlow ops.

The same transform as :mod:`train.augment` (the NumPy reference): each image is rotated about
its centre by an angle drawn uniformly from ``[-max_rotation, max_rotation]`` degrees and
shifted by ``(dy, dx)`` drawn uniformly from ``[-max_shift, max_shift]`` pixels, with bilinear
interpolation and 0 (MNIST background) for pixels that come from outside the frame; the result
is rounded back to whole grey levels 0..255, as the uint8 reference does. The draws are
stateless: a ``(2,)`` integer seed gives the same parameters every time, so a pipeline that
derives the seed from the run's seed and the batch number is repeatable and draws fresh
parameters for every batch of every epoch.

Photos get the usual pair instead (:func:`crop_flip_batch`): a translation by whole pixels,
drawn uniformly from ``[-max_crop, max_crop]`` per axis, with 0 where the frame uncovers
(exactly "pad by ``max_crop`` zero pixels, then take a random crop of the original size"), and
a left-right mirror with probability 1/2. Both are integer moves of whole pixels (nearest
neighbour, no interpolation), so every channel's values stay the image's own 8-bit values.
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["draw_parameters", "transform_batch", "augment_batch", "draw_crop_flip", "crop_flip_batch"]


def draw_parameters(
    seed: tf.Tensor, count: tf.Tensor | int, *, max_shift: float, max_rotation: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Uniform rotation angles and shifts for ``count`` images.

    Args:
        seed: ``(2,)`` integer tensor for :func:`tf.random.stateless_uniform`.
        count: number of images.
        max_shift: largest shift in pixels along each axis (>= 0).
        max_rotation: largest rotation in degrees (>= 0).

    Returns:
        ``angles_deg`` ``(count,)`` in ``[-max_rotation, max_rotation]`` and ``shifts``
        ``(count, 2)`` ``(dy, dx)`` in ``[-max_shift, max_shift]``, float32.

    Raises:
        ValueError: a negative limit.
    """
    if max_shift < 0 or max_rotation < 0:
        raise ValueError(f"max_shift and max_rotation must be >= 0, got {max_shift} and {max_rotation}")
    unit = tf.random.stateless_uniform(tf.stack([count, 3]), seed=seed, minval=-1.0, maxval=1.0)
    return unit[:, 0] * float(max_rotation), unit[:, 1:] * float(max_shift)


def _projective_rows(angles_deg: tf.Tensor, shifts: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """The 8-number inverse maps (output pixel -> source pixel) of ImageProjectiveTransformV3.

    Output pixel ``p = R (s - c) + c + t`` gives source ``s = R^T (p - c - t) + c``; in the
    op's ``(x, y)`` = (column, row) terms: ``x_src = a0 x + a1 y + a2``, ``y_src = b0 x + b1 y + b2``.
    """
    radians = angles_deg * (math.pi / 180.0)
    cos, sin = tf.cos(radians), tf.sin(radians)
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    ty, tx = shifts[:, 0], shifts[:, 1]
    a2 = cx - cos * (cx + tx) - sin * (cy + ty)
    b2 = cy + sin * (cx + tx) - cos * (cy + ty)
    zeros = tf.zeros_like(cos)
    return tf.stack([cos, sin, a2, -sin, cos, b2, zeros, zeros], axis=1)


def transform_batch(images: tf.Tensor, angles_deg: tf.Tensor, shifts: tf.Tensor) -> tf.Tensor:
    """Rotate and shift each image (bilinear, zero outside the frame, rounded to whole grey levels).

    Args:
        images: ``(N, H, W, 1)`` float32 raw pixels 0..255.
        angles_deg: ``(N,)`` angles in degrees (positive: clockwise on screen, rows grow downward).
        shifts: ``(N, 2)`` shifts ``(dy, dx)`` in pixels (positive: down, right).

    Returns:
        ``(N, H, W, 1)`` float32 with whole values in 0..255; angle 0 and shift 0 return the input.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    height, width = int(images.shape[1]), int(images.shape[2])
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=_projective_rows(tf.cast(angles_deg, tf.float32), tf.cast(shifts, tf.float32), height, width),
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=tf.constant(0.0, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.clip_by_value(tf.round(moved), 0.0, 255.0)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, *, max_shift: float, max_rotation: float) -> tf.Tensor:
    """Randomly shift and rotate every image of a batch (see :func:`draw_parameters`).

    Args:
        images: ``(N, H, W, 1)`` float32 raw pixels 0..255.
        seed: ``(2,)`` integer seed of this batch's draws.
        max_shift: largest shift in pixels per axis.
        max_rotation: largest rotation in degrees.

    Returns:
        ``(N, H, W, 1)`` float32 augmented images.
    """
    angles, shifts = draw_parameters(seed, tf.shape(images)[0], max_shift=max_shift, max_rotation=max_rotation)
    return transform_batch(images, angles, shifts)


def draw_crop_flip(seed: tf.Tensor, count: tf.Tensor | int, *, max_crop: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Whole-pixel translations and mirror decisions for ``count`` images.

    Args:
        seed: ``(2,)`` integer tensor for the stateless draws.
        count: number of images.
        max_crop: largest translation in pixels along each axis (>= 0).

    Returns:
        ``shifts`` ``(count, 2)`` int32 ``(dy, dx)`` in ``[-max_crop, max_crop]`` and ``flips``
        ``(count,)`` bool.

    Raises:
        ValueError: a negative ``max_crop``.
    """
    if max_crop < 0:
        raise ValueError(f"max_crop must be >= 0, got {max_crop}")
    shape = tf.stack([count, 3])
    draws = tf.random.stateless_uniform(shape, seed=seed, minval=0, maxval=2**30, dtype=tf.int32)
    shifts = draws[:, :2] % (2 * int(max_crop) + 1) - int(max_crop)
    return shifts, tf.equal(draws[:, 2] % 2, 1)


def _crop_flip_rows(shifts: tf.Tensor, flips: tf.Tensor, width: int) -> tf.Tensor:
    """Inverse maps (output pixel -> source pixel) of a translation after an optional mirror.

    Output ``(x, y)`` reads source ``(x - tx, y - ty)`` unmirrored, ``(width - 1 - (x - tx), y - ty)`` mirrored.
    """
    ty, tx = tf.cast(shifts[:, 0], tf.float32), tf.cast(shifts[:, 1], tf.float32)
    sign = tf.where(flips, -1.0, 1.0)
    a2 = tf.where(flips, (width - 1) + tx, -tx)
    zeros, ones = tf.zeros_like(ty), tf.ones_like(ty)
    return tf.stack([sign, zeros, a2, zeros, ones, -ty, zeros, zeros], axis=1)


def crop_flip_batch(images: tf.Tensor, seed: tf.Tensor, *, max_crop: int, flip: bool) -> tf.Tensor:
    """Randomly translate (zero fill) and mirror every image of a batch (see :func:`draw_crop_flip`).

    Args:
        images: ``(N, H, W, C)`` float32 raw values.
        seed: ``(2,)`` integer seed of this batch's draws.
        max_crop: largest translation in pixels per axis (0: none).
        flip: mirror left-right with probability 1/2.

    Returns:
        ``(N, H, W, C)`` float32: every value is one of the image's own values or 0.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    height, width = int(images.shape[1]), int(images.shape[2])
    shifts, flips = draw_crop_flip(seed, tf.shape(images)[0], max_crop=max_crop)
    if not flip:
        flips = tf.zeros_like(flips)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=_crop_flip_rows(shifts, flips, width),
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=tf.constant(0.0, tf.float32),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )
