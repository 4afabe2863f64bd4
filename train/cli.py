"""Command line for the training stage.

``python -m train --model bcnn`` writes to OUT (default ``artifacts/``): ``NAME.h5``,
``NAME.train.json``, ``NAME.history.png`` and ``NAME.confusion.png``. Arguments, ``TF_CONFIG``
and data are checked before anything is written, so a bad input leaves OUT untouched. With
``--distribute multi-worker`` only the chief writes; every process prints the sha256 of its
final weights (equal on every worker of a run).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.artifacts import check_files_writable, check_inputs_kept
from pipeline.errors import CheckError, InputError, OneLineArgumentParser, positive_float, positive_int, run_cli, seed_int
from train.distribute import DISTRIBUTE, read_tf_config
from train.recipes import Recipe, default_recipe, get_recipe, parse_override, recipe_names

__all__ = ["main", "build_parser", "check_out_folder"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# Descriptions are repeated here (not imported from train.models) so --help and bad-usage
# errors answer without importing TensorFlow.
_MODEL_HELP = {
    "bcnn": "seed binarized CNN (Larq QuantConv2D/QuantDense, ste_sign), 93,790 params",
    "cnn": "same topology in full precision (ReLU, biases), the float/int8 baseline",
    "mlp": "full-precision MLP: Dense128-ReLU, Dense128-ReLU, Dropout 0.25, Dense10",
    "logreg": "logistic regression: one dense softmax layer on the 784 pixels",
    "bc_mlp": "mlp with BinaryConnect weights (stochastic +-1, / sqrt(fan-in))",
    "bc_cnn": "cnn with binary weights (sign), no batch norm, / sqrt(fan-in)",
    "colour_bnn": "binarized photo classifier for a Cortex-M: 8-bit stem on every channel, binary blocks, 8-bit scores",
    "resnet8": "MLPerf Tiny's ResNet-8 (float, 78,666 params for CIFAR-10), to retrain on the same data or as a teacher",
    "kws_bnn": "binarized keyword spotter for a 16 KiB Cortex-M0: 8-bit stem on the features, binary blocks, 8-bit scores",
    "ds_cnn": "MLPerf Tiny's DS-CNN keyword spotter (float: 10x4 conv, 4 depthwise-separable blocks of 64), for int8",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m train`` argument parser."""
    models = "\n".join(f"  {name:<6} {text}" for name, text in _MODEL_HELP.items())
    names = recipe_names()
    width = max(map(len, names))
    recipes = "\n".join(f"  {name:<{width}} {text}" for name, text in names.items())
    parser = OneLineArgumentParser(
        prog="python -m train",
        description="Train a zoo model (MNIST by default, or --data); every model takes raw 8-bit values 0..255.",
        epilog=f"models:\n{models}\n\nrecipes:\n{recipes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, choices=sorted(_MODEL_HELP), help="zoo model to train")
    parser.add_argument("--recipe", choices=sorted(recipe_names()), help="training recipe (default: the model's)")
    parser.add_argument("--epochs", type=positive_int, help="override the recipe's epochs")
    parser.add_argument("--batch-size", type=positive_int, help="override the recipe's batch size")
    parser.add_argument("--lr", type=positive_float, help="override the recipe's learning rate")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any recipe field, e.g. --set epochs=30 --set distill_teacher=none (repeatable)",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed, 0 to 4294967295 (default 0)")
    parser.add_argument("--limit", type=positive_int, help="use only the first N training images")
    parser.add_argument(
        "--data",
        help="dataset: MNIST folder (IDX files), .npz, image folder or tar, or a dataset spec .json "
        "(images, or WAV files through the audio front end: datasets/fsdd.json) (default: $MNIST_DIR, keras cache)",
    )
    parser.add_argument(
        "--teacher",
        metavar="FILE.h5",
        help="distil from this trained Keras model (softmax outputs on the same raw inputs), with the recipe's "
        "distill_alpha (default 0.5 when the recipe has none) and distill_temperature",
    )
    parser.add_argument(
        "--init",
        metavar="FILE.h5",
        help="start from the weights of this trained Keras model of the same architecture (fine-tuning), "
        "e.g. MLPerf Tiny's pretrainedResnet.h5 for --model resnet8",
    )
    parser.add_argument(
        "--trust-model", action="store_true", help="load a --teacher or --init model whose layers carry Python code (Lambda)"
    )
    parser.add_argument("--name", help="stem of the files written to OUT (default: the model's name)")
    parser.add_argument("--out", default="artifacts", help="output folder (default: artifacts/)")
    parser.add_argument(
        "--track-test",
        action="store_true",
        help="also measure the test set after every epoch (history test_accuracy; observation only)",
    )
    parser.add_argument(
        "--distribute",
        choices=DISTRIBUTE,
        default="none",
        help="none (default); mirrored: every local GPU, else every logical CPU device; "
        "multi-worker: one process per worker, the cluster in TF_CONFIG (the chief alone writes OUT)",
    )
    parser.add_argument(
        "--sync-bn",
        action="store_true",
        help="with --distribute: batch-norm statistics over the global batch instead of each replica's share",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress (default: a bar on a terminal, else one line per epoch)"
    )
    return parser


