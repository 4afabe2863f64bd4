"""Layout contracts of the ``bnn`` engine: the one place that says where every bit lives.

Both sides are tested against this module: the Python lowering packs weights with these
functions, and the generated C kernels read activations with the index formulas below
(``tests/test_bnn_contract.py`` compiles a C probe of the same formulas).

* **Packing word**: ``uint32_t``, :data:`WORD_BITS` = 32 bits.
* **Bit order**: LSB first. Channel ``c`` of a pixel is bit ``c % 32`` of word ``c // 32``.
* **Sign convention** (LCE's, kept as is): bit ``1`` means ``-1``, bit ``0`` means ``+1``;
  a float ``x`` packs to ``x < 0`` so ``0.0`` and ``-0.0`` are ``+1``.
* **Activations**: NHWC (batch 1), each pixel owns ``words_for(C)`` whole words; the unused high
  bits of a pixel's last word are always ``0`` (so they never add to an XOR-popcount).
  Element ``(h, w, c)`` is bit ``c % 32`` of word ``(h * W + w) * words_for(C) + c // 32``.
* **Flatten** (RESHAPE to a vector, as TFLite does): logical index ``(h * W + w) * C + c``;
  the dense layer that reads it uses the storage word/bit of the line above, so flattening
  moves no data.
* **Binary conv weights**: OHWI, ``[o][ky][kx][word]`` with ``words_for(C_in)`` words per tap,
  the same bit order; padding bits ``0``.
* **Dense weights**: ``[o][word]`` over the flattened storage of the input (pixel padding
  bits included, always ``0``).
* **First-layer (pixel) conv signs**: taps ``k = (ky * KW + kx) * C_in + c`` go in groups of 3
  (``g = k // 3``); per position the kernel builds an 8-entry table per group whose entry ``p``
  is the group's sum with tap ``3 g + j`` negated when bit ``j`` of ``p`` is set. Channel ``o``
  stores, per group, its entry ``8 g + p`` (:func:`pixel_group_entries`; bit ``j`` of ``p`` set
  when the weight of tap ``3 g + j`` is -1, taps past the last read 0). The channel-inner host
  form stores the signs ``+-1`` as ``[tap][channel]``. Integer (8-bit) weights use the same tap
  order: ``int8_t`` ``[channel][tap]``, or on cores with the DSP extension ``uint64_t``
  ``[channel][t // 4]`` with tap ``t`` in bits ``16 * (t % 4)`` as int16 (:mod:`firmware_gen.bnn.pixel`).
* **Complement**: a stored activation bit may be the complement of LCE's bit for some channels
  (a compile-time per-channel mask); consumers absorb it into their weights, so it never costs
  a run-time instruction.
* **Thresholds**: every layer that writes bits computes ``S`` (the exact integer dot product of
  ``+-1`` weights with its inputs) and stores bit ``1`` iff ``max(S over the pool window) < T``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "WORD_BITS",
    "words_for",
    "pack_signs",
    "unpack_words",
    "unpack_lce_filter",
    "activation_word_index",
    "flat_storage_bit",
    "pixel_group_entries",
    "words_to_bytes",
]

WORD_BITS = 32


def words_for(channels: int) -> int:
    """Number of 32-bit words that hold ``channels`` bits."""
    return -(-int(channels) // WORD_BITS)


def pack_signs(negative: np.ndarray) -> np.ndarray:
    """Pack the last axis (``True``/1 = negative) into uint32 words, LSB first.

    Args:
        negative: array ``(..., C)`` of bools or 0/1 (1 means the value ``-1``).

    Returns:
        ``(..., words_for(C))`` uint32 with zero padding bits.
    """
    bits = np.asarray(negative).astype(bool)
    channels = bits.shape[-1]
    padded = np.zeros((*bits.shape[:-1], words_for(channels) * WORD_BITS), dtype=np.uint64)
    padded[..., :channels] = bits
    padded = padded.reshape(*bits.shape[:-1], -1, WORD_BITS)
    weights = np.left_shift(np.uint64(1), np.arange(WORD_BITS, dtype=np.uint64))
    return (padded * weights).sum(axis=-1).astype(np.uint32)


def unpack_words(words: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of :func:`pack_signs`: ``(..., words)`` words -> ``(..., channels)`` bools (True = -1)."""
    values = np.asarray(words).astype(np.int64) & 0xFFFFFFFF
    shifts = np.arange(WORD_BITS, dtype=np.int64)
    bits = (values[..., None] >> shifts) & 1
    return bits.reshape(*values.shape[:-1], -1)[..., :channels].astype(bool)


def unpack_lce_filter(filter_words: np.ndarray, channels_in: int) -> np.ndarray:
    """LCE's packed ``(O, KH, KW, words)`` int32 filter -> ``(O, KH, KW, C_in)`` signs ``+-1`` (int8)."""
    negative = unpack_words(filter_words, channels_in)
    return np.where(negative, -1, 1).astype(np.int8)


def activation_word_index(h: int, w: int, c: int, width: int, channels: int) -> tuple[int, int]:
    """Storage (word, bit) of element ``(h, w, c)`` of an activation ``(H, width, channels)``."""
    return (h * width + w) * words_for(channels) + c // WORD_BITS, c % WORD_BITS


def flat_storage_bit(index: np.ndarray | int, channels: int) -> np.ndarray | int:
    """Storage bit position of flattened (NHWC) element ``index`` when each pixel has ``channels``."""
    pixel, channel = np.divmod(index, channels)
    return pixel * words_for(channels) * WORD_BITS + channel


def pixel_group_entries(negative: np.ndarray) -> np.ndarray:
    """Table entries of the pixel conv: ``(C, taps)`` bools (True = -1) -> ``(C, ceil(taps / 3))``
    int64 entries ``8 * g + p``, bit ``j`` of ``p`` set when tap ``3 g + j`` is -1."""
    negative = np.asarray(negative, dtype=bool)
    channels, taps = negative.shape
    groups = -(-taps // 3)
    padded = np.zeros((channels, groups * 3), dtype=np.int64)
    padded[:, :taps] = negative
    patterns = (padded.reshape(channels, groups, 3) << np.arange(3)).sum(axis=2)
    return 8 * np.arange(groups)[None, :] + patterns


def words_to_bytes(words: np.ndarray) -> bytes:
    """Little-endian bytes of a uint32 array (what the C initializer of ``uint32_t`` values means)."""
    return np.asarray(words, dtype="<u4").tobytes()
