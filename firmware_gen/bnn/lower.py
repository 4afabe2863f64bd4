"""Lowering: the op chain of an LCE flatbuffer -> integer layers (:mod:`firmware_gen.bnn.ir`).

One pass over the chain with a small state machine. The value between ops is one of:

* ``pixels``: float input as an exact affine ``alpha * pixel + beta`` of the raw uint8 pixels
  (leading scalar MUL/ADD, the Rescaling layer);
* ``sum``: the float output of a pending integer layer (CONV_2D on pixels, LceBconv2d, binary
  FULLY_CONNECTED), collecting its float tail (MUL/ADD batch norm, clamps, MAX_POOL_2D,
  RESHAPE) until LceQuantize folds it into thresholds, or the model ends (class scores);
* ``bits``: a bit-packed activation (LceQuantize or a bconv with bitpacked output);
* ``pm1``: LceDequantize of bits (float +-1), which only a binary FULLY_CONNECTED may read.

Each op has a ``_resolve_*`` function: it checks shapes and options and raises
:func:`~firmware_gen.bnn.graph.refuse` (one line naming the layer and op) for anything outside
the supported set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from firmware_gen.bnn.contract import unpack_lce_filter
from firmware_gen.bnn.fold import Evaluator, Step, clamp_for, score_epilogue, threshold_epilogue
from firmware_gen.bnn.graph import NUM_CLASSES, Graph, Node, refuse
from firmware_gen.bnn.ir import BinaryConv, BinaryDense, BitMaxPool, BitShape, Layer, PixelConv, Scores, Threshold, Window

__all__ = ["lower"]

_LCE_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
_INT_CLAMPS = {"NONE": (-(2**31), 2**31 - 1), "RELU": (0, 2**31 - 1), "RELU_N1_TO_1": (-1, 1), "RELU6": (0, 6)}


@dataclass
class _Pending:
    """An integer layer whose float tail is still being collected."""

    layer: Layer
    evaluate: Evaluator
    affine: tuple[list[Fraction], list[Fraction]] | None
    s_min: int
    s_max: int
    shape: tuple[int, int, int]
    steps: list[Step] = field(default_factory=list)
    flat: bool = False


@dataclass
class _State:
    kind: str = "pixels"
    alpha: Fraction = Fraction(1)
    beta: Fraction = Fraction(0)
    pending: _Pending | None = None
    bits: BitShape | None = None
    complement: np.ndarray | None = None
    flat: bool = False
    layers: list[Layer] = field(default_factory=list)
    ended: bool = False
    carried: list[str] = field(default_factory=list)


def _option(node: Node, key: str) -> int:
    """A positive integer option (stride, filter size); refuse a missing or invalid one."""
    value = node.options.get(key)
    if not isinstance(value, int) or value < 1:
        raise refuse(node.index, node.name, f"option {key} is {value!r}, expected a positive integer")
    return value


def _exact(value: float) -> Fraction:
    return Fraction(float(value))


def _binary_rows(node: Node, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split float weights ``(O, ...)`` into signs and per-row magnitudes; refuse non-binary rows."""
    if node.inputs[1].dtype != "FLOAT32":
        raise refuse(node.index, node.name, f"weights of type {node.inputs[1].dtype}; only float32 +-c weights are supported")
    flat = weights.reshape(weights.shape[0], -1).astype(np.float32)
    mags = np.abs(flat[:, 0])
    if np.any(mags == 0) or not np.all(np.abs(flat) == mags[:, None]):
        raise refuse(node.index, node.name, "weights are not binary (+-c per output channel); only binarized kernels compile")
    signs = np.where(flat < 0, -1, 1).astype(np.int8).reshape(weights.shape)
    return signs, mags


def _activation(node: Node, key: str = "fusedActivationFunction") -> str:
    value = node.options.get(key, "NONE")
    if isinstance(value, int):
        value = _LCE_ACTIVATIONS.get(value, f"code {value}")
    if value not in _INT_CLAMPS:
        raise refuse(node.index, node.name, f"fused activation {value} is not supported (NONE, RELU, RELU6, RELU_N1_TO_1)")
    return value


def _clamp_step(activation: str) -> list[Step]:
    limits = clamp_for(activation)
    return [] if limits is None else [Step("clamp", lo=limits[0], hi=limits[1])]


def _resolve_pixel_affine(node: Node, state: _State) -> None:
    operand = node.operand()
    if operand.size != 1 or _activation(node) != "NONE":
        raise refuse(node.index, node.name, "only a scalar rescaling of the input pixels is supported before the first conv")
    value = _exact(operand.reshape(-1)[0])
    if node.name == "MUL":
        state.alpha, state.beta = state.alpha * value, state.beta * value
    else:
        state.beta += value
    state.carried.append(node.name)


