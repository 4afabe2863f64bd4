"""The search's result as a model for the rest of the pipeline: retrain the best candidate, write it, measure it.

:func:`finalize` takes the best feasible trial's architecture, trains it again with the full
recipe on the whole training slice (the validation split held out as ``python -m train``
does), and writes into the output folder what ``python -m train`` writes for a zoo model:
``NAME.h5``, ``NAME.train.json`` (with a ``search`` entry naming the study, the trial and the
architecture), ``NAME.history.png`` and ``NAME.confusion.png``. Only here is the MNIST test set
used. The model is then compiled by the bnn engine for the board's core
(``NAME.lce.tflite``, ``firmware/NAME-CORE/``) and run: the generated C on the host and the
firmware on QEMU over the test images, both compared with Keras, flash and RAM of the
deployable ELF against the board.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from firmware_gen.targets import Board, Core
from pipeline.artifacts import write_bytes
from pipeline.data import Dataset
from search.space import Arch

__all__ = ["finalize"]


def finalize(
    arch: Arch,
    *,
    name: str,
    recipe: Any,
    data: Dataset,
    limit: int | None,
    seed: int,
    board: Board,
    core: Core,
    out: Path,
    test_images: int | None,
    source: dict[str, Any],
    log: Any = print,
) -> dict[str, Any]:
    """Retrain ``arch`` with ``recipe``, write it as ``NAME.h5`` and measure its firmware.

    Args:
        arch: the chosen architecture.
        name: the model name (``NAME.h5``).
        recipe: the full recipe (:class:`train.recipes.Recipe`).
        data: the whole dataset (test split included).
        limit: first ``limit`` training images (``None``: all).
        seed: training seed.
        board: the board (its budgets are checked).
        core: its core.
        out: output folder.
        test_images: test images run on QEMU (``None``: all of them; the host C runs all anyway).
        source: the study, trial and validation figures the model comes from (recorded).
        log: prints one line.

    Returns:
        The ``final`` entry of ``search.json``: paths, test accuracy, agreements, flash, RAM,
        instructions, budget verdict and a ``summary`` (lines for the markdown).

    Raises:
        CheckError: the firmware disagrees with Keras, or a build or run failed.
    """
    from search.estimate import packed_size
    from search.measure import compile_model, engine_difference, run_firmware, write_firmware
    from search.training import release_session, train_candidate
    from train.outputs import write_training_outputs

    log(f"final: training {arch.tag()} as {name} with the {recipe.name} recipe ({recipe.epochs} epochs)")
    result = train_candidate(arch, recipe, data, seed=seed, name=name, limit=limit)
    log(f"final: {name} test accuracy {100 * result.test_accuracy:.2f} % (Keras), trained in {result.train_seconds:.0f} s")
    trained = write_training_outputs(
        out,
        name,
        result,
        recipe,
        data,
        seed=seed,
        limit=limit,
        extra={"search": {**source, "arch": arch.to_json(), "tag": arch.tag()}},
    )
    params = trained["params"]

    compiled = compile_model(result.model, core, board, name)
    keras_predictions = np.asarray(result.test_predictions)
    release_session()
    write_bytes(out / f"{name}.lce.tflite", compiled.lce)
    folder = write_firmware(compiled, out / "firmware" / f"{name}-{core.name}", core, board)
    count = len(data.x_test) if test_images is None else min(int(test_images), len(data.x_test))
    start = time.perf_counter()
    run = run_firmware(folder, core, data.x_test, count)
    host_agreement = float(np.mean(run.host_predictions == keras_predictions))
    qemu_agreement = float(np.mean(run.host_predictions[:count] == keras_predictions[:count]))
    accuracy = float(np.mean(run.host_predictions == data.y_test))
    flash, ram = compiled.flash_bytes, compiled.ram_bytes
    fits = flash <= board.flash_bytes and ram <= board.ram_bytes
    check = engine_difference(packed_size(arch), compiled.report)
    report = {
        "name": name,
        "h5": f"{name}.h5",
        "firmware": folder.relative_to(out).as_posix(),
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
        f"deployable firmware: {flash:,} B flash, {ram:,} B RAM ({'fits' if fits else 'does NOT fit'} {board.name}: "
        f"{board.flash_bytes:,} / {board.ram_bytes:,}); {run.instructions:,.0f} instructions per inference",
    ]
    for line in report["summary"]:
        log(f"final: {line}")
    return report
