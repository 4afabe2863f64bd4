"""The contract between the bare-metal harness (C, in QEMU) and the host (Python).

One place states what both sides must agree on:

* the SysTick clock QEMU models on each machine, hence the instruction count of one tick;
* the calibration loop the harness times on every run (2 instructions per iteration);
* the QEMU command line (the generated Makefile renders the same flags);
* the binary results file both harnesses write (little-endian 32-bit words): the bare-metal
  one under QEMU (times in SysTick ticks) and the host one (``bnn/host_harness.c.j2``, times
  in nanoseconds), decoded by one :func:`parse_results`;
* for a firmware with the audio front end, the clips file the clip harness reads
  (:func:`encode_clips`) and the results it writes: format version :data:`CLIP_FORMAT_VERSION`
  (the image harnesses write :data:`FORMAT_VERSION`), whose header adds the feature shape and
  whose records split the time into the front end (every push and the final padding) and the
  network, count the pushes and carry the clip's features; :func:`parse_results` reads both.

Instruction counting: with ``-icount shift=0`` QEMU advances virtual time by exactly 1 ns per
guest instruction, and SysTick (clock source = core clock) ticks at the machine's modelled
core clock. One tick is therefore ``1e9 / systick_hz`` instructions: 62.5 on microbit
(16 MHz), 40 on mps2-an385/an386/an500 (25 MHz), 50 on mps2-an505 (20 MHz), 31.25 on
mps3-an547 (32 MHz). These frequencies were measured with the calibration loop under QEMU 7.2.
QEMU counts instructions, not the cycles of a real part (no wait states, no multi-cycle loads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import CheckError, InputError

__all__ = [
    "SYSTICK_HZ",
    "IMAGES_NAME",
    "RESULTS_NAME",
    "HOST_CLOCK_HZ",
    "SCORE_KINDS",
    "MAGIC_HEADER",
    "MAGIC_TRAILER",
    "FORMAT_VERSION",
    "CALIB_SHORT",
    "CALIB_LONG",
    "CLIPS_NAME",
    "CLIPS_MAGIC",
    "CLIP_FORMAT_VERSION",
    "CLIP_CHUNK_MAX",
    "CLIP_MODES",
    "HarnessResults",
    "instructions_per_tick",
    "calibration_tolerance",
    "qemu_flags",
    "parse_results",
    "encode_clips",
]

# SysTick (core clock) frequency QEMU 7.2 models on each machine (measured, see module doc).
SYSTICK_HZ: dict[str, int] = {
    "microbit": 16_000_000,
    "mps2-an385": 25_000_000,
    "mps2-an386": 25_000_000,
    "mps2-an500": 25_000_000,
    "mps2-an505": 20_000_000,
    "mps3-an547": 32_000_000,
}

IMAGES_NAME = "images.bin"
RESULTS_NAME = "results.bin"
MAGIC_HEADER = 0x514E4E42  # "BNNQ" read as a little-endian word
MAGIC_TRAILER = 0x454E4E42  # "BNNE"
FORMAT_VERSION = 2
# The host harness times with clock_gettime: its "ticks" are nanoseconds.
HOST_CLOCK_HZ = 1_000_000_000
# Header word 5: how the score words of a record are typed (bnn_model.h's BNN_SCORE_IS_FLOAT).
SCORE_KINDS: dict[int, type] = {0: np.int32, 1: np.float32}
# Calibration loops: the difference between them is exactly 2 * (LONG - SHORT) instructions.
CALIB_SHORT = 1_000
CALIB_LONG = 1_001_000

# header: magic, version, clock_hz, n_images, n_classes, score kind, input bytes per image,
#         calibration iterations (short, long), their ticks (short, long), timer overhead ticks
# record: class, ticks, scores[n_classes]
# trailer: magic, peak stack bytes below bnn_predict's call, bytes of stack painted
_HEADER_WORDS = 12
_TRAILER_WORDS = 3

# The clip harness (a firmware with the audio front end).
# clips file: magic, version, n_clips, mode, n_chunk_sizes, chunk sizes (cycled, restarted for
#             every clip); per clip: n_samples, then n_samples int16 samples (zero-padded to a word)
# results (version 3): the version 2 header (input bytes = 2 x the front end's clip_samples)
#             + frames, channels;
#   record: class, front end ticks (pushes and the final padding), network ticks, pushes,
#           scores[n_classes], features[frames x channels] (uint8, zero-padded to a word)
#   trailer: as version 2 (peak stack bytes below any call of the clip API)
CLIPS_NAME = "clips.bin"
CLIPS_MAGIC = 0x434E4E42  # "BNNC"
CLIP_FORMAT_VERSION = 3
CLIP_CHUNK_MAX = 256
"""Samples one push can take: the clip harness's static chunk buffer (512 bytes)."""
CLIP_MODES: dict[str, int] = {"stream": 0, "classify": 1}
"""``stream``: begin, a timed push per chunk, a timed finish (padding), a timed end (the network);
``classify``: one untimed ``classify_clip`` call on the whole clip, for builds with a clip buffer
(the host's; a microcontroller never holds a whole clip)."""
_MAX_CHUNK_SIZES = 64
_CLIP_HEADER_WORDS = _HEADER_WORDS + 2


