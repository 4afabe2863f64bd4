"""The emulator's audio rungs: which data an artifact is fed, how a firmware runs from raw samples, what it reports.

The verification ladder for audio starts at raw samples. Keras, TFLite and LCE run on the
dataset's features (``x_test``, made by :func:`pipeline.frontend.features` in Python); a firmware
with the front end on the chip (the host build or QEMU) is fed the raw clips (``raw_test``)
through its clip API. :func:`feed` decides, after checking that the dataset's front end is the
one the artifact was made for (by sha256); :func:`run_backend` runs a firmware with the front end
on its clips (:mod:`emulator.clips`: its host build, or QEMU) as the emulator's ``host`` or
``qemu`` backend (:func:`backend_run`); :func:`summary` turns a run from raw samples into the
report's ``frontend`` entry (the features the chip made, compared byte for byte with Python's),
``instructions_per_clip`` (front end, network, total) and ``flash_ram`` (the deployable part,
the network alone, the front end alone); :func:`check_features` is the gate on the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emulator.backend_result import BackendRun
from emulator.clips import DEFAULT_CHUNKS, ClipRun, check_frontend, firmware_frontend, is_clip_firmware, run_host, run_qemu
from firmware_gen.targets import get_core
from pipeline.dataset import Dataset
from pipeline.errors import CheckError, InputError
from pipeline.frontend import FrontendConfig

__all__ = ["FED_FEATURES", "FED_RAW", "feed", "run_backend", "backend_run", "summary", "report_rows", "check_features"]

FED_FEATURES = "features"
FED_RAW = "raw"
_SHOWN = 10


def _recorded_frontend(artifact: Any) -> FrontendConfig | None:
    """The front end an artifact that takes features was made for: a flatbuffer's metadata, or a
    network-only firmware's ``report.input_frontend``."""
    if artifact.kind == "flatbuffer" and artifact.model is not None:
        return artifact.model.frontend
    if artifact.kind == "firmware":
        entry = (artifact.firmware.get("report") or {}).get("input_frontend")
        if isinstance(entry, dict):
            return FrontendConfig.from_json(entry.get("config"))
    return None


def feed(artifact: Any, dataset: Dataset, count: int) -> tuple[str, np.ndarray | None, FrontendConfig | None]:
    """What ``artifact`` is fed from ``dataset``'s first ``count`` test examples.

    Args:
        artifact: the loaded :class:`~emulator.backends.Artifact`.
        dataset: the dataset.
        count: test examples used.

    Returns:
        ``(FED_RAW, raw clips, the firmware's front end)`` for a firmware with the front end,
        else ``(FED_FEATURES, None, the front end the features must come from or None)``.

    Raises:
        InputError: a firmware with the front end and a dataset without raw clips, or any
            artifact whose recorded front end differs from the dataset's (one line, by sha256).
    """
    if artifact.kind == "firmware" and is_clip_firmware(artifact.firmware):
        config, _ = firmware_frontend(artifact.firmware, artifact.path / "firmware.json")
        check_frontend(dataset.frontend, dataset.raw_test, config, artifact.path)
        return FED_RAW, np.asarray(dataset.raw_test)[:count], config
    recorded = _recorded_frontend(artifact)
    if recorded is not None and dataset.frontend is not None:
        theirs = FrontendConfig.from_json(dataset.frontend)
        if theirs.sha256() != recorded.sha256():
            raise InputError(
                f"the dataset's front end ({theirs.sha256()[:12]}) is not the one {artifact.path} was made for "
                f"({recorded.sha256()[:12]}): its features are other numbers; run it on the data it was trained on"
            )
    return FED_FEATURES, None, recorded


def _means(stats: dict[str, dict[str, float]] | None) -> dict[str, float | None]:
    parts = ("frontend", "network", "total")
    return {part: (stats[part]["mean"] if stats else None) for part in parts}


def summary(
    result: BackendRun, features: np.ndarray, config: FrontendConfig, chunks: Sequence[int], manifest: dict[str, Any]
) -> dict[str, Any]:
    """The report entries of a run from raw samples; drops the features array from ``result.extra``.

    Args:
        result: the backend's run (:func:`emulator.clips.backend_run`).
        features: Python's features of the same clips (the dataset's ``x_test``).
        config: the firmware's front end.
        chunks: the push sizes the clips were streamed in.
        manifest: the firmware's ``firmware.json`` (the flash and RAM of its links for the host build).

    Returns:
        ``{"fed", "frontend", "instructions_per_clip", "flash_ram"}``.
    """
    produced = np.asarray(result.extra.pop("features"))
    count = len(produced)
    same = np.all(produced.reshape(count, -1) == np.asarray(features).reshape(count, -1), axis=1)
    differ = np.flatnonzero(~same)
    links = result.extra.pop("flash_ram", None)
    if links is None:
        report = manifest.get("report") or {}
        links = {
            name: {key: report[name].get(key) for key in ("flash_bytes", "ram_bytes", "static_ram_bytes", "stack_bytes")}
            for name in ("deployable", "network", "frontend")
            if isinstance(report.get(name), dict) and report[name].get("flash_bytes") is not None
        }
    return {
        "fed": FED_RAW,
        "frontend": {
            "config": config.to_json(),
            "config_sha256": config.sha256(),
            "chunks": [int(c) for c in chunks],
            "clips": count,
            "features_equal": int(same.sum()),
            "features_differ": differ[:_SHOWN].tolist(),
        },
        "instructions_per_clip": _means(result.extra.get("instructions_per_clip")),
        "flash_ram": links,
    }


