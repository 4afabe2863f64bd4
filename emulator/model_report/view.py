"""Everything one model's report shows, assembled from its reports (see :mod:`.sources`).

The template only lays out what :func:`build_view` returns: cells with their sources, rows,
and the inline SVG figures.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.model_report import svg
from emulator.model_report.budgets import board_rows
from emulator.model_report.cells import Cell, cell, count, lookup, nbytes, percent
from emulator.model_report.ladder import bnn_firmwares, core_rows, is_binary, ladder
from emulator.model_report.sources import Doc, ModelSources
from pipeline.artifacts import TOOL_VERSION
from pipeline.errors import InputError
from pipeline.limits import MAX_EPOCHS

__all__ = ["Plot", "build_view", "layer_source", "confusion_rows"]

_LAYER_COLUMNS = ("params", "binary_macs", "float_macs", "weight_bytes", "activation_bytes")


@dataclass(frozen=True)
class Plot:
    """An inline SVG figure with the report it was drawn from."""

    title: str
    svg: str
    source: str
    caption: str


def _model_card(sources: ModelSources, folder: str) -> dict[str, Any]:
    convert, train = sources.convert, sources.train
    keras = next((d for d in sources.emulations if d.data.get("backend") == "keras"), None)
    if convert is not None and isinstance(convert.data.get("source"), dict):
        h5, sha = cell(convert, "source.path", str), cell(convert, "source.sha256", str)
    else:
        h5, sha = cell(keras, "model", str), cell(keras, "sha256", str)
    formats = []
    for fmt, entry in sorted(((convert.data.get("formats") if convert else None) or {}).items()):
        if isinstance(entry, dict) and not entry.get("skipped"):
            formats.append(
                {
                    "format": fmt,
                    "file": Path(str(entry.get("path", "?"))).name,
                    "bytes": cell(convert, f"formats.{fmt}.bytes", nbytes),
                    "sha256": cell(convert, f"formats.{fmt}.sha256", str),
                    "ops": ", ".join(str(op) for op in entry.get("ops") or []),
                }
            )
    recipe = lookup(train.data, "recipe.name") if train else None
    overrides = (train.data.get("recipe_overrides") or {}) if train else {}
    return {
        "h5": h5,
        "sha256": sha,
        "params": cell(train, "params", count),
        "trainable_params": cell(train, "trainable_params", count),
        "recipe": (str(recipe) + (f" ({', '.join(f'{k}={v}' for k, v in sorted(overrides.items()))})" if overrides else ""))
        if recipe
        else "–",
        "epochs": cell(train, "epochs", count),
        "train_images": cell(train, "train_images", count),
        "test_accuracy": cell(train, "test_accuracy", percent),
        "input_range": str(convert.data.get("input_range"))
        if convert and convert.data.get("input_range")
        else "raw pixels 0..255",
        "binary_layers": ", ".join(convert.data.get("binary_layers") or []) if convert else "–",
        "formats": formats,
        "convert_command": None if convert else f"python -m convert {shlex.quote(f'{folder}/{sources.name}.h5')}",
    }


def confusion_rows(matrix: list[list[int]]) -> list[list[dict[str, Any]]]:
    """Rows of the confusion matrix (true class per row) with a shade per cell (0..1 of the row's total)."""
    rows = []
    for true, row in enumerate(matrix):
        total = sum(row) or 1
        rows.append(
            [
                {"count": int(v), "share": v / total, "diagonal": true == pred, "key": f"confusion_matrix.{true}.{pred}"}
                for pred, v in enumerate(row)
            ]
        )
    return rows


_PLOTTED = ("accuracy", "val_accuracy", "test_accuracy", "loss", "val_loss")


def _check_history(train: Doc, history: Any) -> None:
    """Refuse a history longer than a recipe can train (:data:`~pipeline.limits.MAX_EPOCHS` values per metric).

    Every value is a point and a tooltip in the page's SVG: 2 M values made a 232 MB report.
    """
    if not isinstance(history, dict):
        return  # the layout check of write_reports names it
    for key in _PLOTTED:
        values = history.get(key)
        if isinstance(values, list) and len(values) > MAX_EPOCHS:
            raise InputError(
                f"{train.path}: history.{key} holds {len(values):,} values, one per epoch: "
                f"a recipe trains at most {MAX_EPOCHS:,} epochs"
            )


def _training(sources: ModelSources, folder: str) -> dict[str, Any]:
    train = sources.train
    if train is None:
        command = f"python -m train --model {sources.name} --out {shlex.quote(folder)}"
        return {"source": None, "command": command, "plots": [], "confusion": None}
    history = train.data.get("history") or {}
    _check_history(train, history)
    accuracy = {
        label: history.get(key) or []
        for key, label in (("accuracy", "train"), ("val_accuracy", "validation"), ("test_accuracy", "test"))
    }
    loss = {label: history.get(key) or [] for key, label in (("loss", "train"), ("val_loss", "validation"))}
    plots = [
        Plot("accuracy", svg.line_chart(accuracy, title="accuracy per epoch"), train.rel, "history.accuracy, val_accuracy"),
        Plot("loss", svg.line_chart(loss, title="loss per epoch"), train.rel, "history.loss, val_loss"),
    ]
    matrix = train.data.get("confusion_matrix")
    confusion = None
    if isinstance(matrix, list) and matrix:
        confusion = {"rows": confusion_rows(matrix), "source": train.rel, "classes": len(matrix)}
    return {"source": train.rel, "command": None, "plots": plots, "confusion": confusion}


def layer_source(sources: ModelSources) -> Doc | None:
    """The emulator report whose per-layer table and memory plan the report shows.

    The deployable flatbuffer's own report first (lce for binary models, else int8, then
    float), then a firmware report (which tabulates the flatbuffer it was generated from).
    """
    suffixes = (".lce.tflite",) if is_binary(sources) else (".int8.tflite", ".tflite")
    with_layers = [doc for doc in sorted(sources.emulations, key=lambda d: d.rel) if doc.data.get("layers")]
    for suffix in suffixes:
        for doc in with_layers:
            if str(doc.data.get("model", "")).endswith(suffix):
                return doc
    return with_layers[0] if with_layers else None


def _layers(doc: Doc | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    rows = []
    for i, row in enumerate(doc.data["layers"]):
        shape = row.get("output_shape") or []
        rows.append(
            {
                "index": row.get("index", i),
                "op": row.get("op", "?"),
                "shape": "x".join(str(d) for d in shape),
                **{key: cell(doc, f"layers.{i}.{key}", count) for key in _LAYER_COLUMNS},
            }
        )
    totals = {key: sum(int(r.get(key) or 0) for r in doc.data["layers"]) for key in _LAYER_COLUMNS[:4]}
    totals["activation_bytes"] = max((int(r.get("activation_bytes") or 0) for r in doc.data["layers"]), default=0)
    return {"source": doc.rel, "rows": rows, "totals": {k: Cell(count(v), value=v) for k, v in totals.items()}}


def _plans(sources: ModelSources, doc: Doc | None) -> list[Plot]:
    plots = []
    firmware = next(iter(sorted(bnn_firmwares(sources), key=lambda d: d.rel)), None)
    arena = lookup(firmware.data, "report.arena_buffers") if firmware else None
    if firmware is not None and isinstance(arena, list):
        spans = [svg.Span(b["name"], b["offset"], b["bytes"], b["first_layer"], b["last_layer"]) for b in arena]
        layers = lookup(firmware.data, "report.layers") or []
        total = int(lookup(firmware.data, "report.activation_ram_bytes") or max((s.offset + s.size for s in spans), default=0))
        title = f"bnn engine: static activation arena, {total:,} bytes over {len(layers)} layers"
        plots.append(
            Plot(
                title,
                svg.memory_plan_chart(spans, steps=len(layers), total_bytes=total, title=title, step_label="layer"),
                firmware.rel,
                "report.arena_buffers: what bnn_predict uses on the chip (each buffer lives from its first to its last layer)",
            )
        )
    plan = doc.data.get("memory_plan") if doc is not None else None
    if doc is not None and isinstance(plan, dict):
        spans = [
            svg.Span(f"t{b['tensor']} {b['name']}", b["offset"], b["size"], b["first_use"], b["last_use"])
            for b in plan.get("buffers", [])
        ]
        total = int(plan.get("total_bytes", 0))
        title = f"flatbuffer: activation plan, {total:,} bytes over {plan.get('operator_count', 0)} operators"
        plots.append(
            Plot(
                title,
                svg.memory_plan_chart(spans, steps=int(plan.get("operator_count", 0)), total_bytes=total, title=title),
                doc.rel,
                "memory_plan: TFLite-Micro's greedy planner over the flatbuffer's tensors "
                f"({int(plan.get('naive_bytes', 0)):,} bytes without sharing)",
            )
        )
    return plots


def build_view(sources: ModelSources, folder: str) -> dict[str, Any]:
    """The template context of one model's report.

    Args:
        sources: the model's reports.
        folder: the artifacts folder as the user named it (commands of rungs not run use it).

    Returns:
        ``name``, ``version``, ``binary``, ``card``, ``training``, ``ladder``, ``boards``,
        ``layers``, ``plans``, ``cores``, ``sources`` (every file read, with its sha256).
    """
    layer_doc = layer_source(sources)
    binary = is_binary(sources)
    return {
        "name": sources.name,
        "folder": folder,
        "version": TOOL_VERSION,
        "binary": binary,
        "card": _model_card(sources, folder),
        "training": _training(sources, folder),
        "ladder": ladder(sources, folder),
        "boards": board_rows(sources, folder),
        "layers": _layers(layer_doc),
        "layers_command": None
        if layer_doc
        else f"python -m emulator {shlex.quote(f'{folder}/{sources.name}' + ('.lce.tflite' if binary else '.tflite'))}",
        "plans": _plans(sources, layer_doc),
        "cores": core_rows(sources, folder) if binary else [],
        "sources": [{"rel": doc.rel, "sha256": doc.sha256} for doc in sources.docs],
    }
