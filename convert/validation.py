"""Graph checks on a parsed flatbuffer: what every consumer may then take for granted.

:func:`convert.flatbuffer.read_model_bytes` calls :func:`check_model` on every model it
returns, so the engines, the planner and the emulator never meet an index out of range, a
negative dimension, an unknown type, a non-finite constant or a quantization without its zero
points. Each failure is one :class:`~pipeline.errors.InputError` line naming the tensor or the
operator. What only an interpreter can judge (does a kernel accept these shapes and options?)
is left to the reference interpreters (:mod:`pipeline.isolation`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import InputError

if TYPE_CHECKING:
    from convert.flatbuffer import Model, Tensor

__all__ = ["SCHEMA_VERSION", "MAX_TENSOR_BYTES", "MAX_ACTIVATION_BYTES", "check_model", "check_tensor"]

SCHEMA_VERSION = 3
MAX_TENSOR_BYTES = (1 << 31) - 1
"""TFLite sizes tensors with ``int``: a bigger tensor cannot be allocated by any interpreter."""
MAX_ACTIVATION_BYTES = 1 << 30
"""All activation tensors together: 1 GiB, a thousand times what a microcontroller model holds."""
_FLOAT_TYPES = frozenset({"FLOAT16", "FLOAT32", "FLOAT64"})


def check_tensor(tensor: Tensor, name: str, known_types: frozenset[str]) -> None:
    """Check one tensor: known type, non-negative dimensions, a size TFLite can hold, sane quantization, finite constants.

    Args:
        tensor: the parsed tensor.
        name: the file name, for messages.
        known_types: the tensor type names of the schema.

    Raises:
        InputError: the first problem found, in one line naming the tensor.
    """
    label = f"{name}: tensor {tensor.index} ({tensor.name})"
    if tensor.dtype not in known_types:
        raise InputError(f"{label} has type {tensor.dtype}, which is not a TFLite tensor type")
    if any(d < 0 for d in tensor.shape):
        raise InputError(f"{label} has a negative dimension in its shape {list(tensor.shape)}")
    if tensor.nbytes > MAX_TENSOR_BYTES:
        raise InputError(f"{label} of shape {list(tensor.shape)} needs {tensor.nbytes:,} bytes, over TFLite's 2 GiB limit")
    quant = tensor.quantization
    if quant is not None:
        scales = np.asarray(quant.scale, dtype=np.float64)
        if not np.all(np.isfinite(scales)) or np.any(scales < 0):
            raise InputError(f"{label} has a quantization scale that is negative or not finite")
        if len(quant.zero_point) != len(quant.scale):
            raise InputError(f"{label} has {len(quant.scale)} quantization scales but {len(quant.zero_point)} zero points")
        if len(quant.scale) > 1:
            axis = quant.quantized_dimension
            if not 0 <= axis < len(tensor.shape) or tensor.shape[axis] != len(quant.scale):
                raise InputError(
                    f"{label} has {len(quant.scale)} per-channel scales on dimension {axis} of shape {list(tensor.shape)}"
                )
    if tensor.data is not None and tensor.dtype in _FLOAT_TYPES and tensor.itemsize:
        values = tensor.array()
        if not np.all(np.isfinite(values)):
            bad = int(np.count_nonzero(~np.isfinite(values)))
            raise InputError(f"{label} holds {bad} NaN or infinite values: a constant must be finite")


def _check_indices(model: Model, name: str) -> None:
    count = len(model.tensors)
    for role, indices in (("input", model.inputs), ("output", model.outputs)):
        if not indices:
            raise InputError(f"{name}: the graph has no {role} tensor")
        for index in indices:
            if not 0 <= index < count:
                raise InputError(f"{name}: graph {role} names tensor {index}, outside 0..{count - 1}")
            tensor = model.tensors[index]
            if tensor.size == 0:
                shape = list(tensor.shape)
                raise InputError(f"{name}: graph {role} tensor {index} ({tensor.name}) has no elements: shape {shape}")
    for op in model.operators:
        label = f"{name}: operator {op.index} ({op.name})"
        if not op.outputs:
            raise InputError(f"{label} has no output tensor")
        for slot, index in enumerate(op.inputs):
            if index == -1 and slot > 0:
                continue  # an omitted optional input, as TFLite writes it
            if not 0 <= index < count:
                raise InputError(f"{label} input {slot} names tensor {index}, outside 0..{count - 1}")
        for slot, index in enumerate(op.outputs):
            if not 0 <= index < count:
                raise InputError(f"{label} output {slot} names tensor {index}, outside 0..{count - 1}")
        both = sorted(set(op.inputs) & set(op.outputs))
        if both:
            raise InputError(f"{label} reads and writes tensor {both[0]}: a tensor cannot be both input and output of one op")


def _check_dataflow(model: Model, name: str) -> None:
    """Every activation is written once, by one operator, before it is read; constants and inputs are never written."""
    inputs = set(model.inputs)
    written: dict[int, int] = {}
    for op in model.operators:
        label = f"{name}: operator {op.index} ({op.name})"
        for index in op.inputs:
            if index < 0:
                continue
            tensor = model.tensors[index]
            if tensor.is_constant or tensor.variable or index in inputs or index in written:
                continue
            raise InputError(f"{label} reads tensor {index} ({tensor.name}), which no earlier operator writes")
        for index in op.outputs:
            tensor = model.tensors[index]
            if tensor.is_constant:
                raise InputError(f"{label} writes tensor {index} ({tensor.name}), a constant")
            if index in inputs:
                raise InputError(f"{label} writes tensor {index} ({tensor.name}), a graph input")
            if index in written:
                raise InputError(f"{label} writes tensor {index} ({tensor.name}), already written by operator {written[index]}")
            written[index] = op.index
    for index in model.outputs:
        tensor = model.tensors[index]
        if index not in written and index not in inputs and not tensor.is_constant:
            raise InputError(f"{name}: graph output tensor {index} ({tensor.name}) is written by no operator")


def check_model(model: Model, known_types: frozenset[str], known_ops: frozenset[str]) -> None:
    """Check a parsed model as a whole (tensors, indices, dataflow, activation size).

    Args:
        model: the model :func:`convert.flatbuffer.read_model_bytes` built.
        known_types: the schema's tensor type names.
        known_ops: the schema's builtin operator names (custom ops are not checked here).

    Raises:
        InputError: the first problem found, in one line.
    """
    name = model.path
    if model.version != SCHEMA_VERSION:
        raise InputError(f"{name}: schema version {model.version}; TFLite reads version {SCHEMA_VERSION} only")
    for tensor in model.tensors:
        check_tensor(tensor, name, known_types)
    for op in model.operators:
        if not op.is_custom and op.name not in known_ops:
            raise InputError(f"{name}: operator {op.index} uses {op.name}, a builtin op code this TFLite schema does not know")
    _check_indices(model, name)
    _check_dataflow(model, name)
    activations = sum(t.nbytes for t in model.tensors if not t.is_constant)
    if activations > MAX_ACTIVATION_BYTES:
        raise InputError(f"{name}: the activation tensors need {activations:,} bytes together, over the 1 GiB this tool accepts")
