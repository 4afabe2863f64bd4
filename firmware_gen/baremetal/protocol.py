"""The contract between the bare-metal harness (C, in QEMU) and the host (Python).

One place states what both sides must agree on:

* the SysTick clock QEMU models on each machine, hence the instruction count of one tick;
* the calibration loop the harness times on every run (2 instructions per iteration);
* the QEMU command line (the generated Makefile renders the same flags);
* the binary results file the harness writes (little-endian 32-bit words).

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

from train.errors import CheckError

__all__ = [
    "SYSTICK_HZ",
    "IMAGES_NAME",
    "RESULTS_NAME",
    "IMAGE_BYTES",
    "N_CLASSES",
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
IMAGE_BYTES = 28 * 28
N_CLASSES = 10
MAGIC_HEADER = 0x514E4E42  # "BNNQ" read as a little-endian word
MAGIC_TRAILER = 0x454E4E42  # "BNNE"
FORMAT_VERSION = 1
# Calibration loops: the difference between them is exactly 2 * (LONG - SHORT) instructions.
CALIB_SHORT = 1_000
CALIB_LONG = 1_001_000

_HEADER_WORDS = 9
_RECORD_WORDS = 2 + N_CLASSES
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
    """What the harness wrote.

    Attributes:
        predictions: ``(N,)`` int64 classes returned by ``bnn_predict``.
        scores: ``(N, 10)`` int32 scores.
        ticks: ``(N,)`` int64 SysTick ticks per inference.
        systick_hz: clock the harness was generated for.
        calibration: ``{"short_iterations", "long_iterations", "short_ticks", "long_ticks", "overhead_ticks"}``.
        stack_peak_bytes: painted-stack high-water mark below ``bnn_predict``'s call (bytes).
        stack_painted_bytes: size of the painted region.
    """

    predictions: np.ndarray
    scores: np.ndarray
    ticks: np.ndarray
    systick_hz: int
    calibration: dict[str, int]
    stack_peak_bytes: int
    stack_painted_bytes: int


def parse_results(data: bytes, expected_images: int, source: str | Path = RESULTS_NAME) -> HarnessResults:
    """Decode a results file written by the harness.

    Args:
        data: the file's bytes.
        expected_images: how many images the harness was given.
        source: file name for error messages.

    Returns:
        The decoded :class:`HarnessResults`.

    Raises:
        CheckError: truncated file, wrong magic or version, or a record count that differs.
    """
    words_needed = _HEADER_WORDS + expected_images * _RECORD_WORDS + _TRAILER_WORDS
    if len(data) != 4 * words_needed:
        raise CheckError(
            f"{source}: {len(data)} bytes, expected {4 * words_needed} for {expected_images} images "
            "(the harness stopped early or the file is not a harness results file)"
        )
    words = np.frombuffer(data, dtype="<u4")
    magic, version, systick_hz, count, short_n, long_n, short_t, long_t, overhead = (int(w) for w in words[:_HEADER_WORDS])
    if magic != MAGIC_HEADER or version != FORMAT_VERSION:
        raise CheckError(f"{source}: not a version {FORMAT_VERSION} harness results file (magic {magic:#x}, version {version})")
    if count != expected_images:
        raise CheckError(f"{source}: the harness saw {count} images, expected {expected_images}")
    body = words[_HEADER_WORDS : _HEADER_WORDS + count * _RECORD_WORDS].reshape(count, _RECORD_WORDS)
    trailer = words[_HEADER_WORDS + count * _RECORD_WORDS :]
    if int(trailer[0]) != MAGIC_TRAILER:
        raise CheckError(f"{source}: trailer missing (magic {int(trailer[0]):#x})")
    return HarnessResults(
        predictions=body[:, 0].view("<i4").astype(np.int64),
        scores=body[:, 2:].view("<i4").astype(np.int32),
        ticks=body[:, 1].astype(np.int64),
        systick_hz=systick_hz,
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
