"""RESHAPE: no code; the output aliases the input's buffer (NHWC order never changes).

Bit-packed values keep whole words per pixel, so their reshape only aliases when the channel
count (the packed axis) is unchanged; other bit reshapes are refused.
"""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.ops.base import LowerContext, OpKind, shape_of
from firmware_gen.bnn.values import Value

__all__ = ["OP"]


def check(node: Node, ctx: LowerContext) -> None:
    """Refuse a bit-packed reshape that moves bits between pixels."""
    value = ctx.value(node)
    shape = shape_of(node, node.output.shape)
    if value.dtype == "bits" and (shape[2] != value.words or shape[0] * shape[1] != value.shape[0] * value.shape[1]):
        raise node.refuse("a reshape of bit-packed values that changes the packed channel axis")


def lower(node: Node, ctx: LowerContext) -> None:
    """Alias the output tensor to the input's buffer."""
    value = ctx.value(node)
    shape = shape_of(node, node.output.shape)
    if value.dtype == "bits":
        shape = (shape[0], shape[1], value.shape[2])
    ctx.define(
        Value(
            node.output.index,
            value.dtype,
            shape,
            storage=value.storage,
            complement=value.complement,
            background=value.background,
            quant=value.quant,
        )
    )


OP = OpKind(
    ("RESHAPE",), check, lower, "", "any reshape (an alias: no code, no copy); bit-packed only when the packed axis stays"
)
