"""The lowered program of the ``bnn`` engine: integer layers between bit-packed activations.

Every layer computes exact integer sums ``S`` of ``+-1`` weights (or 8-bit integer ones, in a
stem or a dense layer) with its inputs, then either
writes bits (a :class:`Threshold` epilogue, pooling fused in) or, for the last layer, integer
class scores (a :class:`Scores` epilogue). Weight signs here are already in the *stored* domain
(complements of the input and negations of the output folded in), so the emitter only packs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_gen.bnn.contract import words_for

__all__ = ["BitShape", "Window", "Threshold", "Scores", "PixelConv", "BinaryConv", "BinaryDense", "BitMaxPool", "Layer"]


@dataclass(frozen=True)
class BitShape:
    """A bit-packed activation ``(h, w, c)``; each pixel owns ``words`` uint32 words."""

    h: int
    w: int
    c: int

    @property
    def words(self) -> int:
        """Words per pixel."""
        return words_for(self.c)

    @property
    def total_words(self) -> int:
        """Words of the whole activation."""
        return self.h * self.w * self.words

    @property
    def nbytes(self) -> int:
        """Bytes of the whole activation."""
        return 4 * self.total_words


@dataclass(frozen=True)
class Window:
    """A sliding window (convolution or pooling) in TFLite's geometry.

    ``out = (in + pad_total - eff) // stride + 1`` with the effective extent
    ``eff = (k - 1) * dilation + 1``; tap ``(ky, kx)`` of output ``(y, x)`` reads input row
    ``y * sh - pad_top + ky * dh`` and column ``x * sw - pad_left + kx * dw``; positions outside
    the input are padding (skipped, or a constant for one-padded convolutions).
    """

    kh: int
    kw: int
    sh: int
    sw: int
    pad_top: int
    pad_left: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    dh: int = 1
    dw: int = 1

    @property
    def padded(self) -> bool:
        """True when some window reaches outside the input."""
        bottom = (self.out_h - 1) * self.sh + (self.kh - 1) * self.dh + 1 - self.pad_top - self.in_h
        right = (self.out_w - 1) * self.sw + (self.kw - 1) * self.dw + 1 - self.pad_left - self.in_w
        return self.pad_top > 0 or self.pad_left > 0 or bottom > 0 or right > 0

    @staticmethod
    def make(in_h: int, in_w: int, kh: int, kw: int, sh: int, sw: int, same: bool, dh: int = 1, dw: int = 1) -> Window:
        """TFLite's output size and padding for ``SAME`` or ``VALID`` (``ComputePaddingHeightWidth``).

        Raises:
            ValueError: a VALID window larger than the input (no output).
        """
        eff_h, eff_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        if same:
            out_h, out_w = -(-in_h // sh), -(-in_w // sw)
            pad_h = max((out_h - 1) * sh + eff_h - in_h, 0)
            pad_w = max((out_w - 1) * sw + eff_w - in_w, 0)
            return Window(kh, kw, sh, sw, pad_h // 2, pad_w // 2, in_h, in_w, out_h, out_w, dh, dw)
        out_h, out_w = (in_h - eff_h) // sh + 1, (in_w - eff_w) // sw + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(f"a {kh}x{kw} window (dilation {dh}x{dw}) does not fit a {in_h}x{in_w} input without padding")
        return Window(kh, kw, sh, sw, 0, 0, in_h, in_w, out_h, out_w, dh, dw)


@dataclass
class Threshold:
    """Bit-writing epilogue: stored bit ``1`` iff ``max(S over the pool window) < thresholds[o]``.

    Attributes:
        thresholds: ``(C,)`` int64.
        negate: ``(C,)`` output channels whose weights were negated (already applied to signs).
        complement: ``(C,)`` channels whose stored bit is the complement of LCE's bit.
        pool: the max-pool fused before the comparison, or ``None``.
        s_min: smallest possible ``S`` (for choosing the C type of the thresholds).
        s_max: largest possible ``S``.
    """

    thresholds: np.ndarray
    negate: np.ndarray
    complement: np.ndarray
    pool: Window | None
    s_min: int
    s_max: int


@dataclass
class Scores:
    """Final epilogue: ``scores[o] = mul[o] * S[o] + add[o]``, order-exact, and their argmax.

    Attributes:
        mul: ``(10,)`` int64.
        add: ``(10,)`` int64.
        scale_log2: the fixed-point scale ``2**scale_log2`` of the exact affine.
        wide: scores need int64 (the argmax is taken in int64).
        view_shift: for ``wide``, the int32 scores returned are the int64 ones over ``2**view_shift``.
    """

    mul: np.ndarray
    add: np.ndarray
    scale_log2: int
    wide: bool = False
    view_shift: int = 0


@dataclass
class PixelConv:
    """CONV_2D on raw pixels with weights ``c * k`` per output channel: ``S = sum(k * q)``, ``q = unit * pixel - zero``.

    ``signs`` holds the integers ``k``: ``+-1`` for a binary stem, up to ``+-127`` for an 8-bit one.
    Taps in the padding read ``q = 0`` (``zero / unit`` is the raw pixel that rescales to 0).
    """

    index: int
    ops: list[str]
    conv: Window
    signs: np.ndarray
    unit: int
    zero: int
    epilogue: Threshold
    out: BitShape
    notes: list[str] = field(default_factory=list)


@dataclass
class BinaryConv:
    """LceBconv2d: XNOR/popcount over bit-packed input; ``pad_mode`` ``valid``/``zero``/``one``.

    ``pad_bits`` (``(C_in,)`` bool) are the stored bits a one-padded tap reads.
    """

    index: int
    ops: list[str]
    inp: BitShape
    conv: Window
    pad_mode: str
    pad_bits: np.ndarray
    signs: np.ndarray
    epilogue: Threshold
    out: BitShape
    notes: list[str] = field(default_factory=list)


@dataclass
class BinaryDense:
    """FULLY_CONNECTED on ``+-1`` inputs with weights ``u * k`` per output: ``S = sum(k * x)``.

    ``signs`` are the integers ``k``, ``(O, N)`` in the logical (flattened NHWC) order of ``inp``:
    ``+-1`` for binary weights (packed, XNOR/popcount), up to ``+-127`` for 8-bit ones (``int8_t``).
    """

    index: int
    ops: list[str]
    inp: BitShape
    signs: np.ndarray
    epilogue: Threshold | Scores
    out: BitShape | None
    notes: list[str] = field(default_factory=list)


@dataclass
class BitMaxPool:
    """LceBMaxPool2d on bits: AND over the window (OR on complemented channels)."""

    index: int
    ops: list[str]
    inp: BitShape
    pool: Window
    or_mask: np.ndarray
    out: BitShape
    notes: list[str] = field(default_factory=list)


Layer = PixelConv | BinaryConv | BinaryDense | BitMaxPool
