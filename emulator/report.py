"""What ``python -m emulator`` measured: the JSON document and the printed table.

The JSON (``NAME.BACKEND.emulate.json``) has the keys every consumer relies on: ``model``,
``sha256``, ``backend``, ``images``, ``accuracy``, ``agreement``, ``flash_bytes``, ``ram_bytes``,
``ram_source``, ``instructions_per_inference``, ``budget`` (``flash``, ``ram``, ``ok``, plus
``message`` and ``label``) and ``version``; plus ``name``, ``correct``, ``agreeing``,
``reference``, ``latency_ms``, ``data`` (source, sha256, example shape, dtype, class count),
``input_shape`` and ``num_classes`` (the dataset's, which the artifact was checked to take),
``signature`` (a firmware folder's ``bnn_predict`` API, see :mod:`emulator.signature`),
``planner_bytes``, ``tflm`` (the TFLite-Micro cross-check of a builtin-op flatbuffer),
``layers`` (the per-layer table of :mod:`emulator.layers`) and ``memory_plan`` (the activation
plan of :mod:`emulator.planner`), both of the artifact's flatbuffer (for a firmware folder, of the
flatbuffer it was generated from; absent for a ``.h5``), and ``extra``. The audio rungs
(:mod:`emulator.audio`) add ``fed`` (``raw`` clips or ``features``), ``frontend`` (the config and
its sha256; from raw clips also the chunks and how many clips' features equal Python's),
``instructions_per_clip`` (``frontend``, ``network``, ``total``) and ``flash_ram`` (the deployable
part, the network alone, the front end alone).
Accuracy and agreement are fractions in 0..1; the table prints them in percent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emulator.backend_result import BackendRun
from pipeline.artifacts import TOOL_VERSION

__all__ = ["default_json_path", "build_report", "format_report", "jsonable"]


def default_json_path(artifact_path: Path, kind: str, backend: str) -> Path:
    """Where the JSON goes by default.

    A file ``DIR/STEM.EXT`` gives ``DIR/STEM.BACKEND.emulate.json`` (``bcnn.lce.tflite`` ->
    ``bcnn.lce.lce.emulate.json``, ``bcnn.h5`` -> ``bcnn.keras.emulate.json``). A firmware
    folder keeps its report inside: ``FOLDER/FOLDERNAME.BACKEND.emulate.json``.
    """
    if kind == "firmware":
        return artifact_path / f"{artifact_path.name}.{backend}.emulate.json"
    return artifact_path.with_name(f"{artifact_path.stem}.{backend}.emulate.json")


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars, paths and tuples turned into plain JSON types.

    Backends put whatever they measured into :attr:`BackendRun.extra`; the report must still
    serialize, so arrays become lists and numpy scalars Python numbers.
    """
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _fraction(count: int, total: int) -> float:
    return count / total if total else 0.0


