"""DEPTHWISE_CONV_2D in float: channel ``c * multiplier + m`` convolves input channel ``c`` alone.

TFLite's reference kernel: ``acc = sum over (ky, kx) of input * filter``, then ``+ bias`` and the
fused ReLU family. Any kernel, strides, dilation, depth multiplier, SAME or VALID. int8: TFLite's
DepthwiseConvPerChannel with the final rounding shift rounding halves up (as the optimized kernel
of LCE's interpreter does; the reference kernel rounds them away from zero), bit-exact against LCE.
"""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, activation, check_window_options, float_input, positive
from firmware_gen.bnn.ops.quantized import check_int8_weights, int8_input
from firmware_gen.bnn.ops.window_conv import float_conv_kernel, int8_conv_kernel, option_window

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
    """One accumulator per output, filter taps in (ky, kx) order (int8: DepthwiseConvPerChannel)."""
    value = ctx.value(node)
    _, kh, kw, out_c = node.const(1, "filter").shape
    conv = option_window(node, value.shape, (kh, kw))
    extra = {"in_c": value.shape[2], "out_c": out_c, "multiplier": positive(node, "depthMultiplier", 1)}
    if value.dtype == "int8":
        return int8_conv_kernel(node, ctx, conv, out_c, TEMPLATE_INT8, "DepthwiseInt8", extra)
    return float_conv_kernel(node, ctx, conv, out_c, TEMPLATE, "DepthwiseConv2D", extra)


OP = OpKind(
    ("DEPTHWISE_CONV_2D",), check, lower, TEMPLATE, "float32 or int8; any kernel, strides, dilation, depth multiplier, SAME/VALID"
)
