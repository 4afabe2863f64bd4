"""The engines of firmware_gen: their contract with the CLI, and the dispatch (the one place that knows them).

An engine turns a parsed flatbuffer into files (:class:`EngineOutput`); the CLI writes them
atomically into the output folder and adds ``firmware.json`` (file list with sha256s, verdict
against a board). Engines: ``tflm`` (:mod:`firmware_gen.tflm`: the flatbuffer as a C array and a
TFLite-Micro app, plus the same bare-metal QEMU harness under ``qemu/``) and ``bnn``
(:mod:`firmware_gen.bnn`: standalone C compiled from the LCE flatbuffer, plus the bare-metal QEMU
project of :mod:`firmware_gen.baremetal`). Both are imported when used, so ``--list-targets`` and
``--help`` stay fast.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.flatbuffer import Model
from firmware_gen.targets import Board, Core
from pipeline.errors import InputError
from pipeline.isolation import INTERPRETER_NAMES, Worker

if TYPE_CHECKING:
    from firmware_gen.clip import ClipPart

__all__ = [
    "ENGINES",
    "ENGINE_CHOICES",
    "INPUT_TYPES",
    "OPTIMIZE_CHOICES",
    "REFERENCE_INTERPRETERS",
    "EngineOutput",
    "check_optimize",
    "choose_engine",
    "check_reference",
    "run_engine",
]

ENGINES = ("tflm", "bnn")
ENGINE_CHOICES = ("auto", *ENGINES)
# --input-type (bnn engine): what bnn_predict takes for a FLOAT32 graph input.
INPUT_TYPES = ("auto", "uint8", "float32")
# --optimize (bnn engine): each binary layer's popcount unrolled into its own carry-save tree
# (speed), or every layer calling one shared word loop (size: less code, more instructions).
OPTIMIZE_CHOICES = ("speed", "size")


def check_optimize(optimize: str) -> None:
    """Refuse an ``optimize`` outside :data:`OPTIMIZE_CHOICES` (one line, :class:`InputError`)."""
    if optimize not in OPTIMIZE_CHOICES:
        raise InputError(f"unknown optimization {optimize!r}: valid choices are {', '.join(OPTIMIZE_CHOICES)}")


REFERENCE_INTERPRETERS = {"tflm": "tflite", "bnn": "lce"}
"""The interpreter whose predictions each engine's firmware must reproduce (:mod:`pipeline.isolation` kinds)."""


