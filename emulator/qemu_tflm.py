"""The ``qemu`` backend for the ``tflm`` engine: real TFLite-Micro on an emulated Cortex-M.

A tflm firmware folder holds the application (``main.cc``, ``model_data.c``, ``tflm_model.h``)
and its QEMU harness in ``qemu/`` (:func:`firmware_gen.baremetal.project.generate_tflm`).
:func:`run_tflm_harness` checks the folder's files against its ``firmware.json``
(:func:`emulator.firmware_files.check_firmware_files`), copies it to a temporary one, gets ``libtensorflow-microlite.a``
for the core and kernel set (:func:`firmware_gen.tflm_build.ensure_library`, cached, only the
model's ops unless a library is given), builds ``build/deployable.elf`` (application + library +
C library helpers, alone) and ``firmware.elf`` (with the harness), runs QEMU with ``-icount
shift=0`` and decodes the results: the same protocol, SysTick method and calibration check as
the bnn engine's harness. Inputs are fed as the folder's signature says (``firmware.json``'s
``report.signature``: raw 8-bit values, one 32-bit word per class), exactly as for a bnn folder.

Footprint: flash = text + data of ``deployable.elf``; RAM = its data + bss (the tensor arena,
the interpreter and resolver objects, TFLite-Micro's statics) + the stack high-water mark the
harness measured (a painted stack under ``tflm_setup`` and every ``tflm_predict``). A static
call-graph bound is not possible here: TFLite-Micro calls kernels through function pointers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emulator.firmware_files import check_firmware_files, copy_ignore
from emulator.qemu import QemuError, QemuRun, check_guest_results, first_error, missing_tools, read_guest_results, run_guest
from emulator.signature import FirmwareSignature, encode_inputs, read_signature
from firmware_gen.baremetal import Footprint
from firmware_gen.baremetal.footprint import parse_size_output
from firmware_gen.baremetal.project import MIN_STACK_BYTES, TFLM_QEMU_DIR
from firmware_gen.baremetal.protocol import IMAGES_NAME
from firmware_gen.targets import Core, get_core
from pipeline.errors import InputError
from pipeline.json_input import parse_json

__all__ = ["DoesNotFitError", "is_tflm_firmware", "firmware_kernel_ops", "machine_fit", "tflm_timeout", "run_tflm_harness"]

_BUILD_TIMEOUT = 900.0
_OVERFLOW = re.compile(r"region `(FLASH|RAM)' overflowed by (\d+) bytes|not enough RAM left for the stack")


class DoesNotFitError(QemuError):
    """The firmware needs more flash or RAM than the QEMU machine of the core has (exit 1).

    Attributes:
        sizes: ``{"text", "data", "bss"}`` of the deployable part, which did link.
    """

    def __init__(self, message: str, sizes: dict[str, int]) -> None:
        super().__init__(message)
        self.sizes = sizes


def is_tflm_firmware(folder: Path) -> bool:
    """A tflm engine folder with its QEMU harness (``main.cc`` and ``qemu/Makefile``)."""
    return (folder / "main.cc").is_file() and (folder / TFLM_QEMU_DIR / "Makefile").is_file()


def firmware_kernel_ops(folder: Path) -> list[str]:
    """The builtin ops the folder's model uses, from its ``firmware.json``.

    Raises:
        InputError: no readable ``firmware.json`` with the tflm engine's ``report.ops``.
    """
    missing = f"{folder}: no firmware.json with report.ops (regenerate it with python -m firmware_gen)"
    try:
        manifest = parse_json((folder / "firmware.json").read_text(encoding="utf-8"))
    except OSError:
        raise InputError(missing) from None
    except ValueError as err:  # not UTF-8, not JSON, or nested too deep
        raise InputError(f"{folder}/firmware.json: not valid JSON ({err})") from None
    try:
        ops = manifest["report"]["ops"]
    except (KeyError, TypeError):
        raise InputError(missing) from None
    if not isinstance(ops, list) or not ops or not all(isinstance(op, str) for op in ops):
        raise InputError(f"{folder}/firmware.json: report.ops must be a list of op names")
    return ops


def machine_fit(sizes: dict[str, int], core: Core) -> str | None:
    """Why the deployable part cannot run on the core's QEMU machine, or ``None`` when it fits.

    Args:
        sizes: ``{"text", "data", "bss"}`` of ``deployable.elf``.
        core: the core (its machine's flash and RAM regions).
    """
    flash = sizes["text"] + sizes["data"]
    ram = sizes["data"] + sizes["bss"] + MIN_STACK_BYTES
    problems = []
    if flash > core.flash.length:
        problems.append(f"{flash:,} B of flash (the machine has {core.flash.length:,})")
    if ram > core.ram.length:
        problems.append(f"{ram:,} B of RAM with a {MIN_STACK_BYTES:,} B stack (the machine has {core.ram.length:,})")
    if not problems:
        return None
    return f"does not fit QEMU {core.qemu_machine} ({core.name}): needs " + " and ".join(problems)


def tflm_timeout(count: int) -> float:
    """Seconds allowed for ``count`` images: 5 minutes plus 5 s per image.

    The zoo's int8 cnn with the reference kernels runs 204 M instructions per image on the
    Cortex-M4; QEMU with ``-icount shift=0`` ran it at about 150 M instructions a second of wall
    time (1.3 s an image) on a machine shared at load average 11 to 15 on 2 cores, with about a
    quarter of a core.
    """
    return 300.0 + 5.0 * count


def _make(folder: Path, target: str, variables: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["make", "-s", target, *variables], cwd=folder, capture_output=True, text=True, timeout=_BUILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise QemuError(f"make {target} did not finish within {_BUILD_TIMEOUT:g} s in a copy of {what}") from None


def _sizes(elf: Path) -> dict[str, int]:
    result = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise QemuError(f"arm-none-eabi-size {elf.name} failed: {result.stderr.strip()[:300]}")
    return next(iter(parse_size_output(result.stdout).values()))


def run_tflm_harness(
    firmware_dir: Path,
    images: np.ndarray,
    *,
    core: str,
    kernels: str = "cmsis_nn",
    library: Any = None,
    timeout: float | None = None,
    signature: FirmwareSignature | None = None,
    log: Callable[[str], None] = print,
    allow_modified: bool = False,
) -> QemuRun:
    """Build a tflm firmware folder with real TFLite-Micro in a temporary copy and run ``images``.

    Args:
        firmware_dir: written by ``python -m firmware_gen --engine tflm`` (with ``qemu/``).
        images: raw examples ``(N, ...)``, fed as the signature says
            (:func:`emulator.signature.encode_inputs`).
        core: the core the folder was generated for.
        kernels: ``reference`` or ``cmsis_nn`` (TFLite-Micro's kernel set).
        library: a :class:`firmware_gen.tflm_build.Library` for this core and kernel set that
            holds the model's ops; ``None`` builds (or reuses) one for the model's ops.
        timeout: seconds before the guest is killed (``None``: :func:`tflm_timeout`).
        signature: the firmware's signature (default: read from ``firmware.json``).
        log: progress printer for the library build.
        allow_modified: build the folder even when its files are not the ones its
            ``firmware.json`` lists.

    Returns:
        The :class:`~emulator.qemu.QemuRun` (footprint as the module docstring says).

    Raises:
        InputError: not a tflm firmware folder, files that are not the ones its ``firmware.json``
            lists, a core or kernel set mismatch, inputs that do not fit the signature, missing tools.
        DoesNotFitError: the firmware needs more flash or RAM than the machine has.
        QemuError: build failure, non-zero exit, calibration or results error.
        QemuTimeoutError: the guest hung and was killed.
    """
    from firmware_gen.tflm_build import ensure_library

    firmware_dir = Path(firmware_dir)
    spec = get_core(core)
    if not is_tflm_firmware(firmware_dir):
        raise InputError(f"{firmware_dir}: not a tflm firmware folder with a QEMU harness (main.cc and qemu/Makefile)")
    missing = missing_tools()
    if missing:
        raise InputError(f"missing tools: {', '.join(missing)}; install them with `make toolchain` (Debian packages)")
    check_firmware_files(firmware_dir, allow_modified=allow_modified)
    signature = signature or read_signature(firmware_dir)
    payload = encode_inputs(signature, images)
    if library is None:
        library = ensure_library(spec.name, kernels, firmware_kernel_ops(firmware_dir), log=log)
    elif library.spec.core != spec.name or library.spec.kernels != kernels:
        raise InputError(f"the library is for {library.spec.core} ({library.spec.kernels}), not {spec.name} ({kernels})")
    count = len(images)
    variables = [f"TFLM_DIR={library.tree}", f"TFLM_LIB={library.path}"]
    with tempfile.TemporaryDirectory(prefix="tflm-qemu-") as tmp:
        folder = Path(tmp) / "firmware"
        shutil.copytree(firmware_dir, folder, ignore=copy_ignore())
        qemu_dir = folder / TFLM_QEMU_DIR
        result = _make(qemu_dir, "build/deployable.elf", variables, str(firmware_dir))
        if result.returncode != 0:
            raise QemuError(
                f"building {firmware_dir.name} against TFLite-Micro failed: {first_error(result.stdout + result.stderr)}"
            )
        sizes = _sizes(qemu_dir / "build" / "deployable.elf")
        result = _make(qemu_dir, "firmware.elf", variables, str(firmware_dir))
        if result.returncode != 0:
            reason = machine_fit(sizes, spec)
            if reason is not None or _OVERFLOW.search(result.stderr):
                message = reason or f"{firmware_dir.name} does not fit QEMU {spec.qemu_machine}: {first_error(result.stderr)}"
                raise DoesNotFitError(message, sizes)
            raise QemuError(
                f"linking the QEMU harness of {firmware_dir.name} failed: {first_error(result.stdout + result.stderr)}"
            )
        (qemu_dir / IMAGES_NAME).write_bytes(payload)
        limit = tflm_timeout(count) if timeout is None else float(timeout)
        output, seconds = run_guest(qemu_dir, spec.qemu_machine, count, limit)
        results = read_guest_results(qemu_dir, output, count)
    calibration, instructions = check_guest_results(signature, results, spec.qemu_machine, "tflm_predict")
    static = sizes["data"] + sizes["bss"]
    stack = results.stack_peak_bytes
    detail = {
        "flash_source": "arm-none-eabi-size qemu/build/deployable.elf (main.cc, model_data.c, TFLite-Micro, libc): text + data",
        "ram_source": "deployable.elf data + bss (arena included) + painted stack peak of tflm_setup and tflm_predict",
        "deployable_elf": sizes,
        "static_ram_bytes": static,
        "stack_bytes": stack,
        "stack_source": "painted (measured high-water mark)",
        "library": str(library.path),
        "kernels": kernels,
        "library_objects": library.record.get("objects"),
    }
    footprint = Footprint(flash_bytes=sizes["text"] + sizes["data"], ram_bytes=static + stack, detail=detail)
    return QemuRun(spec.name, spec.qemu_machine, results, instructions, calibration, footprint, seconds, signature)
