"""The tf.data pipeline against the NumPy path it replaces (:mod:`train.augment`).

Fast: a few hundred images, no training. The reference is the NumPy augmentation the earlier
per-epoch path used; the pipeline must transform images the same way, honour the same limits
and give augmented images with the same statistics.
"""

from __future__ import annotations

import numpy as np
import pytest

from train.augment import augment_images, transform_images


def _pipeline_epoch(images, *, max_shift, max_rotation, seed=0, epochs=1, batch_size=64):
    """Every batch of ``epochs`` epochs; labels are the row numbers, so outputs pair with inputs."""
    from train.input_pipeline import training_dataset

    dataset = training_dataset(
        images,
        np.arange(len(images)),
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        max_shift=max_shift,
        max_rotation=max_rotation,
    )
    batches = [(x.numpy()[..., 0], y.numpy()) for x, y in dataset]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def _centre_of_mass(images: np.ndarray) -> np.ndarray:
    """``(N, 2)`` ink centre of mass (row, column) of each image."""
    rows, cols = np.mgrid[: images.shape[1], : images.shape[2]]
    ink = images.reshape(len(images), -1).astype(np.float64)
    total = ink.sum(axis=1)
    return np.stack([(ink * rows.ravel()).sum(1) / total, (ink * cols.ravel()).sum(1) / total], axis=1)


def _blobs(count: int) -> np.ndarray:
    """Synthetic images: a 3x3 block of ink 9 pixels right of the centre (radius ~9 px)."""
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 12:15, 21:24] = 255
    return images


# --- the transform itself ---------------------------------------------------------------------


def test_tf_transform_equals_the_numpy_transform(mnist):
    """Same angles and shifts: the same images, up to one grey level where float32 rounds differently."""
    from train.augment_tf import transform_batch

    images = mnist.x_train[:500]
    rng = np.random.default_rng(3)
    angles, shifts = rng.uniform(-10, 10, 500), rng.uniform(-2, 2, (500, 2))
    reference = transform_images(images, angles, shifts).astype(np.int32)
    got = transform_batch(images.astype(np.float32)[..., None], angles, shifts).numpy()[..., 0]
    assert np.array_equal(got, np.round(got)) and got.min() >= 0 and got.max() <= 255
    difference = np.abs(got.astype(np.int32) - reference)
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.999


@pytest.mark.parametrize("angle", [90.0, -90.0])
def test_tf_quarter_turn_and_integer_shift_are_exact(mnist, angle):
    from train.augment_tf import transform_batch

    images = mnist.x_train[:2]
    turned = transform_batch(images[:1].astype(np.float32)[..., None], [angle], [[0.0, 0.0]]).numpy()[0, ..., 0]
    assert np.array_equal(turned, np.rot90(images[0], 1 if angle < 0 else -1))
    moved = transform_batch(images.astype(np.float32)[..., None], [0.0, 0.0], [[2.0, 0.0], [0.0, -3.0]]).numpy()[..., 0]
    assert np.array_equal(moved, transform_images(images, np.zeros(2), np.array([[2.0, 0.0], [0.0, -3.0]])))


def test_drawn_parameters_are_uniform_within_the_limits():
    import tensorflow as tf

    from train.augment_tf import draw_parameters

    angles, shifts = draw_parameters(tf.constant([5, 9], tf.int64), 20_000, max_shift=1.5, max_rotation=7.0)
    angles, shifts = angles.numpy(), shifts.numpy()
    assert angles.shape == (20_000,) and shifts.shape == (20_000, 2)
    assert np.abs(angles).max() <= 7.0 and np.abs(shifts).max() <= 1.5
    assert np.abs(angles).max() > 6.9 and np.abs(shifts).max() > 1.48  # the whole range is used
    # Uniform on [-a, a]: mean 0, standard deviation a / sqrt(3); the axes are independent.
    assert abs(angles.mean()) < 0.1 and angles.std() == pytest.approx(7.0 / np.sqrt(3), rel=0.02)
    assert np.allclose(shifts.std(axis=0), 1.5 / np.sqrt(3), rtol=0.02)
    assert abs(np.corrcoef(shifts[:, 0], shifts[:, 1])[0, 1]) < 0.03
    again, _ = draw_parameters(tf.constant([5, 9], tf.int64), 20_000, max_shift=1.5, max_rotation=7.0)
    other, _ = draw_parameters(tf.constant([5, 10], tf.int64), 20_000, max_shift=1.5, max_rotation=7.0)
    assert np.array_equal(angles, again.numpy()) and not np.array_equal(angles, other.numpy())
    with pytest.raises(ValueError, match=">= 0"):
        draw_parameters(tf.constant([0, 0], tf.int64), 4, max_shift=-1.0, max_rotation=0.0)