def _resolve_pixel_conv(node: Node, state: _State) -> _Pending:
    weights = node.const(1, "filter").astype(np.float32)
    out_c, kh, kw, in_c = weights.shape
    if in_c != 1:
        raise refuse(node.index, node.name, f"expected 1 input channel, got {in_c}")
    if node.options.get("dilationHFactor", 1) != 1 or node.options.get("dilationWFactor", 1) != 1:
        raise refuse(node.index, node.name, "dilated convolutions are not supported")
    signs, mags = _binary_rows(node, weights)
    bias = node.const(2, "bias").astype(np.float32) if node.has_input(2) else np.zeros(out_c, np.float32)
    same = node.options.get("padding") == "SAME"
    conv = Window.make(28, 28, kh, kw, _option(node, "strideH"), _option(node, "strideW"), same)
    alpha, beta = state.alpha, state.beta
    if alpha == 0:
        raise refuse(node.index, node.name, "the input rescaling multiplies pixels by 0")
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
            what = f"SAME padding needs the rescaled 0 at a half-integer pixel, got {float(pad_pixel)}"
            raise refuse(node.index, node.name, what)
        if zero != pad_pixel * unit:
            notes.append(f"border taps: the rescaled 0 is pixel {float(pad_pixel)!r}, taken as {zero}/{unit}")
    residual = beta + alpha * zero / unit
    taps = kh * kw
    bound = taps * max(abs(zero), abs(255 * unit - zero))
    # Interior outputs: y_o = c_o * alpha / unit * S + c_o * residual * sum(s_o) + b_o, exactly.
    mul = [_exact(m) * alpha / unit for m in mags]
    add = [_exact(m) * residual * int(signs[o].sum()) + _exact(bias[o]) for o, m in enumerate(mags)]

    def evaluate(s: np.ndarray) -> np.ndarray:
        out = np.empty(s.shape, dtype=np.float32)
        for o in range(s.shape[0]):
            for i in range(s.shape[1]):
                out[o, i] = np.float32(float(mul[o] * int(s[o, i]) + add[o]))
        return out

    layer = PixelConv(node.index, [*state.carried, node.name], conv, signs, unit, zero, None, None, notes)  # type: ignore[arg-type]
    pending = _Pending(layer, evaluate, (mul, add), -bound, bound, (conv.out_h, conv.out_w, out_c))
    pending.steps += _clamp_step(_activation(node))
    return pending


def _resolve_bconv(node: Node, state: _State) -> _Pending | BinaryConv:
    opts = node.options
    inp = state.bits
    filt = node.const(1, "filter")
    if node.inputs[1].dtype != "INT32" or filt.ndim != 4:
        raise refuse(node.index, node.name, f"filter of type {node.inputs[1].dtype} {filt.shape}, expected packed INT32 OHWI")
    out_c, kh, kw, _ = filt.shape
    channels_in = int(opts.get("channels_in", inp.c))
    if channels_in != inp.c:
        raise refuse(node.index, node.name, f"channels_in {channels_in} does not match the {inp.c} input channels")
    if filt.shape[3] != inp.words:
        raise refuse(node.index, node.name, "grouped binary convolutions are not supported")
    if opts.get("dilation_height_factor", 1) != 1 or opts.get("dilation_width_factor", 1) != 1:
        raise refuse(node.index, node.name, "dilated convolutions are not supported")
    padding, pad_value = int(opts.get("padding", 1)), int(opts.get("pad_values", 0))
    if padding not in (0, 1) or pad_value not in (0, 1):
        raise refuse(node.index, node.name, f"padding {padding} / pad_values {pad_value} not supported")
    conv = Window.make(inp.h, inp.w, kh, kw, _option(node, "stride_height"), _option(node, "stride_width"), padding == 0)
    pad_mode = "valid" if not conv.padded else ("one" if pad_value == 1 else "zero")
    signs = unpack_lce_filter(filt, inp.c) * np.where(state.complement, -1, 1).astype(np.int8)
    layer = BinaryConv(node.index, [node.name], inp, conv, pad_mode, state.complement.copy(), signs, None, None)  # type: ignore[arg-type]
    k = kh * kw * inp.c
    if node.output.dtype == "INT32":  # bitpacked output: bit = popcount > threshold, i.e. S < K - 2 t
        if pad_mode == "zero":
            raise refuse(node.index, node.name, "bitpacked output with zero padding is not supported")
        thresholds = node.const(4, "output threshold").astype(np.int64)
        t = np.clip(k - 2 * thresholds, -k, k + 1)
        none = np.zeros(out_c, dtype=bool)
        layer.epilogue = Threshold(t, none, none.copy(), None, -k, k)
        layer.out = BitShape(conv.out_h, conv.out_w, out_c)
        return layer
    if node.output.dtype != "FLOAT32":
        raise refuse(node.index, node.name, f"output type {node.output.dtype} not supported (FLOAT32 or bitpacked INT32)")
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


