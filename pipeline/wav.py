"""WAV files as int16 samples: a strict reader for mono 16-bit PCM, labels from file names, clips of one length.

:func:`read_wav` parses RIFF/WAVE bytes itself (no ``wave`` module: it must refuse cleanly, name
the file, and accept ``WAVE_FORMAT_EXTENSIBLE``): chunks are walked in order, unknown ones
(``LIST``, ``fact``, ``cue``...) skipped, odd-sized chunks followed by their pad byte. Only PCM
(format 1, or format 0xFFFE with the PCM sub-format GUID), one channel and 16 bits per sample are
taken; everything else is one :class:`~pipeline.errors.InputError` line naming the file: not
RIFF/WAVE, no ``fmt `` or ``data`` chunk, a truncated chunk, compressed or float samples, two or
more channels, 8/24/32-bit samples, an empty clip, or a sample rate other than the expected one
(unless ``resample=True``: ``scipy.signal.resample_poly`` by the reduced ratio, then rounded
half to even and clipped back to int16, deterministic).

:func:`label_fields` reads ``{label}``, ``{speaker}`` and ``{index}`` from a file name by a
pattern such as FSDD's ``{label}_{speaker}_{index}.wav``; :func:`fit_clip` pads a clip with zeros
at the end or cuts it to the front end's ``clip_samples``.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.errors import InputError

__all__ = ["PCM", "EXTENSIBLE", "LabelFields", "read_wav", "read_wav_file", "label_fields", "pattern_fields", "fit_clip"]

PCM = 0x0001
EXTENSIBLE = 0xFFFE
_FLOAT = 0x0003
# KSDATAFORMAT_SUBTYPE_*: the format code in the first two bytes, then this fixed tail.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_FIELDS = {"label": r"(?P<label>.+?)", "speaker": r"(?P<speaker>.+?)", "index": r"(?P<index>\d+)"}


def _chunks(data: bytes, name: str) -> dict[bytes, tuple[int, int]]:
    """``fmt `` and ``data`` chunks as (offset, declared size), walking until both are found."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = 12
    while pos + 8 <= len(data) and not (b"fmt " in found and b"data" in found):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id in (b"fmt ", b"data") and chunk_id not in found:
            found[chunk_id] = (body, size)
        elif body + size > len(data):
            label = chunk_id.decode("latin-1").encode("unicode_escape").decode("ascii")
            raise InputError(f"{name}: truncated {label!r} chunk: it claims {size} bytes, the file has {len(data) - body} left")
        pos = body + size + (size & 1)
    return found