# --- the pipeline ---------------------------------------------------------------------------


def test_pipeline_without_augmentation_yields_each_image_once_per_epoch(mnist):
    images = mnist.x_train[:300]
    out, rows = _pipeline_epoch(images, max_shift=0, max_rotation=0, epochs=2, batch_size=64)
    assert out.shape == (600, 28, 28) and out.dtype == np.float32
    first, second = rows[:300], rows[300:]
    assert sorted(first) == list(range(300)) and sorted(second) == list(range(300))
    assert not np.array_equal(first, second)  # reshuffled every epoch
    assert np.array_equal(out, images[rows].astype(np.float32))  # untouched pixels
    again, rows_again = _pipeline_epoch(images, max_shift=0, max_rotation=0, epochs=2, batch_size=64)
    assert np.array_equal(rows, rows_again)  # the seed fixes the order
    _, rows_other = _pipeline_epoch(images, max_shift=0, max_rotation=0, epochs=2, batch_size=64, seed=1)
    assert not np.array_equal(rows, rows_other)


def test_pipeline_shifts_stay_within_the_limit():
    """Rotation off: bilinear shifting moves the ink's centre of mass by the shift itself."""
    images = _blobs(512)
    out, rows = _pipeline_epoch(images, max_shift=2.0, max_rotation=0)
    moved = _centre_of_mass(out) - _centre_of_mass(images[rows])
    assert np.abs(moved).max() <= 2.0 + 0.05
    assert np.abs(moved).max() > 1.9
    assert np.allclose(moved.std(axis=0), 2.0 / np.sqrt(3), rtol=0.12)


def test_pipeline_rotations_stay_within_the_limit():
    """Shift off: the ink 9 px right of the centre turns about the centre by the drawn angle."""
    images = _blobs(512)
    out, rows = _pipeline_epoch(images, max_shift=0, max_rotation=10.0)
    centre = (27 / 2.0, 27 / 2.0)
    before, after = _centre_of_mass(images[rows]), _centre_of_mass(out)
    angle_before = np.degrees(np.arctan2(before[:, 0] - centre[0], before[:, 1] - centre[1]))
    turned = np.degrees(np.arctan2(after[:, 0] - centre[0], after[:, 1] - centre[1])) - angle_before
    assert np.abs(turned).max() <= 10.0 + 0.3
    assert np.abs(turned).max() > 9.5
    assert turned.std() == pytest.approx(10.0 / np.sqrt(3), rel=0.12)


