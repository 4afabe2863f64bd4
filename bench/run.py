"""``python -m bench``: every model and engine side by side, measured in one run.

Trains or reuses ``bcnn``, ``cnn`` and ``mlp`` (:mod:`bench.prepare`; each with its default
recipe, ``fast`` for the bcnn, unless ``--train-recipe`` names another), converts them, then on the
same test images (all 10,000 by default) runs Keras, TFLite float and int8 (XNNPACK), the LCE
interpreter, TFLite-Micro, the ``bnn`` engine's C on the host and its firmware on QEMU's
Cortex-M4 (:mod:`bench.measure`); generates the ``bnn`` firmware for every core and counts
instructions per inference under QEMU; runs the tflm engine's firmware with real TFLite-Micro
(reference and CMSIS-NN kernels) on QEMU's Cortex-M4, M7 and M0 against the TFLite-Micro Python
interpreter (:mod:`bench.oncore`); and derives latency ratios, the acceptance figures (with the
bnn engine against TFLite-Micro + CMSIS-NN on the Cortex-M4) and the board table
(:mod:`bench.summary`). Writes, each atomically and only at the end:

* ``OUT/results.json``: everything, machine-readable (commit, CPU, versions, date);
* ``OUT/RESULTS.md``: the same figures as markdown tables (:mod:`bench.tables`);
* ``OUT/accuracy_vs_flash.png``: accuracy against flash bytes (:mod:`bench.plot`).

Exit codes: 0 written, 1 a stage failed (a build, a conversion check, QEMU), 2 bad usage or
input. Acceptance figures that miss their bar are reported, not turned into a failure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.oncore import TFLM_CORES, TFLM_KERNELS
from pipeline.artifacts import TOOL_VERSION, write_bytes, write_json, write_text
from pipeline.errors import InputError, OneLineArgumentParser, positive_int, run_cli

__all__ = [
    "PROG",
    "DEFAULT_CORE_IMAGES",
    "DEFAULT_TFLM_IMAGES",
    "build_parser",
    "parse_cores",
    "parse_tflm_cores",
    "parse_kernel_sets",
    "main",
]

PROG = "python -m bench"
DEFAULT_CORE_IMAGES = 200
DEFAULT_TFLM_IMAGES = 1000
_REPO = Path(__file__).resolve().parent.parent


def parse_tflm_cores(text: str) -> list[str]:
    """Like :func:`parse_cores`, and ``none`` (no TFLite-Micro firmware run) gives an empty list."""
    return [] if text.strip().lower() == "none" else parse_cores(text)


def parse_kernel_sets(text: str) -> list[str]:
    """``"reference,cmsis_nn"`` -> TFLite-Micro kernel sets, in :data:`bench.oncore.TFLM_KERNELS` order.

    Raises:
        argparse.ArgumentTypeError: empty or unknown.
    """
    names = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(names - set(TFLM_KERNELS))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected kernel sets from {', '.join(TFLM_KERNELS)}, got {text!r}")
    return [name for name in TFLM_KERNELS if name in names]


def parse_cores(text: str) -> list[str]:
    """``"cortex-m4,cortex-m0"`` -> canonical core names in registry order, no duplicates.

    Raises:
        argparse.ArgumentTypeError: empty, or an unknown core (the message lists the valid ones).
    """
    from firmware_gen.targets import CORES, get_core

    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of cores, got {text!r}")
    try:
        wanted = {get_core(name).name for name in names}
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return [name for name in CORES if name in wanted]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m bench`` argument parser."""
    from bench.prepare import MODELS
    from train.recipes import default_recipe, recipe_names

    defaults = ", ".join(f"{name}: {default_recipe(name)}" for name in MODELS)
    parser = OneLineArgumentParser(
        prog=PROG,
        description=(
            "Benchmark every model (bcnn, cnn, mlp) on every engine in one run: accuracy, agreement with Keras, "
            "host latency, flash and RAM, instructions per inference on every Cortex-M core under QEMU, board fit."
        ),
        epilog="Writes OUT/results.json, OUT/RESULTS.md and OUT/accuracy_vs_flash.png. Exit 1: a stage failed; 2: bad input.",
    )
    parser.add_argument("--limit", type=positive_int, help="use the first N test images (default: the whole test set)")
    parser.add_argument("--out", default="bench", help="folder for the three result files (default: bench/)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="take artifacts/NAME.h5 as it is, never train (default: reuse only a full training on the same data)",
    )
    parser.add_argument(
        "--train-recipe",
        choices=sorted(recipe_names()),
        metavar="RECIPE",
        help="train every model this run trains with RECIPE, and reuse only models trained with it "
        f"(default: each model's own, {defaults}; python -m train --help lists them)",
    )
    parser.add_argument("--data", help="MNIST folder or mnist.npz (default: $MNIST_DIR, keras cache)")
    parser.add_argument("--artifacts", default="artifacts", help="models and flatbuffers folder (default: artifacts/)")
    parser.add_argument("--cores", type=parse_cores, help="cores for the instruction counts (default: every core)")
    parser.add_argument(
        "--core-images",
        type=positive_int,
        default=DEFAULT_CORE_IMAGES,
        help=f"images per core for the instruction counts (default {DEFAULT_CORE_IMAGES})",
    )
    parser.add_argument(
        "--qemu-images", type=positive_int, help="images the Cortex-M4 firmware runs for accuracy (default: all of them)"
    )
    parser.add_argument(
        "--tflm-cores",
        type=parse_tflm_cores,
        default=list(TFLM_CORES),
        help="cores for the TFLite-Micro firmware on QEMU (default " + ",".join(TFLM_CORES) + "; none: skip)",
    )
    parser.add_argument(
        "--tflm-kernels",
        type=parse_kernel_sets,
        default=list(TFLM_KERNELS),
        help="TFLite-Micro kernel sets (default " + ",".join(TFLM_KERNELS) + ")",
    )
    parser.add_argument(
        "--jobs", type=positive_int, help="TFLite-Micro firmware runs side by side on QEMU (default: the CPU count)"
    )
    parser.add_argument(
        "--tflm-images",
        type=positive_int,
        default=DEFAULT_TFLM_IMAGES,
        help=f"images each TFLite-Micro firmware runs on QEMU, the same first ones the bnn firmware's accuracy is taken on "
        f"for the comparison (default {DEFAULT_TFLM_IMAGES:,}; fewer than 1,000: no equal-accuracy verdict)",
    )
    return parser


