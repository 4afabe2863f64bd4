"""``python -m study --out DIR``: the comparison study in one command.

Steps, one progress line each: the exploratory look at MNIST (sample grid, t-SNE map, K-means
as a classifier and its most confused pairs), a baseline process for training memory, then per
model: train (or reuse) with its ``study`` recipe in a child process, Keras accuracy and
batched time, the tensors of one training step, ``convert``, deployment by the engine that takes
it and a one-image-at-a-time run of that engine, and finally ``RESULTS.md``, ``results.json``
and the figures. Everything is computed before anything is written; the folder is then
replaced as a whole.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.artifacts import check_inputs_kept, check_replaceable, replace_folder
from pipeline.errors import InputError, OneLineArgumentParser, positive_int, run_cli

__all__ = ["MODELS", "Settings", "FULL", "QUICK", "build_parser", "check_out", "main", "write_folder"]

PROG = "python -m study"
MODELS = ("logreg", "mlp", "bc_mlp", "cnn", "bc_cnn", "bcnn")
RESULTS_JSON = "results.json"


@dataclass(frozen=True)
class Settings:
    """How big a run is: the full study, or ``--quick`` (tiny slices, one epoch, for tests)."""

    train_limit: int | None
    epochs: int | None
    test_images: int
    tsne_images: int
    kmeans_train_images: int | None
    kmeans_inits: int
    convert_check: int


FULL = Settings(None, None, 10_000, 2_500, None, 4, 1_000)
QUICK = Settings(600, 1, 200, 200, 2_000, 1, 100)


def _models(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in MODELS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(MODELS)}, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m study`` argument parser."""
    parser = OneLineArgumentParser(
        prog=PROG,
        description="The comparison study: MNIST EDA (samples, t-SNE, K-means), six models trained, converted, "
        "deployed and measured, one table (RESULTS.md, results.json, figures).",
    )
    parser.add_argument("--out", required=True, help="folder for RESULTS.md, results.json and the figures (replaced)")
    parser.add_argument(
        "--artifacts",
        help="folder for the trained models and their flatbuffers (default artifacts/study, or artifacts/study-quick)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny slices and one epoch: every file, meaningless figures")
    parser.add_argument(
        "--recipe",
        choices=("study", "study_full"),
        default="study",
        help="study (default), or study_full: the study's own batch 8 for bc_cnn",
    )
    parser.add_argument("--models", type=_models, default=MODELS, help=f"comma-separated subset (default {','.join(MODELS)})")
    parser.add_argument("--seed", type=int, default=0, help="seed of every training, K-means and t-SNE (default 0)")
    parser.add_argument("--test-images", type=positive_int, help="first N test images measured (default all, 200 with --quick)")
    parser.add_argument("--data", help="MNIST folder or mnist.npz (default: $MNIST_DIR, keras cache)")
    return parser


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder that is not a study's output.

    Raises:
        InputError: as above.
    """
    check_replaceable(out, marker=RESULTS_JSON, owner="the study")


def write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Make ``files`` (relative name -> bytes) the whole content of ``out``, or leave ``out`` as it was.

    See :func:`pipeline.artifacts.replace_folder`: a non-empty ``out`` without ``results.json``
    is refused, so a mistyped ``--out`` cannot wipe an unrelated folder.

    Raises:
        InputError: ``out`` is a file, or a non-empty folder that is not a study's output.
    """
    replace_folder(out, files, marker=RESULTS_JSON, owner="the study")


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _study(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    settings = QUICK if args.quick else FULL
    out = Path(args.out)
    check_out(out)  # before hours of work; write_folder checks again
    check_inputs_kept([args.data], folders=[out])
    artifacts = Path(args.artifacts or ("artifacts/study-quick" if args.quick else "artifacts/study"))
    if artifacts.exists() and not artifacts.is_dir():
        raise InputError(f"--artifacts {artifacts} exists and is not a folder")
    from pipeline.data import load_mnist

    data = load_mnist(args.data)
    test_images = min(args.test_images or settings.test_images, len(data.y_test))
    command = " ".join(["python -m study", *(argv if argv is not None else sys.argv[1:])])
    from study.run import run_study

    files = run_study(
        data,
        models=args.models,
        recipe_name=args.recipe,
        settings=settings,
        test_images=test_images,
        artifacts=artifacts,
        seed=args.seed,
        data_dir=args.data,
        quick=args.quick,
        command=command,
        log=_log,
    )
    write_folder(out, files)
    _log(f"wrote {out}/ ({len(files)} files)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m study``; returns the exit status."""
    return run_cli(PROG, _study, argv)
