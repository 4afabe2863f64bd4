"""A greedy memory planner over a flatbuffer graph: the activation RAM an inference needs.

TFLite-Micro cannot run LCE flatbuffers, so their RAM cannot be measured with its arena.
This module plans the activation buffers the way TFLM's ``GreedyMemoryPlanner`` does, so the
figure is comparable with the ``head`` of a TFLM arena:

* every non-constant tensor that an operator reads or writes is a buffer, alive from the
  operator that produces it (graph inputs: operator 0) to the last operator that reads it
  (graph outputs: the last operator);
* each buffer's size is rounded up to :data:`ALIGNMENT` (16) bytes;
* buffers are placed largest first (ties by first use, then tensor index); each goes into
  the lowest offset where it does not overlap, in address, any already placed buffer whose
  lifetime overlaps its own;
* the plan's size is the highest end offset.

What the plan does not hold: kernel scratch buffers (im2col and the like, requested by kernels
at prepare time), and the persistent bookkeeping TFLM keeps at the arena's tail (tensor
structs, node structs, quantization data). Compare :attr:`MemoryPlan.total_bytes` with the
arena's head, not its total.
"""

from __future__ import annotations

from dataclasses import dataclass

from convert.flatbuffer import Model

__all__ = ["ALIGNMENT", "PlannedBuffer", "MemoryPlan", "plan_memory", "plan_buffers", "does_any_buffers_overlap"]

ALIGNMENT = 16


