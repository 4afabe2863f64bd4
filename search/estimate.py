"""The packed size of a candidate before it is trained: model data and activation arena, as the bnn engine lays them out.

:func:`packed_size` computes, from the architecture alone, the two figures the ``bnn`` engine
reports once it has compiled the trained model: ``model_data_bytes`` (every ``const`` array of
``bnn_model.c``: packed weights, thresholds, tables, the final affine) and
``activation_ram_bytes`` (the static arena its planner lays out). It follows the engine's
layout rules (:mod:`firmware_gen.bnn.contract` and :mod:`firmware_gen.bnn.fused`), restated here
from the architecture rather than read off a compiled model:

* stem (convolution on pixels, ``taps = k * k * C`` on ``C`` input channels, the forms of
  :mod:`firmware_gen.bnn.pixel`): a binary stem up to 30 taps stores one ``uint8_t`` table offset
  per group of 3 taps per channel and one ``int16_t`` threshold per channel; an ``int8`` stem (and a
  binary one past 30 taps) one ``int8_t`` weight per tap and channel and ``int32_t`` thresholds (its
  sums reach ``taps * 255 * k_max``; the engine would take ``int16_t`` only if training left every
  weight within 14/128 of 0, which the estimate does not assume; ``k_max = 1`` for a binary stem) on
  a core without the DSP extension, and on one with it (``dsp``) 8 bytes per 4 taps (int16 pairs,
  taps rounded up to a multiple of 4) and an ``int32_t`` threshold per channel, channels rounded up
  to a multiple of 4; without padding (the rescaled 0 is then pixel 0) and for rows up to 64 pixels,
  the packed bits each channel takes on an all-zero window;
* binary convolution: ``C_out * k * k * words(C_in)`` ``uint32_t`` weight words, one ``int16_t``
  popcount limit per channel (``int32_t`` past 32,767 inputs per output), with ``same``
  (one-)padding the packed pad pixel (``words(C_in)`` words), and, while every layer so far was
  unpadded, the background pixel in and the channels it opens (``words(C_in) + words(C_out)``);
* binary dense: ``outputs * words of the flattened input storage`` weight words (every pixel
  owns whole words), then one ``int16_t`` threshold per output, or for the class scores an
  ``int32_t`` multiplier and offset per class;
* 8-bit class scores (``Arch.scores == "int8"``): one ``int8_t`` weight per input and class
  (logical inputs, not storage words), and the class affine in ``int64_t``;
* float class scores (``Arch.scores == "float"``): the features dequantized to one float each
  (arena only), then ``classes * inputs`` float weights and ``classes`` float biases, and the
  float scores in the arena;
* the arena: every layer's bit-packed output (``4 * words`` bytes) alive from the layer that
  writes it to the one that reads it, placed by :func:`pipeline.planner.plan_buffers`.

One part depends on trained values, not on the architecture: when int32 fixed point cannot keep
the order of the final scores exact, the engine widens the class affine to ``int64_t`` (80
bytes more for 10 classes). The estimate assumes int32 for binary scores, whose few reachable
sums (``2 * inputs + 1`` per class) int32 separates, and int64 for 8-bit ones, whose sums reach
thousands per class (``sum(|k|)``) and come closer than int32 resolves; it says so
(:attr:`PackedSize.wide_scores`, :meth:`PackedSize.scores_extra`), the search records any
difference, and the tests check equality on every trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from firmware_gen.bnn.contract import WORD_BITS
from firmware_gen.bnn.fused import MAX_PIXEL_TAPS
from firmware_gen.bnn.fusion import MAX_INT_WEIGHT
from firmware_gen.bnn.pixel import MAX_BAND_WIDTH, MAX_TABLE_TAPS, PAIR_BLOCK
from pipeline.planner import Buffer, plan_buffers
from search.space import Arch, Conv, feature_shapes, shape_problem

__all__ = ["PackedSize", "packed_size", "WIDE_SCORE_BYTES"]

_INT16_MAX = 2**15 - 1
WIDE_SCORE_BYTES = 8
"""Bytes per class the class affine grows by in int64 (a multiplier and an offset, 4 bytes more each)."""


def _words(channels: int) -> int:
    return -(-channels // WORD_BITS)


@dataclass
class PackedSize:
    """The packed size of an architecture.

    Attributes:
        model_data_bytes: bytes of every constant array the engine emits.
        arena_bytes: bytes of the static activation arena.
        layers: one row per engine layer: name, output, ``packed_weight_bytes``, ``threshold_bytes``
            and ``activation_bytes``, attributed as in the engine's per-layer report.
        problem: why the engine would refuse the architecture (``None``: it compiles).
        classes: number of class scores.
        wide_scores: the estimate takes the integer class affine in int64 (8-bit class scores).
    """

    model_data_bytes: int
    arena_bytes: int
    layers: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None
    classes: int = 10
    wide_scores: bool = False

    def scores_extra(self, engine_wide: bool) -> int:
        """Bytes the engine's class affine has beyond this estimate's when the engine chose
        ``engine_wide`` (int64): ``+-8`` per class where the two differ, else 0."""
        return (int(engine_wide) - int(self.wide_scores)) * WIDE_SCORE_BYTES * self.classes

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "model_data_bytes": self.model_data_bytes,
            "arena_bytes": self.arena_bytes,
            "layers": self.layers,
            "problem": self.problem,
            "classes": self.classes,
            "wide_scores": self.wide_scores,
        }


def _threshold_bytes(count: int, bound: int) -> int:
    """``count`` thresholds of sums in ``[-bound, bound]``: int16 when ``bound + 1`` fits."""
    return count * (2 if bound + 1 <= _INT16_MAX else 4)


def _pads(conv: Conv) -> bool:
    """Whether the conv pads (a ``same`` kernel wider than 1)."""
    return conv.padding == "same" and conv.kernel > 1


def _stem_bytes(arch: Arch, dsp: bool) -> tuple[int, int, bool]:
    """The stem's weight bytes (its all-zero-window bits included), threshold bytes, and whether it
    has the all-zero-window shortcut."""
    stem = arch.stem
    taps = stem.kernel * stem.kernel * arch.input_channels
    background = not _pads(stem) and arch.input_size[1] <= MAX_BAND_WIDTH
    extra = 4 * _words(stem.channels) if background else 0
    if stem.precision == "binary" and taps <= MAX_TABLE_TAPS:  # uint8_t offsets: below 256 up to 30 taps
        return stem.channels * -(-taps // 3) + extra, _threshold_bytes(stem.channels, taps * 255), background
    if dsp:  # uint64_t words of four int16 taps, whole blocks of channels, int32_t thresholds
        channels = -(-stem.channels // PAIR_BLOCK) * PAIR_BLOCK
        return 8 * channels * -(-taps // 4) + extra, 4 * channels, background
    k_max = MAX_INT_WEIGHT if stem.precision == "int8" else 1
    return stem.channels * taps + extra, _threshold_bytes(stem.channels, taps * 255 * k_max), background


def packed_size(arch: Arch, *, dsp: bool) -> PackedSize:
    """Model data and arena bytes the bnn engine will report for ``arch`` (int32 binary class scores,
    int64 8-bit ones).

    Args:
        arch: the architecture.
        dsp: the target core has the DSP extension (``Core.has_dsp``: the stem's int16-pair form).

    Returns:
        The :class:`PackedSize`; ``problem`` is set (and the figures are 0) when the
        architecture cannot be built or the engine would refuse it.
    """
    problem = shape_problem(arch)
    taps = arch.stem.kernel * arch.stem.kernel * arch.input_channels
    if problem is None and taps > MAX_PIXEL_TAPS:
        problem = (
            f"stem: {taps} taps per output; the bnn engine's integer pixel kernel takes up to {MAX_PIXEL_TAPS}"
            " (wider stems compile on its float path, which this estimate does not model)"
        )
    if problem is not None:
        return PackedSize(0, 0, [], problem)

    rows: list[dict[str, Any]] = []
    stem = arch.stem
    sizes = feature_shapes(arch)  # height, width, channels after each convolution and its pool
    height, width, _ = sizes[0]
    packed, limits, background = _stem_bytes(arch, dsp)  # an unpadded stem maps all-zero windows to known bits
    rows.append(_row("stem", (height, width), stem.channels, packed, limits, 4 * height * width * _words(stem.channels)))

    channels = stem.channels
    for index, block in enumerate(arch.blocks, start=1):
        in_words = _words(channels)
        height, width, _ = sizes[index]
        padded = _pads(block)
        out_words = _words(block.channels)
        packed = 4 * block.channels * block.kernel * block.kernel * in_words
        if padded:
            packed += 4 * in_words
        memo = background and not padded
        if memo:
            packed += 4 * (in_words + out_words)
        background = memo
        limits = _threshold_bytes(block.channels, block.kernel * block.kernel * channels - 1)
        rows.append(_row(f"block{index}", (height, width), block.channels, packed, limits, 4 * height * width * out_words))
        channels = block.channels

    storage_words = height * width * _words(channels)
    inputs = height * width * channels
    for index, units in enumerate(arch.dense, start=1):
        rows.append(
            _row(f"dense{index}", (1, 1), units, 4 * units * storage_words, _threshold_bytes(units, inputs), 4 * _words(units))
        )
        storage_words, inputs = _words(units), units
    if arch.scores == "float":
        # the engine's float path: the bits dequantized to one float each, a float32
        # FULLY_CONNECTED (batch norm folded into its bias) writing float scores, then the softmax
        rows.append(_row("scores_input", (1, 1), inputs, 0, 0, 4 * inputs))
        rows.append(_row("scores", (1, 1), arch.classes, 4 * arch.classes * inputs, 0, 4 * arch.classes))
        rows[-1]["bias_bytes"] = 4 * arch.classes  # counted in the engine's constant_bytes, not its threshold_bytes
        written = rows[:]
        rows.append(_row("softmax", (1, 1), arch.classes, 0, 0, 0))  # writes the caller's scores
    else:
        # a multiplier and an offset per class, int32 (binary) or int64 (8-bit, see the module docstring);
        # one int8_t weight per input and class, or packed sign words of the flattened storage
        int8 = arch.scores == "int8"
        weights = arch.classes * inputs if int8 else 4 * arch.classes * storage_words
        affine = 2 * 4 * arch.classes + (WIDE_SCORE_BYTES * arch.classes if int8 else 0)
        rows.append(_row("scores", (1, 1), arch.classes, weights, affine, 0))
        written = rows[:-1]

    buffers = [Buffer(f"layer{i}_out", row["activation_bytes"], i, i + 1) for i, row in enumerate(written)]
    arena = plan_buffers(buffers).total
    data = sum(row["packed_weight_bytes"] + row["threshold_bytes"] + row.get("bias_bytes", 0) for row in rows)
    return PackedSize(data, arena, rows, None, arch.classes, arch.scores == "int8")


def _row(name: str, size: tuple[int, int], channels: int, packed: int, thresholds: int, activation_bytes: int) -> dict[str, Any]:
    """One layer, its bytes attributed as the engine's report does (``packed_weight_bytes``: weights,
    tables, pad and background pixels; ``threshold_bytes``: thresholds or the class affine)."""
    return {
        "layer": name,
        "output": f"{size[0]}x{size[1]}x{channels}",
        "packed_weight_bytes": packed,
        "threshold_bytes": thresholds,
        "activation_bytes": activation_bytes,
    }
