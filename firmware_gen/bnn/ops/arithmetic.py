"""ADD and MUL on float values: constants or two activations, NumPy broadcasting, fused ReLU family.

TFLite's reference kernels: ``out = clamp(a + b)`` / ``clamp(a * b)``, one float32 rounding per
op, so the results are bit-exact. A raw uint8 input is read as the float it converts to (the
rescaling at the start of the zoo's models). The output may overwrite an input of the same
shape that dies here (in place). int8: TFLite's integer ADD (both inputs rescaled to twice the
larger scale with 20 bits of headroom) and MUL, bit-exact.
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, activation, broadcast_loops, clamp_lines, float_input, shape_of
from firmware_gen.bnn.ops.quantized import activation_range, int8_input, int8_quant, quantize_multiplier
from firmware_gen.bnn.values import Quant, Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/arithmetic.c.j2"
TEMPLATE_INT8 = "bnn/ops/arithmetic_int8.c.j2"


def _is_int8(node: Node, ctx: LowerContext) -> bool:
    return any(ctx.values.get(t.index) is not None and ctx.values[t.index].dtype == "int8" for t in node.activations)


def check(node: Node, ctx: LowerContext) -> None:
    """Two operands (one may be a constant), float32 (or int8) values and output."""
    if len(node.inputs) != 2 or any(t is None for t in node.inputs):
        raise node.refuse("expected two operands")
    if _is_int8(node, ctx):
        for slot in range(len(node.activations)):
            int8_input(node, ctx, slot)
        for tensor in node.inputs:
            int8_quant(node, tensor.index)
        activation(node)
        return
    for slot in range(len(node.activations)):
        float_input(node, ctx, slot)
    for tensor in node.inputs:
        if tensor is not None and tensor.is_constant and tensor.dtype != "FLOAT32":
            raise node.refuse(f"constant operand of type {tensor.dtype}, expected FLOAT32")
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}; int8 {node.name} is not supported")
    activation(node)


def _int8_params(node: Node, quants: list[Quant], out_q: Quant) -> dict[str, object]:
    """TFLite's int8 ADD (inputs scaled to 2 * max scale, 20-bit headroom) or MUL parameters."""
    if node.name == "MUL":
        real = float(np.float32(np.float32(quants[0].scale) * np.float32(quants[1].scale)) / np.float32(out_q.scale))
        multiplier, shift = quantize_multiplier(real)
        return {"multiplier": multiplier, "shift": shift}
    twice_max = float(2 * np.float32(max(quants[0].scale, quants[1].scale)))
    params: dict[str, object] = {"left_shift": 20}
    for i, q in enumerate(quants):
        params[f"multiplier{i}"], params[f"shift{i}"] = quantize_multiplier(q.scale / twice_max)
    params["multiplier"], params["shift"] = quantize_multiplier(
        twice_max / float(np.float32((1 << 20) * np.float32(out_q.scale)))
    )
    return params


def _lower_int8(node: Node, ctx: LowerContext) -> Kernel:
    out_shape = tuple(node.output.shape)
    shapes, operands, arrays, inputs, quants = [], [], [], [], []
    for tensor in node.inputs:
        quants.append(int8_quant(node, tensor.index))
        if tensor.is_constant:
            name = f"{ctx.prefix}operand"
            arrays.append(CArray("int8_t", name, tensor.array().astype(np.int64)))
            operands.append(name)
        else:
            operands.append(f"in{len(inputs)}")
            inputs.append(ctx.values[tensor.index].tensor)
        shapes.append(tuple(tensor.shape))
    loops = broadcast_loops(node, out_shape, shapes)
    out_q = int8_quant(node, node.output.index)
    out = ctx.define(Value(node.output.index, "int8", shape_of(node, node.output.shape), quant=out_q))
    lo, hi = activation_range(activation(node), out_q)
    context = {
        **loops,
        **_int8_params(node, quants, out_q),
        "a": operands[0],
        "b": operands[1],
        "offsets": [-q.zero_point for q in quants],
        "output_offset": out_q.zero_point,
        "act_min": lo,
        "act_max": hi,
        "add": node.name == "ADD",
        "uses_int8": True,
    }
    return Kernel(
        node.index, [node.name], tuple(inputs), out.tensor, TEMPLATE_INT8, context, arrays, kind=node.name.title() + "Int8"
    )


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Four nested loops over the broadcast output."""
    if _is_int8(node, ctx):
        return _lower_int8(node, ctx)
    out_shape = tuple(node.output.shape)
    shapes, operands, arrays, inputs, inplace = [], [], [], [], []
    for tensor in node.inputs:
        if tensor.is_constant:
            name = f"{ctx.prefix}operand"
            arrays.append(CArray("float", name, tensor.array().astype(np.float32)))
            operands.append(name)
        else:
            value = ctx.values[tensor.index]
            if tuple(tensor.shape) == out_shape and value.dtype == "float32":
                inplace.append(len(inputs))
            operands.append(f"in{len(inputs)}")
            inputs.append(value.tensor)
        shapes.append(tuple(tensor.shape))
    loops = broadcast_loops(node, out_shape, shapes)
    out = ctx.define(Value(node.output.index, "float32", shape_of(node, node.output.shape)))
    context = {
        **loops,
        "a": operands[0],
        "b": operands[1],
        "op": "+" if node.name == "ADD" else "*",
        "clamp": clamp_lines("v", activation(node)),
    }
    return Kernel(node.index, [node.name], tuple(inputs), out.tensor, TEMPLATE, context, arrays, kind=node.name.title(),
                  inplace=tuple(inplace))  # fmt: skip


OP = OpKind(
    ("ADD", "MUL"), check, lower, TEMPLATE, "float32 or int8; constant or activation operands, broadcasting, fused ReLU family"
)
