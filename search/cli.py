"""Command line of the architecture search.

``python -m search --board BOARD [--trials N] [--max-instructions N] [--storage URL] [--out DIR]``
runs (or resumes, or joins) the Optuna study of that board until it holds N completed trials,
writes ``search.json``, ``search.md`` and ``search.png`` into OUT, then retrains the most
accurate candidate that fits with the full recipe and writes ``NAME.h5`` (``--no-final``: the
front only). Every argument is checked before TensorFlow is imported or anything is written.

Exit codes: 0 ok, 1 a check failed (firmware disagrees with Keras, trials keep failing),
2 bad usage or input (unknown board, bad space file, a study started with other settings,
nothing in the space fits), 3 the final firmware is over the board's budget.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from firmware_gen.engines import OPTIMIZE_CHOICES
from pipeline.errors import BudgetError, CheckError, InputError, OneLineArgumentParser, positive_int, run_cli
from search.study import SAMPLERS

__all__ = ["main", "build_parser"]

PROG = "python -m search"


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m search`` argument parser."""
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Search binarized architectures for the most accurate model that fits a board, "
        "every candidate measured as firmware (Optuna, multi-objective).",
        epilog="exit codes: 0 ok, 1 a check failed, 2 bad usage or input, 3 the final firmware is over budget",
    )
    parser.add_argument("--board", required=True, help="board to fit (python -m firmware_gen --list-targets)")
    parser.add_argument("--trials", type=positive_int, default=20, help="completed trials the study should hold (default 20)")
    parser.add_argument("--max-instructions", type=positive_int, help="constraint: instructions per inference under QEMU")
    parser.add_argument(
        "--storage", help="Optuna storage URL (default sqlite:///OUT/search.db); a database server for many machines"
    )
    parser.add_argument("--out", help="output folder (default artifacts/search/BOARD)")
    parser.add_argument("--study-name", help="study name (default: the board's name)")
    parser.add_argument("--space", help="search space as a JSON object of lists (default: search.space.DEFAULT_SPACE)")
    parser.add_argument("--recipe", help="base recipe of a trial: a train recipe name (default: the search-trial recipe)")
    parser.add_argument("--epochs", type=positive_int, help="epochs of a trial (overrides the trial recipe)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a trial recipe field"
    )
    parser.add_argument("--final-recipe", help="recipe of the final retraining (default: bcnn's default recipe)")
    parser.add_argument(
        "--final-set",
        dest="final_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a final recipe field",
    )
    parser.add_argument(
        "--final-top",
        type=positive_int,
        default=1,
        help="retrain the K most accurate fitting trials with the final recipe and keep the one most accurate "
        "on the validation split (default 1: the best trial only)",
    )
    parser.add_argument(
        "--final-seeds",
        type=positive_int,
        default=1,
        help="train each of them N times (seeds SEED .. SEED+N-1) and keep the training most accurate on the "
        "validation split (default 1)",
    )
    parser.add_argument("--no-final", action="store_true", help="stop after the front: no retraining (for extra workers)")
    parser.add_argument("--name", help="name of the final model (default bnn-BOARD)")
    parser.add_argument("--limit", type=positive_int, help="trials use only the first N training images (default: all)")
    parser.add_argument("--final-limit", type=positive_int, help="the final retraining uses only the first N training images")
    parser.add_argument(
        "--qemu-images", type=positive_int, default=200, help="validation images run on QEMU per trial (default 200)"
    )
    parser.add_argument("--final-images", type=positive_int, help="test images the final firmware runs on QEMU (default: all)")
    parser.add_argument(
        "--prebuild",
        default="auto",
        choices=("auto", "always"),
        help="build the untrained firmware before training: when close to the budget (auto), or always",
    )
    parser.add_argument(
        "--optimize",
        default="speed",
        choices=OPTIMIZE_CHOICES,
        help="bnn engine code of every candidate: speed (unrolled popcount trees) or size (one shared loop: "
        "1,260 B less flash on the 16 KiB model, 65 %% more instructions); default speed",
    )
    parser.add_argument(
        "--sampler",
        default="tpe",
        choices=SAMPLERS,
        help="tpe or nsga2 (multi-objective), or brute (every candidate of a small space once); default tpe",
    )
    parser.add_argument(
        "--startup-trials", type=positive_int, default=8, help="random trials before the sampler models (default 8)"
    )
    parser.add_argument(
        "--max-pruned", type=positive_int, default=200, help="give up after this many pruned candidates (default 200)"
    )
    parser.add_argument("--seed", type=int, default=0, help="base training seed (trial n trains with seed + n; default 0)")
    parser.add_argument(
        "--data",
        help="MNIST folder, an .npz of uint8 (H, W) or (H, W, 1) images with labels, or grey images in a folder per class "
        "(a folder, .tar/.tar.gz/.tgz or .json dataset spec; default: $MNIST_DIR, keras cache)",
    )
    return parser


