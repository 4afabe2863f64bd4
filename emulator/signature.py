"""What a firmware's ``bnn_predict`` takes and returns, and the exact bytes to feed it.

A firmware folder of the ``bnn`` engine records its signature (contract13.md) in
``firmware.json`` (``report.signature``): the input shape ``[H, W, C]``, the input type
(``uint8`` raw 8-bit values, ``float32``, or ``int8`` with the input tensor's scale and zero
point), the class count and the score type. :func:`read_signature` prefers that entry; for a
folder written before it existed it reads the same facts from ``bnn_model.h``'s macros
(``BNN_INPUT_HEIGHT/WIDTH/CHANNELS``, ``BNN_INPUT_TYPE``, ``BNN_NUM_CLASSES``,
``BNN_SCORE_TYPE``, ``BNN_INPUT_SCALE/ZERO_POINT``), and what neither says falls back to the
engine's first API (28x28x1 uint8 pixels, 10 int32 scores).

Feeding (:func:`encode_inputs`), from the dataset's raw examples ``(N, ...)``:

* ``uint8``: the examples must be uint8 (raw 8-bit values) and are written as bytes; float data
  is refused, naming ``--input-type float32``;
* ``float32``: the examples (uint8 or float32) become little-endian float32, the values the
  flatbuffer takes;
* ``int8``: quantized with the signature's scale and zero point exactly as
  :class:`pipeline.interpreters.Session` quantizes for the interpreters (round half to even),
  so the firmware and the LCE interpreter see identical int8 inputs.

Every mismatch (values per example, dtype, class count) is one :class:`InputError` line.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import CheckError, InputError
from pipeline.json_input import parse_json

__all__ = [
    "INPUT_DTYPES",
    "SCORE_DTYPES",
    "DEFAULT_SIGNATURE",
    "FirmwareSignature",
    "read_signature",
    "signature_from_json",
    "signature_from_header",
    "check_data",
    "encode_inputs",
    "check_results",
]

INPUT_DTYPES = ("uint8", "int8", "float32")
SCORE_DTYPES = ("int32", "float32")
_C_INPUT_TYPES = {"uint8_t": "uint8", "int8_t": "int8", "float": "float32"}
_C_SCORE_TYPES = {"int32_t": "int32", "float": "float32"}
_DEFINE = re.compile(r"^\s*#\s*define\s+(BNN_[A-Z0-9_]+)[ \t]+(.*?)\s*(?://.*|/\*.*)?$")
_INT_SUFFIX = re.compile(r"\b(\d+)[uUlL]+\b")


@dataclass(frozen=True)
class FirmwareSignature:
    """The API of one firmware's ``bnn_predict``.

    Attributes:
        input_shape: ``(H, W, C)`` as in ``bnn_model.h``.
        input_dtype: ``uint8``, ``int8`` or ``float32``.
        input_quantization: ``(scale, zero_point)`` of an ``int8`` input, else ``None``.
        num_classes: scores per input.
        score_dtype: ``int32`` or ``float32``.
        source: where it was read: ``firmware.json``, ``bnn_model.h`` or ``default``
            (``bnn_model.h`` lists the macros it had to default, if any).
        model_input_shape: the flatbuffer's input tensor shape, when recorded.
    """

    input_shape: tuple[int, ...]
    input_dtype: str
    input_quantization: tuple[float, int] | None
    num_classes: int
    score_dtype: str
    source: str
    model_input_shape: tuple[int, ...] | None = None

    @property
    def input_values(self) -> int:
        """Values per input (``H * W * C``)."""
        return math.prod(self.input_shape)

    @property
    def input_bytes(self) -> int:
        """Bytes of one input as the harness reads it."""
        return self.input_values * np.dtype(self.input_dtype).itemsize

    def describe(self) -> str:
        """``49x10x1 float32 -> 12 float32 scores`` (messages and tables)."""
        dims = "x".join(str(d) for d in self.input_shape)
        return f"{dims} {self.input_dtype} -> {self.num_classes} {self.score_dtype} scores"

    def to_json(self) -> dict[str, Any]:
        """The signature as recorded in an emulator report."""
        quant = self.input_quantization
        return {
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "input_quantization": None if quant is None else {"scale": quant[0], "zero_point": quant[1]},
            "model_input_shape": None if self.model_input_shape is None else list(self.model_input_shape),
            "num_classes": self.num_classes,
            "score_dtype": self.score_dtype,
            "source": self.source,
        }


DEFAULT_SIGNATURE = FirmwareSignature((28, 28, 1), "uint8", None, 10, "int32", "default")


def _positive_ints(value: Any, what: str, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise InputError(f"{where}: signature {what} must be a list of integers, got {value!r}")
    if any(d < 1 for d in value):
        raise InputError(f"{where}: signature {what} {value} has a dimension below 1")
    return tuple(value)


def signature_from_json(entry: Any, where: str = "firmware.json") -> FirmwareSignature:
    """A signature from its ``firmware.json`` entry (contract13.md).

    Raises:
        InputError: a missing or malformed field.
    """
    if not isinstance(entry, dict):
        raise InputError(f"{where}: signature must be an object, got {type(entry).__name__}")
    shape = _positive_ints(entry.get("input_shape"), "input_shape", where)
    dtype = entry.get("input_dtype")
    if dtype not in INPUT_DTYPES:
        raise InputError(f"{where}: signature input_dtype {dtype!r} is not one of {', '.join(INPUT_DTYPES)}")
    scores = entry.get("score_dtype")
    if scores not in SCORE_DTYPES:
        raise InputError(f"{where}: signature score_dtype {scores!r} is not one of {', '.join(SCORE_DTYPES)}")
    classes = entry.get("num_classes")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise InputError(f"{where}: signature num_classes must be an integer >= 1, got {classes!r}")
    quant = None
    raw = entry.get("input_quantization")
    if dtype == "int8":
        numbers = isinstance(raw, dict) and isinstance(raw.get("scale"), (int, float)) and isinstance(raw.get("zero_point"), int)
        if not numbers:
            raise InputError(f"{where}: an int8 signature needs input_quantization {{scale, zero_point}}, got {raw!r}")
        if not raw["scale"] > 0:  # type: ignore[index]
            raise InputError(f"{where}: signature input scale must be > 0, got {raw['scale']!r}")
        quant = (float(raw["scale"]), int(raw["zero_point"]))  # type: ignore[index]
    model_shape = entry.get("model_input_shape")
    model_input = _positive_ints(model_shape, "model_input_shape", where) if model_shape is not None else None
    return FirmwareSignature(shape, dtype, quant, classes, scores, "firmware.json", model_input)


def _macros(text: str) -> dict[str, str]:
    """``#define BNN_*`` name -> replacement text (comments stripped)."""
    found = {}
    for line in text.splitlines():
        match = _DEFINE.match(line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def _evaluate(name: str, macros: dict[str, str], depth: int = 0) -> int:
    """The integer value of an arithmetic macro (``(28 * 28)``, ``(BNN_INPUT_HEIGHT * ...)``)."""
    if depth > 8:
        raise ValueError(f"{name} expands too deeply")
    text = _INT_SUFFIX.sub(r"\1", macros[name])

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name) and node.id in macros:
            return _evaluate(node.id, macros, depth + 1)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = value(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            return left - right if isinstance(node.op, ast.Sub) else left * right
        raise ValueError(f"{name} is not an integer expression: {macros[name]!r}")

    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ValueError(f"{name} is not an integer expression: {macros[name]!r}") from None
    return value(tree)


def signature_from_header(path: Path) -> FirmwareSignature:
    """A signature from ``bnn_model.h``'s macros; what they do not say falls back to
    :data:`DEFAULT_SIGNATURE` (and ``source`` names the defaulted macros).

    Raises:
        InputError: the header is unreadable, or a macro has a value outside the contract.
    """
    try:
        macros = _macros(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    defaulted: list[str] = []

    def integer(name: str, default: int | None) -> int | None:
        if name not in macros:
            return default
        try:
            number = _evaluate(name, macros)
        except ValueError as err:
            raise InputError(f"{path}: {err}") from None
        if number < 1:
            raise InputError(f"{path}: {name} is {number}, expected a positive count")
        return number

    dims = [integer(f"BNN_INPUT_{axis}", None) for axis in ("HEIGHT", "WIDTH", "CHANNELS")]
    if all(d is not None for d in dims):
        shape = tuple(int(d) for d in dims if d is not None)
    elif "BNN_INPUT_SIZE" in macros:
        shape = (1, 1, int(integer("BNN_INPUT_SIZE", None) or 0))
    else:
        shape = DEFAULT_SIGNATURE.input_shape
        defaulted.append("BNN_INPUT_HEIGHT/WIDTH/CHANNELS")
    c_type = macros.get("BNN_INPUT_TYPE")
    if c_type is None:
        defaulted.append("BNN_INPUT_TYPE")
    elif c_type not in _C_INPUT_TYPES:
        raise InputError(f"{path}: BNN_INPUT_TYPE {c_type!r} is not one of {', '.join(_C_INPUT_TYPES)}")
    dtype = _C_INPUT_TYPES.get(c_type or "", DEFAULT_SIGNATURE.input_dtype)
    if "BNN_NUM_CLASSES" not in macros:
        defaulted.append("BNN_NUM_CLASSES")
    classes = int(integer("BNN_NUM_CLASSES", DEFAULT_SIGNATURE.num_classes) or 0)
    score = macros.get("BNN_SCORE_TYPE")
    if score is None and "BNN_SCORE_IS_FLOAT" in macros:
        score = "float" if macros["BNN_SCORE_IS_FLOAT"].strip("()") == "1" else "int32_t"
    if score is None:
        defaulted.append("BNN_SCORE_TYPE")
    elif score not in _C_SCORE_TYPES:
        raise InputError(f"{path}: BNN_SCORE_TYPE {score!r} is not one of {', '.join(_C_SCORE_TYPES)}")
    scores = _C_SCORE_TYPES.get(score or "", DEFAULT_SIGNATURE.score_dtype)
    quant = None
    if dtype == "int8":
        try:
            scale = float(np.float32(macros["BNN_INPUT_SCALE"].rstrip("fF")))
            zero = _evaluate("BNN_INPUT_ZERO_POINT", macros)
        except (KeyError, ValueError):
            raise InputError(f"{path}: an int8_t input needs BNN_INPUT_SCALE and BNN_INPUT_ZERO_POINT (numbers)") from None
        if not scale > 0:
            raise InputError(f"{path}: BNN_INPUT_SCALE must be > 0, got {scale}")
        quant = (scale, zero)
    source = "bnn_model.h" + (f" (defaults for {', '.join(defaulted)})" if defaulted else "")
    return FirmwareSignature(shape, dtype, quant, classes, scores, source)


def read_signature(folder: Path, manifest: dict[str, Any] | None = None) -> FirmwareSignature:
    """The signature of a firmware folder: ``firmware.json``'s entry, else ``bnn_model.h``, else the default.

    Args:
        folder: the firmware folder.
        manifest: its parsed ``firmware.json`` (read from the folder when ``None``).

    Raises:
        InputError: ``firmware.json`` is not valid JSON, or the signature found is malformed.
    """
    folder = Path(folder)
    if manifest is None:
        path = folder / "firmware.json"
        if path.is_file():
            try:
                manifest = parse_json(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as err:
                raise InputError(f"{path}: not valid JSON ({err})") from None
    if isinstance(manifest, dict):
        report = manifest.get("report")
        for holder in (report if isinstance(report, dict) else {}, manifest):
            if "signature" in holder:
                return signature_from_json(holder["signature"], str(folder / "firmware.json"))
    header = folder / "bnn_model.h"
    if header.is_file():
        return signature_from_header(header)
    return DEFAULT_SIGNATURE


def check_data(
    signature: FirmwareSignature, example_shape: tuple[int, ...], dtype: np.dtype | str, num_classes: int | None
) -> None:
    """Refuse data that does not fit the firmware: values per example, dtype, class count.

    Args:
        signature: the firmware's.
        example_shape: one example's shape.
        dtype: the examples' dtype.
        num_classes: the dataset's class count (``None``: not checked).

    Raises:
        InputError: one line naming both sides (and ``--input-type`` for a dtype mismatch).
    """
    values = math.prod(example_shape)
    dims = "x".join(str(d) for d in example_shape)
    if values != signature.input_values:
        raise InputError(
            f"the data's {dims} examples ({values} values) do not fit the firmware's {signature.describe()} "
            f"input ({signature.input_values} values); run it on its own data (--data)"
        )
    dtype = np.dtype(dtype)
    if signature.input_dtype == "uint8" and dtype != np.uint8:
        raise InputError(
            f"the firmware takes uint8 inputs (raw 8-bit values) but the data is {dtype}; generate it with "
            "python -m firmware_gen --input-type float32 to feed float data"
        )
    if dtype.kind not in "uf":
        raise InputError(f"the data is {dtype}; the firmware takes uint8 or float32 data")
    if num_classes is not None and num_classes != signature.num_classes:
        raise InputError(
            f"the firmware's model has {signature.num_classes} classes but the dataset has {num_classes}; "
            "run it on its own data (--data)"
        )


def encode_inputs(signature: FirmwareSignature, inputs: np.ndarray) -> bytes:
    """The harness's input file: every example as ``BNN_INPUT_TYPE`` values, little-endian.

    Args:
        signature: the firmware's.
        inputs: raw examples ``(N, ...)``, uint8 or float32.

    Returns:
        ``N * signature.input_bytes`` bytes.

    Raises:
        InputError: no examples, or data that does not fit (see :func:`check_data`).
    """
    from pipeline.interpreters import prepare_inputs, quantize

    inputs = np.asarray(inputs)
    if inputs.ndim < 2 or len(inputs) == 0:
        raise InputError(f"inputs must be (N, ...) with N >= 1, got shape {inputs.shape}")
    check_data(signature, inputs.shape[1:], inputs.dtype, None)
    rows = inputs.reshape(len(inputs), -1)
    if signature.input_dtype == "uint8":
        return np.ascontiguousarray(rows, dtype=np.uint8).tobytes()
    values = prepare_inputs(rows)
    if signature.input_dtype == "float32":
        return np.ascontiguousarray(values, dtype="<f4").tobytes()
    if signature.input_quantization is None:
        raise InputError(f"the firmware takes int8 inputs but its signature ({signature.source}) has no scale and zero point")
    return quantize(values, *signature.input_quantization, np.int8).tobytes()


def check_results(signature: FirmwareSignature, classes: int, scores: np.ndarray, input_bytes: int, source: str) -> None:
    """Check that a harness's results file matches the signature the inputs were encoded for.

    Raises:
        CheckError: the harness read inputs of another size, or wrote another class count or score type.
    """
    if input_bytes != signature.input_bytes:
        raise CheckError(
            f"{source}: the harness read {input_bytes}-byte inputs but the signature ({signature.source}) "
            f"says {signature.input_bytes}; the firmware.json and bnn_model.h disagree"
        )
    if classes != signature.num_classes or np.dtype(scores.dtype) != np.dtype(signature.score_dtype):
        raise CheckError(
            f"{source}: the harness wrote {classes} {scores.dtype} scores but the signature ({signature.source}) "
            f"says {signature.num_classes} {signature.score_dtype}"
        )