def build_report(
    *,
    artifact: Any,
    backend: str,
    result: BackendRun,
    labels: np.ndarray,
    reference: Any | None,
    verdict: dict[str, Any],
    data: dict[str, Any],
    tflm: dict[str, Any] | None = None,
    layers: list[dict[str, Any]] | None = None,
    memory_plan: dict[str, Any] | None = None,
    signature: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the JSON document of one emulator run.

    Args:
        artifact: the :class:`~emulator.backends.Artifact`.
        backend: backend name that produced ``result``.
        result: the backend's :class:`BackendRun`.
        labels: ``(N,)`` true classes of the images run.
        reference: a :class:`~emulator.reference.Reference` over the same images, or ``None``.
        verdict: the budget verdict from :func:`firmware_gen.targets.check_budget` (plus ``label``).
        data: ``{"source": ..., "sha256": {...}, "example_shape": [...], "dtype": ..., "num_classes": K}``
            of the dataset (the last three from :meth:`pipeline.data.Dataset.describe`).
        tflm: the TFLite-Micro cross-check (builtin-op flatbuffers under ``auto``), or ``None``.
        layers: per-layer rows of the flatbuffer, or ``None``.
        memory_plan: the flatbuffer's activation plan (:func:`emulator.planner.plan_json`), or ``None``.
        signature: a firmware folder's signature (:meth:`emulator.signature.FirmwareSignature.to_json`), or ``None``.

    Returns:
        The JSON-ready dict.
    """
    predictions = np.asarray(result.predictions).reshape(-1)
    total = int(len(labels))
    correct = int(np.sum(predictions == labels))
    agreeing = int(np.sum(predictions == reference.predictions)) if reference is not None else None
    extra = {k: v for k, v in result.extra.items() if k not in ("latency_ms", "planner_bytes", "ram_note")}
    report: dict[str, Any] = {
        "model": str(artifact.path),
        "name": artifact.name,
        "sha256": artifact.sha256,
        "backend": backend,
        "images": total,
        "correct": correct,
        "accuracy": _fraction(correct, total),
        "agreeing": agreeing,
        "agreement": _fraction(agreeing, total) if agreeing is not None else None,
        "reference": reference.to_json(labels) if reference is not None else None,
        "flash_bytes": result.flash_bytes,
        "ram_bytes": result.ram_bytes,
        "ram_source": result.ram_source,
        "instructions_per_inference": result.instructions_per_inference,
        "budget": verdict,
        "latency_ms": result.extra.get("latency_ms"),
        "planner_bytes": result.extra.get("planner_bytes"),
        "data": data,
        "input_shape": data.get("example_shape"),
        "num_classes": data.get("num_classes"),
        "version": TOOL_VERSION,
        "extra": extra,
    }
    if signature is not None:
        report["signature"] = signature
    if "ram_note" in result.extra:
        report["ram_note"] = result.extra["ram_note"]
    if artifact.kind == "firmware":
        recorded = artifact.firmware.get("model")
        report["model_sha256"] = recorded.get("sha256") if isinstance(recorded, dict) else artifact.firmware.get("model_sha256")
    if tflm is not None:
        report["tflm"] = tflm
    if layers is not None:
        report["layers"] = layers
    if memory_plan is not None:
        report["memory_plan"] = memory_plan
    return jsonable(report)


def _bytes(value: int | None) -> str:
    return f"{value:,} bytes" if value is not None else "-"


def _budget_line(verdict: dict[str, Any]) -> str:
    parts = []
    for key, title in (("flash", "flash"), ("ram", "RAM")):
        entry = verdict.get(key) or {}
        if entry.get("budget") is None:
            continue
        if entry.get("need") is None:
            parts.append(f"{title} {entry['budget']:,} (not measured by this backend)")
            continue
        if entry["ok"]:
            parts.append(f"{title} {entry['budget']:,} ok ({-entry['over']:,} free)")
        else:
            parts.append(f"{title} {entry['budget']:,} OVER by {entry['over']:,}")
    if not parts:
        return "none given"
    label = f"{verdict['label']}: " if verdict.get("label") else ""
    return label + ", ".join(parts)


def format_report(report: dict[str, Any]) -> str:
    """The printed summary of a report (same figures as the JSON)."""
    rows = [
        ("accuracy", f"{100 * report['accuracy']:.2f} % ({report['correct']:,} of {report['images']:,})"),
    ]
    ref = report.get("reference")
    if ref is not None:
        rows.append(
            (
                "agreement",
                f"{100 * report['agreement']:.2f} % ({report['agreeing']:,}) with {ref['path']} ({ref['backend']}, "
                f"{100 * ref['accuracy']:.2f} %)",
            )
        )
    else:
        rows.append(("agreement", "- (no reference)"))
    tflm = report.get("tflm")
    if tflm is not None and tflm.get("skipped"):
        rows.append(("tflite-micro", tflm["note"]))
    elif tflm is not None:
        rows.append(
            (
                "tflite-micro",
                f"{100 * tflm['accuracy']:.2f} %, same predictions as tflite on {100 * tflm['agreement_with_tflite']:.2f} %",
            )
        )
    rows.append(("flash", _bytes(report["flash_bytes"])))
    source = f" ({report['ram_source']})" if report["ram_source"] else ""
    rows.append(("RAM", _bytes(report["ram_bytes"]) + source))
    if report.get("planner_bytes") is not None and report["ram_source"] != "planner":
        rows.append(("activations", f"{report['planner_bytes']:,} bytes (planner)"))
    ipi = report["instructions_per_inference"]
    if report.get("frontend") is not None:
        from emulator.audio import report_rows

        rows += report_rows(report)
    else:
        rows.append(("instructions", f"{ipi:,.0f} per inference" if ipi is not None else "-"))
    rows.append(("budget", _budget_line(report["budget"])))
    if report.get("latency_ms") is not None:
        rows.append(("host time", f"{report['latency_ms']:.3f} ms per image (wall clock)"))
    data = report.get("data") or {}
    if data.get("example_shape") is not None:
        dims = "x".join(str(d) for d in data["example_shape"])
        rows.insert(0, ("data", f"{dims} {data.get('dtype')} examples, {data.get('num_classes')} classes"))
    signature = report.get("signature")
    if signature is not None:
        dims = "x".join(str(d) for d in signature["input_shape"])
        api = f"{dims} {signature['input_dtype']} -> {signature['num_classes']} {signature['score_dtype']} scores"
        rows.insert(1, ("firmware API", f"{api} (from {signature['source']})"))
    header = f"{report['model']} [{report['backend']}] on {report['images']:,} test examples"
    width = max(len(key) for key, _ in rows)
    return "\n".join([header, *(f"  {key:<{width}}  {value}" for key, value in rows)])
