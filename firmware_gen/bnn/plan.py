"""Static activation memory: every buffer placed by its real first and last use.

Each materialized value lives in a *storage* (its own tensor, or the tensor it aliases: RESHAPE,
in-place elementwise ops). A storage is alive from the kernel that first writes it to the last
kernel that reads any value stored in it; :func:`pipeline.planner.plan_buffers` places them in
one arena (byte offsets, every size rounded up to 4 bytes so each element type is aligned).
The model input (the caller's ``input``) and the graph output (the caller's ``scores``) are not
in the arena.

In place: a kernel may offer to write its output over one of its inputs (``Kernel.inplace``:
elementwise ops with identical indexing); the offer is taken when that input's storage dies in
this kernel, holds the same C type and is at least as large.

Type changes: a region that held one C type and later another is reused across an aliasing
boundary the compiler may not see (C's effective type rules); :func:`plan_memory` lists the
kernels before which the emitter puts a compiler barrier, so no access is moved across it.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.values import Value
from pipeline.planner import Buffer, Plan, align_up, plan_buffers

__all__ = ["MemoryPlan", "plan_memory", "INPUT", "SCORES"]

INPUT = "input"
SCORES = "scores"


@dataclass(frozen=True)
class MemoryPlan:
    """Where every value lives.

    Attributes:
        plan: the planner's result (buffers named ``layerN_out``, sizes in bytes).
        places: storage tensor -> byte offset in the arena, or :data:`INPUT` / :data:`SCORES`.
        storage: value tensor -> its storage tensor (after in-place merges).
        barriers: kernel positions that need a compiler barrier before them.
        ctypes: C types of the values the arena holds (sorted).
    """

    plan: Plan
    places: dict[int, int | str]
    storage: dict[int, int]
    barriers: frozenset[int]
    ctypes: tuple[str, ...]

    @property
    def total(self) -> int:
        """Arena bytes."""
        return self.plan.total

    def place(self, tensor: int) -> int | str:
        """Offset (bytes) or :data:`INPUT` / :data:`SCORES` of the value of ``tensor``."""
        return self.places[self.storage[tensor]]


def _root(parent: dict[int, int], key: int) -> int:
    while parent[key] != key:
        key = parent[key]
    return key


def plan_memory(kernels: list[Kernel], values: dict[int, Value], input_tensor: int, output_tensor: int) -> MemoryPlan:
    """Lifetimes, in-place merges and placement of every value the kernels touch.

    Args:
        kernels: in execution order.
        values: tensor -> value (aliases share a storage).
        input_tensor: the model input (read from ``input``).
        output_tensor: the model output (written to ``scores``).

    Returns:
        The :class:`MemoryPlan`.
    """
    parent = {v.storage: v.storage for v in values.values()}
    pinned = {values[input_tensor].storage: INPUT, values[output_tensor].storage: SCORES}

    def last_uses() -> dict[int, int]:
        last: dict[int, int] = {}
        for position, kernel in enumerate(kernels):
            for tensor in (*kernel.inputs, kernel.output):
                last[_root(parent, values[tensor].storage)] = position
        return last

    for position, kernel in enumerate(kernels):
        out_root = _root(parent, values[kernel.output].storage)
        if not kernel.inplace or out_root in pinned:
            continue
        last = last_uses()
        out_value = values[kernel.output]
        for slot in kernel.inplace:
            inp = values[kernel.inputs[slot]]
            root = _root(parent, inp.storage)
            if root in pinned or last[root] != position or inp.ctype != out_value.ctype or inp.nbytes < out_value.nbytes:
                continue
            parent[out_root] = root
            break
    storage = {tensor: _root(parent, v.storage) for tensor, v in values.items()}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}
    ctype: dict[int, set[str]] = {}
    for position, kernel in enumerate(kernels):
        for tensor in (*kernel.inputs, kernel.output):
            root = storage[tensor]
            first.setdefault(root, position)
            last[root] = position
            size[root] = max(size.get(root, 0), align_up(values[tensor].nbytes, 4))
            ctype.setdefault(root, set()).add(values[tensor].ctype)
    arena = [root for root in sorted(first, key=lambda r: (first[r], r)) if root not in pinned]
    buffers = [Buffer(f"layer{first[root]}_out", size[root], first[root], last[root], root) for root in arena]
    plan = plan_buffers(buffers)
    places: dict[int, int | str] = {root: offset for root, offset in zip(arena, plan.offsets, strict=True)}
    places.update(pinned)
    barriers = set()
    for i, a in enumerate(buffers):
        for b in buffers[:i]:
            span_a = (plan.offsets[i], plan.offsets[i] + a.size)
            j = buffers.index(b)
            span_b = (plan.offsets[j], plan.offsets[j] + b.size)
            overlap = span_a[0] < span_b[1] and span_b[0] < span_a[1]
            if overlap and ctype[a.tensor] != ctype[b.tensor]:
                barriers.add(max(a.first, b.first))
    types = tuple(sorted({t for root in arena for t in ctype[root]}))
    return MemoryPlan(plan, places, storage, frozenset(barriers), types)
