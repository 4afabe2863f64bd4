"""Read an LCE flatbuffer (through :func:`convert.flatbuffer.read_model`) into a graph indexed by tensor.

The graph is the flatbuffer's first subgraph as a DAG: operators in execution order (the
converter's order is topological), each reading any number of activations and constants and
writing exactly one tensor; every tensor knows its producer and its consumers. Nothing here
knows an op's meaning: the registry (:mod:`firmware_gen.bnn.ops`) and the fusion pass do.

Refusals are one line naming the layer (operator index) and the op, raised as
:class:`~pipeline.errors.InputError` (exit status 2 at the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convert.flatbuffer import Model, Tensor
from pipeline.errors import InputError

__all__ = ["Node", "Graph", "load_graph", "refuse", "hwc"]


def refuse(index: int, op: str, what: str) -> InputError:
    """The one-line error for something outside the supported set, naming layer and op."""
    return InputError(f"bnn engine: layer {index} ({op}): {what}")


def hwc(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """The ``(height, width, channels)`` view of a batch-1 tensor shape, or ``None``.

    ``(1, H, W, C)`` -> ``(H, W, C)``; ``(1, N)`` -> ``(1, 1, N)``; ``(1, H, W)`` -> ``(H, W, 1)``;
    ``(1,)`` or ``()`` -> ``(1, 1, 1)``. Other ranks (or a batch other than 1) have no such view.
    """
    dims = tuple(int(d) for d in shape)
    if len(dims) <= 1:
        return (1, 1, 1) if not dims or dims[0] == 1 else None
    if dims[0] != 1:
        return None
    if len(dims) == 2:
        return 1, 1, dims[1]
    if len(dims) == 3:
        return dims[1], dims[2], 1
    if len(dims) == 4:
        return dims[1], dims[2], dims[3]
    return None


@dataclass(frozen=True)
class Node:
    """One operator of the graph.

    Attributes:
        index: operator index in the flatbuffer (the "layer" of error messages).
        name: op name (``CONV_2D``, ``LceBconv2d``, ...).
        options: decoded builtin or custom options.
        inputs: every input slot in order (``None`` for an omitted optional input).
        output: the output tensor.
    """

    index: int
    name: str
    options: dict[str, Any]
    inputs: tuple[Tensor | None, ...]
    output: Tensor

    @property
    def activations(self) -> list[Tensor]:
        """The non-constant inputs, in slot order."""
        return [t for t in self.inputs if t is not None and not t.is_constant]

    @property
    def data(self) -> Tensor:
        """The first activation input (the data operand of single-input ops)."""
        return self.activations[0]

    def refuse(self, what: str) -> InputError:
        """:func:`refuse` for this node."""
        return refuse(self.index, self.name, what)

    def const(self, slot: int, what: str) -> np.ndarray:
        """The constant array in input ``slot``.

        Raises:
            InputError: the slot is missing or not constant.
        """
        tensor = self.inputs[slot] if slot < len(self.inputs) else None
        if tensor is None or not tensor.is_constant:
            raise self.refuse(f"{what} (input {slot}) must be a constant tensor")
        return tensor.array()

    def has_input(self, slot: int) -> bool:
        """True when input ``slot`` is present."""
        return slot < len(self.inputs) and self.inputs[slot] is not None

    def operand(self) -> np.ndarray:
        """The constant operand of a binary elementwise op (MUL/ADD), as float32.

        Raises:
            InputError: the op does not have exactly one constant float32 operand.
        """
        consts = [t for t in self.inputs if t is not None and t.is_constant]
        if len(consts) != 1 or len(self.inputs) != 2:
            raise self.refuse("needs exactly one constant operand")
        if consts[0].dtype != "FLOAT32":
            raise self.refuse(f"constant operand has type {consts[0].dtype}, expected FLOAT32")
        return consts[0].array().astype(np.float32)


@dataclass(frozen=True)
class Graph:
    """A model as a DAG: nodes in execution order, tensors by index, producers and consumers.

    Attributes:
        nodes: operators in execution order.
        tensors: every tensor of the subgraph, by index.
        input: the model's input tensor.
        output: the model's output tensor.
        name: the flatbuffer's path (for banners).
        size: its size in bytes.
        sha256: its sha256.
    """

    nodes: tuple[Node, ...]
    tensors: tuple[Tensor, ...]
    input: Tensor
    output: Tensor
    name: str
    size: int
    sha256: str
    _consumers: dict[int, tuple[Node, ...]] = field(default_factory=dict, repr=False, compare=False)
    _producers: dict[int, Node] = field(default_factory=dict, repr=False, compare=False)

    def consumers(self, tensor: int) -> tuple[Node, ...]:
        """Nodes that read ``tensor`` (by index), in execution order."""
        return self._consumers.get(tensor, ())

    def producer(self, tensor: int) -> Node | None:
        """The node that writes ``tensor``, or ``None`` for the model input and constants."""
        return self._producers.get(tensor)

    def single_use(self, tensor: int) -> bool:
        """True when ``tensor`` has exactly one consumer and is not the model output."""
        return len(self.consumers(tensor)) == 1 and tensor != self.output.index


def load_graph(model: Model) -> Graph:
    """Turn a parsed flatbuffer into a :class:`Graph`.

    Args:
        model: from :func:`convert.flatbuffer.read_model`.

    Returns:
        The graph.

    Raises:
        InputError: not exactly one input and one output, no operators, an operator with other
            than one output, a batch other than 1, or an activation read before it is written.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        counts = f"{len(model.inputs)} inputs and {len(model.outputs)} outputs"
        raise InputError(f"bnn engine: the model has {counts}, expected 1 and 1")
    if not model.operators:
        raise InputError("bnn engine: the model has no operators")
    tensors = model.tensors
    source, sink = tensors[model.inputs[0]], tensors[model.outputs[0]]
    if hwc(source.shape) is None:
        raise InputError(f"bnn engine: model input has shape {tuple(source.shape)}; expected batch 1 and rank 2 to 4")
    written = {source.index}
    nodes: list[Node] = []
    consumers: dict[int, list[Node]] = {}
    producers: dict[int, Node] = {}
    for op in model.operators:
        if len(op.outputs) != 1:
            raise refuse(op.index, op.name, f"{len(op.outputs)} outputs; the bnn engine compiles ops with one output")
        slots = tuple(tensors[i] if i >= 0 else None for i in op.inputs)
        node = Node(op.index, op.name, dict(op.options), slots, tensors[op.outputs[0]])
        for tensor in {t.index: t for t in node.activations}.values():
            if tensor.index not in written:
                raise refuse(op.index, op.name, f"reads tensor {tensor.index} before any operator writes it")
            consumers.setdefault(tensor.index, []).append(node)
        if node.output.index in written:
            raise refuse(op.index, op.name, f"writes tensor {node.output.index} a second time")
        written.add(node.output.index)
        producers[node.output.index] = node
        nodes.append(node)
    if sink.index not in producers:
        raise InputError("bnn engine: no operator writes the model output")
    return Graph(
        tuple(nodes),
        tuple(tensors),
        source,
        sink,
        model.path,
        model.size,
        model.sha256,
        {k: tuple(v) for k, v in consumers.items()},
        producers,
    )
