"""The options of an ``audio`` dataset spec, read strictly into one record before any file is.

::

    {"audio": "fsdd-recordings.tar.gz", "labels": "{label}_{speaker}_{index}.wav",
     "classes": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
     "split": {"test_index_below": 5}, "sample_rate": 8000}

* ``sample_rate`` (required): the clips' rate in Hz, an integer (the front end's ``sample_rate``).
* ``resample`` (default ``false``): a file at another rate is refused; ``true`` converts it
  (:func:`pipeline.wav.read_wav`).
* ``clip_seconds`` (default 1.0): every clip is padded with zeros at the end or cut to
  ``clip_seconds * sample_rate`` samples, which must be a whole number: that is the front end's
  ``clip_samples``. The top-level ``sample_rate`` and ``clip_seconds`` decide the clip; the
  ``frontend`` object may repeat ``sample_rate`` and ``clip_samples`` (a pasted
  :meth:`~pipeline.frontend.FrontendConfig.to_json`) only with the same values.
* ``frontend`` (default: :class:`~pipeline.frontend.FrontendConfig`'s defaults): the front end's
  other settings, strictly checked by :meth:`~pipeline.frontend.FrontendConfig.from_json`.
* ``labels`` (default ``"folders"``): a sub-folder per class, or a file-name pattern ending in
  ``.wav`` with ``{label}`` and optionally ``{speaker}`` and ``{index}``
  (:func:`pipeline.wav.label_fields`).
* ``classes`` (optional): the class names in label order (at least two, distinct); without it the
  distinct labels sorted, numerically when every label is a decimal integer.
* ``split``: needed when the tree has no ``train/`` and ``test/`` folders, refused when it has
  them; exactly one of ``{"test_fraction": F}`` (:mod:`pipeline.splits`' hash rule),
  ``{"test_index_below": N}`` (recordings numbered below N are the test set; needs ``{index}``),
  ``{"test_speakers": [...]}`` (these speakers are the test set; needs ``{speaker}``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.dataspec import check_keys
from pipeline.errors import InputError
from pipeline.frontend import FrontendConfig
from pipeline.splits import parse_split
from pipeline.wav import pattern_fields

__all__ = ["LABEL_FOLDERS", "SPLIT_RULES", "REQUIRED", "OPTIONAL", "AudioSplit", "AudioOptions", "parse_options"]

LABEL_FOLDERS = "folders"
SPLIT_RULES = ("test_fraction", "test_index_below", "test_speakers")
REQUIRED = ("sample_rate",)
OPTIONAL = ("labels", "classes", "split", "resample", "clip_seconds", "frontend")
_NEEDS = {"test_index_below": "index", "test_speakers": "speaker"}
_SPLIT_EXAMPLE = '{"test_fraction": 0.1}, {"test_index_below": 5} or {"test_speakers": ["theo"]}'


@dataclass(frozen=True)
class AudioSplit:
    """How a tree without ``train/`` and ``test/`` folders is split.

    Attributes:
        rule: one of :data:`SPLIT_RULES`.
        value: the fraction (float), the index bound (int) or the test speakers (sorted tuple).
    """

    rule: str
    value: float | int | tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        """JSON-ready form (the spec's ``split`` object), for cache keys and reports."""
        return {self.rule: list(self.value) if isinstance(self.value, tuple) else self.value}


@dataclass(frozen=True)
class AudioOptions:
    """An audio spec's options, checked (see the module doc).

    Attributes:
        labels: ``"folders"`` or a file-name pattern.
        fields: the pattern's fields (``("label", "speaker", "index")``); ``()`` for folders.
        classes: the spec's class names in label order, or ``None`` (derived from the files).
        split: the split rule, or ``None`` (the tree's own ``train/`` and ``test/``).
        resample: whether files at another rate are converted.
        frontend: the front end, its ``sample_rate`` and ``clip_samples`` those of the spec.
    """

    labels: str
    fields: tuple[str, ...]
    classes: tuple[str, ...] | None
    split: AudioSplit | None
    resample: bool
    frontend: FrontendConfig

    @property
    def sample_rate(self) -> int:
        """The clips' rate (Hz)."""
        return self.frontend.sample_rate

    @property
    def clip_samples(self) -> int:
        """Samples per clip after padding or cutting."""
        return self.frontend.clip_samples

    def describe(self) -> dict[str, Any]:
        """Everything that shapes the arrays, JSON-ready (a cache key's options)."""
        return {
            "labels": self.labels,
            "classes": None if self.classes is None else list(self.classes),
            "split": None if self.split is None else self.split.describe(),
            "resample": self.resample,
            "frontend": self.frontend.sha256(),
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _names(value: Any, where: str, what: str, minimum: int) -> tuple[str, ...]:
    """A JSON list of at least ``minimum`` distinct non-empty strings."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InputError(f"{where}: must be a list of {what} (non-empty strings), got {value!r}")
    if len(value) < minimum:
        raise InputError(f"{where}: needs at least {minimum} {what}, got {len(value)}")
    repeated = sorted({item for item in value if value.count(item) > 1})
    if repeated:
        raise InputError(f"{where}: {repeated[0]!r} appears twice")
    return tuple(value)


def _labels(value: Any, where: str) -> tuple[str, tuple[str, ...]]:
    """The ``labels`` option and its pattern's fields."""
    if value == LABEL_FOLDERS:
        return value, ()
    if not isinstance(value, str) or not value.lower().endswith(".wav") or "/" in value or "\\" in value:
        raise InputError(
            f'{where}: must be "folders" (a sub-folder per class) or a file-name pattern ending in .wav such as '
            f'"{{label}}_{{speaker}}_{{index}}.wav", got {value!r}'
        )
    try:
        return value, pattern_fields(value)
    except InputError as err:
        raise InputError(f"{where}: {err}") from None


def _split(value: Any, where: str, labels: str, fields: tuple[str, ...]) -> AudioSplit:
    """The ``split`` option, refused when the labels cannot support its rule."""
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: must be an object, one of {_SPLIT_EXAMPLE}; got {type(value).__name__}")
    check_keys(value, where, optional=SPLIT_RULES)
    if len(value) != 1:
        raise InputError(f"{where}: give exactly one rule, one of {_SPLIT_EXAMPLE}; got {len(value)}")
    ((rule, setting),) = value.items()
    if rule in _NEEDS and _NEEDS[rule] not in fields:
        raise InputError(
            f"{where}: {rule} needs {{{_NEEDS[rule]}}} in the labels pattern, and labels is {labels!r}; "
            'use {"test_fraction": 0.1} or a pattern with that field'
        )
    if rule == "test_fraction":
        return AudioSplit(rule, parse_split(dict(value), where).test_fraction)
    if rule == "test_index_below":
        if not _is_int(setting) or setting < 1:
            raise InputError(
                f"{where}: test_index_below must be an integer >= 1 (recordings below it are the test set), got {setting!r}"
            )
        return AudioSplit(rule, setting)
    return AudioSplit(rule, tuple(sorted(_names(setting, f"{where}: test_speakers", "speakers", 1))))


def _clip_samples(seconds: Any, sample_rate: int, where: str) -> int:
    """``clip_seconds * sample_rate``, refused unless a whole number of samples."""
    if not (_is_int(seconds) or isinstance(seconds, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"{where}: must be a positive number of seconds, got {seconds!r}")
    samples = seconds * sample_rate
    whole = round(samples)
    if abs(samples - whole) > 1e-9 * max(1.0, samples) or whole < 1:
        raise InputError(
            f"{where}: {seconds!r} s at {sample_rate} Hz is {samples:g} samples; give a length that is a whole number of samples"
        )
    return whole


def _frontend(value: Any, sample_rate: int, clip_samples: int, spec_where: str) -> FrontendConfig:
    """The front end: the spec's settings with the spec's sample rate and clip length."""
    if not isinstance(value, Mapping):
        raise InputError(f"{spec_where}: frontend: expected a JSON object of settings, got {type(value).__name__}")
    for key, own in (("sample_rate", sample_rate), ("clip_samples", clip_samples)):
        if key in value and value[key] != own:
            source = "sample_rate" if key == "sample_rate" else "clip_seconds * sample_rate"
            raise InputError(
                f"{spec_where}: frontend: {key} {value[key]!r} differs from the spec's {source} ({own}); "
                f"leave it out of frontend (the spec's {source} sets it)"
            )
    frame_length = value.get("frame_length", FrontendConfig.frame_length)
    if _is_int(frame_length) and clip_samples < frame_length:
        raise InputError(
            f"{spec_where}: clip_seconds gives {clip_samples} samples per clip, fewer than the front end's frame_length "
            f"({frame_length}); give a longer clip"
        )
    try:
        return FrontendConfig.from_json({**value, "sample_rate": sample_rate, "clip_samples": clip_samples})
    except InputError as err:
        raise InputError(f"{spec_where}: {err}") from None


def parse_options(options: Mapping[str, Any], where: str) -> AudioOptions:
    """Check an audio spec's options (key names already checked by :mod:`pipeline.dataspec`).

    Args:
        options: the spec's keys other than ``audio``.
        where: what messages name (the spec file, or the source for a bare ``--data``).

    Returns:
        The :class:`AudioOptions`.

    Raises:
        InputError: a missing ``sample_rate``, a value of the wrong type or out of range, a split
            rule the labels cannot support, a clip that is not a whole number of samples, a bad
            front end setting (one line naming the key).
    """
    check_keys(options, where, required=REQUIRED, optional=OPTIONAL)
    sample_rate = options["sample_rate"]
    if not _is_int(sample_rate) or not 1 <= sample_rate <= 384_000:
        raise InputError(f"{where}: sample_rate must be an integer number of Hz (1..384000), got {sample_rate!r}")
    resample = options.get("resample", False)
    if not isinstance(resample, bool):
        raise InputError(f"{where}: resample must be true or false, got {resample!r}")
    labels, fields = _labels(options.get("labels", LABEL_FOLDERS), f"{where}: labels")
    classes = _names(options["classes"], f"{where}: classes", "class names", 2) if "classes" in options else None
    split = _split(options["split"], f"{where}: split", labels, fields) if "split" in options else None
    clip_samples = _clip_samples(options.get("clip_seconds", 1.0), sample_rate, f"{where}: clip_seconds")
    frontend = _frontend(options.get("frontend", {}), sample_rate, clip_samples, where)
    return AudioOptions(labels, fields, classes, split, resample, frontend)
