"""TFLite-Micro on the core: the tflm engine's firmware, real TFLite-Micro, QEMU, both kernel sets.

For every non-binary model (``cnn``, ``mlp``), each flatbuffer (``int8``, ``float``), each core
(default Cortex-M4, M7, M0) and each kernel set (``reference``, ``cmsis_nn``): generate the tflm
engine's firmware (``python -m firmware_gen --engine tflm``), build it against
``libtensorflow-microlite.a`` (:mod:`firmware_gen.tflm_build`, one library per core and kernel
set holding the ops of every model, cached) and run it on QEMU
(:func:`emulator.qemu_tflm.run_tflm_harness`): SysTick under ``-icount shift=0`` as for the bnn
engine. Runs go cheapest first (mlp, then the int8 cnn with CMSIS-NN, ...), so a run cut short
leaves the most rows; a run QEMU did not finish in time is reported with a note, not run, like
a firmware too large for the machine. Each run is compared with the TFLite-Micro Python interpreter on the same images, fed
exactly as ``main.cc`` feeds the model (:func:`emulator.reference.firmware_input_values`), in
a child process (:func:`pipeline.isolation.run_checked`). A firmware larger than the core's QEMU machine is reported, not run.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.prepare import Prepared
from pipeline.errors import CheckError

__all__ = [
    "TFLM_CORES",
    "TFLM_KERNELS",
    "TFLM_FORMATS",
    "KERNEL_LABELS",
    "tflm_ops",
    "generate_tflm_firmware",
    "oncore_entries",
    "m4_rows",
]

_REPO = Path(__file__).resolve().parent.parent
TFLM_CORES = ("cortex-m4", "cortex-m7", "cortex-m0")
TFLM_KERNELS = ("reference", "cmsis_nn")
TFLM_FORMATS = ("int8", "float")
KERNEL_LABELS = {"reference": "TFLite-Micro, reference kernels", "cmsis_nn": "TFLite-Micro + CMSIS-NN"}


def tflm_ops(prepared: dict[str, Prepared]) -> list[str]:
    """Every builtin op of the flatbuffers the on-core runs use (the libraries hold them all)."""
    from convert.flatbuffer import read_model

    ops: set[str] = set()
    for prep in prepared.values():
        if prep.convert_report.get("binary_layers"):
            continue
        for fmt in TFLM_FORMATS:
            if fmt in prep.flatbuffers:
                ops.update(read_model(prep.flatbuffers[fmt]).builtin_ops)
    return sorted(ops)


def generate_tflm_firmware(model: Path, core: str, out: Path) -> dict[str, Any]:
    """``python -m firmware_gen --engine tflm --target CORE --model MODEL --out OUT`` (in-process).

    Returns:
        The folder's ``firmware.json``.

    Raises:
        CheckError: the generator failed (its one-line error is on stderr).
    """
    import json

    from firmware_gen.cli import main as firmware_gen_main

    with contextlib.redirect_stdout(io.StringIO()):
        status = firmware_gen_main(["--engine", "tflm", "--target", core, "--model", str(model), "--out", str(out)])
    if status != 0:
        raise CheckError(f"python -m firmware_gen --engine tflm --target {core} --model {model} failed (exit {status})")
    return json.loads((out / "firmware.json").read_text(encoding="utf-8"))


def _entry(prep: Prepared, fmt: str, core: str, kernels: str, count: int) -> dict[str, Any]:
    return {
        "model": prep.name,
        "format": fmt,
        "engine": f"tflm-{kernels}",
        "label": KERNEL_LABELS[kernels],
        "kernels": kernels,
        "core": core,
        "qemu_machine": None,
        "images": count,
        "ran": False,
        "note": None,
        "accuracy": None,
        "agreement_tflm_python": None,
        "agreement_keras": None,
        "instructions": None,
        "instructions_per_inference": None,
        "firmware_flash_bytes": None,
        "ram_bytes": None,
        "static_ram_bytes": None,
        "stack_bytes": None,
        "arena_bytes": None,
        "model_bytes": None,
        "seconds": None,
    }


def _record(
    entry: dict[str, Any], run: Any, reference: np.ndarray, labels: np.ndarray, keras: np.ndarray, seconds: float
) -> None:
    """Fill ``entry`` from a :class:`emulator.qemu.QemuRun`."""
    predictions, counts = run.results.predictions, run.instructions
    entry.update(
        {
            "ran": True,
            "qemu_machine": run.machine,
            "accuracy": float(np.mean(predictions == labels)),
            "agreement_tflm_python": float(np.mean(predictions == reference)),
            "agreement_keras": float(np.mean(predictions == keras)),
            "instructions": {
                "mean": float(counts.mean()),
                "median": float(np.median(counts)),
                "min": float(counts.min()),
                "max": float(counts.max()),
            },
            "instructions_per_inference": float(counts.mean()),
            "firmware_flash_bytes": run.footprint.flash_bytes,
            "ram_bytes": run.footprint.ram_bytes,
            "static_ram_bytes": run.footprint.detail["static_ram_bytes"],
            "stack_bytes": run.footprint.detail["stack_bytes"],
            "seconds": round(seconds, 2),
        }
    )
    disagree = np.flatnonzero(predictions != reference)
    if disagree.size:
        entry["note"] = f"differs from the Python interpreter on images {[int(i) for i in disagree[:10]]}"


def oncore_entries(
    prepared: dict[str, Prepared],
    images: np.ndarray,
    labels: np.ndarray,
    keras: dict[str, np.ndarray],
    work: Path,
    *,
    cores: tuple[str, ...] = TFLM_CORES,
    kernel_sets: tuple[str, ...] = TFLM_KERNELS,
    jobs: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run every (model, format, core, kernel set) on QEMU against the Python interpreter.

    Args:
        prepared: the bench's models (binary ones are skipped: TFLite-Micro cannot run LCE ops).
        images: the raw test images to run (the first N of the test set).
        labels: their classes.
        keras: model name -> Keras predictions on the same images (the ``agreement_keras`` figure).
        work: a scratch folder for the generated firmware.
        cores: cores to run on.
        kernel_sets: TFLite-Micro kernel sets.
        jobs: QEMU runs side by side (default: the CPU count); instruction counts do not depend on it.
        log: progress printer.

    Returns:
        ``(entries, libraries)``: one JSON-ready entry per run (``ran`` false with a ``note``
        when the firmware does not fit the machine) and one record per library used (core,
        kernels, path, objects, seconds it took to build in this run or ``reused``).

    Raises:
        CheckError: a build or a QEMU run failed (other than not fitting).
    """
    from convert.flatbuffer import read_model
    from emulator.qemu import QemuTimeoutError
    from emulator.qemu_tflm import DoesNotFitError, run_tflm_harness
    from emulator.reference import firmware_input_values
    from firmware_gen.tflm_build import ensure_library
    from pipeline.data import portable_source
    from pipeline.isolation import run_checked

    ops = tflm_ops(prepared)
    libraries: dict[tuple[str, str], Any] = {}
    library_records = []
    for core in cores:
        for kernels in kernel_sets:
            start = time.perf_counter()
            library = ensure_library(core, kernels, ops, log=log)
            libraries[core, kernels] = library
            library_records.append(
                {
                    "core": core,
                    "kernels": kernels,
                    "path": portable_source(library.path, _REPO),
                    "objects": library.record.get("objects"),
                    "ops": ops,
                    "reused": library.reused,
                    "build_seconds": library.record.get("seconds"),
                    "seconds_this_run": round(time.perf_counter() - start, 1),
                }
            )
    count = len(images)
    tasks: list[tuple[dict[str, Any], Path, np.ndarray]] = []
    for prep in prepared.values():
        if prep.convert_report.get("binary_layers"):
            continue
        for fmt in TFLM_FORMATS:
            path = prep.flatbuffers.get(fmt)
            if path is None:
                continue
            data = path.read_bytes()
            feed = firmware_input_values(read_model(path), images)
            reference = np.argmax(run_checked("tflm", data, feed, path.name, progress=f"{prep.name} {fmt} tflm"), axis=1)
            for core in cores:
                folder = work / f"{prep.name}.{fmt}-{core}"
                report = generate_tflm_firmware(path, core, folder)["report"]
                for kernels in kernel_sets:
                    entry = _entry(prep, fmt, core, kernels, count)
                    entry["model_bytes"] = len(data)
                    entry["arena_bytes"] = report["arena_bytes"]
                    tasks.append((entry, folder, reference))

    def run(task: tuple[dict[str, Any], Path, np.ndarray]) -> dict[str, Any]:
        entry, folder, reference = task
        core, kernels = entry["core"], entry["kernels"]
        start = time.perf_counter()
        try:
            result = run_tflm_harness(folder, images, core=core, kernels=kernels, library=libraries[core, kernels], log=log)
        except DoesNotFitError as err:
            entry["note"] = str(err)
            entry["firmware_flash_bytes"] = err.sizes["text"] + err.sizes["data"]
            entry["static_ram_bytes"] = err.sizes["data"] + err.sizes["bss"]
            log(f"{entry['model']} {entry['format']} {core} {kernels}: {err}")
            return entry
        except QemuTimeoutError as err:
            entry["note"] = f"did not finish: {err}"
            log(f"{entry['model']} {entry['format']} {core} {kernels}: {err}")
            return entry
        _record(entry, result, reference, labels[:count], keras[entry["model"]][:count], time.perf_counter() - start)
        log(
            f"{entry['model']} {entry['format']} {core} {kernels}: {entry['instructions_per_inference']:,.0f} instructions, "
            f"flash {entry['firmware_flash_bytes']:,} B, RAM {entry['ram_bytes']:,} B, "
            f"agreement with TFLM Python {100 * entry['agreement_tflm_python']:.2f}% ({count:,} images)"
        )
        return entry

    # Each task builds in its own folder and runs its own QEMU process: they run side by side,
    # cheapest first; the entries keep the (model, format, core, kernel set) order.
    order = sorted(range(len(tasks)), key=lambda i: _cost_rank(tasks[i][0]))
    with ThreadPoolExecutor(max_workers=max(1, jobs or os.cpu_count() or 1)) as pool:
        done = dict(zip(order, pool.map(run, [tasks[i] for i in order]), strict=True))
    return [done[i] for i in range(len(tasks))], library_records


