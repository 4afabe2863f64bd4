"""What every lowering produces: a :class:`Kernel` (one C function) and its :class:`CArray` constants.

A kernel reads one or more values and writes one (:mod:`firmware_gen.bnn.values`); the emitter
(:mod:`firmware_gen.bnn.emit`) names it ``bnn_layerN``, gives it the pointers the memory plan
chose, and renders its template with ``L`` = the kernel's context plus ``fn``, ``prefix``,
``title`` and ``params`` (the C parameter list, one pointer per input then the output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CArray", "Kernel", "c_float"]

_ITEMSIZE = {
    "uint32_t": 4,
    "int32_t": 4,
    "int16_t": 2,
    "int64_t": 8,
    "uint64_t": 8,
    "uint8_t": 1,
    "int8_t": 1,
    "uint16_t": 2,
    "float": 4,
}


def c_float(value: float) -> str:
    """A C99 float literal that reads back as exactly ``float32(value)``.

    Raises:
        ValueError: the value is not finite.
    """
    single = np.float32(value)
    if not np.isfinite(single):
        raise ValueError(f"non-finite constant {value!r}")
    text = f"{float(single):.9g}"
    if "e" not in text and "." not in text and "n" not in text:
        text += ".0"
    return text + "f"


@dataclass
class CArray:
    """A constant array in flash: C type, name, values; ``target_only`` arrays are read only by the
    target kernels (the channel-inner host build has its own layouts, ``Kernel.inner_arrays``)."""

    ctype: str
    name: str
    values: np.ndarray
    target_only: bool = False

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return _ITEMSIZE[self.ctype]

    @property
    def nbytes(self) -> int:
        """Bytes in flash."""
        return self.itemsize * int(self.values.size)

    @property
    def body(self) -> str:
        """Initializer lines."""
        flat = np.asarray(self.values).reshape(-1)
        if self.ctype == "uint32_t":
            items = [f"0x{int(v) & 0xFFFFFFFF:08x}u" for v in flat]
            per_line = 6
        elif self.ctype == "uint64_t":
            items = [f"0x{int(v):016x}u" for v in flat]
            per_line = 4
        elif self.ctype == "float":
            items = [c_float(v) for v in flat]
            per_line = 6
        else:
            items = [str(int(v)) for v in flat]
            per_line = 12
        lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
        return ",\n".join("    " + line for line in lines)


@dataclass
class Kernel:
    """One C function of the generated model.

    Attributes:
        index: flatbuffer operator index of the first op it implements.
        ops: the flatbuffer ops it implements, in order.
        inputs: tensor indices of the values it reads (in parameter order).
        output: tensor index of the value it writes (``-1`` for an alias: no code).
        template: the Jinja template of the function.
        context: template variables (``L`` in the template).
        arrays: constants in flash.
        kind: short name for reports (``Conv2D``, ``BinaryConv``, ...).
        returns_class: the function returns the class (the fused integer head).
        inplace: input positions whose buffer the output may reuse when that input dies here.
        inner_template: channel-inner form for SIMD hosts (``BNN_CHANNEL_INNER``), or ``None``.
        inner_arrays: constants of the channel-inner form.
        notes: remarks for the report.
        layer: the integer layer (:mod:`firmware_gen.bnn.ir`) of fused kernels, for tests.
        weight_bytes: bytes of weights among ``arrays`` (the rest: thresholds, scales...).
        prefix: the name prefix of its constants (``l3_``), set by the driver.
    """

    index: int
    ops: list[str]
    inputs: tuple[int, ...]
    output: int
    template: str
    context: dict[str, Any]
    arrays: list[CArray] = field(default_factory=list)
    kind: str = ""
    returns_class: bool = False
    inplace: tuple[int, ...] = ()
    inner_template: str | None = None
    inner_arrays: list[CArray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layer: Any = None
    weight_bytes: int | None = None
    prefix: str = ""

    @property
    def data_bytes(self) -> int:
        """Flash bytes of the target's constants."""
        return sum(array.nbytes for array in self.arrays)
