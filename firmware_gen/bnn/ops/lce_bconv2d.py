"""LceBconv2d: binary convolution by XNOR/popcount, with LCE's output transforms, bit for bit.

Options: any kernel size, strides, dilation, VALID / SAME with pad value 1 (``+1``) or 0
(LCE's zero padding: ``+1`` bits and a float correction at the border), groups (LCE's rule:
channels per group a multiple of 32), channel counts that are not multiples of 32, the fused
ReLU family. Output types, as LCE computes them (``core/bconv2d/output_transform.h``):

* float: ``x = clamp(2 * popcount)``; ``y = (float)x * m + b`` with ``m = -post_multiplier`` and
  ``b = post_bias + K * post_multiplier`` (each rounded to float32 once); with zero padding LCE
  then adds ``(-post_multiplier) * correction`` at border outputs, where the correction is the
  sum of the weights over the padded taps (exact here for every border, also where LCE 0.16
  picks a wrong correction: maps smaller than the kernel);
* int8: the same with ``m, b`` divided by the output scale (plus the zero point), then
  round half away from zero and saturate;
* bit-packed: bit = ``popcount > threshold`` with LCE's thresholds.

A float bconv whose tail ends in LceQuantize is compiled by the fusion pass instead (integer
thresholds); one whose only consumer is a residual ADD takes the ADD in (:func:`lower_residual`);
a bit-packed bconv without groups uses the integer layer kernels of :mod:`firmware_gen.bnn.binary`
(early exit per channel, background shortcut).
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.binary import layer_kernel, xor_trees
from firmware_gen.bnn.contract import pack_signs, unpack_lce_filter, words_for
from firmware_gen.bnn.fusion import NotFusableError
from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.ir import BinaryConv, BitShape, Threshold
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.ops.base import (
    LowerContext,
    OpKind,
    activation,
    clamp_lines,
    make_window,
    positive,
    window_context,
)
from firmware_gen.bnn.ops.quantized import int8_quant
from firmware_gen.bnn.values import Value

__all__ = ["OP", "lower_residual"]

TEMPLATE = "bnn/ops/lce_bconv2d.c.j2"
_INT_CLAMPS = {"NONE": (-(2**31), 2**31 - 1), "RELU": (0, 2**31 - 1), "RELU_N1_TO_1": (-1, 1), "RELU6": (0, 6)}


def _groups(node: Node, channels: int, filter_words: int) -> int:
    words = words_for(channels)
    if filter_words == words:
        return 1
    if filter_words < 1 or words % filter_words:
        raise node.refuse(f"filter of {filter_words} words per tap does not divide the {words} input words")
    groups = words // filter_words
    if channels % groups or (channels // groups) % 32:
        raise node.refuse(f"{groups} groups of {channels} channels: LCE needs a multiple of 32 channels per group")
    return groups


def check(node: Node, ctx: LowerContext) -> None:
    """Options and types of the module doc; refuses anything else in one line."""
    value = ctx.value(node)
    if value.dtype != "bits":
        raise node.refuse("input is not bit-packed")
    filt = node.const(1, "filter")
    if node.inputs[1].dtype != "INT32" or filt.ndim != 4:
        raise node.refuse(f"filter of type {node.inputs[1].dtype} {filt.shape}, expected packed INT32 OHWI")
    if int(node.options.get("channels_in", value.shape[2])) != value.shape[2]:
        raise node.refuse(f"channels_in {node.options.get('channels_in')} does not match the {value.shape[2]} input channels")
    groups = _groups(node, value.shape[2], filt.shape[3])
    if filt.shape[0] % groups:
        raise node.refuse(f"{filt.shape[0]} output channels do not split into {groups} groups")
    padding, pad_value = node.options.get("padding", 1), node.options.get("pad_values", 0)
    if padding not in (0, 1) or pad_value not in (0, 1):
        raise node.refuse(f"padding {padding} / pad_values {pad_value} (expected SAME/VALID and 0 or 1)")
    for key in ("stride_height", "stride_width", "dilation_height_factor", "dilation_width_factor"):
        positive(node, key, 1)
    act = activation(node, "fused_activation_function")
    if node.output.dtype not in ("FLOAT32", "INT8", "INT32"):
        raise node.refuse(f"output type {node.output.dtype} (FLOAT32, INT8 or bit-packed INT32)")
    zero_pad = padding == 0 and pad_value == 0
    if zero_pad and (node.output.dtype != "FLOAT32" or act != "NONE"):
        raise node.refuse("zero padding with int8 or bit-packed output or a fused activation (LCE's kernels refuse it too)")


def _window(node: Node, value: Value, kh: int, kw: int):
    stride = positive(node, "stride_height", 1), positive(node, "stride_width", 1)
    dilation = positive(node, "dilation_height_factor", 1), positive(node, "dilation_width_factor", 1)
    return make_window(node, value.shape, (kh, kw), stride, node.options.get("padding", 1) == 0, dilation)


def _integer_kernel(node: Node, ctx: LowerContext, value: Value) -> Kernel:
    """Bit-packed output without groups: the integer layer kernel with LCE's thresholds."""
    filt = node.const(1, "filter")
    out_c, kh, kw, _ = filt.shape
    conv = _window(node, value, kh, kw)
    pad_mode = "valid" if not conv.padded else "one"
    bits = BitShape(*value.shape)
    signs = unpack_lce_filter(filt, bits.c) * np.where(value.complement, -1, 1).astype(np.int8)
    k = kh * kw * bits.c
    # bit = popcount > t, i.e. S = K - 2 popcount < K - 2 t.
    thresholds = np.clip(k - 2 * node.const(4, "output threshold").astype(np.int64), -k, k + 1)
    none = np.zeros(out_c, dtype=bool)
    epilogue = Threshold(thresholds, none, none.copy(), None, -k, k)
    out_bits = BitShape(conv.out_h, conv.out_w, out_c)
    layer = BinaryConv(node.index, [node.name], bits, conv, pad_mode, value.complement.copy(), signs, epilogue, out_bits)
    kernel, background = layer_kernel(layer, ctx.prefix, value.background)
    out = ctx.define(Value(node.output.index, "bits", (conv.out_h, conv.out_w, out_c), background=background))
    kernel.inputs, kernel.output = (value.tensor,), out.tensor
    return kernel


