"""Flash and RAM of a model's deployable form against every board of :mod:`firmware_gen.targets`.

The need comes from a report that measured it, never from a new measurement:

* bnn models: the deployable part (engine objects linked alone, stack included) of the bnn
  firmware for the board's core, from the QEMU emulator report, else from ``firmware.json``;
* other models: ``firmware.json`` of a tflm firmware (the flatbuffer and TFLite-Micro's arena,
  the same on every core), else the emulator report of the int8, then the float flatbuffer.

A board whose core has no measurement of its own takes the figure of another core's build,
and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.model_report.cells import MISSING, Cell, cell, nbytes, signed_bytes
from emulator.model_report.ladder import bnn_firmwares, is_binary
from emulator.model_report.sources import Doc, ModelSources
from firmware_gen.targets import BOARDS

__all__ = ["Need", "BoardRow", "needs", "board_rows"]


@dataclass(frozen=True)
class Need:
    """A measured flash and RAM figure: where it is in which report, and for which core (None: any)."""

    doc: Doc
    flash_key: str
    ram_key: str
    core: str | None
    what: str


@dataclass
class BoardRow:
    """One board: budgets, needs, margins (budget minus need; negative is over) and the verdict."""

    board: str
    description: str
    core: str
    flash_budget: Cell
    flash_need: Cell
    flash_margin: Cell
    ram_budget: Cell
    ram_need: Cell
    ram_margin: Cell
    verdict: str
    source: str | None
    note: str
    command: str | None = None


def needs(sources: ModelSources) -> list[Need]:
    """Every report that measured the deployable form's flash and RAM, best first."""
    found: list[Need] = []
    if is_binary(sources):
        for doc in sorted(sources.emulations, key=lambda d: d.rel):
            core = (doc.data.get("extra") or {}).get("core")
            if doc.data.get("backend") == "qemu" and doc.data.get("flash_bytes") is not None:
                found.append(Need(doc, "flash_bytes", "ram_bytes", core, "deployable part, QEMU build"))
        for doc in sorted(bnn_firmwares(sources), key=lambda d: d.rel):
            if (doc.data.get("report") or {}).get("flash_bytes") is not None:
                found.append(Need(doc, "report.flash_bytes", "report.ram_bytes", doc.data.get("target"), "deployable part"))
        return found
    for doc in sorted(sources.firmwares, key=lambda d: d.rel):
        if doc.data.get("engine") == "tflm" and (doc.data.get("report") or {}).get("flash_bytes") is not None:
            found.append(Need(doc, "report.flash_bytes", "report.ram_bytes", None, "flatbuffer + TFLite-Micro arena"))
    for suffix in (".int8.tflite", ".tflite"):
        for doc in sorted(sources.emulations, key=lambda d: d.rel):
            model = str(doc.data.get("model", ""))
            if doc.data.get("flash_bytes") is None or not model.endswith(suffix):
                continue
            if suffix == ".tflite" and model.endswith((".int8.tflite", ".lce.tflite")):
                continue
            found.append(Need(doc, "flash_bytes", "ram_bytes", None, f"flatbuffer + {doc.data.get('ram_source')} RAM"))
    return found


def _pick(candidates: list[Need], core: str) -> tuple[Need | None, str]:
    for need in candidates:
        if need.core == core:
            return need, ""
    for need in candidates:
        if need.core is None:
            return need, ""
    if candidates:
        return candidates[0], f"{candidates[0].core} build"
    return None, ""


def _margin(budget: int, need: Cell) -> Cell:
    if need.value is None:
        return Cell(MISSING)
    return Cell(signed_bytes(budget - int(need.value)), value=budget - int(need.value))


def board_rows(sources: ModelSources, folder: str) -> list[BoardRow]:
    """One :class:`BoardRow` per board, in the registry's order.

    Args:
        sources: the model's reports.
        folder: the artifacts folder as the user named it (for the commands of boards not measured).
    """
    candidates = needs(sources)
    binary = is_binary(sources)
    rows = []
    for board in BOARDS.values():
        need, note = _pick(candidates, board.core)
        flash = cell(need.doc if need else None, need.flash_key if need else "", nbytes)
        ram = cell(need.doc if need else None, need.ram_key if need else "", nbytes)
        flash_margin, ram_margin = _margin(board.flash_bytes, flash), _margin(board.ram_bytes, ram)
        margins = [m.value for m in (flash_margin, ram_margin) if m.value is not None]
        verdict = "not measured" if not margins else ("fits" if all(m >= 0 for m in margins) else "OVER")
        command = None
        if need is None:
            model = f"{folder}/{sources.name}.lce.tflite" if binary else f"{folder}/{sources.name}.int8.tflite"
            command = f"python -m firmware_gen --board {board.name} --model {model}"
        rows.append(
            BoardRow(
                board=board.name,
                description=board.description,
                core=board.core,
                flash_budget=Cell(nbytes(board.flash_bytes), value=board.flash_bytes),
                flash_need=flash,
                flash_margin=flash_margin,
                ram_budget=Cell(nbytes(board.ram_bytes), value=board.ram_bytes),
                ram_need=ram,
                ram_margin=ram_margin,
                verdict=verdict,
                source=need.doc.rel if need else None,
                note=(need.what + (f"; {note}" if note else "")) if need else "",
                command=command,
            )
        )
    return rows