@dataclass
class EngineOutput:
    """What an engine generated.

    Attributes:
        files: relative path -> file content (bytes); written in sorted order.
        report: engine-specific entries merged into ``firmware.json`` (for example
            ``model_bytes``, ``arena_bytes``, ``flash_bytes``, ``ram_bytes``, ``layers``).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def choose_engine(requested: str, model: Model) -> str:
    """Resolve ``auto``: ``bnn`` for flatbuffers with Larq Compute Engine ops, ``tflm`` otherwise.

    Raises:
        InputError: ``requested`` is not one of :data:`ENGINES`.
    """
    if requested not in ENGINE_CHOICES:
        raise InputError(f"unknown engine {requested!r}: valid engines are {', '.join(ENGINE_CHOICES)}")
    if requested != "auto":
        return requested
    return "bnn" if model.has_lce_ops else "tflm"


def check_reference(engine: str, model: Model, data: bytes, *, worker: Worker | None = None) -> None:
    """Refuse a model that the engine's reference interpreter refuses: no firmware for it.

    The ``tflm`` engine's reference is TFLite (builtin kernels), the ``bnn`` engine's the LCE
    interpreter; each loads the flatbuffer, allocates it and runs it once on zeros in a child
    process (:func:`pipeline.isolation.validate`), so a crash there is a refusal too.

    Args:
        engine: ``tflm`` or ``bnn``.
        model: the parsed flatbuffer.
        data: its bytes.
        worker: a running :class:`~pipeline.isolation.Worker` (default: the shared :func:`~pipeline.isolation.default_worker`).

    Raises:
        InputError: one line naming the file, the interpreter and why it refused.
    """
    from pipeline.isolation import validate

    kind = REFERENCE_INTERPRETERS.get(engine)
    if kind is None:
        raise InputError(f"unknown engine {engine!r}: valid engines are {', '.join(ENGINES)}")
    try:
        seen = validate(kind, data, model.path, worker=worker)
    except InputError as err:
        raise InputError(f"{err}; no firmware written") from None
    _check_shapes(model, seen, INTERPRETER_NAMES[kind])


def _check_shapes(model: Model, seen: dict, interpreter: str) -> None:
    """The shapes the file declares must be the ones the reference interpreter computes.

    Interpreters recompute output shapes while they prepare a graph, so a file whose declared
    shapes are wrong still runs there; an engine that generated code from the declared shapes
    would compute something else. TFLite reports every tensor; LCE only the graph output.
    """
    declared = {index: list(model.tensors[index].shape) for index in range(len(model.tensors))}
    computed = dict(enumerate(seen.get("tensor_shapes") or []))
    if not computed and model.outputs:
        output = model.outputs[0]
        computed = {output: [d for d in seen.get("output_shape", declared[output])]}
        if math.prod(computed[output]) == math.prod(declared[output]):
            computed[output] = declared[output]  # LCE returns the output flattened to its batch rows
    for index, shape in sorted(computed.items()):
        if shape is not None and index in declared and shape != declared[index]:
            tensor = model.tensors[index]
            raise InputError(
                f"{model.path}: tensor {index} ({tensor.name}) is declared {declared[index]} but {interpreter} computes "
                f"{shape}; no firmware written"
            )


def run_engine(
    engine: str,
    model: Model,
    core: Core,
    board: Board | None,
    *,
    input_type: str = "auto",
    optimize: str = "speed",
    data: bytes | None = None,
    worker: Worker | None = None,
    frontend: bool = True,
) -> EngineOutput:
    """Run ``engine`` (``tflm`` or ``bnn``, already resolved) and return its files and report.

    ``input_type`` (``auto``, ``uint8`` or ``float32``) is the bnn engine's
    ``generate(..., input_type=...)``: the type of ``bnn_predict``'s input for a FLOAT32 graph
    input (``auto``: uint8 when the input only feeds a scalar rescale of raw 8-bit values).
    ``optimize`` (:data:`OPTIMIZE_CHOICES`) is the bnn engine's ``generate(..., optimize=...)``;
    the tflm engine takes ``speed`` only.

    With ``data`` (the flatbuffer's bytes) the model goes through :func:`check_reference` first,
    so no engine generates firmware for a model its reference interpreter refuses; the ``tflm``
    engine also needs TFLite-Micro itself to allocate and run it (its arena is measured).

    For ``bnn`` the output of ``firmware_gen.baremetal.generate(model, core, board, output)`` is
    merged in: its files are added (a path both produce is an error
    unless the bytes agree) and its report entries are added, winning on a shared key. The
    deployable part is then built with arm-none-eabi-gcc (when installed) and its ELF
    ``flash_bytes``/``ram_bytes`` added to the report, so ``--board`` can judge it. Last, the
    CMake library of the engine's own ``.c`` files is added (:func:`firmware_gen.cmake.bnn_files`:
    ``CMakeLists.txt``, ``arm-none-eabi.cmake``; report entry ``cmake``).

    A model that carries an audio front end (:attr:`~convert.flatbuffer.Model.frontend`) gets it
    beside the network with the clip API (:mod:`firmware_gen.clip`), unless ``frontend`` is
    false: the deployable part is then the network, the front end and the clip API, and the
    report's ``flash_bytes``/``ram_bytes`` are theirs together, with ``frontend`` (the config,
    its sha256, the API and the front end's own flash and RAM), ``network`` (the network's) and
    ``deployable`` (the whole part's, with its deepest stack path). Without the front end, the
    report's ``input_frontend`` names the front end whose features the network takes.

    Raises:
        InputError: the engine is unknown, the engine or its reference interpreter rejects the
            model, ``input_type`` is not ``auto`` for an engine that does not take it, or the
            network does not take its front end's features.
    """
    if input_type not in INPUT_TYPES:
        raise InputError(f"unknown input type {input_type!r}: valid input types are {', '.join(INPUT_TYPES)}")
    check_optimize(optimize)
    if engine == "tflm":
        if input_type != "auto":
            raise InputError(
                f"--input-type {input_type} applies to the bnn engine only (the tflm engine takes the flatbuffer's input type)"
            )
        if optimize != "speed":
            raise InputError(
                f"--optimize {optimize} applies to the bnn engine only (TFLite-Micro's kernels are compiled as they are)"
            )
        from firmware_gen import tflm

        tflm.resolver_ops(model)  # custom ops and ops without a TFLite-Micro kernel: the clearest refusal first
        if data is not None:
            check_reference(engine, model, data, worker=worker)
        clip = None
        if frontend:  # main.cc feeds the model raw 8-bit values: the features
            example = list(model.tensors[model.inputs[0]].shape[1:]) if model.inputs else []
            clip = _clip_part("tflm", model, core, board, {"input_shape": example, "input_dtype": "uint8"})
        output = _with_tflm_harness(model, core, board, tflm.generate(model, core, board, worker=worker, clip=clip), clip)
        if clip is None:
            if model.frontend is not None:
                output.report["input_frontend"] = {"config": model.frontend.to_json(), "config_sha256": model.frontend.sha256()}
            return output
        return _with_tflm_frontend(output, clip, core)
    if engine != "bnn":
        raise InputError(f"unknown engine {engine!r}: valid engines are {', '.join(ENGINES)}")
    from firmware_gen import baremetal, bnn

    if data is not None:
        check_reference(engine, model, data, worker=worker)
    output = bnn.generate(model, core, board, input_type=input_type, optimize=optimize)
    engine_sources = sorted(path for path in output.files if path.endswith(".c") and "/" not in path)
    clip = _clip_part("bnn", model, core, board, output.report.get("signature", {})) if frontend else None
    extra = baremetal.generate(model, core, board, output, **({"clip": clip} if clip is not None else {}))
    files = dict(output.files)
    for path, data in [*extra.files.items(), *(clip.files.items() if clip is not None else ())]:
        if path in files and files[path] != data:
            raise InputError(f"engines disagree on {path}: bnn and baremetal both generate it with different content")
        files[path] = data
    report = {**output.report, **extra.report}
    if clip is None and model.frontend is not None:  # --no-frontend: the features the network takes
        report["input_frontend"] = {"config": model.frontend.to_json(), "config_sha256": model.frontend.sha256()}
    if clip is None:
        report.update(_deployable_figures(files, report))
        return _with_cmake(EngineOutput(files=files, report=report), engine_sources, model, core, board)
    report.update(_clip_figures(files, engine_sources, clip))
    return _with_cmake(EngineOutput(files=files, report=report), [*engine_sources, *clip.sources], model, core, board)


def _clip_part(engine: str, model: Model, core: Core, board: Board | None, signature: dict[str, Any]) -> ClipPart | None:
    """The audio part of a model that carries a front end (None otherwise), after checking that
    the network takes its features (:func:`firmware_gen.clip.check_network_input`)."""
    if model.frontend is None:
        return None
    from firmware_gen.clip import CLIP_TARGETS, check_network_input, generate
    from firmware_gen.render import banner_context

    quantization = signature.get("input_quantization")
    check_network_input(model.frontend, signature["input_shape"], signature["input_dtype"], model.path, quantization)
    banner = banner_context(model, f"{engine} engine, audio front end and clip API", core, board)
    return generate(CLIP_TARGETS[engine], model.frontend, banner, int8=signature["input_dtype"] == "int8")


def _clip_figures(files: dict[str, bytes], engine_sources: list[str], clip: ClipPart) -> dict[str, Any]:
    """The report entries of an audio firmware: ``frontend`` (the config and the API), and with the
    Arm toolchain the flash and RAM of the whole deployable part (network + front end + clip API),
    of the network alone (``network``) and of the front end alone (in ``frontend``)."""
    from firmware_gen.baremetal.footprint import FOOTPRINT_TOOLS, build_generated
    from firmware_gen.clip import LINKS, measure_links, split_figures

    report: dict[str, Any] = {"frontend": dict(clip.report)}
    if any(shutil.which(tool) is None for tool in FOOTPRINT_TOOLS):
        return report
    with tempfile.TemporaryDirectory(prefix="bnn-footprint-") as tmp:
        folder = Path(tmp)
        build_generated(files, folder, tuple(f"build/{name}.elf" for name in LINKS))
        links = measure_links(folder, engine_sources, clip.sources, clip.target)
    figures = split_figures(links)
    total = links["deployable"]
    report["frontend"].update(figures["frontend"])
    report.update(
        {
            "flash_bytes": total.flash_bytes,
            "ram_bytes": total.ram_bytes,
            "ram_source": "elf",
            "footprint": {key: total.detail[key] for key in ("flash_source", "ram_source", "static_ram_bytes", "stack_bytes")},
            "network": figures["network"],
            "deployable": {"parts": "network + front end + clip API", **figures["deployable"]},
        }
    )
    return report


def _with_cmake(output: EngineOutput, sources: list[str], model: Model, core: Core, board: Board | None) -> EngineOutput:
    """Add the bnn engine's CMake library (``CMakeLists.txt``, toolchain file) to its output.

    ``sources`` are the engine's own ``.c`` files (the deployable part), not the harness's.
    """
    from firmware_gen.cmake import BNN_TARGET, DEFAULT_OPT, TOOLCHAIN_NAME, bnn_files

    baremetal = output.report.get("baremetal", {})
    extra = bnn_files(core, model, board, sources, baremetal.get("opt", DEFAULT_OPT))
    clash = sorted(set(extra) & set(output.files))
    if clash:
        raise InputError(f"the bnn engine must not produce {', '.join(clash)} itself (the CMake library does)")
    report = {**output.report, "cmake": {"target": BNN_TARGET, "sources": sources, "toolchain_file": TOOLCHAIN_NAME}}
    return EngineOutput(files={**output.files, **extra}, report=report)


def _with_tflm_frontend(output: EngineOutput, clip: ClipPart, core: Core) -> EngineOutput:
    """Add the audio part's files and ``report.frontend`` to the tflm engine's output.

    The whole deployable part is only measured when it is built against TFLite-Micro (the QEMU
    backend); here the front end alone is built and measured (:func:`firmware_gen.clip.measure_frontend`),
    and its flash and RAM, with the features buffer, join the engine's lower bounds (the model's
    bytes and the arena), so ``--board`` judges at least the model, the arena and the front end.
    """
    from firmware_gen.clip import measure_frontend

    clash = sorted(set(clip.files) & set(output.files))
    if clash:
        raise InputError(f"the tflm engine must not produce {', '.join(clash)} itself (the front end does)")
    report = {**output.report, "frontend": dict(clip.report)}
    figures = measure_frontend(clip, core)
    if figures is not None:
        report["frontend"].update(figures)
        features = clip.report["feature_bytes"]
        report["flash_bytes"] += figures["flash_bytes"]
        report["ram_bytes"] += figures["ram_bytes"] + features
        report["flash_source"] += " + the front end alone (arm-none-eabi-size)"
        report["ram_source"] += f" + the front end alone (static + stack) + the {features}-byte features buffer"
    return EngineOutput(files={**output.files, **clip.files}, report=report)


def _with_tflm_harness(
    model: Model, core: Core, board: Board | None, output: EngineOutput, clip: ClipPart | None = None
) -> EngineOutput:
    """Add the QEMU harness (``qemu/``) and the firmware's signature to the tflm engine's output.

    The harness speaks the same results protocol as the bnn engine's (any input size, any class
    count); ``report["signature"]`` (:mod:`emulator.signature`) says what ``tflm_predict`` takes:
    raw 8-bit input values (``main.cc`` quantizes or converts them) and one 32-bit word per class
    (the int8 outputs as int32, or the float outputs).
    """
    from firmware_gen.baremetal.project import generate_tflm

    shape = [int(d) for d in output.report["input"]["shape"]]
    example = shape[1:] if len(shape) > 1 else shape
    classes = int(np.prod(output.report["output"]["shape"]))
    report = dict(output.report)
    report["signature"] = {
        "input_shape": example,
        "input_dtype": "uint8",
        "input_quantization": None,
        "model_input_shape": shape,
        "num_classes": classes,
        "score_dtype": "int32" if output.report["output"]["dtype"] == "INT8" else "float32",
    }
    extra = generate_tflm(model, core, board, output, clip=clip)
    clash = sorted(set(extra.files) & set(output.files))
    if clash:
        raise InputError(f"the tflm engine must not produce {', '.join(clash)} itself (the QEMU harness does)")
    report.update(extra.report)
    return EngineOutput(files={**output.files, **extra.files}, report=report)


def _deployable_figures(files: dict[str, bytes], report: dict) -> dict:
    """``flash_bytes``/``ram_bytes`` of the deployable part, built with the Arm toolchain.

    Without the toolchain the figures are absent and the CLI says the budget was not checked.
    """
    sources = list(report.get("baremetal", {}).get("engine_sources", []))
    if not sources:
        return {}
    from firmware_gen.baremetal.footprint import measure_generated

    footprint = measure_generated(files, sources)
    if footprint is None:
        return {}
    return {
        "flash_bytes": footprint.flash_bytes,
        "ram_bytes": footprint.ram_bytes,
        "ram_source": "elf",
        "footprint": {key: footprint.detail[key] for key in ("flash_source", "ram_source", "static_ram_bytes", "stack_bytes")},
    }
