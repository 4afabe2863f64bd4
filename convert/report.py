"""What ``python -m convert`` measured, as ``NAME.convert.json`` and as a printed table.

One :class:`FormatResult` per requested format (written or skipped); :func:`build_report`
turns them into the JSON document and :func:`render_table` prints that same document, so
the table and the file always show the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.metadata import FRONTEND_METADATA
from pipeline.artifacts import TOOL_VERSION, sha256_bytes

if TYPE_CHECKING:
    from pipeline.frontend import FrontendConfig

__all__ = [
    "FORMATS",
    "FILE_SUFFIXES",
    "MIN_AGREEMENT",
    "SCORE_TOLERANCE",
    "GATED_FORMATS",
    "FormatResult",
    "agreement",
    "score_agreement",
    "score_rows",
    "excused_rows",
    "nonfinite_rows",
    "accuracy",
    "build_report",
    "render_table",
]

FORMATS = ("float", "int8", "lce")
FILE_SUFFIXES = {"float": ".tflite", "int8": ".int8.tflite", "lce": ".lce.tflite"}
MIN_AGREEMENT = 0.999
SCORE_TOLERANCE = 1e-3
"""Scores agree when they differ by at most this, relative to the larger of 1 and the row's largest
reference score. Float and LCE flatbuffers of the zoo differ from Keras by under 3e-7."""
GATED_FORMATS = frozenset({"float", "lce"})


def agreement(scores: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the reference's argmax."""
    return float(np.mean(np.argmax(scores, axis=1) == np.argmax(reference, axis=1)))


def nonfinite_rows(scores: np.ndarray) -> int:
    """Rows with a NaN or infinite score (argmax of NaN is 0 on both sides: such rows must fail, not agree)."""
    return int(np.count_nonzero(~np.all(np.isfinite(scores), axis=1)))


def score_rows(scores: np.ndarray, reference: np.ndarray, tolerance: float = SCORE_TOLERANCE) -> np.ndarray:
    """Per row: every score finite on both sides and within ``tolerance`` of the reference's.

    The tolerance is relative to ``max(1, max |reference row|)``: absolute for probabilities,
    relative for large logits.
    """
    scores = np.asarray(scores, np.float64)
    reference = np.asarray(reference, np.float64)
    finite = np.all(np.isfinite(scores), axis=1) & np.all(np.isfinite(reference), axis=1)
    with np.errstate(invalid="ignore"):
        scale = np.maximum(1.0, np.max(np.abs(reference), axis=1))
        close = np.max(np.abs(scores - reference), axis=1) <= tolerance * scale
    return finite & close


def excused_rows(
    scores: np.ndarray, reference: np.ndarray, near_ties: np.ndarray, tolerance: float = SCORE_TOLERANCE
) -> np.ndarray:
    """Per row: scores that differ (:func:`score_rows`) but are finite, on a row with a near tie in
    the reference's binarizations (:mod:`convert.near_ties`); such a row counts as agreeing."""
    finite = np.all(np.isfinite(np.asarray(scores, np.float64)), axis=1)
    return np.asarray(near_ties, bool) & finite & ~score_rows(scores, reference, tolerance)


