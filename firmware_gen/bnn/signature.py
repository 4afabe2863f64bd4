"""The model's signature: the input's shape and C type, the class count and the score type.

Everything comes from the flatbuffer, and ``firmware.json``'s ``report.signature`` carries it to
the downstream stages (:mod:`emulator.signature` reads it): the input shape as ``(H, W, C)``
(:func:`firmware_gen.bnn.graph.hwc`: a ``(1, N)`` input is ``1 x 1 x N``, a ``(1, H, W)`` input
has ``C = 1``); the class count is the number of elements of the output tensor; the score type
is int32 (the fused integer head, or an int8 output widened) or float (a float head).

The input type rule (``input_type``): an INT8 input is ``int8_t`` (with its scale and zero
point); a FLOAT32 input is ``uint8_t`` when asked (``uint8``), or with ``auto`` when every
consumer of the input is a scalar MUL/ADD (the rescaling of raw 8-bit values the zoo's models
start with) or when the first layer compiles as the integer pixel conv (a binarized first conv
on raw pixels, its rescaling folded in by the converter), and ``float`` otherwise. A uint8
input feeds the float ops the same values the flatbuffer takes (``(float)pixel`` is exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware_gen.bnn.graph import Graph, hwc
from firmware_gen.bnn.kernel import c_float
from firmware_gen.bnn.values import Quant
from pipeline.errors import InputError

__all__ = ["INPUT_TYPES", "Signature", "choose_input_dtype", "input_quant"]

INPUT_TYPES = ("auto", "uint8", "float32")
_C_INPUT = {"uint8": "uint8_t", "int8": "int8_t", "float32": "float"}


def _scalar_rescale_only(graph: Graph) -> bool:
    consumers = graph.consumers(graph.input.index)
    if not consumers:
        return False
    for node in consumers:
        consts = [t for t in node.inputs if t is not None and t.is_constant]
        if node.name not in ("MUL", "ADD") or len(node.inputs) != 2 or len(consts) != 1 or consts[0].size != 1:
            return False
    return True


def choose_input_dtype(graph: Graph, requested: str = "auto", pixel_conv: bool = False) -> str:
    """The C input type's name (``uint8``, ``int8`` or ``float32``) by the rule of the module doc.

    Args:
        graph: the model.
        requested: ``auto``, ``uint8`` or ``float32`` (``firmware_gen --input-type``).
        pixel_conv: the first layer compiles as the integer pixel conv on uint8 input.

    Raises:
        InputError: an unknown request, an input type the engine does not take, or a request
            that contradicts an int8 input.
    """
    if requested not in INPUT_TYPES:
        raise InputError(f"bnn engine: input type {requested!r} is not one of {', '.join(INPUT_TYPES)}")
    dtype = graph.input.dtype
    if dtype == "INT8":
        if requested != "auto":
            raise InputError(f"bnn engine: the model input is INT8; --input-type {requested} does not apply (use auto)")
        return "int8"
    if dtype != "FLOAT32":
        raise InputError(f"bnn engine: model input of type {dtype}; the engine takes FLOAT32 or INT8 inputs")
    if requested == "auto":
        return "uint8" if pixel_conv or _scalar_rescale_only(graph) else "float32"
    return requested


def input_quant(graph: Graph) -> Quant | None:
    """The input's quantization when it is INT8 (per-tensor), else ``None``.

    Raises:
        InputError: an INT8 input without one per-tensor scale.
    """
    if graph.input.dtype != "INT8":
        return None
    q = graph.input.quantization
    if q is None or len(q.scale) != 1:
        raise InputError("bnn engine: the INT8 model input needs one per-tensor scale and zero point")
    return Quant(float(q.scale[0]), int(q.zero_point[0]) if q.zero_point else 0)


@dataclass(frozen=True)
class Signature:
    """The API of the generated code.

    Attributes:
        input_shape: ``(H, W, C)``.
        input_dtype: ``uint8``, ``int8`` or ``float32``.
        input_quant: the int8 input's quantization, else ``None``.
        model_input_shape: the flatbuffer's input tensor shape as is.
        num_classes: elements of the output tensor.
        score_dtype: ``int32`` or ``float32``.
    """

    input_shape: tuple[int, int, int]
    input_dtype: str
    input_quant: Quant | None
    model_input_shape: tuple[int, ...]
    num_classes: int
    score_dtype: str

    @staticmethod
    def of(graph: Graph, input_dtype: str, score_dtype: str) -> Signature:
        """The signature of ``graph`` compiled with these input and score types."""
        shape = hwc(graph.input.shape) or (1, 1, 1)  # load_graph refused inputs without this view
        return Signature(
            shape,
            input_dtype,
            input_quant(graph),
            tuple(int(d) for d in graph.input.shape),
            int(math.prod(graph.output.shape)) if graph.output.shape else 1,
            score_dtype,
        )

    def macros(self) -> dict[str, object]:
        """Template variables of ``bnn_model.h``."""
        return {
            "input_height": self.input_shape[0],
            "input_width": self.input_shape[1],
            "input_channels": self.input_shape[2],
            "input_type": _C_INPUT[self.input_dtype],
            "input_scale": None if self.input_quant is None else c_float(self.input_quant.scale),
            "input_zero_point": None if self.input_quant is None else self.input_quant.zero_point,
            "num_classes": self.num_classes,
            "score_type": "float" if self.score_dtype == "float32" else "int32_t",
        }

    def as_json(self) -> dict[str, object]:
        """The ``signature`` entry of ``firmware.json``."""
        quant = None if self.input_quant is None else {"scale": self.input_quant.scale, "zero_point": self.input_quant.zero_point}
        return {
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "input_quantization": quant,
            "model_input_shape": list(self.model_input_shape),
            "num_classes": self.num_classes,
            "score_dtype": self.score_dtype,
        }
