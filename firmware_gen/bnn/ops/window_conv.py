"""The lowering CONV_2D and DEPTHWISE_CONV_2D share: the window from the options, the kernels' arrays.

Both ops read the same options (padding, strides, dilations), keep float weights with a float
bias (or int8 weights with an int32 bias and per-channel requantization), and differ only in the
filter's layout, their templates and a few template variables, which the caller passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.ir import Window
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.ops.base import LowerContext, activation, clamp_lines, lut_array, make_window, positive, window_context
from firmware_gen.bnn.ops.quantized import activation_range, int8_quant, int8_weight_arrays
from firmware_gen.bnn.ops.sign_packed import float_weight_arrays
from firmware_gen.bnn.values import Value

__all__ = ["option_window", "float_conv_kernel", "int8_conv_kernel"]


def option_window(node: Node, in_shape: tuple[int, int, int], kernel: tuple[int, int]) -> Window:
    """The window of a TFLite conv: its strides, dilations and SAME/VALID padding on ``in_shape``."""
    stride = positive(node, "strideH", 1), positive(node, "strideW", 1)
    dilation = positive(node, "dilationHFactor", 1), positive(node, "dilationWFactor", 1)
    return make_window(node, in_shape, kernel, stride, node.options.get("padding") == "SAME", dilation)


def float_conv_kernel(
    node: Node,
    ctx: LowerContext,
    conv: Window,
    out_c: int,
    template: str,
    kind: str,
    extra: dict[str, Any],
    *,
    pack_signs: bool = False,
) -> Kernel:
    """A float conv's kernel: float weights (or sign bits), float bias (zeros without one), fused clamp.

    Args:
        node: the op; its filter is input 1, its optional bias input 2.
        ctx: the lowering context (defines the output value).
        conv: the window (:func:`option_window`).
        out_c: output channels.
        template: the kernel's template.
        kind: the kernel's kind.
        extra: template variables of this op (channel counts, depth multiplier).
        pack_signs: store ``+-c`` weights as sign bits (:mod:`.sign_packed`); the template reads
            them when its ``packed`` variable is true.
    """
    value = ctx.value(node)
    weights = node.const(1, "filter").astype(np.float32)
    bias = node.const(2, "bias").astype(np.float32) if node.has_input(2) else np.zeros(out_c, np.float32)
    arrays, packed = float_weight_arrays(ctx, weights, pack=pack_signs)
    arrays.append(CArray("float", f"{ctx.prefix}bias", bias))
    lut, lut_name = lut_array(ctx, value)
    arrays += lut
    out = ctx.define(Value(node.output.index, "float32", (conv.out_h, conv.out_w, out_c)))
    context = {
        "lut": lut_name,
        **window_context(conv),
        **extra,
        "packed": packed,
        "clamp": clamp_lines("acc", activation(node)),
    }
    kernel = Kernel(node.index, [node.name], (value.tensor,), out.tensor, template, context, arrays, kind=kind)
    kernel.weight_bytes = arrays[0].nbytes
    return kernel


def int8_conv_kernel(
    node: Node, ctx: LowerContext, conv: Window, out_c: int, template: str, kind: str, extra: dict[str, Any]
) -> Kernel:
    """An int8 conv's kernel: ``acc = bias + sum w * (x - zp_in)``, requantized per output channel.

    The arguments are :func:`float_conv_kernel`'s; the input is an int8 value with its quantization.
    """
    value = ctx.value(node)
    out_q = int8_quant(node, node.output.index)
    arrays = int8_weight_arrays(node, ctx.prefix, value.quant, out_q, out_c)
    out = ctx.define(Value(node.output.index, "int8", (conv.out_h, conv.out_w, out_c), quant=out_q))
    lo, hi = activation_range(activation(node), out_q)
    context = {
        **window_context(conv),
        **extra,
        "input_offset": -value.quant.zero_point,
        "output_offset": out_q.zero_point,
        "act_min": lo,
        "act_max": hi,
        "uses_int8": True,
    }
    kernel = Kernel(node.index, [node.name], (value.tensor,), out.tensor, template, context, arrays, kind=kind)
    kernel.weight_bytes = arrays[0].nbytes
    return kernel
