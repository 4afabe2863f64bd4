"""What a side-by-side run compares: rows (flatbuffer + engine + kernel set + label), cores, boards.

A row is given on the command line as ``LABEL=FLATBUFFER:ENGINE[:KERNELS]``:

* ``LABEL``: free text, without ``=``, unique among the rows (it names the row in every table);
* ``FLATBUFFER``: a ``.tflite`` file (LCE or builtin ops, float or int8);
* ``ENGINE``: ``bnn`` (the project's compiler) or ``tflm`` (real TFLite-Micro);
* ``KERNELS``: TFLite-Micro's kernel set for ``tflm`` (``cmsis_nn``, the default, or
  ``reference``); refused for ``bnn``.

The flatbuffer is parsed from the right, so a path may hold ``:``. ``--reference LABEL=MODEL.h5``
adds a Keras model to a row, whose predictions every firmware of the row is compared with.
Everything here is checked before anything is built: :func:`check_rows` turns a bad
combination into one :class:`~pipeline.errors.InputError` line (exit 2).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.errors import InputError

__all__ = [
    "ENGINES",
    "KERNEL_SETS",
    "DEFAULT_KERNELS",
    "Row",
    "parse_row",
    "parse_reference",
    "parse_boards",
    "check_rows",
    "check_boards",
    "run_slug",
]

ENGINES = ("bnn", "tflm")
KERNEL_SETS = ("cmsis_nn", "reference")
DEFAULT_KERNELS = "cmsis_nn"
_ENGINE_NAMES = {"bnn": "bnn engine", "tflm": "TFLite-Micro"}
_KERNEL_NAMES = {"cmsis_nn": "CMSIS-NN kernels", "reference": "reference kernels"}


@dataclass(frozen=True)
class Row:
    """One row of the comparison: a flatbuffer deployed by one engine.

    Attributes:
        label: the row's name in the tables, the plot and ``--baseline``.
        flatbuffer: the ``.tflite`` file.
        engine: ``bnn`` or ``tflm``.
        kernels: TFLite-Micro's kernel set (``tflm`` only; ``None`` for ``bnn``).
        reference: a Keras ``.h5`` the firmware is also compared with, or ``None``.
    """

    label: str
    flatbuffer: Path
    engine: str
    kernels: str | None = None
    reference: Path | None = None

    @property
    def deployment(self) -> str:
        """``bnn engine`` or ``TFLite-Micro, CMSIS-NN kernels`` (what runs the flatbuffer)."""
        if self.engine == "tflm" and self.kernels is not None:
            return f"{_ENGINE_NAMES[self.engine]}, {_KERNEL_NAMES[self.kernels]}"
        return _ENGINE_NAMES[self.engine]

    def to_json(self) -> dict[str, Any]:
        """The row as given: label, paths as typed, engine and kernel set."""
        return {
            "label": self.label,
            "flatbuffer": str(self.flatbuffer),
            "engine": self.engine,
            "kernels": self.kernels,
            "deployment": self.deployment,
            "reference": None if self.reference is None else str(self.reference),
        }


def parse_row(text: str) -> Row:
    """argparse type of ``--row``: ``LABEL=FLATBUFFER:ENGINE[:KERNELS]`` -> :class:`Row`.

    Raises:
        argparse.ArgumentTypeError: no ``=``, an empty label or path, an unknown engine or
            kernel set, or a kernel set given to the bnn engine (the message shows the form).
    """
    form = "expected LABEL=FLATBUFFER:ENGINE[:KERNELS] (ENGINE bnn or tflm; KERNELS cmsis_nn or reference, tflm only)"
    label, sep, spec = text.partition("=")
    label = label.strip()
    if not sep or not label:
        raise argparse.ArgumentTypeError(f"{form}, got {text!r}")
    parts = spec.split(":")
    kernels = None
    if len(parts) >= 3 and parts[-1].strip() in KERNEL_SETS:
        kernels = parts.pop().strip()
    if len(parts) < 2:
        raise argparse.ArgumentTypeError(f"{form}, got {text!r}")
    engine = parts.pop().strip()
    path = ":".join(parts).strip()
    if engine not in ENGINES and len(parts) >= 2 and parts[-1].strip() in ENGINES:
        raise argparse.ArgumentTypeError(f"row {label!r}: unknown kernel set {engine!r}; {form}")
    if engine not in ENGINES:
        raise argparse.ArgumentTypeError(f"row {label!r}: unknown engine {engine!r}; {form}")
    if not path:
        raise argparse.ArgumentTypeError(f"row {label!r}: no flatbuffer; {form}")
    if engine == "bnn" and kernels is not None:
        raise argparse.ArgumentTypeError(f"row {label!r}: a kernel set ({kernels}) is for the tflm engine only")
    return Row(label, Path(path), engine, DEFAULT_KERNELS if engine == "tflm" and kernels is None else kernels)


def parse_reference(text: str) -> tuple[str, Path]:
    """argparse type of ``--reference``: ``LABEL=MODEL.h5`` -> ``(label, path)``.

    Raises:
        argparse.ArgumentTypeError: no ``=``, or an empty label or path.
    """
    label, sep, path = text.partition("=")
    if not sep or not label.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"expected LABEL=MODEL.h5 (a row's label and a Keras model), got {text!r}")
    return label.strip(), Path(path.strip())


def parse_boards(text: str) -> list[str]:
    """argparse type of ``--boards``: ``"stm32f746,stm32f411re"`` -> canonical board names, in the order given.

    Raises:
        argparse.ArgumentTypeError: empty, or an unknown board (the message lists the valid ones).
    """
    from firmware_gen.targets import get_board

    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of boards, got {text!r}")
    try:
        boards = [get_board(name).name for name in names]
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return list(dict.fromkeys(boards))


def check_rows(rows: Sequence[Row], references: Iterable[tuple[str, Path]], baseline: str | None) -> list[Row]:
    """Check the rows together and attach their Keras references.

    Args:
        rows: the parsed ``--row`` values, in order.
        references: the parsed ``--reference`` values.
        baseline: ``--baseline`` (a row's label) or ``None``.

    Returns:
        The rows, each with its ``reference`` set when one was given.

    Raises:
        InputError: no row, a label used twice, a flatbuffer that is not a file, a reference for
            an unknown label or given twice for one row, a reference that is not a file, or a
            baseline that is not a row's label.
    """
    if not rows:
        raise InputError("no rows: give at least one --row LABEL=FLATBUFFER:ENGINE[:KERNELS]")
    seen: set[str] = set()
    for row in rows:
        if row.label in seen:
            raise InputError(f"row label {row.label!r} is used twice: every row needs its own label")
        seen.add(row.label)
        if not row.flatbuffer.is_file():
            raise InputError(f"row {row.label!r}: flatbuffer {row.flatbuffer} does not exist")
    labels = ", ".join(repr(row.label) for row in rows)
    attached: dict[str, Path] = {}
    for label, path in references:
        if label not in seen:
            raise InputError(f"--reference {label!r}: no row has that label (rows: {labels})")
        if label in attached:
            raise InputError(f"--reference {label!r} is given twice")
        if not path.is_file():
            raise InputError(f"--reference {label!r}: {path} does not exist")
        attached[label] = path
    if baseline is not None and baseline not in seen:
        raise InputError(f"--baseline {baseline!r} is not a row's label (rows: {labels})")
    return [replace(row, reference=attached.get(row.label)) for row in rows]


def check_boards(boards: Sequence[str] | None, cores: Sequence[str]) -> list[str]:
    """The boards to judge: those given (each on one of ``cores``), else every board of those cores.

    A board is judged on the firmware built for its own core, so its core must be run.

    Raises:
        InputError: a board whose core is not among ``cores`` (the message says what to add).
    """
    from firmware_gen.targets import BOARDS

    if boards is None:
        return [name for name, board in BOARDS.items() if board.core in cores]
    for name in boards:
        core = BOARDS[name].core
        if core not in cores:
            raise InputError(
                f"--boards {name}: its core, {core}, is not among --cores ({','.join(cores)}); add {core} to --cores"
            )
    return list(boards)


def run_slug(index: int, row: Row, core: str) -> str:
    """The folder name of a row's firmware for a core: ``01-mlperf-resnet-8-int8-cortex-m7`` (unique per run)."""
    slug = re.sub(r"[^a-z0-9]+", "-", row.label.lower()).strip("-")[:48].strip("-") or "row"
    return f"{index + 1:02d}-{slug}-{core}"
