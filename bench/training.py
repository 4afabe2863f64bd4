"""``python -m bench.training``: time to a 99.0 % BCNN, peak memory, and the ratio to ``best``.

Trains the ``bcnn`` with its default recipe on each of ``--seeds`` and with the ``best`` recipe
on each of ``--best-seeds``, one ``python -m train`` child process after the other, in one run,
and records for every run: the test accuracy, the training time as ``train`` reports it (wall
and process CPU time, teacher included), the whole command's wall and CPU time, its peak
resident memory (``wait4``), and the load average before and after. Writes, atomically and at
the end, ``OUT/training.json`` and ``OUT/TRAINING.md``.

Time to 99.0 % is the training time of a run whose final model reaches the bar on the 10,000
test images (a recipe's schedule ends its learning rate at the last epoch: the model of an
earlier epoch is not what the run delivers). A run below the bar has no time to 99.0 %.
Exit codes: 0 written (bars missed are reported, not failures), 1 a training run failed,
2 bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.artifacts import TOOL_VERSION, write_json, write_text
from pipeline.errors import CheckError, InputError, OneLineArgumentParser, positive_int, run_cli

__all__ = ["PROG", "ACCURACY_BAR", "SECONDS_BAR", "RSS_BAR", "build_parser", "measure_run", "summarize", "render", "main"]

PROG = "python -m bench.training"
ACCURACY_BAR = 0.99
SECONDS_BAR = 300.0
RSS_BAR = 1_000_000_000
_REPO = Path(__file__).resolve().parent.parent


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integer seeds, got {text!r}") from None
    return seeds


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m bench.training`` argument parser."""
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Train the bcnn with its default recipe and with best, measure time to 99.0 %, CPU time and peak RSS.",
        epilog="Writes OUT/training.json and OUT/TRAINING.md. Exit 1: a training run failed; 2: bad input.",
    )
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="seeds of the default recipe (default 0,1,2)")
    parser.add_argument(
        "--best-seeds", type=_seeds, default=[0], help="seeds of the best recipe, for the ratio (default 0; empty: none)"
    )
    parser.add_argument("--recipe", help="the recipe to measure (default: bcnn's default recipe)")
    parser.add_argument("--data", help="MNIST folder or mnist.npz (default: $MNIST_DIR, keras cache)")
    parser.add_argument("--out", default="bench", help="folder for training.json and TRAINING.md (default: bench/)")
    parser.add_argument("--limit", type=positive_int, help="train on the first N training images (a quick look; default: all)")
    parser.add_argument("--keep", help="keep each run's artifacts in KEEP/RECIPE-sSEED (default: a temporary folder)")
    return parser


def _rss_bytes(maxrss: int) -> int:
    """``ru_maxrss`` in bytes (kilobytes on Linux, bytes on macOS)."""
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def measure_run(recipe: str, seed: int, out: Path, data: str | None, limit: int | None = None) -> dict[str, Any]:
    """Train ``bcnn`` with ``recipe`` and ``seed`` in a child process and measure it.

    Args:
        recipe: recipe name.
        seed: the run's seed.
        out: the run's OUT folder.
        data: ``--data`` for ``python -m train`` (``None``: its default).
        limit: ``--limit`` for ``python -m train`` (``None``: every training image).

    Returns:
        The run's row: accuracy, training and whole-command times, peak RSS, load averages.

    Raises:
        CheckError: the training command failed.
    """
    command = [sys.executable, "-m", "train", "--model", "bcnn", "--recipe", recipe, "--seed", str(seed), "--out", str(out)]
    command += ["--quiet", *(["--data", data] if data else []), *(["--limit", str(limit)] if limit else [])]
    log = out.parent / f"{out.name}.log"
    load_start = _load()
    start = time.perf_counter()
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=_REPO)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise CheckError(f"{' '.join(command[1:])} exited with {process.returncode}: {tail[0]}")
    report = json.loads((out / "bcnn.train.json").read_text())
    return {
        "recipe": recipe,
        "seed": seed,
        "test_accuracy": report["test_accuracy"],
        "train_seconds": report["train_seconds"],
        "train_cpu_seconds": report.get("train_cpu_seconds"),
        "command_seconds": round(wall, 2),
        "command_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_bytes": _rss_bytes(usage.ru_maxrss),
        "epochs": report["epochs"],
        "teacher_test_accuracy": report.get("teacher_test_accuracy"),
        "load_average": {"start": load_start, "end": _load()},
    }


