"""PAD of an NHWC value with zeros (float) or the zero point (int8), constant paddings on height, width, channels."""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, float_input
from firmware_gen.bnn.ops.quantized import int8_input, int8_quant
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/pad.c.j2"


def _paddings(node: Node) -> list[tuple[int, int]]:
    pads = node.const(1, "paddings").astype(int).reshape(-1, 2)
    return [(int(a), int(b)) for a, b in pads]


def check(node: Node, ctx: LowerContext) -> None:
    """Float (or int8) input of rank 2 to 4 (batch 1, not padded), non-negative paddings."""
    if ctx.value(node).dtype == "int8":
        if int8_input(node, ctx).quant != int8_quant(node, node.output.index):
            raise node.refuse("int8 PAD with different input and output quantization")
    else:
        float_input(node, ctx)
        if node.output.dtype != "FLOAT32":
            raise node.refuse(f"output of type {node.output.dtype}")
    pads = _paddings(node)
    if len(pads) != len(node.data.shape) or not 2 <= len(pads) <= 4 or pads[0] != (0, 0) or min(min(p) for p in pads) < 0:
        raise node.refuse(f"paddings {pads}: expected non-negative paddings of a batch-1 tensor of rank 2 to 4, batch unpadded")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Every output element: the input element or 0."""
    value = ctx.value(node)
    pads = _paddings(node)[1:]
    if len(pads) == 1:  # (1, N): H = W = 1
        pads = [(0, 0), (0, 0), pads[0]]
    elif len(pads) == 2:  # (1, H, W): C = 1
        pads = [*pads, (0, 0)]
    h, w, c = value.shape
    shape = (h + sum(pads[0]), w + sum(pads[1]), c + sum(pads[2]))
    int8 = value.dtype == "int8"
    out = ctx.define(Value(node.output.index, "int8" if int8 else "float32", shape, quant=value.quant))
    context = {
        "fill": str(value.quant.zero_point) if int8 else "0.0f",
        "in_h": h,
        "in_w": w,
        "in_c": c,
        "out_h": shape[0],
        "out_w": shape[1],
        "out_c": shape[2],
        "top": pads[0][0],
        "left": pads[1][0],
        "front": pads[2][0],
    }
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, kind="Pad")


OP = OpKind(
    ("PAD",), check, lower, TEMPLATE, "float32 or int8 (the zero point), any non-negative paddings of height, width, channels"
)
