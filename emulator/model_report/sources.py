"""Find the JSON reports the pipeline wrote under a folder and group them by model.

What each stage leaves behind (and what the HTML report reads, never re-measures):

* ``NAME.train.json`` (``python -m train``): params, recipe, history, confusion matrix;
* ``NAME.convert.json`` (``python -m convert``): source ``.h5`` and sha256, every flatbuffer
  with its ops, bytes, sha256 and the check against Keras;
* ``FOLDER/firmware.json`` (``python -m firmware_gen``): engine, core, deployable flash and RAM,
  the bnn engine's static arena;
* ``*.emulate.json`` (``python -m emulator``): accuracy, agreement and its reference, flash,
  RAM, instructions per inference, the per-layer table and the activation memory plan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.backends import model_name
from pipeline.errors import InputError
from pipeline.json_input import parse_json

__all__ = ["Doc", "ModelSources", "collect"]

_SUFFIXES = {"train": ".train.json", "convert": ".convert.json", "emulate": ".emulate.json"}


@dataclass(frozen=True)
class Doc:
    """One JSON report as read.

    Attributes:
        rel: its path relative to the folder searched (POSIX form), as the report names it.
        path: its path as found.
        data: the parsed JSON object.
        sha256: of the file's bytes.
    """

    rel: str
    path: Path
    data: dict[str, Any]
    sha256: str


@dataclass
class ModelSources:
    """Every report that belongs to one model (``bcnn`` for ``bcnn.h5``, ``bcnn.lce.tflite``, ...).

    Attributes:
        name: the model name.
        train: ``NAME.train.json`` or ``None``.
        convert: ``NAME.convert.json`` or ``None``.
        emulations: the ``*.emulate.json`` reports of the model's artifacts.
        firmwares: the ``firmware.json`` of every firmware folder generated from the model.
    """

    name: str
    train: Doc | None = None
    convert: Doc | None = None
    emulations: list[Doc] = field(default_factory=list)
    firmwares: list[Doc] = field(default_factory=list)

    @property
    def docs(self) -> list[Doc]:
        """Every report of the model, in a stable order."""
        found = [doc for doc in (self.train, self.convert) if doc is not None]
        return sorted([*found, *self.emulations, *self.firmwares], key=lambda doc: doc.rel)


def _read(path: Path, folder: Path) -> Doc:
    raw = path.read_bytes()
    try:
        data = parse_json(raw.decode("utf-8"))
    except ValueError as err:  # not UTF-8, not JSON, or nested too deep
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return Doc(path.relative_to(folder).as_posix(), path, data, hashlib.sha256(raw).hexdigest())


def _hidden(path: Path, folder: Path) -> bool:
    """True for files inside hidden folders (the temporary trees atomic writes leave while running)."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts[:-1])


def _firmware_model(doc: Doc) -> str:
    recorded = doc.data.get("model")
    path = recorded.get("path") if isinstance(recorded, dict) else recorded
    if not isinstance(path, str) or not path:
        raise InputError(f"{doc.path}: no model.path (not a firmware.json written by python -m firmware_gen)")
    return model_name(Path(path))


def _emulation_model(doc: Doc) -> str:
    name = doc.data.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{doc.path}: no name (not a report written by python -m emulator)")
    return name


def collect(folder: Path) -> dict[str, ModelSources]:
    """Read every pipeline report under ``folder`` and group them by model name.

    Args:
        folder: the artifacts folder (``artifacts/`` by default in the Makefile).

    Returns:
        Model name -> its :class:`ModelSources`, sorted by name.

    Raises:
        InputError: the folder is missing, holds no report, or a report is not a JSON object
            of the expected kind.
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder (pass the artifacts folder the pipeline wrote)")
    models: dict[str, ModelSources] = {}

    def entry(name: str) -> ModelSources:
        return models.setdefault(name, ModelSources(name))

    for path in sorted(folder.rglob("*.json")):
        if not path.is_file() or _hidden(path, folder):
            continue
        if path.name == "firmware.json":
            doc = _read(path, folder)
            entry(_firmware_model(doc)).firmwares.append(doc)
            continue
        for kind, suffix in _SUFFIXES.items():
            if path.name.endswith(suffix) and len(path.name) > len(suffix):
                doc = _read(path, folder)
                if kind == "emulate":
                    entry(_emulation_model(doc)).emulations.append(doc)
                    break
                name = path.name[: -len(suffix)]
                if path.parent != folder:
                    break  # train/convert reports of a model live beside its .h5
                setattr(entry(name), kind, doc)
                break
    if not models:
        raise InputError(
            f"{folder}: no pipeline reports (*.train.json, *.convert.json, firmware.json, *.emulate.json); "
            "run make demo or the stages first"
        )
    return dict(sorted(models.items()))