def _cost_rank(entry: dict[str, Any]) -> tuple[int, int]:
    """Expected cost of a run, cheapest first: the mlp before the cnn; for the cnn, int8 with
    CMSIS-NN (about 8 M instructions an image on the Cortex-M4), then float (about 40 M, reference
    float kernels either way), then int8 with the reference kernels (about 200 M)."""
    if entry["model"] != "cnn":
        return (0, 0)
    if entry["format"] == "int8":
        return (1, 0) if entry["kernels"] == "cmsis_nn" else (3, 0)
    return (2, 0)


def m4_rows(entries: list[dict[str, Any]], core: str = "cortex-m4") -> list[dict[str, Any]]:
    """The Cortex-M4 runs as rows of the bench's main tables (:func:`bench.measure.make_row`).

    Agreement in those tables is with Keras; the agreement with the TFLite-Micro Python
    interpreter goes into the note (and into the on-core table).
    """
    from bench.measure import make_row

    rows = []
    for entry in entries:
        if entry["core"] != core or not entry["ran"]:
            continue
        engine = "tflm-qemu" + ("-int8" if entry["format"] == "int8" else "") + f"-{entry['kernels']}"
        row = make_row(
            entry["model"],
            engine,
            artifact=None,
            model_bytes=entry["model_bytes"],
            flash_source="flatbuffer bytes",
            firmware_flash_bytes=entry["firmware_flash_bytes"],
            ram_bytes=entry["ram_bytes"],
            ram_source="elf (deployable.elf data + bss, arena included, + measured stack)",
            instructions_per_inference=entry["instructions_per_inference"],
            runs_on=f"QEMU {entry['qemu_machine']}",
            seconds=entry["seconds"],
            note=f"agrees with the TFLite-Micro Python interpreter on {100 * entry['agreement_tflm_python']:.2f}%",
        )
        row.update({"images": entry["images"], "accuracy": entry["accuracy"], "agreement_keras": entry["agreement_keras"]})
        rows.append(row)
    return rows
