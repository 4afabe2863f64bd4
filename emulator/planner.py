"""The activation RAM of a flatbuffer graph, planned the way TFLite-Micro plans its arena.

TFLite-Micro cannot run LCE flatbuffers, so their RAM cannot be measured with its arena. This
module turns a graph into buffers for the shared greedy planner (:mod:`pipeline.planner`), with
TFLite-Micro's rules, so the figure is comparable with the ``head`` of a TFLM arena:

* every non-constant tensor that an operator reads or writes is a buffer, alive from the
  operator that produces it (graph inputs: operator 0) to the last operator that reads it
  (graph outputs: the last operator);
* each buffer's size is rounded up to :data:`ALIGNMENT` (16) bytes.

What the plan does not hold: kernel scratch buffers (im2col and the like, requested by kernels
at prepare time), and the persistent bookkeeping TFLM keeps at the arena's tail (tensor
structs, node structs, quantization data). Compare :attr:`pipeline.planner.Plan.total` with
the arena's head, not its total.
"""

from __future__ import annotations

from convert.flatbuffer import Model
from pipeline.errors import InputError
from pipeline.planner import Buffer, Plan, align_up, plan_buffers

__all__ = ["ALIGNMENT", "tensor_buffers", "plan_memory", "plan_json"]

ALIGNMENT = 16


def tensor_buffers(model: Model) -> list[Buffer]:
    """One buffer per activation tensor the graph touches, in tensor order, sizes aligned.

    Args:
        model: the graph from :func:`convert.flatbuffer.read_model`.

    Returns:
        The unplanned buffers (``tensor`` set, size in bytes rounded up to :data:`ALIGNMENT`).

    Raises:
        InputError: a tensor the graph touches has a negative size or an index outside the
            graph (:func:`convert.flatbuffer.read_model` refuses both; a model built another
            way gets the same one-line refusal instead of a planner error).
    """
    last_op = max(len(model.operators) - 1, 0)
    count = len(model.tensors)
    for index in (*model.inputs, *model.outputs, *(i for op in model.operators for i in (*op.inputs, *op.outputs))):
        if not -1 <= index < count:
            raise InputError(f"{model.path}: the graph names tensor {index}, outside 0..{count - 1}")
        if index >= 0 and model.tensors[index].nbytes < 0:
            tensor = model.tensors[index]
            raise InputError(f"{model.path}: tensor {index} ({tensor.name}) has a negative size (shape {list(tensor.shape)})")
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
    return [
        Buffer(model.tensors[i].name, align_up(model.tensors[i].nbytes, ALIGNMENT), first[i], last[i], tensor=i)
        for i in sorted(first)
    ]


def plan_memory(model: Model) -> Plan:
    """Plan the activation buffers of a parsed flatbuffer (builtin or LCE ops alike).

    Args:
        model: the graph from :func:`convert.flatbuffer.read_model`.

    Returns:
        The :class:`~pipeline.planner.Plan` in bytes; its ``total`` is the activation RAM.
    """
    return plan_buffers(tensor_buffers(model), len(model.operators))


def plan_json(plan: Plan) -> dict[str, object]:
    """A flatbuffer's plan as the emulator's JSON records it (``memory_plan``).

    Returns:
        ``total_bytes``, ``naive_bytes``, ``alignment``, ``operator_count`` and ``buffers``: per
        buffer ``tensor``, ``name``, ``size``, ``first_use``, ``last_use`` and ``offset`` (bytes,
        operator indices).
    """
    return {
        "total_bytes": plan.total,
        "naive_bytes": plan.naive,
        "alignment": ALIGNMENT,
        "operator_count": plan.steps,
        "buffers": [
            {"tensor": b.tensor, "name": b.name, "size": b.size, "first_use": b.first, "last_use": b.last, "offset": o}
            for b, o in zip(plan.buffers, plan.offsets, strict=True)
        ],
    }
