"""ADD and MUL on float values: constants or two activations, NumPy broadcasting, fused ReLU family.

TFLite's reference kernels: ``out = clamp(a + b)`` / ``clamp(a * b)``, one float32 rounding per
op, so the results are bit-exact. A raw uint8 input is read as the float it converts to (the
rescaling at the start of the zoo's models). The output may overwrite an input of the same
shape that dies here (in place).
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, activation, broadcast_loops, clamp_lines, float_input, shape_of
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/arithmetic.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Two operands (one may be a float32 constant), float32 output."""
    if len(node.inputs) != 2 or any(t is None for t in node.inputs):
        raise node.refuse("expected two operands")
    for slot in range(len(node.activations)):
        float_input(node, ctx, slot)
    for tensor in node.inputs:
        if tensor is not None and tensor.is_constant and tensor.dtype != "FLOAT32":
            raise node.refuse(f"constant operand of type {tensor.dtype}, expected FLOAT32")
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}; int8 {node.name} is not supported")
    activation(node)


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Four nested loops over the broadcast output."""
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


OP = OpKind(("ADD", "MUL"), check, lower, TEMPLATE, "float32, constant or activation operands, broadcasting, fused ReLU family")
