"""The contract between the firmware_gen CLI and its engines (``tflm``, ``bnn``).

An engine turns a parsed flatbuffer into files; the CLI writes them atomically into the
output folder and adds ``firmware.json`` (file list with sha256s, verdict against a board).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EngineOutput"]


@dataclass
class EngineOutput:
    """What an engine generated.

    Attributes:
        files: relative path -> file content (bytes); written in sorted order.
        report: engine-specific entries merged into ``firmware.json`` (for example
            ``model_bytes``, ``arena_bytes``, ``flash_bytes``, ``ram_bytes``, ``layers``).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