def _resolve_dense(node: Node, state: _State) -> _Pending:
    inp = state.bits
    weights = node.const(1, "weights").astype(np.float32)
    out_n, n = weights.shape
    if n != inp.h * inp.w * inp.c:
        raise refuse(node.index, node.name, f"{n} inputs do not match the {inp.h * inp.w * inp.c} binary activations")
    if node.options.get("weightsFormat", 0) != 0 or node.options.get("keepNumDims", False):
        raise refuse(node.index, node.name, "only the default weights format without keep_num_dims is supported")
    signs, mags = _binary_rows(node, weights)
    comp = np.tile(state.complement, inp.h * inp.w)
    signs = signs * np.where(comp, -1, 1).astype(np.int8)[None, :]
    bias = node.const(2, "bias").astype(np.float32) if node.has_input(2) else np.zeros(out_n, np.float32)

    def evaluate(s: np.ndarray) -> np.ndarray:
        return ((s.astype(np.float32) * mags[:, None]).astype(np.float32) + bias[:, None]).astype(np.float32)

    layer = BinaryDense(node.index, [node.name], inp, signs, None, None)  # type: ignore[arg-type]
    affine = ([_exact(m) for m in mags], [_exact(b) for b in bias])
    pending = _Pending(layer, evaluate, affine, -n, n, (1, 1, out_n))
    pending.steps += _clamp_step(_activation(node))
    return pending


def _resolve_tail(node: Node, pending: _Pending) -> None:
    h, w, c = pending.shape
    if node.name in ("MUL", "ADD"):
        operand = node.operand()
        if operand.size == 1:
            vector = np.full(c, operand.reshape(-1)[0], dtype=np.float32)
        elif not pending.flat and operand.size == c and operand.shape[-1] == c:
            vector = operand.reshape(-1)
        else:
            raise refuse(node.index, node.name, f"operand of shape {operand.shape} is not per-channel ({c} channels)")
        pending.steps.append(Step(node.name.lower(), vector))
        pending.steps += _clamp_step(_activation(node))
    elif node.name == "MAX_POOL_2D":
        if pending.flat or any(step.kind == "pool" for step in pending.steps):
            raise refuse(node.index, node.name, "only one max-pool between two binary layers is supported")
        opts = node.options
        kernel = _option(node, "filterHeight"), _option(node, "filterWidth")
        pool = Window.make(h, w, *kernel, _option(node, "strideH"), _option(node, "strideW"), opts.get("padding") == "SAME")
        pending.steps.append(Step("pool", pool=pool))
        pending.steps += _clamp_step(_activation(node))
        pending.shape = (pool.out_h, pool.out_w, c)
    elif node.name == "RESHAPE":
        if int(np.prod(node.output.shape)) != h * w * c or node.output.shape[-1] != h * w * c:
            raise refuse(node.index, node.name, f"only flattening reshapes are supported, got {tuple(node.output.shape)}")
        pending.flat = True
    else:
        raise refuse(node.index, node.name, "op not supported on the float output of a binary layer")
    pending.layer.ops.append(node.name)


def _finish_bits(node: Node, pending: _Pending, state: _State) -> None:
    h, w, c = pending.shape
    try:
        epilogue = threshold_epilogue(pending.evaluate, pending.steps, pending.s_min, pending.s_max, c)
    except ValueError as err:
        raise refuse(node.index, node.name, str(err)) from None
    layer = pending.layer
    layer.ops.append(node.name)
    layer.signs = layer.signs * np.where(epilogue.negate, -1, 1).astype(np.int8).reshape((-1,) + (1,) * (layer.signs.ndim - 1))
    layer.epilogue = epilogue
    if isinstance(layer, BinaryDense) and epilogue.pool is not None:
        raise refuse(node.index, node.name, "pooling after a dense layer is not supported")
    layer.out = BitShape(h, w, c)
    state.layers.append(layer)
    state.kind, state.bits, state.complement, state.pending = "bits", layer.out, epilogue.complement.copy(), None


