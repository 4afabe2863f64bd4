"""One trial of the search: draw a candidate, size it, prune it or train it, compile it, measure it.

Steps (each prints one line through ``setup.log``):

1. draw an architecture from the space (:func:`search.space.sample_arch`); a candidate equal to
   a completed trial returns that trial's measurements, one equal to a pruned trial is pruned
   for the same reason (nothing is compiled or trained twice);
2. packed size from the architecture alone (:func:`search.estimate.packed_size`): pruned when
   the engine could not compile it, or when its model data or arena alone exceed the board;
3. when the packed size comes close to the budget (within :data:`CODE_ALLOWANCE` of flash or
   :data:`RAM_ALLOWANCE` of RAM; every trial with ``prebuild="always"``), the untrained candidate
   compiled by the bnn engine and its deployable ELF built for the board's core: pruned when the
   whole deployable firmware (engine code included) exceeds the board's flash or RAM. Training
   only starts for a candidate that fits;
4. training with the trial recipe on the training slice (the validation split held back);
5. the trained model converted and compiled again, written as a firmware folder; the estimate
   is compared with what the engine reports (recorded in ``estimate_check``);
6. the generated C on the host over the whole validation split (the accuracy objective), and
   the firmware under QEMU on the first ``qemu_images`` of it (instructions per inference; its
   classes must equal the host build's).

Objectives (:data:`OBJECTIVES`): validation accuracy of the firmware (maximise), deployable
flash, deployable RAM and instructions per inference (minimise). The board's flash and RAM and
``--max-instructions`` are constraints (``trial.set_constraint``: overshoot in bytes or
instructions, feasible when <= 0); a candidate pruned for its size gets its overshoot as
constraints too, so the sampler learns where the board's limits lie.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware_gen.targets import Board, Core
from pipeline.data import Dataset
from search.estimate import packed_size
from search.space import SearchSpace, sample_arch
from search.training import image_shape

__all__ = ["OBJECTIVES", "CONSTRAINTS", "TrialSetup", "Objective", "trial_name"]

OBJECTIVES = (
    ("accuracy", "maximize"),
    ("flash_bytes", "minimize"),
    ("ram_bytes", "minimize"),
    ("instructions", "minimize"),
)
CONSTRAINTS = ("flash_bytes", "ram_bytes", "instructions")
PREBUILDS = ("auto", "always")
CODE_ALLOWANCE = 6 * 1024
"""Flash bytes beyond the model data that the engine's code never reaches (measured: 2.2 to 2.8 KiB
for one to five layers on Cortex-M0 at -Os; each trial records its own)."""
RAM_ALLOWANCE = 1024
"""RAM bytes beyond the arena that the engine's static data and deepest stack never reach (measured: about 650 B)."""


@dataclass
class TrialSetup:
    """What every trial of one worker shares.

    Attributes:
        board: the board (flash and RAM budgets; its core is the target).
        core: the board's core.
        space: the search space.
        recipe: the trial recipe (:class:`train.recipes.Recipe`).
        data: the trial dataset (:func:`search.training.trial_data`: "test" is the validation split).
        out: the search's output folder (trial artifacts go to ``out/trials/NNNN``).
        qemu_images: validation images run under QEMU per trial.
        max_instructions: a limit on instructions per inference, or ``None``.
        seed: base seed (trial ``n`` trains with ``seed + n``).
        log: prints one line.
        prebuild: ``auto``: build the untrained firmware only when the packed size comes within
            :data:`CODE_ALLOWANCE` / :data:`RAM_ALLOWANCE` of the budget; ``always``: every trial.
        optimize: the bnn engine's ``speed`` or ``size`` code for every candidate.
    """

    board: Board
    core: Core
    space: SearchSpace
    recipe: Any
    data: Dataset
    out: Path
    qemu_images: int
    max_instructions: float | None
    seed: int
    log: Callable[[str], None] = print
    prebuild: str = "auto"
    optimize: str = "speed"


def _clearly_fits(model_data_bytes: int, arena_bytes: int, board: Board) -> bool:
    """True when the packed size leaves so much room that the engine's code and stack cannot
    break the budget (:data:`CODE_ALLOWANCE`, :data:`RAM_ALLOWANCE`): no need to build the
    untrained firmware to know it fits."""
    return model_data_bytes + CODE_ALLOWANCE <= board.flash_bytes and arena_bytes + RAM_ALLOWANCE <= board.ram_bytes


def trial_name(number: int) -> str:
    """Model name of trial ``number``: ``trial0007``."""
    return f"trial{number:04d}"