def _load() -> list[float] | None:
    from bench.machine import load_average

    return load_average()


def summarize(runs: list[dict[str, Any]], default: str) -> dict[str, Any]:
    """Per-recipe figures, time to 99.0 %, the acceptance checks and the ratio to ``best``.

    Args:
        runs: rows of :func:`measure_run`.
        default: the default recipe's name.

    Returns:
        ``recipes`` (name -> accuracies, mean, min, times, peak RSS, time to the bar per seed)
        and ``acceptance`` (every seed at the bar, each training within the time bar, peak RSS
        within the memory bar, the ratio of ``best``'s mean training time to the default's).
    """
    recipes: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(run["recipe"] for run in runs):
        rows = [run for run in runs if run["recipe"] == name]
        accuracies = [row["test_accuracy"] for row in rows]
        seconds = [row["train_seconds"] for row in rows]
        recipes[name] = {
            "seeds": [row["seed"] for row in rows],
            "test_accuracy": accuracies,
            "mean_accuracy": sum(accuracies) / len(accuracies),
            "min_accuracy": min(accuracies),
            "train_seconds": seconds,
            "mean_train_seconds": sum(seconds) / len(seconds),
            "train_cpu_seconds": [row["train_cpu_seconds"] for row in rows],
            "peak_rss_bytes": max(row["peak_rss_bytes"] for row in rows),
            "time_to_bar_seconds": [row["train_seconds"] if row["test_accuracy"] >= ACCURACY_BAR else None for row in rows],
        }
    mine = recipes.get(default)
    best = recipes.get("best") if default != "best" else None
    acceptance = {
        "accuracy_bar": ACCURACY_BAR,
        "seconds_bar": SECONDS_BAR,
        "rss_bar_bytes": RSS_BAR,
        "every_seed_at_bar": None if mine is None else mine["min_accuracy"] >= ACCURACY_BAR,
        "every_training_within_seconds": None if mine is None else max(mine["train_seconds"]) <= SECONDS_BAR,
        "peak_rss_within_bar": None if mine is None else mine["peak_rss_bytes"] <= RSS_BAR,
        "best_over_default_train_time": None
        if mine is None or best is None
        else round(best["mean_train_seconds"] / mine["mean_train_seconds"], 2),
    }
    return {"recipes": recipes, "acceptance": acceptance}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _yes(value: bool | None) -> str:
    return "not measured" if value is None else ("yes" if value else "**no**")


