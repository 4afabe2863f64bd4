"""The fusion pass: find the sub-chains the integer path compiles as one layer.

A *group* is a producer with an exact integer sum ``S`` per output -- a CONV_2D with ``+-c``
weights, or integer multiples ``c * k`` of one unit per output channel with ``|k| <= 127`` (an
8-bit stem), on the raw 8-bit input (through its scalar rescaling), an ``LceBconv2d`` with float
output, or a FULLY_CONNECTED on ``LceDequantize``-d bits with ``+-c`` weights or integer
multiples of one unit per output (8-bit dense weights, ``|k| <= 127``) -- followed by a
float *tail* (MUL/ADD by constants, RELU/RELU6/RELU_N1_TO_1, one MAX_POOL_2D, RESHAPE), and
ending in ``LceQuantize`` (the layer writes bits through per-channel integer thresholds,
:func:`firmware_gen.bnn.fold.threshold_epilogue`) or, for a dense producer, at the model output
through an optional SOFTMAX (exact fixed-point class scores, :func:`~firmware_gen.bnn.fold.score_epilogue`).

A second, float pattern: an ``LceBconv2d`` with float output whose only consumer is an ADD of
another activation of the same shape (the residual shortcut of Bi-Real / QuickNet blocks) is a
``residual`` group: the bconv kernel adds the shortcut itself (``y + x``, the same two float
roundings), so the block needs no buffer for ``y`` and can write over the shortcut in place.

A group is only formed where it is valid: every tensor inside it has exactly one consumer and
is not the model output, so no other op ever needs the float values the group never computes.
This module matches shapes of the graph only; :mod:`firmware_gen.bnn.fused` then checks the
numbers (binary weights, monotone tails) and may still decline a group
(:class:`NotFusableError`), in which case its ops are compiled one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from firmware_gen.bnn.graph import Graph, Node

__all__ = ["Group", "NotFusableError", "find_groups", "binary_rows", "integer_rows", "TAIL_OPS", "MAX_INT_WEIGHT"]

MAX_INT_WEIGHT = 127
"""Largest ``|k|`` of an integer weight row (int8 storage)."""
_SCREEN = 16
"""Weights of a row on which :func:`integer_rows` screens its candidate units."""
TAIL_OPS = ("MUL", "ADD", "RELU", "RELU6", "RELU_N1_TO_1", "MAX_POOL_2D", "RESHAPE")


class NotFusableError(Exception):
    """A matched group whose numbers do not allow the integer form (the reason is the message)."""


@dataclass(frozen=True)
class Group:
    """A fusable chain.

    Attributes:
        kind: ``pixel``, ``bconv``, ``dense`` (integer layers) or ``residual`` (bconv + ADD).
        prefix: ops before the producer that the group absorbs (the input rescaling; the
            ``LceDequantize`` and RESHAPEs feeding a dense layer).
        producer: the integer op.
        tail: float ops between the producer and the end.
        end: the ``LceQuantize``, or the SOFTMAX at the model output, or ``None`` (scores).
        scores: True when the group produces the model's class scores.
    """

    kind: str
    prefix: tuple[Node, ...]
    producer: Node
    tail: tuple[Node, ...]
    end: Node | None
    scores: bool

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every op of the group, in execution order."""
        return (*self.prefix, self.producer, *self.tail, *((self.end,) if self.end is not None else ()))

    @property
    def input(self) -> int:
        """The tensor the group reads."""
        return (self.prefix[0] if self.prefix else self.producer).data.index


