"""The audio front end's configuration: what it computes, as one frozen, JSON-round-trippable record.

Defaults are for spoken words at 8 kHz on a Cortex-M0 with 4 KiB of RAM (the Free Spoken Digit
Dataset's recordings):

* ``frame_length`` 256 (32 ms, the FFT size) and ``hop`` 128 (16 ms): the usual 25-40 ms speech
  window at half overlap; 256 samples is the smallest power of two that spans a pitch period of
  low voices (up to ~12 ms) twice, and its sample history is 512 B of RAM.
* ``clip_samples`` 8000 (1 s, which holds 99.3 % of FSDD's recordings): 61 frames.
* ``channels`` 20 mel bands between ``lower_hz`` 60 and ``upper_hz`` 3800: at 31.25 Hz per FFT
  bin the lowest band (60-200 Hz) still gets 4 bins; 60 Hz leaves DC and the Hann window's DC
  leakage (bins 0 and 1) out of every band; 3800 Hz stays below the 4 kHz Nyquist edge, where
  the recordings' anti-alias filter rolls off. 61 x 20 = 1,220 feature bytes per clip.
* ``log_scale`` 6 steps per octave of band energy (0.50 dB per step) and ``log_offset`` 6: the
  255 steps span log2 energies 1 to 43.5, i.e. everything a 16-bit input can produce (a
  full-scale square wave reaches 42.7, 16-bit quantisation noise about 4); FSDD's speech frames
  lie between about 9 and 40.
* ``normalize`` ``"max"``: after the clip's last frame every non-zero feature is raised by
  ``255 - m`` (``m`` the clip's largest feature), so a clip's loudest band is 255 whatever the
  recording level (FSDD's six speakers differ by 24 dB in median peak level); zeros (energy
  at or below the floor, digital silence) stay 0. ``"none"`` keeps the absolute scale.

:func:`FrontendConfig.from_json` reads the ``"frontend"`` object of a dataset spec; missing keys
take the defaults, anything else that is not exactly valid is refused with one line naming the
key and the value.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from pipeline.errors import InputError
from pipeline.frontend.tables import check_bands

__all__ = ["NORMALIZE_MODES", "MIN_FRAME_LENGTH", "MAX_FRAME_LENGTH", "MAX_CLIP_SAMPLES", "FrontendConfig"]

NORMALIZE_MODES = ("none", "max")
MIN_FRAME_LENGTH = 16
MAX_FRAME_LENGTH = 1024
MAX_CLIP_SAMPLES = 1 << 24
_MAX_FRAMES = 65535
_MAX_CHANNELS = 128
_MAX_LOG_SCALE = 64


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    try:
        return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    except OverflowError:  # an integer too large for a float (a hostile JSON's 10**400)
        return False


@dataclass(frozen=True)
class FrontendConfig:
    """What the integer log-mel front end computes (see :mod:`pipeline.frontend` for the algorithm).

    Attributes:
        sample_rate: samples per second of the input (Hz).
        clip_samples: samples per clip (the features cover one clip).
        frame_length: samples per frame, a power of two from 16 to 1024 (the FFT size).
        hop: samples between frame starts, 1..frame_length.
        channels: mel bands (1..128).
        lower_hz: lower edge of the first mel band (Hz, >= 0).
        upper_hz: upper edge of the last mel band (Hz, <= sample_rate / 2).
        log_scale: output steps per octave of band energy (1..64; 6 is 0.50 dB per step).
        log_offset: subtracted from ``round(log_scale * log2(energy))`` before clamping to 0..255.
        normalize: ``"none"`` or ``"max"`` (raise the clip's non-zero features so its largest is 255).

    Raises:
        InputError: on construction, any value out of range (one line naming the key and value).
    """

    sample_rate: int = 8000
    clip_samples: int = 8000
    frame_length: int = 256
    hop: int = 128
    channels: int = 20
    lower_hz: float = 60
    upper_hz: float = 3800
    log_scale: int = 6
    log_offset: int = 6
    normalize: str = "max"

    def __post_init__(self) -> None:
        self._check()
        # One spelling per value: 60 and 60.0 Hz give the same canonical JSON and sha256.
        object.__setattr__(self, "lower_hz", float(self.lower_hz))
        object.__setattr__(self, "upper_hz", float(self.upper_hz))
        check_bands(self)

    @property
    def frames(self) -> int:
        """Frames per clip: ``1 + (clip_samples - frame_length) // hop``."""
        return 1 + (self.clip_samples - self.frame_length) // self.hop

    @property
    def bins(self) -> int:
        """Frequency bins of the real FFT that can feed a band: ``frame_length // 2 + 1``."""
        return self.frame_length // 2 + 1

    @property
    def feature_shape(self) -> tuple[int, int]:
        """``(frames, channels)``: one clip's features."""
        return (self.frames, self.channels)

    def to_json(self) -> dict[str, Any]:
        """Every key with its value (JSON-ready); :meth:`from_json` reads it back to an equal config."""
        return asdict(self)

    def canonical_json(self) -> str:
        """The config as compact JSON with sorted keys: what :meth:`sha256` hashes and banners quote."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        """Hex sha256 of :meth:`canonical_json` (names the config in generated files and reports)."""
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()

    @classmethod
    def from_json(cls, data: Any) -> FrontendConfig:
        """Read a config from a JSON object (a dataset spec's ``"frontend"``).

        Args:
            data: a dict; missing keys take the defaults.

        Returns:
            The config.

        Raises:
            InputError: not an object, an unknown key, a value of the wrong type or out of range
                (one line naming the key and the value).
        """
        if not isinstance(data, dict):
            raise InputError(f"frontend: expected a JSON object of settings, got {type(data).__name__}")
        known = {field.name for field in fields(cls)}
        for key in data:
            if key not in known:
                raise InputError(f"frontend: unknown key {key!r} (valid keys: {', '.join(sorted(known))})")
        return cls(**data)

    def _check(self) -> None:
        """Refuse values out of range, naming the first bad key (types first, then ranges, then relations)."""
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "normalize":
                if value not in NORMALIZE_MODES:
                    raise InputError(f"frontend: normalize must be one of {', '.join(NORMALIZE_MODES)}, got {value!r}")
            elif field.name in ("lower_hz", "upper_hz"):
                if not _is_number(value):
                    raise InputError(f"frontend: {field.name} must be a finite number, got {value!r}")
            elif not _is_int(value):
                raise InputError(f"frontend: {field.name} must be an integer, got {value!r}")
        n = self.frame_length
        if not 1 <= self.sample_rate <= 384_000:
            raise InputError(f"frontend: sample_rate must be 1..384000 Hz, got {self.sample_rate}")
        if not (MIN_FRAME_LENGTH <= n <= MAX_FRAME_LENGTH and n & (n - 1) == 0):
            raise InputError(
                f"frontend: frame_length must be a power of two from {MIN_FRAME_LENGTH} to {MAX_FRAME_LENGTH} "
                f"(the FFT size), got {n}"
            )
        if not 1 <= self.hop <= n:
            raise InputError(f"frontend: hop must be 1..frame_length ({n}), got {self.hop}")
        if not n <= self.clip_samples <= MAX_CLIP_SAMPLES:
            raise InputError(f"frontend: clip_samples must be frame_length ({n}) to {MAX_CLIP_SAMPLES}, got {self.clip_samples}")
        if self.frames > _MAX_FRAMES:
            raise InputError(f"frontend: {self.frames} frames per clip is more than {_MAX_FRAMES}; raise hop")
        if not 1 <= self.channels <= _MAX_CHANNELS:
            raise InputError(f"frontend: channels must be 1..{_MAX_CHANNELS}, got {self.channels}")
        nyquist = self.sample_rate / 2
        if not 0 <= self.lower_hz < self.upper_hz:
            raise InputError(f"frontend: lower_hz must be >= 0 and below upper_hz ({self.upper_hz}), got {self.lower_hz}")
        if self.upper_hz > nyquist:
            raise InputError(f"frontend: upper_hz must be at most sample_rate / 2 ({nyquist:g} Hz), got {self.upper_hz}")
        if not 1 <= self.log_scale <= _MAX_LOG_SCALE:
            raise InputError(f"frontend: log_scale must be 1..{_MAX_LOG_SCALE} steps per octave, got {self.log_scale}")
        if not -(1 << 12) <= self.log_offset <= 1 << 12:
            raise InputError(f"frontend: log_offset must be -4096..4096, got {self.log_offset}")
