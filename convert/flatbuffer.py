"""Read a ``.tflite`` flatbuffer into plain Python objects, with TensorFlow's generated schema.

The reader checks the ``TFL3`` identifier, that every offset it follows lies inside the file,
that the model has one subgraph, and that every constant tensor's buffer holds exactly
``prod(shape) * itemsize`` bytes, and reads the metadata entries (an audio model's front end
config, :mod:`convert.metadata`); then :mod:`convert.validation` checks the graph (indices,
shapes, types, quantization, finite constants, dataflow). A file that fails any check raises
:class:`~pipeline.errors.InputError` with one line, never a crash. firmware_gen and emulator
build on :func:`read_model`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import sha256_bytes
from pipeline.errors import InputError
from pipeline.frontend import FrontendConfig

__all__ = ["Quantization", "Tensor", "Operator", "Model", "read_model", "read_model_bytes", "LCE_OPS"]

LCE_OPS = frozenset({"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d"})

_DTYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "UINT16": np.uint16,
    "INT32": np.int32,
    "UINT32": np.uint32,
    "INT64": np.int64,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
}


def _schema() -> Any:
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def _enum_names(enum_class: type) -> dict[int, str]:
    return {value: key for key, value in vars(enum_class).items() if not key.startswith("_")}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int = 0


@dataclass(frozen=True)
class Tensor:
    """One tensor of the subgraph.

    Attributes:
        index: position in the subgraph's tensor list.
        name: tensor name from the converter.
        shape: static shape (``-1`` never appears: batch is the converter's, usually 1).
        dtype: TFLite type name (``FLOAT32``, ``INT8``, ``INT32``, ...).
        buffer: index into the model's buffers.
        data: the constant bytes, or ``None`` for activations.
        quantization: affine parameters, or ``None``.
        variable: a variable tensor (state an op reads before any op writes it).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    data: bytes | None
    quantization: Quantization | None
    variable: bool = False

    @property
    def itemsize(self) -> int:
        """Bytes per element (0 for types numpy cannot hold)."""
        return np.dtype(_DTYPES[self.dtype]).itemsize if self.dtype in _DTYPES else 0

    @property
    def size(self) -> int:
        """Number of elements (an exact Python integer, whatever the dimensions)."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies (elements x itemsize)."""
        return self.size * self.itemsize

    @property
    def is_constant(self) -> bool:
        """True when the tensor has data in the flatbuffer."""
        return self.data is not None

    def array(self) -> np.ndarray:
        """The constant data as a numpy array of the tensor's shape.

        Raises:
            ValueError: the tensor is not constant (a caller's mistake).
            InputError: its type has no numpy equivalent (``STRING``, ``INT4``, ...): the model
                holds a constant this tool cannot read.
        """
        if self.data is None:
            raise ValueError(f"tensor {self.index} ({self.name}) is not constant")
        if self.dtype not in _DTYPES:
            raise InputError(f"tensor {self.index} ({self.name}) is a {self.dtype} constant, which this tool cannot read")
        return np.frombuffer(self.data, dtype=_DTYPES[self.dtype]).reshape(self.shape)


@dataclass(frozen=True)
class Operator:
    """One operator: its op name, tensors and options.

    Attributes:
        index: position in execution order.
        name: builtin name (``CONV_2D``) or custom code (``LceBconv2d``).
        is_custom: True for custom ops.
        inputs: tensor indices (``-1`` for an omitted optional input).
        outputs: tensor indices.
        options: builtin options as a dict (schema field names; ``padding`` and
            ``fusedActivationFunction`` as names), or the decoded flexbuffer map of a custom op.
    """

    index: int
    name: str
    is_custom: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """A parsed ``.tflite`` model (first subgraph).

    Attributes:
        metadata: the names of the model's metadata entries (``min_runtime_version``, ...).
        frontend: the audio front end that made the model's input features, from the
            ``bnn_mcu.frontend`` metadata entry (:mod:`convert.metadata`), or ``None``.
    """

    path: str
    size: int
    sha256: str
    version: int
    description: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    buffer_bytes: int
    metadata: tuple[str, ...] = ()
    frontend: FrontendConfig | None = None

    @cached_property
    def op_names(self) -> list[str]:
        """Sorted distinct op names (builtin and custom)."""
        return sorted({op.name for op in self.operators})

    @property
    def builtin_ops(self) -> list[str]:
        """Sorted distinct builtin op names."""
        return sorted({op.name for op in self.operators if not op.is_custom})

    @property
    def custom_ops(self) -> list[str]:
        """Sorted distinct custom op names."""
        return sorted({op.name for op in self.operators if op.is_custom})

    @property
    def has_lce_ops(self) -> bool:
        """True when the model uses Larq Compute Engine custom ops."""
        return any(op.name in LCE_OPS for op in self.operators)

    def producer(self, tensor: int) -> Operator | None:
        """The operator that writes ``tensor``, or ``None`` for inputs and constants."""
        for op in self.operators:
            if tensor in op.outputs:
                return op
        return None

    def consumers(self, tensor: int) -> list[Operator]:
        """Operators that read ``tensor``, in execution order."""
        return [op for op in self.operators if tensor in op.inputs]


def _decode_options(op: Any, schema: Any, name: str, where: str) -> dict[str, Any]:
    if op.customOptions is not None and len(op.customOptions):
        from flatbuffers import flexbuffers

        decoded = flexbuffers.Loads(bytes(bytearray(op.customOptions)))
        options = dict(decoded) if isinstance(decoded, dict) else {"value": decoded}
        # Custom ops (LCE's) carry a flat map of numbers: a list or a nested map there is a
        # corrupt file, refused here so no consumer has to guard every int() it takes.
        for key, value in options.items():
            if not isinstance(key, str) or not isinstance(value, (bool, int, float, str)):
                raise InputError(f"{where}: custom option {key!r} of {name} is {type(value).__name__}, not a number or a string")
        return options
    if op.builtinOptions is None:
        return {}
    options = {}
    paddings = _enum_names(schema.Padding)
    activations = _enum_names(schema.ActivationFunctionType)
    for key, value in vars(op.builtinOptions).items():
        if key == "padding":
            value = paddings.get(value, value)
        elif key == "fusedActivationFunction":
            value = activations.get(value, value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        options[key] = value
    return options


def read_model_bytes(data: bytes, name: str = "<bytes>") -> Model:
    """Parse flatbuffer bytes.

    Args:
        data: the whole ``.tflite`` file.
        name: used in error messages and as :attr:`Model.path`.

    Raises:
        InputError: not a TFLite flatbuffer, truncated, or internally inconsistent.
    """
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError(f"{name}: not a TFLite flatbuffer (missing 'TFL3' file identifier)")
    schema = _schema()
    try:
        root = int.from_bytes(data[:4], "little")
        if root + 4 > len(data):
            raise ValueError(f"root table offset {root} beyond the file's {len(data)} bytes")
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        return _build(model, data, name, schema)
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{name}: corrupt or truncated TFLite flatbuffer ({type(err).__name__}: {err})") from None


def _buffer_bytes(buffer: Any, data: bytes, index: int) -> bytes | None:
    if buffer.data is not None and len(buffer.data):
        return bytes(bytearray(buffer.data))
    if buffer.offset and buffer.offset > 1:
        end = buffer.offset + buffer.size
        if end > len(data):
            raise ValueError(f"buffer {index} ends at byte {end}, past the end of the file")
        return data[buffer.offset : end]
    return None


def _build(model: Any, data: bytes, name: str, schema: Any) -> Model:
    if not model.subgraphs:
        raise InputError(f"{name}: TFLite model has no subgraph")
    if len(model.subgraphs) != 1:
        raise InputError(f"{name}: TFLite model has {len(model.subgraphs)} subgraphs; only single-graph models are supported")
    builtin_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    buffers = [_buffer_bytes(buffer, data, i) for i, buffer in enumerate(model.buffers or [])]
    graph = model.subgraphs[0]
    tensors = []
    for index, tensor in enumerate(graph.tensors or []):
        shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else []))
        quant = tensor.quantization
        quantization = None
        if quant is not None and quant.scale is not None and len(quant.scale):
            quantization = Quantization(
                scale=tuple(float(s) for s in quant.scale),
                zero_point=tuple(int(z) for z in (quant.zeroPoint if quant.zeroPoint is not None else [])),
                quantized_dimension=int(quant.quantizedDimension),
            )
        if not 0 <= tensor.buffer < max(1, len(buffers)):
            raise InputError(f"{name}: tensor {index} points at buffer {tensor.buffer} of {len(buffers)}")
        if tensor.sparsity is not None:
            raise InputError(f"{name}: tensor {index} is sparse; sparse tensors are not supported")
        entry = Tensor(
            index=index,
            name=tensor.name.decode("utf-8", "replace") if isinstance(tensor.name, bytes) else str(tensor.name or ""),
            shape=shape,
            dtype=type_names.get(tensor.type, f"TYPE_{tensor.type}"),
            buffer=int(tensor.buffer),
            data=buffers[tensor.buffer] if buffers else None,
            quantization=quantization,
            variable=bool(tensor.isVariable),
        )
        if entry.data is not None and entry.itemsize and len(entry.data) != entry.nbytes:
            raise InputError(
                f"{name}: tensor {index} ({entry.name}) holds {len(entry.data)} bytes, its shape needs {entry.nbytes}"
            )
        tensors.append(entry)
    operators = []
    codes = model.operatorCodes or []
    for index, op in enumerate(graph.operators or []):
        if not 0 <= op.opcodeIndex < len(codes):
            raise InputError(f"{name}: operator {index} uses opcode {op.opcodeIndex} of {len(codes)}")
        code = codes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        op_name = builtin_names.get(builtin, f"BUILTIN_{builtin}")
        is_custom = op_name == "CUSTOM"
        if is_custom:
            op_name = code.customCode.decode("utf-8") if isinstance(code.customCode, bytes) else str(code.customCode)
        inputs = tuple(int(i) for i in (op.inputs if op.inputs is not None else []))
        outputs = tuple(int(i) for i in (op.outputs if op.outputs is not None else []))
        options = _decode_options(op, schema, op_name, f"{name}: operator {index}")
        operators.append(Operator(index, op_name, is_custom, inputs, outputs, options))
    description = (
        model.description.decode("utf-8", "replace") if isinstance(model.description, bytes) else str(model.description or "")
    )
    from convert.metadata import frontend_from_metadata, read_metadata

    entries = read_metadata(model, buffers, name)
    parsed = Model(
        path=name,
        size=len(data),
        sha256=sha256_bytes(data),
        version=int(model.version),
        description=description,
        tensors=tuple(tensors),
        operators=tuple(operators),
        inputs=tuple(int(i) for i in (graph.inputs if graph.inputs is not None else [])),
        outputs=tuple(int(i) for i in (graph.outputs if graph.outputs is not None else [])),
        buffer_bytes=sum(len(b) for b in buffers if b is not None),
        metadata=tuple(entry for entry, _ in entries),
        frontend=frontend_from_metadata(entries, name),
    )
    from convert.validation import check_model

    check_model(parsed, frozenset(type_names.values()), frozenset(builtin_names.values()))
    return parsed


def read_model(path: str | os.PathLike[str]) -> Model:
    """Read and parse a ``.tflite`` file.

    Raises:
        InputError: the file is missing, unreadable, or not a valid TFLite flatbuffer.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return read_model_bytes(path.read_bytes(), str(path))
