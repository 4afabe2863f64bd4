"""The study's steps in order, returning every file of its output folder as bytes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import TOOL_VERSION
from pipeline.data import Dataset, portable_source

__all__ = ["run_study", "eda_step", "model_step"]

_REPO = Path(__file__).resolve().parent.parent


def eda_step(data: Dataset, settings: Any, test_images: int, seed: int, log: Callable[[str], None]) -> tuple[dict, dict]:
    """Sample grid, t-SNE map, K-means classifier and its confused pairs.

    Returns:
        ``(results, files)``: the K-means and t-SNE figures as JSON, and the PNGs by file name.
    """
    from study import eda, figures
    from train.plots import confusion_png

    files: dict[str, bytes] = {}
    grid = eda.samples_per_digit(data.y_train, 10)
    files["eda_samples.png"] = figures.samples_png(data.x_train, grid, "MNIST: the first 10 training images of each digit")
    log("EDA: sample grid")

    count = min(settings.tsne_images, len(data.y_test))
    start = time.perf_counter()
    points, tsne_settings = eda.tsne_embedding(data.x_test[:count], seed=seed)
    tsne = {"images": count, "seconds": round(time.perf_counter() - start, 2), **tsne_settings}
    files["eda_tsne.png"] = figures.tsne_png(points, data.y_test[:count], f"t-SNE of the first {count:,} test images")
    log(f"EDA: t-SNE of {count:,} test images in {tsne['seconds']:.0f} s")

    limit = settings.kmeans_train_images or len(data.y_train)
    result = eda.kmeans_classifier(
        data.x_train[:limit],
        data.y_train[:limit],
        data.x_test[:test_images],
        data.y_test[:test_images],
        seed=seed,
        n_init=settings.kmeans_inits,
    )
    kmeans = result.to_json()
    files["confusion_kmeans.png"] = confusion_png(
        result.matrix, f"K-means (k = 10) on {test_images:,} test images: {100 * result.test_accuracy:.2f}%"
    )
    panels = []
    for pair in result.pairs:
        for true, wrong in ((pair["a"], pair["b"]), (pair["b"], pair["a"])):
            found = eda.misplaced(data.y_test[:test_images], result.test_predicted, true, wrong, 8)
            panels.append({"true": true, "wrong": wrong, "indices": [int(i) for i in found]})
    kmeans["misplaced_examples"] = panels
    files["kmeans_confused_pairs.png"] = figures.pairs_png(
        data.x_test, panels, "K-means: test images of one digit assigned to the other, most confused pairs"
    )
    pairs = ", ".join(f"{p['a']}-{p['b']}" for p in result.pairs)
    log(f"EDA: K-means test accuracy {100 * result.test_accuracy:.2f}%, NMI {result.nmi:.3f}, confused pairs {pairs}")
    return {"tsne": tsne, "kmeans": kmeans}, files


def model_step(
    name: str,
    recipe_name: str,
    *,
    data: Dataset,
    settings: Any,
    test_images: int,
    artifacts: Path,
    seed: int,
    data_dir: str | None,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Train or reuse, measure, convert, deploy and run one model.

    Returns:
        ``(the model's results, {"confusion_NAME.png": ...})``.
    """
    from study.deploy import convert_model, deploy_model
    from study.keras_run import keras_figures
    from study.memory import training_tensors
    from study.training import train_or_reuse
    from train.models import build_model
    from train.plots import confusion_png
    from train.recipes import get_recipe

    overrides = {"epochs": settings.epochs} if settings.epochs else {}
    recipe = get_recipe(recipe_name, name).with_overrides(**overrides)
    expected = {
        "model": name,
        "recipe": recipe.to_json(),
        "seed": seed,
        "limit": settings.train_limit,
        "params": int(build_model(name).count_params()),
        "data": data.sha256,
    }
    trained = train_or_reuse(name, recipe_name, expected, artifacts, overrides=overrides, data_dir=data_dir, log=log)
    images, labels = data.x_test[:test_images], data.y_test[:test_images]
    keras = keras_figures(trained.h5, images)
    predictions = keras.pop("predictions")
    accuracy = float(np.mean(predictions == labels))
    log(f"{name}: Keras {100 * accuracy:.2f}% on {test_images:,} test images, {keras['us_per_image']:.1f} us/image batched")
    tensors = training_tensors(trained.h5, recipe, data.x_train, data.y_train)
    convert_report = convert_model(trained.h5, artifacts, settings.convert_check, data_dir, log)
    binary = keras["binary_weights"] > 0
    deploy = deploy_model(name, binary, convert_report, artifacts, images, labels, predictions, log)
    sizes = {"h5": trained.h5.stat().st_size}
    for fmt in ("float", "int8", "lce"):
        entry = convert_report["formats"].get(fmt, {})
        sizes[fmt] = None if entry.get("skipped") else entry.get("bytes")
    skipped = {fmt: entry.get("reason") for fmt, entry in convert_report["formats"].items() if entry.get("skipped")}
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    report = trained.train_report
    result = {
        "name": name,
        "recipe": recipe.to_json(),
        "train_limit": settings.train_limit,
        "test_accuracy": accuracy,
        "test_accuracy_at_training": report.get("test_accuracy"),
        "params": keras["params"],
        "trainable_params": keras["trainable_params"],
        "binary_weights": keras["binary_weights"],
        "binary_layers": keras["binary_layers"],
        "bytes": sizes,
        "skipped_formats": skipped,
        "train": {
            "reused": trained.reused,
            "train_seconds": report.get("train_seconds"),
            "wall_seconds": trained.run.get("wall_seconds"),
            "cpu_seconds": trained.run.get("cpu_seconds"),
            "command": trained.run.get("command"),
            "train_images": report.get("train_images"),
            "epochs_run": len((report.get("history") or {}).get("loss", [])),
        },
        "keras_us_per_image": keras["us_per_image"],
        "memory": {"peak_rss_bytes": trained.run.get("peak_rss_bytes"), "tensors": tensors},
        "deploy": deploy,
        "confusion_matrix": matrix.tolist(),
    }
    title = f"{name} ({recipe_name}) on {test_images:,} test images: {100 * accuracy:.2f}%"
    return result, {f"confusion_{name}.png": confusion_png(matrix, title)}


