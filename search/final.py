"""The search's result as a model for the rest of the pipeline: retrain the best candidate, write it, measure it.

:func:`retrain_best` trains the best feasible trials' architectures again with the full recipe
on the whole training slice (the validation split held out as ``python -m train`` does), once
per seed, and keeps the training most accurate on that validation split (one trial and one seed
by default: a single training). :func:`finalize` writes the kept one into the output folder as
``python -m train`` writes a zoo model:
``NAME.h5``, ``NAME.train.json`` (with a ``search`` entry naming the study, the trial and the
architecture), ``NAME.history.png`` and ``NAME.confusion.png``. Only here is the MNIST test set
used. The model is then compiled by the bnn engine for the board's core
(``NAME.lce.tflite``, ``firmware/NAME-CORE/``) and run: the generated C on the host and the
firmware on QEMU over the test images, both compared with Keras, flash and RAM of the
deployable ELF against the board.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firmware_gen.targets import Board, Core
from pipeline.artifacts import write_bytes
from pipeline.data import Dataset
from search.report import accuracy_standard_error
from search.space import Arch

__all__ = ["Retrained", "retrain_best", "finalize"]


@dataclass
class Retrained:
    """The candidate the final step keeps.

    Attributes:
        number: its trial number.
        arch: its architecture.
        seed: the seed of its final training.
        result: its final training (:class:`train.trainer.TrainResult`).
        candidates: one row per training: trial, tag, seed, the trial's validation accuracy and
            the final training's (``final_validation_accuracy``, on the same held-back split, of
            the epoch the training kept: ``kept_epoch``), and whether it was kept.
    """

    number: int
    arch: Arch
    seed: int
    result: Any
    candidates: list[dict[str, Any]] = field(default_factory=list)


def retrain_best(
    candidates: list[tuple[int, Arch, float]],
    *,
    name: str,
    recipe: Any,
    data: Dataset,
    limit: int | None,
    seeds: tuple[int, ...],
    log: Any = print,
) -> Retrained:
    """Retrain each candidate with the full recipe, once per seed, and keep the training most
    accurate on the validation split.

    Short trials rank candidates only roughly, so the final step may retrain the first few of the
    ranking; a binarized network's accuracy also moves with its seed by about 0.1 %, so it may
    train each several times. The choice reads the held-back validation split only (the
    ``val_accuracy`` of the epoch each training kept: the last, or the recipe's
    ``keep_best_epochs`` choice; ties keep the earlier training: the better-ranked trial, then
    the lower seed), never the test set.

    Args:
        candidates: ``(trial number, architecture, trial validation accuracy)``, best-ranked first.
        name: the model name every candidate trains under.
        recipe: the full recipe.
        data: the whole dataset.
        limit: first ``limit`` training images (``None``: all).
        seeds: training seeds, each candidate trained once with each.
        log: prints one line.

    Returns:
        The kept candidate, its training and the table of all of them.
    """
    from search.training import train_candidate

    kept: Retrained | None = None
    kept_accuracy = -1.0
    rows = []
    runs = [(number, arch, trial_accuracy, seed) for number, arch, trial_accuracy in candidates for seed in seeds]
    for index, (number, arch, trial_accuracy, seed) in enumerate(runs, start=1):
        log(
            f"final: training {arch.tag()} (trial {number}, seed {seed}; {index} of {len(runs)}) as {name} with the "
            f"{recipe.name} recipe ({recipe.epochs} epochs)"
        )
        result = train_candidate(arch, recipe, data, seed=seed, name=name, limit=limit)
        accuracy = result.validation_accuracy or 0.0
        log(
            f"final: trial {number}, seed {seed}: validation accuracy {100 * accuracy:.2f} % (epoch {result.kept_epoch}), "
            f"trained in {result.train_seconds:.0f} s"
        )
        rows.append(
            {
                "trial": number,
                "tag": arch.tag(),
                "seed": seed,
                "trial_validation_accuracy": trial_accuracy,
                "final_validation_accuracy": accuracy,
                "kept_epoch": result.kept_epoch,
                "validation_images": result.val_images,
                "train_seconds": round(result.train_seconds, 1),
            }
        )
        if accuracy > kept_accuracy:
            kept, kept_accuracy = Retrained(number, arch, seed, result), accuracy
    if kept is None:
        raise ValueError("retrain_best needs at least one candidate")
    kept.candidates = [{**row, "kept": (row["trial"], row["seed"]) == (kept.number, kept.seed)} for row in rows]
    return kept


def _noise_note(retrained: list[dict[str, Any]]) -> str:
    """`` (one standard error ...)`` for the summary line of the final trainings ("" without their split's size)."""
    kept = next((row for row in retrained if row["kept"]), None)
    images = kept.get("validation_images") if kept else None
    if not images:
        return ""
    error = 100 * accuracy_standard_error(kept["final_validation_accuracy"], int(images))
    return f" (one standard error of these figures: {error:.2f} points on {int(images):,} validation images)"


def finalize(
    kept: Retrained,
    *,
    name: str,
    recipe: Any,
    data: Dataset,
    limit: int | None,
    board: Board,
    core: Core,
    out: Path,
    test_images: int | None,
    source: dict[str, Any],
    optimize: str = "speed",
    log: Any = print,
) -> dict[str, Any]:
    """Write the kept final training as ``NAME.h5`` and measure its firmware.

    Args:
        kept: the training :func:`retrain_best` kept (architecture, seed, trained model).
        name: the model name (``NAME.h5``).
        recipe: the full recipe it was trained with (:class:`train.recipes.Recipe`).
        data: the whole dataset (test split included).
        limit: first ``limit`` training images it was trained on (``None``: all).
        board: the board (its budgets are checked).
        core: its core.
        out: output folder.
        test_images: test images run on QEMU (``None``: all of them; the host C runs all anyway).
        source: the study, trial and validation figures the model comes from (recorded).
        optimize: the bnn engine's ``speed`` or ``size`` code (the search's ``--optimize``).
        log: prints one line.

    Returns:
        The ``final`` entry of ``search.json``: paths, test accuracy, agreements, flash, RAM,
        instructions, budget verdict and a ``summary`` (lines for the markdown).

    Raises:
        CheckError: the firmware disagrees with Keras, or a build or run failed.
    """
    from search.estimate import packed_size
    from search.measure import compile_model, engine_difference, run_firmware, write_firmware, write_whole_firmware
    from search.training import release_session
    from train.outputs import write_training_outputs

    arch, seed, result = kept.arch, kept.seed, kept.result
    log(f"final: {name} test accuracy {100 * result.test_accuracy:.2f} % (Keras), trained in {result.train_seconds:.0f} s")
    outputs = write_training_outputs(
        out,
        name,
        result,
        recipe,
        data,
        seed=seed,
        limit=limit,
        extra={"search": {**source, "arch": arch.to_json(), "tag": arch.tag()}},
    )
    params = outputs["params"]

    compiled = compile_model(result.model, core, board, name, optimize=optimize, frontend=data.frontend)
    keras_predictions = np.asarray(result.test_predictions)
    release_session()
    write_bytes(out / f"{name}.lce.tflite", compiled.lce)
    # An audio model's deployable firmware takes raw samples (front end + network, NAME-CORE); the
    # network alone (NAME-CORE-network) is what runs here, on the dataset's features.
    whole = write_whole_firmware(compiled, out / "firmware" / f"{name}-{core.name}", core, board)
    network = f"{name}-{core.name}" + ("-network" if whole is not None else "")
    folder = write_firmware(compiled, out / "firmware" / network, core, board)
    count = len(data.x_test) if test_images is None else min(int(test_images), len(data.x_test))
    start = time.perf_counter()
    run = run_firmware(folder, core, data.x_test, count)
    host_agreement = float(np.mean(run.host_predictions == keras_predictions))
    qemu_agreement = float(np.mean(run.host_predictions[:count] == keras_predictions[:count]))
    accuracy = float(np.mean(run.host_predictions == data.y_test))
    flash, ram = compiled.flash_bytes, compiled.ram_bytes
    fits = flash <= board.flash_bytes and ram <= board.ram_bytes
    check = engine_difference(packed_size(arch, dsp=core.has_dsp), compiled.report)
    report = {
        "name": name,
        "h5": f"{name}.h5",
        "firmware": (whole or folder).relative_to(out).as_posix(),
        **({"network_firmware": folder.relative_to(out).as_posix()} if whole is not None else {}),
        "recipe": recipe.to_json(),
        "seed": seed,
        "keras_test_accuracy": float(result.test_accuracy),
        "firmware_test_accuracy": accuracy,
        "test_images": int(len(data.y_test)),
        "host_agreement_with_keras": host_agreement,
        "qemu_images": count,
        "qemu_agreement_with_keras": qemu_agreement,
        "flash_bytes": flash,
        "ram_bytes": ram,
        "optimize": optimize,
        "model_data_bytes": int(compiled.report["model_data_bytes"]),
        "arena_bytes": int(compiled.report["activation_ram_bytes"]),
        "estimate_check": check,
        "instructions": run.instructions,
        "instructions_detail": run.instructions_detail,
        "fits": fits,
        "train_seconds": round(result.train_seconds, 1),
        "measure_seconds": round(time.perf_counter() - start, 1),
        "params": params,
    }
    report["summary"] = [
        f"`{name}.h5`: `{arch.tag()}` (trial {source.get('trial')}), {recipe.name} recipe, seed {seed}, "
        f"{params:,} parameters, trained in {result.train_seconds / 60:.1f} minutes",
        f"test accuracy {100 * result.test_accuracy:.2f} % (Keras) on {len(data.y_test):,} images; "
        f"the generated C agrees with Keras on {100 * host_agreement:.2f} %, the firmware on QEMU {core.name} on "
        f"{100 * qemu_agreement:.2f} % of {count:,} images",
        f"deployable firmware ({optimize}-optimized engine code): {flash:,} B flash, {ram:,} B RAM "
        f"({'fits' if fits else 'does NOT fit'} {board.name}: {board.flash_bytes:,} / {board.ram_bytes:,}); "
        f"{run.instructions:,.0f} instructions per inference",
    ]
    retrained = source.get("retrained") or []
    if retrained:
        report["retrained"] = retrained
        report["summary"].insert(
            0,
            f"chosen on the validation split among {len(retrained)} final trainings with the {recipe.name} recipe "
            f"(the {len({row['trial'] for row in retrained})} most accurate trial(s) x "
            f"{len({row['seed'] for row in retrained})} seed(s)): "
            + "; ".join(
                f"trial {row['trial']} `{row['tag']}` seed {row['seed']} {100 * row['final_validation_accuracy']:.2f} %"
                + (f" (epoch {row['kept_epoch']})" if row.get("kept_epoch") not in (None, recipe.epochs) else "")
                + (" (kept)" if row["kept"] else "")
                for row in retrained
            )
            + _noise_note(retrained),
        )
    for line in report["summary"]:
        log(f"final: {line}")
    return report
