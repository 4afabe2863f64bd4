"""Static activation memory plan: greedy placement of buffers by size and lifetime.

Each buffer lives from the layer that writes it to the last layer that reads it. Buffers whose
lifetimes intersect must not overlap (a layer never works in place: it reads its input while
writing its output). Placement follows the greedy idea of TFLite-Micro's planner: largest
buffers first, each at the lowest word offset that clears every conflicting buffer already
placed. The plan is deterministic (ties broken by buffer order).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Buffer", "Plan", "plan_buffers", "any_buffers_overlap"]


@dataclass(frozen=True)
class Buffer:
    """A buffer of ``words`` uint32 words, alive from layer ``first`` to layer ``last`` inclusive."""

    name: str
    words: int
    first: int
    last: int

    def conflicts(self, other: Buffer) -> bool:
        """True when the two lifetimes intersect."""
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Plan:
    """Word offsets of every buffer and the arena size (words)."""

    buffers: tuple[Buffer, ...]
    offsets: tuple[int, ...]
    total_words: int

    @property
    def total_bytes(self) -> int:
        """Arena bytes."""
        return 4 * self.total_words

    def offset(self, name: str) -> int:
        """Word offset of buffer ``name``.

        Raises:
            KeyError: no such buffer.
        """
        for buffer, offset in zip(self.buffers, self.offsets, strict=True):
            if buffer.name == name:
                return offset
        raise KeyError(name)

    def describe(self) -> list[str]:
        """One printable line per buffer: name, bytes, byte offset, lifetime."""
        return [
            f"{b.name}: {4 * b.words} bytes at byte {4 * o}, layers {b.first}..{b.last}"
            for b, o in zip(self.buffers, self.offsets, strict=True)
        ]


def plan_buffers(buffers: list[Buffer]) -> Plan:
    """Place ``buffers`` greedily (largest first, lowest free offset).

    Args:
        buffers: the buffers in program order.

    Returns:
        The :class:`Plan` (offsets in the order of ``buffers``).
    """
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].words, i))
    offsets: dict[int, int] = {}
    for i in order:
        buffer = buffers[i]
        busy = sorted((offsets[j], offsets[j] + buffers[j].words) for j in offsets if buffers[j].conflicts(buffer))
        candidate = 0
        for start, end in busy:
            if candidate + buffer.words <= start:
                break
            candidate = max(candidate, end)
        offsets[i] = candidate
    total = max((offsets[i] + buffers[i].words for i in offsets), default=0)
    return Plan(tuple(buffers), tuple(offsets[i] for i in range(len(buffers))), total)


def any_buffers_overlap(plan: Plan) -> bool:
    """True when two buffers with intersecting lifetimes share a word (a broken plan)."""
    items = list(zip(plan.buffers, plan.offsets, strict=True))
    for i, (a, oa) in enumerate(items):
        for b, ob in items[i + 1 :]:
            if a.conflicts(b) and oa < ob + b.words and ob < oa + a.words and a.words and b.words:
                return True
    return False
