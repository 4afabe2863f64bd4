"""The op registry of the bnn engine: one module per op kind, listed in one table.

Each module defines ``OP`` (:class:`~firmware_gen.bnn.ops.base.OpKind`): the flatbuffer op
names it implements, ``check`` (options and input types, refusing with one line that names
the layer), ``lower`` (the output value and the kernel) and its template under
``firmware_gen/templates/bnn/ops/``. An op that is not in :data:`REGISTRY` is refused; nothing
falls through to another kernel. Adding an op: a module here, a template, one line in
:data:`_MODULES`, and a compile-and-compare test (``tests/test_bnn_ops.py``).
"""

from __future__ import annotations

from firmware_gen.bnn.graph import Node
from firmware_gen.bnn.ops import (
    arithmetic,
    concatenation,
    conv2d,
    depthwise_conv2d,
    fully_connected,
    lce_bconv2d,
    lce_bmaxpool2d,
    lce_dequantize,
    lce_quantize,
    logistic,
    mean,
    pad,
    pool2d,
    prelu,
    quantize,
    relu,
    reshape,
    softmax,
)
from firmware_gen.bnn.ops.base import LowerContext, OpKind

__all__ = ["REGISTRY", "op_kind", "LowerContext", "OpKind"]

_MODULES = (
    lce_quantize,
    lce_dequantize,
    lce_bconv2d,
    lce_bmaxpool2d,
    conv2d,
    depthwise_conv2d,
    fully_connected,
    arithmetic,
    pool2d,
    mean,
    concatenation,
    pad,
    reshape,
    relu,
    prelu,
    logistic,
    softmax,
    quantize,
)

REGISTRY: dict[str, OpKind] = {name: module.OP for module in _MODULES for name in module.OP.names}


def op_kind(node: Node) -> OpKind:
    """The registered kind of ``node``'s op.

    Raises:
        InputError: the op is not in the registry (one line, naming the layer and listing the set).
    """
    kind = REGISTRY.get(node.name)
    if kind is None:
        raise node.refuse(f"op not supported by the bnn engine (supported: {', '.join(sorted(REGISTRY))})")
    return kind
