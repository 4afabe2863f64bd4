"""The ``tflm`` engine: a TFLite-Micro application around the unmodified flatbuffer.

Outputs (rendered from ``templates/tflm/``): ``model_data.h`` / ``model_data.c`` (the
flatbuffer as an aligned const array), ``main.cc`` (op resolver with exactly the model's ops,
static arena, input quantization, invoke, argmax) and ``tflm_model.h`` (its C API),
``Makefile`` and ``README.md``; plus a ``CMakeLists.txt`` (static library named after the model)
and an arm-none-eabi toolchain file (:mod:`firmware_gen.cmake`).
:func:`firmware_gen.engines.run_engine` adds the QEMU harness under ``qemu/``.

The arena constant is ``round_up(measured + ARENA_MARGIN, 16)`` where ``measured`` is the
``Arena allocation total`` of the real TFLite-Micro interpreter (:mod:`firmware_gen.arena`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.flatbuffer import Model, Tensor
from firmware_gen.arena import measure_arena, tflm_version
from firmware_gen.cmake import TOOLCHAIN_NAME, tflm_files, tflm_target
from firmware_gen.engines import EngineOutput
from firmware_gen.render import banner_context, c_identifier, render, round_up
from firmware_gen.targets import Board, Core
from firmware_gen.tflm_build.target import TFLM_ARCH
from pipeline.artifacts import sha256_bytes
from pipeline.errors import InputError
from pipeline.isolation import Worker

if TYPE_CHECKING:
    from firmware_gen.clip import ClipPart

__all__ = ["ARENA_MARGIN", "ARENA_ALIGN", "TFLM_OPS", "TFLM_ARCH", "resolver_ops", "input_quant_table", "generate"]

ARENA_MARGIN = 1024
"""Bytes added to the measured arena: alignment of the arena start (up to 15 bytes) and
differences between the measuring wheel and the TFLite-Micro checkout the firmware builds with."""

ARENA_ALIGN = 16

# TFLite builtin op name -> MicroMutableOpResolver method: every builtin op of TFLite-Micro's
# tensorflow/lite/micro/micro_mutable_op_resolver.h at the pinned revision (90b983c2); an op missing
# here has no TFLM kernel. tests/test_tflm_real.py checks the table against that header.
TFLM_OPS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}

_C_TYPES = {"INT8": "kTfLiteInt8", "FLOAT32": "kTfLiteFloat32"}
_ITEMSIZE = {"INT8": 1, "FLOAT32": 4}


def resolver_ops(model: Model) -> list[dict[str, str]]:
    """The op registrations ``main.cc`` needs: one per distinct builtin op, sorted by name.

    Args:
        model: the parsed flatbuffer.

    Returns:
        ``[{"name": "CONV_2D", "method": "AddConv2D"}, ...]``.

    Raises:
        InputError: the model has a custom op (LCE ops need ``--engine bnn``) or a builtin op
            TFLite-Micro has no kernel for; the message names the op.
    """
    if model.custom_ops:
        hint = " (Larq Compute Engine ops: use --engine bnn)" if model.has_lce_ops else ""
        raise InputError(
            f"{model.path}: the tflm engine cannot run custom op(s) {', '.join(model.custom_ops)}: "
            f"TFLite-Micro has no such kernel{hint}"
        )
    missing = [name for name in model.builtin_ops if name not in TFLM_OPS]
    if missing:
        raise InputError(f"{model.path}: TFLite-Micro has no kernel for builtin op(s) {', '.join(missing)}")
    return [{"name": name, "method": TFLM_OPS[name]} for name in model.builtin_ops]


def input_quant_table(scale: float, zero_point: int) -> list[int]:
    """int8 value of every pixel 0..255: ``clamp(round(p / scale) + zero_point, -128, 127)``.

    Rounds half away from zero in float32, as TFLite's quantize kernel (``std::round``) does.

    Raises:
        InputError: the scale is not a positive finite number.
    """
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"input quantization scale must be positive, got {scale}")
    pixels = np.arange(256, dtype=np.float32)
    with np.errstate(over="ignore"):  # a tiny scale sends pixels to +inf, which saturates at 127
        scaled = pixels / np.float32(scale)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    values = np.clip(rounded.astype(np.float64) + int(zero_point), -128, 127).astype(np.int64)
    return [int(v) for v in values]


def _io_tensor(model: Model, index: int, role: str) -> Tensor:
    tensor = model.tensors[index]
    if tensor.dtype not in _C_TYPES:
        raise InputError(
            f"{model.path}: {role} tensor {tensor.name!r} is {tensor.dtype}; the tflm engine handles INT8 and FLOAT32"
        )
    return tensor


def _shape_text(tensor: Tensor) -> str:
    return "[" + ", ".join(str(d) for d in tensor.shape) + "]"


def _model_bytes(model: Model) -> bytes:
    try:
        data = Path(model.path).read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {model.path}: {err.strerror}") from None
    if sha256_bytes(data) != model.sha256:
        raise InputError(f"{model.path} changed while the generator read it; run again")
    return data


def _context(model: Model, data: bytes, core: Core, board: Board | None, worker: Worker | None) -> dict[str, Any]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(
            f"{model.path}: the tflm engine expects one input and one output, got {len(model.inputs)} and {len(model.outputs)}"
        )
    ops = resolver_ops(model)
    inp = _io_tensor(model, model.inputs[0], "input")
    out = _io_tensor(model, model.outputs[0], "output")
    input_elements = int(np.prod(inp.shape))
    name = Path(model.path).name.removesuffix(".tflite")
    ident = c_identifier(name)
    measured = measure_arena(data, model.path, worker=worker)
    context: dict[str, Any] = {
        **banner_context(model, "tflm engine", core, board),
        "data": data,
        "array_name": f"g_{ident}_model_data",
        "guard": f"{ident.upper()}_MODEL_DATA_H_",
        "app": f"{ident}_tflm",
        "ops": ops,
        "arena_measured": measured,
        "arena_margin": ARENA_MARGIN,
        "arena_size": round_up(measured + ARENA_MARGIN, ARENA_ALIGN),
        "tflm_version": tflm_version(),
        "tflm_arch": TFLM_ARCH[core.name],
        "input_elements": input_elements,
        "input_bytes": input_elements * _ITEMSIZE[inp.dtype],
        "input_dtype": inp.dtype,
        "input_shape": _shape_text(inp),
        "input_tflite_type": _C_TYPES[inp.dtype],
        "input_int8": inp.dtype == "INT8",
        "output_dtype": out.dtype,
        "output_shape": _shape_text(out),
        "output_int8": out.dtype == "INT8",
        "num_classes": int(np.prod(out.shape)),
    }
    if context["input_int8"]:
        if inp.quantization is None or len(inp.quantization.scale) != 1:
            raise InputError(f"{model.path}: int8 input tensor {inp.name!r} needs one per-tensor scale and zero point")
        scale, zero_point = float(inp.quantization.scale[0]), int(inp.quantization.zero_point[0])
        table = input_quant_table(scale, zero_point)
        context["input_scale"] = f"{scale:.9g}"
        context["input_zero_point"] = zero_point
        context["input_quant_lines"] = [", ".join(f"{v:4d}" for v in table[start : start + 16]) for start in range(0, 256, 16)]
    return context


def generate(
    model: Model, core: Core, board: Board | None = None, *, worker: Worker | None = None, clip: ClipPart | None = None
) -> EngineOutput:
    """Generate the TFLite-Micro application for ``model`` on ``core``.

    Args:
        model: the parsed flatbuffer; its file is read again for the C array (and checked
            against ``model.sha256``).
        core: the target core (compiler flags, TFLM library architecture).
        board: optional board, named in the banners and README.
        worker: a running :class:`~pipeline.isolation.Worker` for the arena measurement
            (default: the shared :func:`~pipeline.isolation.default_worker`).
        clip: the audio part (:func:`firmware_gen.clip.generate` for ``tflm``), or ``None``: its
            C files join the application (``Makefile``, CMake library) and ``main()`` classifies
            a clip of silence through ``tflm_classify_clip``. Its files are the caller's to add.

    Returns:
        Files ``tflm_model.h``, ``model_data.h``, ``model_data.c``, ``main.cc``, ``Makefile``,
        ``README.md``, ``CMakeLists.txt``, ``arm-none-eabi.cmake`` and a
        report with ``arena_bytes`` (the constant), ``arena_measured_bytes``,
        ``arena_margin_bytes``, ``ops``, ``flash_bytes`` (model bytes; TFLite-Micro code is not
        counted) and ``ram_bytes`` (the arena; stack and library statics are not counted).

    Raises:
        InputError: custom or unsupported ops, unsupported input/output types, or TFLite-Micro
            cannot allocate the model.
    """
    data = _model_bytes(model)
    context = _context(model, data, core, board, worker)
    context["clip"] = None if clip is None else {"api": clip.target.api, "sources": list(clip.sources)}
    files = {
        "tflm_model.h": render("tflm/tflm_model.h.j2", **context),
        "model_data.h": render("tflm/model_data.h.j2", **context),
        "model_data.c": render("tflm/model_data.c.j2", **context),
        "main.cc": render("tflm/main.cc.j2", **context),
        "Makefile": render("tflm/Makefile.j2", **context),
        "README.md": render("tflm/README.md.j2", **context),
    }
    report = {
        "model_bytes": len(data),
        "ops": [op["name"] for op in context["ops"]],
        "resolver_methods": [op["method"] for op in context["ops"]],
        "arena_measured_bytes": context["arena_measured"],
        "arena_margin_bytes": ARENA_MARGIN,
        "arena_bytes": context["arena_size"],
        "arena_source": f"tflite_micro {context['tflm_version']} RecordingMicroAllocator total (64-bit host)",
        "flash_bytes": len(data),
        "flash_source": "model flatbuffer only; TFLite-Micro code not counted",
        "ram_bytes": context["arena_size"],
        "ram_source": "tflm-arena (kArenaSize; stack and TFLite-Micro statics not counted)",
        "input": {"dtype": context["input_dtype"], "shape": list(model.tensors[model.inputs[0]].shape)},
        "output": {"dtype": context["output_dtype"], "shape": list(model.tensors[model.outputs[0]].shape)},
        "tflm_arch": context["tflm_arch"],
        "cmake": {"target": tflm_target(Path(model.path).name), "toolchain_file": TOOLCHAIN_NAME},
    }
    encoded = {path: text.encode("utf-8") for path, text in files.items()}
    encoded.update(tflm_files(core, model, board, context["tflm_arch"], tuple(clip.sources) if clip is not None else ()))
    return EngineOutput(files=encoded, report=report)