def _recipe(args: argparse.Namespace) -> tuple[Recipe, dict[str, Any]]:
    """The recipe to train with and the overrides applied to it (checked before any import)."""
    changes: dict[str, Any] = {}
    for text in args.overrides:
        try:
            key, value = parse_override(text)
        except ValueError as err:
            raise InputError(str(err)) from None
        changes[key] = value
    for key in ("epochs", "batch_size", "lr"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    base = get_recipe(args.recipe or default_recipe(args.model), args.model)
    try:
        return replace(base, **changes), changes
    except ValueError as err:
        raise InputError(str(err)) from None


def check_out_folder(out: Path) -> None:
    """Refuse an ``--out`` that cannot become a folder we can write, before any training.

    Nothing is created: the nearest existing ancestor must be a writable folder (the folder
    itself is made only when the artifacts are written).

    Raises:
        InputError: ``out`` (or an ancestor) is a file, or the nearest existing folder is not writable.
    """
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"--out {out}: {probe} exists and is not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: {probe} is not writable")


def _train(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    recipe, overrides = _recipe(args)
    if args.sync_bn and args.distribute == "none":
        raise InputError("--sync-bn needs --distribute mirrored or multi-worker")
    cluster = read_tf_config() if args.distribute == "multi-worker" else None
    check_out_folder(Path(args.out))
    for given in (args.teacher, args.init):
        if given is not None:
            from pipeline.keras_files import check_h5_file

            check_h5_file(given)
    if args.name is not None and not _NAME.fullmatch(args.name):
        raise InputError(f"--name {args.name!r}: use letters, digits, '.', '_' and '-' only (it names files in OUT)")
    from train.outputs import training_output_paths

    outputs = training_output_paths(Path(args.out), args.name or args.model)
    check_inputs_kept([args.teacher, args.init, args.data], files=outputs)
    check_files_writable(outputs)
    from pipeline.data import format_shape, load_dataset

    data = load_dataset(args.data)
    from train.models import ZOO

    problem = ZOO[args.model].problem(data.example_shape, str(data.dtype), data.num_classes)
    if problem is not None:
        raise InputError(
            f"{data.source}: {args.model} {problem}; this dataset has {format_shape(data.example_shape)} {data.dtype} "
            f"examples of {data.num_classes} classes (pick another zoo model, or train your own Larq model on it, "
            "then python -m convert MODEL.h5 --data ...)"
        )
    if len(data.x_train) < 20:
        raise InputError(f"{data.source}: {len(data.x_train)} training images, too few to train on (need at least 20)")
    if args.limit and args.limit < 20:
        raise InputError(f"--limit {args.limit} is too small to train on (need at least 20 images)")
    if len(data.y_test) == 0 or len(data.y_train) == 0:
        raise InputError(
            f"{data.source}: {len(data.y_train)} training and {len(data.y_test)} test images; need at least one of each"
        )

    from train.distribute import describe, make_strategy

    strategy = make_strategy(args.distribute)  # before any other TensorFlow operation
    teacher = None
    if args.teacher is not None:
        from train.model_files import load_teacher

        teacher = load_teacher(args.teacher, data, trust_model=args.trust_model)
        if not recipe.distill_alpha:
            recipe = replace(recipe, distill_alpha=0.5)
    initial = None
    if args.init is not None:
        from train.model_files import load_initial_weights

        initial = load_initial_weights(args.init, args.model, data, trust_model=args.trust_model)

    import larq as lq
    import tensorflow as tf

    from train.progress import progress_mode
    from train.trainer import fit, weights_sha256

    try:
        result = fit(
            args.model,
            recipe,
            data,
            seed=args.seed,
            limit=args.limit,
            progress=progress_mode(args.quiet),
            track_test=args.track_test,
            strategy=strategy,
            sync_bn=args.sync_bn,
            teacher=None if teacher is None else teacher.model,
            initial_weights=None if initial is None else initial.weights,
        )
    except tf.errors.OpError as err:
        if cluster is None:
            raise
        # A worker that stops (killed, unreachable) fails the collective operations of the others.
        raise CheckError(
            f"multi-worker training stopped ({type(err).__name__} in a collective operation): "
            "is every worker of TF_CONFIG still running?"
        ) from None
    digest = weights_sha256(result.model)
    distribution = describe(args.distribute, strategy, recipe.batch_size, cluster, sync_bn=args.sync_bn)
    name = args.name or args.model
    if cluster is not None and not cluster.is_chief:
        print(
            f"{name}: {cluster.task_type} {cluster.task_index} of {cluster.workers} workers: test accuracy "
            f"{100 * result.test_accuracy:.2f}%, trained in {result.train_seconds:.1f} s; nothing written (the chief writes OUT)"
        )
        print(f"weights sha256 {digest}")
        return 0

    from train.outputs import write_training_outputs

    lq.models.summary(result.model)
    out = Path(args.out)
    report = write_training_outputs(
        out,
        name,
        result,
        recipe,
        data,
        seed=args.seed,
        limit=args.limit,
        overrides=overrides,
        extra={
            "distribute": distribution,
            "weights_sha256": digest,
            **({} if teacher is None else {"teacher": teacher.describe()}),
            **({} if initial is None else {"init": initial.describe()}),
        },
    )
    params, trainable = report["params"], report["trainable_params"]
    print(
        f"{name}: test accuracy {100 * result.test_accuracy:.2f}% on {len(data.y_test)} images, "
        f"{params:,} params ({trainable:,} trainable), trained in {result.train_seconds:.1f} s -> {out}/"
    )
    print(f"weights sha256 {digest}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m train``; returns the exit status."""
    return run_cli("python -m train", _train, argv)
