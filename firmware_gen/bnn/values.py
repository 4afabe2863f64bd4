"""The run-time values of a compiled model: what each activation tensor is stored as in C.

Every activation tensor of the graph that the generated code materializes is a :class:`Value`:

* ``bits``: bit-packed (:mod:`firmware_gen.bnn.contract`: NHWC, whole uint32 words per pixel,
  LSB first, bit 1 = -1). A per-channel ``complement`` mask says which channels are stored
  complemented (consumers absorb it at compile time); ``background`` is the pixel a layer
  writes when its input is all background (an exact shortcut for the next binary conv).
* ``float32``: IEEE single precision, NHWC.
* ``int8``: affine quantized, ``real = scale * (q - zero_point)``, NHWC.
* ``uint8``: raw 8-bit values (only the model input).
* ``int32``: class scores (the fused integer head, or an int8 output widened).

Shapes are ``(height, width, channels)`` (:func:`firmware_gen.bnn.graph.hwc`); ``storage`` names
the buffer that holds the value (its own tensor index, or the tensor it aliases, for RESHAPE
and in-place ops).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_gen.bnn.contract import words_for

__all__ = ["DTYPES", "C_TYPES", "Quant", "Value"]

DTYPES = ("bits", "float32", "int8", "uint8", "int32")
C_TYPES = {"bits": "uint32_t", "float32": "float", "int8": "int8_t", "uint8": "uint8_t", "int32": "int32_t"}
_ITEM_BYTES = {"float32": 4, "int8": 1, "uint8": 1, "int32": 4}


@dataclass(frozen=True)
class Quant:
    """Per-tensor affine quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int


@dataclass
class Value:
    """One materialized activation.

    Attributes:
        tensor: the flatbuffer tensor index.
        dtype: one of :data:`DTYPES`.
        shape: ``(height, width, channels)``.
        storage: tensor index of the buffer that holds it (``tensor`` unless aliased).
        complement: ``bits`` only: ``(C,)`` bool, channels stored complemented.
        background: ``bits`` only: the words of one pixel the producer writes for an
            all-background input, or ``None``.
        quant: ``int8`` only: the quantization.
        lut: ``uint8`` only: the 256 floats the raw values stand for (the model input's
            rescaling folded into a table the consumer reads through), or ``None``.
    """

    tensor: int
    dtype: str
    shape: tuple[int, int, int]
    storage: int = -1
    complement: np.ndarray | None = None
    background: np.ndarray | None = None
    quant: Quant | None = None
    lut: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown value type {self.dtype}")
        if self.storage < 0:
            self.storage = self.tensor
        if self.dtype == "bits" and self.complement is None:
            self.complement = np.zeros(self.shape[2], dtype=bool)

    @property
    def ctype(self) -> str:
        """The C element type."""
        return C_TYPES[self.dtype]

    @property
    def size(self) -> int:
        """Logical elements ``H * W * C``."""
        h, w, c = self.shape
        return h * w * c

    @property
    def words(self) -> int:
        """``bits`` only: uint32 words per pixel."""
        return words_for(self.shape[2])

    @property
    def elements(self) -> int:
        """Elements of :attr:`ctype` the buffer holds."""
        if self.dtype == "bits":
            return self.shape[0] * self.shape[1] * self.words
        return self.size

    @property
    def nbytes(self) -> int:
        """Bytes of the buffer (unrounded)."""
        return 4 * self.elements if self.dtype == "bits" else _ITEM_BYTES[self.dtype] * self.elements

    def describe(self) -> str:
        """``HxWxC TYPE`` for reports and comments."""
        h, w, c = self.shape
        kind = {"bits": "bits", "float32": "float"}.get(self.dtype, self.dtype)
        return f"{h}x{w}x{c} {kind}"
