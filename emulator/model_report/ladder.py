"""The verification ladder and the instructions per core, read from the stages' reports.

Rungs, in order: Keras (the ``.h5``), the converter's check of each flatbuffer against Keras
(``NAME.convert.json``), the interpreters (``tflite``/``tflm``/``lce`` emulator reports), the
generated C on the host and the firmware under QEMU (emulator reports inside firmware folders).
A rung the pipeline should have climbed but did not is a row that says "not run" and gives the
command that would run it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from emulator.model_report.cells import Cell, cell, count, instructions, lookup, nbytes, percent
from emulator.model_report.sources import Doc, ModelSources
from firmware_gen.targets import CORES

__all__ = ["Rung", "CoreRow", "DEMO_CORE", "is_binary", "ladder", "core_rows", "bnn_firmwares"]

DEMO_CORE = "cortex-m4"
_BACKEND_ORDER = {name: rank for rank, name in enumerate(("keras", "tflite", "tflm", "lce", "host", "qemu"))}
_STAGES = {
    "keras": "Keras",
    "tflite": "interpreter",
    "tflm": "interpreter",
    "lce": "interpreter",
    "host": "generated C, host",
    "qemu": "firmware, QEMU",
}


@dataclass
class Rung:
    """One row of the ladder.

    Attributes:
        stage: what runs (Keras, convert check, interpreter, generated C, firmware).
        backend: the emulator backend (or interpreter) that produced the figures.
        artifact: the file or folder it ran.
        source: the JSON the row comes from, or ``None`` when not run.
        images: test images run.
        accuracy: against the labels.
        agreement: argmax agreement with ``reference``.
        reference: what the agreement is measured against (backend and file), or a dash.
        command: the command that would run it (rows not run), else ``None``.
        note: a short remark (skipped formats, the TFLite-Micro cross-check).
    """

    stage: str
    backend: str
    artifact: str
    source: str | None = None
    images: Cell = field(default_factory=lambda: Cell("–"))
    accuracy: Cell = field(default_factory=lambda: Cell("–"))
    agreement: Cell = field(default_factory=lambda: Cell("–"))
    reference: str = "–"
    command: str | None = None
    note: str = ""


@dataclass
class CoreRow:
    """Instructions per inference on one core (QEMU), or the command that would measure them."""

    core: str
    machine: str
    source: str | None
    images: Cell
    mean: Cell
    median: Cell
    minimum: Cell
    maximum: Cell
    flash: Cell
    ram: Cell
    command: str | None = None


def _q(path: str | Path) -> str:
    return shlex.quote(str(path))


def is_binary(sources: ModelSources) -> bool:
    """True for a model with Larq binary layers (its deployable form is the bnn engine's C)."""
    if sources.convert is not None:
        return bool(sources.convert.data.get("binary_layers"))
    return any(doc.data.get("engine") == "bnn" for doc in sources.firmwares) or any(
        doc.data.get("backend") == "lce" for doc in sources.emulations
    )


def bnn_firmwares(sources: ModelSources) -> list[Doc]:
    """``firmware.json`` of the model's bnn-engine folders."""
    return [doc for doc in sources.firmwares if doc.data.get("engine") == "bnn"]


def _emulated_rung(doc: Doc) -> Rung:
    data = doc.data
    backend = str(data.get("backend", "?"))
    stage = _STAGES.get(backend, backend)
    if backend == "qemu":
        core = lookup(data, "extra.core")
        stage = f"{stage} {core}" if core else stage
    reference = data.get("reference")
    ref_text = "–"
    if isinstance(reference, dict) and data.get("agreement") is not None:
        ref_text = f"{reference.get('backend', '?')} ({Path(str(reference.get('path', '?'))).name})"
    note = ""
    tflm = data.get("tflm")
    if isinstance(tflm, dict) and tflm.get("agreement_with_tflite") is not None:
        note = f"TFLite-Micro: same predictions as tflite on {percent(tflm['agreement_with_tflite'])}"
    return Rung(
        stage=stage,
        backend=backend,
        artifact=Path(str(data.get("model", "?"))).name,
        source=doc.rel,
        images=cell(doc, "images", count),
        accuracy=cell(doc, "accuracy", percent),
        agreement=cell(doc, "agreement", percent),
        reference=ref_text,
        note=note,
    )


def _convert_rungs(sources: ModelSources, folder: str) -> list[Rung]:
    doc = sources.convert
    if doc is None:
        return [
            Rung(
                "convert check",
                "tflite / lce",
                f"{sources.name}.h5",
                command=f"python -m convert {_q(f'{folder}/{sources.name}.h5')}",
            )
        ]
    rungs = []
    for fmt, entry in sorted((doc.data.get("formats") or {}).items()):
        if not isinstance(entry, dict):
            continue
        backend = "lce" if fmt == "lce" else "tflite"
        if entry.get("skipped"):
            rungs.append(Rung("convert check", backend, f"({fmt})", note=f"skipped: {entry.get('reason', '')}"))
            continue
        rungs.append(
            Rung(
                stage="convert check",
                backend=backend,
                artifact=Path(str(entry.get("path", fmt))).name,
                source=doc.rel,
                images=cell(doc, f"formats.{fmt}.images", count),
                accuracy=cell(doc, f"formats.{fmt}.accuracy", percent),
                agreement=cell(doc, f"formats.{fmt}.agreement", percent),
                reference=f"keras ({Path(str(lookup(doc.data, 'source.path') or sources.name + '.h5')).name})",
            )
        )
    return rungs


def _expected_flatbuffers(sources: ModelSources) -> list[tuple[str, str]]:
    """(format, file name) of the flatbuffers the interpreter rungs should run."""
    if sources.convert is None:
        return []
    formats = sources.convert.data.get("formats") or {}
    wanted = ("lce",) if is_binary(sources) else ("int8", "float")
    found = []
    for fmt in wanted:
        entry = formats.get(fmt)
        if isinstance(entry, dict) and not entry.get("skipped") and entry.get("path"):
            found.append((fmt, Path(str(entry["path"])).name))
    return found


def _firmware_folder(sources: ModelSources, folder: str, core: str) -> tuple[str, str]:
    """(folder of the model's bnn firmware for ``core``, the firmware_gen command that writes it, or "")."""
    for doc in bnn_firmwares(sources):
        if doc.data.get("target") == core:
            return _q(f"{folder}/{Path(doc.rel).parent.as_posix()}"), ""
    target = f"{folder}/firmware/{sources.name}.lce-{core}"
    make = f"python -m firmware_gen --target {core} --model {_q(f'{folder}/{sources.name}.lce.tflite')} && "
    return _q(target), make


def ladder(sources: ModelSources, folder: str) -> list[Rung]:
    """Every rung for ``sources``: run ones with their figures, expected ones not run with a command.

    Args:
        sources: the model's reports.
        folder: the artifacts folder as the user named it (for the commands).

    Returns:
        Rungs from Keras to QEMU.
    """
    by_backend: dict[str, list[Doc]] = {}
    for doc in sorted(sources.emulations, key=lambda d: (_BACKEND_ORDER.get(str(d.data.get("backend")), 99), d.rel)):
        by_backend.setdefault(str(doc.data.get("backend")), []).append(doc)
    name = sources.name
    rungs: list[Rung] = []
    keras = by_backend.pop("keras", [])
    rungs += [_emulated_rung(doc) for doc in keras] or [
        Rung("Keras", "keras", f"{name}.h5", command=f"python -m emulator {_q(f'{folder}/{name}.h5')}")
    ]
    rungs += _convert_rungs(sources, folder)
    interpreted = [doc for backend in ("tflite", "tflm", "lce") for doc in by_backend.pop(backend, [])]
    rungs += [_emulated_rung(doc) for doc in interpreted]
    ran = {Path(str(doc.data.get("model", ""))).name for doc in interpreted}
    for fmt, file_name in _expected_flatbuffers(sources):
        if file_name not in ran:
            backend = "lce" if fmt == "lce" else "tflite"
            rungs.append(Rung("interpreter", backend, file_name, command=f"python -m emulator {_q(f'{folder}/{file_name}')}"))
    binary = is_binary(sources)
    for backend in ("host", "qemu"):
        docs = by_backend.pop(backend, [])
        rungs += [_emulated_rung(doc) for doc in docs]
        if docs or not binary:
            continue
        target, make = _firmware_folder(sources, folder, DEMO_CORE)
        run = f"python -m emulator {target} --backend {backend}"
        if backend == "qemu":
            run += f" --target {DEMO_CORE} --reference {_q(f'{folder}/{name}.h5')}"
        stage = _STAGES[backend] + (f" {DEMO_CORE}" if backend == "qemu" else "")
        rungs.append(Rung(stage, backend, Path(target.strip("'")).name, command=make + run))
    for docs in by_backend.values():
        rungs += [_emulated_rung(doc) for doc in docs]
    return rungs


def core_rows(sources: ModelSources, folder: str) -> list[CoreRow]:
    """Instructions per inference on every core under QEMU (bnn firmware), measured or not run.

    When several reports exist for one core, the one over the most images is shown.
    """
    measured: dict[str, Doc] = {}
    for doc in sources.emulations:
        core = lookup(doc.data, "extra.core")
        if doc.data.get("backend") != "qemu" or not isinstance(core, str):
            continue
        best = measured.get(core)
        if best is None or int(doc.data.get("images") or 0) > int(best.data.get("images") or 0):
            measured[core] = doc
    rows = []
    for name, core in CORES.items():
        doc = measured.get(name)
        command = None
        if doc is None:
            target, make = _firmware_folder(sources, folder, name)
            command = f"{make}python -m emulator {target} --backend qemu --target {name}"
        rows.append(
            CoreRow(
                core=name,
                machine=core.qemu_machine,
                source=doc.rel if doc else None,
                images=cell(doc, "images", count),
                mean=cell(doc, "instructions_per_inference", instructions),
                median=cell(doc, "extra.instructions.median", instructions),
                minimum=cell(doc, "extra.instructions.min", instructions),
                maximum=cell(doc, "extra.instructions.max", instructions),
                flash=cell(doc, "flash_bytes", nbytes),
                ram=cell(doc, "ram_bytes", nbytes),
                command=command,
            )
        )
    return rows