def report_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The printed table's rows of the audio entries: instructions (split), front end, flash and RAM per link."""
    ipi = report.get("instructions_per_inference")
    split = report.get("instructions_per_clip") or {}
    rows = [("instructions", f"{ipi:,.0f} per inference" if ipi is not None else "-")]
    if split.get("total") is not None:
        parts = f"front end {split['frontend']:,.0f} + network {split['network']:,.0f}"
        rows = [("instructions", f"{split['total']:,.0f} per clip: {parts}")]
    entry = report["frontend"]
    if report.get("fed") != FED_RAW:
        return [*rows, ("front end", f"{entry['config_sha256'][:12]} (Python's features fed; the dataset's front end matches)")]
    chunks = ",".join(str(c) for c in entry["chunks"])
    equal = f"features equal to Python's on {entry['features_equal']:,} of {entry['clips']:,} clips"
    rows.append(("front end", f"{entry['config_sha256'][:12]}, raw clips pushed in chunks of {chunks}: {equal}"))
    links = report.get("flash_ram") or {}
    sizes = [f"{name} {part['flash_bytes']:,} / {part['ram_bytes']:,}" for name, part in links.items() if part.get("flash_bytes")]
    if sizes:
        rows.append(("flash / RAM", "; ".join(sizes) + " bytes"))
    return rows


def check_features(report: dict[str, Any], path: Any) -> None:
    """The gate of the first audio rung: the chip's features equal Python's on every clip.

    Raises:
        CheckError: some clip's features differ (one line: how many, the first ones, the report).
    """
    entry = report.get("frontend") or {}
    if report.get("fed") != FED_RAW or entry.get("features_equal") == entry.get("clips"):
        return
    raise CheckError(
        f"the firmware's features differ from Python's on {entry['clips'] - entry['features_equal']} of {entry['clips']} "
        f"clips (first: {', '.join(str(i) for i in entry['features_differ'])}); report: {path}"
    )


def _statistics(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def backend_run(run: ClipRun, chunks: Sequence[int]) -> BackendRun:
    """The emulator backend's result of a clip run.

    Flash and RAM are the whole deployable part's (network, front end and clip API) for QEMU,
    ``None`` for the host build (the emulator takes the target's from ``firmware.json``);
    ``instructions_per_inference`` is the mean per clip, front end and network together.
    ``extra`` carries ``instructions_per_clip`` (``frontend``, ``network``, ``total``: mean,
    median, min, max), ``flash_ram`` (each link's flash and RAM), ``scores``, ``predictions``,
    ``features`` (the array, for the caller to compare and drop) and the run's details.
    """
    results = run.results
    extra: dict[str, Any] = {
        "fed": "raw 16-bit samples (Dataset.raw_test) through the clip API",
        "chunks": [int(c) for c in chunks],
        "frontend_sha256": run.config.sha256(),
        "scores": results.scores,
        "predictions": results.predictions,
        "features": results.features,
        "pushes_per_clip": float(np.mean(results.pushes)) if results.pushes is not None else None,
        "signature": run.signature.to_json(),
    }
    total = None
    if run.instructions:
        extra["instructions_per_clip"] = {part: _statistics(values) for part, values in run.instructions.items()}
        extra.update(
            {
                "qemu_machine": get_core(run.core or "").qemu_machine,
                "core": run.core,
                "instructions_statistic": "mean",
                "instructions": {
                    **_statistics(run.instructions["total"]),
                    "resolution": run.calibration["instructions_per_tick"],
                },
                "calibration": run.calibration,
                "stack_measured_peak_bytes": results.stack_peak_bytes,
                "flash_ram": run.links,
                "qemu_seconds": run.seconds,
            }
        )
        total = float(run.instructions["total"].mean())
    else:
        extra["host_ns_per_clip"] = {
            "frontend": float(np.median(results.frontend_ticks)) if results.frontend_ticks is not None else None,
            "network": float(np.median(results.network_ticks)) if results.network_ticks is not None else None,
        }
        extra["c_flags"] = run.flags
    deployable = run.links.get("deployable")
    return BackendRun(
        predictions=results.predictions,
        flash_bytes=deployable["flash_bytes"] if deployable else None,
        ram_bytes=deployable["ram_bytes"] if deployable else None,
        ram_source="elf" if deployable else None,
        instructions_per_inference=total,
        extra=extra,
    )


def run_backend(
    backend: str,
    folder: Path,
    clips: np.ndarray | Sequence[np.ndarray],
    *,
    core: str | None,
    chunks: Sequence[int] = DEFAULT_CHUNKS,
    timeout: float | None = None,
    kernels: str = "cmsis_nn",
    allow_modified: bool = False,
) -> BackendRun:
    """The emulator's ``host`` or ``qemu`` backend for a firmware with the audio front end (:func:`backend_run`).

    ``allow_modified`` builds the folder even when its files are not the ones its ``firmware.json`` lists.

    Raises:
        InputError: ``qemu`` without a core, or see :func:`run_host` and :func:`run_qemu`.
    """
    if backend == "host":
        return backend_run(run_host(folder, clips, chunks=chunks, allow_modified=allow_modified), chunks)
    if core is None:
        raise InputError("the qemu backend needs --target CORE (or a --board, whose core is used)")
    run = run_qemu(folder, clips, core=core, chunks=chunks, timeout=timeout, kernels=kernels, allow_modified=allow_modified)
    return backend_run(run, chunks)
