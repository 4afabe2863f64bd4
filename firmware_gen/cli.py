"""Command line for firmware generation.

``python -m firmware_gen --target CORE [--board NAME] [--engine auto|tflm|bnn] [--model PATH]
[--input-type auto|uint8|float32] [--optimize speed|size] [--no-frontend] [--out DIR]`` writes
``artifacts/firmware/NAME-TARGET/`` (NAME: the flatbuffer's file name without ``.tflite``): the
engine's files plus ``firmware.json``. The folder is written as a
whole: files go to a temporary sibling folder that then replaces OUT, so a failed run leaves
the previous tree (or nothing). Over a board's budget the tree is still written (it is useful
to see what does not fit) and the command exits 3 with one line naming the budget.

Exit codes: 0 ok, 2 bad usage or input, 3 over the board's flash or RAM budget.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from firmware_gen.engines import ENGINE_CHOICES, INPUT_TYPES, OPTIMIZE_CHOICES
from firmware_gen.targets import BOARDS, CORE_ALIASES, CORES, Board, Core, check_budget, get_board, get_core
from pipeline.artifacts import TOOL_VERSION, check_inputs_kept, check_replaceable, replace_folder, sha256_bytes
from pipeline.errors import BudgetError, InputError, OneLineArgumentParser, run_cli

__all__ = ["main", "build_parser", "list_targets", "write_tree", "model_path_for", "DEFAULT_MODEL", "ARTIFACTS"]

PROG = "python -m firmware_gen"
ARTIFACTS = Path("artifacts")
DEFAULT_MODEL = ARTIFACTS / "bcnn.lce.tflite"
REPORT_NAME = "firmware.json"


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m firmware_gen`` argument parser."""
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Generate Cortex-M firmware sources for a .tflite flatbuffer.",
        epilog="exit codes: 0 ok, 2 bad usage or input, 3 over the board's flash or RAM budget",
    )
    parser.add_argument("--target", help="core: " + ", ".join([*CORES, *CORE_ALIASES]) + " (default: the board's core)")
    parser.add_argument("--board", help="board whose flash/RAM budget is checked: " + ", ".join(BOARDS))
    parser.add_argument("--engine", default="auto", choices=ENGINE_CHOICES, help="auto: bnn for LCE flatbuffers, else tflm")
    parser.add_argument("--model", help=f"the .tflite flatbuffer (default: {DEFAULT_MODEL})")
    parser.add_argument(
        "--input-type",
        default="auto",
        choices=INPUT_TYPES,
        help="bnn engine: what bnn_predict takes for a float32 model input; auto = uint8 raw 8-bit values when the "
        "model only rescales its input (the zoo's pixels), else float32 (int8 models always take int8)",
    )
    parser.add_argument(
        "--optimize",
        default="speed",
        choices=OPTIMIZE_CHOICES,
        help="bnn engine: speed = each binary layer's popcount unrolled into its own carry-save tree; size = every "
        "layer calls one shared loop (less flash, more instructions; the same results)",
    )
    parser.add_argument(
        "--no-frontend",
        action="store_true",
        help="a model that carries an audio front end (converted from an audio dataset): emit the network alone, "
        "fed features, without the front end and the clip API (default: both, fed raw 16-bit samples)",
    )
    parser.add_argument("--out", help="output folder (default: artifacts/firmware/NAME-TARGET/)")
    parser.add_argument("--list-targets", action="store_true", help="print every core and board, then exit")
    return parser


def _size_text(count: int) -> str:
    if count % (1024 * 1024) == 0:
        return f"{count // (1024 * 1024)} MiB"
    if count % 1024 == 0:
        return f"{count // 1024} KiB"
    return f"{count:,} B"


def list_targets() -> str:
    """Every core (flags, QEMU machine and memory map) and every board (core, flash, RAM)."""
    lines = ["cores (--target):"]
    for core in CORES.values():
        features = ", ".join(
            name
            for name, present in (("FPU", core.has_fpu), ("DSP", core.has_dsp), ("Thumb-1 only", core.thumb1_only))
            if present
        )
        lines.append(
            f"  {core.name:<14} {' '.join(core.gcc_flags):<62} qemu {core.qemu_machine:<11} "
            f"code 0x{core.flash.origin:08x}+{_size_text(core.flash.length):<8} "
            f"ram 0x{core.ram.origin:08x}+{_size_text(core.ram.length):<8} {features}".rstrip()
        )
    for alias, name in CORE_ALIASES.items():
        lines.append(f"  {alias:<14} alias of {name}")
    lines.append("boards (--board):")
    for board in BOARDS.values():
        lines.append(
            f"  {board.name:<14} {board.core:<14} flash {_size_text(board.flash_bytes):>8}  "
            f"RAM {_size_text(board.ram_bytes):>8}  {board.description}"
        )
    return "\n".join(lines)


def _resolve_targets(args: argparse.Namespace) -> tuple[Core, Board | None]:
    board = get_board(args.board) if args.board else None
    if args.target:
        core = get_core(args.target)
    elif board is not None:
        core = get_core(board.core)
    else:
        raise InputError("--target is required (or --board, whose core is then the target); see --list-targets")
    if board is not None and board.core != core.name:
        raise InputError(f"board {board.name} has a {board.core}, not a {core.name}: drop --target or pick a matching board")
    return core, board


