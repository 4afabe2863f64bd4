"""The stages of a side-by-side run, each through the project's own command, and what their reports say.

For every (row, core): ``python -m firmware_gen --engine E --target CORE --model FLATBUFFER --out
FOLDER`` generates the firmware (:func:`generate`); the TFLite-Micro libraries the tflm firmware
needs are built or taken from the cache first, one at a time (:func:`ensure_libraries`, the
same call the emulator makes, so the emulator then reuses them); ``python -m emulator FOLDER
--backend qemu --target CORE [--tflm-kernels K]`` runs it on QEMU and writes
``FOLDER/FOLDER.qemu.emulate.json`` (:func:`emulate`), whose figures become the run's entry.
Each command runs as a child process (its one-line error becomes this command's, naming the
row and the core), so runs can go side by side and the commands recorded are the commands run.

A firmware larger than the core's QEMU machine is reported, not run: the emulator refuses it in
one line ("... does not fit QEMU MACHINE (CORE): ..."), and the entry keeps that line as its
note, with the flash and RAM the bnn engine measured when it generated the folder (a tflm
firmware's whole size is only known once linked: none).

On an audio dataset every flatbuffer carries the front end, so every firmware takes raw 16-bit
samples (the clip API) and the emulator feeds it the raw test clips: its report adds the
instructions per clip split into front end and network, whether the features the chip made equal
Python's on every clip, and the flash and RAM of each link. The entry keeps them
(``instructions_per_clip``, ``features``, ``flash_ram``); a run whose features differ counts as
ran (the emulator's exit 1 with its report written), the side-by-side command fails at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.side_by_side.spec import Row
from pipeline.errors import CheckError, InputError, ToolError, first_line

__all__ = [
    "Run",
    "firmware_gen_command",
    "emulator_command",
    "stage_error",
    "does_not_fit",
    "generate",
    "ensure_libraries",
    "emulate",
    "entry_from_report",
    "not_run_entry",
    "features_differ",
]

_REPO = Path(__file__).resolve().parent.parent.parent
_NOT_FIT = re.compile(r"\bdoes not fit QEMU [\w-]+")


@dataclass
class Run:
    """One firmware of one row on one core.

    Attributes:
        row: the row.
        core: the core (registry name).
        folder: where the firmware is generated (its emulator report goes inside).
        commands: ``firmware_gen`` and ``emulator`` argument lists, as recorded (``python -m ...``).
        manifest: the folder's ``firmware.json`` once generated.
        audio: the dataset is audio: the firmware takes raw clips (front end on the chip).
    """

    row: Row
    core: str
    folder: Path
    commands: dict[str, list[str]] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    audio: bool = False

    @property
    def report_path(self) -> Path:
        """``FOLDER/FOLDERNAME.qemu.emulate.json`` (the emulator's default report path)."""
        from emulator.report import default_json_path

        return default_json_path(self.folder, "firmware", "qemu")

    @property
    def name(self) -> str:
        """``ROW LABEL on CORE`` (progress lines and errors)."""
        return f"{self.row.label!r} on {self.core}"


def firmware_gen_command(row: Row, core: str, folder: Path) -> list[str]:
    """``python -m firmware_gen --engine E --target CORE --model FLATBUFFER --out FOLDER``."""
    command = ["python", "-m", "firmware_gen", "--engine", row.engine, "--target", core]
    return [*command, "--model", str(row.flatbuffer), "--out", str(folder)]


def emulator_command(row: Row, core: str, folder: Path, *, data: str | None, limit: int | None, timeout: float) -> list[str]:
    """``python -m emulator FOLDER --backend qemu --target CORE [--tflm-kernels K] [--data D] [--limit N] --timeout S``.

    No budget is given to the emulator (boards are judged afterwards, from its figures) and no
    ``--reference``: the firmware is compared with its flatbuffer's interpreter, the emulator's
    default; the Keras comparison reads the classes the report records.
    """
    command = ["python", "-m", "emulator", str(folder), "--backend", "qemu", "--target", core]
    if row.engine == "tflm" and row.kernels is not None:
        command += ["--tflm-kernels", row.kernels]
    if data is not None:
        command += ["--data", data]
    if limit is not None:
        command += ["--limit", str(limit)]
    return [*command, "--timeout", f"{timeout:g}"]


def _environment() -> dict[str, str]:
    """The children's environment: this checkout first on ``PYTHONPATH``, so they run the same code."""
    env = dict(os.environ)
    paths = [part for part in env.get("PYTHONPATH", "").split(os.pathsep) if part]
    if str(_REPO) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(_REPO), *paths])
    return env


