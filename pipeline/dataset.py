"""The :class:`Dataset` every loader returns, and how messages name an example shape.

A type of its own, apart from the loaders that build it (:mod:`pipeline.data` dispatches on the
``--data`` source, :mod:`pipeline.images` decodes image trees), so imports form no circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_NUM_CLASSES", "DTYPES", "Dataset", "format_shape"]

# MNIST's IDX layout has 10 classes; a Dataset built without a class count has as many.
DEFAULT_NUM_CLASSES = 10
# Example dtypes a Dataset holds (an .npz's float16/float64 examples become float32).
DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


def format_shape(shape: tuple[int, ...] | list[int]) -> str:
    """``(49, 10, 1)`` -> ``49x10x1`` (how messages and reports name an example shape)."""
    return "x".join(str(int(d)) for d in shape) or "scalar"


@dataclass(frozen=True)
class Dataset:
    """Train and test splits as arrays, with where they came from and what they hold.

    Attributes:
        x_train: ``(N, ...)`` examples, uint8 or float32 (``N`` may be 0: an ``.npz`` without
            a training split).
        y_train: ``(N,)`` labels in ``0..num_classes-1``.
        x_test: ``(M, ...)`` examples (``M >= 1``), same shape per example and dtype as ``x_train``.
        y_test: ``(M,)`` labels.
        source: the folder or file the data was read from (for a dataset spec, the ``.json``).
        sha256: name -> sha256 of what was read: each file as stored (IDX, ``.npz``, ``.tar``,
            spec ``.json``); for an image folder, ``NAME/`` -> its tree digest.
        num_classes: number of classes (10 for the IDX layout).
        classes: the class names, label ``i`` named ``classes[i]`` (an image tree's folder
            names); empty when the source does not name its classes (IDX, ``.npz``).
        frontend: for audio, the front end that turned each raw clip into its example
            (:meth:`pipeline.frontend.FrontendConfig.to_json`); ``None`` for every other source.
        raw_train: for audio, the raw clips of the training split, int16 ``(N, clip_samples)``,
            in ``x_train``'s order (``x_train[i]`` is the front end's output for ``raw_train[i]``).
        raw_test: the same for the test split: what a firmware with the front end on the chip is fed.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: dict[str, str] = field(default_factory=dict)
    num_classes: int = DEFAULT_NUM_CLASSES
    classes: tuple[str, ...] = ()
    frontend: dict[str, Any] | None = None
    raw_train: np.ndarray | None = None
    raw_test: np.ndarray | None = None

    @property
    def example_shape(self) -> tuple[int, ...]:
        """Shape of one example (``(28, 28)`` for MNIST, ``(49, 10, 1)`` for MFCC frames...)."""
        return tuple(int(d) for d in self.x_test.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        """The examples' dtype: uint8 (raw 8-bit values) or float32."""
        return self.x_test.dtype

    def describe(self) -> dict[str, Any]:
        """JSON-ready ``{"example_shape", "dtype", "num_classes"}`` for reports, plus ``"classes"``
        (the class names) when the dataset names them and ``"frontend"`` (its config) for audio."""
        described: dict[str, Any] = {
            "example_shape": list(self.example_shape),
            "dtype": str(self.dtype),
            "num_classes": self.num_classes,
        }
        if self.classes:
            described["classes"] = list(self.classes)
        if self.frontend is not None:
            described["frontend"] = dict(self.frontend)
        return described
