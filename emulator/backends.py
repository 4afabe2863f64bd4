"""Emulator backends: load an artifact, pick what runs it, run it over images, find its reference.

An artifact is a Keras ``.h5``, a ``.tflite`` flatbuffer (builtin or LCE ops), or a firmware
folder (one holding ``firmware.json``). Backends and what they measure:

========  =========================  ==============================  ===========================
backend   runs                       flash_bytes                     ram_bytes (ram_source)
========  =========================  ==============================  ===========================
keras     ``.h5`` in Keras           ``None``                        ``None``
tflite    TFLite interpreter (*)     flatbuffer bytes                TFLM arena (``tflm-arena``)
tflm      TFLite-Micro interpreter   flatbuffer bytes                TFLM arena (``tflm-arena``)
lce       LCE interpreter            flatbuffer bytes                see below
host      generated C, host gcc      from ``emulator.host``          from ``emulator.host``
qemu      firmware on a Cortex-M     from ``emulator.qemu``          from ``emulator.qemu``
========  =========================  ==============================  ===========================

(*) with TFLite's builtin kernels, no XNNPACK delegate: int8 results are then bit-exact with
TFLite-Micro's (checked by the ``auto`` cross-check), float results equal up to rounding.

RAM of a flatbuffer depends on its ops, not on the interpreter: builtin-op flatbuffers get the
arena TFLite-Micro allocates (:func:`firmware_gen.arena.measure_arena`); LCE flatbuffers, which
TFLM cannot run, get the activation RAM of :mod:`emulator.planner` (``planner``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.flatbuffer import Model, read_model_bytes
from emulator.backend_result import BackendRun
from pipeline.artifacts import sha256_bytes, sha256_file
from pipeline.errors import InputError
from pipeline.json_input import parse_json

if TYPE_CHECKING:
    from emulator.signature import FirmwareSignature

__all__ = [
    "BACKENDS",
    "Artifact",
    "load_artifact",
    "choose_backend",
    "is_tflm_firmware",
    "run_backend",
    "flatbuffer_ram",
    "keras_scores",
    "input_range_for",
    "progress_scores",
    "check_fits",
]

BACKENDS = ("keras", "tflite", "lce", "tflm", "host", "qemu")
_KINDS = {"keras": ("keras",), "flatbuffer": ("tflite", "lce", "tflm"), "firmware": ("host", "qemu")}
_MODEL_SUFFIXES = (".lce.tflite", ".int8.tflite", ".tflite", ".h5")
_CHUNK = 500


@dataclass(frozen=True)
class Artifact:
    """An artifact as loaded for emulation.

    Attributes:
        path: the file or folder given.
        kind: ``keras``, ``flatbuffer`` or ``firmware``.
        name: model name (file name without ``.lce.tflite``/``.int8.tflite``/``.tflite``/``.h5``).
        sha256: of the file; for a firmware folder, of its ``firmware.json``.
        data: flatbuffer bytes (``flatbuffer`` only).
        model: parsed flatbuffer (``flatbuffer`` only).
        firmware: the parsed ``firmware.json`` (``firmware`` only).
    """

    path: Path
    kind: str
    name: str
    sha256: str
    data: bytes | None = None
    model: Model | None = None
    firmware: dict[str, Any] = field(default_factory=dict)


def model_name(path: Path) -> str:
    """``artifacts/bcnn.lce.tflite`` -> ``bcnn`` (the name convert and train use)."""
    name = path.name
    for suffix in _MODEL_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem


def load_artifact(path: str | Path) -> Artifact:
    """Identify and load an artifact.

    Args:
        path: a ``.h5``, a ``.tflite`` file, or a firmware folder with ``firmware.json``.

    Returns:
        The :class:`Artifact`.

    Raises:
        InputError: missing path, a folder without ``firmware.json``, an unreadable
            ``firmware.json``, or a file that is neither HDF5 nor a valid flatbuffer.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        manifest = path / "firmware.json"
        if not manifest.is_file():
            raise InputError(
                f"{path}: a folder but not a firmware folder (no firmware.json); pass a .h5, a .tflite or a firmware folder"
            )
        try:
            firmware = parse_json(manifest.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"{manifest}: not valid JSON ({err})") from None
        if not isinstance(firmware, dict):
            raise InputError(f"{manifest}: expected a JSON object")
        recorded = firmware.get("model")
        recorded_path = recorded.get("path") if isinstance(recorded, dict) else recorded
        name = model_name(Path(recorded_path)) if isinstance(recorded_path, str) and recorded_path else path.name
        return Artifact(path, "firmware", name, sha256_file(manifest), firmware=firmware)
    data = path.read_bytes()
    if data[:8] == b"\x89HDF\r\n\x1a\n":
        return Artifact(path, "keras", model_name(path), sha256_bytes(data))
    if path.suffix == ".h5":
        raise InputError(f"{path}: not an HDF5 file (expected a Keras .h5 model)")
    model = read_model_bytes(data, str(path))
    return Artifact(path, "flatbuffer", model_name(path), model.sha256, data=data, model=model)