def _kb(count: float) -> str:
    return f"{int(count):,} B"


class Objective:
    """The Optuna objective: ``objective(trial) -> (accuracy, flash_bytes, ram_bytes, instructions)``."""

    def __init__(self, setup: TrialSetup) -> None:
        self.setup = setup

    def __call__(self, trial: Any) -> tuple[float, float, float, float]:
        """Run one trial (see the module docstring).

        Raises:
            optuna.TrialPruned: the candidate cannot be built or cannot fit the board.
            Exception: anything else (the engine refused the model, a build or run failed): the
                first line is recorded as the trial's ``error`` and printed, then re-raised.
        """
        import optuna

        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            from pipeline.errors import first_line

            trial.set_user_attr("error", f"{type(err).__name__}: {first_line(err)}")
            self.setup.log(f"trial {trial.number}: failed: {type(err).__name__}: {first_line(err)}")
            raise

    def _run(self, trial: Any) -> tuple[float, float, float, float]:
        setup = self.setup
        started = time.perf_counter()
        height, width, channels = image_shape(setup.data)
        arch = sample_arch(
            trial, setup.space, classes=setup.data.num_classes, input_size=(height, width), input_channels=channels
        )
        trial.set_user_attr("arch", arch.to_json())
        trial.set_user_attr("tag", arch.tag())
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        say = lambda text: setup.log(f"trial {trial.number}: {text}")
        say(arch.tag())

        twin = self._measured_twin(trial)
        if twin is not None and twin.state.name == "PRUNED":
            for key, value in twin.constraints.items():
                trial.set_constraint(key, value)
            trial.set_user_attr("duplicate_of", twin.number)
            return self._prune(trial, say, f"same candidate as trial {twin.number}: {twin.user_attrs.get('pruned', 'pruned')}")
        if twin is not None:
            for key, value in twin.user_attrs.items():
                if key not in ("arch", "tag", "worker"):
                    trial.set_user_attr(key, value)
            for key, value in twin.constraints.items():
                trial.set_constraint(key, value)
            trial.set_user_attr("duplicate_of", twin.number)
            say(f"same candidate as trial {twin.number}: its measurements are reused")
            return tuple(twin.values)  # type: ignore[return-value]

        estimate = packed_size(arch, dsp=setup.core.has_dsp)
        trial.set_user_attr("estimate", estimate.to_json())
        if estimate.problem is not None:
            return self._prune(trial, say, f"cannot be compiled: {estimate.problem}")
        board = setup.board
        say(f"packed size {_kb(estimate.model_data_bytes)} of model data, {_kb(estimate.arena_bytes)} of arena")
        if estimate.model_data_bytes > board.flash_bytes or estimate.arena_bytes > board.ram_bytes:
            self._constrain(trial, estimate.model_data_bytes - board.flash_bytes, estimate.arena_bytes - board.ram_bytes, 0.0)
            return self._prune(
                trial,
                say,
                f"packed size over budget: {_kb(estimate.model_data_bytes)} data / {_kb(estimate.arena_bytes)} arena "
                f"for {_kb(board.flash_bytes)} flash / {_kb(board.ram_bytes)} RAM",
            )

        from search.builder import build_model
        from search.measure import compile_model, engine_difference, run_firmware, write_firmware
        from search.training import release_session, train_candidate

        name = trial_name(trial.number)
        frontend = setup.data.frontend  # an audio dataset: the firmware carries the front end too
        prebuild = setup.prebuild == "always" or frontend is not None
        if prebuild or not _clearly_fits(estimate.model_data_bytes, estimate.arena_bytes, board):
            phase = time.perf_counter()
            untrained = compile_model(
                build_model(arch, name), setup.core, board, name, optimize=setup.optimize, frontend=frontend
            )
            release_session()
            before = {
                "flash_bytes": untrained.flash_bytes,
                "ram_bytes": untrained.ram_bytes,
                "estimate_check": engine_difference(estimate, untrained.report),
                "score_int64": bool(untrained.report.get("score_int64")),
                "seconds": round(time.perf_counter() - phase, 2),
            }
            trial.set_user_attr("untrained_firmware", before)
            say(f"untrained firmware {_kb(before['flash_bytes'])} flash, {_kb(before['ram_bytes'])} RAM (measured)")
            if before["flash_bytes"] > board.flash_bytes or before["ram_bytes"] > board.ram_bytes:
                self._constrain(trial, before["flash_bytes"] - board.flash_bytes, before["ram_bytes"] - board.ram_bytes, 0.0)
                return self._prune(
                    trial,
                    say,
                    f"firmware over budget before training: {_kb(before['flash_bytes'])} flash / {_kb(before['ram_bytes'])} RAM "
                    f"for {_kb(board.flash_bytes)} / {_kb(board.ram_bytes)}",
                )

        phase = time.perf_counter()
        result = train_candidate(arch, setup.recipe, setup.data, seed=setup.seed + trial.number, name=name)
        train_seconds = time.perf_counter() - phase
        say(f"trained in {train_seconds:.0f} s: Keras validation accuracy {100 * result.test_accuracy:.2f} %")
        folder = setup.out / "trials" / f"{trial.number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        _save_model(result.model, folder / f"{name}.h5")

        phase = time.perf_counter()
        compiled = compile_model(result.model, setup.core, board, name, optimize=setup.optimize, frontend=frontend)
        release_session()
        (folder / f"{name}.lce.tflite").write_bytes(compiled.lce)
        firmware = write_firmware(compiled, folder / "firmware", setup.core, board)
        compile_seconds = time.perf_counter() - phase
        check = engine_difference(estimate, compiled.report)
        run = run_firmware(firmware, setup.core, setup.data.x_test, setup.qemu_images)
        labels = setup.data.y_test
        accuracy = float(np.mean(run.host_predictions == labels))
        keras_agreement = float(np.mean(run.host_predictions == result.test_predictions))
        flash, ram = compiled.flash_bytes, compiled.ram_bytes
        over = [
            float(flash - board.flash_bytes),
            float(ram - board.ram_bytes),
            float(run.instructions - setup.max_instructions) if setup.max_instructions else 0.0,
        ]
        self._constrain(trial, *over)
        attrs = {
            "constraints": dict(zip(CONSTRAINTS, over, strict=True)),
            "feasible": all(value <= 0 for value in over),
            "keras_val_accuracy": float(result.test_accuracy),
            "firmware_val_accuracy": accuracy,
            "val_images": len(labels),
            "keras_agreement": keras_agreement,
            "qemu_images": run.qemu_images,
            "qemu_agreement": run.qemu_agreement,
            "instructions_detail": run.instructions_detail,
            "qemu_flash_bytes": run.flash_bytes,
            "qemu_ram_bytes": run.ram_bytes,
            "model_data_bytes": int(compiled.report["model_data_bytes"]),
            "code_bytes": flash - int(compiled.report["model_data_bytes"]),
            "arena_bytes": int(compiled.report["activation_ram_bytes"]),
            "score_int64": bool(compiled.report.get("score_int64")),
            "estimate_check": check,
            "params": int(result.model.count_params()),
            "train_seconds": round(train_seconds, 1),
            "compile_seconds": round(compile_seconds, 1),
            "run_seconds": run.seconds,
            "seconds": round(time.perf_counter() - started, 1),
            "seed": setup.seed + trial.number,
            "artifacts": folder.relative_to(setup.out).as_posix(),
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        release_session()
        verdict = "fits" if attrs["feasible"] else "does NOT fit"
        say(
            f"firmware validation accuracy {100 * accuracy:.2f} % on {len(labels)} images (Keras agreement "
            f"{100 * keras_agreement:.2f} %), {_kb(flash)} flash, {_kb(ram)} RAM, {run.instructions:,.0f} instructions "
            f"({run.qemu_images} images on QEMU {setup.core.name}); {verdict} {board.name}; "
            f"estimate {'exact' if not check else 'differs: ' + '; '.join(check)}; {attrs['seconds']:.0f} s"
        )
        return accuracy, float(flash), float(ram), float(run.instructions)

    def _measured_twin(self, trial: Any) -> Any:
        """A completed or pruned trial of the study with the same parameters, or ``None``."""
        from optuna.trial import TrialState

        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if other.number != trial.number and other.params == trial.params and "duplicate_of" not in other.user_attrs:
                return other
        return None

    @staticmethod
    def _constrain(trial: Any, flash: float, ram: float, instructions: float) -> None:
        """Record the overshoot on each budget (bytes or instructions; <= 0 means within it)."""
        for key, value in zip(CONSTRAINTS, (flash, ram, instructions), strict=True):
            trial.set_constraint(key, float(value))

    @staticmethod
    def _prune(trial: Any, say: Callable[[str], None], reason: str) -> Any:
        import optuna

        trial.set_user_attr("pruned", reason)
        say(f"pruned: {reason}")
        raise optuna.TrialPruned(reason)


def _save_model(model: Any, path: Path) -> None:
    from pipeline.keras_files import save_h5_model

    save_h5_model(model, path)
