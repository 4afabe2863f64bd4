"""Figures derived from the measured rows: latency ratios, the acceptance checks, the board table.

Pure functions over the rows of :mod:`bench.measure` and the per-core runs; nothing here runs a
model, so every derived number can be traced to measured ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from firmware_gen.targets import Board, check_budget

__all__ = [
    "BUDGET_SECONDS",
    "BARS",
    "MIN_VERDICT_IMAGES",
    "equal_accuracy",
    "find_row",
    "add_ratios",
    "tflm_agreement",
    "bnn_vs_tflm",
    "acceptance",
    "deployables",
    "board_rows",
]

BUDGET_SECONDS = 30 * 60
BARS = {"c_vs_lce": 20.0, "model_data": 8.0, "ram": 10.0}
_REFERENCE = ("bcnn", "bnn-host")
MIN_VERDICT_IMAGES = 1000


def equal_accuracy(first: float | None, second: float | None, images: int | None) -> dict[str, Any]:
    """Whether two accuracies measured on the same ``images`` test images are equal within one standard error.

    The standard error is the binomial one of an accuracy measured on ``images`` images, taken
    at the mean ``p`` of the two accuracies: ``SE = sqrt(p * (1 - p) / images)`` (0.31 points at
    99 % on 1,000 images, 0.10 on 10,000). The two are at equal accuracy when
    ``|first - second| <= SE``. This is stricter than the standard error of the difference of two
    independent proportions (``sqrt(2)`` times larger at equal ``p``). With fewer than
    :data:`MIN_VERDICT_IMAGES` images, or an accuracy not measured, no verdict is given.

    Args:
        first: one accuracy (a fraction, 0..1), or ``None``.
        second: the other, on the same images.
        images: how many images both were measured on.

    Returns:
        ``{"images", "first", "second", "difference_points", "standard_error_points", "equal",
        "text"}``: ``equal`` is ``True``, ``False`` or ``None`` (not established); ``text`` the
        verdict as printed, e.g. ``not at equal accuracy: 93.80% vs 99.10% (difference 5.30
        points > SE 0.59 points on 1,000 images)``.
    """
    out: dict[str, Any] = {
        "images": images,
        "first": first,
        "second": second,
        "difference_points": None,
        "standard_error_points": None,
        "equal": None,
    }
    if first is None or second is None or not images:
        out["text"] = "equal accuracy not established: the accuracy of each side on the same images is not measured"
        return out
    mean = (first + second) / 2
    difference, error = abs(first - second), math.sqrt(mean * (1 - mean) / images)
    out["difference_points"], out["standard_error_points"] = 100 * difference, 100 * error
    pair = f"{100 * first:.2f}% vs {100 * second:.2f}%"
    if images < MIN_VERDICT_IMAGES:
        out["text"] = (
            f"equal accuracy not established: {pair} on {images:,} images, fewer than the {MIN_VERDICT_IMAGES:,} a verdict needs"
        )
        return out
    out["equal"] = difference <= error
    out["text"] = (
        f"{'at' if out['equal'] else 'not at'} equal accuracy: {pair} (difference {100 * difference:.2f} points "
        f"{'<=' if out['equal'] else '>'} SE {100 * error:.2f} points on {images:,} images)"
    )
    return out


def find_row(rows: Iterable[Mapping[str, Any]], model: str, engine: str) -> Mapping[str, Any] | None:
    """The row of ``(model, engine)``, or ``None``."""
    for row in rows:
        if row["model"] == model and row["engine"] == engine:
            return row
    return None


def add_ratios(rows: list[dict[str, Any]]) -> float | None:
    """Set ``latency_vs_c`` on every timed row: its median latency over the generated C's (bcnn, bnn-host).

    Returns:
        The generated C's median microseconds, or ``None`` (then every ratio is ``None``).
    """
    reference = find_row(rows, *_REFERENCE)
    base = reference["latency_us_median"] if reference else None
    for row in rows:
        latency = row.get("latency_us_median")
        row["latency_vs_c"] = latency / base if latency is not None and base else None
    return base


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _check(value: float | None, bar: float) -> bool | None:
    return None if value is None else value >= bar


def tflm_agreement(oncore: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether every TFLite-Micro firmware run predicted exactly what the Python interpreter predicts.

    Returns:
        ``{"runs", "exact", "images", "not_run", "ok"}``: runs that ran, how many agree on every
        image, the fewest images a run had, runs skipped (with why), ``ok`` (``None``: no run).
    """
    ran = [entry for entry in oncore if entry["ran"]]
    exact = [entry for entry in ran if entry["agreement_tflm_python"] == 1.0]
    return {
        "runs": len(ran),
        "exact": len(exact),
        "images": min((entry["images"] for entry in ran), default=None),
        "differ": [f"{e['model']}.{e['format']} {e['core']} {e['kernels']}" for e in ran if e not in exact],
        "not_run": [f"{e['model']}.{e['format']} {e['core']} {e['kernels']}: {e['note']}" for e in oncore if not e["ran"]],
        "ok": None if not ran else len(exact) == len(ran),
    }


