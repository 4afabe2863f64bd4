"""Kernel order: a topological order of the kernels that keeps the live activation memory low.

The converter's order is one valid order, not the one that needs the least RAM: in a residual
block it often computes the shortcut branch (average pool, 1x1 conv) while the block's input is
still waiting for its LceQuantize, so three large float buffers live at once. This pass lists
the kernels again, greedily: among the kernels whose inputs are ready, the one that adds the
fewest bytes (its output's buffer minus the buffers it is the last reader of); ties keep the
converter's order, so a chain (every model the integer path compiled so far) keeps its order.
"""

from __future__ import annotations

from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.values import Value

__all__ = ["schedule"]


def schedule(kernels: list[Kernel], values: dict[int, Value]) -> list[Kernel]:
    """Reorder ``kernels`` (a valid topological order) to lower the peak of live buffers.

    Args:
        kernels: in a valid execution order (each input written by an earlier kernel, or the
            model input).
        values: tensor -> value (aliases share a ``storage``).

    Returns:
        The same kernels in a valid order (a kernel that returns the class stays last: every
        kernel feeds the output), their constants renamed ``lN_`` after their new position.
    """
    writer = {values[k.output].storage: i for i, k in enumerate(kernels)}
    deps = [{writer[values[t].storage] for t in k.inputs if values[t].storage in writer} for k in kernels]
    readers: dict[int, int] = {}
    for k in kernels:
        for storage in {values[t].storage for t in k.inputs}:
            readers[storage] = readers.get(storage, 0) + 1
    done: set[int] = set()
    order: list[int] = []
    while len(order) < len(kernels):
        ready = [i for i in range(len(kernels)) if i not in done and deps[i] <= done]

        def cost(i: int) -> tuple[int, int]:
            kernel = kernels[i]
            inputs = {values[t].storage: t for t in kernel.inputs}
            freed = sum(values[t].nbytes for storage, t in inputs.items() if readers.get(storage) == 1)
            return values[kernel.output].nbytes - freed, i

        pick = min(ready, key=cost)
        order.append(pick)
        done.add(pick)
        for storage in {values[t].storage for t in kernels[pick].inputs}:
            readers[storage] -= 1
    ordered = [kernels[i] for i in order]
    for position, kernel in enumerate(ordered):  # constants are named after the position: lN_...
        for array in (*kernel.arrays, *kernel.inner_arrays):
            array.name = f"l{position}_" + array.name[len(kernel.prefix) :]
        kernel.prefix = f"l{position}_"
    return ordered
