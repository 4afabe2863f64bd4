"""CONV_2D in float (full-precision layers: the zoo's stem, 1x1 shortcut convs, ...) or int8.

TFLite's reference kernel: per output, ``acc = sum over (ky, kx, c) of input * filter`` in that
order, then ``acc + bias`` and the fused ReLU family; padding taps are skipped. Any kernel,
strides, dilation, SAME or VALID; a raw uint8 input is read as the float it converts to. The
sum's order may differ from TFLite's optimized kernels: results agree to float rounding.
A CONV_2D with ``+-c`` weights on the raw pixels is compiled by the fusion pass instead
(exact integer pixel conv); elsewhere ``+-c`` weights (BinaryConnect) are stored as sign bits
with one scale per output channel, same products and sums. int8 (a quantized flatbuffer):
TFLite's ConvPerChannel, bit-exact.
"""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, activation, check_window_options, float_input
from firmware_gen.bnn.ops.quantized import check_int8_weights, int8_input
from firmware_gen.bnn.ops.window_conv import float_conv_kernel, int8_conv_kernel, option_window

__all__ = ["OP"]

TEMPLATE = "bnn/ops/conv2d.c.j2"
TEMPLATE_INT8 = "bnn/ops/conv2d_int8.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 (or int8) input, weights, bias and output; SAME or VALID; positive strides and dilations."""
    if ctx.value(node).dtype == "int8":
        _check_int8(node, ctx)
        return
    value = float_input(node, ctx)
    weights = node.const(1, "filter")
    if node.inputs[1].dtype != "FLOAT32" or weights.ndim != 4:
        raise node.refuse(f"filter of type {node.inputs[1].dtype} {weights.shape}; int8 CONV_2D is not supported")
    if weights.shape[3] != value.shape[2]:
        raise node.refuse(f"filter reads {weights.shape[3]} channels, the input has {value.shape[2]} (grouped conv)")
    if node.has_input(2) and (node.inputs[2].dtype != "FLOAT32" or node.const(2, "bias").size != weights.shape[0]):
        raise node.refuse("bias must be float32 with one value per output channel")
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}")
    check_window_options(node)
    activation(node)


def _check_int8(node: Node, ctx: LowerContext) -> None:
    value = int8_input(node, ctx)
    weights = node.const(1, "filter")
    if weights.ndim != 4 or weights.shape[3] != value.shape[2]:
        raise node.refuse(f"filter {weights.shape} does not read the {value.shape[2]} input channels")
    check_int8_weights(node, value.quant, weights.shape[0], symmetric=True)
    check_window_options(node)
    activation(node)


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Direct convolution, one accumulator per output (int8: TFLite's ConvPerChannel)."""
    value = ctx.value(node)
    out_c, kh, kw, in_c = node.const(1, "filter").shape
    conv = option_window(node, value.shape, (kh, kw))
    extra = {"in_c": in_c, "out_c": out_c}
    if value.dtype == "int8":
        return int8_conv_kernel(node, ctx, conv, out_c, TEMPLATE_INT8, "Conv2DInt8", extra)
    return float_conv_kernel(node, ctx, conv, out_c, TEMPLATE, "Conv2D", extra, pack_signs=True)


OP = OpKind(
    ("CONV_2D",),
    check,
    lower,
    TEMPLATE,
    "float32 (+-c weights per channel: sign bits) or int8 (per-channel); any kernel, strides, dilation, SAME/VALID, "
    "fused ReLU family",
)
