"""Command line of ``python -m bench.side_by_side``: parse, check, run every (row, core), write the three files.

Everything that can be refused is refused before the first build (exit 2, one line): the rows
and their references, the cores and boards, the output folder, the dataset, every flatbuffer
against the dataset's examples and classes, every Keras reference (loaded and run on the same
images). Then, in order: the firmware of every (row, core) (``python -m firmware_gen``), the
TFLite-Micro libraries the tflm rows need, and the QEMU runs (``python -m emulator``), ``--jobs``
of them side by side; the results are written at the end, atomically, or not at all (exit 1
when a stage failed, naming the row, the core and the stage's own error line).

On an audio dataset (``--data`` a spec of WAV files: the dataset has a front end and raw clips)
every flatbuffer must carry that front end (``python -m convert --data``), so every firmware
takes raw samples: the emulator feeds it the raw test clips, the Keras references run on the
dataset's Python features (``x_test``), and each entry has the instructions per clip split into
front end and network and whether the chip's features equal Python's. A run whose features
differ is written like the others, then the command exits 1 naming it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from bench.side_by_side.spec import Row, check_boards, check_rows, parse_boards, parse_reference, parse_row, run_slug
from pipeline.errors import CheckError, InputError, OneLineArgumentParser, ToolError, positive_float, positive_int, run_cli

__all__ = ["PROG", "DEFAULT_CORES", "DEFAULT_OUT", "OUTPUT_FILES", "FIRMWARE_FOLDER", "build_parser", "check_out", "main"]

PROG = "python -m bench.side_by_side"
DEFAULT_CORES = "cortex-m4,cortex-m7"
DEFAULT_OUT = "bench/side_by_side"
OUTPUT_FILES = ("side_by_side.json", "SIDE_BY_SIDE.md", "side_by_side.png")
FIRMWARE_FOLDER = "firmware"
_REPO = Path(__file__).resolve().parent.parent.parent


def _cores(text: str) -> list[str]:
    from bench.run import parse_cores

    return parse_cores(text)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m bench.side_by_side`` argument parser."""
    parser = OneLineArgumentParser(
        prog=PROG,
        description=(
            "Put flatbuffers side by side on emulated Cortex-M cores, on the same test examples: each row is a flatbuffer "
            "deployed by an engine (bnn, or tflm with a TFLite-Micro kernel set), generated with python -m firmware_gen and "
            "run on QEMU with python -m emulator. Per row and core: accuracy, agreement with the reference interpreter (and "
            "Keras), instructions per inference (on an audio dataset: per clip, front end and network, from raw samples, "
            "with the chip's features checked against Python's), flash, RAM, board fits, ratios against a baseline row."
        ),
        epilog=(
            "Writes OUT/side_by_side.json, OUT/SIDE_BY_SIDE.md, OUT/side_by_side.png and every firmware with its emulator "
            "report under OUT/firmware/. Exit 1: a stage failed, or a firmware's features differ from Python's (audio); "
            "2: bad usage or input."
        ),
    )
    parser.add_argument(
        "--row",
        action="append",
        type=parse_row,
        required=True,
        metavar="LABEL=FLATBUFFER:ENGINE[:KERNELS]",
        help="a row (repeat): ENGINE bnn or tflm; KERNELS cmsis_nn (default) or reference, tflm only",
    )
    parser.add_argument(
        "--reference",
        action="append",
        type=parse_reference,
        default=[],
        metavar="LABEL=MODEL.h5",
        help="a Keras model for the row LABEL: its firmware's agreement with Keras is reported too (repeat)",
    )
    parser.add_argument("--data", help="the dataset, as every stage takes it (default: $MNIST_DIR, keras cache)")
    parser.add_argument("--cores", type=_cores, default=_cores(DEFAULT_CORES), help=f"cores to run on (default {DEFAULT_CORES})")
    parser.add_argument(
        "--boards", type=parse_boards, help="boards to judge each firmware against (default: every board of the cores run)"
    )
    parser.add_argument("--images", type=positive_int, help="the first N test examples (default: the whole test set)")
    parser.add_argument("--baseline", metavar="LABEL", help="the row the others are compared with (ratios per core)")
    parser.add_argument("--jobs", type=positive_int, help="QEMU runs side by side (default: the CPU count)")
    parser.add_argument("--timeout", type=positive_float, help="seconds before a QEMU run is killed (default: 300 + 5 per image)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT}/)")
    return parser