def _transform(node: Node, k: int, out_c: int, scale: float, zero_point: float) -> tuple[np.ndarray, np.ndarray]:
    """LCE's multiplier and bias (computed in double, stored as float32)."""
    mul = node.const(2, "post_activation_multiplier").astype(np.float32).astype(np.float64)
    bias = node.const(3, "post_activation_bias").astype(np.float32).astype(np.float64)
    if mul.shape != (out_c,) or bias.shape != (out_c,):
        raise node.refuse(f"post-activation multiplier {mul.shape} / bias {bias.shape}, expected ({out_c},)")
    return (-1 * mul / scale).astype(np.float32), ((bias + k * mul) / scale + zero_point).astype(np.float32)


def lower(node: Node, ctx: LowerContext) -> Kernel:
    """The integer kernel (bit-packed output, one group) or the general kernel of this module."""
    value = ctx.value(node)
    if node.output.dtype == "INT32" and _groups(node, value.shape[2], node.const(1, "filter").shape[3]) == 1:
        return _integer_kernel(node, ctx, value)
    return _general(node, ctx, None)


def lower_residual(node: Node, add: Node, ctx: LowerContext) -> Kernel:
    """The general kernel with the residual ADD fused in (fusion group ``residual``): ``out = y + x``.

    Raises:
        NotFusableError: the shortcut is not a float32 value of the output's shape, or the
            bconv does not write float.
        InputError: the bconv or the ADD is outside the supported set.
    """
    check(node, ctx)
    shortcut = ctx.values.get(next(t.index for t in add.activations if t.index != node.output.index))
    if shortcut is None or shortcut.dtype != "float32" or node.output.dtype != "FLOAT32":
        raise NotFusableError("the shortcut is not a float32 value")
    activation(add)
    return _general(node, ctx, (add, shortcut))


