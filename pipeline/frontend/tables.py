"""The front end's constant tables: computed once in float64, rounded to integers, then only read.

Both implementations take these integers as data: :func:`pipeline.frontend.features` indexes
them with NumPy, ``firmware_gen.frontend`` prints them as ``static const`` arrays, so the C has
no libm and no float. Four tables (sizes for the default config):

* ``sine`` (int16, ``frame_length / 4 + 1`` = 65): ``round(32767 * sin(2 pi k / N))``. A
  quarter wave gives every cosine and sine the FFT needs and the Hann window
  (:func:`cos_q15`, :func:`sin_q15`, :func:`hann_q15`).
* ``segment_start`` (``channels + 2`` bin indices): the mel scale (HTK, ``2595 log10(1 + f /
  700)``) puts ``channels + 2`` equally spaced points between ``lower_hz`` and ``upper_hz``; the
  bins from ``segment_start[s]`` up to ``segment_start[s + 1]`` lie between points ``s`` and
  ``s + 1``, on the rising slope of band ``s`` and the falling slope of band ``s - 1``.
* ``weights`` (uint8, one per bin from ``segment_start[0]`` to ``segment_start[-1]``): the
  rising slope's weight ``round(255 * t)`` (``t`` the bin's position between the two points);
  the falling band takes ``255 - weight``. Each bin feeds at most two bands.
* ``log_table`` (uint8, 64): ``round(256 * log2(1 + (i + 0.5) / 64))``, the fraction of
  ``log2`` in 1/256 octave for the 6 bits that follow a value's leading one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import InputError

if TYPE_CHECKING:
    from pipeline.frontend.config import FrontendConfig

__all__ = [
    "Q15",
    "WEIGHT_ONE",
    "LOG_FRAC_BITS",
    "LOG_TABLE_BITS",
    "ACC_LIMIT",
    "FrontendTables",
    "frontend_tables",
    "check_bands",
    "cos_q15",
    "sin_q15",
    "hann_q15",
    "bit_reverse",
    "mel",
]

Q15 = 32767  # 1.0 in the sine table (symmetric: -32767..32767 fits int16)
WEIGHT_ONE = 255  # a bin's two band weights add up to this
LOG_FRAC_BITS = 8  # log2 values carry 1/256 octave
LOG_TABLE_BITS = 6  # bits after the leading one that index log_table
# A band's weights may add up to at most this: its low accumulator (16-bit power parts times
# weights) must stay below 2**32 (65535 * ACC_LIMIT < 2**32).
ACC_LIMIT = (2**32 - 1) // 65535


def mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 * log10(1 + hz / 700)`` (float64)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


@dataclass(frozen=True)
class FrontendTables:
    """The integer tables of one config (read-only arrays; see the module docstring).

    Attributes:
        sine: int16 ``(frame_length // 4 + 1,)``.
        segment_start: int64 ``(channels + 2,)``, non-decreasing bin indices.
        weights: uint8 ``(segment_start[-1] - segment_start[0],)``.
        log_table: uint8 ``(2 ** LOG_TABLE_BITS,)``.
    """

    sine: np.ndarray
    segment_start: np.ndarray
    weights: np.ndarray
    log_table: np.ndarray

    @property
    def first_bin(self) -> int:
        """The lowest FFT bin that feeds a band."""
        return int(self.segment_start[0])

    @property
    def end_bin(self) -> int:
        """One past the highest FFT bin that feeds a band."""
        return int(self.segment_start[-1])

    def band_weights(self, channels: int) -> np.ndarray:
        """The dense ``(channels, end_bin)`` weight matrix the sparse tables stand for (tests, plots)."""
        dense = np.zeros((channels, self.end_bin), dtype=np.int64)
        for seg in range(channels + 1):
            for k in range(int(self.segment_start[seg]), int(self.segment_start[seg + 1])):
                w = int(self.weights[k - self.first_bin])
                if seg < channels:
                    dense[seg, k] += w
                if seg >= 1:
                    dense[seg - 1, k] += WEIGHT_ONE - w
        return dense


def _sine(n: int) -> np.ndarray:
    k = np.arange(n // 4 + 1, dtype=np.float64)
    return np.round(Q15 * np.sin(2.0 * np.pi * k / n)).astype(np.int16)


def cos_q15(sine: np.ndarray, k: np.ndarray | int) -> np.ndarray:
    """``cos(2 pi k / N)`` in Q15 (1.0 = 32767) for ``0 <= k <= N / 2``, from the quarter-wave table.

    ``k <= N/4``: ``sine[N/4 - k]``; above: ``-sine[k - N/4]``. C does the same two cases.
    """
    quarter = len(sine) - 1
    k = np.asarray(k, dtype=np.int64)
    return np.where(k <= quarter, sine[np.clip(quarter - k, 0, quarter)], -sine[np.clip(k - quarter, 0, quarter)]).astype(
        np.int64
    )


def sin_q15(sine: np.ndarray, k: np.ndarray | int) -> np.ndarray:
    """``sin(2 pi k / N)`` in Q15 for ``0 <= k <= N / 2``: ``sine[k]`` up to N/4, ``sine[N/2 - k]`` above."""
    quarter = len(sine) - 1
    k = np.asarray(k, dtype=np.int64)
    return np.where(k <= quarter, sine[np.clip(k, 0, quarter)], sine[np.clip(2 * quarter - k, 0, quarter)]).astype(np.int64)


def hann_q15(sine: np.ndarray) -> np.ndarray:
    """The periodic Hann window in Q15 (0..32767), derived exactly from the sine table.

    ``w[n] = (32767 - cos_q15(m) + 1) >> 1`` with ``m = min(n, N - n)``: the window is symmetric,
    and ``(1 - cos) / 2`` needs only the cosine. Returns int64 ``(N,)``.
    """
    n = 4 * (len(sine) - 1)
    m = np.arange(n, dtype=np.int64)
    m = np.minimum(m, n - m)
    return (Q15 - cos_q15(sine, m) + 1) >> 1


def bit_reverse(points: int) -> np.ndarray:
    """The bit-reversal permutation of ``range(points)`` (``points`` a power of two)."""
    bits = points.bit_length() - 1
    index = np.arange(points, dtype=np.int64)
    out = np.zeros(points, dtype=np.int64)
    for b in range(bits):
        out |= ((index >> b) & 1) << (bits - 1 - b)
    return out


def _mel_tables(config: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    n, channels = config.frame_length, config.channels
    points = np.linspace(mel(config.lower_hz), mel(config.upper_hz), channels + 2)
    bin_mel = mel(np.arange(n // 2 + 1, dtype=np.float64) * config.sample_rate / n)
    # Bin k lies in segment s when points[s] <= mel(k) < points[s + 1].
    segment_start = np.searchsorted(bin_mel, points, side="left").astype(np.int64)
    first, end = int(segment_start[0]), int(segment_start[-1])
    seg = np.searchsorted(points, bin_mel[first:end], side="right") - 1
    t = (bin_mel[first:end] - points[seg]) / (points[seg + 1] - points[seg])
    weights = np.clip(np.round(WEIGHT_ONE * t), 0, WEIGHT_ONE).astype(np.uint8)
    return segment_start, weights


def _log_table() -> np.ndarray:
    size = 1 << LOG_TABLE_BITS
    i = np.arange(size, dtype=np.float64)
    return np.round((1 << LOG_FRAC_BITS) * np.log2(1.0 + (i + 0.5) / size)).astype(np.uint8)


@lru_cache(maxsize=16)
def frontend_tables(config: FrontendConfig) -> FrontendTables:
    """The tables of ``config`` (cached; the arrays are read-only).

    Args:
        config: a valid config.

    Returns:
        The :class:`FrontendTables`.
    """
    segment_start, weights = _mel_tables(config)
    out = FrontendTables(sine=_sine(config.frame_length), segment_start=segment_start, weights=weights, log_table=_log_table())
    for array in (out.sine, out.segment_start, out.weights, out.log_table):
        array.setflags(write=False)
    return out


def check_bands(config: FrontendConfig) -> None:
    """Refuse a config whose mel bands the integer front end cannot compute.

    Raises:
        InputError: a band that no FFT bin feeds (too many channels for the frame length and
            range), or a band so wide that its 32-bit accumulator could overflow.
    """
    segment_start, weights = _mel_tables(config)
    first = int(segment_start[0])
    rise = np.zeros(config.channels + 1, dtype=np.int64)
    fall = np.zeros(config.channels + 1, dtype=np.int64)
    for seg in range(config.channels + 1):
        w = weights[int(segment_start[seg]) - first : int(segment_start[seg + 1]) - first].astype(np.int64)
        rise[seg], fall[seg] = w.sum(), (WEIGHT_ONE - w).sum()
    totals = rise[:-1] + fall[1:]
    spacing = config.sample_rate / config.frame_length
    for band, total in enumerate(totals):
        if total == 0:
            edges = np.linspace(mel(config.lower_hz), mel(config.upper_hz), config.channels + 2)[band : band + 3]
            lo, hi = (700.0 * (10.0 ** (edges[[0, 2]] / 2595.0) - 1.0)).tolist()
            raise InputError(
                f"frontend: mel band {band} ({lo:.0f}-{hi:.0f} Hz) gets no FFT bin at {spacing:g} Hz per bin; "
                "use fewer channels, a longer frame_length or a higher lower_hz"
            )
        if total > ACC_LIMIT:
            raise InputError(
                f"frontend: mel band {band} sums {total} weight units, more than {ACC_LIMIT}; use more channels "
                "or a shorter frame_length"
            )
