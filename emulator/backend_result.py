"""The result every emulator backend returns, whatever runs the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BackendRun"]


@dataclass
class BackendRun:
    """Predictions and resource figures of one backend over a set of test images.

    Attributes:
        predictions: ``(N,)`` int argmax class per image.
        flash_bytes: model (and, for firmware, code) bytes in flash, or ``None`` if unknown.
        ram_bytes: RAM the inference needs, or ``None``.
        ram_source: how ``ram_bytes`` was obtained: ``tflm-arena``, ``planner`` or ``elf``.
        instructions_per_inference: instructions per ``bnn_predict`` (QEMU only), else ``None``.
        extra: backend-specific figures for the JSON report (latency, per-layer tables, ...).
    """

    predictions: np.ndarray
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    ram_source: str | None = None
    instructions_per_inference: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
