"""Run a firmware with the audio front end on raw clips: its host build, or its firmware under QEMU.

A firmware folder generated from a model that carries a front end (``firmware.json``'s
``report.frontend``, :mod:`firmware_gen.clip`) takes raw 16-bit samples, not features. Both
runners stream every clip through the folder's clip harness (``harness.c``) in chunks of the
given sizes (cycled; at most :data:`~firmware_gen.baremetal.protocol.CLIP_CHUNK_MAX` samples
each, the harness's only sample buffer) and decode its results (format version 3 of
:mod:`firmware_gen.baremetal.protocol`): per clip the class, the scores, the features the
front end made and, under QEMU, the instructions of the front end (every push and the final
padding) and of the network.

* :func:`run_host` compiles the deployable C (network, front end, clip API) with the harness
  and its host platform (``harness_host.c``) with the host compiler: ``-std=c99 -Wall -Wextra
  -Werror``, the network's fast flags (:func:`emulator.host.fast_flags`) unless ``fast=False``,
  sanitizers on request, and room for a whole clip so mode ``classify`` can call the one-call API.
* :func:`run_qemu` builds the bare-metal project in a temporary copy, runs it with ``-icount
  shift=0``, checks the SysTick calibration, and measures the three links (whole deployable
  part, network alone, front end alone: :func:`firmware_gen.clip.measure_links`). A firmware
  larger than the core's QEMU machine is one line in the image runners' words (``NAME does not
  fit QEMU MACHINE (CORE): region `RAM' overflowed by N bytes``), which callers recognise.

:func:`check_frontend` refuses a dataset whose front end is not the firmware's (by sha256).
Both runners build nothing before the folder's files are found to be the ones its
``firmware.json`` lists (:func:`emulator.firmware_files.check_firmware_files`; ``allow_modified``
skips the check).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emulator.firmware_files import check_firmware_files, copy_ignore
from emulator.signature import FirmwareSignature, read_signature
from firmware_gen.baremetal.footprint import measure_link
from firmware_gen.baremetal.project import TFLM_QEMU_DIR
from firmware_gen.baremetal.protocol import CLIPS_NAME, RESULTS_NAME, HarnessResults, encode_clips, parse_results
from firmware_gen.clip import CLIP_TARGETS, LINKS, ClipTarget, measure_links, split_figures
from firmware_gen.targets import get_core
from pipeline.errors import CheckError, InputError
from pipeline.frontend import FrontendConfig
from pipeline.json_input import parse_json

__all__ = [
    "DEFAULT_CHUNKS",
    "ClipRun",
    "is_clip_firmware",
    "firmware_frontend",
    "check_frontend",
    "run_host",
    "run_qemu",
]

DEFAULT_CHUNKS = (128,)
_STATUS = {
    2: "bad usage",
    3: "cannot open a file",
    4: "the clips file is malformed (or a whole clip does not fit this build)",
    6: "cannot write the results file",
    7: "one call took more than 2^24 SysTick ticks",
    8: "the stack overflowed into .bss",
    9: "the engine's setup failed",
    10: "a clip API call returned a wrong value (or accepted a bad argument)",
}
_BUILD_TIMEOUT = 600.0
_OVERFLOW = re.compile(r"region `(FLASH|RAM)' overflowed by (\d+) bytes")
_NO_STACK = "not enough RAM left for the stack"


@dataclass
class ClipRun:
    """One run of the clip harness.

    Attributes:
        results: the decoded results (classes, scores, features, ticks of each part).
        config: the firmware's front end.
        signature: the network's signature (class count, score type).
        core: the core under QEMU, or ``None`` for the host build.
        instructions: QEMU only: ``{"frontend", "network", "total"}`` -> ``(N,)`` instructions per clip.
        calibration: QEMU only: the loop of known length, measured.
        links: QEMU only: flash and RAM of each link (:func:`firmware_gen.clip.split_figures`).
        seconds: wall time of the run.
        flags: the host build's compiler and flags.
    """

    results: HarnessResults
    config: FrontendConfig
    signature: FirmwareSignature
    core: str | None = None
    instructions: dict[str, np.ndarray] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    flags: str = ""


def is_clip_firmware(manifest: dict[str, Any]) -> bool:
    """A firmware folder's ``firmware.json`` says it has the front end and the clip API."""
    report = manifest.get("report") if isinstance(manifest, dict) else None
    return isinstance(report, dict) and isinstance(report.get("frontend"), dict)