def instructions_per_tick(machine: str) -> float:
    """Instructions per SysTick tick on a QEMU machine run with ``-icount shift=0``.

    Args:
        machine: QEMU machine name (``mps2-an386``).

    Returns:
        ``1e9 / systick_hz`` (one instruction = one virtual nanosecond).

    Raises:
        KeyError: a machine without a measured SysTick clock.
    """
    return 1e9 / SYSTICK_HZ[machine]


def calibration_tolerance(machine: str) -> float:
    """Largest allowed error (instructions) of the calibration difference.

    Each of the two readings is quantised to one tick, so the difference may be off by two
    ticks' worth of instructions.
    """
    return 2 * instructions_per_tick(machine)


def qemu_flags(machine: str, elf: str = "firmware.elf", images: str = IMAGES_NAME, results: str = RESULTS_NAME) -> list[str]:
    """The qemu-system-arm arguments (without the program and ``-kernel``) for a harness run.

    Args:
        machine: QEMU machine name.
        elf: firmware file name (semihosting argv[0]).
        images: images file name passed to the harness (argv[1]); no spaces or commas.
        results: results file name (argv[2]); no spaces or commas.

    Returns:
        The argument list; the Makefile renders the same list.
    """
    return [
        "-M",
        machine,
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        f"enable=on,target=native,arg={elf},arg={images},arg={results}",
        "-icount",
        "shift=0",
    ]


@dataclass
class HarnessResults:
    """What a harness wrote.

    Attributes:
        predictions: ``(N,)`` int64 classes returned by ``bnn_predict``.
        scores: ``(N, classes)`` scores, int32 or float32 as the engine returns them.
        ticks: ``(N,)`` int64 clock ticks per inference (SysTick ticks, or nanoseconds on the host).
        clock_hz: frequency of the clock behind ``ticks``.
        input_bytes: bytes of one input image as the harness read it.
        calibration: ``{"short_iterations", "long_iterations", "short_ticks", "long_ticks", "overhead_ticks"}``
            (zeros from the host harness).
        stack_peak_bytes: painted-stack high-water mark below ``bnn_predict``'s call (bytes; 0 on the host).
        stack_painted_bytes: size of the painted region (0 on the host).
        version: the results format (:data:`FORMAT_VERSION`, or :data:`CLIP_FORMAT_VERSION` for clips).
        frontend_ticks: clips only: ``(N,)`` ticks of the front end (pushes and padding); ``ticks``
            is then front end plus network.
        network_ticks: clips only: ``(N,)`` ticks of the network.
        pushes: clips only: ``(N,)`` push calls per clip.
        features: clips only: ``(N, frames, channels)`` uint8, the network's input as the front end made it.
    """

    predictions: np.ndarray
    scores: np.ndarray
    ticks: np.ndarray
    clock_hz: int
    input_bytes: int
    calibration: dict[str, int]
    stack_peak_bytes: int
    stack_painted_bytes: int
    version: int = FORMAT_VERSION
    frontend_ticks: np.ndarray | None = None
    network_ticks: np.ndarray | None = None
    pushes: np.ndarray | None = None
    features: np.ndarray | None = None


