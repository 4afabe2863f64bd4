"""Distillation inside the training step against the NumPy targets of the per-epoch path.

The earlier path predicted the teacher over the augmented images with ``teacher.predict`` and
mixed the labels in with :func:`train.distill.soft_targets` (NumPy); the new one calls the
teacher inside ``train_step``. For a fixed batch both must give the same targets, and one
optimizer step must move the student's weights the same way.
"""

from __future__ import annotations

import numpy as np
import pytest

from train.distill import soft_targets

ALPHA, TEMPERATURE, SCALE = 0.5, 2.0, 3.0


@pytest.fixture(scope="module")
def teacher(tiny_models):
    import larq  # noqa: F401
    import tensorflow as tf

    return tf.keras.models.load_model(tiny_models["cnn"], compile=False)


@pytest.fixture(scope="module")
def batch(mnist):
    """64 training images shifted and rotated by the pipeline's own augmentation, with their labels."""
    import tensorflow as tf

    from train.augment_tf import augment_batch

    images = augment_batch(
        mnist.x_train[:64].astype(np.float32)[..., None], tf.constant([0, 7], tf.int64), max_shift=1.0, max_rotation=5.0
    ).numpy()
    return images, mnist.y_train[:64].astype(np.int32)


def _distiller(teacher, seed=0):
    import tensorflow as tf

    from train.distiller import Distiller
    from train.models import build_model

    tf.keras.utils.set_random_seed(seed)
    return Distiller(build_model("bcnn"), teacher, alpha=ALPHA, temperature=TEMPERATURE)


def test_targets_equal_the_numpy_path_for_a_fixed_batch(teacher, batch):
    images, labels = batch
    old = soft_targets(labels, teacher.predict(images, batch_size=1000, verbose=0), alpha=ALPHA, temperature=TEMPERATURE)
    new = _distiller(teacher).targets(images, labels).numpy()
    assert new.shape == (64, 10) and new.dtype == np.float32
    assert np.allclose(new, old, atol=1e-6)
    assert np.allclose(new.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(new, np.eye(10)[labels])  # the teacher does take part


def test_teacher_targets_with_alpha_zero_are_the_labels():
    from train.distiller import teacher_targets

    probabilities = np.full((3, 10), 0.1, np.float32)
    assert np.array_equal(
        teacher_targets(np.array([1, 4, 9]), probabilities, alpha=0.0, temperature=3.0).numpy(), np.eye(10)[[1, 4, 9]]
    )
    with pytest.raises(ValueError, match="alpha"):
        teacher_targets(np.array([1]), probabilities[:1], alpha=1.5, temperature=1.0)


def test_one_train_step_equals_a_step_on_the_numpy_targets(teacher, batch):
    """The distiller's step = a plain student's step on the targets the old path precomputed."""
    import tensorflow as tf

    from train.losses import scaled_categorical_crossentropy
    from train.models import build_model

    images, labels = batch
    distiller = _distiller(teacher)
    plain = build_model("bcnn")
    plain.set_weights(distiller.student.get_weights())
    old_targets = soft_targets(labels, teacher.predict(images, verbose=0), alpha=ALPHA, temperature=TEMPERATURE)

    distiller.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=scaled_categorical_crossentropy(SCALE),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    plain.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=scaled_categorical_crossentropy(SCALE))
    teacher_before = [w.copy() for w in teacher.get_weights()]
    logs = distiller.train_on_batch(images, labels, return_dict=True)
    plain_loss = plain.train_on_batch(images, old_targets)

    assert logs["loss"] == pytest.approx(plain_loss, rel=1e-5)
    for new, old in zip(distiller.student.get_weights(), plain.get_weights(), strict=True):
        assert np.allclose(new, old, atol=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(teacher_before, teacher.get_weights(), strict=True))  # frozen
    assert 0.0 <= logs["accuracy"] <= 1.0


def test_validation_scores_the_student_against_the_labels(teacher, batch):
    import tensorflow as tf

    from train.losses import scaled_categorical_crossentropy, scaled_sparse_crossentropy

    images, labels = batch
    distiller = _distiller(teacher)
    distiller.compile(
        optimizer="adam",
        loss=scaled_categorical_crossentropy(SCALE),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    logs = distiller.evaluate(images, labels, verbose=0, return_dict=True)
    probabilities = distiller.student(images, training=False)
    expected = float(tf.reduce_mean(scaled_sparse_crossentropy(SCALE)(labels, probabilities)))
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["accuracy"] == pytest.approx(float((probabilities.numpy().argmax(1) == labels).mean()))
