"""RELU, RELU6 and RELU_N1_TO_1: TFLite's clamps on float values, its QuantizedReluX on int8; bit-exact (in place)."""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, clamp_lines, float_input
from firmware_gen.bnn.ops.quantized import INT8_MAX, INT8_MIN, int8_input, int8_quant, quantize_multiplier, round_away
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/relu.c.j2"
TEMPLATE_INT8 = "bnn/ops/relu_int8.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 (or int8) input and output."""
    if ctx.value(node).dtype == "int8":
        int8_input(node, ctx)
        int8_quant(node, node.output.index)
        return
    float_input(node, ctx)
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}; int8 {node.name} is not supported")


_LIMITS = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def _lower_int8(node: Node, ctx: LowerContext, value: Value) -> Kernel:
    """TFLite's QuantizedReluX: requantize to the output scale, clamp to the quantized limits."""
    out_q = int8_quant(node, node.output.index)
    multiplier, shift = quantize_multiplier(value.quant.scale / out_q.scale)
    lo, hi = _LIMITS[node.name]
    act_min = max(INT8_MIN, out_q.zero_point + round_away(float(np.float32(lo) / np.float32(out_q.scale))))
    act_max = (
        INT8_MAX if hi is None else min(INT8_MAX, out_q.zero_point + round_away(float(np.float32(hi) / np.float32(out_q.scale))))
    )
    out = ctx.define(Value(node.output.index, "int8", value.shape, quant=out_q))
    context = {
        "count": value.size,
        "input_offset": -value.quant.zero_point,
        "output_offset": out_q.zero_point,
        "multiplier": multiplier,
        "shift": shift,
        "act_min": act_min,
        "act_max": act_max,
        "uses_int8": True,
    }
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE_INT8, context, kind="ReluInt8", inplace=(0,))


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """One clamp per element."""
    value = ctx.value(node)
    if value.dtype == "int8":
        return _lower_int8(node, ctx, value)
    out = ctx.define(Value(node.output.index, "float32", value.shape))
    context = {"count": value.size, "clamp": clamp_lines("v", node.name)}
    inplace = (0,) if value.dtype == "float32" else ()
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, kind="Relu", inplace=inplace)


OP = OpKind(("RELU", "RELU6", "RELU_N1_TO_1"), check, lower, TEMPLATE, "float32 or int8")