def bnn_vs_tflm(
    rows: list[dict[str, Any]],
    oncore: list[dict[str, Any]],
    bnn_accuracy: float | None,
    core: str = "cortex-m4",
    recipes: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The bnn engine (bcnn) against TFLite-Micro + CMSIS-NN (int8 cnn) on ``core``: ratios TFLM / bnn.

    Two different models: the ratios are only the comparison a reader takes them for at equal
    accuracy, so the result carries both accuracies, on the same images, and the verdict of
    :func:`equal_accuracy`.

    Args:
        rows: the bench rows (the ``bcnn``/``bnn-qemu`` row: instructions, flash, RAM).
        oncore: the TFLite-Micro on-core entries (the int8 cnn, CMSIS-NN, ``core``).
        bnn_accuracy: the bnn firmware's accuracy on the same images the TFLite-Micro firmware
            ran (``None``: not run on all of them).
        core: the core of the comparison.
        recipes: model name -> the recipe that trained it (``bench.prepare.Prepared.recipe``).

    Returns:
        ``{"core", "images", "bnn": {...}, "tflm": {...}, "ratios": {"instructions", "flash", "ram"},
        "accuracy": equal_accuracy(bnn, tflm, images)}``; ``bnn`` and ``tflm`` carry their model
        and recipe; figures are ``None`` where a side did not run.
    """
    qemu = find_row(rows, "bcnn", "bnn-qemu")
    tflm = next(
        (
            e
            for e in oncore
            if e["model"] == "cnn" and e["format"] == "int8" and e["core"] == core and e["kernels"] == "cmsis_nn" and e["ran"]
        ),
        None,
    )
    keys = (("instructions", "instructions_per_inference"), ("flash", "firmware_flash_bytes"), ("ram", "ram_bytes"))
    bnn = {name: (qemu[key] if qemu else None) for name, key in keys}
    other = {name: (tflm[key] if tflm else None) for name, key in keys}
    bnn["accuracy"] = bnn_accuracy
    other["accuracy"] = tflm["accuracy"] if tflm else None
    images = tflm["images"] if tflm else None
    recipes = recipes or {}
    return {
        "core": core,
        "images": images,
        "bnn": {"model": "bcnn", "recipe": recipes.get("bcnn"), **bnn},
        "tflm": {"model": "cnn.int8", "recipe": recipes.get("cnn"), "kernels": "cmsis_nn", **other},
        "ratios": {name: _ratio(other[name], bnn[name]) for name, _ in keys},
        "accuracy": equal_accuracy(bnn["accuracy"], other["accuracy"], images),
    }


def acceptance(
    rows: list[dict[str, Any]],
    total_seconds: float | None,
    oncore: list[dict[str, Any]] | None = None,
    bnn_accuracy: float | None = None,
    recipes: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The issue's acceptance figures, each with its bar and verdict (``ok`` ``None``: not measured).

    * ``runtime``: the whole run in under :data:`BUDGET_SECONDS`.
    * ``c_vs_lce``: LCE interpreter latency / generated C latency for bcnn (the host backend's
      default build), >= 20; the portable build's ratio is given beside it.
    * ``model_data``: int8 cnn flatbuffer bytes / bcnn ``bnn`` model data bytes, >= 8.
    * ``ram``: int8 cnn TFLite-Micro arena / bcnn ``bnn`` firmware RAM on Cortex-M4, >= 10.
    * ``tflm_agreement``: every TFLite-Micro firmware run equals the Python interpreter (:func:`tflm_agreement`).
    * ``bnn_vs_tflm``: the bnn engine against TFLite-Micro + CMSIS-NN on Cortex-M4 (:func:`bnn_vs_tflm`),
      with the models' ``recipes`` and whether their accuracies are equal (:func:`equal_accuracy`).
    """
    lce, host = find_row(rows, "bcnn", "lce"), find_row(rows, "bcnn", "bnn-host")
    portable = find_row(rows, "bcnn", "bnn-host-portable")
    portable_us = portable["latency_us_median"] if portable else None
    qemu = find_row(rows, "bcnn", "bnn-qemu")
    int8_flat, int8_tflm = find_row(rows, "cnn", "tflite-int8"), find_row(rows, "cnn", "tflm-int8")
    lce_us = lce["latency_us_median"] if lce else None
    c_us = host["latency_us_median"] if host else None
    model_data = qemu["model_bytes"] if qemu else None
    flat_bytes = int8_flat["model_bytes"] if int8_flat else None
    bnn_ram = qemu["ram_bytes"] if qemu else None
    arena = int8_tflm["ram_bytes"] if int8_tflm else None
    speedup = _ratio(lce_us, c_us)
    data_ratio = _ratio(flat_bytes, model_data)
    ram_ratio = _ratio(arena, bnn_ram)
    return {
        "runtime": {
            "seconds": total_seconds,
            "budget_seconds": BUDGET_SECONDS,
            "ok": None if total_seconds is None else total_seconds < BUDGET_SECONDS,
        },
        "c_vs_lce": {
            "lce_us_median": lce_us,
            "c_us_median": c_us,
            "ratio": speedup,
            "c_portable_us_median": portable_us,
            "ratio_portable": _ratio(lce_us, portable_us),
            "bar": BARS["c_vs_lce"],
            "ok": _check(speedup, BARS["c_vs_lce"]),
        },
        "model_data": {
            "bnn_model_data_bytes": model_data,
            "cnn_int8_flatbuffer_bytes": flat_bytes,
            "bnn_firmware_flash_bytes": qemu["firmware_flash_bytes"] if qemu else None,
            "ratio": data_ratio,
            "bar": BARS["model_data"],
            "ok": _check(data_ratio, BARS["model_data"]),
        },
        "ram": {
            "bnn_ram_bytes": bnn_ram,
            "cnn_int8_tflm_arena_bytes": arena,
            "ratio": ram_ratio,
            "bar": BARS["ram"],
            "ok": _check(ram_ratio, BARS["ram"]),
        },
        "tflm_agreement": tflm_agreement(oncore or []),
        "bnn_vs_tflm": bnn_vs_tflm(rows, oncore or [], bnn_accuracy, recipes=recipes),
    }


def deployables(
    rows: list[dict[str, Any]], cores: list[dict[str, Any]], oncore: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """What can be flashed, with its flash and RAM needs (per core where the build depends on it).

    * ``bnn`` (a binary model): the deployable ELF of each core's QEMU build: flash = model +
      code (text + data), RAM = data + bss + deepest stack.
    * ``tflm`` / ``tflm-int8`` rows that ran: flash = flatbuffer bytes, RAM = measured arena
      (TFLite-Micro's own code, about tens of KiB, is not included).
    * TFLite-Micro + CMSIS-NN firmware built for a core (``oncore`` entries): the whole
      deployable ELF of that core; RAM with the measured stack where it ran, else unknown
      (a firmware too large for the QEMU machine still has its flash figure).

    Returns:
        ``[{"model", "engine", "label", "flash": {core: bytes} | bytes, "ram": ..., "note"}]``.
    """
    found: list[dict[str, Any]] = []
    for row in rows:
        if row["engine"] == "bnn-qemu" and cores:
            found.append(
                {
                    "model": row["model"],
                    "engine": "bnn",
                    "label": f"{row['model']} bnn",
                    "flash": {entry["core"]: entry["firmware_flash_bytes"] for entry in cores},
                    "ram": {entry["core"]: entry["ram_bytes"] for entry in cores},
                    "note": "whole deployable firmware of that core (model + code), RAM incl. stack",
                }
            )
        elif row["engine"] in ("tflm", "tflm-int8") and row["accuracy"] is not None:
            found.append(
                {
                    "model": row["model"],
                    "engine": row["engine"],
                    "label": f"{row['model']} {row['engine']}",
                    "flash": row["model_bytes"],
                    "ram": row["ram_bytes"],
                    "note": "flatbuffer + measured arena; TFLite-Micro code not counted",
                }
            )
    built: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in oncore or []:
        if entry["kernels"] == "cmsis_nn" and entry["firmware_flash_bytes"] is not None:
            built.setdefault((entry["model"], entry["format"]), []).append(entry)
    for (model, fmt), entries in built.items():
        found.append(
            {
                "model": model,
                "engine": f"tflm-firmware-{fmt}",
                "label": f"{model} {fmt} TFLM+CMSIS-NN firmware",
                "flash": {entry["core"]: entry["firmware_flash_bytes"] for entry in entries},
                "ram": {entry["core"]: entry["ram_bytes"] for entry in entries},
                "note": "whole deployable firmware of that core (flatbuffer + TFLite-Micro + CMSIS-NN + libc), RAM incl. stack",
            }
        )
    return found


def _need(value: int | Mapping[str, int] | None, core: str) -> int | None:
    if isinstance(value, Mapping):
        return value.get(core)
    return value


def board_rows(items: list[dict[str, Any]], boards: Iterable[Board]) -> list[dict[str, Any]]:
    """Which deployable fits which board, with the margin (budget - need; negative: over).

    Args:
        items: from :func:`deployables`.
        boards: the boards (``firmware_gen.targets.BOARDS.values()``).

    Returns:
        One entry per (board, deployable): board, core, budgets, needs, margins, ``fits``
        (``None`` when a need was not measured for the board's core).
    """
    out = []
    for board in boards:
        for item in items:
            flash, ram = _need(item["flash"], board.core), _need(item["ram"], board.core)
            verdict = check_budget(flash, ram, board.flash_bytes, board.ram_bytes, label=f"board {board.name}")
            complete = flash is not None and ram is not None
            out.append(
                {
                    "board": board.name,
                    "core": board.core,
                    "flash_budget": board.flash_bytes,
                    "ram_budget": board.ram_bytes,
                    "model": item["model"],
                    "engine": item["engine"],
                    "label": item["label"],
                    "flash_need": flash,
                    "ram_need": ram,
                    "flash_margin": None if flash is None else board.flash_bytes - flash,
                    "ram_margin": None if ram is None else board.ram_bytes - ram,
                    "fits": verdict["ok"] if complete or verdict["ok"] is False else None,
                }
            )
    return out
