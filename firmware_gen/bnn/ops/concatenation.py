"""CONCATENATION of float values along any axis (DenseNet-style blocks): copies, bit-exact.

Raw uint8 inputs are converted to the floats they stand for; a fused activation clamps. int8
inputs must share the output's quantization (then it is a copy, as in TFLite).
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, activation, clamp_lines, float_input, shape_of
from firmware_gen.bnn.ops.quantized import activation_range, int8_input, int8_quant
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/concatenation.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float activations of one rank, equal except along the axis; no constant inputs."""
    if any(t is None or t.is_constant for t in node.inputs):
        raise node.refuse("constant inputs are not supported")
    if any(ctx.values.get(t.index) is not None and ctx.values[t.index].dtype == "int8" for t in node.inputs):
        out_q = int8_quant(node, node.output.index)
        if any(int8_input(node, ctx, slot).quant != out_q for slot in range(len(node.activations))):
            raise node.refuse("int8 inputs with a quantization other than the output's (requantizing concatenation)")
        activation(node)
        return
    for slot in range(len(node.activations)):
        float_input(node, ctx, slot)
    rank = len(node.output.shape)
    axis = int(node.options.get("axis", -1))
    if not -rank <= axis < rank or any(len(t.shape) != rank for t in node.inputs):
        raise node.refuse(f"axis {axis} of rank-{rank} tensors")
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}")
    activation(node)


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Row by row (the dimensions before the axis), each input's slice in turn."""
    rank = len(node.output.shape)
    axis = int(node.options.get("axis", -1)) % rank
    outer = int(np.prod(node.output.shape[:axis]))
    slices = [int(np.prod(t.shape[axis:])) for t in node.inputs]
    inputs = tuple(ctx.values[t.index].tensor for t in node.inputs)
    if ctx.values[inputs[0]].dtype == "int8":
        out_q = int8_quant(node, node.output.index)
        out = ctx.define(Value(node.output.index, "int8", shape_of(node, node.output.shape), quant=out_q))
        lo, hi = activation_range(activation(node), out_q)
        context = {"outer": outer, "slices": slices, "row": sum(slices), "clamp": [], "int8_range": (lo, hi), "uses_int8": True}
        return Kernel(node.index, [node.name], inputs, out.tensor, TEMPLATE, context, kind="ConcatenationInt8")
    out = ctx.define(Value(node.output.index, "float32", shape_of(node, node.output.shape)))
    context = {
        "outer": outer,
        "slices": slices,
        "row": sum(slices),
        "clamp": clamp_lines("v", activation(node)),
        "int8_range": None,
    }
    return Kernel(node.index, [node.name], inputs, out.tensor, TEMPLATE, context, kind="Concatenation")


OP = OpKind(("CONCATENATION",), check, lower, TEMPLATE, "float32 or int8 (one quantization), any axis, any number of inputs")