def check_out(out: Path) -> None:
    """Refuse an output folder that holds anything but a side-by-side run's files.

    Raises:
        InputError: ``out`` is a file, or a folder with other entries than :data:`OUTPUT_FILES`
            and :data:`FIRMWARE_FOLDER` (so a mistyped ``--out`` never mixes results into an
            unrelated folder).
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir():
        others = sorted(entry.name for entry in out.iterdir() if entry.name not in (*OUTPUT_FILES, FIRMWARE_FOLDER))
        if others:
            raise InputError(
                f"--out {out} holds other files than a side-by-side run's ({', '.join(others[:3])}): choose another folder"
            )


class _Progress:
    """A line per finished run (and a bar on a terminal), prefixed with the elapsed seconds."""

    def __init__(self) -> None:
        self.start = self._mark = time.perf_counter()
        self.bar: Any = None
        self.stages: dict[str, float] = {}

    def stage(self, name: str) -> None:
        """Record the seconds since the previous stage ended as stage ``name``."""
        now = time.perf_counter()
        self.stages[name] = round(now - self._mark, 1)
        self._mark = now

    def log(self, text: str) -> None:
        line = f"[{time.perf_counter() - self.start:8.1f} s] {text}"
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def runs(self, total: int) -> None:
        """Show a bar over ``total`` runs when stdout is a terminal."""
        if sys.stdout.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", desc="QEMU runs", file=sys.stdout, leave=False)

    def done(self, text: str) -> None:
        self.log(text)
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def _check_flatbuffers(rows: list[Row], dataset: Any) -> None:
    """Every row's flatbuffer is a flatbuffer that takes the dataset's examples and returns its classes.

    On an audio dataset each must carry the dataset's front end (its firmware then takes raw
    samples); a flatbuffer that carries a front end needs a dataset with raw clips.
    """
    from emulator.backends import check_fits, load_artifact
    from pipeline.frontend import FrontendConfig

    theirs = FrontendConfig.from_json(dataset.frontend) if dataset.frontend is not None else None
    for row in rows:
        artifact = load_artifact(row.flatbuffer)
        if artifact.kind != "flatbuffer" or artifact.model is None:
            raise InputError(f"row {row.label!r}: {row.flatbuffer} is not a .tflite flatbuffer")
        check_fits(artifact, dataset.example_shape, dataset.dtype, dataset.num_classes)
        mine = artifact.model.frontend
        if theirs is not None and mine is None:
            raise InputError(
                f"row {row.label!r}: {row.flatbuffer} carries no audio front end, but the dataset is audio: convert its "
                f"model with the dataset (python -m convert MODEL.h5 --data {dataset.source}) so its firmware takes raw samples"
            )
        if mine is not None and (theirs is None or dataset.raw_test is None):
            raise InputError(
                f"row {row.label!r}: {row.flatbuffer} carries an audio front end ({mine.sha256()[:12]}): its firmware takes "
                "raw samples, and the dataset has no raw clips; pass the audio dataset it was converted with (--data SPEC.json)"
            )
        if mine is not None and theirs is not None and mine.sha256() != theirs.sha256():
            raise InputError(
                f"row {row.label!r}: the dataset's front end ({theirs.sha256()[:12]}) is not the one {row.flatbuffer} carries "
                f"({mine.sha256()[:12]}): its features are other numbers; run it on the data it was converted with"
            )


def _keras_references(
    rows: list[Row], images: Any, labels: Any, num_classes: int, progress: _Progress
) -> dict[str, dict[str, Any]]:
    """Each row's Keras reference run on the images (the emulator's own reference runner).

    On an audio dataset the images are the dataset's Python features (``x_test``): the Keras
    model's input, which the firmware's front end makes on the chip from the raw clips.

    Returns:
        label -> ``{"path", "sha256", "accuracy", "input_range", "predictions"}``.

    Raises:
        InputError: a reference that is not a Keras model, carries code, or does not take the
            examples or return the dataset's classes.
    """
    import numpy as np

    from emulator.backends import load_artifact
    from emulator.reference import run_reference
    from pipeline.artifacts import sha256_file

    references: dict[str, dict[str, Any]] = {}
    runs: dict[Path, dict[str, Any]] = {}  # a model given to several rows runs once
    for row in rows:
        if row.reference is None:
            continue
        if load_artifact(row.reference).kind != "keras":
            raise InputError(f"--reference {row.label!r}: {row.reference} is not a Keras .h5 model")
        key = row.reference.resolve()
        if key not in runs:
            reference = run_reference(row.reference, images, num_classes)
            runs[key] = {
                "sha256": sha256_file(row.reference),
                "accuracy": float(np.mean(reference.predictions == labels)),
                "predictions": np.asarray(reference.predictions),
                "input_range": None if reference.input_range is None else list(reference.input_range),
            }
            progress.log(f"Keras reference {row.reference}: {100 * runs[key]['accuracy']:.2f} % on {len(labels):,} examples")
        references[row.label] = {"path": str(row.reference), **runs[key]}
    return references


def _describe(entry: dict[str, Any], done: int, total: int) -> str:
    where = f"{done}/{total} {entry['label']!r} on {entry['core']}"
    if not entry["ran"]:
        return f"{where}: not run: {entry['note']}"
    stats = entry["instructions"] or {}
    cost = f"{100 * entry['accuracy']:.2f} % on {entry['images']:,} images, {stats.get('mean', 0):,.0f} instructions/inference"
    split = entry.get("instructions_per_clip")
    if split is not None:
        features = entry["features"]
        check = "equal to" if features["equal"] else "DIFFER from"
        cost = (
            f"{100 * entry['accuracy']:.2f} % on {entry['images']:,} clips, {split['total']:,.0f} instructions/clip "
            f"(front end {split['frontend']:,.0f} + network {split['network']:,.0f}), features {check} Python's on "
            f"{features['clips_equal']:,} of {features['clips']:,}"
        )
    return f"{where}: {cost}, flash {entry['flash_bytes']:,} B, RAM {entry['ram_bytes']:,} B (QEMU {entry['qemu_seconds']:.0f} s)"


def _run_all(
    runs: list[Any], jobs: int, keras: dict[str, dict[str, Any]], data_sha256: Any, progress: _Progress
) -> list[dict[str, Any]]:
    """Every QEMU run, ``jobs`` side by side; after a failure no new run starts, and the first failure is raised."""
    from bench.side_by_side.runs import emulate, entry_from_report, not_run_entry

    entries: list[dict[str, Any]] = [{} for _ in runs]
    failure: ToolError | None = None
    progress.runs(len(runs))
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(emulate, run, data_sha256=data_sha256): index for index, run in enumerate(runs)}
            done = 0
            for future in as_completed(futures):
                index = futures[future]
                try:
                    outcome = future.result()
                except CancelledError:
                    continue
                except ToolError as err:
                    if failure is None:
                        failure = err
                        progress.log(f"failed: {err}; waiting for the runs under way, starting no other")
                        for other in futures:
                            other.cancel()
                    continue
                run = runs[index]
                if outcome["ran"]:
                    entries[index] = entry_from_report(run, outcome["report"], keras.get(run.row.label))
                else:
                    entries[index] = not_run_entry(run, outcome["note"])
                done += 1
                progress.done(_describe(entries[index], done, len(runs)))
    finally:
        progress.close()
    if failure is not None:
        raise failure
    return entries


def _remove_stale_firmware(folder: Path, keep: set[str]) -> None:
    """Delete firmware folders of earlier runs that this run did not make (they hold a ``firmware.json``)."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name not in keep and (entry / "firmware.json").is_file():
            shutil.rmtree(entry)


