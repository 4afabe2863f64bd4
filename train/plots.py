"""Training plots: accuracy/loss history and the test-set confusion matrix, as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["history_png", "confusion_png", "confusion_matrix"]


def _to_png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def history_png(history: dict[str, list[float]], title: str) -> bytes:
    """Accuracy and loss per epoch, train and validation side by side.

    Args:
        history: Keras history with ``accuracy``, ``loss`` and optional ``val_*`` and ``test_*`` lists.
        title: figure title.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("accuracy", "loss"), strict=False):
        epochs = np.arange(1, len(history.get(metric, [])) + 1)
        axis.plot(epochs, history.get(metric, []), marker="o", label="train")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        if f"test_{metric}" in history:
            axis.plot(epochs, history[f"test_{metric}"], marker="o", label="test (observed, not selected on)")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.suptitle(title)
    return _to_png(fig)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int = 10) -> np.ndarray:
    """Counts ``[true, predicted]`` as an int64 ``classes x classes`` matrix."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return matrix


def confusion_png(matrix: np.ndarray, title: str) -> bytes:
    """The confusion matrix as a heat map with every count annotated."""
    classes = matrix.shape[0]
    fig, axis = plt.subplots(figsize=(7, 6))
    image = axis.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=axis)
    threshold = matrix.max() / 2 if matrix.size else 0
    for true in range(classes):
        for pred in range(classes):
            count = int(matrix[true, pred])
            colour = "white" if count > threshold else "black"
            axis.text(pred, true, str(count), ha="center", va="center", color=colour, fontsize=8)
    axis.set_xticks(range(classes))
    axis.set_yticks(range(classes))
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    return _to_png(fig)
