"""RELU, RELU6 and RELU_N1_TO_1 on float values: TFLite's clamps, bit-exact (in place)."""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, clamp_lines, float_input
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/relu.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 input and output."""
    float_input(node, ctx)
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}; int8 {node.name} is not supported")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """One clamp per element."""
    value = ctx.value(node)
    out = ctx.define(Value(node.output.index, "float32", value.shape))
    context = {"count": value.size, "clamp": clamp_lines("v", node.name)}
    inplace = (0,) if value.dtype == "float32" else ()
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, kind="Relu", inplace=inplace)


OP = OpKind(("RELU", "RELU6", "RELU_N1_TO_1"), check, lower, TEMPLATE, "float32")
