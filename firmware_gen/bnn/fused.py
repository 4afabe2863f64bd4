"""Lower a fusion group (:mod:`firmware_gen.bnn.fusion`) to one integer layer (:mod:`firmware_gen.bnn.ir`).

The producer's float output is an exact function of its integer sum ``S``:

* pixel conv: ``S = sum(k * q)`` with ``q = unit * pixel - zero`` on the raw uint8 input and the
  weights ``c * k`` (``k = +-1``, or integers up to 127 for an 8-bit stem), the rescaling
  ``alpha * pixel + beta`` folded in exactly (rationals);
* ``LceBconv2d``: LCE's own float output transform of ``S`` (replayed bit for bit, see
  :mod:`firmware_gen.bnn.fold`);
* FULLY_CONNECTED on bits: ``u * S + bias`` with ``S = sum(k * x)``, ``k = +-1`` (binary) or
  up to ``+-127`` (8-bit weights).

The tail's float ops become :class:`~firmware_gen.bnn.fold.Step` s; ``LceQuantize`` turns the
whole chain into per-channel thresholds, and the model output into exact fixed-point scores.
Anything the integer form cannot express raises :class:`~firmware_gen.bnn.fusion.NotFusableError`
(the ops are then compiled one by one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from firmware_gen.bnn.contract import unpack_lce_filter
from firmware_gen.bnn.fold import Evaluator, Step, clamp_for, score_epilogue, threshold_epilogue
from firmware_gen.bnn.fusion import MAX_INT_WEIGHT, Group, NotFusableError, integer_rows
from firmware_gen.bnn.graph import Node, hwc
from firmware_gen.bnn.ir import BinaryConv, BinaryDense, BitShape, Layer, PixelConv, Window
from firmware_gen.bnn.values import Value

__all__ = ["lower_group", "MAX_PIXEL_TAPS"]

MAX_PIXEL_TAPS = 256
"""Most taps (``kh * kw * C``) of a pixel conv (7x7 on 5 channels): its kernel keeps the taps of a
position on the stack (those of every pool position on cores without the DSP extension: 2 KiB for a
2x2 pool); wider first convs take the float path."""
_LCE_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
_INT_CLAMPS = {"NONE": (-(2**31), 2**31 - 1), "RELU": (0, 2**31 - 1), "RELU_N1_TO_1": (-1, 1), "RELU6": (0, 6)}
_CLAMP_OPS = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1"}


@dataclass
class _Pending:
    """An integer layer whose float tail is being collected."""

    layer: Layer
    evaluate: Evaluator
    affine: tuple[list[Fraction], list[Fraction]]
    s_min: int
    s_max: int
    shape: tuple[int, int, int]
    steps: list[Step] = field(default_factory=list)
    flat: bool = False


def _exact(value: float) -> Fraction:
    return Fraction(float(value))


def _positive(node: Node, key: str) -> int:
    value = node.options.get(key, 1)
    if not isinstance(value, int) or value < 1:
        raise NotFusableError(f"option {key} is {value!r}")
    return value


def _activation(node: Node, key: str = "fusedActivationFunction") -> str:
    value = node.options.get(key, "NONE")
    if isinstance(value, int):
        value = _LCE_ACTIVATIONS.get(value, f"code {value}")
    if value not in _INT_CLAMPS:
        raise NotFusableError(f"fused activation {value}")
    return value


def _clamp_step(activation: str) -> list[Step]:
    limits = clamp_for(activation)
    return [] if limits is None else [Step("clamp", lo=limits[0], hi=limits[1])]


def _rows(node: Node, weights: np.ndarray) -> tuple[np.ndarray, list[Fraction]]:
    """:func:`integer_rows` of ``weights``, refusing other types and forms."""
    if node.inputs[1].dtype != "FLOAT32":
        raise NotFusableError(f"weights of type {node.inputs[1].dtype}")
    found = integer_rows(weights)
    if found is None:
        raise NotFusableError(f"weights are not integer multiples (|k| <= {MAX_INT_WEIGHT}) of one unit per output channel")
    return found


def _pixel_affine(prefix: tuple[Node, ...]) -> tuple[Fraction, Fraction]:
    alpha, beta = Fraction(1), Fraction(0)
    for node in prefix:
        if _activation(node) != "NONE" or node.output.dtype != "FLOAT32":
            raise NotFusableError("the input rescaling has a fused activation")
        value = _exact(node.operand().reshape(-1)[0])
        if node.name == "MUL":
            alpha, beta = alpha * value, beta * value
        else:
            beta += value
    return alpha, beta


def _pixel_conv(group: Group, in_shape: tuple[int, int, int]) -> _Pending:
    node = group.producer
    weights = node.const(1, "filter").astype(np.float32)
    out_c, kh, kw, in_c = weights.shape
    if in_c != in_shape[2]:
        raise NotFusableError(f"filters of {in_c} channels on an input of {in_shape[2]} (a grouped convolution)")
    if kh * kw * in_c > MAX_PIXEL_TAPS:
        raise NotFusableError(f"{kh * kw * in_c} taps per output (the pixel kernel takes up to {MAX_PIXEL_TAPS})")
    if node.options.get("dilationHFactor", 1) != 1 or node.options.get("dilationWFactor", 1) != 1:
        raise NotFusableError("dilation")
    ints, units = _rows(node, weights)
    k_max = int(np.abs(ints).max())
    bias = node.const(2, "bias").astype(np.float32) if node.has_input(2) else np.zeros(out_c, np.float32)
    same = node.options.get("padding") == "SAME"
    try:
        conv = Window.make(in_shape[0], in_shape[1], kh, kw, _positive(node, "strideH"), _positive(node, "strideW"), same)
    except ValueError as err:
        raise NotFusableError(str(err)) from None
    alpha, beta = _pixel_affine(group.prefix)
    if alpha == 0:
        raise NotFusableError("the input rescaling multiplies by 0")
    # Taps read q = unit * pixel - zero (0 in the padding), so the rescaled input is
    # alpha / unit * q + residual with residual = beta + alpha * zero / unit. Padding is the
    # rescaled value 0, so with SAME padding `zero / unit` must be the pixel that rescales to 0:
    # a half-integer up to float32 rounding of the rescaling constants (127.5 for [-1, 1]).
    unit, zero = 1, 0
    notes = []
    if conv.padded and beta != 0:
        pad_pixel = -beta / alpha
        unit = 1 if abs(pad_pixel - round(pad_pixel)) < Fraction(1, 1000) else 2
        zero = round(pad_pixel * unit)
        if abs(pad_pixel * unit - zero) > Fraction(1, 1000):
            raise NotFusableError(f"SAME padding needs the rescaled 0 at a half-integer pixel, got {float(pad_pixel)}")
        if zero != pad_pixel * unit:
            notes.append(f"border taps: the rescaled 0 is pixel {float(pad_pixel)!r}, taken as {zero}/{unit}")
    residual = beta + alpha * zero / unit
    bound = kh * kw * in_c * k_max * max(abs(zero), abs(255 * unit - zero))
    # Interior outputs: y_o = c_o * alpha / unit * S + c_o * residual * sum(k_o) + b_o, exactly.
    mul = [c * alpha / unit for c in units]
    add = [c * residual * int(ints[o].sum(dtype=np.int64)) + _exact(bias[o]) for o, c in enumerate(units)]

    def evaluate(s: np.ndarray) -> np.ndarray:
        out = np.empty(s.shape, dtype=np.float32)
        for o in range(s.shape[0]):
            for i in range(s.shape[1]):
                out[o, i] = np.float32(float(mul[o] * int(s[o, i]) + add[o]))
        return out

    ops = [n.name for n in group.prefix] + [node.name]
    layer = PixelConv(node.index, ops, conv, ints, unit, zero, None, None, notes)  # type: ignore[arg-type]
    pending = _Pending(layer, evaluate, (mul, add), -bound, bound, (conv.out_h, conv.out_w, out_c))
    pending.steps += _clamp_step(_activation(node))
    return pending


def _bconv(node: Node, inp: Value) -> _Pending:
    opts = node.options
    filt = node.const(1, "filter")
    if node.inputs[1].dtype != "INT32" or filt.ndim != 4:
        raise NotFusableError(f"filter of type {node.inputs[1].dtype} {filt.shape}")
    out_c, kh, kw, _ = filt.shape
    bits = BitShape(*inp.shape)
    if int(opts.get("channels_in", bits.c)) != bits.c or filt.shape[3] != bits.words:
        raise NotFusableError("grouped binary convolution")
    padding, pad_value = int(opts.get("padding", 1)), int(opts.get("pad_values", 0))
    if padding not in (0, 1) or pad_value not in (0, 1):
        raise NotFusableError(f"padding {padding} / pad_values {pad_value}")
    dilation = _positive(node, "dilation_height_factor"), _positive(node, "dilation_width_factor")
    stride = _positive(node, "stride_height"), _positive(node, "stride_width")
    try:
        conv = Window.make(bits.h, bits.w, kh, kw, *stride, padding == 0, *dilation)
    except ValueError as err:
        raise NotFusableError(str(err)) from None
    pad_mode = "valid" if not conv.padded else ("one" if pad_value == 1 else "zero")
    signs = unpack_lce_filter(filt, bits.c) * np.where(inp.complement, -1, 1).astype(np.int8)
    layer = BinaryConv(node.index, [node.name], bits, conv, pad_mode, inp.complement.copy(), signs, None, None)  # type: ignore[arg-type]
    k = kh * kw * bits.c
    mul = node.const(2, "post_activation_multiplier").astype(np.float32)
    bias = node.const(3, "post_activation_bias").astype(np.float32)
    lo, hi = _INT_CLAMPS[_activation(node, "fused_activation_function")]
    lo, hi = max(lo, -k), min(hi, k)
    clamp_min, clamp_max = -hi + k, -lo + k  # LCE clamps 2 * popcount = K - S
    mul_t = (-mul.astype(np.float64)).astype(np.float32)
    bias_t = (bias.astype(np.float64) + k * mul.astype(np.float64)).astype(np.float32)

    def evaluate(s: np.ndarray) -> np.ndarray:
        two_pop = np.clip(k - s, clamp_min, clamp_max).astype(np.float32)
        return ((two_pop * mul_t[:, None]).astype(np.float32) + bias_t[:, None]).astype(np.float32)

    affine = ([_exact(m) for m in mul], [_exact(b) for b in bias])
    if pad_mode == "zero":
        layer.notes.append("zero padding: border sums are exact; thresholds replay LCE's interior float arithmetic")
    return _Pending(layer, evaluate, affine, -k, k, (conv.out_h, conv.out_w, out_c))


def _dense(group: Group, inp: Value) -> _Pending:
    node = group.producer
    bits = BitShape(*inp.shape)
    weights = node.const(1, "weights").astype(np.float32)
    out_n, n = weights.shape
    if n != bits.h * bits.w * bits.c:
        raise NotFusableError(f"{n} inputs do not match the {bits.h * bits.w * bits.c} binary activations")
    if node.options.get("weightsFormat", 0) != 0 or node.options.get("keepNumDims", False):
        raise NotFusableError("a weights format or keep_num_dims")
    ints, units = _rows(node, weights)
    comp = np.tile(inp.complement, bits.h * bits.w)
    ints = ints * np.where(comp, -1, 1).astype(np.int8)[None, :]
    bias = node.const(2, "bias").astype(np.float32) if node.has_input(2) else np.zeros(out_n, np.float32)
    scale = np.array([float(u) for u in units], dtype=np.float64)
    # |S| <= sum(|k|) of the row: n for +-1 weights.
    bound = int(np.abs(ints.astype(np.int64)).sum(axis=1).max())

    def evaluate(s: np.ndarray) -> np.ndarray:
        # The interpreter's float32 u * S (exact for +-c rows; for 8-bit rows up to the float32
        # rounding of its sum), then + bias.
        return ((s.astype(np.float64) * scale[:, None]).astype(np.float32) + bias[:, None]).astype(np.float32)

    ops = [n.name for n in group.prefix] + [node.name]
    layer = BinaryDense(node.index, ops, bits, ints, None, None)  # type: ignore[arg-type]
    affine = (list(units), [_exact(b) for b in bias])
    pending = _Pending(layer, evaluate, affine, -bound, bound, (1, 1, out_n))
    pending.steps += _clamp_step(_activation(node))
    return pending


def _tail_step(node: Node, pending: _Pending) -> None:
    h, w, c = pending.shape
    if node.output.dtype != "FLOAT32":
        raise NotFusableError(f"{node.name} output of type {node.output.dtype}")
    if node.name in ("MUL", "ADD"):
        operand = node.operand()
        if operand.size == 1:
            vector = np.full(c, operand.reshape(-1)[0], dtype=np.float32)
        elif not pending.flat and operand.size == c and operand.shape[-1] == c:
            vector = operand.reshape(-1)
        else:
            raise NotFusableError(f"{node.name} operand of shape {operand.shape} is not per-channel")
        pending.steps.append(Step(node.name.lower(), vector))
        pending.steps += _clamp_step(_activation(node))
    elif node.name in _CLAMP_OPS:
        pending.steps += _clamp_step(_CLAMP_OPS[node.name])
    elif node.name == "MAX_POOL_2D":
        if pending.flat or any(step.kind == "pool" for step in pending.steps):
            raise NotFusableError("a second max-pool between two binary layers")
        kernel = _positive(node, "filterHeight"), _positive(node, "filterWidth")
        stride = _positive(node, "strideH"), _positive(node, "strideW")
        try:
            pool = Window.make(h, w, *kernel, *stride, node.options.get("padding") == "SAME")
        except ValueError as err:
            raise NotFusableError(str(err)) from None
        pending.steps.append(Step("pool", pool=pool))
        pending.steps += _clamp_step(_activation(node))
        pending.shape = (pool.out_h, pool.out_w, c)
    elif node.name == "RESHAPE":
        if hwc(node.output.shape) != (1, 1, h * w * c):
            raise NotFusableError(f"a reshape to {tuple(node.output.shape)} (only flattening folds)")
        pending.flat = True
    else:
        raise NotFusableError(f"{node.name} in the float tail")
    pending.layer.ops.append(node.name)


def _finish_bits(group: Group, pending: _Pending) -> Layer:
    h, w, c = pending.shape
    try:
        epilogue = threshold_epilogue(pending.evaluate, pending.steps, pending.s_min, pending.s_max, c)
    except ValueError as err:
        raise NotFusableError(str(err)) from None
    layer = pending.layer
    if isinstance(layer, BinaryDense) and epilogue.pool is not None:
        raise NotFusableError("pooling after a dense layer")
    layer.ops.append(group.end.name)
    negate = np.where(epilogue.negate, -1, 1).astype(np.int8)
    layer.signs = layer.signs * negate.reshape((-1,) + (1,) * (layer.signs.ndim - 1))
    layer.epilogue = epilogue
    layer.out = BitShape(h, w, c)
    return layer


def _finish_scores(group: Group, pending: _Pending) -> Layer:
    layer = pending.layer
    mul, add = (list(v) for v in pending.affine)
    for step in pending.steps:
        if step.kind not in ("mul", "add"):
            raise NotFusableError(f"a {step.kind} after the last dense layer cannot stay exact")
        for j in range(len(mul)):
            value = _exact(step.value[j])
            mul[j], add[j] = (mul[j] * value, add[j] * value) if step.kind == "mul" else (mul[j], add[j] + value)
    try:
        layer.epilogue = score_epilogue(mul, add, np.arange(pending.s_min, pending.s_max + 1))
    except ValueError as err:
        raise NotFusableError(str(err)) from None
    if group.end is not None:
        layer.ops.append(group.end.name)
    return layer


def lower_group(group: Group, inp: Value) -> Layer:
    """The integer layer of a fusion group.

    Args:
        group: from :func:`firmware_gen.bnn.fusion.find_groups`.
        inp: the value the group reads (uint8 input for ``pixel``, bits otherwise).

    Returns:
        A :class:`~firmware_gen.bnn.ir.PixelConv`, :class:`~firmware_gen.bnn.ir.BinaryConv` or
        :class:`~firmware_gen.bnn.ir.BinaryDense` with its epilogue.

    Raises:
        NotFusableError: the numbers do not allow the integer form.
    """
    if group.kind == "pixel":
        if inp.dtype != "uint8":
            raise NotFusableError("the model input is not raw uint8 values")
        pending = _pixel_conv(group, inp.shape)
    else:
        if inp.dtype != "bits":
            raise NotFusableError("the input is not bit-packed")
        pending = _bconv(group.producer, inp) if group.kind == "bconv" else _dense(group, inp)
    if group.producer.output.dtype != "FLOAT32":
        raise NotFusableError(f"output type {group.producer.output.dtype}")
    for node in group.tail:
        _tail_step(node, pending)
    return _finish_scores(group, pending) if group.scores else _finish_bits(group, pending)
