"""Read an LCE flatbuffer (through :func:`convert.flatbuffer.read_model`) into a checked op chain.

The engine compiles sequential models: every operator reads exactly one activation (the
previous operator's output, or the model input for the first) plus constants, and writes one
tensor. Anything else is refused here with one line naming the layer (operator index) and op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from convert.flatbuffer import Model, Tensor
from pipeline.errors import InputError

__all__ = ["SUPPORTED_OPS", "INPUT_SHAPE", "NUM_CLASSES", "Node", "Graph", "load_graph", "refuse"]

SUPPORTED_OPS = (
    "ADD",
    "CONV_2D",
    "FULLY_CONNECTED",
    "LceBMaxPool2d",
    "LceBconv2d",
    "LceDequantize",
    "LceQuantize",
    "MAX_POOL_2D",
    "MUL",
    "RESHAPE",
    "SOFTMAX",
)
INPUT_SHAPE = (1, 28, 28, 1)
NUM_CLASSES = 10


def refuse(index: int, op: str, what: str) -> InputError:
    """The one-line error for something outside the supported set, naming layer and op."""
    return InputError(f"bnn engine: layer {index} ({op}): {what}")


@dataclass(frozen=True)
class Node:
    """One operator of the chain.

    Attributes:
        index: operator index in the flatbuffer (the "layer" of error messages).
        name: op name (``CONV_2D``, ``LceBconv2d``, ...).
        options: decoded builtin or custom options.
        data: the activation input.
        inputs: every input slot in order (``None`` for an omitted optional input).
        output: the output tensor.
    """

    index: int
    name: str
    options: dict[str, Any]
    data: Tensor
    inputs: tuple[Tensor | None, ...]
    output: Tensor

    def const(self, slot: int, what: str) -> np.ndarray:
        """The constant array in input ``slot``.

        Raises:
            InputError: the slot is missing or not constant.
        """
        tensor = self.inputs[slot] if slot < len(self.inputs) else None
        if tensor is None or not tensor.is_constant:
            raise refuse(self.index, self.name, f"{what} (input {slot}) must be a constant tensor")
        return tensor.array()

    def has_input(self, slot: int) -> bool:
        """True when input ``slot`` is present."""
        return slot < len(self.inputs) and self.inputs[slot] is not None

    def operand(self) -> np.ndarray:
        """The constant operand of a binary elementwise op (MUL/ADD), as float32.

        Raises:
            InputError: the op does not have exactly one constant operand.
        """
        consts = [t for t in self.inputs if t is not None and t.is_constant]
        if len(consts) != 1 or len(self.inputs) != 2:
            raise refuse(self.index, self.name, "needs exactly one constant operand")
        if consts[0].dtype != "FLOAT32":
            raise refuse(self.index, self.name, f"constant operand has type {consts[0].dtype}, expected FLOAT32")
        return consts[0].array().astype(np.float32)


@dataclass(frozen=True)
class Graph:
    """A checked sequential model: nodes in execution order plus identification."""

    nodes: tuple[Node, ...]
    input: Tensor
    output: Tensor
    name: str
    size: int
    sha256: str


def load_graph(model: Model) -> Graph:
    """Turn a parsed flatbuffer into a :class:`Graph`.

    Args:
        model: from :func:`convert.flatbuffer.read_model`.

    Returns:
        The op chain.

    Raises:
        InputError: unsupported op, branching graph, or input/output shapes other than
            ``(1, 28, 28, 1)`` float32 pixels in and 10 class scores out.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        counts = f"{len(model.inputs)} inputs and {len(model.outputs)} outputs"
        raise InputError(f"bnn engine: the model has {counts}, expected 1 and 1")
    tensors = model.tensors
    source = tensors[model.inputs[0]]
    if tuple(source.shape) != INPUT_SHAPE or source.dtype != "FLOAT32":
        raise InputError(
            f"bnn engine: model input is {source.dtype} {tuple(source.shape)}, expected FLOAT32 {INPUT_SHAPE} raw pixels"
        )
    sink = tensors[model.outputs[0]]
    if int(np.prod(sink.shape)) != NUM_CLASSES:
        raise InputError(f"bnn engine: model output has shape {tuple(sink.shape)}, expected {NUM_CLASSES} class scores")
    if not model.operators:
        raise InputError("bnn engine: the model has no operators")
    nodes = []
    current = source.index
    for op in model.operators:
        if op.name not in SUPPORTED_OPS:
            raise refuse(op.index, op.name, f"op not supported by the bnn engine (supported: {', '.join(SUPPORTED_OPS)})")
        slots = tuple(tensors[i] if i >= 0 else None for i in op.inputs)
        activations = [t for t in slots if t is not None and not t.is_constant]
        if len(activations) != 1 or activations[0].index != current or len(op.outputs) != 1:
            raise refuse(op.index, op.name, "the bnn engine compiles sequential models only (one activation in, one out)")
        output = tensors[op.outputs[0]]
        nodes.append(Node(op.index, op.name, dict(op.options), activations[0], slots, output))
        current = output.index
    if current != sink.index:
        raise InputError("bnn engine: the last operator does not write the model output")
    return Graph(tuple(nodes), source, sink, model.path, model.size, model.sha256)