def _side_by_side(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    rows = check_rows(args.row, args.reference, args.baseline)
    cores: list[str] = args.cores
    boards = check_boards(args.boards, cores)
    out = Path(args.out)
    check_out(out)
    progress = _Progress()

    from bench.machine import load_average, machine_info
    from bench.side_by_side.runs import Run, emulator_command, ensure_libraries, firmware_gen_command, generate
    from bench.side_by_side.summary import add_fits, add_ratios
    from emulator.qemu_tflm import tflm_timeout
    from firmware_gen.targets import BOARDS
    from pipeline.artifacts import TOOL_VERSION, sha256_file
    from pipeline.data import load_dataset, portable_source

    data = load_dataset(args.data)
    total = len(data.y_test)
    count = min(args.images or total, total)
    images = data.x_test[:count]
    _check_flatbuffers(rows, data)
    machine = machine_info(_REPO)
    load_start = machine["load_average"]
    progress.log(
        f"{count:,} test {'clips (raw samples in)' if data.frontend is not None else 'examples'} of {data.source}; "
        f"{len(rows)} rows x {len(cores)} cores; {machine['cpu']}, load {load_start}"
    )
    keras = _keras_references(rows, images, data.y_test[:count], data.num_classes, progress)
    progress.stage("Keras references")

    timeout = args.timeout or tflm_timeout(count)
    limit = count if args.images else None
    runs = []
    for index, row in enumerate(rows):
        for core in cores:
            folder = out / FIRMWARE_FOLDER / run_slug(index, row, core)
            run = Run(row, core, folder, audio=data.frontend is not None)
            run.commands = {
                "firmware_gen": firmware_gen_command(row, core, folder),
                "emulator": emulator_command(row, core, folder, data=args.data, limit=limit, timeout=timeout),
            }
            runs.append(run)
    for run in runs:
        generate(run)
        progress.log(f"generated {run.folder} ({run.row.engine} engine)")
    progress.stage("firmware_gen")
    libraries = ensure_libraries(runs, progress.log)
    progress.stage("TFLite-Micro libraries")
    entries = _run_all(runs, args.jobs or os.cpu_count() or 1, keras, data.sha256, progress)
    progress.stage("QEMU runs")

    board_records = [
        {"name": name, "core": BOARDS[name].core, "flash_bytes": BOARDS[name].flash_bytes, "ram_bytes": BOARDS[name].ram_bytes}
        for name in boards
    ]
    add_fits(entries, board_records)
    add_ratios(entries, args.baseline)
    results: dict[str, Any] = {
        "version": TOOL_VERSION,
        "command": ["python", "-m", "bench.side_by_side", *(sys.argv[1:] if argv is None else argv)],
        "machine": machine,
        "load_average": {"start": load_start, "end": load_average()},
        "data": {"source": portable_source(data.source, _REPO), "sha256": data.sha256, **data.describe()},
        "images": count,
        "test_images": total,
        "timeout_seconds": timeout,
        "jobs": args.jobs or os.cpu_count() or 1,
        "cores": cores,
        "boards": board_records,
        "baseline": args.baseline,
        "rows": [
            {
                **row.to_json(),
                "sha256": sha256_file(row.flatbuffer),
                "bytes": row.flatbuffer.stat().st_size,
                "keras": None if row.label not in keras else {k: v for k, v in keras[row.label].items() if k != "predictions"},
            }
            for row in rows
        ],
        "tflm_libraries": libraries,
        "runs": entries,
    }
    results["seconds"] = {**progress.stages, "total": round(progress.elapsed(), 1)}
    _remove_stale_firmware(out / FIRMWARE_FOLDER, {run.folder.name for run in runs})
    _write(out, results)
    progress.log(f"wrote {out / OUTPUT_FILES[0]}, {out / OUTPUT_FILES[1]}, {out / OUTPUT_FILES[2]}")
    _check_features(entries, out / OUTPUT_FILES[0])
    return 0


def _check_features(entries: list[dict[str, Any]], path: Path) -> None:
    """The first audio rung's gate over every run: the chip's features equal Python's on every clip.

    Raises:
        CheckError: some run's features differ (one line naming the runs, the first clips, the results).
    """
    failed = [entry for entry in entries if entry.get("ran") and (entry.get("features") or {}).get("equal") is False]
    if not failed:
        return
    runs = "; ".join(
        f"{entry['label']!r} on {entry['core']} on {entry['features']['clips'] - entry['features']['clips_equal']} of "
        f"{entry['features']['clips']} clips (first: {', '.join(str(i) for i in entry['features']['differ'] or [])})"
        for entry in failed
    )
    raise CheckError(f"the firmware's features differ from Python's: {runs}; results: {path}")


def _write(out: Path, results: dict[str, Any]) -> None:
    """The three files, each atomically; the plot and the tables are made before anything is written."""
    from bench.side_by_side.plot import plot_points, side_by_side_png
    from bench.side_by_side.tables import is_audio, render_markdown
    from pipeline.artifacts import write_bytes, write_json, write_text

    markdown = render_markdown(results)
    examples = "clips (raw samples in)" if is_audio(results) else "examples"
    title = (
        f"{results['images']:,} test {examples} of {Path(results['data']['source']).name}: accuracy against cost, "
        "per row and core"
    )
    png = side_by_side_png(results["runs"], title) if plot_points(results["runs"]) else None
    write_json(out / OUTPUT_FILES[0], results)
    write_text(out / OUTPUT_FILES[1], markdown)
    if png is not None:
        write_bytes(out / OUTPUT_FILES[2], png)
    else:
        (out / OUTPUT_FILES[2]).unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.side_by_side``; returns the exit status."""
    return run_cli(PROG, _side_by_side, argv)
