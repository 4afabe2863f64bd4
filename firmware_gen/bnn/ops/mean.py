"""MEAN over the spatial axes of a float NHWC tensor (global average pooling).

TFLite's reference kernel: per channel, sum over (h, w) in order, divided by ``H * W``;
``keep_dims`` only changes the output shape. Other axis sets are refused.
"""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, float_input, shape_of
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/mean.c.j2"


def _axes(node: Node) -> set[int]:
    rank = len(node.data.shape)
    return {int(a) % rank for a in node.const(1, "axes").reshape(-1)}


def check(node: Node, ctx: LowerContext) -> None:
    """A 4-D float input reduced over axes 1 and 2 (height and width)."""
    float_input(node, ctx)
    if len(node.data.shape) != 4 or _axes(node) != {1, 2}:
        raise node.refuse(
            f"mean over axes {sorted(_axes(node))} of a rank-{len(node.data.shape)} tensor; only the spatial axes (1, 2) of NHWC"
        )
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Per channel, one pass over the map."""
    value = ctx.value(node)
    h, w, c = value.shape
    out = ctx.define(Value(node.output.index, "float32", shape_of(node, node.output.shape)))
    context = {"pixels": h * w, "channels": c, "divisor": h * w}
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, kind="Mean")


OP = OpKind(("MEAN",), check, lower, TEMPLATE, "float32 over the spatial axes (global average pooling), keep_dims or not")