def binary_rows(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Split float weights ``(O, ...)`` into signs ``+-1`` (int8) and per-row magnitudes, or
    ``None`` when some row is not ``+-c`` with ``c != 0``."""
    flat = weights.reshape(weights.shape[0], -1).astype(np.float32)
    mags = np.abs(flat[:, 0])
    if np.any(mags == 0) or not np.all(np.abs(flat) == mags[:, None]):
        return None
    return np.where(flat < 0, -1, 1).astype(np.int8).reshape(weights.shape), mags


def integer_rows(weights: np.ndarray, limit: int = MAX_INT_WEIGHT) -> tuple[np.ndarray, list[Fraction]] | None:
    """Split float weights ``(O, ...)`` into integers ``k`` (int8) and one unit ``u`` per row with
    ``weight == float32(k * u)``, or ``None`` when some row has no such unit with ``|k| <= limit``.

    The converter folds the input rescaling or a batch norm's scale into the weights
    (``k / 128 * 2 / 255`` for an 8-bit stem on [-1, 1] pixels), so a row is only ``k * u`` up to
    float32 rounding: ``u`` is the row's largest ``|weight|`` over the smallest ``k_max`` that
    leaves every weight within 2**-21 of that largest weight of ``k * u`` (float32 rounds ``k * u``
    by at most 2**-24 of it, and ``u`` carries as much again). A ``+-c`` row gives ``k = +-1``,
    ``u = c`` exactly; an all-zero row has no unit. The candidate units are screened on the row's
    first :data:`_SCREEN` weights and only the survivors checked on the whole row, so a float
    layer is refused after a few hundred operations and a wide one costs ``O(width)`` a row.
    """
    binary = binary_rows(weights)
    if binary is not None:
        signs, mags = binary
        return signs, [Fraction(float(m)) for m in mags]
    flat = weights.reshape(weights.shape[0], -1).astype(np.float64)
    ints = np.zeros(flat.shape, dtype=np.int8)
    units: list[Fraction] = []
    k_maxes = np.arange(1, limit + 1, dtype=np.float64)[:, None]
    for o, row in enumerate(flat):
        top = float(np.abs(row).max())
        if not top > 0 or not np.isfinite(top):
            return None
        candidates = top / k_maxes  # (limit, 1): every unit at once, the largest first
        screen = row[None, :_SCREEN]
        survivors = np.flatnonzero(np.all(np.abs(screen - np.rint(screen / candidates) * candidates) <= top * 2.0**-21, axis=1))
        for first in survivors:
            ks = np.rint(row / candidates[first, 0])
            if np.all(np.abs(row - ks * candidates[first, 0]) <= top * 2.0**-21):
                ints[o] = ks.astype(np.int8)
                units.append(Fraction(float(candidates[first, 0])))
                break
        else:
            return None
    return ints.reshape(weights.shape), units


def _has_integer_weights(node: Node) -> bool:
    """True when ``node``'s weights are a float32 constant that :func:`integer_rows` takes apart."""
    weights = node.inputs[1] if len(node.inputs) > 1 else None
    if weights is None or not weights.is_constant or weights.dtype != "FLOAT32":
        return False
    return integer_rows(weights.array()) is not None


def _scalar_rescale(node: Node) -> bool:
    consts = [t for t in node.inputs if t is not None and t.is_constant]
    return node.name in ("MUL", "ADD") and len(node.inputs) == 2 and len(consts) == 1 and consts[0].size == 1


def _pixel_prefix(graph: Graph, conv: Node) -> tuple[Node, ...] | None:
    """The scalar MUL/ADD chain from the model input to ``conv``'s input, or ``None``."""
    chain: list[Node] = []
    tensor = conv.data.index
    while tensor != graph.input.index:
        node = graph.producer(tensor)
        if node is None or not _scalar_rescale(node) or not graph.single_use(tensor):
            return None
        chain.insert(0, node)
        tensor = node.data.index
    if len(graph.consumers(graph.input.index)) != 1:
        return None
    return tuple(chain)


def _dense_prefix(graph: Graph, dense: Node) -> tuple[Node, ...] | None:
    """``LceDequantize`` (+ RESHAPEs) feeding ``dense``, each used once, or ``None``."""
    chain: list[Node] = []
    tensor = dense.data.index
    while True:
        node = graph.producer(tensor)
        if node is None or not graph.single_use(tensor):
            return None
        chain.insert(0, node)
        if node.name == "LceDequantize":
            return tuple(chain)
        if node.name != "RESHAPE":
            return None
        tensor = node.data.index


def _tail(graph: Graph, producer: Node) -> tuple[tuple[Node, ...], Node | None, bool] | None:
    """Follow single consumers from ``producer``: (tail, end, scores) or ``None``."""
    tail: list[Node] = []
    tensor = producer.output.index
    while True:
        if tensor == graph.output.index:
            return tuple(tail), None, True
        consumers = graph.consumers(tensor)
        if len(consumers) != 1:
            return None
        node = consumers[0]
        if node.name == "LceQuantize":
            return tuple(tail), node, False
        if node.name == "SOFTMAX" and node.output.index == graph.output.index:
            return tuple(tail), node, True
        if node.name not in TAIL_OPS or len(node.activations) != 1:
            return None
        tail.append(node)
        tensor = node.output.index


def _residual(graph: Graph, node: Node) -> Group | None:
    """A float-output bconv whose single consumer adds a same-shape activation to it."""
    if not graph.single_use(node.output.index):
        return None
    add = graph.consumers(node.output.index)[0]
    others = [t for t in add.activations if t.index != node.output.index]
    if add.name != "ADD" or len(add.inputs) != 2 or len(add.activations) != 2 or len(others) != 1:
        return None
    if tuple(others[0].shape) != tuple(node.output.shape) or tuple(add.output.shape) != tuple(node.output.shape):
        return None
    if others[0].dtype != "FLOAT32" or add.output.dtype != "FLOAT32":
        return None
    return Group("residual", (), node, (), add, False)


def _match(graph: Graph, node: Node, pixel_input: bool) -> Group | None:
    if node.name == "CONV_2D" and pixel_input and _has_integer_weights(node):
        prefix = _pixel_prefix(graph, node)
        kind = "pixel"
    elif node.name == "LceBconv2d" and node.output.dtype == "FLOAT32":
        prefix, kind = (), "bconv"
    elif node.name == "FULLY_CONNECTED" and _has_integer_weights(node):
        prefix, kind = _dense_prefix(graph, node), "dense"
    else:
        return None
    if prefix is None or not node.activations:
        return None
    found = _tail(graph, node)
    if found is None:
        return _residual(graph, node) if kind == "bconv" else None
    tail, end, scores = found
    if scores and kind != "dense":
        return None
    return Group(kind, prefix, node, tail, end, scores)


def find_groups(graph: Graph, pixel_input: bool) -> list[Group]:
    """Every fusable chain of ``graph``, in execution order, without overlaps.

    Args:
        graph: the model.
        pixel_input: the model input is raw uint8 values (the pixel conv may read them).

    Returns:
        The groups (shape matches only; :mod:`firmware_gen.bnn.fused` checks the numbers).
    """
    groups: list[Group] = []
    taken: set[int] = set()
    for node in graph.nodes:
        group = _match(graph, node, pixel_input)
        if group is None or any(n.index in taken for n in group.nodes):
            continue
        groups.append(group)
        taken.update(n.index for n in group.nodes)
    return groups
