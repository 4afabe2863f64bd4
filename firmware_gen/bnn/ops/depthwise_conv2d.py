"""DEPTHWISE_CONV_2D in float: channel ``c * multiplier + m`` convolves input channel ``c`` alone.

TFLite's reference kernel: ``acc = sum over (ky, kx) of input * filter``, then ``+ bias`` and the
fused ReLU family. Any kernel, strides, dilation, depth multiplier, SAME or VALID. int8: TFLite's
DepthwiseConvPerChannel with the final rounding shift rounding halves up (as the optimized kernel
of LCE's interpreter does; the reference kernel rounds them away from zero), bit-exact against LCE.
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.ops.base import (
    LowerContext,
    OpKind,
    activation,
    check_window_options,
    clamp_lines,
    float_input,
    lut_array,
    make_window,
    positive,
    window_context,
)
from firmware_gen.bnn.ops.quantized import (
    activation_range,
    check_int8_weights,
    filter_multipliers,
    int8_input,
    int8_quant,
    int32_bias,
)
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/depthwise_conv2d.c.j2"
TEMPLATE_INT8 = "bnn/ops/depthwise_conv2d_int8.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 (or int8) input, filter ``(1, KH, KW, C * M)``, bias and output; SAME or VALID."""
    if ctx.value(node).dtype == "int8":
        value = int8_input(node, ctx)
        weights = node.const(1, "filter")
        multiplier = positive(node, "depthMultiplier", 1)
        if weights.ndim != 4 or weights.shape[0] != 1 or weights.shape[3] != value.shape[2] * multiplier:
            raise node.refuse(f"filter {weights.shape} does not fit {value.shape[2]} channels x {multiplier}")
        check_int8_weights(node, value.quant, weights.shape[3], symmetric=True)
        check_window_options(node)
        activation(node)
        return
    value = float_input(node, ctx)
    weights = node.const(1, "filter")
    if node.inputs[1].dtype != "FLOAT32" or weights.ndim != 4 or weights.shape[0] != 1:
        raise node.refuse(f"filter of type {node.inputs[1].dtype} {weights.shape}; int8 DEPTHWISE_CONV_2D is not supported")
    multiplier = positive(node, "depthMultiplier", 1)
    if weights.shape[3] != value.shape[2] * multiplier:
        raise node.refuse(f"filter has {weights.shape[3]} channels, expected {value.shape[2]} x {multiplier}")
    if node.has_input(2) and node.const(2, "bias").size != weights.shape[3]:
        raise node.refuse("bias must have one value per output channel")
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}")
    check_window_options(node)
    activation(node)


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """One accumulator per output, filter taps in (ky, kx) order."""
    value = ctx.value(node)
    weights = node.const(1, "filter").astype(np.float32)
    _, kh, kw, out_c = weights.shape
    stride = positive(node, "strideH", 1), positive(node, "strideW", 1)
    dilation = positive(node, "dilationHFactor", 1), positive(node, "dilationWFactor", 1)
    conv = make_window(node, value.shape, (kh, kw), stride, node.options.get("padding") == "SAME", dilation)
    if value.dtype == "int8":
        return _lower_int8(node, ctx, value, conv)
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


def _lower_int8(node: Node, ctx: LowerContext, value: Value, conv) -> Kernel:
    """TFLite's DepthwiseConvPerChannel: acc = bias + sum w * (x - zp_in), requantized per channel."""
    weights = node.const(1, "filter").astype(np.int64)
    out_c = weights.shape[3]
    out_q = int8_quant(node, node.output.index)
    multipliers, shifts = filter_multipliers(node, value.quant, out_q, out_c)
    arrays = [
        CArray("int8_t", f"{ctx.prefix}weights", weights),
        CArray("int32_t", f"{ctx.prefix}bias", int32_bias(node, out_c)),
        CArray("int32_t", f"{ctx.prefix}multiplier", multipliers),
        CArray("int8_t", f"{ctx.prefix}shift", shifts),
    ]
    out = ctx.define(Value(node.output.index, "int8", (conv.out_h, conv.out_w, out_c), quant=out_q))
    lo, hi = activation_range(activation(node), out_q)
    context = {
        **window_context(conv),
        "in_c": value.shape[2],
        "out_c": out_c,
        "multiplier": positive(node, "depthMultiplier", 1),
        "input_offset": -value.quant.zero_point,
        "output_offset": out_q.zero_point,
        "act_min": lo,
        "act_max": hi,
        "uses_int8": True,
    }
    kernel = Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE_INT8, context, arrays, kind="DepthwiseInt8")
    kernel.weight_bytes = arrays[0].nbytes
    return kernel


OP = OpKind(
    ("DEPTHWISE_CONV_2D",), check, lower, TEMPLATE, "float32 or int8; any kernel, strides, dilation, depth multiplier, SAME/VALID"
)