def _check_format(data: bytes, offset: int, size: int, name: str) -> tuple[int, int]:
    """Check the ``fmt `` chunk; returns (sample rate, bytes per sample)."""
    if size < 16 or offset + 16 > len(data):
        raise InputError(f"{name}: truncated fmt chunk ({min(size, len(data) - offset)} bytes, need 16)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, offset)
    if tag == EXTENSIBLE:
        if size < 40 or offset + 40 > len(data):
            raise InputError(f"{name}: truncated WAVE_FORMAT_EXTENSIBLE fmt chunk ({size} bytes, need 40)")
        guid = data[offset + 24 : offset + 40]
        if guid[2:] != _GUID_TAIL:
            raise InputError(f"{name}: WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID {guid.hex()}; only PCM is read")
        tag = struct.unpack_from("<H", guid)[0]
    if tag == _FLOAT:
        raise InputError(f"{name}: {bits}-bit float samples; only 16-bit integer PCM is read (convert the file)")
    if tag != PCM:
        raise InputError(f"{name}: compressed format (format tag 0x{tag:04x}); only PCM (tag 1) is read")
    if channels != 1:
        kind = "stereo" if channels == 2 else f"{channels} channels"
        raise InputError(f"{name}: {kind}; only mono is read (mix it down first)")
    if bits != 16:
        raise InputError(f"{name}: {bits}-bit samples; only 16-bit PCM is read")
    if block_align != 2:
        raise InputError(f"{name}: block align {block_align} for mono 16-bit PCM, expected 2 (a corrupt header)")
    if rate == 0:
        raise InputError(f"{name}: sample rate 0 Hz")
    return rate, 2


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    from scipy.signal import resample_poly

    gcd = math.gcd(rate, target)
    out = resample_poly(samples.astype(np.float64), target // gcd, rate // gcd)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def read_wav(data: bytes, name: str, *, sample_rate: int, resample: bool = False) -> np.ndarray:
    """Samples of a mono 16-bit PCM WAV file.

    Args:
        data: the file's bytes.
        name: the file's name, for messages.
        sample_rate: the rate the caller expects (Hz).
        resample: convert another rate to ``sample_rate`` instead of refusing it.

    Returns:
        int16 ``(samples,)`` at ``sample_rate``.

    Raises:
        InputError: anything but a non-empty mono 16-bit PCM file at ``sample_rate`` (or any rate
            with ``resample``), one line naming the file.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InputError(f"{name}: not a RIFF/WAVE file")
    chunks = _chunks(data, name)
    if b"fmt " not in chunks:
        raise InputError(f"{name}: no fmt chunk (not a complete WAV file)")
    if b"data" not in chunks:
        raise InputError(f"{name}: no data chunk (not a complete WAV file)")
    rate, width = _check_format(data, *chunks[b"fmt "], name)
    offset, size = chunks[b"data"]
    if offset + size > len(data):
        raise InputError(f"{name}: truncated data chunk: the header promises {size} bytes, the file has {len(data) - offset}")
    if size % width:
        raise InputError(f"{name}: data chunk of {size} bytes is not a whole number of 16-bit samples")
    if size == 0:
        raise InputError(f"{name}: empty clip (no samples)")
    samples = np.frombuffer(data, dtype="<i2", count=size // width, offset=offset).astype(np.int16)
    if rate != sample_rate:
        if not resample:
            raise InputError(f"{name}: sample rate {rate} Hz, expected {sample_rate} Hz (ask for resampling to convert it)")
        samples = _resample(samples, rate, sample_rate)
        if samples.size == 0:
            raise InputError(f"{name}: empty clip after resampling {rate} Hz to {sample_rate} Hz")
    return samples


def read_wav_file(path: str | Path, *, sample_rate: int, resample: bool = False) -> np.ndarray:
    """:func:`read_wav` of a file on disk (named by its path).

    Raises:
        InputError: see :func:`read_wav`; a file that cannot be read.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    return read_wav(data, str(path), sample_rate=sample_rate, resample=resample)


@dataclass(frozen=True)
class LabelFields:
    """What a file name says about its clip.

    Attributes:
        label: the class name as written (``"7"``).
        speaker: the speaker, or ``None`` when the pattern has no ``{speaker}``.
        index: the recording's number, or ``None`` when the pattern has no ``{index}``.
    """

    label: str
    speaker: str | None = None
    index: int | None = None


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^{}]*\})", pattern)
    seen: set[str] = set()
    regex = []
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            field = part[1:-1]
            if field not in _FIELDS:
                raise InputError(f"label pattern {pattern!r}: unknown field {part} (fields: {{label}}, {{speaker}}, {{index}})")
            if field in seen:
                raise InputError(f"label pattern {pattern!r}: {part} appears twice")
            seen.add(field)
            regex.append(_FIELDS[field])
        elif "{" in part or "}" in part:
            raise InputError(f"label pattern {pattern!r}: unbalanced braces")
        else:
            regex.append(re.escape(part))
    if "label" not in seen:
        raise InputError(f"label pattern {pattern!r}: needs a {{label}} field")
    return re.compile("".join(regex) + r"\Z", re.DOTALL)


def pattern_fields(pattern: str) -> tuple[str, ...]:
    """The fields a label pattern holds, in the order they appear (``("label", "speaker", "index")``).

    Raises:
        InputError: a bad pattern (an unknown or repeated field, unbalanced braces, no ``{label}``).
    """
    return tuple(_pattern_regex(pattern).groupindex)


def label_fields(pattern: str, filename: str) -> LabelFields:
    """Read a clip's label (and speaker, index) from its file name.

    Args:
        pattern: the names' layout, e.g. ``{label}_{speaker}_{index}.wav``; ``{label}`` is
            required, ``{speaker}`` and ``{index}`` (digits) optional; the rest is literal.
        filename: a file name or path (its last component is matched).

    Returns:
        The :class:`LabelFields`.

    Raises:
        InputError: a bad pattern, or a name that does not match it (naming both).
    """
    name = PurePosixPath(str(filename).replace("\\", "/")).name
    match = _pattern_regex(pattern).match(name)
    if match is None:
        raise InputError(f"{filename}: file name does not match the label pattern {pattern!r}")
    fields = match.groupdict()
    index = fields.get("index")
    return LabelFields(label=fields["label"], speaker=fields.get("speaker"), index=None if index is None else int(index))


def fit_clip(samples: np.ndarray, clip_samples: int) -> np.ndarray:
    """A clip of exactly ``clip_samples``: zeros appended, or the end cut.

    Args:
        samples: int16 ``(n,)``.
        clip_samples: the length wanted (>= 1).

    Returns:
        int16 ``(clip_samples,)`` (a new array).

    Raises:
        InputError: samples that are not 1-D int16, or ``clip_samples < 1``.
    """
    samples = np.asarray(samples)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise InputError(f"fit_clip: expected 1-D int16 samples, got {samples.dtype} of shape {samples.shape}")
    if isinstance(clip_samples, bool) or not isinstance(clip_samples, int) or clip_samples < 1:
        raise InputError(f"fit_clip: clip_samples must be a positive integer, got {clip_samples!r}")
    out = np.zeros(clip_samples, dtype=np.int16)
    out[: min(clip_samples, len(samples))] = samples[:clip_samples]
    return out
