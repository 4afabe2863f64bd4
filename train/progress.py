"""Training progress: Keras' bar on a terminal, one line per epoch otherwise, or nothing.

A log file (``make demo > log``, CI) gets one readable line per epoch instead of the
backspace-drawn bars Keras writes for a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import tensorflow as tf

__all__ = ["PROGRESS", "progress_mode", "EpochLines", "current_learning_rate"]

PROGRESS = ("bar", "lines", "none")


def progress_mode(quiet: bool, stream: TextIO | None = None) -> str:
    """``none`` when quiet, ``bar`` when ``stream`` (default stdout) is a terminal, else ``lines``."""
    if quiet:
        return "none"
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def current_learning_rate(optimizer: Any) -> float | None:
    """The optimizer's learning rate at its current step (``None`` if it has no single rate)."""
    rate = getattr(optimizer, "learning_rate", None)
    if rate is None:
        return None
    if isinstance(rate, tf.keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(optimizer.iterations)
    try:
        return float(tf.keras.backend.get_value(rate))
    except (TypeError, ValueError):
        return None


class EpochLines(tf.keras.callbacks.Callback):
    """Keras callback: one line per epoch with the logs, the learning rate and the epoch's seconds.

    Example line: ``epoch 3/20: loss 0.2311, accuracy 97.21%, val_loss 0.1503, val_accuracy 98.40%, lr 1.9e-03, 9.4 s``.
    """

    def __init__(self, epochs: int, *, prefix: str = "", stream: TextIO | None = None) -> None:
        super().__init__()
        self.epochs, self.prefix, self.stream = epochs, prefix, stream
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Start the epoch's clock."""
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Print the epoch's line."""
        parts = []
        for key, value in (logs or {}).items():
            value = float(value)
            parts.append(f"{key} {100 * value:.2f}%" if key.endswith("accuracy") else f"{key} {value:.4f}")
        rate = current_learning_rate(self.model.optimizer)
        if rate is not None:
            parts.append(f"lr {rate:.1e}")
        parts.append(f"{time.perf_counter() - self._start:.1f} s")
        stream = sys.stdout if self.stream is None else self.stream
        print(f"{self.prefix}epoch {epoch + 1}/{self.epochs}: {', '.join(parts)}", file=stream, flush=True)