def _recipe(base: str | None, default: Any, overrides: list[str], epochs: int | None, flag: str) -> Any:
    """A recipe by name (or ``default``) with ``--set`` overrides applied."""
    from train.recipes import RECIPES, parse_override

    if base is not None and base not in RECIPES:
        raise InputError(f"{flag} {base!r}: no such recipe (one of: {', '.join(RECIPES)})")
    recipe = RECIPES[base] if base is not None else default
    changes: dict[str, Any] = {}
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ValueError as err:
            raise InputError(str(err)) from None
        changes[key] = value
    if epochs is not None:
        changes["epochs"] = epochs
    try:
        return replace(recipe, **changes)
    except ValueError as err:
        raise InputError(str(err)) from None


def _config(args: argparse.Namespace, board: Any, space: Any, recipe: Any, data: Any) -> dict[str, Any]:
    """What the study searches: a resumed study must be given the same."""
    return {
        "board": board.name,
        "space": space.to_json(),
        "recipe": recipe.to_json(),
        "limit": args.limit,
        "qemu_images": args.qemu_images,
        "max_instructions": args.max_instructions,
        "optimize": args.optimize,
        "seed": args.seed,
        "data_sha256": dict(sorted(data.sha256.items())),
    }


def _upgrade_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored study config completed by what was added since, each at the value the older
    version used: the trial recipe's new fields at their defaults, ``optimize`` at ``speed``."""
    from train.recipes import Recipe

    stored = {"optimize": "speed", **stored}
    recipe = stored.get("recipe")
    if not isinstance(recipe, dict):
        return stored
    try:
        return {**stored, "recipe": Recipe(**recipe).to_json()}
    except (TypeError, ValueError):
        return stored  # not a recipe this version knows: the comparison names it


def _line(text: str) -> None:
    print(text, flush=True)


def _quiet_warnings() -> None:
    """Silence the Python warnings a search would print on every trial (Optuna's experimental
    features it relies on, Keras' note that HDF5 is a legacy format: the pipeline's format)."""
    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    warnings.filterwarnings("ignore", message=r".*HDF5 file via `model.save\(\)`.*")