def score_agreement(
    scores: np.ndarray, reference: np.ndarray, tolerance: float = SCORE_TOLERANCE, excused: np.ndarray | None = None
) -> float:
    """Fraction of rows whose scores agree (:func:`score_rows`) or are excused (``excused``: the
    near-tie rows, see :func:`excused_rows`)."""
    rows = score_rows(scores, reference, tolerance)
    if excused is not None:
        rows = rows | excused_rows(scores, reference, excused, tolerance)
    return float(np.mean(rows))


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the label."""
    return float(np.mean(np.argmax(scores, axis=1) == np.asarray(labels)))


@dataclass(frozen=True)
class FormatResult:
    """One format's outcome.

    Attributes:
        format: ``float``, ``int8`` or ``lce``.
        path: where the flatbuffer is (to be) written, or ``None`` when skipped.
        skipped: the reason the format was not produced, or ``None``.
        data: the flatbuffer bytes.
        ops: sorted distinct op names (builtin and custom).
        input_type: TFLite type of the input tensor (``FLOAT32``, ``INT8``).
        output_type: TFLite type of the output tensor.
        agreement: argmax agreement with Keras on the check images.
        score_agreement: share of check images whose scores are finite and within
            :data:`SCORE_TOLERANCE` of Keras's, or differ on an image with a near tie.
        near_ties: check images on which Keras binarizes a value within float rounding of 0
            (:mod:`convert.near_ties`).
        excused: near-tie images whose scores differ beyond the tolerance, finite (counted as agreeing).
        nonfinite: check images with a NaN or infinite score, here or in Keras.
        accuracy: accuracy on the check images.
        images: number of check images.
        seconds: conversion time.
        frontend_sha256: the sha256 of the audio front end config the flatbuffer carries as
            metadata (read back from the written bytes), or ``None``.
    """

    format: str
    path: str | None = None
    skipped: str | None = None
    data: bytes = b""
    ops: list[str] = field(default_factory=list)
    input_type: str = ""
    output_type: str = ""
    agreement: float | None = None
    score_agreement: float | None = None
    near_ties: int = 0
    excused: int = 0
    nonfinite: int = 0
    accuracy: float | None = None
    images: int = 0
    seconds: float = 0.0
    frontend_sha256: str | None = None

    @property
    def passed(self) -> bool:
        """False only for a gated format (float, lce) that agrees on less than :data:`MIN_AGREEMENT` of the
        images, by argmax or by scores, or has a non-finite score anywhere."""
        if self.skipped is not None or self.format not in GATED_FORMATS or self.agreement is None:
            return True
        scores_ok = self.score_agreement is None or self.score_agreement >= MIN_AGREEMENT
        return self.nonfinite == 0 and self.agreement >= MIN_AGREEMENT and scores_ok

    def failure(self) -> str:
        """Why a gated format failed, in words (empty when it passed)."""
        if self.passed or self.agreement is None:
            return ""
        text = f"{self.format} agrees with Keras on {100 * self.agreement:.2f}% (argmax)"
        if self.score_agreement is not None:
            text += f" and {100 * self.score_agreement:.2f}% (scores within {SCORE_TOLERANCE:g})"
        if self.nonfinite:
            text += f", scores NaN or infinite on {self.nonfinite} images"
        return text

    def to_json(self) -> dict[str, Any]:
        """The format's entry in ``NAME.convert.json``."""
        if self.skipped is not None:
            return {"skipped": True, "reason": self.skipped}
        entry: dict[str, Any] = {
            "path": self.path,
            "bytes": len(self.data),
            "sha256": sha256_bytes(self.data),
            "ops": list(self.ops),
            "input_type": self.input_type,
            "output_type": self.output_type,
            "agreement": self.agreement,
            "score_agreement": self.score_agreement,
            "score_tolerance": SCORE_TOLERANCE,
            "near_tie_images": self.near_ties,
            "excused_images": self.excused,
            "nonfinite_images": self.nonfinite,
            "accuracy": self.accuracy,
            "images": self.images,
            "convert_seconds": round(self.seconds, 2),
            "frontend_sha256": self.frontend_sha256,
        }
        if self.format in GATED_FORMATS:
            entry["min_agreement"] = MIN_AGREEMENT
            entry["passed"] = self.passed
        return entry


