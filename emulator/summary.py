"""``python -m emulator.summary DIR``: one table from every ``*.emulate.json`` under DIR.

The demo ends with it: the verification ladder (Keras -> LCE -> host C -> QEMU) in one view,
with the input shape and class count each artifact ran on, accuracy, agreement, flash, RAM and
instructions per inference side by side.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, OneLineArgumentParser, run_cli
from pipeline.json_input import parse_json

__all__ = ["load_reports", "format_summary", "main"]

# Ladder order: the reference first, the chip last.
_BACKEND_ORDER = {name: rank for rank, name in enumerate(("keras", "tflite", "tflm", "lce", "host", "qemu"))}
_COLUMNS = (
    "artifact",
    "backend",
    "input",
    "classes",
    "images",
    "accuracy",
    "agreement (with)",
    "flash",
    "RAM",
    "instr/inference",
    "budget",
)


def load_reports(folder: Path) -> list[dict[str, Any]]:
    """Every emulator JSON report under ``folder``, in ladder order.

    Raises:
        InputError: ``folder`` is missing, holds no report, or a report is not valid JSON.
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    reports = []
    for path in sorted(folder.rglob("*.emulate.json")):
        try:
            report = parse_json(path.read_text())
        except ValueError as err:  # not JSON, not UTF-8, or nested too deep
            raise InputError(f"{path}: not a valid emulator report ({err})") from None
        report["_path"] = str(path)
        reports.append(report)
    if not reports:
        raise InputError(f"{folder}: no *.emulate.json reports (run python -m emulator first)")
    reports.sort(key=lambda r: (str(r.get("name", "")), _BACKEND_ORDER.get(str(r.get("backend")), 99), r["_path"]))
    return reports


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.2f}%"


def _size(value: Any, source: Any = None) -> str:
    if value is None:
        return "-"
    return f"{int(value):,} B" + (f" ({source})" if source else "")


def _agreement(report: dict[str, Any]) -> str:
    """Agreement and what it was measured against: ``100.00% (keras)``."""
    agreement = _percent(report.get("agreement"))
    reference = report.get("reference") or {}
    return f"{agreement} ({reference['backend']})" if report.get("agreement") is not None and reference else agreement


def _input(report: dict[str, Any]) -> str:
    """``49x10x1 float32``: the example shape and dtype the artifact ran on (``-`` in older reports)."""
    data = report.get("data") if isinstance(report.get("data"), dict) else {}
    shape = report.get("input_shape") or data.get("example_shape")
    if not isinstance(shape, list):
        return "-"
    dims = "x".join(str(d) for d in shape)
    return f"{dims} {data['dtype']}" if data.get("dtype") else dims


def _row(report: dict[str, Any]) -> list[str]:
    instructions = report.get("instructions_per_inference")
    ok = (report.get("budget") or {}).get("ok")
    classes = report.get("num_classes")
    return [
        Path(str(report.get("model", "?"))).name,
        str(report.get("backend", "?")),
        _input(report),
        "-" if classes is None else str(classes),
        f"{int(report.get('images', 0)):,}",
        _percent(report.get("accuracy")),
        _agreement(report),
        _size(report.get("flash_bytes")),
        _size(report.get("ram_bytes"), report.get("ram_source")),
        "-" if instructions is None else f"{float(instructions):,.0f}",
        {True: "fits", False: "OVER", None: "-"}[ok],
    ]


def format_summary(reports: list[dict[str, Any]]) -> str:
    """The reports as one aligned text table."""
    rows = [list(_COLUMNS), *(_row(report) for report in reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _main(argv: Sequence[str] | None) -> int:
    parser = OneLineArgumentParser(prog="python -m emulator.summary", description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="artifacts", help="folder searched for *.emulate.json")
    args = parser.parse_args(argv)
    print(format_summary(load_reports(Path(args.folder))))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m emulator.summary``."""
    return run_cli("python -m emulator.summary", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