def _general(node: Node, ctx: LowerContext, residual: tuple[Node, Value] | None) -> Kernel:
    value = ctx.value(node)
    filt = node.const(1, "filter")
    out_c, kh, kw, wpg = filt.shape
    groups = _groups(node, value.shape[2], wpg)
    conv = _window(node, value, kh, kw)
    cpg = value.shape[2] // groups  # input channels per group
    k = kh * kw * cpg
    taps = kh * kw
    # Weights in the stored domain: flip the input channels the producer stored complemented.
    comp = pack_signs(value.complement)
    filt_words = filt.astype(np.int64).astype(np.uint32).reshape(out_c, taps, wpg)
    opg = out_c // groups
    group_of = np.arange(out_c) // opg
    flips = np.stack([comp[g * wpg : (g + 1) * wpg] for g in group_of])[:, None, :]
    weights = CArray("uint32_t", f"{ctx.prefix}weights", filt_words ^ flips)
    arrays = [weights]
    pad_mode = "valid" if not conv.padded else ("one" if node.options.get("pad_values", 0) == 1 else "zero")
    if pad_mode != "valid" and comp.any():
        arrays.append(CArray("uint32_t", f"{ctx.prefix}pad", comp))
    context = {
        **window_context(conv),
        "in_words": value.words,
        "wpg": wpg,
        "groups": groups,
        "opg": opg,
        "taps": taps,
        "channels": out_c,
        "pad_mode": pad_mode,
        "pad_array": len(arrays) > 1,
        "masked": False,
        "taps_words": taps * wpg,
        **xor_trees(taps * wpg, False),
    }
    act = activation(node, "fused_activation_function")
    if node.output.dtype == "INT32":
        thresholds = node.const(4, "output threshold").astype(np.int64)
        arrays.append(CArray("int32_t", f"{ctx.prefix}thresholds", thresholds))
        out = ctx.define(Value(node.output.index, "bits", (conv.out_h, conv.out_w, out_c)))
        context.update(output="bits", out_words=out.words)
    else:
        quant = int8_quant(node, node.output.index) if node.output.dtype == "INT8" else None
        scale, zero = (1.0, 0.0) if quant is None else (float(np.float32(quant.scale)), float(quant.zero_point))
        mul, bias = _transform(node, k, out_c, scale, zero)
        arrays += [CArray("float", f"{ctx.prefix}mul", mul), CArray("float", f"{ctx.prefix}bias", bias)]
        lo, hi = _INT_CLAMPS[act]
        lo, hi = max(lo, -k), min(hi, k)
        context.update(output="float" if quant is None else "int8", clamp_min=-hi + k, clamp_max=-lo + k, clamped=act != "NONE")
        if pad_mode == "zero":
            ones = np.vectorize(lambda v: bin(int(v)).count("1"))(filt_words).sum(axis=2)
            wsum = cpg - 2 * ones  # sum of the +-1 weights of each tap (LCE's correction terms)
            negmul = (-1.0 * node.const(2, "post_activation_multiplier").astype(np.float32)).astype(np.float32)
            arrays += [
                CArray("int32_t", f"{ctx.prefix}wsum", wsum.reshape(out_c, taps)),
                CArray("float", f"{ctx.prefix}negmul", negmul),
            ]
        dtype = "float32" if quant is None else "int8"
        target = node.output.index if residual is None else residual[0].output.index
        out = ctx.define(Value(target, dtype, (conv.out_h, conv.out_w, out_c), quant=quant))
    inputs, ops, inplace = (value.tensor,), [node.name], ()
    context["residual_clamp"] = None
    if residual is not None:
        add, shortcut = residual
        inputs, ops, inplace = (value.tensor, shortcut.tensor), [node.name, add.name], (1,)
        context["residual_clamp"] = clamp_lines("v", activation(add))
    kernel = Kernel(node.index, ops, inputs, out.tensor, TEMPLATE, context, arrays, kind="BinaryConvGeneral", inplace=inplace)
    kernel.weight_bytes = weights.nbytes
    return kernel


OP = OpKind(
    ("LceBconv2d",),
    check,
    lower,
    TEMPLATE,
    "any kernel, strides, dilation, VALID/SAME with pad 0 or 1, groups (32k channels each), fused ReLU family; "
    "float32, int8 or bit-packed output",
)
