"""Kernels of the integer layers (:mod:`firmware_gen.bnn.ir`): pack constants, build template contexts.

Each layer kind has a ``_resolve_*`` function (shapes, packing, C types, the report row) and a
template ``firmware_gen/templates/bnn/layer_*.c.j2`` that only lays the code out (plus a
channel-inner form for SIMD hosts); the pixel conv's is :func:`firmware_gen.bnn.pixel.resolve_pixel_conv`.
Packing follows :mod:`firmware_gen.bnn.contract`. Used by the fusion pass (pixel conv, binary conv
and binary dense with folded tails) and by the ``LceBconv2d`` (bit-packed output) and
``LceBMaxPool2d`` op modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware_gen.bnn.contract import WORD_BITS, flat_storage_bit, pack_signs, words_for
from firmware_gen.bnn.csa import PopcountTree, popcount_tree
from firmware_gen.bnn.ir import BinaryConv, BinaryDense, BitMaxPool, Layer, PixelConv, Scores
from firmware_gen.bnn.kernel import CArray, Kernel
from firmware_gen.bnn.layer_code import INT16, LayerCode, conv_context, needs_int8, pool_context, threshold_array
from firmware_gen.bnn.pixel import resolve_pixel_conv

__all__ = ["layer_kernel", "xor_trees", "all_ones", "pool_context"]

# XOR-popcounts over at most this many words are one straight carry-save tree; longer ones loop
# over trees of TREE_CHUNK words.
MAX_STRAIGHT_TREE = 36
TREE_CHUNK = 16
MAX_INPUT_OUTER = 64
"""Most outputs of an 8-bit dense layer kept as int32 stack accumulators (256 bytes)."""


def all_ones(channels: int) -> str:
    """C expression (in a loop over output words ``w``) of the word with every channel bit set."""
    tail = channels % WORD_BITS
    if tail == 0:
        return "0xffffffffu"
    return f"(w == {words_for(channels) - 1} ? 0x{(1 << tail) - 1:x}u : 0xffffffffu)"


def _xor_terms(offsets: range, masked: bool, base: str = "") -> list[str]:
    if masked:
        return [f"(a[{base}{k}] ^ b[{base}{k}]) & m[{base}{k}]" for k in offsets]
    return [f"a[{base}{k}] ^ b[{base}{k}]" for k in offsets]


def xor_trees(words: int, masked: bool) -> dict[str, PopcountTree | int | None]:
    """Context of ``_xor_popcount.j2``: one straight tree, or a chunk tree in a loop plus a tail."""
    if words <= MAX_STRAIGHT_TREE:
        tree = popcount_tree(_xor_terms(range(words), masked), "total")
        return {"tree": tree, "chunk_tree": None, "tail_tree": None, "chunk": 0}
    chunk = popcount_tree(_xor_terms(range(TREE_CHUNK), masked, "i + "), "count")
    full = words // TREE_CHUNK * TREE_CHUNK
    tail = popcount_tree(_xor_terms(range(full, words), masked), "count") if words > full else None
    return {"tree": None, "chunk_tree": chunk, "tail_tree": tail, "chunk": TREE_CHUNK}


def _resolve_binary_conv(layer: BinaryConv, prefix: str, background: np.ndarray | None) -> LayerCode:
    out_c, kh, kw, in_c = layer.signs.shape
    packed = pack_signs(layer.signs < 0).reshape(out_c, -1)
    weights = CArray("uint32_t", f"{prefix}weights", packed, target_only=True)
    n_full = kh * kw * in_c
    thresholds = threshold_array(prefix, layer.epilogue)
    if layer.pad_mode != "zero":  # every window has n_full bits: S >= T is popcount <= (n_full - T) // 2
        limits = (n_full - layer.epilogue.thresholds.astype(np.int64)) // 2
        thresholds = CArray("int16_t" if n_full <= INT16[1] else "int32_t", f"{prefix}limits", limits)
    arrays = [weights, thresholds]
    if layer.pad_mode == "one":
        arrays.append(CArray("uint32_t", f"{prefix}pad", pack_signs(layer.pad_bits)))
    # Windows made only of background pixels have a known S per channel: S_bg = K - 2 popcount.
    memo = layer.pad_mode == "valid" and background is not None and background.size == layer.inp.words
    bg_open = None
    if memo:
        window = np.tile(np.asarray(background, dtype=np.uint32), kh * kw)
        s_bg = n_full - 2 * np.array([sum(bin(int(v)).count("1") for v in row ^ window) for row in packed])
        bg_open = pack_signs(s_bg < layer.epilogue.thresholds)
        arrays += [
            CArray("uint32_t", f"{prefix}bg_in", np.asarray(background, dtype=np.uint32), target_only=True),
            CArray("uint32_t", f"{prefix}bg_open", bg_open, target_only=True),
        ]
    context = {
        **conv_context(layer.conv),
        **pool_context(layer.epilogue.pool),
        "in_words": layer.inp.words,
        "in_channels": in_c,
        "n_full": n_full,
        "taps_words": kh * kw * layer.inp.words,
        "pad_mode": layer.pad_mode,
        "memo": memo,
        "all_ones": all_ones(layer.out.c),
        **xor_trees(kh * kw * layer.inp.words, layer.pad_mode == "zero"),
        "out_h": layer.out.h,
        "out_w": layer.out.w,
        "channels": out_c,
        "out_words": layer.out.words,
    }
    extra = 4 * layer.inp.words if layer.pad_mode == "one" else 0
    weight_bytes = weights.nbytes + extra + (4 * (layer.inp.words + layer.out.words) if memo else 0)
    code = LayerCode("bnn/layer_binary_conv.c.j2", context, arrays, weight_bytes, thresholds.nbytes, layer.out.total_words)
    code.inner_template = "bnn/layer_binary_conv_inner.c.j2"
    code.inner_arrays = [CArray("uint32_t", f"{prefix}weights_t", packed.T)]
    code.background = bg_open
    return code


def _resolve_binary_dense(layer: BinaryDense, prefix: str) -> LayerCode:
    out_n, n = layer.signs.shape
    inp = layer.inp
    storage_words = inp.total_words
    integer = needs_int8(layer.signs)
    context: dict[str, Any] = {
        "outputs": out_n,
        "inputs": n,
        "in_words": storage_words,
        "scores": isinstance(layer.epilogue, Scores),
        "integer": integer,
    }
    if integer:
        # 8-bit weights in the logical (flattened NHWC) input order; the kernel walks each pixel's
        # channels through its storage words. Up to MAX_INPUT_OUTER outputs: int8_t
        # [input][output], each input bit read once into one stack accumulator per output; more
        # (a wide hidden layer) would put too many on a microcontroller's stack, so [output][input],
        # one output at a time.
        input_outer = out_n <= MAX_INPUT_OUTER
        rows = layer.signs.T if input_outer else layer.signs
        weights = CArray("int8_t", f"{prefix}weights", rows.astype(np.int64))
        context.update(pixels=inp.h * inp.w, in_channels=inp.c, pixel_words=inp.words, input_outer=input_outer)
    else:
        negative = np.zeros((out_n, storage_words * WORD_BITS), dtype=bool)
        negative[:, flat_storage_bit(np.arange(n), inp.c)] = layer.signs < 0
        weights = CArray("uint32_t", f"{prefix}weights", pack_signs(negative), target_only=True)
        context.update(taps_words=storage_words, pad_mode="valid", **xor_trees(storage_words, False))
    if isinstance(layer.epilogue, Scores):
        ctype = "int64_t" if layer.epilogue.wide else "int32_t"
        mul = CArray(ctype, f"{prefix}score_mul", layer.epilogue.mul)
        add = CArray(ctype, f"{prefix}score_add", layer.epilogue.add)
        arrays, tail_bytes, out_words = [weights, mul, add], mul.nbytes + add.nbytes, 0
        context.update(scale_log2=layer.epilogue.scale_log2, wide=layer.epilogue.wide, view_shift=layer.epilogue.view_shift)
    else:
        thresholds = threshold_array(prefix, layer.epilogue)
        arrays, tail_bytes, out_words = [weights, thresholds], thresholds.nbytes, words_for(out_n)
    code = LayerCode("bnn/layer_binary_dense.c.j2", context, arrays, weights.nbytes, tail_bytes, out_words)
    if not integer:
        code.inner_arrays = [CArray("uint32_t", f"{prefix}weights_t", weights.values.reshape(out_n, -1).T)]
    return code


def _resolve_bit_maxpool(layer: BitMaxPool, prefix: str) -> LayerCode:
    pool = layer.pool
    arrays = []
    has_or = bool(np.any(layer.or_mask))
    if has_or:
        arrays.append(CArray("uint32_t", f"{prefix}or_mask", pack_signs(layer.or_mask)))
    context = {
        **pool_context(pool),
        "in_h": pool.in_h,
        "in_w": pool.in_w,
        "out_h": pool.out_h,
        "out_w": pool.out_w,
        "in_words": layer.inp.words,
        "has_or": has_or,
    }
    mask_bytes = sum(a.nbytes for a in arrays)
    return LayerCode("bnn/layer_bit_maxpool.c.j2", context, arrays, 0, mask_bytes, layer.out.total_words)


def layer_kernel(
    layer: Layer, prefix: str, background: np.ndarray | None = None, dsp: bool = False
) -> tuple[Kernel, np.ndarray | None]:
    """Pack one integer layer's constants and build its kernel.

    Args:
        layer: a lowered integer layer.
        prefix: name prefix of its constants (``l3_``).
        background: the input value's background pixel (:attr:`Value.background`), or ``None``.
        dsp: the target core has the DSP extension (the 8-bit pixel conv's int16-pair form).

    Returns:
        The :class:`~firmware_gen.bnn.kernel.Kernel` (``inputs``/``output`` left for the caller)
        and the background pixel of its output (or ``None``).
    """
    if isinstance(layer, PixelConv):
        code = resolve_pixel_conv(layer, prefix, dsp)
    elif isinstance(layer, BinaryConv):
        code = _resolve_binary_conv(layer, prefix, background)
    elif isinstance(layer, BinaryDense):
        code = _resolve_binary_dense(layer, prefix)
    else:
        code = _resolve_bit_maxpool(layer, prefix)
        code.background = background  # AND/OR of equal pixels is that pixel
    kernel = Kernel(
        index=layer.index,
        ops=list(layer.ops),
        inputs=(),
        output=-1,
        template=code.template,
        context=code.context,
        arrays=code.arrays,
        kind=type(layer).__name__,
        returns_class=isinstance(layer, BinaryDense) and isinstance(layer.epilogue, Scores),
        inner_template=code.inner_template,
        inner_arrays=code.inner_arrays,
        notes=list(layer.notes),
        layer=layer,
        weight_bytes=code.weight_bytes,
    )
    return kernel, code.background
