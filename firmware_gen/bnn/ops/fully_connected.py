"""FULLY_CONNECTED in float (a full-precision head or hidden layer).

TFLite's reference kernel: ``acc = sum over i of input[i] * weights[o][i]`` in order, then
``acc + bias`` and the fused ReLU family; the input is read flat (NHWC order). A dense layer
with ``+-c`` weights on ``LceDequantize``-d bits is compiled by the fusion pass instead
(XNOR/popcount on packed weights); on float inputs (BinaryConnect) its weights are stored as
sign bits with one scale per output, same products and sums. int8: TFLite's integer
FullyConnected, bit-exact.
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, activation, clamp_lines, float_input, lut_array, shape_of
from firmware_gen.bnn.ops.quantized import (
    activation_range,
    check_int8_weights,
    filter_zero_point,
    int8_input,
    int8_quant,
    int8_weight_arrays,
)
from firmware_gen.bnn.ops.sign_packed import float_weight_arrays
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/fully_connected.c.j2"
TEMPLATE_INT8 = "bnn/ops/fully_connected_int8.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 (or int8) input, weights ``(O, N)`` with N the input size, bias and output; default format."""
    if ctx.value(node).dtype == "int8":
        value = int8_input(node, ctx)
        weights = node.const(1, "weights")
        if weights.ndim != 2 or weights.shape[1] != value.size or node.options.get("weightsFormat", 0) != 0:
            raise node.refuse(f"weights {weights.shape} (default format) do not read the {value.size} inputs")
        check_int8_weights(node, value.quant, weights.shape[0], symmetric=False)
        activation(node)
        return
    value = float_input(node, ctx)
    weights = node.const(1, "weights")
    if node.inputs[1].dtype != "FLOAT32" or weights.ndim != 2:
        raise node.refuse(f"weights of type {node.inputs[1].dtype} {weights.shape}; int8 FULLY_CONNECTED is not supported")
    if weights.shape[1] != value.size:
        raise node.refuse(f"weights read {weights.shape[1]} inputs, the input has {value.size} values")
    if node.options.get("weightsFormat", 0) != 0:
        raise node.refuse("only the default weights format is supported")
    if node.has_input(2) and node.const(2, "bias").size != weights.shape[0]:
        raise node.refuse("bias must have one value per output")
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}")
    activation(node)


def _lower_int8(node: Node, ctx: LowerContext, value: Value) -> Kernel:
    """TFLite's integer FullyConnected: acc = bias + sum (w - zp_w) * (x - zp_in), requantized."""
    outputs, inputs = node.const(1, "weights").shape
    out_q = int8_quant(node, node.output.index)
    arrays = int8_weight_arrays(node, ctx.prefix, value.quant, out_q, outputs)
    out = ctx.define(Value(node.output.index, "int8", shape_of(node, node.output.shape), quant=out_q))
    lo, hi = activation_range(activation(node), out_q)
    context = {
        "outputs": outputs,
        "inputs": inputs,
        "input_offset": -value.quant.zero_point,
        "filter_offset": -filter_zero_point(node),
        "output_offset": out_q.zero_point,
        "act_min": lo,
        "act_max": hi,
        "uses_int8": True,
    }
    kernel = Kernel(
        node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE_INT8, context, arrays, kind="FullyConnectedInt8"
    )
    kernel.weight_bytes = arrays[0].nbytes
    return kernel


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """One dot product per output; ``+-c`` weights are stored as sign bits (:mod:`.sign_packed`)."""
    value = ctx.value(node)
    if value.dtype == "int8":
        return _lower_int8(node, ctx, value)
    weights = node.const(1, "weights").astype(np.float32)
    outputs, inputs = weights.shape
    bias = node.const(2, "bias").astype(np.float32) if node.has_input(2) else np.zeros(outputs, np.float32)
    arrays, packed = float_weight_arrays(ctx, weights)
    arrays.append(CArray("float", f"{ctx.prefix}bias", bias))
    lut, lut_name = lut_array(ctx, value)
    arrays += lut
    out = ctx.define(Value(node.output.index, "float32", shape_of(node, node.output.shape)))
    context = {
        "lut": lut_name,
        "outputs": outputs,
        "inputs": inputs,
        "packed": packed,
        "clamp": clamp_lines("acc", activation(node)),
    }
    kernel = Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, arrays, kind="FullyConnected")
    kernel.weight_bytes = arrays[0].nbytes
    return kernel


OP = OpKind(
    ("FULLY_CONNECTED",),
    check,
    lower,
    TEMPLATE,
    "float32 (binary +-c weights on LceDequantize: packed; +-c per output on float inputs: sign bits) "
    "or int8 (per-tensor or per-channel)",
)
