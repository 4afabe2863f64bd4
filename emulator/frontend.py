"""Run the generated audio front end on clips, on the host or under QEMU, and measure it.

:func:`run_host` compiles ``PREFIX_frontend.c`` with the harness of
:func:`firmware_gen.frontend.harness_files` (stdio platform) with any host compiler and flags
(``-std=c99 -Wall -Wextra -Werror`` always; sanitizers on request); :func:`run_qemu` builds the
bare-metal project for a core and runs it in QEMU with ``-icount shift=0``. Both stream every
clip through ``PREFIX_frontend_push`` in chunks of the given sizes (cycled), pad it with
``PREFIX_frontend_finish``, check each return value in C, and return the features, which must
equal :func:`pipeline.frontend.features` of the zero-padded clips.

Under QEMU a run also measures the front end as a product pays for it: flash (``text + data``
of the front end linked alone, entered at ``PREFIX_frontend_push``, with the libgcc helpers it
calls), RAM (its ``data + bss`` plus the deepest stack path of ``push`` or ``finish`` from gcc's
``-fstack-usage``, and the painted-stack high-water mark as a cross-check), and instructions
(SysTick around every call; one tick is ``1e9 / systick_hz`` instructions, checked against a
loop of known length on every run).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firmware_gen.baremetal import DEFAULT_OPT
from firmware_gen.baremetal.footprint import deepest_path, parse_size_output, read_callgraph, read_stack_usage
from firmware_gen.baremetal.protocol import calibration_tolerance, instructions_per_tick
from firmware_gen.frontend import (
    CHUNK_MAX,
    DEFAULT_PREFIX,
    HARNESS_MAGIC,
    HARNESS_VERSION,
    INPUT_NAME,
    OUTPUT_NAME,
    generate,
    harness_files,
)
from firmware_gen.targets import get_core
from pipeline.errors import CheckError, InputError
from pipeline.frontend import FrontendConfig

__all__ = [
    "STRICT_FLAGS",
    "SANITIZE_FLAGS",
    "FrontendRun",
    "encode_clips",
    "parse_output",
    "write_sources",
    "run_host",
    "run_qemu",
]

STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")
_STATUS = {
    2: "bad usage",
    3: "cannot open a file",
    4: "the input file is malformed",
    6: "cannot write the output file",
    7: "one call took more than 2^24 SysTick ticks",
    8: "the stack overflowed into .bss",
    10: "push or finish returned a wrong frame count (or accepted a bad argument)",
}
_HEADER_WORDS = 11
_TRAILER_WORDS = 3
_BUILD_TIMEOUT = 300.0


@dataclass
class FrontendRun:
    """One harness run.

    Attributes:
        features: uint8 ``(clips, frames, channels)`` as the C wrote them.
        calls: ``(clips,)`` push and finish calls per clip.
        ticks: ``(clips,)`` timer ticks of all calls of each clip (0 on the host).
        max_ticks: ``(clips,)`` ticks of each clip's longest call.
        clock_hz: the timer's frequency (0 on the host).
        core: the core under QEMU, or ``None`` on the host.
        instructions_per_frame: QEMU only: mean over the clips of all instructions spent in the
            front end divided by the frames.
        footprint: QEMU only: ``flash_bytes``, ``static_ram_bytes``, ``stack_bytes`` (deepest
            path of push or finish), ``ram_bytes`` (their sum), ``stack_measured_bytes``, sizes.
        calibration: QEMU only: the loop of known length, measured.
    """

    features: np.ndarray
    calls: np.ndarray
    ticks: np.ndarray
    max_ticks: np.ndarray
    clock_hz: int
    core: str | None = None
    instructions_per_frame: float | None = None
    footprint: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)


def encode_clips(clips: Sequence[np.ndarray], chunks: Sequence[int]) -> bytes:
    """The harness's input file: the chunk sizes, then every clip as its length and int16 samples.

    Args:
        clips: int16 arrays of any length (a shorter clip is padded by ``finish``, a longer one
            cut by the front end itself).
        chunks: samples per push, cycled (1..:data:`~firmware_gen.frontend.CHUNK_MAX`, at most 64 sizes).

    Raises:
        InputError: a clip that is not 1-D int16, or bad chunk sizes.
    """
    chunks = [int(c) for c in chunks]
    if not 1 <= len(chunks) <= 64 or any(not 1 <= c <= CHUNK_MAX for c in chunks):
        raise InputError(f"chunk sizes must be 1 to 64 values of 1..{CHUNK_MAX} samples, got {chunks}")
    parts = [np.array([HARNESS_MAGIC["in"], HARNESS_VERSION, len(clips), len(chunks), *chunks], dtype="<u4").tobytes()]
    for index, clip in enumerate(clips):
        clip = np.asarray(clip)
        if clip.dtype != np.int16 or clip.ndim != 1:
            raise InputError(f"clip {index}: expected 1-D int16 samples, got {clip.dtype} {clip.shape}")
        samples = clip.astype("<i2").tobytes()
        parts += [np.array([len(clip)], dtype="<u4").tobytes(), samples, b"\0\0" if len(clip) % 2 else b""]
    return b"".join(parts)


def parse_output(data: bytes, count: int, config: FrontendConfig, source: str = OUTPUT_NAME) -> FrontendRun:
    """Decode the harness's output file for ``count`` clips.

    Raises:
        CheckError: a truncated file, a wrong magic, version, clip count or feature shape.
    """
    feature_words = (config.frames * config.channels + 3) // 4
    record = 3 + feature_words
    expected = _HEADER_WORDS + count * record + _TRAILER_WORDS
    if len(data) != 4 * expected:
        raise CheckError(f"{source}: {len(data)} bytes, expected {4 * expected} for {count} clips (the harness stopped early?)")
    words = np.frombuffer(data, dtype="<u4")
    head = [int(w) for w in words[:_HEADER_WORDS]]
    if head[:5] != [HARNESS_MAGIC["out"], HARNESS_VERSION, count, config.frames, config.channels]:
        raise CheckError(f"{source}: header {head[:5]} does not match {count} clips of {config.frames}x{config.channels}")
    body = words[_HEADER_WORDS : _HEADER_WORDS + count * record].reshape(count, record)
    trailer = words[_HEADER_WORDS + count * record :]
    if int(trailer[0]) != HARNESS_MAGIC["end"]:
        raise CheckError(f"{source}: trailer missing (magic {int(trailer[0]):#x})")
    raw = np.ascontiguousarray(body[:, 3:]).view(np.uint8)[:, : config.frames * config.channels]
    run = FrontendRun(
        features=raw.reshape(count, config.frames, config.channels).copy(),
        calls=body[:, 2].astype(np.int64),
        ticks=body[:, 0].astype(np.int64),
        max_ticks=body[:, 1].astype(np.int64),
        clock_hz=head[5],
    )
    run.calibration = {
        "short_iterations": head[6],
        "long_iterations": head[7],
        "short_ticks": head[8],
        "long_ticks": head[9],
        "overhead_ticks": head[10],
        "stack_peak_bytes": int(trailer[1]),
        "stack_painted_bytes": int(trailer[2]),
    }
    return run


def write_sources(
    folder: Path, config: FrontendConfig, prefix: str = DEFAULT_PREFIX, core: str | None = None, opt: str = DEFAULT_OPT
) -> list[str]:
    """Write the front end and its harness (host, or the QEMU project for ``core`` built with ``opt``) into ``folder``;
    returns the C sources."""
    files = {**generate(config, prefix).files, **harness_files(config, prefix, get_core(core) if core else None, opt)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return sorted(name for name in files if name.endswith(".c"))


def _status(code: int) -> str:
    return _STATUS.get(code, "unknown status")


def run_host(
    config: FrontendConfig,
    clips: Sequence[np.ndarray],
    *,
    chunks: Sequence[int] = (128,),
    cc: str = "gcc",
    flags: Sequence[str] = ("-O2",),
    sanitize: bool = False,
    prefix: str = DEFAULT_PREFIX,
) -> FrontendRun:
    """Build the front end with the host harness and stream ``clips`` through it.

    Args:
        config: the front end's settings.
        clips: int16 clips of any length.
        chunks: samples per push, cycled.
        cc: the compiler (``gcc``, ``clang``).
        flags: more compiler flags (optimisation, ``-march=native``); :data:`STRICT_FLAGS` always.
        sanitize: add :data:`SANITIZE_FLAGS` (any report aborts the run).
        prefix: the C prefix.

    Returns:
        The :class:`FrontendRun` (no timings).

    Raises:
        CheckError: the compiler warns or fails, or the harness fails.
    """
    if shutil.which(cc) is None:
        raise CheckError(f"compiler {cc!r} not found")
    with tempfile.TemporaryDirectory(prefix="frontend-host-") as tmp:
        folder = Path(tmp)
        sources = write_sources(folder, config, prefix)
        cmd = [cc, *STRICT_FLAGS, *flags, *(SANITIZE_FLAGS if sanitize else ()), *sources, "-o", "harness"]
        built = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=_BUILD_TIMEOUT, check=False)
        if built.returncode != 0 or built.stderr.strip():
            raise CheckError(f"{' '.join(cmd)}: {built.stderr.strip()[:3000]}")
        (folder / INPUT_NAME).write_bytes(encode_clips(clips, chunks))
        ran = subprocess.run(["./harness", INPUT_NAME, OUTPUT_NAME], cwd=folder, capture_output=True, text=True, check=False)
        if ran.returncode != 0:
            raise CheckError(
                f"front end harness exited {ran.returncode} ({_status(ran.returncode)}): {ran.stderr.strip()[:3000]}"
            )
        return parse_output((folder / OUTPUT_NAME).read_bytes(), len(clips), config)


def _footprint(folder: Path, prefix: str) -> dict[str, Any]:
    build = folder / "build"
    size = subprocess.run(
        ["arm-none-eabi-size", str(build / f"{prefix}_frontend.o"), str(build / "deployable.elf")],
        capture_output=True,
        text=True,
        check=False,
    )
    if size.returncode != 0:
        raise CheckError(f"arm-none-eabi-size failed: {size.stderr.strip()[:300]}")
    sizes = parse_size_output(size.stdout)
    linked = sizes[str(build / "deployable.elf")]
    usage = read_stack_usage([build / f"{prefix}_frontend.su"])
    edges, _ = read_callgraph([build / f"{prefix}_frontend.ci"])
    paths = [deepest_path(f"{prefix}_frontend_{name}", usage, edges) for name in ("push", "finish")]
    stack = max(paths, key=lambda path: path.bytes)
    static_ram = linked["data"] + linked["bss"]
    return {
        "flash_bytes": linked["text"] + linked["data"],
        "static_ram_bytes": static_ram,
        "stack_bytes": stack.bytes,
        "stack_path": stack.path,
        "stack_bounded": stack.bounded,
        "ram_bytes": static_ram + stack.bytes,
        "deployable_elf": linked,
        "object": sizes[str(build / f"{prefix}_frontend.o")],
    }


def run_qemu(
    config: FrontendConfig,
    clips: Sequence[np.ndarray],
    *,
    core: str,
    chunks: Sequence[int] = (128,),
    prefix: str = DEFAULT_PREFIX,
    timeout: float | None = None,
    opt: str = DEFAULT_OPT,
) -> FrontendRun:
    """Build the front end's bare-metal project for ``core``, stream ``clips`` through it in QEMU, measure it.

    Args:
        config: the front end's settings.
        clips: int16 clips of any length.
        core: the core (its QEMU machine runs the firmware).
        chunks: samples per push, cycled.
        prefix: the C prefix.
        timeout: seconds before QEMU is killed (default: 60 s plus 1 s per clip).
        opt: the optimisation flag of every object (``-Os``, the project's default, ``-O2``, ...).

    Returns:
        The :class:`FrontendRun` with instructions, the footprint and the calibration.

    Raises:
        InputError: missing tools or an unknown core.
        CheckError: the build, the firmware, its calibration or its output failed
            (:class:`emulator.qemu.QemuError`).
    """
    from emulator.qemu import QemuError, first_error, missing_tools, run_guest

    spec = get_core(core)
    missing = missing_tools()
    if missing:
        raise InputError(f"missing tools: {', '.join(missing)}; install them with `make toolchain` (Debian packages)")
    with tempfile.TemporaryDirectory(prefix="frontend-qemu-") as tmp:
        folder = Path(tmp)
        write_sources(folder, config, prefix, spec.name, opt)
        built = subprocess.run(["make", "-s"], cwd=folder, capture_output=True, text=True, timeout=_BUILD_TIMEOUT, check=False)
        if built.returncode != 0 or built.stderr.strip():
            raise QemuError(f"make failed for {spec.name}: {first_error(built.stdout + built.stderr)}")
        (folder / INPUT_NAME).write_bytes(encode_clips(clips, chunks))
        limit = 60.0 + 1.0 * len(clips) if timeout is None else timeout
        run_guest(folder, spec.qemu_machine, len(clips), limit, images=INPUT_NAME, results=OUTPUT_NAME)
        run = parse_output((folder / OUTPUT_NAME).read_bytes(), len(clips), config)
        run.footprint = _footprint(folder, prefix)
    run.core = spec.name
    per_tick = instructions_per_tick(spec.qemu_machine)
    cal = run.calibration
    expected = 2 * (cal["long_iterations"] - cal["short_iterations"])
    measured = (cal["long_ticks"] - cal["short_ticks"]) * per_tick
    if abs(measured - expected) > calibration_tolerance(spec.qemu_machine):
        raise QemuError(f"SysTick calibration failed on {spec.qemu_machine}: {expected} instructions measured {measured:g}")
    cal["instructions_per_tick"] = per_tick
    overhead = cal["overhead_ticks"] * run.calls
    run.instructions_per_frame = float(np.mean((run.ticks - overhead) * per_tick / config.frames))
    run.footprint["stack_measured_bytes"] = cal["stack_peak_bytes"]
    return run