class _Clock:
    """Elapsed-time prefix for progress lines and per-stage seconds."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.stages: dict[str, float] = {}
        self._mark = self.start

    def log(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.start:7.1f} s] {text}", flush=True)

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = round(now - self._mark, 2)
        self._mark = now

    def total(self) -> float:
        return time.perf_counter() - self.start


def _notes(results: dict[str, Any]) -> list[str]:
    """Observations computed from the results (no number typed in)."""
    notes = []
    machine, images = results["machine"], results["images"]
    loads = [load[0] for load in results["load_average"].values() if load]
    cpus = machine.get("cpu_count") or 0
    if loads and cpus and max(loads) >= 0.5 * cpus:
        notes.append(
            f"The machine was shared (1-minute load average up to {max(loads)} on {cpus} CPUs at the start or the end): "
            "absolute latencies are noisy; compare the ratios measured within this run."
        )
    from train.recipes import default_recipe

    for name, model in results["models"].items():
        if model.get("recipe") != default_recipe(name):
            notes.append(
                f"{name} was trained with the {model.get('recipe')} recipe, not its default {default_recipe(name)}: "
                "its figures are not those of the model python -m train gives."
            )
    if results["qemu_images"] < images:
        notes.append(f"The Cortex-M4 firmware ran the first {results['qemu_images']:,} of the {images:,} images.")
    speed = results["acceptance"]["c_vs_lce"]
    if speed["ok"] is False:
        notes.append(
            f"The generated C is {speed['ratio']:.1f}x faster than the LCE interpreter per image, below the "
            f"{speed['bar']:g}x bar (see the README for what limits it)."
        )
    for row in results["runs"]:
        if row["accuracy"] is None and (row["note"] or "").startswith("cannot run"):
            notes.append(f"{row['model']} / {row['label']}: {row['note']}")
    return notes


def _bench(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    clock = _Clock()
    from firmware_gen.targets import BOARDS, CORES
    from pipeline.data import load_dataset, portable_source

    data = load_dataset(args.data)
    artifacts, out = Path(args.artifacts), Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if args.reuse and not artifacts.is_dir():
        raise InputError(f"--reuse: {artifacts} is not a folder with trained models")
    count = min(args.limit or len(data.x_test), len(data.x_test))
    images, labels = data.x_test[:count], data.y_test[:count]
    cores = args.cores or list(CORES)
    qemu_images = min(args.qemu_images or count, count)
    core_images = min(args.core_images, count)
    tflm_images = min(args.tflm_images, count)

    from bench.machine import load_average, machine_info
    from bench.measure import M4, bnn_rows, core_run, generate_firmware, interpreter_rows, keras_row
    from bench.prepare import MODELS, prepare_model
    from bench.summary import acceptance, add_ratios, board_rows, deployables

    machine = machine_info(_REPO)
    load_start = machine["load_average"]
    source = portable_source(data.source, _REPO)
    clock.log(f"{count:,} test images from {source}; {machine['cpu']}, load average {load_start}")
    prepared = {
        name: prepare_model(
            name,
            artifacts,
            data_sha256=data.sha256,
            data_dir=args.data,
            reuse=args.reuse,
            check_images=min(1000, count),
            recipe=args.train_recipe,
            log=clock.log,
        )
        for name in MODELS
    }
    clock.stage("prepare (train/convert or reuse)")

    rows: list[dict[str, Any]] = []
    cores_out: list[dict[str, Any]] = []
    keras: dict[str, Any] = {}
    bnn_qemu: Any = None
    for name, prep in prepared.items():
        row, reference = keras_row(prep, images, labels, classes=data.num_classes)
        keras[name] = reference
        clock.log(f"{name} keras: accuracy {100 * row['accuracy']:.2f}%")
        rows.append(row)
        rows.extend(interpreter_rows(prep, images, labels, reference, log=clock.log))
        clock.stage(f"{name}: keras and interpreters")
        if not prep.convert_report.get("binary_layers"):
            continue
        with tempfile.TemporaryDirectory(prefix="bench-firmware-") as tmp:
            work = Path(tmp)
            lce = prep.flatbuffers["lce"]
            generate_firmware(lce, M4, work / M4)
            bnn, host_predictions, qemu_predictions = bnn_rows(
                prep, work / M4, images, labels, reference, qemu_images, log=clock.log
            )
            if name == "bcnn":
                bnn_qemu = qemu_predictions
            rows.extend(bnn)
            clock.stage(f"{name}: bnn engine on the host and on QEMU {M4}")
            for core in cores:
                folder = work / core
                if core != M4:
                    generate_firmware(lce, core, folder)
                entry = core_run(folder, core, images[:core_images], labels, host_predictions)
                entry["model"] = name
                cores_out.append(entry)
                clock.log(
                    f"{name} {core}: {entry['instructions_per_inference']:,.0f} instructions/inference, "
                    f"flash {entry['firmware_flash_bytes']:,} B, RAM {entry['ram_bytes']:,} B"
                )
            clock.stage(f"{name}: bnn firmware on {len(cores)} cores")

    oncore: list[dict[str, Any]] = []
    libraries: list[dict[str, Any]] = []
    if args.tflm_cores:
        from bench.oncore import m4_rows, oncore_entries

        with tempfile.TemporaryDirectory(prefix="bench-tflm-") as tmp:
            oncore, libraries = oncore_entries(
                prepared,
                images[:tflm_images],
                labels[:tflm_images],
                keras,
                Path(tmp),
                cores=tuple(args.tflm_cores),
                kernel_sets=tuple(args.tflm_kernels),
                jobs=args.jobs,
                log=clock.log,
            )
        rows.extend(m4_rows(oncore))
        clock.stage(f"TFLite-Micro firmware on {len(args.tflm_cores)} cores ({', '.join(args.tflm_kernels)})")
    bnn_accuracy = None
    if bnn_qemu is not None and len(bnn_qemu) >= tflm_images:
        bnn_accuracy = float(np.mean(bnn_qemu[:tflm_images] == labels[:tflm_images]))

    c_latency = add_ratios(rows)
    items = deployables(rows, [entry for entry in cores_out if entry["model"] == "bcnn"], oncore)
    boards = board_rows(items, BOARDS.values())
    results: dict[str, Any] = {
        "version": TOOL_VERSION,
        "command": ["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)],
        "machine": machine,
        "load_average": {"start": load_start, "end": load_average()},
        "data": {"source": source, "sha256": data.sha256, **data.describe()},
        "images": count,
        "qemu_images": qemu_images,
        "core_images": core_images,
        "models": {name: prep.summary() for name, prep in prepared.items()},
        "runs": rows,
        "c_latency_us": c_latency,
        "cores": cores_out,
        "tflm_images": tflm_images if args.tflm_cores else None,
        "oncore": oncore,
        "tflm_libraries": libraries,
        "deployables": items,
        "boards": boards,
    }
    clock.stage("summaries")
    results["seconds"] = {**clock.stages, "total": round(clock.total(), 2)}
    recipes = {name: prep.recipe for name, prep in prepared.items()}
    results["acceptance"] = acceptance(rows, results["seconds"]["total"], oncore, bnn_accuracy, recipes)
    results["notes"] = _notes(results)
    _write(out, results)
    clock.log(f"wrote {out}/results.json, {out}/RESULTS.md, {out}/accuracy_vs_flash.png")
    versus = results["acceptance"]["bnn_vs_tflm"]
    if versus["images"]:
        from bench.tables import ratio_line

        clock.log(ratio_line(versus))
    return 0


def _write(out: Path, results: dict[str, Any]) -> None:
    from bench.plot import accuracy_vs_flash_png
    from bench.tables import render_markdown

    png = accuracy_vs_flash_png(results["runs"], f"MNIST, {results['images']:,} test images: accuracy vs bytes in flash")
    markdown = render_markdown(results)
    write_bytes(out / "accuracy_vs_flash.png", png)
    write_text(out / "RESULTS.md", markdown)
    write_json(out / "results.json", results)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench``; returns the exit status."""
    return run_cli(PROG, _bench, argv)
