"""Knowledge distillation: training targets that mix the labels with a teacher's predictions.

The student (the BCNN) learns from ``(1 - alpha) * one_hot(label) + alpha * teacher`` where
``teacher`` is the float teacher's softmax output, softened by a temperature. The teacher sees
the same (augmented) images as the student, so its targets are recomputed every epoch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["soften", "soft_targets"]


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Re-temper softmax outputs: ``softmax(log(p) / temperature)`` per row.

    Args:
        probabilities: ``(N, C)`` rows of a softmax.
        temperature: > 0; 1 returns the rows (renormalised), above 1 flattens them.

    Returns:
        ``(N, C)`` float32 rows that sum to 1.

    Raises:
        ValueError: ``temperature`` is not positive or the array is not 2-D.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise ValueError(f"expected (N, C) probabilities, got shape {probabilities.shape}")
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def soft_targets(labels: np.ndarray, teacher: np.ndarray, *, alpha: float, temperature: float) -> np.ndarray:
    """Mix one-hot labels with the teacher's softened predictions.

    Args:
        labels: ``(N,)`` integer class labels.
        teacher: ``(N, C)`` the teacher's softmax outputs for the same images.
        alpha: weight of the teacher in [0, 1] (0: the plain labels).
        temperature: softening of the teacher (see :func:`soften`).

    Returns:
        ``(N, C)`` float32 targets; each row sums to 1.

    Raises:
        ValueError: ``alpha`` outside [0, 1], or labels and teacher rows disagree in count.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    teacher = np.asarray(teacher)
    if teacher.ndim != 2 or len(labels) != len(teacher):
        raise ValueError(f"expected {len(labels)} teacher rows, got shape {teacher.shape}")
    one_hot = np.eye(teacher.shape[1], dtype=np.float32)[np.asarray(labels, dtype=np.intp)]
    return ((1.0 - alpha) * one_hot + alpha * soften(teacher, temperature)).astype(np.float32)
