"""CONV_2D in float (full-precision layers: the zoo's stem, 1x1 shortcut convs, ...) or int8.

TFLite's reference kernel: per output, ``acc = sum over (ky, kx, c) of input * filter`` in that
order, then ``acc + bias`` and the fused ReLU family; padding taps are skipped. Any kernel,
strides, dilation, SAME or VALID; a raw uint8 input is read as the float it converts to. The
sum's order may differ from TFLite's optimized kernels: results agree to float rounding.
A CONV_2D with ``+-c`` weights on the raw pixels is compiled by the fusion pass instead
(exact integer pixel conv). int8 (a quantized flatbuffer): TFLite's ConvPerChannel, bit-exact.
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


def _lower_int8(node: Node, ctx: LowerContext) -> Kernel:
    """TFLite's ConvPerChannel: acc = bias + sum w * (x - zp_in), requantized per channel."""
    value = ctx.value(node)
    weights = node.const(1, "filter").astype(np.int64)
    out_c, kh, kw, in_c = weights.shape
    stride = positive(node, "strideH", 1), positive(node, "strideW", 1)
    dilation = positive(node, "dilationHFactor", 1), positive(node, "dilationWFactor", 1)
    conv = make_window(node, value.shape, (kh, kw), stride, node.options.get("padding") == "SAME", dilation)
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
        "in_c": in_c,
        "out_c": out_c,
        "input_offset": -value.quant.zero_point,
        "output_offset": out_q.zero_point,
        "act_min": lo,
        "act_max": hi,
        "uses_int8": True,
    }
    kernel = Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE_INT8, context, arrays, kind="Conv2DInt8")
    kernel.weight_bytes = arrays[0].nbytes
    return kernel


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Direct convolution, one accumulator per output."""
    value = ctx.value(node)
    if value.dtype == "int8":
        return _lower_int8(node, ctx)
    weights = node.const(1, "filter").astype(np.float32)
    out_c, kh, kw, in_c = weights.shape
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
        "in_c": in_c,
        "out_c": out_c,
        "clamp": clamp_lines("acc", activation(node)),
    }
    kernel = Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, arrays, kind="Conv2D")
    kernel.weight_bytes = arrays[0].nbytes
    return kernel


OP = OpKind(
    ("CONV_2D",),
    check,
    lower,
    TEMPLATE,
    "float32 or int8 (per-channel); any kernel, strides, dilation, SAME/VALID, fused ReLU family",
)