def build_report(
    *,
    name: str,
    source: str,
    source_sha256: str,
    input_range: tuple[float, float] | None,
    binary_layers: list[str],
    keras_accuracy: float,
    images: int,
    calibration_images: int,
    data_source: str,
    results: list[FormatResult],
    data_shape: dict[str, Any] | None = None,
    frontend: FrontendConfig | None = None,
) -> dict[str, Any]:
    """The ``NAME.convert.json`` document.

    Args:
        name: model name (the .h5 stem).
        source: the .h5 path.
        source_sha256: its sha256.
        input_range: ``(lo, hi)`` given with ``--input-range``, or ``None`` (the model scales raw pixels itself).
        binary_layers: names of the Larq binary layers (empty for a float model).
        keras_accuracy: Keras accuracy on the check images.
        images: number of check images (the first of the test set).
        calibration_images: training images used to calibrate int8.
        data_source: where the dataset was read from.
        results: one entry per requested format, in :data:`FORMATS` order.
        data_shape: the dataset's ``{"example_shape", "dtype", "num_classes"}``
            (:meth:`pipeline.data.Dataset.describe`), recorded under ``check``.
        frontend: an audio dataset's front end config, embedded in every flatbuffer as metadata
            (recorded under ``frontend``: the metadata name, the config and its sha256), or ``None``.
    """

    return {
        "version": TOOL_VERSION,
        "model": name,
        "source": {"path": source, "sha256": source_sha256},
        "input_range": list(input_range) if input_range is not None else None,
        "binary_layers": list(binary_layers),
        "check": {"images": images, "data": data_source, "min_agreement": MIN_AGREEMENT, **(data_shape or {})},
        "calibration_images": calibration_images,
        "keras": {"accuracy": keras_accuracy, "images": images},
        "formats": {result.format: result.to_json() for result in results},
        "frontend": None
        if frontend is None
        else {"metadata": FRONTEND_METADATA, "config": frontend.to_json(), "sha256": frontend.sha256()},
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def render_table(report: dict[str, Any]) -> str:
    """The printed summary of a ``NAME.convert.json`` document (same figures)."""
    source = report["source"]
    keras = report["keras"]
    scaling = f", input range {report['input_range'][0]:g},{report['input_range'][1]:g}" if report["input_range"] else ""
    check = report.get("check", {})
    shape = ""
    if "example_shape" in check:
        dims = "x".join(str(d) for d in check["example_shape"])
        shape = f" ({dims} {check['dtype']}, {check['num_classes']} classes)"
    lines = [
        f"{report['model']}: {source['path']} (sha256 {source['sha256'][:12]}){scaling}",
        f"Keras accuracy {_pct(keras['accuracy'])} on the first {keras['images']} test examples{shape}",
    ]
    rows = [("format", "file", "bytes", "agreement", "scores", "accuracy", "ops")]
    for fmt, entry in report["formats"].items():
        if entry.get("skipped"):
            rows.append((fmt, "-", "-", "-", "-", "-", f"skipped: {entry['reason']}"))
            continue
        verdict = "" if entry.get("passed", True) else " FAIL"
        rows.append(
            (
                fmt,
                entry["path"],
                f"{entry['bytes']:,}",
                _pct(entry["agreement"]) + verdict,
                _pct(entry.get("score_agreement")),
                _pct(entry["accuracy"]),
                ", ".join(entry["ops"]),
            )
        )
    columns = len(rows[0]) - 1
    widths = [max(len(row[col]) for row in rows) for col in range(columns)]
    for row in rows:
        cells = [row[col].ljust(widths[col]) if col < 2 else row[col].rjust(widths[col]) for col in range(columns)]
        lines.append("  ".join(cells) + "  " + row[columns])
    if report.get("frontend"):
        entry = report["frontend"]
        lines.append(f"front end {entry['sha256'][:12]} embedded as metadata {entry['metadata']} in every flatbuffer")
    for fmt, entry in report["formats"].items():
        if entry.get("excused_images"):
            lines.append(
                f"{fmt}: scores differ on {entry['excused_images']} of the {entry['near_tie_images']} images where Keras "
                "binarizes a value within float rounding of 0 (a near tie; counted as agreeing)"
            )
    return "\n".join(lines)
