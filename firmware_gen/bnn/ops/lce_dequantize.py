"""LceDequantize: bit-packed signs -> float ``+-1.0`` (or int8 ``zero_point +- round(1 / scale)``).

LCE's ``unpack_matrix``: bit ``0`` gives ``+1``, bit ``1`` gives ``-1``; for int8 outputs the two
levels are ``min(127, zp + round(1 / scale))`` and ``max(-128, zp - round(1 / scale))``. Channels
the producer stored complemented (:attr:`Value.complement`) are flipped back here. A dequantize
feeding a binary FULLY_CONNECTED is folded into that layer (:mod:`firmware_gen.bnn.fusion`).
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.contract import pack_signs
from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind
from firmware_gen.bnn.ops.quantized import int8_quant
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/lce_dequantize.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Bit-packed input; float32 or int8 output."""
    if ctx.value(node).dtype != "bits":
        raise node.refuse("input is not bit-packed")
    if node.output.dtype not in ("FLOAT32", "INT8"):
        raise node.refuse(f"output of type {node.output.dtype}; LceDequantize writes FLOAT32 or INT8")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """Unpack every channel to one of two levels."""
    value = ctx.value(node)
    h, w, c = value.shape
    if node.output.dtype == "INT8":
        quant = int8_quant(node, node.output.index)
        offset = int(np.floor(float(np.float32(1.0) / np.float32(quant.scale)) + 0.5))  # TfLiteRound, positive
        levels = (str(min(127, quant.zero_point + offset)), str(max(-128, quant.zero_point - offset)))
        out = ctx.define(Value(node.output.index, "int8", (h, w, c), quant=quant))
    else:
        levels = ("1.0f", "-1.0f")
        out = ctx.define(Value(node.output.index, "float32", (h, w, c)))
    arrays = []
    if np.any(value.complement):
        arrays.append(CArray("uint32_t", f"{ctx.prefix}flip", pack_signs(value.complement)))
    context = {"pixels": h * w, "channels": c, "words": value.words, "plus": levels[0], "minus": levels[1], "flip": bool(arrays)}
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, arrays, kind="Dequantize")


OP = OpKind(("LceDequantize",), check, lower, TEMPLATE, "float32 (+-1.0) or int8 output")