def _search(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_warnings()
    from firmware_gen.targets import get_board, get_core
    from search.space import load_space
    from search.training import TRIAL_RECIPE
    from train.recipes import default_recipe, get_recipe

    board = get_board(args.board)
    core = get_core(board.core)
    space = load_space(args.space)
    recipe = _recipe(args.recipe, TRIAL_RECIPE, args.overrides, args.epochs, "--recipe")
    final_recipe = _recipe(args.final_recipe, get_recipe(default_recipe("bcnn")), args.final_overrides, None, "--final-recipe")
    for flag, value in (("--limit", args.limit), ("--final-limit", args.final_limit)):
        if value is not None and value < 100:
            raise InputError(f"{flag} {value} is too small: training needs at least 100 images (10 of them for validation)")
    from emulator.qemu import missing_tools

    missing = missing_tools()
    if missing:
        raise InputError(f"missing tools: {', '.join(missing)}; every candidate is measured as firmware (make toolchain)")
    out = Path(args.out) if args.out else Path("artifacts") / "search" / board.name
    name = args.name or f"bnn-{board.name}"
    study_name = args.study_name or board.name

    from pipeline.data import load_dataset
    from search.study import default_storage, make_sampler, open_storage, open_study, redact, run_worker, worker_seed

    storage_url = args.storage or default_storage(out)
    data = load_dataset(args.data)
    from search.training import image_shape

    image_shape(data)  # refuses what the candidates cannot take, before any study opens
    storage = open_storage(storage_url)
    study = open_study(storage, study_name, _config(args, board, space, recipe, data), upgrade=_upgrade_config)
    study.sampler = make_sampler(args.sampler, startup_trials=args.startup_trials, seed=worker_seed(args.seed, study))
    _line(
        f"search {study_name!r} on {redact(storage_url)}: {board.name} ({core.name}, {board.flash_bytes:,} B flash, "
        f"{board.ram_bytes:,} B RAM), {args.trials} completed trials, {args.sampler} sampler, trial recipe "
        f"{recipe.name} ({recipe.epochs} epochs)"
    )

    from search.report import build_report, ranked_trials, trial_rows, write_reports
    from search.training import trial_data
    from search.trial import Objective, TrialSetup

    setup = TrialSetup(
        board=board,
        core=core,
        space=space,
        recipe=recipe,
        data=trial_data(data, args.limit),
        out=out,
        qemu_images=args.qemu_images,
        max_instructions=float(args.max_instructions) if args.max_instructions else None,
        seed=args.seed,
        log=_line,
        prebuild=args.prebuild,
        optimize=args.optimize,
    )
    counts = run_worker(study, Objective(setup), trials=args.trials, max_pruned=args.max_pruned, log=_line)
    header = {
        "board": {"name": board.name, "core": core.name, "flash_bytes": board.flash_bytes, "ram_bytes": board.ram_bytes},
        "storage": redact(storage_url),
        "sampler": args.sampler,
        "max_instructions": args.max_instructions,
        "config": study.user_attrs.get("search_config"),
    }
    report = build_report(study, header)
    paths = write_reports(out, report)
    _line(f"{sum(counts.values())} trials ({', '.join(f'{n} {s.lower()}' for s, n in sorted(counts.items()))}) -> {paths[0]}")
    if args.no_final:
        return 0
    ranked = ranked_trials(trial_rows(study), args.final_top)
    if not ranked:
        raise CheckError(f"no completed trial fits {board.name}: see {paths[1]}")

    from search.final import finalize, retrain_best
    from search.space import Arch

    candidates = [(n, Arch.from_json(study.trials[n].user_attrs["arch"]), float(study.trials[n].values[0])) for n in ranked]
    seeds = tuple(range(args.seed, args.seed + args.final_seeds))
    kept = retrain_best(candidates, name=name, recipe=final_recipe, data=data, limit=args.final_limit, seeds=seeds, log=_line)
    source = {
        "study": study_name,
        "trial": kept.number,
        "storage": redact(storage_url),
        "validation_accuracy": study.trials[kept.number].values[0],
        "trial_recipe": recipe.to_json(),
        "retrained": kept.candidates if len(kept.candidates) > 1 else [],
    }
    final = finalize(
        kept,
        name=name,
        recipe=final_recipe,
        data=data,
        limit=args.final_limit,
        board=board,
        core=core,
        out=out,
        test_images=args.final_images,
        source=source,
        optimize=args.optimize,
        log=_line,
    )
    report = build_report(study, header, final)
    write_reports(out, report)
    _line(f"wrote {out / (name + '.h5')} and {paths[0]}")
    if final["host_agreement_with_keras"] < 1.0 or final["qemu_agreement_with_keras"] < 1.0:
        raise CheckError(
            f"{name}: the firmware disagrees with Keras (host C {100 * final['host_agreement_with_keras']:.2f} %, "
            f"QEMU {100 * final['qemu_agreement_with_keras']:.2f} %)"
        )
    if not final["fits"]:
        raise BudgetError(
            f"{name}: {final['flash_bytes']:,} B flash / {final['ram_bytes']:,} B RAM is over {board.name}'s budget"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m search``; returns the exit status."""
    return run_cli(PROG, _search, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
