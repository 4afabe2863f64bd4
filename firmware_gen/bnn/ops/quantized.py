"""TFLite's integer arithmetic on the Python side: fixed-point multipliers and activation ranges.

The int8 kernels compute exactly what TFLite's reference kernels compute (LCE's interpreter runs
TFLite's optimized int8 kernels, which are bit-exact with them): ``acc`` in int32, then
``MultiplyByQuantizedMultiplier(acc, multiplier, shift)`` (gemmlowp's double rounding:
``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``; ``bnn_requantize`` in
``bnn_kernels.h``), then the output zero point and the activation clamp. The multipliers are
derived here from the float scales the way TFLite's ``Prepare`` functions do (same types: some
products are float, some double).
"""

from __future__ import annotations

import math

import numpy as np

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.kernel import CArray
from firmware_gen.bnn.values import Quant

__all__ = [
    "round_away",
    "quantize_multiplier",
    "activation_range",
    "int8_quant",
    "int8_input",
    "filter_multipliers",
    "filter_zero_point",
    "int32_bias",
    "check_int8_weights",
    "int8_weight_arrays",
    "INT8_MIN",
    "INT8_MAX",
]

INT8_MIN, INT8_MAX = -128, 127


def round_away(value: float) -> int:
    """``std::round`` / ``TfLiteRound``: nearest integer, halves away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real = multiplier * 2^(shift - 31)``, multiplier in ``[2^30, 2^31)``.

    Returns:
        ``(multiplier, shift)`` (``(0, 0)`` for 0 or for values below 2^-31, flushed to zero).
    """
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    fixed = round_away(fraction * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(fixed), int(shift)


def _quantize(scale: float, zero_point: int, value: float) -> int:
    """TFLite's ``Quantize`` helper of ``kernel_util.cc``: ``zp + round(value / scale)`` in float."""
    return zero_point + round_away(float(np.float32(value) / np.float32(scale)))


def activation_range(activation: str, quant: Quant) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized`` for int8 outputs."""
    lo, hi = INT8_MIN, INT8_MAX
    if activation in ("RELU", "RELU6", "RELU_N1_TO_1"):
        lo = max(lo, _quantize(quant.scale, quant.zero_point, -1.0 if activation == "RELU_N1_TO_1" else 0.0))
    if activation in ("RELU6", "RELU_N1_TO_1"):
        hi = min(hi, _quantize(quant.scale, quant.zero_point, 6.0 if activation == "RELU6" else 1.0))
    return lo, hi


def int8_quant(node: Node, tensor_index: int) -> Quant:
    """The per-tensor quantization of an int8 tensor of ``node`` (scale as the float TFLite holds)."""
    tensor = (
        node.output
        if node.output.index == tensor_index
        else next(t for t in node.inputs if t is not None and t.index == tensor_index)
    )
    q = tensor.quantization
    if tensor.dtype != "INT8" or q is None or len(q.scale) != 1:
        raise node.refuse(f"tensor {tensor_index} is {tensor.dtype} without one per-tensor int8 scale")
    scale = float(np.float32(q.scale[0]))
    if not math.isfinite(scale) or scale <= 0.0:
        raise node.refuse(f"tensor {tensor_index} has int8 scale {scale}; a scale must be positive and finite")
    return Quant(scale, int(q.zero_point[0]) if q.zero_point else 0)


def int8_input(node: Node, ctx, slot: int = 0):
    """The ``slot``-th activation input as an int8 value (refusing other types)."""
    value = ctx.value(node, slot)
    if value.dtype != "int8" or value.quant is None:
        raise node.refuse(f"input {slot} is {value.dtype}; the int8 kernel takes int8 values")
    return value


def filter_multipliers(node: Node, input_q: Quant, output_q: Quant, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel ``(multiplier, shift)`` of an int8 conv / dense layer
    (``PopulateConvolutionQuantizationParams``: ``input_scale * filter_scale / output_scale`` in double).

    Raises:
        InputError: the filter is not int8 with one scale per tensor or per output channel and
            zero points of 0 (per channel).
    """
    q = node.inputs[1].quantization
    if node.inputs[1].dtype != "INT8" or q is None or len(q.scale) not in (1, channels):
        raise node.refuse(f"filter of type {node.inputs[1].dtype} needs int8 with 1 or {channels} scales")
    scales = [float(np.float32(s)) for s in q.scale]
    if not all(math.isfinite(s) and s >= 0.0 for s in scales):
        raise node.refuse("filter scales must be finite and non-negative")
    pairs = [quantize_multiplier(input_q.scale * scales[i if len(scales) > 1 else 0] / output_q.scale) for i in range(channels)]
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)


def filter_zero_point(node: Node) -> int:
    """The filter's zero point (0 for TFLite's symmetric per-channel weights)."""
    q = node.inputs[1].quantization
    return int(q.zero_point[0]) if q is not None and q.zero_point else 0


def int32_bias(node: Node, channels: int) -> np.ndarray:
    """The int32 bias of an int8 conv / dense layer (zeros when absent)."""
    if not node.has_input(2):
        return np.zeros(channels, dtype=np.int64)
    if node.inputs[2].dtype != "INT32":
        raise node.refuse(f"bias of type {node.inputs[2].dtype}, expected INT32 for an int8 layer")
    return node.const(2, "bias").astype(np.int64).reshape(-1)


def check_int8_weights(node: Node, input_q: Quant, channels: int, *, symmetric: bool) -> None:
    """The int8 weights of a conv or dense layer: per-channel multipliers TFLite can form, an int32
    bias per channel, and (``symmetric``: CONV_2D and DEPTHWISE_CONV_2D) a zero filter zero point."""
    filter_multipliers(node, input_q, int8_quant(node, node.output.index), channels)
    if symmetric and filter_zero_point(node) != 0:
        raise node.refuse("int8 filter with a nonzero zero point")
    int32_bias(node, channels)


def int8_weight_arrays(node: Node, prefix: str, input_q: Quant, output_q: Quant, channels: int) -> list[CArray]:
    """The constants of an int8 CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED, weights first.

    ``{prefix}weights`` (int8, as stored), ``{prefix}bias`` (:func:`int32_bias`), and the
    per-channel ``{prefix}multiplier`` / ``{prefix}shift`` of :func:`filter_multipliers`.
    """
    multipliers, shifts = filter_multipliers(node, input_q, output_q, channels)
    return [
        CArray("int8_t", f"{prefix}weights", node.const(1, "weights").astype(np.int64)),
        CArray("int32_t", f"{prefix}bias", int32_bias(node, channels)),
        CArray("int32_t", f"{prefix}multiplier", multipliers),
        CArray("int8_t", f"{prefix}shift", shifts),
    ]