def _finish_scores(node: Node, pending: _Pending, state: _State) -> None:
    layer = pending.layer
    if not isinstance(layer, BinaryDense):
        raise refuse(node.index, node.name, "the last integer layer must be a binary FULLY_CONNECTED")
    mul, add = (list(v) for v in pending.affine)
    for step in pending.steps:
        if step.kind not in ("mul", "add"):
            raise refuse(node.index, node.name, f"a {step.kind} after the last dense layer cannot stay exact")
        for j in range(len(mul)):
            value = _exact(step.value[j])
            mul[j], add[j] = (mul[j] * value, add[j] * value) if step.kind == "mul" else (mul[j], add[j] + value)
    n = layer.signs.shape[1]
    try:
        layer.epilogue = score_epilogue(mul, add, np.arange(-n, n + 1))
    except ValueError as err:
        raise refuse(node.index, node.name, str(err)) from None
    if node.name == "SOFTMAX":
        layer.ops.append(node.name)
    state.layers.append(layer)
    state.pending, state.ended = None, True


def lower(graph: Graph) -> list[Layer]:
    """Lower a checked op chain to integer layers.

    Args:
        graph: from :func:`~firmware_gen.bnn.graph.load_graph`.

    Returns:
        The layers in execution order; the last one is a :class:`BinaryDense` with
        :class:`~firmware_gen.bnn.ir.Scores`.

    Raises:
        InputError: an op, option or pattern outside the supported set (one line, naming the
            layer index and the op).
    """
    state = _State()
    for node in graph.nodes:
        if state.ended:
            raise refuse(node.index, node.name, "nothing may follow the class scores but SOFTMAX")
        if state.kind == "pixels":
            if node.name in ("MUL", "ADD"):
                _resolve_pixel_affine(node, state)
            elif node.name == "CONV_2D":
                state.pending, state.kind = _resolve_pixel_conv(node, state), "sum"
            else:
                raise refuse(node.index, node.name, "the first layer must be a binarized CONV_2D on the (rescaled) pixels")
        elif state.kind == "sum":
            if node.name == "LceQuantize":
                _finish_bits(node, state.pending, state)
            elif node.name == "SOFTMAX":
                _finish_scores(node, state.pending, state)
            else:
                _resolve_tail(node, state.pending)
        elif state.kind == "bits":
            if node.name == "LceBconv2d":
                result = _resolve_bconv(node, state)
                if isinstance(result, BinaryConv):
                    state.layers.append(result)
                    state.bits = result.out
                    state.complement = np.zeros(result.out.c, dtype=bool)
                else:
                    state.pending, state.kind = result, "sum"
            elif node.name == "LceBMaxPool2d":
                _resolve_bit_pool(node, state)
            elif node.name == "LceDequantize":
                state.kind, state.carried = "pm1", [node.name]
            else:
                raise refuse(node.index, node.name, "op not supported on bit-packed activations")
        elif state.kind == "pm1":
            if node.name == "RESHAPE":
                state.carried.append(node.name)
                continue
            if node.name != "FULLY_CONNECTED":
                raise refuse(node.index, node.name, "LceDequantize output may only feed a binary FULLY_CONNECTED")
            state.pending, state.kind = _resolve_dense(node, state), "sum"
            state.pending.layer.ops[:0] = state.carried
    if state.kind == "sum" and not state.ended:
        _finish_scores(graph.nodes[-1], state.pending, state)
    if not state.ended:
        last = graph.nodes[-1]
        raise refuse(last.index, last.name, "the model must end in a binary FULLY_CONNECTED producing the class scores")
    final = state.layers[-1]
    if not isinstance(final.epilogue, Scores) or final.signs.shape[0] != NUM_CLASSES:
        raise refuse(final.index, "FULLY_CONNECTED", f"the last layer must produce {NUM_CLASSES} class scores")
    return state.layers


def _resolve_bit_pool(node: Node, state: _State) -> None:
    inp, opts = state.bits, node.options
    padding = int(opts.get("padding", 1))
    kernel = _option(node, "filter_height"), _option(node, "filter_width")
    pool = Window.make(inp.h, inp.w, *kernel, _option(node, "stride_height"), _option(node, "stride_width"), padding == 0)
    if _activation(node, "fused_activation_function") != "NONE":
        raise refuse(node.index, node.name, "fused activations on LceBMaxPool2d are not supported")
    out = BitShape(pool.out_h, pool.out_w, inp.c)
    state.layers.append(BitMaxPool(node.index, [node.name], inp, pool, state.complement.copy(), out))
    state.bits = out
