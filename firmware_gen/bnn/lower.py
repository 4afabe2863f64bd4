"""The compiler driver: graph -> kernels and values, in execution order.

1. Dead ops (nothing the model output depends on) are dropped.
2. The fusion pass (:mod:`firmware_gen.bnn.fusion`) finds the chains the integer path compiles
   as one layer; each becomes one kernel (:mod:`firmware_gen.bnn.fused`,
   :mod:`firmware_gen.bnn.binary`), or, when its numbers do not allow it, its ops are compiled
   one by one (the reason goes into the report).
3. Every other op goes through its module in the registry (:mod:`firmware_gen.bnn.ops`):
   ``check`` then ``lower``. An op outside the registry is refused.
4. The kernels are ordered to keep live memory low (:mod:`firmware_gen.bnn.schedule`).
5. The model output must be float32, int8 or the fused integer scores; an int8 output is
   widened into the int32 scores by one last kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_gen.bnn.binary import layer_kernel
from firmware_gen.bnn.fused import lower_group
from firmware_gen.bnn.fusion import Group, NotFusableError, find_groups
from firmware_gen.bnn.graph import Graph, hwc
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops import LowerContext, lce_bconv2d, op_kind
from firmware_gen.bnn.ops.base import LUT_READERS
from firmware_gen.bnn.schedule import schedule
from firmware_gen.bnn.signature import Signature, choose_input_dtype, input_quant
from firmware_gen.bnn.values import Value
from pipeline.errors import InputError

__all__ = ["Program", "compile_graph"]


@dataclass
class Program:
    """A compiled model before memory planning and emission.

    Attributes:
        graph: the model.
        signature: the API (input shape and type, classes, score type).
        kernels: in execution order.
        values: tensor index -> materialized value.
        output: the tensor whose value the kernels write into the caller's scores.
        notes: remarks for the report (groups not fused and why, dropped ops).
    """

    graph: Graph
    signature: Signature
    kernels: list[Kernel]
    values: dict[int, Value]
    output: int
    notes: list[str] = field(default_factory=list)


def _live_nodes(graph: Graph) -> set[int]:
    live: set[int] = set()
    pending = [graph.output.index]
    while pending:
        node = graph.producer(pending.pop())
        if node is None or node.index in live:
            continue
        live.add(node.index)
        pending.extend(t.index for t in node.activations)
    return live


def _pixel_conv_applies(graph: Graph, shape: tuple[int, int, int]) -> tuple[bool, str | None]:
    """Whether a group reading the model input compiles as the integer pixel conv, and the report's
    note when one could but its numbers do not allow it."""
    if graph.input.dtype != "FLOAT32":
        return False, None
    for group in find_groups(graph, pixel_input=True):
        if group.kind == "pixel":
            try:
                lower_group(group, Value(graph.input.index, "uint8", shape))
                return True, None
            except NotFusableError as why:
                return False, f"layer {group.producer.index} ({group.producer.name}): not the integer pixel conv: {why}"
    return False, None


def _rescale_table(graph: Graph, ctx: LowerContext, claimed: set[int]) -> list[int]:
    """Fold the scalar MUL/ADD chain on a uint8 model input into a 256-entry float table.

    Applies when the chain (each op used once, no fused activation, not claimed by a fusion
    group) ends in a tensor that only ops of ``LUT_READERS`` read: they then read the raw input
    through the table (no float copy of the input in RAM). The table replays the chain's
    float32 operations exactly. Returns the folded nodes' indices.
    """
    source = ctx.values[graph.input.index]
    if source.dtype != "uint8":
        return []
    chain, tensor = [], graph.input.index
    while True:
        consumers = graph.consumers(tensor)
        node = consumers[0] if len(consumers) == 1 else None
        if node is None or node.name not in ("MUL", "ADD") or node.index in claimed or tensor == graph.output.index:
            break
        consts = [t for t in node.inputs if t is not None and t.is_constant]
        if len(node.inputs) != 2 or len(consts) != 1 or consts[0].size != 1 or consts[0].dtype != "FLOAT32":
            break
        if node.options.get("fusedActivationFunction", "NONE") != "NONE" or node.output.dtype != "FLOAT32":
            break
        chain.append(node)
        tensor = node.output.index
    readers = graph.consumers(tensor)
    if not chain or not readers or tensor == graph.output.index or any(n.name not in LUT_READERS for n in readers):
        return []
    table = np.arange(256, dtype=np.float32)
    for node in chain:
        constant = np.float32(node.operand().reshape(-1)[0])
        table = (table * constant if node.name == "MUL" else table + constant).astype(np.float32)
    ctx.define(Value(tensor, "uint8", source.shape, storage=source.storage, lut=table))
    return [node.index for node in chain]


def _lower_group(group: Group, ctx: LowerContext) -> Kernel:
    if group.kind == "residual":
        return lce_bconv2d.lower_residual(group.producer, group.end, ctx)
    inp = ctx.values[group.input]
    layer = lower_group(group, inp)
    kernel, background = layer_kernel(layer, ctx.prefix, inp.background, ctx.dsp)
    out_tensor = group.nodes[-1].output.index
    if group.scores:
        ctx.define(Value(out_tensor, "int32", (1, 1, int(layer.signs.shape[0]))))
    else:
        shape = (layer.out.h, layer.out.w, layer.out.c)
        ctx.define(Value(out_tensor, "bits", shape, complement=layer.epilogue.complement.copy(), background=background))
    kernel.inputs, kernel.output = (group.input,), out_tensor
    return kernel


def _widen_output(graph: Graph, ctx: LowerContext) -> Kernel:
    """A last kernel copying the int8 model output into the int32 scores."""
    source = ctx.values[graph.output.index]
    target = ctx.define(Value(-1 - graph.output.index, "int32", source.shape))
    context = {"count": source.size}
    return Kernel(graph.output.index, ["(int8 output -> int32 scores)"], (source.tensor,), target.tensor,
                  "bnn/ops/widen.c.j2", context, kind="Widen")  # fmt: skip


def compile_graph(graph: Graph, input_type: str = "auto", dsp: bool = False) -> Program:
    """Lower ``graph`` to kernels.

    Args:
        graph: from :func:`firmware_gen.bnn.graph.load_graph`.
        input_type: ``auto``, ``uint8`` or ``float32`` (see :mod:`firmware_gen.bnn.signature`).
        dsp: the target core has the DSP extension (the 8-bit pixel conv then stores int16 weight
            pairs for SMLAD, :mod:`firmware_gen.bnn.pixel`).

    Returns:
        The :class:`Program`.

    Raises:
        InputError: an op, option or type outside the supported set (one line naming the
            layer and the op), a model output the engine cannot return as scores, or constants
            that overflow float arithmetic when folded (a hostile or broken file: the C would hold
            infinities or garbage integers).
    """
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            program = _compile(graph, input_type, dsp)
    except FloatingPointError as err:
        raise InputError(f"bnn engine: folding the model's constants fails in float arithmetic ({err})") from None
    _check_finite(program.kernels)
    return program


def _check_finite(kernels: list[Kernel]) -> None:
    """Refuse a float constant the C cannot hold (an infinity or NaN the file itself carries)."""
    for kernel in kernels:
        for array in (*kernel.arrays, *kernel.inner_arrays):
            if array.ctype == "float" and not np.all(np.isfinite(np.asarray(array.values, dtype=np.float32))):
                raise InputError(
                    f"bnn engine: layer {kernel.index} ({kernel.ops[0] if kernel.ops else kernel.kind}): "
                    f"constant {array.name} is not finite in float32"
                )


def _compile(graph: Graph, input_type: str, dsp: bool) -> Program:
    """:func:`compile_graph` without its float-arithmetic guard."""
    shape = hwc(graph.input.shape) or (1, 1, 1)
    pixel, why_not = _pixel_conv_applies(graph, shape)
    in_dtype = choose_input_dtype(graph, input_type, pixel)
    ctx = LowerContext(graph, dsp=dsp)
    ctx.define(Value(graph.input.index, in_dtype, shape, quant=input_quant(graph)))
    live = _live_nodes(graph)
    notes = [f"layer {n.index} ({n.name}): dropped, the output does not depend on it" for n in graph.nodes if n.index not in live]
    notes += [why_not] if why_not is not None and in_dtype != "uint8" else []
    nodes = [n for n in graph.nodes if n.index in live]
    for node in nodes:
        op_kind(node)  # refuse an unknown op before anything else
        for tensor in (*node.activations, node.output):
            if any(int(d) <= 0 for d in tensor.shape):
                raise node.refuse(f"tensor {tensor.index} has shape {list(tensor.shape)}: every dimension must be positive")
    groups = {g.nodes[0].index: g for g in find_groups(graph, in_dtype == "uint8") if all(n.index in live for n in g.nodes)}
    kernels: list[Kernel] = []
    done = set(_rescale_table(graph, ctx, {n.index for g in groups.values() for n in g.nodes}))
    for node in nodes:
        if node.index in done:
            notes.append(f"layer {node.index} ({node.name}): folded into the input's 256-entry rescaling table")
    for node in nodes:
        if node.index in done:
            continue
        ctx.prefix = f"l{len(kernels)}_"
        group = groups.get(node.index)
        if group is not None:
            try:
                kernels.append(_lower_group(group, ctx))
                kernels[-1].prefix = ctx.prefix
                done.update(n.index for n in group.nodes)
                continue
            except NotFusableError as why:
                notes.append(f"layer {group.producer.index} ({group.producer.name}): compiled op by op, not fused: {why}")
        kind = op_kind(node)
        kind.check(node, ctx)
        kernel = kind.lower(node, ctx)
        if kernel is not None:
            kernel.prefix = ctx.prefix
            kernels.append(kernel)
    output = ctx.values.get(graph.output.index)
    if output is None or output.dtype not in ("float32", "int8", "int32"):
        what = "not computed" if output is None else f"{output.dtype} values"
        raise InputError(f"bnn engine: the model output (tensor {graph.output.index}) is {what}; expected float32 or int8 scores")
    if output.storage == ctx.values[graph.input.index].storage:
        raise InputError("bnn engine: the model output is its input")
    if output.dtype == "int8":
        ctx.prefix = f"l{len(kernels)}_"
        kernels.append(_widen_output(graph, ctx))
        kernels[-1].prefix = ctx.prefix
    kernels = schedule(kernels, ctx.values)
    score_dtype = "float32" if output.dtype == "float32" else "int32"
    signature = Signature.of(graph, in_dtype, score_dtype)
    return Program(graph, signature, kernels, ctx.values, kernels[-1].output if output.dtype == "int8" else output.tensor, notes)
