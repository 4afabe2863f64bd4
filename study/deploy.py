"""Take a trained study model through ``convert``, ``firmware_gen`` and the emulator's runners.

* Convert: ``python -m convert`` (its ``main``, in this process) writes the float, int8 (not for
  binary models) and LCE flatbuffers; reused when ``NAME.convert.json`` still matches the ``.h5``.
* Deploy: a model with binary weights goes to the engine that stores them as bits, ``python -m
  firmware_gen --engine bnn`` on its LCE flatbuffer. If the engine refuses, its own one-line
  error is recorded and the float flatbuffer (the binary weights as float32 +-1) goes to the
  ``tflm`` engine instead. Other models go to ``tflm`` as their int8 flatbuffer.
* Run: the deployable engine classifies the test images one at a time: the ``bnn`` engine's
  generated C built with the host gcc (:func:`emulator.host.run_host`, its fast build, timed
  by the harness around ``bnn_predict``), or the TFLite-Micro interpreter
  (:func:`pipeline.interpreters.time_tflm`, timed per ``invoke``).
* Boards: the firmware's flash and RAM needs against every board of
  :data:`firmware_gen.targets.BOARDS`.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.prepare import conversion_mismatch, flatbuffer_path, read_json
from pipeline.errors import CheckError, first_line

__all__ = ["TARGET", "quiet_main", "convert_model", "generate_firmware", "plan", "deploy_model", "board_fits"]

TARGET = "cortex-m4"

BNN_MODEL_DATA = "model data: packed weights and per-channel constants"
"""What the bnn engine's deployable model bytes hold (its report's ``model_data_bytes``)."""


def quiet_main(main: Callable[[list[str]], int], args: list[str]) -> tuple[int, str]:
    """Run a stage's ``main(args)`` with its stdout and stderr captured.

    Returns:
        ``(exit status, the last non-empty stderr line)`` (the stage's one-line error).
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(args)
    lines = [line.strip() for line in err.getvalue().splitlines() if line.strip()]
    return status, (lines[-1] if lines else "")


def convert_model(h5: Path, folder: Path, check_images: int, data_dir: str | None, log: Callable[[str], None]) -> dict[str, Any]:
    """``NAME.convert.json`` for ``h5``: reused when it matches the ``.h5``, else ``python -m convert`` runs.

    Raises:
        CheckError: conversion failed (the message carries convert's own error line).
    """
    from convert.cli import main as convert_main
    from pipeline.artifacts import sha256_file

    report_path = folder / f"{h5.stem}.convert.json"
    h5_sha256 = sha256_file(h5)
    reason = conversion_mismatch(h5_sha256, read_json(report_path), folder)
    if reason is None:
        return read_json(report_path) or {}
    args = [str(h5), "--out", str(folder), "--check", str(check_images), *(["--data", data_dir] if data_dir else [])]
    log(f"{h5.stem}: converting ({reason}): python -m convert {' '.join(args)}")
    status, line = quiet_main(convert_main, args)
    report = read_json(report_path)
    if status != 0 or report is None or conversion_mismatch(h5_sha256, report, folder) is not None:
        raise CheckError(f"python -m convert {h5} failed (exit {status}): {line}")
    return report


def generate_firmware(engine: str, flatbuffer: Path, out: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``python -m firmware_gen --engine ENGINE --target cortex-m4 --model FLATBUFFER --out OUT``.

    Returns:
        ``(firmware.json, None)``, or ``(None, the generator's one-line error)`` when it refuses.
    """
    from firmware_gen.cli import main as firmware_gen_main

    args = ["--engine", engine, "--target", TARGET, "--model", str(flatbuffer), "--out", str(out)]
    status, line = quiet_main(firmware_gen_main, args)
    if status != 0:
        return None, line or f"exit {status}"
    return json.loads((out / "firmware.json").read_text(encoding="utf-8")), None


def plan(convert_report: dict[str, Any], folder: Path, binary: bool) -> list[tuple[str, str, Path]]:
    """The deployments to try, in order: ``[(engine, format, flatbuffer), ...]``.

    Args:
        convert_report: the model's ``NAME.convert.json``.
        folder: where its flatbuffers are.
        binary: the model has binary weights (Larq layers with a 1-bit kernel quantizer).

    Returns:
        Binary models: ``bnn`` on the LCE flatbuffer, then ``tflm`` on the float one; the
        others: ``tflm`` on the int8 flatbuffer, then on the float one. Formats convert did
        not write are left out.
    """
    formats = {
        fmt: flatbuffer_path(folder, entry)
        for fmt, entry in convert_report.get("formats", {}).items()
        if isinstance(entry, dict) and not entry.get("skipped")
    }
    order = [("bnn", "lce"), ("tflm", "float")] if binary else [("tflm", "int8"), ("tflm", "float")]
    return [(engine, fmt, formats[fmt]) for engine, fmt in order if fmt in formats]


def board_fits(flash: int | None, ram: int | None) -> dict[str, dict[str, Any]]:
    """Every board's verdict for a firmware needing ``flash`` and ``ram`` bytes.

    Returns:
        board name -> ``{"fits": bool | None, "flash_over": int | None, "ram_over": int | None}``
        (``over`` negative: headroom; ``fits`` ``None`` when a need is unknown).
    """
    from firmware_gen.targets import BOARDS, check_budget

    fits = {}
    for name, board in BOARDS.items():
        verdict = check_budget(flash, ram, board.flash_bytes, board.ram_bytes, label=f"board {name}")
        complete = len(verdict["checked"]) == 2
        fits[name] = {
            "fits": verdict["ok"] if complete else None,
            "flash_over": verdict["flash"]["over"],
            "ram_over": verdict["ram"]["over"],
        }
    return fits


def _run_engine(engine: str, firmware: Path, flatbuffer: Path, images: np.ndarray) -> dict[str, Any]:
    """Classify ``images`` one at a time in the deployable engine; predictions and median latency."""
    if engine == "bnn":
        from emulator.host import run_host

        run = run_host(firmware, images)
        return {
            "predictions": np.asarray(run.predictions),
            "latency_us_median": float(run.extra["latency_us_median"]),
            "runner": f"bnn engine's C on the host: gcc {run.extra['c_flags']}, bnn_predict timed by the harness",
        }
    from pipeline.interpreters import time_tflm

    run = time_tflm(flatbuffer.read_bytes(), images)
    return {
        "predictions": np.argmax(run.scores, axis=1),
        "latency_us_median": run.median_us,
        "runner": "TFLite-Micro Python interpreter (tflite_micro), one invoke per image",
    }


def deploy_model(
    name: str,
    binary: bool,
    convert_report: dict[str, Any],
    folder: Path,
    images: np.ndarray,
    labels: np.ndarray,
    keras_predictions: np.ndarray,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Generate the firmware of the first engine in :func:`plan` that takes the model, run it, judge the boards.

    Args:
        name: the model's name.
        binary: it has binary weights (see :func:`plan`).
        convert_report: its ``NAME.convert.json``.
        folder: where its flatbuffers are; firmware goes to ``folder/firmware/NAME.FORMAT-cortex-m4``.
        images: uint8 test images.
        labels: their labels.
        keras_predictions: Keras' predictions on them (agreement).
        log: progress printer.

    Returns:
        JSON-ready: ``engine``, ``format``, ``flatbuffer``, ``firmware``, ``refusals`` (engine ->
        its one-line error), ``model_bytes`` (what the engine stores: bnn model data or the
        flatbuffer), ``flash_bytes``/``ram_bytes`` with their sources, ``accuracy``,
        ``agreement_keras``, ``latency_us_median``, ``runner``, ``images``, ``boards``.

    Raises:
        CheckError: the engine that took the model failed to run it. A model no engine takes
        gets ``engine`` ``None`` and the refusals.
    """
    refusals: dict[str, str] = {}
    for engine, fmt, flatbuffer in plan(convert_report, folder, binary):
        out = folder / "firmware" / f"{flatbuffer.name.removesuffix('.tflite')}-{TARGET}"
        firmware, refusal = generate_firmware(engine, flatbuffer, out)
        if firmware is None:
            refusals[engine] = refusal or "refused"
            log(f"{name}: the {engine} engine refuses {flatbuffer.name}: {refusal}")
            continue
        report = firmware["report"]
        start = time.perf_counter()
        try:
            ran = _run_engine(engine, out, flatbuffer, images)
        except Exception as err:  # a generated firmware that does not run is a failure of the study
            raise CheckError(f"{name}: the {engine} engine's output did not run: {first_line(err)}") from None
        predictions = ran.pop("predictions")
        result = {
            "engine": engine,
            "format": fmt,
            "flatbuffer": flatbuffer.name,
            "firmware": str(out),
            "refusals": refusals,
            "model_bytes": int(report.get("model_data_bytes", report.get("model_bytes", flatbuffer.stat().st_size))),
            "model_bytes_source": BNN_MODEL_DATA if engine == "bnn" else f"{fmt} flatbuffer",
            "flash_bytes": report.get("flash_bytes"),
            "ram_bytes": report.get("ram_bytes"),
            "flash_source": report.get("flash_source") or report.get("footprint", {}).get("flash_source"),
            "ram_source": report.get("ram_source"),
            "images": int(len(images)),
            "accuracy": float(np.mean(predictions == labels)),
            "agreement_keras": float(np.mean(predictions == keras_predictions)),
            "run_seconds": round(time.perf_counter() - start, 2),
            **ran,
            "boards": board_fits(report.get("flash_bytes"), report.get("ram_bytes")),
        }
        log(
            f"{name}: {engine} engine ({fmt}): {100 * result['accuracy']:.2f}%, agreement with Keras "
            f"{100 * result['agreement_keras']:.2f}%, {result['latency_us_median']:.1f} us/image"
        )
        return result
    log(f"{name}: no engine deploys it")
    return {"engine": None, "refusals": refusals, "boards": board_fits(None, None)}