def firmware_frontend(manifest: dict[str, Any], where: str | Path) -> tuple[FrontendConfig, ClipTarget]:
    """The front end config and the clip API prefix a firmware records.

    Raises:
        InputError: a malformed ``report.frontend`` (its config invalid, its sha256 not the
            config's, an unknown prefix).
    """
    entry = manifest["report"]["frontend"]
    config = FrontendConfig.from_json(entry.get("config"))
    if entry.get("config_sha256") != config.sha256():
        raise InputError(f"{where}: report.frontend.config_sha256 is not the sha256 of its config (edited by hand?)")
    target = CLIP_TARGETS.get(entry.get("prefix"))
    if target is None:
        raise InputError(f"{where}: report.frontend.prefix {entry.get('prefix')!r} is not one of {', '.join(CLIP_TARGETS)}")
    return config, target


def check_frontend(frontend: dict[str, Any] | None, raw: np.ndarray | None, config: FrontendConfig, where: str | Path) -> None:
    """Refuse a dataset that cannot feed a firmware with front end ``config``.

    Args:
        frontend: the dataset's front end (``Dataset.frontend``), or ``None`` for a dataset of features.
        raw: the dataset's raw test clips (``Dataset.raw_test``), or ``None``.
        config: the firmware's front end.
        where: the firmware, for messages.

    Raises:
        InputError: a dataset without raw clips, or whose front end has another sha256.
    """
    if frontend is None or raw is None:
        raise InputError(
            f"{where} takes raw 16-bit samples (its front end {config.sha256()[:12]}) but the dataset has no raw clips; "
            "pass the audio dataset it was trained on (--data), or generate the network alone (--no-frontend)"
        )
    theirs = FrontendConfig.from_json(frontend)
    if theirs.sha256() != config.sha256():
        differ = [key for key, value in config.to_json().items() if theirs.to_json().get(key) != value]
        raise InputError(
            f"the dataset's front end ({theirs.sha256()[:12]}) is not the firmware's ({config.sha256()[:12]}): they differ in "
            f"{', '.join(differ)}; run the firmware on the data its model was trained on"
        )


def _make_sources(folder: Path, tflm: bool = False) -> tuple[list[str], list[str]]:
    """``ENGINE_SRCS`` and ``FRONTEND_SRCS`` of the folder's Makefile (a tflm project's ``qemu/Makefile``
    names no engine sources: the application is C++ and TFLite-Micro)."""
    found: dict[str, list[str]] = {}
    makefile = folder / "Makefile"
    if not makefile.is_file():
        raise InputError(f"{folder}: no Makefile; regenerate the firmware with python -m firmware_gen")
    for line in makefile.read_text().splitlines():
        for key in ("ENGINE_SRCS", "FRONTEND_SRCS"):
            if line.startswith(f"{key} :="):
                found[key] = line.split(":=", 1)[1].split()
    if tflm:
        found.setdefault("ENGINE_SRCS", [])
    if "ENGINE_SRCS" not in found or "FRONTEND_SRCS" not in found:
        raise InputError(f"{makefile}: no ENGINE_SRCS or FRONTEND_SRCS line (not an audio firmware's Makefile)")
    return found["ENGINE_SRCS"], found["FRONTEND_SRCS"]