def render(results: dict[str, Any]) -> str:
    """``TRAINING.md``: the runs, the per-recipe summary and the acceptance figures."""
    machine, summary = results["machine"], results["summary"]
    default, acceptance = results["default_recipe"], summary["acceptance"]
    lines = [
        "# Training benchmark: time to a 99.0 % BCNN",
        "",
        f"`{' '.join(results['command'])}` at {machine['git']['commit'] or 'an unknown commit'}"
        f"{' (uncommitted changes)' if machine['git']['dirty'] else ''}, {machine['date']}; {machine['cpu']}, "
        f"{machine['cpu_count']} CPUs; TensorFlow {machine['packages']['tensorflow']}, larq {machine['packages']['larq']}.",
        f"Default bcnn recipe: `{default}`. Every run is `python -m train --model bcnn --recipe R --seed S --quiet`, "
        "one after the other; accuracy on all 10,000 test images.",
        *(
            [f"**Trained on the first {results['limit']:,} training images only (`--limit`): a quick look, not the benchmark.**"]
            if results.get("limit")
            else []
        ),
        "",
        "| recipe | seed | test accuracy | training, wall | training, CPU | whole command, wall / CPU | peak RSS "
        "| load average before -> after |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in results["runs"]:
        load = run["load_average"]
        lines.append(
            f"| `{run['recipe']}` | {run['seed']} | {_percent(run['test_accuracy'])} | {run['train_seconds']:.1f} s | "
            f"{run['train_cpu_seconds']:.1f} s | {run['command_seconds']:.1f} s / {run['command_cpu_seconds']:.1f} s | "
            f"{run['peak_rss_bytes'] / 1e6:,.0f} MB | {load['start'][0] if load['start'] else '-'} -> "
            f"{load['end'][0] if load['end'] else '-'} |"
        )
    lines += [
        "",
        "| recipe | seeds | accuracy, mean / min | time to 99.0 % per seed | mean training | peak RSS |",
        "|---|---|---:|---|---:|---:|",
    ]
    for name, entry in summary["recipes"].items():
        reached = " / ".join("not reached" if value is None else f"{value:.1f} s" for value in entry["time_to_bar_seconds"])
        lines.append(
            f"| `{name}` | {', '.join(map(str, entry['seeds']))} | {_percent(entry['mean_accuracy'])} / "
            f"{_percent(entry['min_accuracy'])} | {reached} | {entry['mean_train_seconds']:.1f} s | "
            f"{entry['peak_rss_bytes'] / 1e6:,.0f} MB |"
        )
    ratio = acceptance["best_over_default_train_time"]
    lines += [
        "",
        f"- Every seed of `{default}` at >= {100 * acceptance['accuracy_bar']:.1f} %: {_yes(acceptance['every_seed_at_bar'])}",
        f"- Every training of `{default}` within {acceptance['seconds_bar']:.0f} s: "
        f"{_yes(acceptance['every_training_within_seconds'])}",
        f"- Peak RSS of `{default}` within {acceptance['rss_bar_bytes'] / 1e9:.0f} GB: {_yes(acceptance['peak_rss_within_bar'])}",
        f"- `best` takes {ratio:g}x the default recipe's training time (means, this run)."
        if ratio is not None
        else "- `best` was not run (no ratio).",
        "",
        "Training times are `train_seconds` / `train_cpu_seconds` of `bcnn.train.json` (teacher included, start-up, "
        "test evaluation and plots excluded); the whole command adds TensorFlow's start-up, data loading, the test "
        "evaluation and the plots. CPU time is user + system of the process; wall time depends on what else runs: "
        "the load averages say how busy the machine was.",
        "",
    ]
    return "\n".join(lines)


def _bench(argv: Sequence[str] | None, log: Callable[[str], None] = print) -> int:
    args = build_parser().parse_args(argv)
    if not args.seeds:
        raise InputError("--seeds: at least one seed")
    from bench.machine import machine_info
    from pipeline.data import resolve_source
    from train.recipes import default_recipe, get_recipe

    default = args.recipe or default_recipe("bcnn")
    try:
        get_recipe(default)
    except KeyError:
        raise InputError(f"--recipe {default!r}: no such recipe") from None
    resolve_source(args.data)  # a missing --data is refused before anything runs
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    plan = [(default, seed) for seed in args.seeds]
    plan += [("best", seed) for seed in args.best_seeds if default != "best"]
    machine = machine_info(_REPO)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for index, (recipe, seed) in enumerate(plan, 1):
            log(f"[{index}/{len(plan)}] training bcnn --recipe {recipe} --seed {seed} (load average {_load()})")
            run = measure_run(recipe, seed, root / f"{recipe}-s{seed}", args.data, args.limit)
            runs.append(run)
            log(
                f"[{index}/{len(plan)}] {recipe} seed {seed}: {100 * run['test_accuracy']:.2f} %, training "
                f"{run['train_seconds']:.1f} s wall / {run['train_cpu_seconds']:.1f} s CPU, peak RSS "
                f"{run['peak_rss_bytes'] / 1e6:,.0f} MB"
            )
    results = {
        "version": TOOL_VERSION,
        "command": ["python", "-m", "bench.training", *(sys.argv[1:] if argv is None else argv)],
        "machine": machine,
        "default_recipe": default,
        "limit": args.limit,
        "recipe_fields": {name: get_recipe(name).to_json() for name in dict.fromkeys(recipe for recipe, _ in plan)},
        "runs": runs,
        "summary": summarize(runs, default),
    }
    write_text(out / "TRAINING.md", render(results))
    write_json(out / "training.json", results)
    log(f"wrote {out}/training.json and {out}/TRAINING.md")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.training``; returns the exit status."""
    return run_cli(PROG, _bench, argv)


if __name__ == "__main__":
    sys.exit(main())
