"""What every op module shares: the :class:`OpKind` record, the lowering context and option helpers.

An op module defines ``OP = OpKind(...)``: the op names it implements, ``check`` (options and
input types; refuses with one line naming the layer via :meth:`Node.refuse`), ``lower`` (builds
the output :class:`~firmware_gen.bnn.values.Value` and the :class:`~firmware_gen.bnn.kernel.Kernel`)
and its template. :mod:`firmware_gen.bnn.ops` lists the modules in one table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from firmware_gen.bnn.graph import Graph, Node, hwc
from firmware_gen.bnn.ir import Window
from firmware_gen.bnn.kernel import CArray, Kernel, c_float
from firmware_gen.bnn.values import Value

__all__ = [
    "OpKind",
    "LowerContext",
    "ACTIVATIONS",
    "activation",
    "clamp_range",
    "clamp_lines",
    "positive",
    "make_window",
    "window_context",
    "shape_of",
    "FLOAT_TOLERANCE",
    "LUT_READERS",
    "broadcast_loops",
    "float_input",
    "lut_array",
]

# TFLite's ActivationFunctionType codes as LCE stores them in its custom options.
_ACTIVATION_CODES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")
# Float ops whose results depend on summation order or on exp() agree with TFLite to this
# relative tolerance of the output range (see README: float paths).
FLOAT_TOLERANCE = 1e-5
# Ops whose kernels read a uint8 input through a 256-entry float table (the folded rescaling).
LUT_READERS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LceQuantize")


@dataclass
class LowerContext:
    """State of one compilation that op modules read and extend.

    Attributes:
        graph: the model.
        values: tensor index -> materialized :class:`Value` (the model input first).
        prefix: name prefix of the constants of the kernel being lowered (``l3_``).
        notes: remarks for the report.
        dsp: the target core has the DSP extension (the 8-bit pixel conv's int16-pair form).
    """

    graph: Graph
    values: dict[int, Value] = field(default_factory=dict)
    prefix: str = "l0_"
    notes: list[str] = field(default_factory=list)
    dsp: bool = False

    def value(self, node: Node, slot: int = 0) -> Value:
        """The value of the ``slot``-th activation input of ``node``.

        Raises:
            InputError: the op has no such input, or the tensor was never materialized (a producer
                the engine folded away).
        """
        if slot >= len(node.activations):
            raise node.refuse(f"has {len(node.activations)} activation input(s); the op reads input {slot}")
        tensor = node.activations[slot]
        found = self.values.get(tensor.index)
        if found is None:
            raise node.refuse(f"reads tensor {tensor.index}, which the compiled code does not hold")
        return found

    def define(self, value: Value) -> Value:
        """Record ``value`` as the materialized form of its tensor and return it."""
        self.values[value.tensor] = value
        return value


@dataclass(frozen=True)
class OpKind:
    """One op kind of the registry.

    Attributes:
        names: flatbuffer op names it implements.
        check: validates options and input types (refuses with one line).
        lower: builds the kernel (after ``check``); returns ``None`` for ops that only alias.
        template: the Jinja template of its C function.
        summary: what it supports (README and ``--help`` text).
    """

    names: tuple[str, ...]
    check: Callable[[Node, LowerContext], None]
    lower: Callable[[Node, LowerContext], Kernel | None]
    template: str
    summary: str


def activation(node: Node, key: str = "fusedActivationFunction") -> str:
    """The fused activation of ``node`` (builtin name or LCE's integer code), refusing the others."""
    value = node.options.get(key, "NONE")
    if isinstance(value, int):
        value = _ACTIVATION_CODES.get(value, f"code {value}")
    if value not in ACTIVATIONS:
        raise node.refuse(f"fused activation {value} is not supported ({', '.join(ACTIVATIONS)})")
    return value


def clamp_range(name: str) -> tuple[float | None, float | None]:
    """The float clamp of a fused activation: ``(lo, hi)``, ``None`` for an open side."""
    return {"NONE": (None, None), "RELU": (0.0, None), "RELU_N1_TO_1": (-1.0, 1.0), "RELU6": (0.0, 6.0)}[name]


def clamp_lines(var: str, name: str) -> list[str]:
    """C statements that apply TFLite's ``ActivationFunctionWithMinMax`` to float ``var``:
    ``std::min(std::max(x, lo), hi)``, written with the same comparisons (same signed zeros)."""
    lo, hi = clamp_range(name)
    lines = []
    if lo is not None:
        lines.append(f"{var} = {var} < {c_float(lo)} ? {c_float(lo)} : {var};")
    if hi is not None:
        lines.append(f"{var} = {c_float(hi)} < {var} ? {c_float(hi)} : {var};")
    return lines


def positive(node: Node, key: str, default: int | None = None) -> int:
    """A positive integer option (stride, filter size, dilation); refuses a missing or invalid one."""
    value = node.options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise node.refuse(f"option {key} is {value!r}, expected a positive integer")
    return value


def check_window_options(node: Node) -> None:
    """TFLite's windowed-op options: SAME or VALID padding, positive strides and dilations (default 1)."""
    if node.options.get("padding") not in ("SAME", "VALID"):
        raise node.refuse(f"padding {node.options.get('padding')!r} (SAME or VALID)")
    for key in ("strideH", "strideW", "dilationHFactor", "dilationWFactor"):
        positive(node, key, 1)


def make_window(node: Node, in_shape: tuple[int, int, int], kernel: tuple[int, int], stride: tuple[int, int], same: bool,
                dilation: tuple[int, int] = (1, 1)) -> Window:  # fmt: skip
    """:meth:`Window.make` with a one-line refusal when the window does not fit."""
    try:
        return Window.make(in_shape[0], in_shape[1], kernel[0], kernel[1], stride[0], stride[1], same, dilation[0], dilation[1])
    except ValueError as err:
        raise node.refuse(str(err)) from None


def window_context(window: Window) -> dict[str, int]:
    """Template variables of a window (``kernel_h`` ... ``dil_w``)."""
    return {
        "kernel_h": window.kh,
        "kernel_w": window.kw,
        "stride_h": window.sh,
        "stride_w": window.sw,
        "pad_top": window.pad_top,
        "pad_left": window.pad_left,
        "in_h": window.in_h,
        "in_w": window.in_w,
        "out_h": window.out_h,
        "out_w": window.out_w,
        "dil_h": window.dh,
        "dil_w": window.dw,
        "padded": window.padded,
    }


def shape_of(node: Node, tensor_shape: tuple[int, ...], what: str = "output") -> tuple[int, int, int]:
    """:func:`hwc` of a tensor shape, refusing shapes without that view."""
    shape = hwc(tensor_shape)
    if shape is None:
        raise node.refuse(f"{what} shape {tuple(tensor_shape)} is not batch 1 of rank 1 to 4")
    return shape


def broadcast_loops(node: Node, out_shape: tuple[int, ...], operands: list[tuple[int, ...]]) -> dict[str, object]:
    """NumPy/TFLite broadcasting as four nested loops with constant strides.

    Args:
        node: the op (named in refusals).
        out_shape: the output tensor's shape.
        operands: each operand's shape (right-aligned against ``out_shape``).

    Returns:
        ``dims`` (4 loop extents, outermost first) and ``strides`` (per operand, 4 element
        strides, 0 where the operand is broadcast).

    Raises:
        InputError: more than 4 non-trivial dimensions, or shapes that do not broadcast.
    """
    rank = max(len(out_shape), *(len(s) for s in operands))
    out = (1,) * (rank - len(out_shape)) + tuple(out_shape)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in operands]
    for shape in padded:
        if any(d != o and d != 1 for d, o in zip(shape, out, strict=True)):
            raise node.refuse(f"operand shape {shape} does not broadcast to the output {out}")
    keep = [i for i, d in enumerate(out) if d != 1]
    if len(keep) > 4:
        raise node.refuse(f"broadcasting over {len(keep)} dimensions (at most 4)")
    dims = [out[i] for i in keep]
    strides = []
    for shape in padded:
        contiguous = [int(np.prod(shape[i + 1 :])) for i in range(rank)]
        strides.append([contiguous[i] if shape[i] != 1 else 0 for i in keep])
    while len(dims) < 4:
        dims.insert(0, 1)
        for s in strides:
            s.insert(0, 0)
    return {"dims": dims, "strides": strides}


def lut_array(ctx: LowerContext, value: Value) -> tuple[list[CArray], str | None]:
    """The rescaling table of a uint8 input read through one (``lN_lut``), else nothing."""
    if value.lut is None:
        return [], None
    return [CArray("float", f"{ctx.prefix}lut", value.lut)], f"{ctx.prefix}lut"


def float_input(node: Node, ctx: LowerContext, slot: int = 0) -> Value:
    """The ``slot``-th activation input, refusing values that are not float32 (or raw uint8)."""
    value = ctx.value(node, slot)
    if value.dtype == "int8":
        raise node.refuse(f"int8 {node.name} is not supported (the engine runs this op in float32 only)")
    if value.dtype not in ("float32", "uint8"):
        raise node.refuse(f"input {slot} is {value.dtype}; this op takes float32 values")
    if value.lut is not None and node.name not in LUT_READERS:
        raise node.refuse("reads the model input through its rescaling table (a compiler bug: only LUT_READERS may)")
    return value
