"""Test inputs for the audio front end, and an independent float64 reference of what it approximates.

:func:`synthetic_clips` are the signals a fixed-point design must survive (silence, DC, full-scale
sines and square waves, clipping, white noise, single impulses, a short clip); :func:`fsdd_clips`
are the six FSDD recordings of ``tests/fixtures/fsdd`` (Free Spoken Digit Dataset, Zohar Jackson
and contributors, CC BY-SA 4.0). :func:`float_features` computes the same log-mel features with
NumPy's float FFT and ``log2``: a reference for closeness, never for bit-exactness.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.frontend import FrontendConfig, frontend_tables
from pipeline.frontend.tables import WEIGHT_ONE
from pipeline.wav import read_wav_file

__all__ = ["FIXTURES", "synthetic_clips", "fsdd_clips", "float_levels", "float_features", "tone"]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fsdd"


def tone(config: FrontendConfig, hz: float, amplitude: float, samples: int | None = None) -> np.ndarray:
    """A sine of ``hz`` at ``amplitude``, rounded and clipped to int16."""
    n = np.arange(config.clip_samples if samples is None else samples)
    wave = amplitude * np.sin(2 * np.pi * hz * n / config.sample_rate + 0.3)
    return np.clip(np.round(wave), -32768, 32767).astype(np.int16)


def synthetic_clips(config: FrontendConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Named int16 clips of ``clip_samples`` (except ``short``, which is shorter)."""
    rng = np.random.default_rng(seed)
    length = config.clip_samples
    n = np.arange(length)
    period = max(2, config.sample_rate // 500)
    square = np.where((n // (period // 2)) % 2 == 0, 32767, -32768).astype(np.int16)
    impulses = np.zeros(length, np.int16)
    impulses[[0, 1, config.frame_length // 2, length // 3, length - 1]] = [32767, -32768, 20000, -1, 1]
    clips = {
        "silence": np.zeros(length, np.int16),
        "dc": np.full(length, 1000, np.int16),
        "dc_full_scale": np.full(length, -32768, np.int16),
        "sine_full_scale": tone(config, 1000, 32767),
        "sine_quiet": tone(config, 440, 3),
        "clipped_sine": tone(config, 300, 60000),
        "square_full_scale": square,
        "square_nyquist": np.where(n % 2 == 0, 32767, -32768).astype(np.int16),
        "white_noise": rng.integers(-32768, 32768, length).astype(np.int16),
        "quiet_noise": np.round(rng.normal(0, 2, length)).astype(np.int16),
        "impulses": impulses,
        "single_impulse": np.eye(1, length, config.frame_length + 5, dtype=np.int16)[0] * 12345,
        "short": tone(config, 700, 8000, samples=length // 3),
    }
    return clips


def fsdd_clips() -> dict[str, np.ndarray]:
    """The fixture recordings (8 kHz), by file name."""
    return {path.name: read_wav_file(path, sample_rate=8000) for path in sorted(FIXTURES.glob("*.wav"))}


def float_levels(clips: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """``log_scale * log2(E)`` with float64 (``-inf`` for E = 0): the unrounded, unclamped feature.

    ``E`` is the band energy of the Hann-windowed frame's DFT with the integer weights divided by
    256 (their sum per bin is 255), exactly what the integer pipeline's ``acc`` estimates.
    """
    tab = frontend_tables(config)
    dense = tab.band_weights(config.channels).astype(np.float64) / (WEIGHT_ONE + 1)
    n = config.frame_length
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    frames = np.lib.stride_tricks.sliding_window_view(clips.astype(np.float64), n, axis=1)[:, :: config.hop][:, : config.frames]
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    energy = power[..., : tab.end_bin] @ dense.T
    with np.errstate(divide="ignore"):
        return config.log_scale * np.log2(energy)


def float_features(clips: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """The features of :func:`float_levels` rounded and clamped like the integer ones (``normalize`` ignored)."""
    levels = float_levels(clips, config) - config.log_offset
    return np.clip(np.round(np.nan_to_num(levels, neginf=0.0)), 0, 255).astype(np.int64)