def run_study(
    data: Dataset,
    *,
    models: tuple[str, ...],
    recipe_name: str,
    settings: Any,
    test_images: int,
    artifacts: Path,
    seed: int,
    data_dir: str | None,
    quick: bool,
    command: str,
    log: Callable[[str], None],
) -> dict[str, bytes]:
    """Run every step and return the output folder's files (name -> bytes).

    Raises:
        CheckError: a training, a conversion or a deployed engine failed.
    """
    from bench.machine import machine_info
    from study import figures
    from study.keras_run import KERAS_BATCH
    from study.report import claims, results_markdown
    from study.training import baseline_rss

    start = time.perf_counter()
    artifacts.mkdir(parents=True, exist_ok=True)
    eda_results, files = eda_step(data, settings, test_images, seed, log)
    baseline = baseline_rss(list(models), data_dir)
    log(f"baseline process (no training): peak RSS {baseline.peak_rss_bytes / 2**20:.0f} MiB")
    results: dict[str, Any] = {"models": {}}
    for name in models:
        model, model_files = model_step(
            name,
            recipe_name,
            data=data,
            settings=settings,
            test_images=test_images,
            artifacts=artifacts,
            seed=seed,
            data_dir=data_dir,
            log=log,
        )
        results["models"][name] = model
        files.update(model_files)
    points = [
        {
            "model": name,
            "accuracy": model["test_accuracy"],
            "h5_bytes": model["bytes"]["h5"],
            "deploy_bytes": (model["deploy"] or {}).get("model_bytes"),
            "deploy_form": f"{model['deploy'].get('engine')}, {model['deploy'].get('format')}",
        }
        for name, model in results["models"].items()
    ]
    files["accuracy_vs_size.png"] = figures.accuracy_vs_size_png(
        points, f"Test accuracy ({test_images:,} images) against size on disk"
    )
    results.update(
        {
            "version": TOOL_VERSION,
            "test_images": test_images,
            "model_order": list(models),
            "keras_batch": KERAS_BATCH,
            "baseline": {"peak_rss_bytes": baseline.peak_rss_bytes, "command": ["python", *baseline.command[1:]]},
            "eda": {"tsne": eda_results["tsne"], "samples_per_digit": 10},
            "kmeans": eda_results["kmeans"],
            "data": {"source": portable_source(data.source, _REPO), "sha256": data.sha256},
            "settings": asdict(settings),
        }
    )
    results["figures"] = _figure_titles(files)
    results["claims"] = claims(results)
    results["run"] = {
        "command": command,
        "quick": quick,
        "seed": seed,
        "recipe": recipe_name,
        "artifacts": str(artifacts),
        "date": time.strftime("%Y-%m-%d"),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "machine": machine_info(_REPO),
    }
    files["RESULTS.md"] = results_markdown(results).encode("utf-8")
    files["results.json"] = (json.dumps(results, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return files


def _figure_titles(files: dict[str, bytes]) -> dict[str, str]:
    """Figure file -> what it shows, for RESULTS.md."""
    titles = {
        "eda_samples.png": "10 training images per digit",
        "eda_tsne.png": "t-SNE map of test images, coloured by digit",
        "confusion_kmeans.png": "K-means confusion matrix (test images)",
        "kmeans_confused_pairs.png": "K-means: misplaced examples of the most confused pairs",
        "accuracy_vs_size.png": "test accuracy against bytes on disk (.h5 and deployable form), side by side",
    }
    out = {name: titles[name] for name in titles if name in files}
    for name in sorted(files):
        if name.startswith("confusion_") and name not in out:
            out[name] = f"confusion matrix of {name.removeprefix('confusion_').removesuffix('.png')} (test images)"
    return out
