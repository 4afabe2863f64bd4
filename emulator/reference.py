"""The reference an artifact's predictions are compared with (argmax agreement).

Defaults:

* a flatbuffer (``artifacts/bcnn.lce.tflite``): the sibling ``.h5`` (``artifacts/bcnn.h5``)
  run through Keras, with the input range recorded in ``NAME.convert.json`` applied;
* a firmware folder: the flatbuffer it was generated from (the model path recorded in
  ``firmware.json``) in its interpreter (LCE's for LCE ops, TFLite's otherwise; for the tflm
  engine's firmware, the TFLite-Micro interpreter fed exactly as ``main.cc`` feeds the model);
* a ``.h5``: none (it is the top of the verification ladder).

``--reference PATH`` overrides the default with any ``.h5`` or ``.tflite``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emulator.backends import Artifact, check_fits, keras_scores, load_artifact
from pipeline.errors import InputError

__all__ = ["Reference", "default_reference_path", "firmware_model_path", "firmware_input_values", "run_reference"]


@dataclass(frozen=True)
class Reference:
    """Predictions of the reference over the same images.

    Attributes:
        path: the reference artifact.
        backend: what ran it (``keras``, ``lce``, ``tflite`` or ``tflm``).
        predictions: ``(N,)`` argmax classes.
        input_range: the scaling fed to a Keras reference, or ``None``.
    """

    path: Path
    backend: str
    predictions: np.ndarray
    input_range: tuple[float, float] | None = None

    def to_json(self, labels: np.ndarray) -> dict[str, Any]:
        """JSON entry: path, backend, its own accuracy on ``labels``, input range."""
        return {
            "path": str(self.path),
            "backend": self.backend,
            "accuracy": float(np.mean(self.predictions == labels)),
            "input_range": list(self.input_range) if self.input_range is not None else None,
        }


def firmware_model_path(artifact: Artifact) -> Path | None:
    """The flatbuffer a firmware folder was generated from, as recorded in ``firmware.json``.

    Looks at ``model_path``, then ``model`` (a path string, or an object with ``path``), then
    ``source``; a relative path is tried against the folder first (firmware_gen records it
    relative to the folder), then the working directory (older folders recorded it as typed).
    """
    manifest = artifact.firmware
    candidates: list[Any] = [manifest.get("model_path"), manifest.get("model"), manifest.get("source")]
    for value in candidates:
        if isinstance(value, dict):
            value = value.get("path")
        if not isinstance(value, str) or not value.endswith(".tflite"):
            continue
        path = Path(value)
        options = [path] if path.is_absolute() else [Path(os.path.normpath(artifact.path / path)), Path.cwd() / path]
        for option in options:
            if option.is_file():
                return option
        return options[0]
    return None


def default_reference_path(artifact: Artifact) -> Path | None:
    """The default reference of ``artifact`` (see the module docstring), or ``None``.

    Raises:
        InputError: a firmware folder whose recorded model file is missing.
    """
    if artifact.kind == "flatbuffer":
        sibling = artifact.path.with_name(f"{artifact.name}.h5")
        return sibling if sibling.is_file() else None
    if artifact.kind == "firmware":
        path = firmware_model_path(artifact)
        if path is not None and not path.is_file():
            raise InputError(f"{artifact.path}/firmware.json names model {path}, which does not exist (pass --reference PATH)")
        return path
    return None


def firmware_input_values(model: Any, images: np.ndarray) -> np.ndarray:
    """Raw inputs that make an interpreter see exactly what the tflm engine's ``main.cc`` feeds.

    For an int8 input, ``main.cc`` maps each raw 8-bit value through ``kInputQuant``
    (:func:`firmware_gen.tflm.input_quant_table`, round half away from zero) while the
    interpreters quantize with :func:`pipeline.interpreters.quantize` (half to even): they differ
    on exact ties. The values returned here are the real values of ``kInputQuant[pixel]``,
    ``scale * (q - zero_point)``, which every interpreter quantizes back to ``q``. A float input
    gets the raw values unchanged (``main.cc`` casts them to float).

    Args:
        model: the parsed flatbuffer (:class:`convert.flatbuffer.Model`).
        images: raw uint8 examples ``(N, ...)``.

    Returns:
        ``images`` unchanged for a float input, else float32 values of the same shape.
    """
    from firmware_gen.tflm import input_quant_table

    tensor = model.tensors[model.inputs[0]]
    if tensor.dtype != "INT8" or tensor.quantization is None:
        return images
    scale, zero_point = float(tensor.quantization.scale[0]), int(tensor.quantization.zero_point[0])
    table = np.asarray(input_quant_table(scale, zero_point), dtype=np.float64)
    real = scale * (table - zero_point)
    return real[np.asarray(images, dtype=np.uint8)].astype(np.float32)


def run_reference(
    path: Path, images: np.ndarray, num_classes: int, *, trust_model: bool = False, tflm: bool = False
) -> Reference:
    """Run the reference artifact at ``path`` over ``images``.

    Args:
        path: a ``.h5`` or ``.tflite``.
        images: raw examples ``(N, ...)``.
        num_classes: the dataset's class count; the reference must output that many scores.
        trust_model: let a Keras reference whose layers carry Python code (``Lambda``) load and run.
        tflm: run a builtin-op flatbuffer in the TFLite-Micro interpreter (in a child process,
            :mod:`pipeline.isolation`) fed exactly as the tflm engine's ``main.cc`` feeds it (see
            :func:`firmware_input_values`): the reference of a tflm firmware.

    Raises:
        InputError: the reference is missing, corrupt, a firmware folder, carries code, cannot run,
            or does not take the examples or return ``num_classes`` scores.
    """
    from pipeline.isolation import run_checked

    reference = load_artifact(path)
    if reference.kind == "keras":
        scores, scaling = keras_scores(
            reference.path, images, desc="reference (keras)", classes=num_classes, trust_model=trust_model
        )
        return Reference(reference.path, "keras", np.argmax(scores, axis=1), scaling)
    if reference.kind == "flatbuffer" and reference.data is not None and reference.model is not None:
        check_fits(reference, tuple(np.asarray(images).shape[1:]), np.asarray(images).dtype, num_classes)
        if tflm and not reference.model.has_lce_ops:
            feed = firmware_input_values(reference.model, images)
            scores = run_checked("tflm", reference.data, feed, str(reference.path), progress="reference (tflm)")
            return Reference(reference.path, "tflm", np.argmax(scores, axis=1))
        kind = "lce" if reference.model.has_lce_ops else "tflite"
        scores = run_checked(kind, reference.data, images, str(reference.path), delegates=False, progress=f"reference ({kind})")
        return Reference(reference.path, kind, np.argmax(scores, axis=1))
    raise InputError(f"{path}: a reference must be a .h5 or a .tflite, not a firmware folder")
