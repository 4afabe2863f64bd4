"""LceQuantize: float (or int8) values -> bit-packed signs, as LCE's ``bitpack_tensor`` does.

Bit ``1`` means ``x < 0`` for float inputs (so ``0.0`` and ``-0.0`` are ``+1``) and
``q < zero_point`` for int8 inputs; 32 channels per uint32 word, LSB first, each pixel owning
whole words (:mod:`firmware_gen.bnn.contract`). Most LceQuantize ops are folded into the
integer thresholds of the layer before them (:mod:`firmware_gen.bnn.fusion`); this kernel is
the general form, after an op that keeps float values (a residual ADD, a float conv, ...). On
the raw uint8 input with its rescaling folded away, the sign is a threshold on the raw value.
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.ops.base import LowerContext, OpKind, lut_array
from firmware_gen.bnn.values import Value

__all__ = ["OP"]

TEMPLATE = "bnn/ops/lce_quantize.c.j2"


def check(node: Node, ctx: LowerContext) -> None:
    """Float, raw uint8 or int8 input; bit-packed INT32 output."""
    value = ctx.value(node)
    if value.dtype not in ("float32", "uint8", "int8"):
        raise node.refuse(f"input of type {value.dtype}; LceQuantize takes float32 or int8 values")
    if node.output.dtype != "INT32":
        raise node.refuse(f"output of type {node.output.dtype}, expected bit-packed INT32")


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """One pass over the input writing 32 signs per word."""
    value = ctx.value(node)
    h, w, c = value.shape
    out = ctx.define(Value(node.output.index, "bits", (h, w, c)))
    thresholds = {"int8": str(value.quant.zero_point) if value.quant else "0", "uint8": None, "float32": "0.0f"}
    threshold, compare, arrays, lut = thresholds[value.dtype], "<", [], None
    if value.lut is not None:  # the rescaled input: negative on a prefix or suffix of 0..255, or read the table
        negative = value.lut < 0
        cut = int(np.argmax(negative != negative[0])) if np.any(negative != negative[0]) else 256
        if not np.any(negative):
            threshold = None
        elif np.all(negative):
            threshold = "all"
        elif np.all(negative[:cut]) and not np.any(negative[cut:]):
            threshold = str(cut)
        elif not np.any(negative[:cut]) and np.all(negative[cut:]):
            threshold, compare = str(cut), ">="
        else:
            arrays, lut = lut_array(ctx, value)
            threshold = "0.0f"
    context = {"pixels": h * w, "channels": c, "words": out.words, "threshold": threshold, "compare": compare, "lut": lut}
    return Kernel(node.index, [node.name], (value.tensor,), out.tensor, TEMPLATE, context, arrays, kind="Quantize")


OP = OpKind(("LceQuantize",), check, lower, TEMPLATE, "float32 or int8 input (bit = x < 0, or q < zero point)")
