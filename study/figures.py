"""The study's figures, as PNG bytes: sample grid, t-SNE map, misplaced K-means pairs, accuracy against size.

Confusion matrices use :func:`train.plots.confusion_png`, like ``python -m train``.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["samples_png", "tsne_png", "pairs_png", "accuracy_vs_size_png"]

_DPI = 80


def _to_png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def samples_png(images: np.ndarray, indices: np.ndarray, title: str) -> bytes:
    """A grid of images: one row per digit, ``indices[digit]`` along it.

    Args:
        images: uint8 ``(N, 28, 28)``.
        indices: ``(10, per_digit)`` indices into ``images`` (:func:`study.eda.samples_per_digit`).
        title: figure title.
    """
    rows, cols = indices.shape
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.75, rows * 0.75))
    for row in range(rows):
        for col in range(cols):
            axis = axes[row, col]
            axis.imshow(images[indices[row, col]], cmap="gray_r", vmin=0, vmax=255)
            axis.set_xticks([])
            axis.set_yticks([])
            if col == 0:
                axis.set_ylabel(str(row), rotation=0, labelpad=10, fontsize=11)
    fig.suptitle(title)
    return _to_png(fig)


def tsne_png(points: np.ndarray, labels: np.ndarray, title: str) -> bytes:
    """The 2-D t-SNE map, one colour per digit, each digit's label at its median point."""
    fig, axis = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab10")
    for digit in range(10):
        mine = points[labels == digit]
        if len(mine) == 0:
            continue
        axis.scatter(mine[:, 0], mine[:, 1], s=4, color=cmap(digit), label=str(digit), alpha=0.7)
        centre = np.median(mine, axis=0)
        axis.text(centre[0], centre[1], str(digit), fontsize=14, weight="bold", ha="center", va="center")
    axis.set_xticks([])
    axis.set_yticks([])
    axis.legend(markerscale=3, fontsize=8, loc="best", ncol=2)
    axis.set_title(title)
    return _to_png(fig)


def pairs_png(images: np.ndarray, panels: list[dict[str, Any]], title: str) -> bytes:
    """One row per direction of each confused pair: images of digit ``true`` assigned ``wrong``.

    Args:
        images: uint8 ``(N, 28, 28)``.
        panels: ``[{"true": d, "wrong": e, "indices": [...]}, ...]``; rows without images are
            drawn with a note.
        title: figure title.
    """
    cols = max([len(panel["indices"]) for panel in panels] + [1])
    rows = max(len(panels), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8 + 1.5, rows * 0.9), squeeze=False)
    for row, panel in enumerate(panels):
        for col in range(cols):
            axis = axes[row, col]
            axis.set_xticks([])
            axis.set_yticks([])
            if col < len(panel["indices"]):
                axis.imshow(images[panel["indices"][col]], cmap="gray_r", vmin=0, vmax=255)
            else:
                axis.axis("off")
        axes[row, 0].set_ylabel(f"{panel['true']} as {panel['wrong']}", rotation=0, labelpad=28, fontsize=10)
        if not panel["indices"]:
            axes[row, 0].text(0.0, 0.5, "none", transform=axes[row, 0].transAxes)
    fig.suptitle(title)
    return _to_png(fig)


def accuracy_vs_size_png(points: list[dict[str, Any]], title: str) -> bytes:
    """Two panels side by side: test accuracy against the ``.h5``'s bytes and against the deployable form's bytes.

    Args:
        points: ``[{"model", "accuracy", "h5_bytes", "deploy_bytes", "deploy_form"}, ...]``;
            a ``None`` size leaves the point out of that panel.
        title: figure title.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    cmap = plt.get_cmap("tab10")
    for axis, key, label in (
        (axes[0], "h5_bytes", "bytes on disk: Keras .h5"),
        (axes[1], "deploy_bytes", "bytes on disk: deployable form (flatbuffer or bnn model data)"),
    ):
        for index, point in enumerate(points):
            size = point.get(key)
            if size is None or point.get("accuracy") is None:
                continue
            axis.scatter([size], [100 * point["accuracy"]], s=60, color=cmap(index), label=point["model"])
            text = point["model"] if key == "h5_bytes" else f"{point['model']} ({point['deploy_form']})"
            axis.annotate(text, (size, 100 * point["accuracy"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle(title)
    return _to_png(fig)