def _resolve_model(args: argparse.Namespace) -> Path:
    if args.model:
        path = Path(args.model)
        if not path.is_file():
            raise InputError(f"model not found: {path}")
        return path
    if DEFAULT_MODEL.is_file():
        print(f"no --model given: using {DEFAULT_MODEL}")
        return DEFAULT_MODEL
    found = sorted(str(p) for p in ARTIFACTS.rglob("*.tflite")) if ARTIFACTS.is_dir() else []
    listing = f"found: {', '.join(found)}" if found else f"no .tflite files under {ARTIFACTS}/ (run python -m convert first)"
    raise InputError(f"no --model given and {DEFAULT_MODEL} does not exist; {listing}; pass one with --model")


def write_tree(out: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative path -> bytes) as the whole content of folder ``out``, atomically.

    See :func:`pipeline.artifacts.replace_folder`: a non-empty ``out`` without ``firmware.json``
    is refused, so a mistyped ``--out`` cannot wipe an unrelated folder.

    Raises:
        InputError: ``out`` is a file, a non-empty folder that is not a firmware_gen output, or
            an engine produced a path outside ``out``.
    """
    replace_folder(out, files, marker=REPORT_NAME, owner="firmware_gen")


def model_path_for(model_path: Path, out: Path) -> str:
    """The model's path as ``firmware.json`` records it: relative to the firmware folder ``out``.

    A path as typed (``--model bcnn.lce.tflite``) only resolves from the directory the command
    ran in; relative to the folder it resolves from anywhere, and still when the folder and the
    model move together (``artifacts/`` copied elsewhere). No absolute path is recorded. On
    Windows across drives, where no relative path exists, the absolute path is the fallback.
    """
    try:
        return Path(os.path.relpath(model_path.resolve(), out.resolve())).as_posix()
    except ValueError:
        return model_path.resolve().as_posix()


def _report(
    engine: str,
    core: Core,
    board: Board | None,
    model_path: Path,
    out: Path,
    model: Any,
    output: Any,
    verdict: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "version": TOOL_VERSION,
        "engine": engine,
        "target": core.name,
        "gcc_flags": list(core.gcc_flags),
        "board": None
        if board is None
        else {"name": board.name, "core": board.core, "flash_bytes": board.flash_bytes, "ram_bytes": board.ram_bytes},
        "model": {"path": model_path_for(model_path, out), "sha256": model.sha256, "bytes": model.size},
        "report": output.report,
        "files": [
            {"path": rel, "bytes": len(output.files[rel]), "sha256": sha256_bytes(output.files[rel])}
            for rel in sorted(output.files)
        ],
        "budget": verdict,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m firmware_gen``; returns the exit status."""
    return run_cli(PROG, _main, argv)


def _main(argv: Sequence[str] | None) -> int:
    import json

    args = build_parser().parse_args(argv)
    if args.list_targets:
        print(list_targets())
        return 0
    core, board = _resolve_targets(args)
    model_path = _resolve_model(args)

    from convert.flatbuffer import read_model_bytes
    from firmware_gen.engines import choose_engine, run_engine

    data = model_path.read_bytes()
    model = read_model_bytes(data, str(model_path))
    engine = choose_engine(args.engine, model)
    name = model_path.name.removesuffix(".tflite")
    out = Path(args.out) if args.out else ARTIFACTS / "firmware" / f"{name}-{core.name}"
    check_inputs_kept([model_path], folders=[out])
    check_replaceable(out, marker=REPORT_NAME, owner="firmware_gen")
    output = run_engine(
        engine, model, core, board, input_type=args.input_type, optimize=args.optimize, data=data, frontend=not args.no_frontend
    )
    verdict = None
    if board is not None:
        verdict = check_budget(
            output.report.get("flash_bytes"),
            output.report.get("ram_bytes"),
            board.flash_bytes,
            board.ram_bytes,
            label=f"board {board.name}",
        )
    report = _report(engine, core, board, model_path, out, model, output, verdict)
    files = dict(output.files)
    if REPORT_NAME in files:
        raise InputError(f"the {engine} engine must not produce {REPORT_NAME} itself")
    files[REPORT_NAME] = (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8")
    write_tree(out, files)
    figures = ", ".join(
        f"{key} {output.report[key]:,}" for key in ("flash_bytes", "ram_bytes") if isinstance(output.report.get(key), int)
    )
    print(f"wrote {out}/ ({engine} engine, {core.name}, {len(files)} files){': ' + figures if figures else ''}")
    frontend = output.report.get("frontend")
    if isinstance(frontend, dict):
        split = ", ".join(
            f"{part} {entry['flash_bytes']:,} B flash / {entry['ram_bytes']:,} B RAM"
            for part, entry in (("front end", frontend), ("network", output.report.get("network") or {}))
            if isinstance(entry.get("flash_bytes"), int)
        )
        included = f"front end {frontend['config_sha256'][:12]} and clip API included (raw 16-bit samples in)"
        print(f"{included}{': ' + split if split else ''}")
    elif model.frontend is not None:
        print(f"front end {model.frontend.sha256()[:12]} left out (--no-frontend): the network takes features")
    if verdict is not None and board is not None:
        unchecked = [key for key in ("flash", "ram") if key not in verdict["checked"]]
        if unchecked:
            keys = " and ".join(f"{key}_bytes" for key in unchecked)
            what = " and ".join(unchecked)
            print(f"note: {what} budget of board {board.name} not checked: the {engine} engine reports no {keys}")
    if verdict is not None and verdict["ok"] is False:
        raise BudgetError(f"{verdict['message']} (firmware written to {out})")
    return 0
