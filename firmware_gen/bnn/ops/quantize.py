"""QUANTIZE (float32 -> int8) and DEQUANTIZE (int8 -> float32): TFLite's affine maps, bit-exact.

QUANTIZE: ``q = clamp(round(x / scale) + zero_point)`` with the division in float and rounding
half away from zero (``TfLiteRound``); DEQUANTIZE: ``x = scale * (q - zero_point)`` (one float
rounding of an exact product). A raw uint8 input is quantized as the float it converts to.
"""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel, c_float
from firmware_gen.bnn.ops.base import LowerContext, OpKind, float_input
from firmware_gen.bnn.ops.quantized import int8_input, int8_quant
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/quantize.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """QUANTIZE: float32 (or raw uint8) in, int8 out; DEQUANTIZE: int8 in, float32 out."""
    if node.name == "QUANTIZE":
        float_input(node, ctx)
        int8_quant(node, node.output.index)
    else:
        int8_input(node, ctx)
        if node.output.dtype != "FLOAT32":
            raise node.refuse(f"output of type {node.output.dtype}, expected FLOAT32")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """One affine map per element."""
    value = ctx.value(node)
    if node.name == "QUANTIZE":
        quant = int8_quant(node, node.output.index)
        out = ctx.define(Value(node.output.index, "int8", value.shape, quant=quant))
    else:
        quant = value.quant
        out = ctx.define(Value(node.output.index, "float32", value.shape))
    context = {
        "count": value.size,
        "quantize": node.name == "QUANTIZE",
        "scale": c_float(quant.scale),
        "zero_point": quant.zero_point,
    }
    context["uses_round"] = node.name == "QUANTIZE"
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, kind=node.name.title())


OP = OpKind(("QUANTIZE", "DEQUANTIZE"), check, lower, TEMPLATE, "float32 -> int8 and int8 -> float32, per-tensor")
