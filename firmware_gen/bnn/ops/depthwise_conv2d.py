"""DEPTHWISE_CONV_2D in float: channel ``c * multiplier + m`` convolves input channel ``c`` alone.

TFLite's reference kernel: ``acc = sum over (ky, kx) of input * filter``, then ``+ bias`` and the
fused ReLU family. Any kernel, strides, dilation, depth multiplier, SAME or VALID.
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.ops.base import (
    LowerContext,
    OpKind,
    activation,
    clamp_lines,
    float_input,
    lut_array,
    make_window,
    positive,
    window_context,
)
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/depthwise_conv2d.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 input, filter ``(1, KH, KW, C * M)``, bias and output; SAME or VALID."""
    value = float_input(node, ctx)
    weights = node.const(1, "filter")
    if node.inputs[1].dtype != "FLOAT32" or weights.ndim != 4 or weights.shape[0] != 1:
        raise node.refuse(f"filter of type {node.inputs[1].dtype} {weights.shape}; int8 DEPTHWISE_CONV_2D is not supported")
    multiplier = positive(node, "depthMultiplier", 1)
    if weights.shape[3] != value.shape[2] * multiplier:
        raise node.refuse(f"filter has {weights.shape[3]} channels, expected {value.shape[2]} x {multiplier}")
    if node.has_input(2) and node.const(2, "bias").size != weights.shape[3]:
        raise node.refuse("bias must have one value per output channel")
    if node.options.get("padding") not in ("SAME", "VALID") or node.output.dtype != "FLOAT32":
        raise node.refuse(f"padding {node.options.get('padding')!r} / output {node.output.dtype} (SAME/VALID, FLOAT32)")
    for key in ("strideH", "strideW", "dilationHFactor", "dilationWFactor"):
        positive(node, key, 1)
    activation(node)


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """One accumulator per output, filter taps in (ky, kx) order."""
    value = ctx.value(node)
    weights = node.const(1, "filter").astype(np.float32)
    _, kh, kw, out_c = weights.shape
    stride = positive(node, "strideH", 1), positive(node, "strideW", 1)
    dilation = positive(node, "dilationHFactor", 1), positive(node, "dilationWFactor", 1)
    conv = make_window(node, value.shape, (kh, kw), stride, node.options.get("padding") == "SAME", dilation)
    bias = node.const(2, "bias").astype(np.float32) if node.has_input(2) else np.zeros(out_c, np.float32)
    arrays = [CArray("float", f"{ctx.prefix}weights", weights), CArray("float", f"{ctx.prefix}bias", bias)]
    lut, lut_name = lut_array(ctx, value)
    arrays += lut
    out = ctx.define(Value(node.output.index, "float32", (conv.out_h, conv.out_w, out_c)))
    context = {
        "lut": lut_name,
        **window_context(conv),
        "in_c": value.shape[2],
        "out_c": out_c,
        "multiplier": positive(node, "depthMultiplier", 1),
        "clamp": clamp_lines("acc", activation(node)),
    }
    kernel = Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, arrays, kind="DepthwiseConv2D")
    kernel.weight_bytes = arrays[0].nbytes
    return kernel


OP = OpKind(
    ("DEPTHWISE_CONV_2D",), check, lower, TEMPLATE, "float32; any kernel, strides, dilation, depth multiplier, SAME/VALID"
)
