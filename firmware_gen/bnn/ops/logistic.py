"""LOGISTIC on float values, as TFLite's reference kernel (in place).

``x > 16.619047`` gives ``1``, ``x < -9`` gives ``exp(x)``, else ``1 / (1 + exp(-x))``, with the
engine's own ``bnn_expf`` (no libm; within 2 ulp, identical on every core): agrees with TFLite
to float rounding.
"""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, float_input
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/logistic.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 input and output."""
    float_input(node, ctx)
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}; int8 LOGISTIC is not supported")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """One sigmoid per element."""
    value = ctx.value(node)
    out = ctx.define(Value(node.output.index, "float32", value.shape))
    inplace = (0,) if value.dtype == "float32" else ()
    context = {"count": value.size, "uses_exp": True}
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, kind="Logistic", inplace=inplace)


OP = OpKind(("LOGISTIC",), check, lower, TEMPLATE, "float32")