def _load(folder: Path) -> tuple[FrontendConfig, ClipTarget, FirmwareSignature]:
    manifest_path = folder / "firmware.json"
    try:
        manifest = parse_json(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{manifest_path}: cannot read ({err})") from None
    if not is_clip_firmware(manifest):
        raise InputError(f"{folder}: not a firmware with the audio front end (firmware.json has no report.frontend)")
    config, target = firmware_frontend(manifest, manifest_path)
    harness = folder / TFLM_QEMU_DIR if target.api == "tflm" else folder
    needed = [harness / "harness.c", harness / "harness_platform.h", folder / f"{target.api}_clip.h"]
    for path in needed if target.api == "tflm" else [*needed, folder / "harness_host.c"]:
        if not path.is_file():
            raise InputError(f"{folder}: no {path.relative_to(folder)}; regenerate the firmware with python -m firmware_gen")
    return config, target, read_signature(folder, manifest)


def _check(results: HarnessResults, config: FrontendConfig, signature: FirmwareSignature, source: str) -> None:
    """The results must be clips of this front end, scored by this network."""
    if results.features is None or results.features.shape[1:] != config.feature_shape:
        raise CheckError(f"{source}: the harness wrote no features of {config.feature_shape} (not a clip results file?)")
    if results.input_bytes != 2 * config.clip_samples:
        raise CheckError(
            f"{source}: the harness's clips are {results.input_bytes} bytes, the front end's {2 * config.clip_samples}"
        )
    if results.scores.shape[1] != signature.num_classes or np.dtype(results.scores.dtype) != np.dtype(signature.score_dtype):
        raise CheckError(
            f"{source}: the harness wrote {results.scores.shape[1]} {results.scores.dtype} scores but the signature says "
            f"{signature.num_classes} {signature.score_dtype}"
        )
    last = signature.num_classes - 1
    bad = np.flatnonzero((results.predictions < 0) | (results.predictions > last))
    if bad.size:
        raise CheckError(f"{source}: clip {int(bad[0])} got class {int(results.predictions[bad[0]])} (classes are 0..{last})")


def _links(project: Path, target: ClipTarget, stack_peak: int) -> dict[str, dict[str, Any]]:
    """Flash and RAM of the built project's three links.

    bnn: :func:`firmware_gen.clip.measure_links` (static stack bounds). tflm: TFLite-Micro calls its
    kernels through pointers, so the deployable part's and the network's stack is the painted
    high-water mark of the harness (``stack_peak``, every call included); the front end's is its
    static bound.
    """
    engine, frontend = _make_sources(project, tflm=target.api == "tflm")
    if target.api != "tflm":
        return split_figures(measure_links(project, engine, frontend, target))
    from firmware_gen.baremetal.footprint import parse_size_output

    api = target.api
    roots = (f"{api}_frontend_push", f"{api}_frontend_finish")
    links = split_figures({"frontend": measure_link(project, frontend[:1], "frontend.elf", roots, what="front end")})
    for name in ("deployable", "network"):
        sized = subprocess.run(
            ["arm-none-eabi-size", f"build/{name}.elf"], cwd=project, capture_output=True, text=True, check=False
        )
        if sized.returncode != 0:
            raise CheckError(f"arm-none-eabi-size build/{name}.elf failed: {sized.stderr.strip()[:300]}")
        sizes = next(iter(parse_size_output(sized.stdout).values()))
        static = sizes["data"] + sizes["bss"]
        links[name] = {
            "flash_bytes": sizes["text"] + sizes["data"],
            "ram_bytes": static + stack_peak,
            "static_ram_bytes": static,
            "stack_bytes": stack_peak,
            "stack_path": ["painted high-water mark of every call of the harness"],
        }
    return {name: links[name] for name in LINKS}


def _clips(clips: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(clips) == 0:
        raise InputError("no clips to feed the firmware")
    return [np.asarray(clip) for clip in clips]


def run_host(
    folder: Path,
    clips: np.ndarray | Sequence[np.ndarray],
    *,
    chunks: Sequence[int] = DEFAULT_CHUNKS,
    mode: str = "stream",
    sanitize: bool = False,
    fast: bool = True,
    cc: str | None = None,
    extra_flags: Sequence[str] = (),
    allow_modified: bool = False,
) -> ClipRun:
    """Build an audio firmware folder's C with the clip harness for the host and run ``clips`` through it.

    Args:
        folder: the firmware folder (``python -m firmware_gen`` with a model that carries a front end).
        clips: int16 clips (``(N, samples)`` or 1-D arrays of any length).
        chunks: samples per push, cycled (mode ``stream``).
        mode: ``stream`` (begin, pushes, finish, end) or ``classify`` (one call per whole clip).
        sanitize: add AddressSanitizer and UndefinedBehaviorSanitizer.
        fast: the network's fast host flags (:func:`emulator.host.fast_flags`); ``False``: the
            portable C with the per-core popcount, exactly what the Cortex-M compiles.
        cc: the compiler (default :func:`emulator.host.compiler`).
        extra_flags: more flags (``-O0``, ``-fsanitize=undefined -fsanitize-trap=all``, ...).
        allow_modified: build the folder even when its files are not the ones its ``firmware.json`` lists.

    Returns:
        The :class:`ClipRun` (ticks are nanoseconds; no instruction counts).

    Raises:
        InputError: not an audio firmware folder, files that are not the ones its
            ``firmware.json`` lists, or bad clips or chunk sizes.
        CheckError: the compiler (any warning), the harness or its results failed.
    """
    import time

    from emulator.host import C_FLAGS, SANITIZE_FLAGS, compiler, fast_flags, popcount_flags

    folder = Path(folder)
    config, target, signature = _load(folder)
    engine, frontend = _make_sources(folder)
    check_firmware_files(folder, allow_modified=allow_modified)
    clip_list = _clips(clips)
    payload = encode_clips(clip_list, list(chunks), mode)
    room = max(config.clip_samples, *(len(clip) for clip in clip_list))
    cc = cc or compiler()
    flags = [*C_FLAGS, *popcount_flags(fast), *(fast_flags(cc) if fast else []), *extra_flags]
    flags += [f"-DHARNESS_CLIP_BUFFER={room}", *(SANITIZE_FLAGS if sanitize else ())]
    sources = [str(folder / name) for name in (*engine, *frontend, "harness.c", "harness_host.c")]
    with tempfile.TemporaryDirectory(prefix="bnn-clips-host-") as tmp:
        build = Path(tmp)
        built = subprocess.run(
            [cc, *flags, f"-I{folder}", *sources, "-o", str(build / "harness")],
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
            check=False,
        )
        if built.returncode != 0 or built.stderr.strip():
            lines = [line for line in built.stderr.splitlines() if line.strip()]
            first = next((line for line in lines if "error" in line or "warning" in line), lines[0] if lines else "")
            raise CheckError(f"host build of {folder.name}'s clip harness failed ({cc}): {first.strip()}")
        (build / CLIPS_NAME).write_bytes(payload)
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
        start = time.perf_counter()
        ran = subprocess.run(
            [str(build / "harness"), CLIPS_NAME, RESULTS_NAME], cwd=build, capture_output=True, text=True, env=env, check=False
        )
        seconds = time.perf_counter() - start
        if ran.returncode != 0:
            lines = [line for line in ran.stderr.splitlines() if line.strip()]
            meaning = _STATUS.get(ran.returncode, "a crash or a sanitizer report")
            raise CheckError(f"host clip harness exited {ran.returncode} ({meaning}): {' | '.join(lines[:3])}")
        results = parse_results((build / RESULTS_NAME).read_bytes(), len(clip_list), "host clip harness results")
    _check(results, config, signature, "host clip harness results")
    return ClipRun(results, config, signature, seconds=seconds, flags=" ".join([cc, *flags]))


def run_qemu(
    folder: Path,
    clips: np.ndarray | Sequence[np.ndarray],
    *,
    core: str,
    chunks: Sequence[int] = DEFAULT_CHUNKS,
    timeout: float | None = None,
    kernels: str = "cmsis_nn",
    allow_modified: bool = False,
) -> ClipRun:
    """Build an audio firmware folder for its core in a temporary copy and stream ``clips`` through it in QEMU.

    Args:
        folder: the firmware folder (bnn engine, bare-metal project with the clip harness).
        clips: int16 clips (``(N, samples)`` or 1-D arrays of any length).
        core: the core the folder was generated for.
        chunks: samples per push, cycled.
        timeout: seconds before the guest is killed (default: 60 s plus 0.5 s per clip).
        kernels: TFLite-Micro's kernel set for a tflm firmware (``reference`` or ``cmsis_nn``).
        allow_modified: build the folder even when its files are not the ones its ``firmware.json`` lists.

    Returns:
        The :class:`ClipRun` with instructions per part, the calibration and the three links' figures.

    Raises:
        InputError: not an audio firmware folder, files that are not the ones its
            ``firmware.json`` lists, bad clips, missing tools.
        CheckError: the build, the firmware (:class:`emulator.qemu.QemuError`), its calibration
            or its results failed.
    """
    from emulator.qemu import QemuError, check_calibration, first_error, missing_tools, run_guest

    folder = Path(folder)
    config, target, signature = _load(folder)
    spec = get_core(core)
    missing = missing_tools()
    if missing:
        raise InputError(f"missing tools: {', '.join(missing)}; install them with `make toolchain` (Debian packages)")
    check_firmware_files(folder, allow_modified=allow_modified)
    clip_list = _clips(clips)
    payload = encode_clips(clip_list, list(chunks), "stream")
    limit = 60.0 + 0.5 * len(clip_list) if timeout is None else float(timeout)
    variables: list[str] = []
    if target.api == "tflm":
        from emulator.qemu_tflm import firmware_kernel_ops
        from firmware_gen.tflm_build import ensure_library

        library = ensure_library(spec.name, kernels, firmware_kernel_ops(folder), log=print)
        variables = [f"TFLM_DIR={library.tree}", f"TFLM_LIB={library.path}"]
        limit += 0.0 if timeout is not None else 240.0 + 4.5 * len(clip_list)  # TFLite-Micro: see emulator.qemu_tflm.tflm_timeout
    with tempfile.TemporaryDirectory(prefix="bnn-clips-qemu-") as tmp:
        work = Path(tmp) / "firmware"
        shutil.copytree(folder, work, ignore=copy_ignore())
        project = work / TFLM_QEMU_DIR if target.api == "tflm" else work
        built = subprocess.run(
            ["make", "-s", *variables], cwd=project, capture_output=True, text=True, timeout=_BUILD_TIMEOUT, check=False
        )
        if built.returncode != 0:
            output = built.stdout + built.stderr
            overflow = _OVERFLOW.findall(output)
            if overflow or _NO_STACK in output:  # the linker's own words, as emulator.qemu and qemu_tflm say them
                needs = " and ".join(f"region `{region}' overflowed by {int(count):,} bytes" for region, count in overflow)
                raise QemuError(f"{folder.name} does not fit QEMU {spec.qemu_machine} ({spec.name}): {needs or _NO_STACK}")
            raise QemuError(f"make failed in a copy of {folder}: {first_error(output)}")
        (project / CLIPS_NAME).write_bytes(payload)
        output, seconds = run_guest(project, spec.qemu_machine, len(clip_list), limit, images=CLIPS_NAME, results=RESULTS_NAME)
        if not (project / RESULTS_NAME).is_file():
            raise QemuError(f"the firmware wrote no {RESULTS_NAME}: {first_error(output)}")
        results = parse_results((project / RESULTS_NAME).read_bytes(), len(clip_list), RESULTS_NAME)
        links = _links(project, target, results.stack_peak_bytes)
    _check(results, config, signature, RESULTS_NAME)
    calibration = check_calibration(results, spec.qemu_machine)
    per_tick = calibration["instructions_per_tick"]
    overhead = results.calibration["overhead_ticks"]
    frontend_ticks, network_ticks, pushes = (
        np.asarray(a) for a in (results.frontend_ticks, results.network_ticks, results.pushes)
    )
    frontend_count = (frontend_ticks - overhead * (pushes + 1)) * per_tick
    network_count = (network_ticks - overhead) * per_tick
    instructions = {"frontend": frontend_count, "network": network_count, "total": frontend_count + network_count}
    return ClipRun(results, config, signature, spec.name, instructions, calibration, links, seconds)
