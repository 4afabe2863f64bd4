"""Command line of the emulator: run an artifact on the test set, measure it, judge it.

``python -m emulator ARTIFACT`` runs a ``.h5``, a ``.tflite`` or a firmware folder over the
test examples of its dataset (MNIST by default; ``--data`` takes any IDX folder or an ``.npz``
of any example shape and class count), prints a table and writes
``NAME.BACKEND.emulate.json`` (see :mod:`emulator.report`). An artifact that does not take the
dataset's examples or return its class count is refused before anything runs. Exit status: 0 ok,
1 the artifact agrees with its reference on fewer images than ``--min-agreement``, 2 bad usage or
input, 3 over the flash or RAM budget (the JSON is written in both failing cases). A firmware
folder is built, and building runs its code: its files must be the ones its ``firmware.json``
lists (:mod:`emulator.firmware_files`) unless ``--allow-modified`` is given.

Agreement is a check, not only a figure: below ``--min-agreement`` (default
:data:`DEFAULT_MIN_AGREEMENT`, 99.9 %) the command exits 1 with the figure in one line. The
default is convert's own bar for float and LCE flatbuffers against Keras; every rung below
them (the bnn engine's C on the host and on QEMU against the LCE interpreter, TFLite-Micro
against TFLite) replays the same arithmetic and measured 100 % on the 10,000 test images, so
one disagreement in a thousand is already a defect beyond float near-ties. An int8 flatbuffer
against a float reference measures quantization, not correctness: its agreement is reported
and gated only when ``--min-agreement`` is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emulator.backends import BACKENDS
from pipeline.errors import CheckError, InputError, OneLineArgumentParser, positive_float, positive_int, run_cli

__all__ = ["DEFAULT_MIN_AGREEMENT", "main", "build_parser", "emulate", "percent", "chunk_sizes", "agreement_gate"]

_BACKEND_CHOICES = ("auto", *BACKENDS)
DEFAULT_MIN_AGREEMENT = 99.9
_QUANTIZED = frozenset({"INT8", "UINT8", "INT16"})


def percent(text: str) -> float:
    """argparse type: a number from 0 to 100 (``--min-agreement``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a percentage from 0 to 100, got {text!r}") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"must be a percentage from 0 to 100, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m emulator`` argument parser."""
    parser = OneLineArgumentParser(
        prog="python -m emulator",
        description=(
            "Run an artifact (.h5, .tflite or firmware folder) on a dataset's test examples (MNIST, or "
            "--data): accuracy, agreement with its reference, flash and RAM, judged against a budget."
        ),
        epilog=(
            "auto backend: .h5 -> keras; flatbuffer with LCE ops -> lce; other flatbuffers -> tflite "
            "(plus a TFLite-Micro run); firmware folder -> host, or qemu with --target (a tflm firmware: qemu only,\n"
            "built against real TFLite-Micro, --tflm-kernels).\n"
            f"exit status: 0 ok, 1 agreement below --min-agreement (default {DEFAULT_MIN_AGREEMENT:g} %), "
            "2 bad usage or input, 3 over budget (the JSON is still written)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("artifact", help="a .h5, a .tflite, or a firmware folder (holding firmware.json)")
    parser.add_argument("--backend", default="auto", choices=_BACKEND_CHOICES, help="what runs the artifact (default auto)")
    parser.add_argument("--target", help="Cortex-M core for the qemu backend (cortex-m0 ... cortex-m55; cortex-m = m4)")
    parser.add_argument("--board", help="board whose flash and RAM are the budget (e.g. stm32f030f4, nrf52840)")
    parser.add_argument("--limit", type=positive_int, help="use the first N test examples (default all)")
    parser.add_argument(
        "--data",
        help="MNIST IDX folder; an .npz with x_test, y_test of any shape; an image folder (a sub-folder per class) "
        "or a .tar/.tar.gz/.tgz of one; or a .json dataset spec (images, or WAV files through the audio front end: "
        "datasets/fsdd.json) (default: $MNIST_DIR, keras cache)",
    )
    parser.add_argument("--reference", help="artifact to measure agreement against (default: see README)")
    parser.add_argument("--flash-budget", help="flash budget, bytes or with a unit: 16KiB, 1MiB, 64KB")
    parser.add_argument("--ram-budget", help="RAM budget, bytes or with a unit: 4KiB, 256KB")
    parser.add_argument("--json", help="report path (default ARTIFACT_STEM.BACKEND.emulate.json beside the artifact)")
    parser.add_argument("--layers", action="store_true", help="print the per-layer table (always recorded in the JSON)")
    parser.add_argument("--timeout", type=positive_float, help="seconds before a hung qemu guest is killed")
    parser.add_argument(
        "--min-agreement",
        type=percent,
        metavar="PCT",
        help=f"exit 1 when agreement with the reference is below PCT %% (default {DEFAULT_MIN_AGREEMENT:g}; "
        "int8 against a float reference is only gated when given)",
    )
    parser.add_argument(
        "--trust-model",
        action="store_true",
        help="load .h5 models whose layers carry Python code (Lambda): RUNS THAT CODE; only for models you trust",
    )
    parser.add_argument(
        "--allow-modified",
        action="store_true",
        help="build a firmware folder even when its files are not the ones its firmware.json lists (sha256s): "
        "building a folder RUNS ITS CODE (the host backend's C, the qemu backends' Makefile); only for folders you trust",
    )
    parser.add_argument(
        "--chunks",
        type=chunk_sizes,
        default="128",
        metavar="N[,N...]",
        help="a firmware with the audio front end: samples per push when streaming each raw clip, cycled "
        "(each up to the clip harness's buffer of 256; default 128)",
    )
    parser.add_argument(
        "--tflm-kernels",
        default="cmsis_nn",
        choices=("reference", "cmsis_nn"),
        help="TFLite-Micro kernel set a tflm firmware is built with on qemu (default cmsis_nn)",
    )
    return parser


def chunk_sizes(text: str) -> tuple[int, ...]:
    """argparse type of ``--chunks``: ``"128"`` or ``"1,7,200"`` (1..CLIP_CHUNK_MAX samples each, at most 64)."""
    from firmware_gen.baremetal.protocol import CLIP_CHUNK_MAX

    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sample counts such as 128 or 1,7,200, got {text!r}") from None
    if not 1 <= len(sizes) <= 64 or any(not 1 <= size <= CLIP_CHUNK_MAX for size in sizes):
        raise argparse.ArgumentTypeError(f"expected 1 to 64 sample counts of 1..{CLIP_CHUNK_MAX}, got {text!r}")
    return sizes


def _budgets(args: argparse.Namespace) -> tuple[int | None, int | None, str, str | None]:
    """(flash budget, RAM budget, label, core of the board) from --board and the explicit flags."""
    from firmware_gen.targets import get_board, get_core, parse_size

    flash = ram = None
    label = ""
    board_core = None
    if args.board:
        board = get_board(args.board)
        flash, ram, label, board_core = board.flash_bytes, board.ram_bytes, f"board {board.name}", board.core
    if args.flash_budget is not None:
        flash = parse_size(args.flash_budget)
    if args.ram_budget is not None:
        ram = parse_size(args.ram_budget)
    core = None
    if args.target:
        core = get_core(args.target).name
        if board_core is not None and board_core != core:
            raise InputError(f"--board {args.board} has a {board_core}, not the --target {core}")
    return flash, ram, label, core or board_core


def _flatbuffer_model(artifact: Any) -> Any | None:
    """The parsed flatbuffer of the artifact (the recorded model for firmware), or None."""
    from convert.flatbuffer import read_model
    from emulator.reference import firmware_model_path

    if artifact.model is not None:
        return artifact.model
    if artifact.kind == "firmware":
        path = firmware_model_path(artifact)
        if path is not None and path.is_file():
            try:
                return read_model(path)
            except InputError:
                return None
    return None


def _tflm_cross_check(artifact: Any, images: Any, labels: Any, tflite_predictions: Any) -> dict[str, Any]:
    """Run the flatbuffer in TFLite-Micro too (in a child process) and compare with the TFLite interpreter.

    A model TFLite ran and TFLite-Micro cannot (a float Larq model: TFLite-Micro has no SIGN)
    keeps TFLite's figures, with a note naming the missing ops instead of the comparison.
    """
    import numpy as np

    from firmware_gen.tflm import TFLM_OPS
    from pipeline.isolation import run_isolated

    try:
        scores = run_isolated("tflm", artifact.data, images, str(artifact.path), progress="tflm")
    except InputError as err:
        missing = [op for op in artifact.model.builtin_ops if op not in TFLM_OPS] if artifact.model is not None else []
        reason = f"TFLite-Micro has no kernel for {', '.join(missing)}" if missing else str(err)
        return {"skipped": True, "note": f"not run on TFLite-Micro: {reason}; the figures are TFLite's"}
    predictions = np.argmax(scores, axis=1)
    same = int(np.sum(predictions == tflite_predictions))
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "agreeing_with_tflite": same,
        "agreement_with_tflite": same / len(labels),
    }


def _quantized(model: Any) -> bool:
    """True when a parsed flatbuffer computes on integers (an int8/uint8/int16 activation)."""
    return any(not t.is_constant and t.dtype in _QUANTIZED for t in model.tensors)


def agreement_gate(min_agreement: float | None, artifact: Any, reference: Any) -> dict[str, Any] | None:
    """The bar the artifact's agreement must reach: ``{"min_agreement": PCT or None, "note": ...}``.

    ``None`` without a reference. With ``min_agreement`` given, that bar. Otherwise
    :data:`DEFAULT_MIN_AGREEMENT`, except for an integer flatbuffer against a float reference
    (quantization error, not a defect): no bar, and a note saying how to set one.
    """
    if reference is None:
        return None
    if min_agreement is not None:
        return {"min_agreement": min_agreement, "note": None}
    from convert.flatbuffer import read_model

    artifact_int = artifact.model is not None and _quantized(artifact.model)
    reference_int = reference.backend != "keras" and _quantized(read_model(reference.path))
    if artifact_int and not reference_int:
        note = "an integer model against a float reference measures quantization: not gated (pass --min-agreement PCT)"
        return {"min_agreement": None, "note": note}
    return {"min_agreement": DEFAULT_MIN_AGREEMENT, "note": None}


def _check_target(artifact: Any, backend: str, core: str | None) -> None:
    """A firmware runs on QEMU only as the core it was generated for (else one line, not a fault dump)."""
    if backend != "qemu" or core is None:
        return
    built = artifact.firmware.get("target")
    if isinstance(built, str) and built != core:
        raise InputError(
            f"{artifact.path} was generated for {built}, not {core}: run it with --target {built} "
            f"or generate it for {core} (python -m firmware_gen --target {core})"
        )


def _target_figures(result: Any, artifact: Any, board_core: str | None) -> Any:
    """The host backend's flash and RAM: the target's, from ``firmware.json``, never the host's x86-64 objects.

    The x86-64 figures stay in ``extra`` (``host_flash_bytes``, ``host_ram_bytes``). Without
    target figures (generated without arm-none-eabi-gcc) or for a board with another core,
    flash and RAM are ``None`` and ``extra["figures_note"]`` says why no budget can be judged.
    """
    manifest = artifact.firmware
    built = manifest.get("target")
    figures = manifest.get("report") if isinstance(manifest.get("report"), dict) else {}
    result.extra["host_flash_bytes"], result.extra["host_ram_bytes"] = result.flash_bytes, result.ram_bytes
    flash, ram = figures.get("flash_bytes"), figures.get("ram_bytes")
    note = None
    if board_core is not None and built != board_core:
        note = f"the firmware was generated for {built}, the budget is for a {board_core}: its flash and RAM cannot be judged"
    elif not (isinstance(flash, int) and isinstance(ram, int)):
        note = "firmware.json has no target flash and RAM (generated without arm-none-eabi-gcc): cannot judge a budget"
    if note is not None:
        result.flash_bytes = result.ram_bytes = result.ram_source = None
        result.extra["figures_note"] = note
    else:
        result.flash_bytes, result.ram_bytes = int(flash), int(ram)
        result.ram_source = f"elf ({built}, firmware.json)"
    return result


def emulate(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """Run one emulation as parsed from the command line; write the JSON; return it and its path.

    Raises:
        InputError: bad input, an artifact the backend cannot run, a missing dataset.
    """
    from emulator.backends import choose_backend, load_artifact

    flash_budget, ram_budget, label, core = _budgets(args)
    artifact = load_artifact(args.artifact)
    backend = choose_backend(artifact, args.backend, core if args.target else None)
    if args.backend == "auto" and artifact.kind == "firmware" and core is not None and args.target is None:
        backend = "host"
    if backend == "qemu" and core is None:
        raise InputError("the qemu backend needs --target CORE (or a --board, whose core is used)")
    _check_target(artifact, backend, core)
    if artifact.kind == "firmware":  # before the data loads; the backend checks again right before it builds
        from emulator.firmware_files import check_firmware_files

        check_firmware_files(artifact.path, allow_modified=bool(getattr(args, "allow_modified", False)))

    from emulator.backends import check_fits, is_tflm_firmware, run_backend
    from emulator.reference import default_reference_path, run_reference
    from emulator.report import build_report, default_json_path
    from firmware_gen.targets import check_budget
    from pipeline.artifacts import write_json
    from pipeline.data import load_dataset

    dataset = load_dataset(args.data)
    signature = check_fits(artifact, dataset.example_shape, dataset.dtype, dataset.num_classes)
    count = min(args.limit or len(dataset.y_test), len(dataset.y_test))
    images, labels = dataset.x_test[:count], dataset.y_test[:count]
    from emulator.audio import feed, summary

    fed, clips, frontend = feed(artifact, dataset, count)
    chunks = tuple(getattr(args, "chunks", None) or chunk_sizes("128"))
    reference_path = Path(args.reference) if args.reference else default_reference_path(artifact)
    trust = bool(getattr(args, "trust_model", False))
    if reference_path is not None and reference_path.suffix == ".tflite" and reference_path.is_file():
        check_fits(load_artifact(reference_path), dataset.example_shape, dataset.dtype, dataset.num_classes)
    result = run_backend(
        backend,
        artifact,
        images,
        core=core,
        timeout=args.timeout,
        num_classes=dataset.num_classes,
        trust_model=trust,
        kernels=getattr(args, "tflm_kernels", "cmsis_nn"),
        clips=clips,
        chunks=chunks,
        allow_modified=bool(getattr(args, "allow_modified", False)),
    )
    audio = summary(result, images, frontend, chunks, artifact.firmware) if clips is not None and frontend else None
    if backend == "host":
        result = _target_figures(result, artifact, core)
    reference = None
    if reference_path is not None:
        tflm_reference = is_tflm_firmware(artifact) and not args.reference
        reference = run_reference(reference_path, images, dataset.num_classes, trust_model=trust, tflm=tflm_reference)
    gate = agreement_gate(getattr(args, "min_agreement", None), artifact, reference)
    tflm = None
    if args.backend == "auto" and backend == "tflite":
        tflm = _tflm_cross_check(artifact, images, labels, result.predictions)
    from emulator.layers import layer_table
    from emulator.planner import plan_json, plan_memory

    model = _flatbuffer_model(artifact)
    rows = layer_table(model) if model is not None else None
    plan = plan_json(plan_memory(model)) if model is not None else None
    verdict = check_budget(result.flash_bytes, result.ram_bytes, flash_budget, ram_budget, label=label)
    verdict["label"] = label or None
    report = build_report(
        artifact=artifact,
        backend=backend,
        result=result,
        labels=labels,
        reference=reference,
        verdict=verdict,
        data={"source": dataset.source, "sha256": dataset.sha256, **dataset.describe()},
        signature=signature.to_json() if signature is not None else None,
        tflm=tflm,
        layers=[row.to_json() for row in rows] if rows is not None else None,
        memory_plan=plan,
    )
    if audio is not None:
        report.update(audio)
    elif frontend is not None:
        report["fed"], report["frontend"] = fed, {"config": frontend.to_json(), "config_sha256": frontend.sha256()}
    if gate is not None:
        bar = gate["min_agreement"]
        report["agreement_gate"] = {**gate, "passed": None if bar is None else 100.0 * report["agreement"] >= bar}
    path = Path(args.json) if args.json else default_json_path(artifact.path, artifact.kind, backend)
    write_json(path, report)
    return report, path


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from emulator.audio import check_features
    from emulator.report import format_report
    from firmware_gen.targets import raise_if_over

    report, path = emulate(args)
    print(format_report(report))
    if args.layers:
        from emulator.layers import LayerRow, format_layers

        if "layers" in report and report["layers"] is not None:
            rows = [LayerRow(**{**row, "output_shape": tuple(row["output_shape"])}) for row in report["layers"]]
            print(format_layers(rows))
        else:
            print("layers: no flatbuffer to tabulate for this artifact (run python -m convert first)")
    figures_note = report.get("extra", {}).get("figures_note")
    for key, title in (("flash", "flash"), ("ram", "RAM")):
        entry = report["budget"][key]
        if entry["budget"] is not None and entry["need"] is None:
            why = figures_note or f"the {report['backend']} backend does not measure {title}"
            print(f"note: {why}; the {title} budget was not checked")
    gate = report.get("agreement_gate")
    if gate is not None and gate.get("note"):
        print(f"note: agreement {gate['note']}")
    print(f"wrote {path}")
    if gate is not None and gate["passed"] is False:
        raise CheckError(
            f"agreement {100 * report['agreement']:.2f}% ({report['agreeing']:,} of {report['images']:,} images) "
            f"with {report['reference']['path']} is below --min-agreement {gate['min_agreement']:g}% (report: {path})"
        )
    check_features(report, path)
    raise_if_over(report["budget"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m emulator``; returns the exit status."""
    return run_cli("python -m emulator", _main, argv)
