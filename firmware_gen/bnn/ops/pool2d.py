"""MAX_POOL_2D and AVERAGE_POOL_2D in float.

TFLite's reference kernels: over the window's taps inside the input (padding taps are skipped),
max starts from the lowest float; average sums in (ky, kx) order and divides by the number of
taps inside; then the fused ReLU family. Any window, strides, SAME or VALID. A max-pool
between a binary layer and its sign folds into that layer's thresholds (fusion pass). int8 (same
quantization in and out, as TFLite requires): max, or the sum divided with rounding half away
from zero, then the activation range.
"""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import (
    LowerContext,
    OpKind,
    activation,
    clamp_lines,
    float_input,
    make_window,
    positive,
    window_context,
)
from firmware_gen.bnn.ops.quantized import activation_range, int8_input, int8_quant
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/pool2d.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 (or int8, same scale in and out) input and output, SAME or VALID, positive window and strides."""
    if ctx.value(node).dtype == "int8":
        if int8_input(node, ctx).quant != int8_quant(node, node.output.index):
            raise node.refuse("int8 pooling with different input and output quantization")
    else:
        float_input(node, ctx)
        if node.output.dtype != "FLOAT32":
            raise node.refuse(f"output of type {node.output.dtype}")
    if node.options.get("padding") not in ("SAME", "VALID"):
        raise node.refuse(f"padding {node.options.get('padding')!r} (SAME or VALID)")
    for key in ("filterHeight", "filterWidth", "strideH", "strideW"):
        positive(node, key)
    activation(node)


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Per output and channel, one pass over the window."""
    value = ctx.value(node)
    window = make_window(
        node,
        value.shape,
        (positive(node, "filterHeight"), positive(node, "filterWidth")),
        (positive(node, "strideH"), positive(node, "strideW")),
        node.options.get("padding") == "SAME",
    )
    channels = value.shape[2]
    int8 = value.dtype == "int8"
    out = ctx.define(
        Value(node.output.index, value.dtype if int8 else "float32", (window.out_h, window.out_w, channels), quant=value.quant)
    )
    context = {
        **window_context(window),
        "channels": channels,
        "average": node.name == "AVERAGE_POOL_2D",
        "clamp": clamp_lines("v", activation(node)),
        "int8": int8,
        "uses_int8": int8,
        "act_range": activation_range(activation(node), value.quant) if int8 else None,
    }
    kind = "AveragePool2D" if node.name == "AVERAGE_POOL_2D" else "MaxPool2D"
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, kind=kind)


OP = OpKind(
    ("MAX_POOL_2D", "AVERAGE_POOL_2D"),
    check,
    lower,
    TEMPLATE,
    "float32, or int8 with the same quantization in and out; any window, strides, SAME/VALID",
)
