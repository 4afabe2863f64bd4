"""The contract between the bare-metal harness (C, in QEMU) and the host (Python).

One place states what both sides must agree on:

* the SysTick clock QEMU models on each machine, hence the instruction count of one tick;
* the calibration loop the harness times on every run (2 instructions per iteration);
* the QEMU command line (the generated Makefile renders the same flags);
* the binary results file both harnesses write (little-endian 32-bit words): the bare-metal
  one under QEMU (times in SysTick ticks) and the host one (``bnn/host_harness.c.j2``, times
  in nanoseconds), decoded by one :func:`parse_results`.

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

from pipeline.errors import CheckError

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
    "HarnessResults",
    "instructions_per_tick",
    "calibration_tolerance",
    "qemu_flags",
    "parse_results",
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
    """

    predictions: np.ndarray
    scores: np.ndarray
    ticks: np.ndarray
    clock_hz: int
    input_bytes: int
    calibration: dict[str, int]
    stack_peak_bytes: int
    stack_painted_bytes: int


def parse_results(data: bytes, expected_images: int, source: str | Path = RESULTS_NAME) -> HarnessResults:
    """Decode a results file written by a harness (bare-metal or host).

    Args:
        data: the file's bytes.
        expected_images: how many images the harness was given.
        source: file name for error messages.

    Returns:
        The decoded :class:`HarnessResults`.

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
    if magic != MAGIC_HEADER or version != FORMAT_VERSION:
        raise CheckError(f"{source}: not a version {FORMAT_VERSION} harness results file (magic {magic:#x}, version {version})")
    if count != expected_images:
        raise CheckError(f"{source}: the harness saw {count} images, expected {expected_images}")
    if kind not in SCORE_KINDS or classes < 1:
        raise CheckError(f"{source}: score kind {kind} with {classes} classes is not valid")
    record = 2 + classes
    words_needed = _HEADER_WORDS + count * record + _TRAILER_WORDS
    if len(words) != words_needed:
        raise CheckError(
            f"{source}: {len(data)} bytes, expected {4 * words_needed} for {count} images of {classes} classes "
            "(the harness stopped early or the file is not a harness results file)"
        )
    body = words[_HEADER_WORDS : _HEADER_WORDS + count * record].reshape(count, record)
    trailer = words[_HEADER_WORDS + count * record :]
    if int(trailer[0]) != MAGIC_TRAILER:
        raise CheckError(f"{source}: trailer missing (magic {int(trailer[0]):#x})")
    return HarnessResults(
        predictions=body[:, 0].view("<i4").astype(np.int64),
        scores=np.ascontiguousarray(body[:, 2:]).view(np.dtype(SCORE_KINDS[kind]).newbyteorder("<")).astype(SCORE_KINDS[kind]),
        ticks=body[:, 1].astype(np.int64),
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
    )
