"""LceBMaxPool2d: max-pool on bits, an AND over the window (OR on channels stored complemented).

The max of ``+-1`` values is ``+1`` (bit 0) as soon as one is ``+1``: bit-wise AND. Any window,
strides, VALID or SAME (padding taps are skipped, as LCE does).
"""

from __future__ import annotations

from firmware_gen.bnn.binary import layer_kernel
from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.ir import BitMaxPool, BitShape
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, activation, make_window, positive
from firmware_gen.bnn.values import Value

__all__ = ["OP"]


def check(node: Node, ctx: LowerContext) -> None:
    """Bit-packed input, no fused activation, SAME or VALID."""
    if ctx.value(node).dtype != "bits":
        raise node.refuse("input is not bit-packed")
    if activation(node, "fused_activation_function") != "NONE":
        raise node.refuse("fused activations on LceBMaxPool2d are not supported")
    if node.options.get("padding", 1) not in (0, 1):
        raise node.refuse(f"padding {node.options.get('padding')!r} (expected SAME or VALID)")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """The bit max-pool kernel of :mod:`firmware_gen.bnn.binary`."""
    value = ctx.value(node)
    kernel_hw = positive(node, "filter_height"), positive(node, "filter_width")
    stride = positive(node, "stride_height"), positive(node, "stride_width")
    pool = make_window(node, value.shape, kernel_hw, stride, node.options.get("padding", 1) == 0)
    out_shape = BitShape(pool.out_h, pool.out_w, value.shape[2])
    layer = BitMaxPool(node.index, [node.name], BitShape(*value.shape), pool, value.complement.copy(), out_shape)
    kernel, background = layer_kernel(layer, ctx.prefix, value.background)
    out = ctx.define(
        Value(
            node.output.index,
            "bits",
            (pool.out_h, pool.out_w, value.shape[2]),
            complement=value.complement.copy(),
            background=background,
        )
    )
    kernel.inputs, kernel.output = (value.tensor,), out.tensor
    return kernel


OP = OpKind(("LceBMaxPool2d",), check, lower, "bnn/layer_bit_maxpool.c.j2", "any window and stride, SAME or VALID")
