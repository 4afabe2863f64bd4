"""Run every engine the project has on the same test images and record what each measures.

One *row* per (model, engine): accuracy, agreement with Keras, median host latency per image,
model bytes in flash, whole-firmware flash, RAM and where each figure comes from. Engines:

==============  ==========================================================================
engine          what runs
==============  ==========================================================================
keras           the ``.h5`` in Keras, batched (the reference; not timed)
tflite          ``NAME.tflite`` in TFLite's interpreter with its default delegate (XNNPACK)
tflite-int8     ``NAME.int8.tflite`` likewise
lce             ``NAME.lce.tflite`` in Larq Compute Engine's interpreter
tflm            ``NAME.tflite`` in the TFLite-Micro interpreter (flatbuffer + measured arena)
tflm-int8       ``NAME.int8.tflite`` likewise
bnn-host        the ``bnn`` engine's C, host gcc, the host backend's default (fast) build, timed in-process
bnn-host-       the same C built the portable way (the kernels the Cortex-M cores run, ``-O2``)
portable
bnn-qemu        the ``bnn`` firmware on QEMU's Cortex-M4 (instructions per inference)
tflm-qemu-...   the ``tflm`` engine's firmware with real TFLite-Micro on QEMU's Cortex-M4, float
                or int8, reference or CMSIS-NN kernels (:mod:`bench.oncore`, more cores there)
==============  ==========================================================================

A row that cannot run (convert skipped the format, TFLite-Micro has no kernel for an op) is
kept with ``accuracy`` ``None`` and a ``note`` saying why.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.prepare import Prepared
from pipeline.errors import CheckError, InputError
from pipeline.interpreters import TimedRun, time_lce, time_tflite, time_tflm

__all__ = [
    "ROW_LABELS",
    "M4",
    "make_row",
    "keras_row",
    "interpreter_rows",
    "generate_firmware",
    "bnn_rows",
    "core_run",
]

ROW_LABELS: dict[str, str] = {
    "keras": "Keras (batched reference)",
    "tflite": "TFLite float (XNNPACK)",
    "tflite-int8": "TFLite int8 (XNNPACK)",
    "lce": "LCE interpreter",
    "tflm": "TFLite-Micro float",
    "tflm-int8": "TFLite-Micro int8",
    "bnn-host": "bnn engine: generated C, host (fast build)",
    "bnn-host-portable": "bnn engine: generated C, host (portable build)",
    "bnn-qemu": "bnn engine: firmware, QEMU Cortex-M4",
    "tflm-qemu-reference": "TFLite-Micro float firmware (reference kernels), QEMU Cortex-M4",
    "tflm-qemu-cmsis_nn": "TFLite-Micro float firmware (CMSIS-NN), QEMU Cortex-M4",
    "tflm-qemu-int8-reference": "TFLite-Micro int8 firmware (reference kernels), QEMU Cortex-M4",
    "tflm-qemu-int8-cmsis_nn": "TFLite-Micro int8 firmware (CMSIS-NN), QEMU Cortex-M4",
}
M4 = "cortex-m4"
_INTERPRETERS: tuple[tuple[str, str, Callable[..., TimedRun]], ...] = (
    ("tflite", "float", time_tflite),
    ("tflite-int8", "int8", time_tflite),
    ("lce", "lce", time_lce),
    ("tflm", "float", time_tflm),
    ("tflm-int8", "int8", time_tflm),
)


def make_row(
    model: str,
    engine: str,
    *,
    artifact: str | None,
    predictions: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    **figures: Any,
) -> dict[str, Any]:
    """One result row.

    Args:
        model: zoo name.
        engine: a key of :data:`ROW_LABELS` (a row of the benchmark: an engine, or an engine in one build).
        artifact: the file or folder that ran.
        predictions: argmax per image (``None``: the engine did not run).
        labels: true classes of the same images.
        reference: Keras' argmax of the same images (agreement).
        **figures: any of ``latency_us_median``, ``model_bytes``, ``firmware_flash_bytes``,
            ``ram_bytes``, ``ram_source``, ``flash_source``, ``instructions_per_inference``,
            ``runs_on``, ``seconds``, ``note``.

    Returns:
        The row: every figure key present (``None`` where not measured), plus ``images``,
        ``accuracy`` and ``agreement_keras``.
    """
    row: dict[str, Any] = {
        "model": model,
        "engine": engine,
        "label": ROW_LABELS[engine],
        "artifact": artifact,
        "images": 0,
        "accuracy": None,
        "agreement_keras": None,
        "latency_us_median": None,
        "model_bytes": None,
        "firmware_flash_bytes": None,
        "flash_source": None,
        "ram_bytes": None,
        "ram_source": None,
        "instructions_per_inference": None,
        "runs_on": "host",
        "seconds": None,
        "note": None,
    }
    unknown = set(figures) - set(row)
    if unknown:
        raise ValueError(f"unknown row figures: {', '.join(sorted(unknown))}")
    row.update(figures)
    if predictions is not None:
        predictions = np.asarray(predictions)
        row["images"] = int(len(predictions))
        if labels is not None:
            row["accuracy"] = float(np.mean(predictions == np.asarray(labels)[: len(predictions)]))
        if reference is not None:
            row["agreement_keras"] = float(np.mean(predictions == np.asarray(reference)[: len(predictions)]))
    return row


def keras_row(prep: Prepared, images: np.ndarray, labels: np.ndarray, *, classes: int) -> tuple[dict[str, Any], np.ndarray]:
    """The Keras reference on ``images`` (batched; its recorded input range applied).

    Args:
        prep: the prepared model.
        images: raw test examples (any shape the model takes).
        labels: their classes.
        classes: the dataset's class count (the model must output that many scores).

    Returns:
        ``(row, predictions)``.
    """
    import time

    from emulator.backends import keras_scores

    start = time.perf_counter()
    scores, _ = keras_scores(prep.h5, images, classes=classes)
    predictions = np.argmax(scores, axis=1)
    row = make_row(
        prep.name,
        "keras",
        artifact=str(prep.h5),
        predictions=predictions,
        labels=labels,
        reference=predictions,
        seconds=round(time.perf_counter() - start, 2),
        note="batched reference, not timed per image",
    )
    return row, predictions


def _tflm_ram(data: bytes, path: Path) -> int:
    """Measured TFLite-Micro arena; raises :class:`InputError` naming ops TFLM has no kernel for."""
    from convert.flatbuffer import read_model_bytes
    from firmware_gen.arena import measure_arena
    from firmware_gen.tflm import resolver_ops

    resolver_ops(read_model_bytes(data, str(path)))
    return measure_arena(data)


def interpreter_rows(
    prep: Prepared, images: np.ndarray, labels: np.ndarray, reference: np.ndarray, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """TFLite (XNNPACK), LCE and TFLite-Micro on the model's flatbuffers, one timed image at a time.

    Args:
        prep: the prepared model (its flatbuffers).
        images: raw test examples (any shape the model takes).
        labels: their classes.
        reference: Keras' predictions on them.
        log: progress printer.

    Returns:
        One row per engine of :data:`_INTERPRETERS`, in that order.
    """
    import time

    from emulator.backends import flatbuffer_ram, load_artifact
    from pipeline.isolation import validate

    rows = []
    for engine, fmt, runner in _INTERPRETERS:
        path = prep.flatbuffers.get(fmt)
        if path is None:
            reason = prep.skipped.get(fmt)
            note = f"no {fmt} flatbuffer" + (f": convert skips it ({reason.split(' (')[0].split(';')[0]})" if reason else "")
            rows.append(make_row(prep.name, engine, artifact=None, note=note))
            continue
        data = path.read_bytes()
        figures: dict[str, Any] = {"model_bytes": len(data), "flash_source": "flatbuffer bytes"}
        try:
            if engine.startswith("tflm"):
                figures["ram_bytes"] = _tflm_ram(data, path)
                figures["ram_source"] = "tflm-arena"
                figures["note"] = "RAM: measured TFLite-Micro arena; TFLite-Micro code not counted in flash"
            elif engine == "lce":
                ram, source, _ = flatbuffer_ram(load_artifact(path))
                figures["ram_bytes"], figures["ram_source"] = ram, source
                figures["note"] = "no Cortex-M runtime for LCE ops; RAM: " + (
                    "activation plan" if source == "planner" else "TFLite-Micro arena (no LCE ops in this flatbuffer)"
                )
            # Timing needs the interpreter in this process: a child loads and runs the file once first,
            # so a flatbuffer that would crash it is a "cannot run" row instead of a dead benchmark.
            validate("tflm" if engine.startswith("tflm") else "lce" if engine == "lce" else "tflite", data, str(path))
            start = time.perf_counter()
            run = runner(data, images)
        except InputError as err:
            rows.append(make_row(prep.name, engine, artifact=str(path), **{**figures, "note": f"cannot run: {err}"}))
            log(f"{prep.name} {engine}: cannot run ({err})")
            continue
        row = make_row(
            prep.name,
            engine,
            artifact=str(path),
            predictions=np.argmax(run.scores, axis=1),
            labels=labels,
            reference=reference,
            latency_us_median=run.median_us,
            seconds=round(time.perf_counter() - start, 2),
            **figures,
        )
        log(f"{prep.name} {engine}: accuracy {100 * row['accuracy']:.2f}%, median {row['latency_us_median']:.1f} us/image")
        rows.append(row)
    return rows


def generate_firmware(lce_path: Path, core: str, out: Path) -> dict[str, Any]:
    """``python -m firmware_gen --engine bnn --target CORE --model LCE --out OUT`` (in-process).

    Returns:
        The folder's ``firmware.json``.

    Raises:
        CheckError: the generator failed (its one-line error is repeated in the message).
    """
    import json

    from bench.prepare import child_error
    from firmware_gen.cli import main as firmware_gen_main

    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        status = firmware_gen_main(["--engine", "bnn", "--target", core, "--model", str(lce_path), "--out", str(out)])
    if status != 0:
        command = f"python -m firmware_gen --engine bnn --target {core} --model {lce_path}"
        raise CheckError(f"{command} failed (exit {status}): {child_error(errors.getvalue())}")
    return json.loads((out / "firmware.json").read_text(encoding="utf-8"))


def bnn_rows(
    prep: Prepared,
    firmware: Path,
    images: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    qemu_images: int,
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """The ``bnn`` engine's C on the host (fast and portable builds, timed in-process) and its firmware on QEMU's Cortex-M4.

    Args:
        prep: the prepared binary model.
        firmware: its Cortex-M4 firmware folder (``python -m firmware_gen --engine bnn``);
            the inputs are fed as its signature says (shape, uint8/float32/int8).
        images: raw test examples.
        labels: their classes.
        reference: Keras' predictions on them.
        qemu_images: how many of the images the firmware runs (the first ones).
        log: progress printer.

    Returns:
        ``([host row, portable host row, qemu row], host predictions, qemu predictions)``.
    """
    import json
    import time

    from emulator.host import run_host
    from emulator.qemu import run_qemu

    report = json.loads((firmware / "firmware.json").read_text(encoding="utf-8"))["report"]
    model_data = int(report["model_data_bytes"])
    host_rows = []
    for engine, fast in (("bnn-host", None), ("bnn-host-portable", False)):
        start = time.perf_counter()
        host = run_host(firmware, images) if fast is None else run_host(firmware, images, fast=fast)
        row = make_row(
            prep.name,
            engine,
            artifact=str(prep.flatbuffers["lce"]),
            predictions=host.predictions,
            labels=labels,
            reference=reference,
            latency_us_median=host.extra["latency_us_median"],
            model_bytes=model_data,
            flash_source="packed weights + thresholds (firmware.json model_data_bytes)",
            firmware_flash_bytes=host.flash_bytes,
            ram_bytes=host.ram_bytes,
            ram_source="elf (x86-64 host build: data + bss + deepest stack)",
            seconds=round(time.perf_counter() - start, 2),
            note=f"gcc {host.extra['c_flags']}",
        )
        log(f"{prep.name} {engine}: accuracy {100 * row['accuracy']:.2f}%, median {row['latency_us_median']:.2f} us/image")
        host_rows.append((row, host.predictions))
    (host_row, predictions), (portable_row, _) = host_rows
    count = min(qemu_images, len(images))
    start = time.perf_counter()
    qemu = run_qemu(firmware, images[:count], core=M4)
    seconds = time.perf_counter() - start
    qemu_row = make_row(
        prep.name,
        "bnn-qemu",
        artifact=str(prep.flatbuffers["lce"]),
        predictions=qemu.predictions,
        labels=labels,
        reference=reference,
        model_bytes=model_data,
        flash_source="packed weights + thresholds (firmware.json model_data_bytes)",
        firmware_flash_bytes=qemu.flash_bytes,
        ram_bytes=qemu.ram_bytes,
        ram_source="elf (arm-none-eabi deployable.elf: data + bss + deepest stack)",
        instructions_per_inference=qemu.instructions_per_inference,
        runs_on=f"QEMU {qemu.extra['qemu_machine']}",
        seconds=round(seconds, 2),
        note=f"QEMU wall time {qemu.extra['qemu_seconds']:.1f} s for {count:,} images (with the build: {seconds:.1f} s)",
    )
    log(f"{prep.name} bnn-qemu ({M4}): {count} images in {seconds:.1f} s, accuracy {100 * qemu_row['accuracy']:.2f}%")
    return [host_row, portable_row, qemu_row], predictions, qemu.predictions


def core_run(firmware: Path, core: str, images: np.ndarray, labels: np.ndarray, host_predictions: np.ndarray) -> dict[str, Any]:
    """Run a core's ``bnn`` firmware on QEMU and summarise instructions, footprint and agreement.

    Args:
        firmware: the core's firmware folder.
        core: the core name.
        images: raw test examples (a few hundred), fed as the firmware's signature says.
        labels: their classes.
        host_predictions: the host build's predictions on the same images.

    Returns:
        JSON-ready: core, machine, images, instruction statistics, flash, RAM (static, stack),
        accuracy, agreement with the host C, popcount variant, seconds.
    """
    import json
    import time

    from emulator.qemu import run_qemu

    report = json.loads((firmware / "firmware.json").read_text(encoding="utf-8"))["report"]
    start = time.perf_counter()
    run = run_qemu(firmware, images, core=core)
    detail = run.extra["footprint"]
    return {
        "core": core,
        "qemu_machine": run.extra["qemu_machine"],
        "images": int(len(images)),
        "instructions": run.extra["instructions"],
        "instructions_per_inference": run.instructions_per_inference,
        "firmware_flash_bytes": run.flash_bytes,
        "ram_bytes": run.ram_bytes,
        "static_ram_bytes": detail.get("static_ram_bytes"),
        "stack_bytes": detail.get("stack_bytes"),
        "accuracy": float(np.mean(run.predictions == labels[: len(images)])),
        "agreement_host": float(np.mean(run.predictions == host_predictions[: len(images)])),
        "popcount": report.get("popcount"),
        "seconds": round(time.perf_counter() - start, 2),
    }