def test_pipeline_statistics_match_the_numpy_path(mnist):
    """best's limits (+-1 px, +-5 deg) on 1,000 digits: ink kept and centres moved alike on both paths."""
    import tensorflow as tf

    tf.random.set_seed(0)  # the shuffle's order, whatever tests ran before in this process (pytest-xdist)
    images = mnist.x_train[:1000]
    out, rows = _pipeline_epoch(images, max_shift=1.0, max_rotation=5.0, batch_size=100)
    old = augment_images(images, np.random.default_rng(0), max_shift=1.0, max_rotation=5.0)

    def statistics(augmented: np.ndarray, originals: np.ndarray) -> dict[str, float]:
        ink = augmented.reshape(len(augmented), -1).sum(1) / originals.reshape(len(originals), -1).sum(1)
        moved = np.linalg.norm(_centre_of_mass(augmented) - _centre_of_mass(originals), axis=1)
        changed = (augmented.astype(np.int32) != originals.astype(np.int32)).mean()
        return {"ink": ink.mean(), "ink_spread": ink.std(), "moved": moved.mean(), "moved_max": moved.max(), "changed": changed}

    new, reference = statistics(out, images[rows]), statistics(old, images)
    assert new["ink"] == pytest.approx(reference["ink"], abs=0.005)
    # both spreads are about 0.1 % of the ink (a draw of 1,000 moves them by a third): alike within 0.1 %
    assert new["ink_spread"] == pytest.approx(reference["ink_spread"], abs=0.001)
    assert new["moved"] == pytest.approx(reference["moved"], rel=0.1)
    assert new["changed"] == pytest.approx(reference["changed"], rel=0.05)
    # +-1 px per axis and +-5 deg about a centre ~1 px away cannot move the ink by more than ~1.5 px.
    assert new["moved_max"] <= np.sqrt(2) + 0.2 and reference["moved_max"] <= np.sqrt(2) + 0.2


def test_pipeline_refuses_mismatched_arrays():
    from train.input_pipeline import training_dataset

    with pytest.raises(ValueError, match="as many labels"):
        training_dataset(np.zeros((4, 28, 28), np.uint8), np.zeros(3), batch_size=2, epochs=1, seed=0)
    with pytest.raises(ValueError, match="batch_size and epochs"):
        training_dataset(np.zeros((4, 28, 28), np.uint8), np.zeros(4), batch_size=0, epochs=1, seed=0)


def test_steps_per_epoch_counts_the_short_last_batch():
    from train.input_pipeline import steps_per_epoch

    assert steps_per_epoch(55_000, 256) == 215 and steps_per_epoch(512, 256) == 2 and steps_per_epoch(1, 64) == 1


def _pad_crop_reference(images: np.ndarray, shifts: np.ndarray, flips: np.ndarray, pad: int) -> np.ndarray:
    """NumPy's "mirror, zero-pad by ``pad``, crop the original size at the drawn offset"."""
    out = np.empty_like(images)
    height, width = images.shape[1:3]
    for i, image in enumerate(images):
        image = image[:, ::-1] if flips[i] else image
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
        dy, dx = shifts[i]
        out[i] = padded[pad - dy : pad - dy + height, pad - dx : pad - dx + width]
    return out


@pytest.mark.parametrize("flip", [False, True])
def test_crop_flip_equals_pad_and_crop_in_numpy(flip):
    import tensorflow as tf

    from train.augment_tf import crop_flip_batch, draw_crop_flip

    images = np.random.default_rng(3).integers(0, 256, (80, 7, 9, 3)).astype(np.float32)
    seed = tf.constant([11, 4], tf.int64)
    out = crop_flip_batch(images, seed, max_crop=2, flip=flip).numpy()
    shifts, flips = (t.numpy() for t in draw_crop_flip(seed, len(images), max_crop=2))
    flips = flips if flip else np.zeros_like(flips)
    np.testing.assert_array_equal(out, _pad_crop_reference(images, shifts, flips, 2))
    assert set(np.unique(shifts)) == {-2, -1, 0, 1, 2}
    assert (0.3 < flips.mean() < 0.7) if flip else not flips.any()


def test_pipeline_crops_and_mirrors_colour_images():
    """Colour batches keep their shape; each output is a whole-pixel move of its image, values its own or 0."""
    from train.input_pipeline import training_dataset

    images = np.random.default_rng(5).integers(1, 256, (40, 8, 8, 3)).astype(np.uint8)
    batches = list(training_dataset(images, np.arange(40), batch_size=40, epochs=1, seed=0, max_crop=3, flip=True))
    ((out, rows),) = batches
    out, source = out.numpy(), images[rows.numpy()]
    assert out.shape == (40, 8, 8, 3)
    assert not np.array_equal(out, source.astype(np.float32)), "something moved"
    for moved, image in zip(out, source, strict=True):
        values = set(np.unique(moved)) - {0.0}
        assert values <= set(np.unique(image).astype(np.float32))
