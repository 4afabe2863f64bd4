"""The pixel conv's kernel: choose its form, pack its constants, build its template context.

One sum per output channel and conv position, over the taps ``t = (ky * KW + kx) * C + c`` of any
number of input channels ``C`` (:class:`~firmware_gen.bnn.ir.PixelConv`), in one of three forms:

* ``table`` (``+-1`` weights, up to :data:`MAX_TABLE_TAPS` taps): ``S = sum(k * q)`` with
  ``q = unit * pixel - zero`` (0 in the padding); per position an 8-entry table of the signed sums
  of each group of 3 taps, one lookup per group and channel
  (:func:`~firmware_gen.bnn.contract.pixel_group_entries`);
* ``int8`` (integer weights, or ``+-1`` past the table's taps, on cores without the DSP
  extension): the same ``S`` from ``int8_t`` weights ``[channel][tap]``, each channel summing its
  taps at the pool positions until one reaches its threshold;
* ``pairs`` (the same weights on cores with the DSP extension): ``S' = sum(k * q')`` with
  ``q' = unit * pixel`` inside the input and ``zero`` in the padding, which is
  ``S + zero * sum(k)`` exactly, so the thresholds move by ``zero * sum(k)`` per channel and every
  tap is a non-negative int16. Taps and weights are int16 quarters of ``uint64_t`` words (taps
  ``4 i .. 4 i + 3``, lowest first, 0 past the last tap; one 64-bit load and two ``SMLAD`` each);
  weights ``[channel][word]``, zero channels padding the last block of :data:`PAIR_BLOCK`. The
  kernel gathers the taps of every pool position, sums each block's channels together at the first
  position, then each channel still open (its sum below its threshold) sums the other positions
  :data:`POSITION_GROUP` at a time, loading its weights once per group, until one reaches the
  threshold.

The channel-inner host form (``BNN_CHANNEL_INNER``) computes the layer's own sum (``S`` or ``S'``)
from ``[tap][channel]`` weights.
"""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.contract import pack_signs, pixel_group_entries, words_for
from firmware_gen.bnn.ir import PixelConv
from firmware_gen.bnn.kernel import CArray
from firmware_gen.bnn.layer_code import INT16, LayerCode, conv_context, needs_int8, pool_context, threshold_array
from firmware_gen.bnn.pixel_code import (
    TapDomain,
    TapGeometry,
    block_sums,
    gather_pairs,
    gather_taps,
    int8_sum,
    pair_words,
    position_sums,
)

__all__ = ["resolve_pixel_conv", "pixel_form", "MAX_TABLE_TAPS", "PAIR_BLOCK", "POSITION_GROUP", "MAX_BAND_WIDTH"]

MAX_TABLE_TAPS = 30
"""Most taps of the +-1 table form (its tables of every pool position live on the stack)."""
PAIR_BLOCK = 4
"""Channels the ``pairs`` form sums together at a window's first position."""
POSITION_GROUP = 3
"""Positions whose sums the ``pairs`` form computes together for one channel (the weights loaded once)."""
MAX_BAND_WIDTH = 64
"""Widest padded input row whose nonzero pixels fit one ``uint64_t`` (the all-zero window test)."""


def pixel_form(signs: np.ndarray, dsp: bool) -> str:
    """The kernel form (``table``, ``int8`` or ``pairs``) of integer weights ``(O, KH, KW, C)``."""
    taps = int(np.prod(signs.shape[1:]))
    if not needs_int8(signs) and taps <= MAX_TABLE_TAPS:
        return "table"
    return "pairs" if dsp else "int8"


def _geometry(layer: PixelConv) -> TapGeometry:
    conv = layer.conv
    return TapGeometry(conv.kh, conv.kw, int(layer.signs.shape[3]), conv.in_h, conv.in_w, conv.padded)


