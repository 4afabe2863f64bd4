"""Binary weights on float inputs (BinaryConnect layers), stored as sign bits and one scale per output.

A Larq layer with ``kernel_quantizer="ste_sign"`` and no input quantizer converts to a float
CONV_2D or FULLY_CONNECTED whose weights are all ``+-c`` (``c = 1`` for ``ste_sign``). Kept as
float32 they take 32 bits a weight; here they take one. The kernels compute ``input * weight``
with ``weight`` rebuilt as ``+c`` or ``-c`` from its bit, the very products and sums of the
float kernel: the results are those of the unpacked layer, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_gen.bnn.contract import pack_signs
from firmware_gen.bnn.kernel import CArray

__all__ = ["SignRows", "sign_rows", "float_weight_arrays"]


@dataclass(frozen=True)
class SignRows:
    """Weights ``(O, K)`` of ``+-scales[o]``.

    Attributes:
        signs: ``(O, words_for(K))`` uint32, LSB first, bit set = negative weight.
        scales: ``(O,)`` float32, the magnitude ``c`` of each row.
        row: ``K``, the weights of one output.
    """

    signs: np.ndarray
    scales: np.ndarray
    row: int


def sign_rows(weights: np.ndarray) -> SignRows | None:
    """The packed form of float weights whose every output row (axis 0) is ``+-c`` with one ``c > 0``.

    Args:
        weights: float32 weights, output channels first (any trailing shape, flattened per row).

    Returns:
        The :class:`SignRows`, or ``None`` when a row mixes magnitudes, holds a zero, or is not finite.
    """
    rows = np.asarray(weights, dtype=np.float32).reshape(len(weights), -1)
    if rows.size == 0 or not np.all(np.isfinite(rows)):
        return None
    scales = np.abs(rows[:, 0])
    if not np.all(scales > 0) or not np.array_equal(np.abs(rows), np.broadcast_to(scales[:, None], rows.shape)):
        return None
    return SignRows(pack_signs(rows < 0), scales.astype(np.float32), rows.shape[1])


def float_weight_arrays(ctx: Any, weights: np.ndarray, *, pack: bool = True) -> tuple[list[CArray], bool]:
    """The weight arrays of a float layer: ``lN_signs`` + ``lN_scales`` when ``pack`` and
    :func:`sign_rows` packs them (then ``True``), else ``lN_weights`` as float32 (then ``False``).
    The first array is the weights'. ``pack=False``: layouts whose output channel is not axis 0.
    """
    rows = sign_rows(weights) if pack else None
    if rows is None:
        return [CArray("float", f"{ctx.prefix}weights", np.asarray(weights, dtype=np.float32))], False
    return [CArray("uint32_t", f"{ctx.prefix}signs", rows.signs), CArray("float", f"{ctx.prefix}scales", rows.scales)], True
