"""What the resolution of an integer layer hands to its templates and report, and the helpers every
layer kind shares (pool and convolution geometry for the templates, the C type of thresholds).

:mod:`firmware_gen.bnn.binary` (binary convs, dense layers, bit max-pools) and
:mod:`firmware_gen.bnn.pixel` (the pixel conv) fill a :class:`LayerCode` per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firmware_gen.bnn.ir import Threshold, Window
from firmware_gen.bnn.kernel import CArray

__all__ = ["LayerCode", "pool_context", "conv_context", "threshold_array", "needs_int8", "INT16"]

INT16 = (-(2**15), 2**15 - 1)


@dataclass
class LayerCode:
    """Everything the templates and the report need for one layer.

    ``background`` is the layer's output pixel (``words`` uint32) when its whole input is the
    background (pixels 0 for the pixel conv, the previous background for the others), or ``None``:
    the next layer may test its windows against it (an exact shortcut, whatever the input).
    """

    template: str
    context: dict[str, Any]
    arrays: list[CArray]
    weight_bytes: int
    threshold_bytes: int
    out_words: int
    report: dict[str, Any] = field(default_factory=dict)
    inner_template: str | None = None
    inner_arrays: list[CArray] = field(default_factory=list)
    background: np.ndarray | None = None


def pool_context(pool: Window | None) -> dict[str, int]:
    """Template variables of a fused max-pool (a 1x1 window when there is none)."""
    if pool is None:
        return {
            "pool_h": 1,
            "pool_w": 1,
            "pool_stride_h": 1,
            "pool_stride_w": 1,
            "pool_pad_top": 0,
            "pool_pad_left": 0,
            "pool_taps": 1,
        }
    return {
        "pool_h": pool.kh,
        "pool_w": pool.kw,
        "pool_stride_h": pool.sh,
        "pool_stride_w": pool.sw,
        "pool_pad_top": pool.pad_top,
        "pool_pad_left": pool.pad_left,
        "pool_taps": pool.kh * pool.kw,
    }


def conv_context(conv: Window) -> dict[str, int]:
    """Template variables of a convolution window."""
    return {
        "kernel_h": conv.kh,
        "kernel_w": conv.kw,
        "stride_h": conv.sh,
        "stride_w": conv.sw,
        "pad_top": conv.pad_top,
        "pad_left": conv.pad_left,
        "in_h": conv.in_h,
        "in_w": conv.in_w,
        "conv_h": conv.out_h,
        "conv_w": conv.out_w,
        "dil_h": conv.dh,
        "dil_w": conv.dw,
    }


def needs_int8(ints: np.ndarray) -> bool:
    """True when integer weights are not all +-1 (8-bit ones, or a 0 of a ternary row): the
    int8_t forms, since the +-1 table and XNOR forms have no 0 and no magnitude."""
    return not bool(np.all(np.abs(ints) == 1))


def threshold_array(prefix: str, epilogue: Threshold) -> CArray:
    """The thresholds of a bit-writing layer: ``int16_t`` when every sum and threshold fits, else ``int32_t``."""
    t = epilogue.thresholds
    fits = INT16[0] <= min(epilogue.s_min, int(t.min())) and max(epilogue.s_max + 1, int(t.max())) <= INT16[1]
    return CArray("int16_t" if fits else "int32_t", f"{prefix}thresholds", t.astype(np.int64))