def _table_arrays(prefix: str, rows: np.ndarray, q_max: int, context: dict) -> CArray:
    """+-1 weights: byte offsets of each group's table entry (table form)."""
    taps = rows.shape[1]
    qtype = "int16_t" if 3 * q_max <= INT16[1] and taps * q_max <= 2**31 - 1 else "int32_t"
    byte_offsets = pixel_group_entries(rows < 0) * (2 if qtype == "int16_t" else 4)
    offset_type = "uint8_t" if byte_offsets.max() <= 255 else "uint16_t"
    context.update(qtype=qtype, offset_type=offset_type, groups=-(-taps // 3))
    return CArray(offset_type, f"{prefix}offsets", byte_offsets, target_only=True)


def _quad_words(rows: np.ndarray, block: int) -> np.ndarray:
    """``(O, taps)`` integers -> ``uint64`` words ``[channel][i]`` holding taps ``4 i .. 4 i + 3`` as
    int16 quarters, lowest first; zeros pad the taps to whole words and the channels to whole blocks."""
    channels, taps = rows.shape
    padded = np.zeros((-(-channels // block) * block, 4 * pair_words(taps)), dtype=np.int64)
    padded[:channels, :taps] = rows
    quarters = (padded.reshape(padded.shape[0], -1, 4) & 0xFFFF).astype(np.uint64)
    return (quarters << (np.arange(4, dtype=np.uint64) * np.uint64(16))).sum(axis=2, dtype=np.uint64).reshape(-1)


def resolve_pixel_conv(layer: PixelConv, prefix: str, dsp: bool) -> LayerCode:
    """Pack a pixel conv's constants and build its template context.

    Args:
        layer: the lowered layer (thresholds in :attr:`PixelConv.epilogue`).
        prefix: name prefix of its constants (``l0_``).
        dsp: the target core has the DSP extension (integer weights take the ``pairs`` form).

    Returns:
        The :class:`~firmware_gen.bnn.layer_code.LayerCode`.
    """
    out_c = layer.signs.shape[0]
    geo = _geometry(layer)
    rows = layer.signs.reshape(out_c, geo.taps).astype(np.int64)
    form = pixel_form(layer.signs, dsp)
    k_max = int(np.abs(rows).max())
    unit, zero = layer.unit, layer.zero
    # q = 0 exactly when the pixel is 0 (and in the padding): such windows have S = 0 (and S' = S).
    skip_zero = zero == 0 and layer.conv.in_w + layer.conv.pad_left <= MAX_BAND_WIDTH
    zero_bits = pack_signs(layer.epilogue.thresholds > 0)
    if form == "pairs":
        domain = TapDomain(unit, 0, zero)  # S' = S + zero * sum(k)
        shifted = np.zeros(-(-out_c // PAIR_BLOCK) * PAIR_BLOCK, dtype=np.int64)  # whole blocks
        shifted[:out_c] = layer.epilogue.thresholds.astype(np.int64) + zero * rows.sum(axis=1)
        thresholds = CArray("int32_t", f"{prefix}thresholds", shifted)
        q_max = max(255 * unit, zero)
    else:
        domain = TapDomain(unit, zero, 0)
        thresholds = threshold_array(prefix, layer.epilogue)
        q_max = max(abs(zero), abs(255 * unit - zero))
    bound = geo.taps * k_max * q_max  # |S| (or |S'|)
    acc = "int16_t" if bound + 1 <= INT16[1] else "int32_t"
    context = {
        **conv_context(layer.conv),
        **pool_context(layer.epilogue.pool),
        "form": form,
        "in_c": geo.taps // (geo.kh * geo.kw),
        "taps": geo.taps,
        "padded": layer.conv.padded,
        "unit": unit,
        "zero": zero,
        "skip_zero": skip_zero,
        "band_type": "uint32_t" if layer.conv.in_w + layer.conv.pad_left <= 32 else "uint64_t",
        "kernel_mask": f"0x{(1 << geo.kw) - 1:x}u",
        "out_h": layer.out.h,
        "out_w": layer.out.w,
        "channels": out_c,
        "out_words": layer.out.words,
        "k_max": k_max,
        "acc_type": acc,
        "s_floor": -bound - 1,
        "threshold_type": thresholds.ctype,
        "inner_gather": gather_taps(geo, domain, "q", acc),
    }
    if form == "table":
        weights = _table_arrays(prefix, rows, q_max, context)
        context.update(gather=gather_taps(geo, domain, "q", "int32_t"), weight_type=acc)
    elif form == "int8":
        weights = CArray("int8_t", f"{prefix}signs", rows, target_only=True)
        context.update(gather=gather_taps(geo, domain, "q", "int16_t"), sum=int8_sum(geo.taps), weight_type="int8_t")
        context.update(qtype="int16_t")
    else:
        words = pair_words(geo.taps)
        weights = CArray("uint64_t", f"{prefix}quads", _quad_words(rows, PAIR_BLOCK), target_only=True)
        largest = max(1, min(POSITION_GROUP, layer.epilogue.pool.kh * layer.epilogue.pool.kw - 1 if layer.epilogue.pool else 1))
        groups = []  # the largest group that fits the positions left, in one if/else chain
        for m in range(largest, 0, -1):
            if largest == 1:
                head = "{"
            elif m == largest:
                head = f"if (n - i >= {m}) {{"
            else:
                head = f"}} else if (n - i == {m}) {{" if m > 1 else "} else {"
            groups.append({"head": head, "lines": position_sums(words, m), "positions": m})
        context.update(
            gather=gather_pairs(geo, domain, "q[n]"),
            words=words,
            block=PAIR_BLOCK,
            blocks=-(-out_c // PAIR_BLOCK),
            block_mask=f"0x{(1 << PAIR_BLOCK) - 1:x}u",
            block_sums=block_sums(words, PAIR_BLOCK),
            position_groups=groups,
            last_lanes=f"0x{(1 << out_c % PAIR_BLOCK) - 1:x}u" if out_c % PAIR_BLOCK else None,
            position_group=largest,
            weight_type="int8_t" if needs_int8(rows) else acc,
        )
    context["integer"] = form != "table"
    zero_arrays = [CArray("uint32_t", f"{prefix}zero_bits", zero_bits)] if skip_zero else []
    weight_bytes = weights.nbytes + (4 * words_for(out_c) if skip_zero else 0)
    arrays = [weights, thresholds, *zero_arrays]
    template = "bnn/layer_pixel_conv_quads.c.j2" if form == "pairs" else "bnn/layer_pixel_conv.c.j2"
    code = LayerCode(template, context, arrays, weight_bytes, thresholds.nbytes, layer.out.total_words)
    code.inner_template = "bnn/layer_pixel_conv_inner.c.j2"
    code.inner_arrays = [CArray(context["weight_type"], f"{prefix}signs_t", rows.T)]
    code.background = zero_bits if skip_zero else None
    return code
