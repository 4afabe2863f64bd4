"""pipeline.frontend in Python: the config's strict JSON, the integer tables, and features that mean what they say.

Bit-exactness with the C is tests/test_frontend_c.py; here the integer features are checked
against an independent float64 computation (tests/frontend_signals.py) and against what a log-mel
front end must do: a tone peaks in its band, level moves every feature by the same number of
steps (and not at all with ``normalize: "max"``), silence is 0, nothing overflows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from frontend_signals import float_features, float_levels, fsdd_clips, synthetic_clips, tone

from pipeline.errors import InputError
from pipeline.frontend import FrontendConfig, features, frame_shifts, frontend_tables
from pipeline.frontend.compute import BATCH_CLIPS
from pipeline.frontend.tables import ACC_LIMIT, WEIGHT_ONE, hann_q15, mel
from pipeline.wav import fit_clip

DEFAULT = FrontendConfig()
RAW = FrontendConfig(normalize="none")


def test_defaults_and_json_round_trip() -> None:
    assert DEFAULT.frames == 61 and DEFAULT.feature_shape == (61, 20) and DEFAULT.bins == 129
    data = DEFAULT.to_json()
    assert set(data) == {
        "sample_rate", "clip_samples", "frame_length", "hop", "channels", "lower_hz", "upper_hz",
        "log_scale", "log_offset", "normalize",
    }  # fmt: skip
    assert FrontendConfig.from_json(json.loads(json.dumps(data))) == DEFAULT
    assert FrontendConfig.from_json({}) == DEFAULT
    custom = FrontendConfig.from_json({"frame_length": 512, "hop": 160, "channels": 32, "sample_rate": 16000, "upper_hz": 7600})
    assert custom.frames == 1 + (8000 - 512) // 160 and FrontendConfig.from_json(custom.to_json()) == custom
    # 60 and 60.0 Hz are one config: same canonical JSON, same sha256.
    assert FrontendConfig(lower_hz=60).sha256() == FrontendConfig(lower_hz=60.0).sha256() == DEFAULT.sha256()
    assert FrontendConfig(channels=21).sha256() != DEFAULT.sha256()
    with pytest.raises(AttributeError):
        DEFAULT.hop = 64  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "expected a JSON object of settings, got list"),
        ({"hops": 128}, "unknown key 'hops'"),
        ({"hop": "128"}, "hop must be an integer, got '128'"),
        ({"hop": 128.0}, "hop must be an integer, got 128.0"),
        ({"channels": True}, "channels must be an integer, got True"),
        ({"lower_hz": "60"}, "lower_hz must be a finite number, got '60'"),
        ({"upper_hz": float("nan")}, "upper_hz must be a finite number, got nan"),
        ({"normalize": "peak"}, "normalize must be one of none, max, got 'peak'"),
        ({"normalize": 1}, "normalize must be one of none, max, got 1"),
        ({"sample_rate": 0}, "sample_rate must be 1..384000 Hz, got 0"),
        ({"frame_length": 200}, "frame_length must be a power of two from 16 to 1024"),
        ({"frame_length": 2048}, "frame_length must be a power of two from 16 to 1024"),
        ({"hop": 0}, "hop must be 1..frame_length"),
        ({"hop": 257}, r"hop must be 1..frame_length \(256\), got 257"),
        ({"clip_samples": 255}, r"clip_samples must be frame_length \(256\)"),
        ({"clip_samples": 1 << 25}, "clip_samples must be frame_length"),
        ({"clip_samples": 1 << 24, "hop": 1}, "frames per clip is more than 65535; raise hop"),
        ({"channels": 0}, "channels must be 1..128, got 0"),
        ({"lower_hz": -1}, "lower_hz must be >= 0 and below upper_hz"),
        ({"lower_hz": 4000}, "lower_hz must be >= 0 and below upper_hz"),
        ({"upper_hz": 4001}, r"upper_hz must be at most sample_rate / 2 \(4000 Hz\), got 4001"),
        ({"log_scale": 0}, "log_scale must be 1..64 steps per octave, got 0"),
        ({"log_offset": 5000}, "log_offset must be -4096..4096, got 5000"),
        ({"channels": 128}, r"mel band 1 \(71-92 Hz\) gets no FFT bin at 31.25 Hz per bin"),
    ],
)
def test_from_json_refuses_in_one_line_naming_the_key(data: object, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        FrontendConfig.from_json(data)
    assert str(err.value).startswith("frontend: ") and "\n" not in str(err.value)


def test_a_band_too_wide_for_its_accumulator_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """No config of frame_length <= 1024 reaches ACC_LIMIT (the widest band found sums 65,249 of
    65,537 weight units: one band over 512 bins); the guard is tested with a lower limit."""
    import pipeline.frontend.tables as tables_module

    assert ACC_LIMIT == 65537
    FrontendConfig(frame_length=1024, channels=1, lower_hz=0, upper_hz=4000)
    monkeypatch.setattr(tables_module, "ACC_LIMIT", 20000)
    with pytest.raises(InputError, match="mel band 0 sums 60762 weight units, more than 20000; use more channels"):
        FrontendConfig(frame_length=1024, channels=1, lower_hz=0, upper_hz=4000)


def test_tables() -> None:
    tab = frontend_tables(DEFAULT)
    n = DEFAULT.frame_length
    assert tab.sine.dtype == np.int16 and len(tab.sine) == n // 4 + 1 and tab.sine[0] == 0 and tab.sine[-1] == 32767
    window = hann_q15(tab.sine)
    exact = 32767 * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))
    assert np.abs(window - exact).max() <= 1 and window[0] == 0 and window[n // 2] == 32767
    np.testing.assert_array_equal(window[1:], window[1:][::-1])  # symmetric
    # Every bin between the first and last point feeds two neighbouring bands with weights adding
    # up to 255 (one band at the edges); the bands' centres rise on the mel scale.
    dense = tab.band_weights(DEFAULT.channels)
    inner = slice(int(tab.segment_start[1]), int(tab.segment_start[-2]))
    assert (dense[:, inner].sum(axis=0) == WEIGHT_ONE).all()
    assert ((dense > 0).sum(axis=0) <= 2).all()
    assert (np.diff(np.argmax(dense, axis=1)) > 0).all()
    assert tab.first_bin == 2 and tab.end_bin == 122  # 62.5 Hz .. 3781 Hz at 31.25 Hz per bin
    assert tab.log_table[0] == 3 and tab.log_table[-1] == 255 and (np.diff(tab.log_table.astype(int)) > 0).all()
    for array in (tab.sine, tab.weights, tab.segment_start, tab.log_table):
        assert not array.flags.writeable


def test_features_refuse_what_is_not_int16_clips() -> None:
    with pytest.raises(InputError, match="clips must be int16 PCM, got float32"):
        features(np.zeros((2, 8000), np.float32), DEFAULT)
    with pytest.raises(InputError, match=r"clips must have shape \(N, 8000\) \(clip_samples\), got \(8000,\)"):
        features(np.zeros(8000, np.int16), DEFAULT)
    with pytest.raises(InputError, match=r"got \(1, 7999\)"):
        features(np.zeros((1, 7999), np.int16), DEFAULT)
    with pytest.raises(InputError, match="must be a NumPy array, got list"):
        features([[0] * 8000], DEFAULT)  # type: ignore[arg-type]


def near_peak(reference: np.ndarray, db: float = 50.0) -> np.ndarray:
    """Where the float reference is within ``db`` of its frame's loudest band and inside the 0..255 range.

    The 16-bit FFT (every stage halves) has a rounding floor about 60-65 dB below a frame's
    loudest band; below that the integer features sit on the floor instead of following the float
    ones (a pure tone's far sidelobes, DC's exact zeros). 0.50 dB per step at log_scale 6.
    """
    steps = db / (10 * np.log10(2) / 6)
    return (reference > 20) & (reference < 250) & (reference > reference.max(axis=-1, keepdims=True) - steps)


def test_synthetic_signals_stay_in_range_and_near_the_float_reference() -> None:
    clips = synthetic_clips(RAW)
    batch = np.stack([fit_clip(clip, RAW.clip_samples) for clip in clips.values()])
    got = features(batch, RAW)  # raises if any intermediate left the int32 range
    assert got.dtype == np.uint8 and got.shape == (len(clips), 61, 20)
    names = list(clips)
    row = {name: got[names.index(name)].astype(np.int64) for name in names}
    assert (row["silence"] == 0).all()
    # DC feeds no band (the Hann window leaks it into bins 0 and 1 only): what shows is the FFT's
    # rounding floor, over 70 dB below a sine of the same amplitude.
    assert row["dc"].max() <= tone_peak(1000) - 140
    assert row["dc_full_scale"].max() <= row["sine_full_scale"].max() - 140
    # Within 50 dB of each frame's loudest band, the integer features are within one step of float64.
    reference = float_levels(batch, RAW) - RAW.log_offset
    near = near_peak(reference)
    for name in names:
        index = names.index(name)
        close = np.abs(got[index][near[index]].astype(float) - reference[index][near[index]]) <= 1.0
        assert close.all(), f"{name}: {close.mean():.4f} of {close.size} within one step"
    assert near.sum() > 4000


def tone_peak(amplitude: float) -> int:
    """The largest feature of a 1 kHz tone of ``amplitude`` (no normalisation)."""
    return int(features(tone(RAW, 1000, amplitude)[None], RAW).max())


def test_fsdd_features_match_the_float_reference() -> None:
    clips = np.stack([fit_clip(clip, RAW.clip_samples) for clip in fsdd_clips().values()])
    got = features(clips, RAW).astype(np.int64)
    reference = float_features(clips, RAW)
    levels = float_levels(clips, RAW)
    # Bands within 40 dB of their frame's loudest band: the fixed point's rounding is far below.
    near = near_peak(levels - RAW.log_offset)
    diff = np.abs(got - reference)[near]
    assert diff.size > 2000 and (diff <= 1).all() and (diff == 0).mean() >= 0.9, np.bincount(diff)


def test_a_tone_peaks_in_its_band() -> None:
    """A tone at each band's centre frequency peaks in that band; tones between centres peak in a
    band whose triangle contains them."""
    points = np.linspace(mel(RAW.lower_hz), mel(RAW.upper_hz), RAW.channels + 2)
    centres = 700.0 * (10.0 ** (points / 2595.0) - 1.0)
    clips = np.stack([tone(RAW, hz, 8000) for hz in centres[1:-1]])
    peaks = np.argmax(features(clips, RAW)[:, 10:50].astype(np.int64).mean(axis=1), axis=1)
    np.testing.assert_array_equal(peaks, np.arange(RAW.channels))
    between = np.array([95.0, 333.0, 1000.0, 2222.0, 3700.0])
    peaks = np.argmax(
        features(np.stack([tone(RAW, hz, 8000) for hz in between]), RAW)[:, 10:50].astype(np.int64).mean(axis=1), axis=1
    )
    for hz, band in zip(between, peaks, strict=True):
        assert points[band] < mel(hz) < points[band + 2], f"{hz} Hz peaked in band {band}"


def test_level_shifts_features_by_a_constant_and_normalize_removes_it() -> None:
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 1, RAW.clip_samples)
    speechy = noise * (1 + np.sin(np.arange(RAW.clip_samples) / 400))  # an envelope, so frames differ
    clips = np.stack([np.round(speechy * amplitude).astype(np.int16) for amplitude in (250, 500, 1000, 2000)])
    raw = features(clips, RAW).astype(np.int64)
    # Twice the amplitude is four times the energy: two octaves, 2 * log_scale steps, in every band.
    steps = np.diff(raw, axis=0)
    assert np.abs(steps - 2 * RAW.log_scale).max() <= 1, np.unique(steps)
    assert np.abs(steps.mean(axis=(1, 2)) - 2 * RAW.log_scale).max() < 0.05
    assert (steps > 0).all()  # monotone in level
    normalized = features(clips, DEFAULT).astype(np.int64)
    assert np.abs(np.diff(normalized, axis=0)).max() <= 1
    assert (normalized.reshape(4, -1).max(axis=1) == 255).all()


def test_normalize_keeps_zeros_and_lifts_the_rest() -> None:
    clips = np.stack([fit_clip(clip, DEFAULT.clip_samples) for clip in fsdd_clips().values()])
    raw, normalized = features(clips, RAW), features(clips, DEFAULT)
    for before, after in zip(raw, normalized, strict=True):
        lift = 255 - int(before.max())
        np.testing.assert_array_equal(after, np.where(before > 0, before.astype(int) + lift, 0))
    assert (features(np.zeros((1, 8000), np.int16), DEFAULT) == 0).all()


def test_an_empty_batch_gives_no_features() -> None:
    for config in (DEFAULT, RAW):
        assert features(np.zeros((0, 8000), np.int16), config).shape == (0, 61, 20)


def test_batches_and_single_clips_agree() -> None:
    rng = np.random.default_rng(2)
    clips = rng.integers(-3000, 3000, (BATCH_CLIPS + 3, DEFAULT.clip_samples)).astype(np.int16)
    together = features(clips, DEFAULT)
    for index in (0, BATCH_CLIPS - 1, BATCH_CLIPS, BATCH_CLIPS + 2):
        np.testing.assert_array_equal(features(clips[index : index + 1], DEFAULT), together[index : index + 1])


def test_frame_shifts() -> None:
    windowed = np.array([[0, 0], [1, -1], [2, 0], [3, 0], [1 << 29, 3], [-(1 << 29) - 1, 0], [(1 << 30) - 1, 0], [-(1 << 30), 0]])
    np.testing.assert_array_equal(frame_shifts(windowed), [30, 30, 29, 28, 1, 0, 0, 0])


@pytest.mark.parametrize(
    "config",
    [
        FrontendConfig(frame_length=512, hop=160, channels=40, sample_rate=16000, upper_hz=7600, normalize="none"),
        FrontendConfig(frame_length=64, hop=64, channels=8, lower_hz=100, normalize="none"),
        FrontendConfig(frame_length=1024, hop=1000, clip_samples=16000, channels=64, upper_hz=4000, normalize="none"),
    ],
    ids=["16k-512", "64-no-overlap", "1024-to-nyquist"],
)
def test_other_configs_near_the_float_reference(config: FrontendConfig) -> None:
    clips = np.stack([fit_clip(c, config.clip_samples) for c in synthetic_clips(config).values()])
    got = features(clips, config).astype(np.int64)
    reference = float_levels(clips, config) - config.log_offset
    near = near_peak(reference)
    assert near.sum() > 3000 and (np.abs(got[near] - reference[near]) <= 1).all()
