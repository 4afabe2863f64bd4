"""Engine dispatch: pick an engine for a flatbuffer and run it (the one place that knows them).

Engines: ``tflm`` (:mod:`firmware_gen.tflm`) and ``bnn`` (``firmware_gen.bnn``, its own issue).
For ``bnn``, the bare-metal QEMU project (``firmware_gen.baremetal``) adds its files when that
module exists. Both are imported lazily, so ``tflm`` works while they are being written.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from convert.flatbuffer import Model
from firmware_gen.engine import EngineOutput
from firmware_gen.targets import Board, Core
from train.errors import InputError

__all__ = ["ENGINES", "choose_engine", "run_engine"]

ENGINES = ("auto", "tflm", "bnn")


def choose_engine(requested: str, model: Model) -> str:
    """Resolve ``auto``: ``bnn`` for flatbuffers with Larq Compute Engine ops, ``tflm`` otherwise.

    Raises:
        InputError: ``requested`` is not one of :data:`ENGINES`.
    """
    if requested not in ENGINES:
        raise InputError(f"unknown engine {requested!r}: valid engines are {', '.join(ENGINES)}")
    if requested != "auto":
        return requested
    return "bnn" if model.has_lce_ops else "tflm"


def _optional_module(name: str) -> ModuleType | None:
    """Import ``name`` if it exists and defines ``generate``; ``None`` if it is not there (yet)."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and name.startswith(err.name):
            return None
        raise
    return module if callable(getattr(module, "generate", None)) else None


def run_engine(engine: str, model: Model, core: Core, board: Board | None) -> EngineOutput:
    """Run ``engine`` (``tflm`` or ``bnn``, already resolved) and return its files and report.

    For ``bnn`` the output of ``firmware_gen.baremetal.generate(model, core, board, output)`` is
    merged in when that module exists: its files are added (a path both produce is an error
    unless the bytes agree) and its report entries are added, winning on a shared key. The
    deployable part is then built with arm-none-eabi-gcc (when installed) and its ELF
    ``flash_bytes``/``ram_bytes`` added to the report, so ``--board`` can judge it.

    Raises:
        InputError: the engine is unknown or not available yet, or the engine rejects the model.
    """
    if engine == "tflm":
        from firmware_gen import tflm

        return tflm.generate(model, core, board)
    if engine != "bnn":
        raise InputError(f"unknown engine {engine!r}: valid engines are tflm, bnn")
    bnn = _optional_module("firmware_gen.bnn")
    if bnn is None:
        raise InputError(
            f"{model.path}: the bnn engine is not available yet (firmware_gen.bnn); use --engine tflm for models without LCE ops"
        )
    output: EngineOutput = bnn.generate(model, core, board)
    baremetal = _optional_module("firmware_gen.baremetal")
    if baremetal is None:
        return output
    extra: EngineOutput = baremetal.generate(model, core, board, output)
    files = dict(output.files)
    for path, data in extra.files.items():
        if path in files and files[path] != data:
            raise InputError(f"engines disagree on {path}: bnn and baremetal both generate it with different content")
        files[path] = data
    report = {**output.report, **extra.report}
    report.update(_deployable_figures(files, report))
    return EngineOutput(files=files, report=report)


def _deployable_figures(files: dict[str, bytes], report: dict) -> dict:
    """``flash_bytes``/``ram_bytes`` of the deployable part, built with the Arm toolchain.

    Without the toolchain the figures are absent and the CLI says the budget was not checked.
    """
    from firmware_gen.baremetal.footprint import measure_generated

    sources = list(report.get("baremetal", {}).get("engine_sources", []))
    footprint = measure_generated(files, sources) if sources else None
    if footprint is None:
        return {}
    return {
        "flash_bytes": footprint.flash_bytes,
        "ram_bytes": footprint.ram_bytes,
        "ram_source": "elf",
        "footprint": {key: footprint.detail[key] for key in ("flash_source", "ram_source", "static_ram_bytes", "stack_bytes")},
    }
