"""PRELU on float values: ``x >= 0 ? x : x * alpha`` with a constant, broadcast alpha (bit-exact, in place)."""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, broadcast_loops, float_input
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/prelu.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 input, constant float32 alpha that broadcasts to the input, float32 output."""
    float_input(node, ctx)
    alpha = node.const(1, "alpha")
    if node.inputs[1].dtype != "FLOAT32" or node.output.dtype != "FLOAT32":
        raise node.refuse(f"alpha {node.inputs[1].dtype} / output {node.output.dtype}, expected FLOAT32")
    broadcast_loops(node, tuple(node.output.shape), [tuple(node.data.shape), alpha.shape])


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Four nested loops, alpha broadcast."""
    value = ctx.value(node)
    alpha = node.const(1, "alpha").astype(np.float32)
    loops = broadcast_loops(node, tuple(node.output.shape), [tuple(node.data.shape), alpha.shape])
    out = ctx.define(Value(node.output.index, "float32", value.shape))
    arrays = [CArray("float", f"{ctx.prefix}alpha", alpha)]
    inplace = (0,) if value.dtype == "float32" else ()
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, loops, arrays, kind="PRelu", inplace=inplace)


OP = OpKind(("PRELU",), check, lower, TEMPLATE, "float32, constant alpha, broadcasting (per channel or shared)")
