"""The per-layer table of a flatbuffer: what an embedded engineer checks first.

One row per operator: op, output shape, parameters, multiply-accumulates (binary and
full-precision counted apart), weight bytes and activation bytes.

Counting rules:

* MACs are counted for convolutions and dense layers only (elementwise ops, pooling and
  activations are not MACs).
* ``LceBconv2d`` is binary: ``out_h * out_w * out_c * kh * kw * channels_in`` XNOR-popcount MACs.
* A ``FULLY_CONNECTED`` whose input comes from ``LceDequantize`` is a binary dense layer (its
  input is +-1 and LCE keeps its +-1 weights as float32): its MACs count as binary.
* Every other ``CONV_2D``, ``DEPTHWISE_CONV_2D`` and ``FULLY_CONNECTED`` counts as full
  precision (``float_macs``: float32 or int8 arithmetic alike).
* Parameters are the logical weights (a RESHAPE's target shape is not one): a bit-packed ``LceBconv2d`` filter counts
  ``out_c * kh * kw * channels_in`` parameters although it stores a 32nd of the bits.
* A constant read by several operators (LCE shares batch-norm vectors) is counted once, at the
  first operator that reads it, so the column totals are the model's totals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from convert.flatbuffer import Model, Operator

__all__ = ["LayerRow", "layer_table", "layer_totals", "format_layers"]


@dataclass(frozen=True)
class LayerRow:
    """Figures of one operator.

    Attributes:
        index: operator index (execution order).
        op: op name (``CONV_2D``, ``LceBconv2d``, ...).
        output_shape: shape of the first output.
        params: logical parameters first read by this op.
        binary_macs: XNOR-popcount multiply-accumulates.
        float_macs: full-precision (float32 or int8) multiply-accumulates.
        weight_bytes: bytes of constants first read by this op, as stored in the flatbuffer.
        activation_bytes: bytes of the op's outputs.
    """

    index: int
    op: str
    output_shape: tuple[int, ...]
    params: int
    binary_macs: int
    float_macs: int
    weight_bytes: int
    activation_bytes: int

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (shape as a list)."""
        row = asdict(self)
        row["output_shape"] = list(self.output_shape)
        return row


def _is_binary_dense(model: Model, op: Operator) -> bool:
    if op.name != "FULLY_CONNECTED" or not op.inputs or op.inputs[0] < 0:
        return False
    producer = model.producer(op.inputs[0])
    return producer is not None and producer.name == "LceDequantize"


def _macs(model: Model, op: Operator) -> tuple[int, int]:
    """(binary, float) MACs of one operator."""
    out = model.tensors[op.outputs[0]].shape if op.outputs else ()
    if op.name in ("CONV_2D", "LceBconv2d") and len(op.inputs) > 1 and len(out) == 4:
        filt = model.tensors[op.inputs[1]].shape
        if len(filt) != 4:
            return 0, 0
        if op.name == "LceBconv2d":
            channels_in = int(op.options.get("channels_in", filt[3] * 32))
            return math.prod(out) * filt[1] * filt[2] * channels_in, 0
        return 0, math.prod(out) * filt[1] * filt[2] * filt[3]
    if op.name == "DEPTHWISE_CONV_2D" and len(op.inputs) > 1 and len(out) == 4:
        filt = model.tensors[op.inputs[1]].shape
        return 0, math.prod(out) * filt[1] * filt[2]
    if op.name == "FULLY_CONNECTED" and len(op.inputs) > 1:
        weights = model.tensors[op.inputs[1]].shape
        if len(weights) != 2:
            return 0, 0
        macs = math.prod(out) * weights[1]
        return (macs, 0) if _is_binary_dense(model, op) else (0, macs)
    return 0, 0


def _params(model: Model, op: Operator, tensor_index: int, position: int) -> int:
    tensor = model.tensors[tensor_index]
    if op.name == "RESHAPE" and position == 1:
        return 0  # the target shape, not a weight
    if op.name == "LceBconv2d" and position == 1 and len(tensor.shape) == 4:
        channels_in = int(op.options.get("channels_in", tensor.shape[3] * 32))
        return tensor.shape[0] * tensor.shape[1] * tensor.shape[2] * channels_in
    return tensor.size


def layer_table(model: Model) -> list[LayerRow]:
    """One :class:`LayerRow` per operator of a parsed flatbuffer.

    Args:
        model: the graph from :func:`convert.flatbuffer.read_model`.

    Returns:
        Rows in execution order.
    """
    seen: set[int] = set()
    rows = []
    for op in model.operators:
        params = weight_bytes = 0
        for position, index in enumerate(op.inputs):
            if index < 0 or not model.tensors[index].is_constant or index in seen:
                continue
            seen.add(index)
            params += _params(model, op, index, position)
            weight_bytes += len(model.tensors[index].data or b"")
        binary, full = _macs(model, op)
        out_shape = model.tensors[op.outputs[0]].shape if op.outputs else ()
        activation = sum(model.tensors[i].nbytes for i in op.outputs if i >= 0)
        rows.append(LayerRow(op.index, op.name, tuple(out_shape), params, binary, full, weight_bytes, activation))
    return rows


def layer_totals(rows: list[LayerRow]) -> dict[str, int]:
    """Column sums: params, binary_macs, float_macs, weight_bytes, and the largest activation."""
    return {
        "params": sum(r.params for r in rows),
        "binary_macs": sum(r.binary_macs for r in rows),
        "float_macs": sum(r.float_macs for r in rows),
        "weight_bytes": sum(r.weight_bytes for r in rows),
        "max_activation_bytes": max((r.activation_bytes for r in rows), default=0),
    }


def format_layers(rows: list[LayerRow]) -> str:
    """The table as aligned text with a totals line."""
    header = (
        f"{'#':>3}  {'op':<18} {'output':<16} {'params':>9} {'binary MACs':>12} {'float MACs':>11} "
        f"{'weights B':>10} {'act. B':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = "x".join(str(d) for d in r.output_shape)
        lines.append(
            f"{r.index:>3}  {r.op:<18} {shape:<16} {r.params:>9,} {r.binary_macs:>12,} {r.float_macs:>11,} "
            f"{r.weight_bytes:>10,} {r.activation_bytes:>8,}"
        )
    totals = layer_totals(rows)
    lines.append("-" * len(header))
    lines.append(
        f"{'':>3}  {'total':<18} {'':<16} {totals['params']:>9,} {totals['binary_macs']:>12,} "
        f"{totals['float_macs']:>11,} {totals['weight_bytes']:>10,} {totals['max_activation_bytes']:>8,} (largest)"
    )
    return "\n".join(lines)