def parse_results(data: bytes, expected_images: int, source: str | Path = RESULTS_NAME) -> HarnessResults:
    """Decode a results file written by a harness (bare-metal or host; images or clips).

    Args:
        data: the file's bytes.
        expected_images: how many images (or clips) the harness was given.
        source: file name for error messages.

    Returns:
        The decoded :class:`HarnessResults` (with the clip fields for a version 3 file).

    Raises:
        CheckError: truncated file, wrong magic or version, an unknown score kind, or a record
            count that differs.
    """
    if len(data) < 4 * (_HEADER_WORDS + _TRAILER_WORDS) or len(data) % 4:
        raise CheckError(f"{source}: {len(data)} bytes is too short for a harness results file (the harness stopped early?)")
    words = np.frombuffer(data, dtype="<u4")
    magic, version, clock_hz, count, classes, kind, input_bytes, short_n, long_n, short_t, long_t, overhead = (
        int(w) for w in words[:_HEADER_WORDS]
    )
    if magic != MAGIC_HEADER or version not in (FORMAT_VERSION, CLIP_FORMAT_VERSION):
        raise CheckError(
            f"{source}: not a version {FORMAT_VERSION} or {CLIP_FORMAT_VERSION} harness results file "
            f"(magic {magic:#x}, version {version})"
        )
    clips = version == CLIP_FORMAT_VERSION
    noun = "clips" if clips else "images"
    if count != expected_images:
        raise CheckError(f"{source}: the harness saw {count} {noun}, expected {expected_images}")
    if kind not in SCORE_KINDS or classes < 1:
        raise CheckError(f"{source}: score kind {kind} with {classes} classes is not valid")
    header = _CLIP_HEADER_WORDS if clips else _HEADER_WORDS
    frames, channels = (int(words[_HEADER_WORDS]), int(words[_HEADER_WORDS + 1])) if clips and len(words) > header else (0, 0)
    feature_words = -(-frames * channels // 4)
    lead = 4 if clips else 2
    record = lead + classes + feature_words
    words_needed = header + count * record + _TRAILER_WORDS
    if len(words) != words_needed or (clips and not (frames and channels)):
        raise CheckError(
            f"{source}: {len(data)} bytes, expected {4 * words_needed} for {count} {noun} of {classes} classes "
            "(the harness stopped early or the file is not a harness results file)"
        )
    body = words[header : header + count * record].reshape(count, record)
    trailer = words[header + count * record :]
    if int(trailer[0]) != MAGIC_TRAILER:
        raise CheckError(f"{source}: trailer missing (magic {int(trailer[0]):#x})")
    scores = np.ascontiguousarray(body[:, lead : lead + classes])
    results = HarnessResults(
        predictions=body[:, 0].view("<i4").astype(np.int64),
        scores=scores.view(np.dtype(SCORE_KINDS[kind]).newbyteorder("<")).astype(SCORE_KINDS[kind]),
        ticks=body[:, 1].astype(np.int64) + (body[:, 2].astype(np.int64) if clips else 0),
        clock_hz=clock_hz,
        input_bytes=input_bytes,
        calibration={
            "short_iterations": short_n,
            "long_iterations": long_n,
            "short_ticks": short_t,
            "long_ticks": long_t,
            "overhead_ticks": overhead,
        },
        stack_peak_bytes=int(trailer[1]),
        stack_painted_bytes=int(trailer[2]),
        version=version,
    )
    if clips:
        raw = np.ascontiguousarray(body[:, lead + classes :]).view(np.uint8)[:, : frames * channels]
        results.frontend_ticks = body[:, 1].astype(np.int64)
        results.network_ticks = body[:, 2].astype(np.int64)
        results.pushes = body[:, 3].astype(np.int64)
        results.features = raw.reshape(count, frames, channels).copy()
    return results


def encode_clips(clips: np.ndarray | list[np.ndarray], chunks: list[int] | tuple[int, ...], mode: str = "stream") -> bytes:
    """The clip harness's input file: the mode and chunk sizes, then every clip's length and int16 samples.

    Args:
        clips: int16 clips, ``(N, samples)`` or a list of 1-D arrays of any length (a short clip
            is padded by the firmware, samples past a clip's last frame are ignored by it).
        chunks: samples per push, cycled and restarted for every clip (1..:data:`CLIP_CHUNK_MAX`,
            at most 64 sizes).
        mode: a key of :data:`CLIP_MODES`.

    Returns:
        The file's bytes.

    Raises:
        InputError: no clips, a clip that is not 1-D int16, bad chunk sizes or an unknown mode.
    """
    sizes = [int(c) for c in chunks]
    if not 1 <= len(sizes) <= _MAX_CHUNK_SIZES or any(not 1 <= c <= CLIP_CHUNK_MAX for c in sizes):
        raise InputError(f"chunk sizes must be 1 to {_MAX_CHUNK_SIZES} values of 1..{CLIP_CHUNK_MAX} samples, got {sizes}")
    if mode not in CLIP_MODES:
        raise InputError(f"clip mode {mode!r} is not one of {', '.join(CLIP_MODES)}")
    if len(clips) == 0:
        raise InputError("no clips to feed the firmware")
    head = [CLIPS_MAGIC, CLIP_FORMAT_VERSION, len(clips), CLIP_MODES[mode], len(sizes), *sizes]
    parts = [np.array(head, dtype="<u4").tobytes()]
    for index, clip in enumerate(clips):
        clip = np.asarray(clip)
        if clip.dtype != np.int16 or clip.ndim != 1:
            raise InputError(f"clip {index}: expected 1-D int16 samples, got {clip.dtype} {clip.shape}")
        parts += [np.array([len(clip)], dtype="<u4").tobytes(), clip.astype("<i2").tobytes(), b"\0\0" if len(clip) % 2 else b""]
    return b"".join(parts)
