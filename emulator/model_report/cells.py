"""A figure as the report shows it: the formatted text and the JSON value it was read from.

Every number in the report is a :class:`Cell` that remembers its source file and key, and the
template writes them as ``data-src``/``data-key``/``data-value`` attributes, so a reader (and
the browser test) can trace each figure back to the JSON it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.model_report.sources import Doc

__all__ = ["Cell", "MISSING", "lookup", "cell", "percent", "count", "nbytes", "signed_bytes", "instructions"]

MISSING = "–"


@dataclass(frozen=True)
class Cell:
    """One figure.

    Attributes:
        text: what the reader sees.
        src: the JSON file (relative to the artifacts folder) the value comes from, or ``None``.
        key: dotted path of the value in that file (``extra.instructions.median``), or ``None``.
        value: the value as stored in the JSON (or computed from such values), or ``None``.
    """

    text: str
    src: str | None = None
    key: str | None = None
    value: Any = None

    @property
    def json_value(self) -> str:
        """``value`` as the text of a ``data-value`` attribute (``repr`` of floats keeps every digit)."""
        return "" if self.value is None else repr(self.value) if isinstance(self.value, float) else str(self.value)


def lookup(data: Any, key: str) -> Any:
    """``data["a"]["b"][2]`` for key ``a.b.2``; ``None`` when any step is missing."""
    for part in key.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
        if data is None:
            return None
    return data


def percent(value: Any) -> str:
    """``0.9876`` -> ``98.76 %``."""
    return f"{100 * float(value):.2f} %"


def count(value: Any) -> str:
    """``10000`` -> ``10,000``."""
    return f"{int(value):,}"


def nbytes(value: Any) -> str:
    """``14604`` -> ``14,604 B``."""
    return f"{int(value):,} B"


def signed_bytes(value: Any) -> str:
    """A margin: ``+509,620 B`` or ``-1,024 B``."""
    return f"{int(value):+,} B"


def instructions(value: Any) -> str:
    """Instructions per inference, rounded to a whole instruction: ``651,525``."""
    return f"{float(value):,.0f}"


def cell(doc: Doc | None, key: str, fmt: Callable[[Any], str]) -> Cell:
    """The value at ``key`` of ``doc`` formatted with ``fmt``; a dash (no source) when absent."""
    if doc is None:
        return Cell(MISSING)
    value = lookup(doc.data, key)
    if value is None or isinstance(value, bool):
        return Cell(MISSING)
    return Cell(fmt(value), doc.rel, key, value)
