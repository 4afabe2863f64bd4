"""A greedy memory planner over buffer lifetimes, after TFLite-Micro's ``GreedyMemoryPlanner``.

Each buffer lives from the step that writes it (``first``) to the last step that reads it
(``last``), inclusive. Buffers whose lifetimes intersect must not share an address (a step
never works in place: it reads its inputs while writing its output). Placement: largest
buffers first (ties by first use, then by position in the list), each at the lowest offset
that clears every conflicting buffer already placed; the plan's size is the highest end
offset. Deterministic for a given list.

Sizes are in whatever unit the caller chooses (bytes for flatbuffer tensors, 32-bit words for
the bnn engine's packed activations); :func:`align_up` rounds sizes when the caller wants an
alignment. Used by :mod:`emulator.planner` (the RAM of a flatbuffer) and by the bnn engine
(its static activation arena).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Buffer", "Plan", "align_up", "plan_buffers", "buffers_overlap"]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def align_up(size: int, alignment: int) -> int:
    """``size`` rounded up to a multiple of ``alignment``."""
    return (size + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Buffer:
    """A buffer of ``size`` units, alive from step ``first`` to step ``last`` inclusive.

    Attributes:
        name: printable name.
        size: units (bytes or words).
        first: step that creates it.
        last: last step that reads it.
        tensor: the flatbuffer tensor it holds, ``-1`` when not tied to one.
    """

    name: str
    size: int
    first: int
    last: int
    tensor: int = -1

    def lives_with(self, other: Buffer) -> bool:
        """True when the two lifetimes share at least one step."""
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Plan:
    """Offsets of every buffer (in the order given to :func:`plan_buffers`) and the arena size.

    Attributes:
        buffers: the buffers as given.
        offsets: offset of each buffer, in the same units as the sizes.
        steps: length of the time axis (for :meth:`format`).
        unit: the unit of sizes and offsets (``bytes`` or ``words``), for printing.
    """

    buffers: tuple[Buffer, ...]
    offsets: tuple[int, ...]
    steps: int
    unit: str = "bytes"

    @property
    def total(self) -> int:
        """Units of arena the buffers need (highest end offset, 0 when empty)."""
        return max((o + b.size for b, o in zip(self.buffers, self.offsets, strict=True)), default=0)

    @property
    def naive(self) -> int:
        """Units needed without any sharing (sum of the sizes)."""
        return sum(b.size for b in self.buffers)

    def describe(self) -> list[str]:
        """One printable line per buffer: name, size, offset, lifetime."""
        return [
            f"{b.name}: {b.size} {self.unit} at {o}, steps {b.first}..{b.last}"
            for b, o in zip(self.buffers, self.offsets, strict=True)
        ]

    def format(self, width: int = 64) -> str:
        """A printable plan: one row per buffer plus a memory bar per step.

        Each step row draws the arena as ``width`` cells; a cell shows the letter of the buffer
        living there at that step (``.`` when free), like TFLM's ``PrintMemoryPlan``.
        """
        lines = [
            f"memory plan: {self.total} {self.unit} for {len(self.buffers)} buffers ({self.naive} without sharing)",
            f"{'id':>3} {'tensor':>6} {'offset':>8} {'size':>8} {'first':>5} {'last':>5}  name",
        ]
        for number, (b, o) in enumerate(zip(self.buffers, self.offsets, strict=True)):
            lines.append(
                f"{_LETTERS[number % len(_LETTERS)]:>3} {b.tensor:>6} {o:>8} {b.size:>8} {b.first:>5} {b.last:>5}  {b.name[:48]}"
            )
        total = max(self.total, 1)
        for step in range(self.steps):
            cells = ["."] * width
            for number, (b, o) in enumerate(zip(self.buffers, self.offsets, strict=True)):
                if b.first <= step <= b.last:
                    start = o * width // total
                    stop = max(start + 1, (o + b.size) * width // total)
                    for cell in range(start, min(stop, width)):
                        cells[cell] = _LETTERS[number % len(_LETTERS)]
            lines.append(f"op {step:>3} |{''.join(cells)}|")
        return "\n".join(lines)


def plan_buffers(buffers: list[Buffer], steps: int | None = None, unit: str = "bytes") -> Plan:
    """Place ``buffers`` greedily (largest first, lowest free offset).

    Args:
        buffers: sizes and lifetimes.
        steps: length of the time axis (default: one past the latest ``last``).
        unit: the unit of the sizes, for printing.

    Returns:
        The :class:`Plan` (offsets in the order of ``buffers``).

    Raises:
        ValueError: a buffer has a negative size or a lifetime that ends before it starts.
    """
    for buffer in buffers:
        if buffer.size < 0 or buffer.last < buffer.first or buffer.first < 0:
            raise ValueError(f"buffer {buffer.name} has size {buffer.size} and lifetime {buffer.first}..{buffer.last}")
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].first, i))
    offsets: dict[int, int] = {}
    for i in order:
        buffer = buffers[i]
        busy = sorted((offsets[j], offsets[j] + buffers[j].size) for j in offsets if buffers[j].lives_with(buffer))
        candidate = 0
        for start, end in busy:
            if candidate + buffer.size <= start:
                break
            candidate = max(candidate, end)
        offsets[i] = candidate
    if steps is None:
        steps = max((b.last for b in buffers), default=-1) + 1
    return Plan(tuple(buffers), tuple(offsets[i] for i in range(len(buffers))), steps, unit)


def buffers_overlap(plan: Plan) -> bool:
    """True when two buffers alive at the same time share a unit (a broken plan)."""
    items = [(b, o) for b, o in zip(plan.buffers, plan.offsets, strict=True) if b.size > 0]
    for i, (a, oa) in enumerate(items):
        for b, ob in items[i + 1 :]:
            if a.lives_with(b) and oa < ob + b.size and ob < oa + a.size:
                return True
    return False
