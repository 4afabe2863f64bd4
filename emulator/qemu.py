"""The ``qemu`` backend: build a bare-metal firmware folder and run it on an emulated Cortex-M.

The firmware folder is what ``python -m firmware_gen --engine bnn`` writes: the engine's C
(the deployable part) plus the project of :mod:`firmware_gen.baremetal` (startup, linker
script, semihosting, harness, Makefile). :func:`run_qemu` checks that the folder's files are
the ones its ``firmware.json`` lists (:func:`emulator.firmware_files.check_firmware_files`:
``make`` runs whatever the Makefile says), copies it to a temporary folder (the generated tree
stays clean), runs ``make``, writes the images file, runs ``qemu-system-arm`` with ``-icount
shift=0`` under a timeout, and decodes the harness's results file.

Instructions per inference: the harness reads SysTick around each ``bnn_predict``; one tick is
``1e9 / systick_hz`` instructions (:func:`firmware_gen.baremetal.instructions_per_tick`). Every
run also times a loop of known length and the run fails if the factor does not hold. The
figure reported is the MEAN over the images (the median and extremes are in ``extra``).
QEMU counts instructions, not the cycles of a real part.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emulator.backend_result import BackendRun
from emulator.firmware_files import check_firmware_files, copy_ignore
from emulator.signature import FirmwareSignature, check_results, encode_inputs, read_signature
from firmware_gen.baremetal import Footprint, instructions_per_tick, measure_footprint, parse_results, qemu_flags
from firmware_gen.baremetal.protocol import IMAGES_NAME, RESULTS_NAME, HarnessResults, calibration_tolerance
from firmware_gen.targets import Core, get_core
from pipeline.errors import CheckError, InputError

__all__ = [
    "TOOLS",
    "QemuError",
    "QemuTimeoutError",
    "QemuRun",
    "missing_tools",
    "default_timeout",
    "check_calibration",
    "read_guest_results",
    "check_guest_results",
    "first_error",
    "run_guest",
    "run_harness",
    "run_qemu",
]

TOOLS = ("make", "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
_BUILD_TIMEOUT = 600.0
_OVERFLOW = re.compile(r"region `(FLASH|RAM)' overflowed by (\d+) bytes")
_STATUS = {
    2: "bad usage",
    3: "cannot open the images file",
    4: "the images file is not a whole number of inputs",
    5: "cannot open the results file",
    6: "cannot write the results file",
    7: "one inference took more than 2^24 SysTick ticks",
    8: "the stack overflowed into .bss",
    9: "the engine's setup failed (see the message above)",
    10: "a clip API call returned a wrong value (the clip harness)",
    71: "the firmware called abort() or exit()",
    70: "the firmware took an unexpected exception (fault)",
}


class QemuError(CheckError):
    """The firmware did not build, did not run to a clean exit, or its results are invalid (exit 1)."""


class QemuTimeoutError(QemuError):
    """The guest did not finish in time and was killed (a hung firmware)."""


@dataclass
class _Build:
    folder: Path
    engine_sources: list[str]


def missing_tools() -> list[str]:
    """Names of the required programs that are not on ``PATH``."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def default_timeout(count: int) -> float:
    """Seconds allowed for a QEMU run over ``count`` images (generous: about 50 ms per image)."""
    return 60.0 + 0.05 * count


def _check_folder(firmware_dir: Path) -> None:
    if not firmware_dir.is_dir():
        raise InputError(f"{firmware_dir}: not a folder (expected a firmware folder written by python -m firmware_gen)")
    for name in ("Makefile", "harness.c", "link.ld"):
        if not (firmware_dir / name).exists():
            raise InputError(
                f"{firmware_dir}: no {name}; the qemu backend needs a bare-metal firmware folder "
                "(python -m firmware_gen --engine bnn)"
            )
    missing = missing_tools()
    if missing:
        raise InputError(f"missing tools: {', '.join(missing)}; install them with `make toolchain` (Debian packages)")


