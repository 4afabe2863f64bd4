"""WAV files and trees of them for the audio tests, written by the tests themselves (never the real FSDD).

:func:`wav_bytes` writes RIFF/WAVE bytes chunk by chunk (so a test can give any header: stereo,
8-bit, float, another rate, a truncated file). :func:`tone` makes a clip whose pitch says its
class and whose level says its speaker, with an id in its first sample, so a test can find which
file an example came from and a model can learn the classes in one epoch. Folders and tars are
written with :func:`image_trees.write_tree` and :func:`image_trees.write_tar`.
"""

from __future__ import annotations

import struct

import numpy as np

from pipeline.wav import EXTENSIBLE, PCM

__all__ = [
    "GUID_TAIL",
    "RATE",
    "chunk",
    "fmt_body",
    "wav_bytes",
    "tone",
    "tone_wav",
    "ident_of",
    "named_tree",
    "folder_tree",
    "PATTERN",
]

GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
RATE = 8000
PATTERN = "{label}_{speaker}_{index}.wav"
_LEVELS = {"ann": 3000, "bob": 9000, "cy": 20000, "dee": 14000}


def chunk(chunk_id: bytes, body: bytes, declared: int | None = None) -> bytes:
    """One RIFF chunk, padded to an even length."""
    size = len(body) if declared is None else declared
    return chunk_id + struct.pack("<I", size) + body + (b"\0" if len(body) % 2 else b"")


def fmt_body(tag: int = PCM, channels: int = 1, rate: int = RATE, bits: int = 16, sub: int | None = None) -> bytes:
    """A ``fmt `` chunk's body (``WAVE_FORMAT_EXTENSIBLE`` with sub-format ``sub`` for tag 0xFFFE)."""
    align = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if tag == EXTENSIBLE:
        guid = struct.pack("<H", PCM if sub is None else sub) + GUID_TAIL
        body += struct.pack("<HHI", 22, bits, 4) + guid
    return body


def wav_bytes(
    samples: np.ndarray | bytes, *, fmt: bytes | None = None, extra: tuple[bytes, ...] = (), data_first: bool = False
) -> bytes:
    """A WAV file: ``extra`` chunks, then ``fmt `` and ``data`` (or ``data`` first)."""
    payload = samples if isinstance(samples, bytes) else np.asarray(samples, dtype="<i2").tobytes()
    fmt_chunk = chunk(b"fmt ", fmt_body() if fmt is None else fmt)
    data_chunk = chunk(b"data", payload)
    parts = [*extra, data_chunk, fmt_chunk] if data_first else [*extra, fmt_chunk, data_chunk]
    body = b"WAVE" + b"".join(parts)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tone(hz: float, level: int, ident: int, samples: int, rate: int = RATE) -> np.ndarray:
    """int16 sine of ``hz`` at amplitude ``level``, ``samples`` long, its first sample ``ident``."""
    t = np.arange(samples) / rate
    clip = np.round(level * np.sin(2 * np.pi * hz * t + ident)).astype(np.int16)
    clip[0] = ident
    return clip


def tone_wav(cls: int, speaker: str, ident: int, rate: int = RATE) -> bytes:
    """The WAV of class ``cls`` (400 Hz apart) by ``speaker`` (a level), 0.25 to 1.4 s long (some cut, most padded)."""
    samples = (2000 + (ident * 977) % 9200) * rate // RATE
    return wav_bytes(tone(400.0 * (cls + 1), _LEVELS[speaker], ident, samples, rate), fmt=fmt_body(rate=rate))


def ident_of(clip: np.ndarray) -> int:
    """The id a :func:`tone` carries in its first sample."""
    return int(clip[0])


def named_tree(
    classes: tuple[str, ...] = ("1", "2", "10"),
    speakers: tuple[str, ...] = ("ann", "bob", "cy"),
    count: int = 3,
    top: str = "rec/",
    rate: int = RATE,
) -> dict[str, bytes]:
    """``{top}{label}_{speaker}_{index}.wav`` for every class, speaker and index below ``count`` (ids from 1)."""
    files = {}
    for c, cls in enumerate(classes):
        for speaker in speakers:
            for index in range(count):
                files[f"{top}{cls}_{speaker}_{index}.wav"] = tone_wav(c, speaker, len(files) + 1, rate)
    return files


def folder_tree(classes: tuple[str, ...] = ("yes", "no", "up"), per_split: tuple[int, int] | None = (4, 2)) -> dict[str, bytes]:
    """``train/CLASS/NN.wav`` and ``test/CLASS/NN.wav`` (``per_split`` clips each), or ``CLASS/NN.wav`` (6 each) for ``None``."""
    files: dict[str, bytes] = {}
    splits = (("train/", per_split[0]), ("test/", per_split[1])) if per_split else (("", 6),)
    for prefix, count in splits:
        for c, cls in enumerate(classes):
            for index in range(count):
                files[f"{prefix}{cls}/{index:02d}.wav"] = tone_wav(c, "bob", len(files) + 1)
    return files