def _align_up(size: int, alignment: int = ALIGNMENT) -> int:
    return (size + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class PlannedBuffer:
    """One activation buffer and where the planner put it.

    Attributes:
        tensor: tensor index in the subgraph (``-1`` for buffers not tied to a tensor).
        name: tensor name.
        size: bytes, rounded up to the alignment.
        first_use: index of the operator that creates it (0 for graph inputs).
        last_use: index of the last operator that reads it (last operator for graph outputs).
        offset: byte offset in the arena (``-1`` before planning).
    """

    tensor: int
    name: str
    size: int
    first_use: int
    last_use: int
    offset: int = -1

    @property
    def end(self) -> int:
        """One past the last byte."""
        return self.offset + self.size

    def lives_with(self, other: PlannedBuffer) -> bool:
        """True when the two lifetimes share at least one operator."""
        return not (self.last_use < other.first_use or other.last_use < self.first_use)


@dataclass(frozen=True)
class MemoryPlan:
    """A finished plan: the buffers with their offsets, and the arena size they need.

    Attributes:
        buffers: planned buffers, in tensor order.
        operator_count: operators in the graph (the time axis of the plan).
    """

    buffers: tuple[PlannedBuffer, ...]
    operator_count: int

    @property
    def total_bytes(self) -> int:
        """Bytes of arena the activations need (highest end offset, 0 when empty)."""
        return max((buffer.end for buffer in self.buffers), default=0)

    @property
    def naive_bytes(self) -> int:
        """Bytes needed without any sharing (sum of the aligned buffer sizes)."""
        return sum(buffer.size for buffer in self.buffers)

    def peak_operator(self) -> int:
        """The operator at which the live buffers reach their highest end offset."""
        best, best_end = 0, -1
        for step in range(max(self.operator_count, 1)):
            end = max((b.end for b in self.buffers if b.first_use <= step <= b.last_use), default=0)
            if end > best_end:
                best, best_end = step, end
        return best

    def format(self, width: int = 64) -> str:
        """A printable plan: one row per buffer plus a memory bar per operator.

        Each operator row draws the arena as ``width`` cells; a cell shows the letter of the
        buffer living there at that step (``.`` when free), like TFLM's ``PrintMemoryPlan``.
        """
        lines = [
            f"memory plan: {self.total_bytes} bytes for {len(self.buffers)} buffers "
            f"({self.naive_bytes} without sharing), alignment {ALIGNMENT}",
            f"{'id':>3} {'tensor':>6} {'offset':>8} {'size':>8} {'first':>5} {'last':>5}  name",
        ]
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        for number, buffer in enumerate(self.buffers):
            lines.append(
                f"{letters[number % len(letters)]:>3} {buffer.tensor:>6} {buffer.offset:>8} {buffer.size:>8} "
                f"{buffer.first_use:>5} {buffer.last_use:>5}  {buffer.name[:48]}"
            )
        total = max(self.total_bytes, 1)
        for step in range(self.operator_count):
            cells = ["."] * width
            for number, buffer in enumerate(self.buffers):
                if buffer.first_use <= step <= buffer.last_use:
                    start = buffer.offset * width // total
                    stop = max(start + 1, buffer.end * width // total)
                    for cell in range(start, min(stop, width)):
                        cells[cell] = letters[number % len(letters)]
            lines.append(f"op {step:>3} |{''.join(cells)}|")
        return "\n".join(lines)


def _lifetimes(model: Model) -> list[PlannedBuffer]:
    """Unplanned buffers (offset -1) for every activation tensor the graph touches."""
    last_op = max(len(model.operators) - 1, 0)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for index in model.inputs:
        if index >= 0 and not model.tensors[index].is_constant:
            first[index] = 0
            last[index] = 0
    for op in model.operators:
        for index in op.inputs:
            if index < 0 or model.tensors[index].is_constant:
                continue
            first.setdefault(index, op.index)
            last[index] = max(last.get(index, op.index), op.index)
        for index in op.outputs:
            if index < 0:
                continue
            first.setdefault(index, op.index)
            last[index] = max(last.get(index, op.index), op.index)
    for index in model.outputs:
        if index in first:
            last[index] = last_op
    buffers = []
    for index in sorted(first):
        tensor = model.tensors[index]
        buffers.append(PlannedBuffer(index, tensor.name, _align_up(tensor.nbytes), first[index], last[index]))
    return buffers


def plan_buffers(buffers: list[PlannedBuffer], operator_count: int) -> MemoryPlan:
    """Place buffers with the greedy largest-first strategy.

    Args:
        buffers: buffers with sizes and lifetimes (their offsets are ignored).
        operator_count: length of the time axis (for :meth:`MemoryPlan.format`).

    Returns:
        The plan, buffers in the order given, each with its offset.

    Raises:
        ValueError: a buffer has a negative size or a lifetime that ends before it starts.
    """
    for buffer in buffers:
        if buffer.size < 0 or buffer.last_use < buffer.first_use:
            raise ValueError(
                f"buffer for tensor {buffer.tensor} has size {buffer.size} and lifetime {buffer.first_use}..{buffer.last_use}"
            )
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].first_use, buffers[i].tensor))
    placed: list[PlannedBuffer] = []
    offsets: dict[int, int] = {}
    for i in order:
        candidate = buffers[i]
        neighbours = sorted((b for b in placed if b.lives_with(candidate)), key=lambda b: (b.offset, b.end))
        offset = 0
        for other in neighbours:
            if offset + candidate.size <= other.offset:
                break
            offset = max(offset, other.end)
        done = PlannedBuffer(candidate.tensor, candidate.name, candidate.size, candidate.first_use, candidate.last_use, offset)
        placed.append(done)
        offsets[i] = offset
    result = tuple(PlannedBuffer(b.tensor, b.name, b.size, b.first_use, b.last_use, offsets[i]) for i, b in enumerate(buffers))
    return MemoryPlan(result, operator_count)


def plan_memory(model: Model) -> MemoryPlan:
    """Plan the activation buffers of a parsed flatbuffer (builtin or LCE ops alike).

    Args:
        model: the graph from :func:`convert.flatbuffer.read_model`.

    Returns:
        The :class:`MemoryPlan`; its ``total_bytes`` is the activation RAM.
    """
    return plan_buffers(_lifetimes(model), len(model.operators))


def does_any_buffers_overlap(plan: MemoryPlan) -> bool:
    """True when two buffers alive at the same time share a byte (a planner bug)."""
    buffers = [b for b in plan.buffers if b.size > 0]
    for i, first in enumerate(buffers):
        for second in buffers[i + 1 :]:
            if first.lives_with(second) and first.offset < second.end and second.offset < first.end:
                return True
    return False