def _engine_sources(folder: Path) -> list[str]:
    for line in (folder / "Makefile").read_text().splitlines():
        if line.startswith("ENGINE_SRCS :="):
            return line.split(":=", 1)[1].split()
    raise InputError(f"{folder}/Makefile: no ENGINE_SRCS line (not a firmware_gen bare-metal Makefile)")


def first_error(text: str) -> str:
    """The line of compiler or QEMU output that says what went wrong (one line for the CLI)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() or "fatal" in line.lower():
            return line
    return lines[-1] if lines else "no output"


def _build(source: Path, work: Path, core: Core) -> _Build:
    folder = work / "firmware"
    shutil.copytree(source, folder, ignore=copy_ignore())
    try:
        result = subprocess.run(["make", "-s"], cwd=folder, capture_output=True, text=True, timeout=_BUILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise QemuError(f"make did not finish within {_BUILD_TIMEOUT:g} s in a copy of {source}") from None
    if result.returncode != 0:
        overflow = _OVERFLOW.findall(result.stdout + result.stderr)
        if overflow:  # the linker's own words, not its closing "collect2: error: ld returned 1"
            needs = " and ".join(f"region `{region}' overflowed by {int(count):,} bytes" for region, count in overflow)
            raise QemuError(f"{source.name} does not fit QEMU {core.qemu_machine} ({core.name}): {needs}")
        raise QemuError(f"make failed in a copy of {source}: {first_error(result.stdout + result.stderr)}")
    return _Build(folder, _engine_sources(folder))


def run_guest(
    folder: Path, machine: str, count: int, timeout: float, *, images: str = IMAGES_NAME, results: str = RESULTS_NAME
) -> tuple[str, float]:
    """Run ``firmware.elf`` of ``folder`` in QEMU (its own process group, killed on timeout); return its output and seconds.

    ``images`` and ``results`` are the file names the guest gets as its semihosting arguments
    (the audio front end's harness reads clips and writes features under its own names).

    Raises:
        QemuTimeoutError: the guest did not finish in time.
        QemuError: the firmware exited with a non-zero status.
    """
    command = ["qemu-system-arm", *qemu_flags(machine, "firmware.elf", images, results), "-kernel", "firmware.elf"]
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise QemuTimeoutError(
            f"QEMU ({machine}) did not finish {count} images within {timeout:g} s and was killed: the firmware hangs "
            "(or raise the timeout)"
        ) from None
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        meaning = _STATUS.get(process.returncode, "unknown status")
        raise QemuError(f"firmware on {machine} exited with status {process.returncode} ({meaning}): {first_error(output)}")
    return output, seconds


def check_calibration(results: HarnessResults, machine: str) -> dict[str, Any]:
    """Check the SysTick-to-instructions factor against the harness's loop of known length.

    Args:
        results: decoded harness output.
        machine: QEMU machine name.

    Returns:
        ``{"expected_instructions", "measured_instructions", "error", "tolerance", "instructions_per_tick"}``.

    Raises:
        QemuError: the measured difference is off by more than two ticks.
    """
    cal = results.calibration
    per_tick = instructions_per_tick(machine)
    expected = 2 * (cal["long_iterations"] - cal["short_iterations"])
    measured = (cal["long_ticks"] - cal["short_ticks"]) * per_tick
    tolerance = calibration_tolerance(machine)
    summary = {
        "expected_instructions": expected,
        "measured_instructions": measured,
        "error": measured - expected,
        "tolerance": tolerance,
        "instructions_per_tick": per_tick,
    }
    if abs(measured - expected) > tolerance:
        raise QemuError(
            f"SysTick calibration failed on {machine}: a loop of {expected} instructions measured {measured:g} "
            f"({per_tick:g} instructions per tick); is QEMU running with -icount shift=0?"
        )
    return summary


def read_guest_results(folder: Path, output: str, count: int) -> HarnessResults:
    """The results file the guest wrote in ``folder``, decoded for ``count`` images.

    Raises:
        QemuError: the guest wrote no results file (the first error line of its ``output`` says why).
    """
    results_path = folder / RESULTS_NAME
    if not results_path.exists():
        raise QemuError(f"the firmware wrote no {RESULTS_NAME}: {first_error(output)}")
    return parse_results(results_path.read_bytes(), count, RESULTS_NAME)


def check_guest_results(
    signature: FirmwareSignature, results: HarnessResults, machine: str, predict: str
) -> tuple[dict[str, Any], np.ndarray]:
    """Check a guest's results against its signature, its SysTick calibration and the class range.

    Args:
        signature: the firmware's signature.
        results: from :func:`read_guest_results`.
        machine: QEMU machine.
        predict: the firmware's predict function, named in the error.

    Returns:
        The calibration (:func:`check_calibration`) and the instructions of every inference.

    Raises:
        QemuError: scores or input sizes off the signature, a failed calibration, or a class
            outside ``0..num_classes-1``.
    """
    check_results(signature, results.scores.shape[1], results.scores, results.input_bytes, RESULTS_NAME)
    calibration = check_calibration(results, machine)
    last = signature.num_classes - 1
    bad = np.flatnonzero((results.predictions < 0) | (results.predictions > last))
    if bad.size:
        returned = int(results.predictions[bad[0]])
        raise QemuError(f"{predict} returned {returned} for input {int(bad[0])} (classes are 0..{last})")
    return calibration, results.ticks.astype(np.float64) * calibration["instructions_per_tick"]


@dataclass
class QemuRun:
    """Everything one harness run produced (what :func:`run_qemu` summarises).

    Attributes:
        core: core registry name.
        machine: QEMU machine.
        results: the decoded results file (predictions, scores, SysTick ticks per image).
        instructions: ``(N,)`` instructions per inference (ticks times instructions per tick).
        calibration: from :func:`check_calibration`.
        footprint: deployable flash/RAM (:class:`firmware_gen.baremetal.Footprint`).
        seconds: QEMU wall time.
        signature: the signature the inputs were fed by.
    """

    core: str
    machine: str
    results: HarnessResults
    instructions: np.ndarray
    calibration: dict[str, Any]
    footprint: Footprint
    seconds: float
    signature: FirmwareSignature


def run_harness(
    firmware_dir: Path,
    images: np.ndarray,
    *,
    core: str,
    timeout: float | None = None,
    signature: FirmwareSignature | None = None,
    kernels: str = "cmsis_nn",
    allow_modified: bool = False,
) -> QemuRun:
    """Build a bare-metal firmware folder in a temporary copy and run ``images`` through it.

    Args:
        firmware_dir: folder written by ``python -m firmware_gen --engine bnn`` (engine C plus
            the bare-metal project), or by ``--engine tflm`` (built against real TFLite-Micro by
            :func:`emulator.qemu_tflm.run_tflm_harness`); it is copied, never built in place.
        images: raw examples ``(N, ...)`` (uint8 or float32), fed as the firmware's signature
            says (:func:`emulator.signature.encode_inputs`).
        core: core name (``cortex-m4``; ``cortex-m`` works); selects the QEMU machine.
        timeout: seconds before the guest is killed; ``None`` means :func:`default_timeout`.
        signature: the firmware's signature (default: read from the folder).
        kernels: TFLite-Micro's kernel set for a tflm folder (``reference`` or ``cmsis_nn``).
        allow_modified: build the folder even when its files are not the ones its
            ``firmware.json`` lists (:func:`emulator.firmware_files.check_firmware_files`).

    Returns:
        The :class:`QemuRun`.

    Raises:
        InputError: not a firmware folder, files that are not the ones its ``firmware.json``
            lists, inputs that do not fit its signature, unknown core, or missing tools.
        QemuError: build failure (a firmware larger than the core's QEMU machine: "does not
            fit QEMU MACHINE (CORE)" and the linker's overflow), non-zero exit of the firmware,
            calibration or results error, or a class outside ``0..num_classes-1``.
        QemuTimeoutError: the guest hung and was killed.
    """
    firmware_dir = Path(firmware_dir)
    spec = get_core(core)
    from emulator.qemu_tflm import is_tflm_firmware, run_tflm_harness

    if is_tflm_firmware(firmware_dir):
        return run_tflm_harness(
            firmware_dir,
            images,
            core=spec.name,
            kernels=kernels,
            timeout=timeout,
            signature=signature,
            allow_modified=allow_modified,
        )
    _check_folder(firmware_dir)
    check_firmware_files(firmware_dir, allow_modified=allow_modified)
    signature = signature or read_signature(firmware_dir)
    payload = encode_inputs(signature, images)
    count = len(images)
    limit = default_timeout(count) if timeout is None else float(timeout)
    with tempfile.TemporaryDirectory(prefix="bnn-qemu-") as tmp:
        build = _build(firmware_dir, Path(tmp), spec)
        (build.folder / IMAGES_NAME).write_bytes(payload)
        output, seconds = run_guest(build.folder, spec.qemu_machine, count, limit)
        results = read_guest_results(build.folder, output, count)
        footprint = measure_footprint(build.folder, build.engine_sources)
    calibration, instructions = check_guest_results(signature, results, spec.qemu_machine, "bnn_predict")
    return QemuRun(spec.name, spec.qemu_machine, results, instructions, calibration, footprint, seconds, signature)


def run_qemu(
    firmware_dir: Path,
    images: np.ndarray,
    *,
    core: str,
    timeout: float | None = None,
    signature: FirmwareSignature | None = None,
    kernels: str = "cmsis_nn",
    allow_modified: bool = False,
) -> BackendRun:
    """Build a bare-metal firmware folder and run ``images`` through it in QEMU.

    Args:
        firmware_dir: folder written by ``python -m firmware_gen --engine bnn`` (engine C plus
            the bare-metal project); it is copied, never built in place.
        images: raw examples ``(N, ...)`` (uint8 or float32), fed as the firmware's signature says.
        core: core name (``cortex-m4``; ``cortex-m`` works); selects the QEMU machine.
        timeout: seconds before the guest is killed; ``None`` means :func:`default_timeout`.
        signature: the firmware's signature (default: read from the folder).
        kernels: TFLite-Micro's kernel set for a tflm folder.
        allow_modified: build the folder even when its files are not the ones its ``firmware.json`` lists.

    Returns:
        :class:`BackendRun` with the predictions, deployable ``flash_bytes``/``ram_bytes``
        (``ram_source="elf"``), ``instructions_per_inference`` (the mean over the images) and
        ``extra`` (instruction statistics, calibration, stack detail, QEMU wall time, the
        class and the scores of every input as the firmware returned them, the signature).

    Raises:
        InputError: not a firmware folder, files that are not the ones its ``firmware.json``
            lists, inputs that do not fit its signature, unknown core, or missing tools.
        QemuError: build failure, non-zero exit of the firmware, calibration or results error.
        QemuTimeoutError: the guest hung and was killed.
    """
    run = run_harness(
        firmware_dir, images, core=core, timeout=timeout, signature=signature, kernels=kernels, allow_modified=allow_modified
    )
    counts = run.instructions
    extra = {
        "qemu_machine": run.machine,
        "core": run.core,
        "instructions_statistic": "mean",
        "instructions": {
            "mean": float(counts.mean()),
            "median": float(np.median(counts)),
            "min": float(counts.min()),
            "max": float(counts.max()),
            "resolution": run.calibration["instructions_per_tick"],
        },
        "calibration": run.calibration,
        "stack_measured_peak_bytes": run.results.stack_peak_bytes,
        "footprint": run.footprint.detail,
        "qemu_seconds": run.seconds,
        "predictions": run.results.predictions,
        "scores": run.results.scores,
        "signature": run.signature.to_json(),
    }
    return BackendRun(
        predictions=run.results.predictions,
        flash_bytes=run.footprint.flash_bytes,
        ram_bytes=run.footprint.ram_bytes,
        ram_source="elf",
        instructions_per_inference=float(counts.mean()),
        extra=extra,
    )
