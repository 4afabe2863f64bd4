"""SOFTMAX on float values over the last axis, as TFLite's reference kernel (in place).

Per row: ``m = max``, ``e = exp((x - m) * beta)``, ``out = e / sum(e)`` with the engine's own
``bnn_expf``: agrees with TFLite to float rounding. A SOFTMAX after the fused integer head is
folded away (the argmax of the exact logits is the class).
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel, c_float
from firmware_gen.bnn.ops.base import LowerContext, OpKind, float_input
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/softmax.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 input and output, a finite beta."""
    float_input(node, ctx)
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}; int8 SOFTMAX is not supported")
    if not np.isfinite(float(node.options.get("beta", 1.0))):
        raise node.refuse("beta must be finite")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Max, exponentials and their sum, division."""
    value = ctx.value(node)
    depth = int(node.data.shape[-1]) if node.data.shape else 1
    out = ctx.define(Value(node.output.index, "float32", value.shape))
    inplace = (0,) if value.dtype == "float32" else ()
    context = {"rows": value.size // depth, "depth": depth, "beta": c_float(node.options.get("beta", 1.0)), "uses_exp": True}
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, kind="Softmax", inplace=inplace)


OP = OpKind(("SOFTMAX",), check, lower, TEMPLATE, "float32 over the last axis, any beta (folded away after the integer head)")
