"""What a finished training run leaves in OUT: the ``.h5``, its plots and ``NAME.train.json``.

Written once here for every caller that trains a model and keeps it (``python -m train``, the
architecture search's final model), so the files and the report's layout cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.artifacts import TOOL_VERSION, write_bytes, write_json
from pipeline.data import Dataset
from pipeline.keras_files import save_h5_model
from train.recipes import Recipe, get_recipe
from train.trainer import TrainResult

__all__ = ["training_output_paths", "write_training_outputs"]

_SUFFIXES = (".h5", ".history.png", ".confusion.png", ".train.json")


def training_output_paths(out: Path, name: str) -> list[Path]:
    """The files :func:`write_training_outputs` writes into ``out`` for the model ``name``."""
    return [out / f"{name}{suffix}" for suffix in _SUFFIXES]


def write_training_outputs(
    out: Path,
    name: str,
    result: TrainResult,
    recipe: Recipe,
    data: Dataset,
    *,
    seed: int,
    limit: int | None,
    overrides: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``NAME.h5``, ``NAME.history.png``, ``NAME.confusion.png`` and ``NAME.train.json`` into ``out``.

    Each file is written atomically (temporary file, then rename).

    Args:
        out: the output folder (created when missing).
        name: the model's name, the stem of every file.
        result: the training run.
        recipe: the recipe it was trained with (recorded in full).
        data: the dataset it was trained and tested on (source and sha256 recorded).
        seed: the run's seed.
        limit: the ``--limit`` on training images, or ``None``.
        overrides: the ``--set`` overrides applied to the recipe.
        extra: more report keys of the caller (distribution, search provenance...).

    Returns:
        The report written as ``NAME.train.json``.
    """
    from train.plots import confusion_matrix, confusion_png, history_png

    h5_path, history_path, confusion_path, report_path = training_output_paths(out, name)
    params = int(result.model.count_params())
    trainable = int(sum(int(w.shape.num_elements()) for w in result.model.trainable_weights))
    save_h5_model(result.model, h5_path)
    matrix = confusion_matrix(data.y_test, result.test_predictions)
    write_bytes(history_path, history_png(result.history, f"{name} ({recipe.name} recipe)"))
    write_bytes(
        confusion_path,
        confusion_png(matrix, f"{name} on {len(data.y_test)} test images: {100 * result.test_accuracy:.2f}%"),
    )
    report = {
        "model": name,
        "version": TOOL_VERSION,
        "params": params,
        "trainable_params": trainable,
        "recipe": recipe.to_json(),
        "recipe_overrides": overrides or {},
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "seed": seed,
        "limit": limit,
        "train_images": result.train_images,
        "val_images": result.val_images,
        "history": result.history,
        "kept_epoch": result.kept_epoch,
        "test_accuracy": result.test_accuracy,
        "test_images": int(len(data.y_test)),
        "confusion_matrix": matrix.tolist(),
        "train_seconds": round(result.train_seconds, 2),
        "train_cpu_seconds": round(result.train_cpu_seconds, 2),
        "teacher_recipe": get_recipe(recipe.distill_teacher).to_json() if recipe.distill_teacher else None,
        "teacher_test_accuracy": result.teacher_test_accuracy,
        "data": {"source": data.source, "sha256": data.sha256, **data.describe()},
        **(extra or {}),
    }
    write_json(report_path, report)
    return report