def _run_child(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a recorded ``python -m ...`` command with this interpreter, output captured."""
    return subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, env=_environment(), stdin=subprocess.DEVNULL, check=False
    )


def stage_error(run: Run, stage: str, result: subprocess.CompletedProcess[str]) -> ToolError:
    """The one-line error for a failed stage: the child's own error line, prefixed with the row and core.

    A child's exit 2 (bad input: a model its engine refuses, missing tools) stays an
    :class:`InputError`; anything else (a build, a QEMU run, a crash) is a :class:`CheckError`.
    """
    lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    reason = first_line(errors[-1] if errors else (lines[-1] if lines else f"{stage} printed nothing"))
    message = f"row {run.name}: {stage} exited with {result.returncode}: {reason}"
    return InputError(message) if result.returncode == 2 else CheckError(message)


def does_not_fit(line: str) -> bool:
    """Whether an emulator error line says the firmware is larger than the core's QEMU machine."""
    return bool(_NOT_FIT.search(line))


def generate(run: Run) -> dict[str, Any]:
    """Generate the run's firmware with ``python -m firmware_gen``; return its ``firmware.json``.

    Raises:
        InputError: the generator refused the model or the arguments (its exit 2).
        CheckError: the generator failed otherwise.
    """
    result = _run_child(run.commands["firmware_gen"])
    if result.returncode != 0:
        raise stage_error(run, "python -m firmware_gen", result)
    run.manifest = json.loads((run.folder / "firmware.json").read_text(encoding="utf-8"))
    return run.manifest


def ensure_libraries(runs: list[Run], log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Build (or take from the cache) every TFLite-Micro library the tflm runs need, one at a time.

    Each library is the one the emulator asks for (:func:`firmware_gen.tflm_build.ensure_library`
    with the core, the kernel set and the folder's ops), so the emulator finds it built.

    Returns:
        One record per library: core, kernels, ops, path (relative to the checkout when inside
        it), objects, whether it was reused, its build seconds and the pinned revisions.

    Raises:
        InputError: no TFLite-Micro sources, missing tools.
        CheckError: a build failed.
    """
    from emulator.qemu_tflm import firmware_kernel_ops
    from firmware_gen.tflm_build import ensure_library
    from pipeline.data import portable_source

    records: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}
    for run in runs:
        if run.row.engine != "tflm" or run.row.kernels is None:
            continue
        ops = tuple(firmware_kernel_ops(run.folder))
        key = (run.core, run.row.kernels, ops)
        if key in records:
            continue
        start = time.perf_counter()
        library = ensure_library(run.core, run.row.kernels, ops, log=log)
        config = library.record.get("config") or {}
        records[key] = {
            "core": run.core,
            "kernels": run.row.kernels,
            "ops": list(ops),
            "path": portable_source(library.path, _REPO),
            "objects": library.record.get("objects"),
            "reused": library.reused,
            "build_seconds": library.record.get("seconds"),
            "seconds_this_run": round(time.perf_counter() - start, 1),
            "compiler": config.get("compiler"),
            "pins": (config.get("tree") or {}).get("pins"),
        }
    return list(records.values())


def features_differ(report: dict[str, Any]) -> bool:
    """Whether a report from raw clips says the chip's features differ from Python's on some clip."""
    entry = report.get("frontend") or {}
    return report.get("fed") == "raw" and entry.get("features_equal") != entry.get("clips")


def emulate(run: Run, *, data_sha256: Any) -> dict[str, Any]:
    """Run the firmware on QEMU with ``python -m emulator`` and read its report.

    Args:
        run: a generated run (its ``commands["emulator"]`` set).
        data_sha256: the dataset's sha256 as this process loaded it; the report's must be equal.

    Returns:
        ``{"ran": True, "report": the emulator's JSON}``, or ``{"ran": False, "note": the
        emulator's line}`` when the firmware is larger than the core's QEMU machine.
        The report of a run whose agreement is under the emulator's bar (its exit 1, the
        JSON written) counts as ran: the bar's verdict is in ``report["agreement_gate"]``; so
        does a run from raw clips whose features differ from Python's (:func:`features_differ`).

    Raises:
        InputError: the emulator's exit 2.
        CheckError: the build or the QEMU run failed, or the emulator read another dataset.
    """
    run.report_path.unlink(missing_ok=True)
    result = _run_child(run.commands["emulator"])
    report = None
    if run.report_path.is_file():
        report = json.loads(run.report_path.read_text(encoding="utf-8"))
    gate_failed = report is not None and ((report.get("agreement_gate") or {}).get("passed") is False or features_differ(report))
    if result.returncode != 0 and not (result.returncode == 1 and gate_failed):
        error = stage_error(run, "python -m emulator", result)
        if result.returncode == 1 and does_not_fit(str(error)):
            return {"ran": False, "note": str(error).split(": error: ", 1)[-1]}
        raise error
    if report is None:
        raise CheckError(f"row {run.name}: python -m emulator wrote no {run.report_path}")
    if report.get("data", {}).get("sha256") != data_sha256:
        raise CheckError(f"row {run.name}: the emulator read other data ({report.get('data', {}).get('source')}) than this run")
    return {"ran": True, "report": report}


def _base_entry(run: Run) -> dict[str, Any]:
    from firmware_gen.targets import get_core

    return {
        "label": run.row.label,
        "core": run.core,
        "qemu_machine": get_core(run.core).qemu_machine,
        "engine": run.row.engine,
        "kernels": run.row.kernels,
        "deployment": run.row.deployment,
        "firmware": str(run.folder),
        "commands": run.commands,
        "model_sha256": (run.manifest.get("model") or {}).get("sha256"),
    }


def not_run_entry(run: Run, note: str) -> dict[str, Any]:
    """The entry of a firmware the core's QEMU machine cannot hold: its note and what firmware_gen measured.

    The bnn engine records the flash and RAM of the deployable part in ``firmware.json`` (the
    same figures the emulator reports); the tflm engine's folder only knows the flatbuffer and
    the arena, so its whole size stays unknown.
    """
    figures = run.manifest.get("report") or {}
    bnn = run.row.engine == "bnn" and isinstance(figures.get("flash_bytes"), int) and isinstance(figures.get("ram_bytes"), int)
    return {
        **_base_entry(run),
        "ran": False,
        "note": note,
        "report": None,
        "images": None,
        "accuracy": None,
        "correct": None,
        "agreement": {"interpreter": None, "keras": None},
        "instructions": None,
        "flash_bytes": figures["flash_bytes"] if bnn else None,
        "ram_bytes": figures["ram_bytes"] if bnn else None,
        "ram_source": "firmware.json (bnn engine, arm-none-eabi-gcc; not run)" if bnn else None,
        "qemu_seconds": None,
        **(
            {"instructions_per_clip": None, "instructions_per_clip_statistics": None, "features": None, "flash_ram": None}
            if run.audio
            else {}
        ),
    }


def entry_from_report(run: Run, report: dict[str, Any], keras: dict[str, Any] | None) -> dict[str, Any]:
    """The run's entry: the emulator report's figures, and agreement with Keras when the row has a reference.

    Args:
        run: the run.
        report: its ``*.qemu.emulate.json``.
        keras: ``{"path", "predictions", ...}`` of the row's Keras reference on the same images, or ``None``.

    Returns:
        JSON-ready: accuracy, both agreements, instruction statistics, flash, RAM (with its
        source, static part and stack), QEMU wall time, the report's path; on an audio dataset
        (``run.audio``) also ``instructions_per_clip``, ``features`` and ``flash_ram``
        (:func:`_audio_figures`).

    Raises:
        CheckError: a Keras comparison is asked for and the report records no classes, or an
            audio run's report lacks its audio entries.
    """
    extra = report.get("extra") or {}
    footprint = extra.get("footprint") or {}
    reference = report.get("reference") or {}
    interpreter = {
        "backend": reference.get("backend"),
        "path": reference.get("path"),
        "agreement": report.get("agreement"),
        "agreeing": report.get("agreeing"),
        "gate": report.get("agreement_gate"),
    }
    keras_agreement = None
    if keras is not None:
        if "predictions" not in extra:
            raise CheckError(f"row {run.name}: {run.report_path} records no classes (extra.predictions): regenerate it")
        predictions = np.asarray(extra["predictions"])
        same = int(np.sum(predictions == np.asarray(keras["predictions"])[: len(predictions)]))
        keras_agreement = {"path": keras["path"], "agreement": same / len(predictions), "agreeing": same}
    entry = {
        **_base_entry(run),
        "ran": True,
        "note": None,
        "report": str(run.report_path),
        "images": report["images"],
        "accuracy": report["accuracy"],
        "correct": report["correct"],
        "agreement": {"interpreter": interpreter, "keras": keras_agreement},
        "instructions": extra.get("instructions"),
        "flash_bytes": report["flash_bytes"],
        "ram_bytes": report["ram_bytes"],
        "ram_source": footprint.get("ram_source") or report.get("ram_source"),
        "static_ram_bytes": footprint.get("static_ram_bytes"),
        "stack_bytes": footprint.get("stack_bytes"),
        "qemu_seconds": extra.get("qemu_seconds"),
    }
    if run.audio:
        entry.update(_audio_figures(run, report))
    return entry


def _audio_figures(run: Run, report: dict[str, Any]) -> dict[str, Any]:
    """The audio entries of a run from raw clips: instructions per clip (split), the features' check, each link's size.

    ``instructions_per_clip`` holds the means of the front end, the network and their total (the
    report's; ``instructions`` keeps the total's statistics), ``instructions_per_clip_statistics``
    each part's mean, median, min and max; ``features`` how many clips' features equal Python's,
    byte for byte, and ``equal`` (all of them); ``flash_ram`` each link's flash and RAM (the
    deployable part, the network alone, the front end alone).

    Raises:
        CheckError: the report was not fed raw clips or records no instructions per clip.
    """
    if report.get("fed") != "raw":
        raise CheckError(f"row {run.name}: {run.report_path} was not fed the raw clips (fed: {report.get('fed')})")
    split = report.get("instructions_per_clip") or {}
    if any(split.get(part) is None for part in ("frontend", "network", "total")):
        raise CheckError(f"row {run.name}: {run.report_path} records no instructions per clip (front end, network)")
    frontend = report.get("frontend") or {}
    statistics = (report.get("extra") or {}).get("instructions_per_clip") or {}
    return {
        "instructions_per_clip": {part: split[part] for part in ("frontend", "network", "total")},
        "instructions_per_clip_statistics": statistics,
        "features": {
            "equal": not features_differ(report),
            "clips": frontend.get("clips"),
            "clips_equal": frontend.get("features_equal"),
            "differ": frontend.get("features_differ"),
            "config_sha256": frontend.get("config_sha256"),
            "chunks": frontend.get("chunks"),
        },
        "flash_ram": report.get("flash_ram"),
    }
