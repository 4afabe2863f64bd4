"""SOFTMAX on float values over the last axis, as TFLite's reference kernel (in place).

Per row: ``m = max``, ``e = exp((x - m) * beta)``, ``out = e / sum(e)`` with the engine's own
``bnn_expf``: agrees with TFLite to float rounding. A SOFTMAX after the fused integer head is
folded away (the argmax of the exact logits is the class). int8: TFLite's optimized kernel (the
LCE interpreter's): ``t[d] = expf(-input_scale * beta * d)`` for ``d = max - x`` in a 256-entry
table, ``sum`` in float, ``q = round(t * (1 / (sum * output_scale))) + zero_point``, bit-exact.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import CArray, Kernel, c_float
from firmware_gen.bnn.ops.base import LowerContext, OpKind, float_input
from firmware_gen.bnn.ops.quantized import int8_input, int8_quant
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/softmax.c.j2"
TEMPLATE_INT8 = "bnn/ops/softmax_int8.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float32 (or int8) input and output, a finite beta."""
    if not np.isfinite(float(node.options.get("beta", 1.0))):
        raise node.refuse("beta must be finite")
    if ctx.value(node).dtype == "int8":
        int8_input(node, ctx)
        int8_quant(node, node.output.index)
        return
    float_input(node, ctx)
    if node.output.dtype != "FLOAT32":
        raise node.refuse(f"output of type {node.output.dtype}")


def _expf(values: np.ndarray) -> np.ndarray:
    """``expf`` of float32 values as the C library computes it (TFLite fills its table with it),
    or, without a C library, the correctly rounded value."""
    name = ctypes.util.find_library("m")
    if name is not None:
        expf = ctypes.CDLL(name).expf
        expf.restype, expf.argtypes = ctypes.c_float, [ctypes.c_float]
        return np.array([expf(float(v)) for v in values], dtype=np.float32)
    return np.exp(values.astype(np.float64)).astype(np.float32)


def _lower_int8(node: Node, ctx: LowerContext, value: Value, depth: int) -> Kernel:
    """TFLite's optimized int8 softmax: a 256-entry float table of exp, a float sum, round half away."""
    out_q = int8_quant(node, node.output.index)
    scale = np.float32(-np.float32(value.quant.scale) * np.float32(node.options.get("beta", 1.0)))
    table = np.zeros(256, dtype=np.float32)
    table[255 - np.arange(256)] = _expf((scale * np.arange(256, dtype=np.float32)).astype(np.float32))
    out = ctx.define(Value(node.output.index, "int8", value.shape, quant=out_q))
    arrays = [CArray("float", f"{ctx.prefix}exp", table)]
    context = {
        "rows": value.size // depth,
        "depth": depth,
        "out_scale": c_float(out_q.scale),
        "zero_point": out_q.zero_point,
        "uses_round": True,
        "uses_int8": True,
    }
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE_INT8, context, arrays, kind="SoftmaxInt8")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Max, exponentials and their sum, division."""
    value = ctx.value(node)
    depth = int(node.data.shape[-1]) if node.data.shape else 1
    if value.dtype == "int8":
        return _lower_int8(node, ctx, value, depth)
    out = ctx.define(Value(node.output.index, "float32", value.shape))
    inplace = (0,) if value.dtype == "float32" else ()
    context = {"rows": value.size // depth, "depth": depth, "beta": c_float(node.options.get("beta", 1.0)), "uses_exp": True}
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, kind="Softmax", inplace=inplace)


OP = OpKind(
    ("SOFTMAX",), check, lower, TEMPLATE, "float32 or int8 over the last axis, any beta (folded away after the integer head)"
)
