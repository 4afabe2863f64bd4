"""Distillation inside the training step: the teacher labels each batch as the student sees it.

:class:`Distiller` wraps the student and a trained (frozen) teacher in one Keras model whose
``train_step`` calls the teacher on the batch the pipeline delivers (augmented, on every
replica its own share), mixes its softened predictions with the labels
(:func:`teacher_targets`, the TensorFlow twin of :func:`train.distill.soft_targets`), and
updates the student alone. Validation scores the student against the plain labels. The
wrapper is never saved: the trainer copies the student's weights into a plain zoo model, so
``NAME.h5`` reloads without any custom object.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

__all__ = ["teacher_targets", "Distiller"]

_TINY = 1e-12


def teacher_targets(labels: tf.Tensor, teacher: tf.Tensor, *, alpha: float, temperature: float) -> tf.Tensor:
    """``(1 - alpha) * one_hot(labels) + alpha * softmax(log(teacher) / temperature)``.

    Args:
        labels: ``(N,)`` or ``(N, 1)`` integer class labels.
        teacher: ``(N, C)`` the teacher's softmax outputs for the same images.
        alpha: weight of the teacher in [0, 1].
        temperature: > 0; 1 keeps the teacher's rows, above 1 flattens them.

    Returns:
        ``(N, C)`` float32 target rows that sum to 1.

    Raises:
        ValueError: ``alpha`` outside [0, 1] or ``temperature`` not positive.
    """
    if not 0.0 <= alpha <= 1.0 or not temperature > 0:
        raise ValueError(f"alpha must be in [0, 1] and temperature > 0, got {alpha} and {temperature}")
    teacher = tf.cast(teacher, tf.float32)
    softened = tf.nn.softmax(tf.math.log(tf.clip_by_value(teacher, _TINY, 1.0)) / temperature, axis=-1)
    one_hot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), depth=tf.shape(teacher)[-1], dtype=tf.float32)
    return (1.0 - alpha) * one_hot + alpha * softened


class Distiller(tf.keras.Model):
    """The student trained on targets its teacher computes batch by batch.

    Compile it with a loss over target distributions (e.g.
    :func:`train.losses.scaled_categorical_crossentropy`) and metrics over sparse labels
    (``SparseCategoricalAccuracy``). ``call`` is the student's.
    """

    def __init__(self, student: tf.keras.Model, teacher: tf.keras.Model, *, alpha: float, temperature: float) -> None:
        super().__init__(name=f"{student.name}_distiller")
        if not 0.0 <= alpha <= 1.0 or not temperature > 0:
            raise ValueError(f"alpha must be in [0, 1] and temperature > 0, got {alpha} and {temperature}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.alpha = float(alpha)
        self.temperature = float(temperature)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """The student's output."""
        return self.student(inputs, training=training)

    def targets(self, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """The training targets of one batch: the teacher in inference mode, mixed with the labels."""
        return teacher_targets(labels, self.teacher(images, training=False), alpha=self.alpha, temperature=self.temperature)

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        """One optimizer step of the student on the teacher's targets for this batch."""
        images, labels = data
        targets = self.targets(images, labels)
        with tf.GradientTape() as tape:
            probabilities = self(images, training=True)
            loss = self.compute_loss(images, targets, probabilities)
        self.optimizer.minimize(loss, self.student.trainable_variables, tape=tape)
        return self.compute_metrics(images, labels, probabilities, None)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        """Validation: the same loss against the one-hot labels (no teacher)."""
        images, labels = data
        probabilities = self(images, training=False)
        one_hot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), depth=tf.shape(probabilities)[-1])
        self.compute_loss(images, one_hot, probabilities)
        return self.compute_metrics(images, labels, probabilities, None)