def is_tflm_firmware(artifact: Artifact) -> bool:
    """A firmware folder the tflm engine wrote (``firmware.json`` says ``engine: tflm``)."""
    return artifact.kind == "firmware" and (artifact.firmware or {}).get("engine") == "tflm"


def choose_backend(artifact: Artifact, requested: str, target: str | None) -> str:
    """Resolve ``auto`` and check that the backend can run the artifact.

    ``auto``: ``.h5`` -> keras; flatbuffer with LCE ops -> lce; other flatbuffer -> tflite
    (with the TFLM cross-check); firmware folder -> host, or qemu when a target is given.

    Raises:
        InputError: the backend cannot run this kind of artifact (the message says which can).
    """
    if requested == "auto":
        if artifact.kind == "keras":
            return "keras"
        if artifact.kind == "flatbuffer":
            return "lce" if artifact.model is not None and artifact.model.has_lce_ops else "tflite"
        if is_tflm_firmware(artifact):
            if not target:
                raise InputError(f"{artifact.path}: a tflm firmware runs on QEMU with real TFLite-Micro: pass --target CORE")
            return "qemu"
        return "qemu" if target else "host"
    if requested not in BACKENDS:
        raise InputError(f"unknown backend {requested!r}: valid backends are auto, {', '.join(BACKENDS)}")
    if requested not in _KINDS[artifact.kind]:
        valid = ", ".join(_KINDS[artifact.kind])
        raise InputError(f"{artifact.path}: backend {requested} cannot run a {artifact.kind} artifact (use {valid})")
    if requested == "host" and is_tflm_firmware(artifact):
        raise InputError(f"{artifact.path}: a tflm firmware has no host build; use --backend qemu --target CORE")
    if requested in ("tflite", "tflm") and artifact.model is not None and artifact.model.has_lce_ops:
        ops = ", ".join(artifact.model.custom_ops)
        raise InputError(f"{artifact.path}: has LCE custom ops ({ops}) that {requested} cannot run; use --backend lce")
    return requested


def progress_scores(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, desc: str) -> np.ndarray:
    """Run a batch scorer over ``images`` in chunks with a tqdm bar (shown on terminals only)."""
    from tqdm import tqdm

    parts = []
    with tqdm(total=len(images), desc=desc, unit="img", disable=None, leave=False) as bar:
        for start in range(0, len(images), _CHUNK):
            chunk = images[start : start + _CHUNK]
            parts.append(np.asarray(run(chunk)))
            bar.update(len(chunk))
    return np.concatenate(parts)


def input_range_for(h5_path: Path) -> tuple[float, float] | None:
    """The ``input_range`` recorded in the sibling ``NAME.convert.json``, or ``None``.

    If ``python -m convert --input-range LO,HI`` was used, the ``.h5`` expects pixels already
    scaled to ``[LO, HI]`` (the flatbuffers take raw pixels); Keras must get the same scaling.

    Raises:
        InputError: the convert report exists but is unreadable or its range is malformed.
    """
    report = h5_path.with_name(f"{model_name(h5_path)}.convert.json")
    if not report.is_file():
        return None
    try:
        value = parse_json(report.read_text(encoding="utf-8")).get("input_range")
    except (ValueError, UnicodeDecodeError, AttributeError) as err:
        raise InputError(f"{report}: not a valid convert report ({err})") from None
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
        raise InputError(f"{report}: input_range must be [lo, hi], got {value!r}")
    return float(value[0]), float(value[1])


