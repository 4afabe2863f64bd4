"""The integer log-mel front end in NumPy: int16 clips in, uint8 features out, bit for bit what the C computes.

Every step is integer arithmetic on int64 arrays whose values stay inside the int32 (or
uint32) range the C uses; ``>>`` is an arithmetic shift, i.e. floor division by a power of two,
also for negative values (C: the ``asr`` helper). The steps, per frame of ``N = frame_length``
samples ``x[n]`` (frame ``f`` is ``clip[f * hop : f * hop + N]``):

1. Window: ``v[n] = x[n] * w[n]`` with the Q15 Hann window ``w`` (0..32767,
   :func:`~pipeline.frontend.tables.hann_q15`); ``|v| < 2**30``.
2. Block normalisation: ``m = max |v[n]|``; ``s`` is the largest shift in 0..30 with
   ``m << s <= 2**30`` (30 for silence); ``y[n] = (v[n] * 2**s + 2**15) >> 16`` (round half up),
   so ``|y| <= 16384``. Normalising after the window keeps a frame's precision when its loud
   samples sit where the window is small (an onset at the frame's edge).
3. Complex FFT of ``M = N / 2`` points on ``z[m] = y[2m] + i y[2m + 1]``: bit-reversed order,
   then ``log2 M`` radix-2 stages; a butterfly with twiddle ``c - i s`` (Q15) computes
   ``p = b * (c - i s)`` exactly (``b_re c + b_im s``, ``b_im c - b_re s``) and writes
   ``a' = (a * 2**15 + p + 2**15) >> 16`` and ``b' = (a * 2**15 - p + 2**15) >> 16``: every stage
   halves, so magnitudes never grow past ``16384 * sqrt(2) + 8`` (int16 storage in C) and every
   sum stays below ``2**31`` even for a full-scale square wave.
4. Real spectrum, only for the bins that feed a band: with ``A = Z[k]``, ``B = conj(Z[M - k])``,
   ``S = A + B``, ``D = A - B``, ``t = -i (c - i s) D``, ``X = (S * 2**14 + (t >> 1) + 2**14)
   >> 15`` per component (``X = (S - i W D) / 2``, the usual split, ``t`` halved first so the
   sum fits int32). ``|X| <= 32781``, so the power ``P = X_re**2 + X_im**2 < 2**31``.
5. Mel bands: ``acc[band] = sum(P[k] * weight[band, k])`` with the sparse integer weights
   (each bin feeds at most two bands, its two weights add up to 255). C splits ``P`` into its
   high and low 16 bits and keeps two uint32 sums per band (no 64-bit multiply), joining them
   once per band as a uint64: the same integer.
6. Log: ``e = floor(log2 acc)``, ``i`` = the 6 bits after the leading one (zeros shifted in
   below bit 0), ``L = 256 e + log_table[i]`` (log2 in 1/256 octave). The scaling of steps 1-5
   is undone exactly: ``acc`` is about ``E * 2**(2s - 2 log2 N + 8)`` where ``E`` is the band
   energy of the float DFT of the raw Hann-windowed frame, so ``L -= 256 (2s - 2 log2 N + 8)``.
7. Output: ``v = (L * log_scale + 128) >> 8`` (round half up), ``feature = clamp(v -
   log_offset, 0, 255)``; a band with ``acc == 0`` gives 0.
8. With ``normalize == "max"``, once the clip's last frame is done every non-zero feature of
   the clip is raised by ``255 - m``, ``m`` the clip's largest feature (an all-zero clip stays 0).

The tables are :mod:`pipeline.frontend.tables`. Bounds are checked on the int64 intermediates
(an overflow of the int32 the C uses would be a bug, and raises instead of passing silently).
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputError
from pipeline.frontend.config import FrontendConfig
from pipeline.frontend.tables import (
    LOG_FRAC_BITS,
    LOG_TABLE_BITS,
    FrontendTables,
    bit_reverse,
    cos_q15,
    frontend_tables,
    hann_q15,
    sin_q15,
)

__all__ = ["features", "frame_shifts", "BATCH_CLIPS"]

BATCH_CLIPS = 128  # clips per vectorised batch (about 100 MB of int64 intermediates at the defaults)
_INT32 = 2**31


def _check_clips(clips: np.ndarray, config: FrontendConfig) -> np.ndarray:
    if not isinstance(clips, np.ndarray):
        raise InputError(f"front end: clips must be a NumPy array, got {type(clips).__name__}")
    if clips.dtype != np.int16:
        raise InputError(f"front end: clips must be int16 PCM, got {clips.dtype}")
    if clips.ndim != 2 or clips.shape[1] != config.clip_samples:
        raise InputError(
            f"front end: clips must have shape (N, {config.clip_samples}) (clip_samples), got {tuple(clips.shape)}; "
            "cut or pad them with pipeline.wav.fit_clip"
        )
    return clips


def _guard(values: np.ndarray, limit: int, step: str) -> None:
    if values.size and int(np.abs(values).max()) >= limit:
        raise RuntimeError(f"front end: {step} left the int32 range (a bug in the fixed-point design)")


def _framed(clips: np.ndarray, config: FrontendConfig) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(clips, config.frame_length, axis=1)
    return windows[:, :: config.hop][:, : config.frames].astype(np.int64)


def frame_shifts(windowed: np.ndarray) -> np.ndarray:
    """Step 2: the block-normalising shift of each frame (int64, 0..30) from its windowed samples ``(..., N)``."""
    peak = np.abs(windowed).max(axis=-1)
    shift = np.zeros(peak.shape, dtype=np.int64)
    for candidate in range(1, 31):
        shift = np.where((peak << candidate) <= 1 << 30, candidate, shift)
    return shift


def _fft(re: np.ndarray, im: np.ndarray, sine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 3 on ``(..., M)`` arrays in bit-reversed order; returns the spectrum in natural order."""
    points = re.shape[-1]
    n = 2 * points
    size = 2
    while size <= points:
        half = size // 2
        k = np.arange(half, dtype=np.int64) * (n // size)
        c, s = cos_q15(sine, k), sin_q15(sine, k)
        shape = (*re.shape[:-1], points // size, size)
        r, i = re.reshape(shape), im.reshape(shape)
        a_re, a_im, b_re, b_im = r[..., :half], i[..., :half], r[..., half:], i[..., half:]
        p_re = b_re * c + b_im * s
        p_im = b_im * c - b_re * s
        sums = (a_re * 32768 + p_re, a_im * 32768 + p_im, a_re * 32768 - p_re, a_im * 32768 - p_im)
        for value in sums:
            _guard(value + 32768, _INT32, "an FFT butterfly")
        out_re = np.concatenate([(sums[0] + 32768) >> 16, (sums[2] + 32768) >> 16], axis=-1)
        out_im = np.concatenate([(sums[1] + 32768) >> 16, (sums[3] + 32768) >> 16], axis=-1)
        re, im = out_re.reshape(re.shape), out_im.reshape(im.shape)
        size *= 2
    return re, im


def _power(re: np.ndarray, im: np.ndarray, sine: np.ndarray, first: int, end: int) -> np.ndarray:
    """Step 4: ``|X[k]|**2`` for bins ``first..end-1`` from the half-size complex spectrum ``(..., M)``."""
    points = re.shape[-1]
    k = np.arange(first, end, dtype=np.int64)
    own, mirror = k % points, (points - k) % points
    a_re, a_im, m_re, m_im = re[..., own], im[..., own], re[..., mirror], im[..., mirror]
    s_re, s_im = a_re + m_re, a_im - m_im
    d_re, d_im = a_re - m_re, a_im + m_im
    c, s = cos_q15(sine, k), sin_q15(sine, k)
    t_re = c * d_im - s * d_re
    t_im = -(c * d_re + s * d_im)
    _guard(t_re, _INT32, "the real-spectrum split")
    _guard(t_im, _INT32, "the real-spectrum split")
    x_re = (s_re * 16384 + (t_re >> 1) + 16384) >> 15
    x_im = (s_im * 16384 + (t_im >> 1) + 16384) >> 15
    power = x_re * x_re + x_im * x_im
    _guard(power, _INT32, "the power spectrum")
    return power


def _bit_length(values: np.ndarray) -> np.ndarray:
    """``floor(log2 v)`` of positive int64 values (0 for 0), by binary search on shifts."""
    e = np.zeros(values.shape, dtype=np.int64)
    v = values.copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = v >= (1 << step)
        e += np.where(big, step, 0)
        v = np.where(big, v >> step, v)
    return e


def _log2_q8(acc: np.ndarray, log_table: np.ndarray) -> np.ndarray:
    """Step 6's ``L = 256 e + log_table[i]`` for ``acc > 0`` (values for ``acc == 0`` are meaningless)."""
    e = _bit_length(acc)
    bits = LOG_TABLE_BITS
    above = acc >> np.maximum(e - bits, 0)
    below = acc << np.maximum(bits - e, 0)
    index = np.where(e >= bits, above, below) - (1 << bits)
    return (e << LOG_FRAC_BITS) + log_table.astype(np.int64)[index]


def _batch(clips: np.ndarray, config: FrontendConfig, tab: FrontendTables, dense: np.ndarray) -> np.ndarray:
    n = config.frame_length
    windowed = _framed(clips, config) * hann_q15(tab.sine)
    shift = frame_shifts(windowed)
    y = ((windowed << shift[..., None]) + 32768) >> 16
    order = bit_reverse(n // 2)
    re, im = _fft(y[..., 0::2][..., order], y[..., 1::2][..., order], tab.sine)
    power = _power(re, im, tab.sine, tab.first_bin, tab.end_bin)
    acc = power @ dense
    log2n = n.bit_length() - 1
    level = _log2_q8(acc, tab.log_table) - ((2 * shift - 2 * log2n + 8) << LOG_FRAC_BITS)[..., None]
    value = ((level * config.log_scale + 128) >> LOG_FRAC_BITS) - config.log_offset
    out = np.clip(value, 0, 255)
    out[acc == 0] = 0
    return out.astype(np.uint8)


def _normalize_max(out: np.ndarray) -> np.ndarray:
    top = out.reshape(len(out), -1).max(axis=1).astype(np.int64)
    raised = out.astype(np.int64) + (255 - top)[:, None, None]
    return np.where(out > 0, raised, 0).astype(np.uint8)


def features(clips: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """Log-mel features of int16 clips, as the generated C computes them (bit for bit).

    Args:
        clips: int16 ``(N, clip_samples)`` PCM (pad or cut with :func:`pipeline.wav.fit_clip`).
        config: the front end's settings.

    Returns:
        uint8 ``(N, frames, channels)``.

    Raises:
        InputError: not an int16 array of shape ``(N, clip_samples)``.
    """
    clips = _check_clips(clips, config)
    tab = frontend_tables(config)
    dense = tab.band_weights(config.channels)[:, tab.first_bin :].T.copy()
    out = np.empty((len(clips), config.frames, config.channels), dtype=np.uint8)
    for start in range(0, len(clips), BATCH_CLIPS):
        out[start : start + BATCH_CLIPS] = _batch(clips[start : start + BATCH_CLIPS], config, tab, dense)
    if config.normalize == "max" and len(out):
        out = _normalize_max(out)
    return out