def keras_scores(
    h5_path: Path, images: np.ndarray, desc: str = "keras", *, classes: int, trust_model: bool = False
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Scores of a ``.h5`` on raw examples, with its recorded input range applied.

    Args:
        h5_path: the Keras model.
        images: raw examples ``(N, ...)``; the model must take ``prod(images.shape[1:])`` values.
        desc: progress bar label.
        classes: the dataset's class count; the model must output that many scores.
        trust_model: load a model whose layers carry Python code (``Lambda``), running that code.

    Returns:
        ``(scores, input_range)``.

    Raises:
        InputError: the file is not a loadable Keras model taking one example and returning
            ``classes`` scores, or it carries code and ``trust_model`` is false.
    """
    from convert.keras_io import check_image_model, load_keras_model, with_input_range
    from pipeline.interpreters import run_keras

    model = load_keras_model(h5_path, trust_model=trust_model)
    check_image_model(model, str(h5_path), tuple(np.asarray(images).shape[1:]), classes)
    scaling = input_range_for(h5_path)
    if scaling is not None:
        model = with_input_range(model, *scaling)
    return progress_scores(lambda part: run_keras(model, part), images, desc), scaling


def _values(shape: tuple[int, ...]) -> int:
    """Values per example of a tensor shaped ``(batch, ...)``."""
    return math.prod(shape[1:]) if len(shape) > 1 else math.prod(shape)


def check_fits(artifact: Artifact, example_shape: tuple[int, ...], dtype: np.dtype, num_classes: int) -> FirmwareSignature | None:
    """Refuse, before running anything, data that the artifact cannot take or score.

    A flatbuffer's input tensor must hold one example's values and its output the dataset's
    class count; a firmware folder must match on values per example, input dtype and class
    count (:func:`emulator.signature.check_data`). A ``.h5`` is checked when it is loaded
    (:func:`keras_scores`).

    Args:
        artifact: the loaded artifact.
        example_shape: one example's shape (``Dataset.example_shape``).
        dtype: the examples' dtype.
        num_classes: the dataset's class count.

    Returns:
        The firmware's :class:`~emulator.signature.FirmwareSignature` for a firmware folder,
        else ``None``.

    Raises:
        InputError: one line naming both shapes or counts.
    """
    from pipeline.data import format_shape

    if artifact.kind == "firmware":
        from emulator.signature import check_data, read_signature

        signature = read_signature(artifact.path, artifact.firmware)
        check_data(signature, example_shape, dtype, num_classes)
        return signature
    model = artifact.model
    if artifact.kind != "flatbuffer" or model is None:
        return None
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        counts = f"{len(model.inputs)} inputs and {len(model.outputs)} outputs"
        raise InputError(f"{artifact.path}: model has {counts}, expected 1 and 1")
    tin, tout = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    values = math.prod(example_shape)
    if _values(tin.shape) != values:
        raise InputError(
            f"{artifact.path}: model input {list(tin.shape)} ({_values(tin.shape)} values) does not take the dataset's "
            f"{format_shape(example_shape)} examples ({values} values); run it on its own data (--data)"
        )
    if _values(tout.shape) != num_classes:
        raise InputError(
            f"{artifact.path}: model output {list(tout.shape)} gives {_values(tout.shape)} class scores but the dataset "
            f"has {num_classes} classes; run it on its own data (--data)"
        )
    return None


def flatbuffer_ram(artifact: Artifact) -> tuple[int, str, dict[str, Any]]:
    """RAM of a flatbuffer: TFLM's arena for builtin ops, the planner's activations for LCE ops.

    Returns:
        ``(ram_bytes, ram_source, extra)``; ``extra`` holds ``planner_bytes`` always and, when
        TFLM cannot allocate a builtin-op model, ``ram_note`` saying why the planner was used.
    """
    from emulator.planner import plan_memory

    if artifact.model is None or artifact.data is None:
        raise InputError(f"{artifact.path}: not a flatbuffer, its RAM cannot be planned")
    planned = plan_memory(artifact.model).total
    extra: dict[str, Any] = {"planner_bytes": planned}
    if artifact.model.has_lce_ops:
        return planned, "planner", extra
    from firmware_gen.arena import measure_arena

    try:
        return int(measure_arena(artifact.data, str(artifact.path))), "tflm-arena", extra
    except (InputError, RuntimeError, ValueError) as err:
        extra["ram_note"] = f"TFLite-Micro cannot allocate this model ({err}); RAM from the planner"
        return planned, "planner", extra


def _timed(run: Callable[[], np.ndarray], count: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    scores = run()
    return scores, 1000.0 * (time.perf_counter() - start) / max(count, 1)


def _run_firmware(
    backend: str,
    artifact: Artifact,
    images: np.ndarray,
    core: str | None,
    timeout: float | None,
    kernels: str,
    clips: np.ndarray | None = None,
    chunks: tuple[int, ...] = (128,),
    allow_modified: bool = False,
) -> BackendRun:
    path, allowed = artifact.path, allow_modified
    if clips is not None:
        from emulator.audio import run_backend as run_clips

        return run_clips(backend, path, clips, core=core, chunks=chunks, timeout=timeout, kernels=kernels, allow_modified=allowed)
    if backend == "host":
        from emulator.host import run_host

        return run_host(path, images, allow_modified=allowed)
    if core is None:
        raise InputError("the qemu backend needs --target CORE (or a --board, whose core is used)")
    from emulator.qemu import run_qemu

    return run_qemu(path, images, core=core, timeout=timeout, kernels=kernels, allow_modified=allowed)


def run_backend(
    backend: str,
    artifact: Artifact,
    images: np.ndarray,
    *,
    core: str | None = None,
    timeout: float | None = None,
    num_classes: int,
    trust_model: bool = False,
    kernels: str = "cmsis_nn",
    clips: np.ndarray | None = None,
    chunks: tuple[int, ...] = (128,),
    allow_modified: bool = False,
) -> BackendRun:
    """Run ``artifact`` with ``backend`` over ``images`` and measure what the backend can.

    Flatbuffers are untrusted: TFLite-Micro runs them in a child process, TFLite and LCE only
    after a child loaded and ran them once (:func:`pipeline.isolation.run_checked`), so a
    malformed file is one line, never a crash of this process.

    Args:
        backend: a name from :data:`BACKENDS` (already checked by :func:`choose_backend`).
        artifact: the loaded artifact.
        images: raw examples ``(N, ...)`` of the dataset (uint8 or float32).
        core: the Cortex-M core (qemu only).
        timeout: seconds before a hung qemu guest is killed (``None``: the qemu backend's default).
        num_classes: the dataset's class count (a Keras model must output that many scores).
        trust_model: let a Keras model whose layers carry Python code (``Lambda``) load and run.
        kernels: TFLite-Micro's kernel set for a tflm firmware (``reference`` or ``cmsis_nn``).
        clips: for a firmware with the audio front end, the raw int16 clips it is fed instead of
            ``images`` (:mod:`emulator.clips`).
        chunks: samples per push when streaming ``clips``, cycled.
        allow_modified: build a firmware folder even when its files are not the ones its
            ``firmware.json`` lists (:func:`emulator.firmware_files.check_firmware_files`: building
            a folder runs its code).

    Returns:
        The :class:`BackendRun`; ``extra`` carries ``latency_ms`` (host wall time per image,
        Python overhead included) and backend-specific figures.

    Raises:
        InputError: the artifact cannot run on this backend, or a firmware folder's files are not
            the ones its ``firmware.json`` lists.
    """
    from pipeline.isolation import run_checked

    count = len(images)
    if artifact.kind == "firmware":
        start = time.perf_counter()
        result = _run_firmware(backend, artifact, images, core, timeout, kernels, clips, chunks, allow_modified)
        result.extra.setdefault("latency_ms", 1000.0 * (time.perf_counter() - start) / max(count, 1))
        return result
    if backend == "keras":
        (scores, scaling), latency = _timed(
            lambda: keras_scores(artifact.path, images, classes=num_classes, trust_model=trust_model), count
        )
        return BackendRun(np.argmax(scores, axis=1), extra={"latency_ms": latency, "input_range": scaling})
    if artifact.data is None or artifact.model is None:
        raise InputError(f"{artifact.path}: backend {backend} needs a flatbuffer")
    data = artifact.data
    ram, source, extra = flatbuffer_ram(artifact)
    name = str(artifact.path)
    kind = backend if backend in ("tflm", "lce") else "tflite"
    scores, latency = _timed(lambda: run_checked(kind, data, images, name, delegates=False, progress=kind), count)
    extra["latency_ms"] = latency
    return BackendRun(np.argmax(scores, axis=1), flash_bytes=artifact.model.size, ram_bytes=ram, ram_source=source, extra=extra)
