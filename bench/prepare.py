"""Get the benchmark's models ready: reuse the artifacts that match, train and convert the rest.

A model is trained with its default recipe (:func:`train.recipes.default_recipe`: ``fast`` for
the bcnn, >= 99.0 %; ``seed`` for the cnn and the mlp), or with the recipe the caller asks for
(``python -m bench --train-recipe NAME``), never a weaker one by default. A trained model is
reused when ``NAME.h5`` and ``NAME.train.json`` exist and the report says it was trained with
that recipe, on the whole training set of the same MNIST files (sha256), with the zoo's current
architecture (same parameter count); a model left in ``artifacts/`` by another recipe (``make
demo RECIPE=seed``) is trained again, so the figures do not depend on what happens to be there.
The recipe of every model is reported. With ``reuse=True`` the ``.h5`` is taken as it is,
without those checks (nothing is ever trained; its recipe is still reported).

The flatbuffers are reused when ``NAME.convert.json`` names the ``.h5``'s sha256 as its source
and every flatbuffer it lists is on disk with the recorded sha256; otherwise
``python -m convert`` runs again. Both are the project's own commands: ``python -m train`` in a
child process (training is long and heavy), ``python -m convert`` through its ``main`` in this
process (it saves a TensorFlow start per model).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.artifacts import sha256_file
from pipeline.errors import CheckError, InputError
from pipeline.json_input import parse_json

__all__ = [
    "MODELS",
    "train_recipe",
    "Prepared",
    "read_json",
    "training_mismatch",
    "conversion_mismatch",
    "flatbuffer_path",
    "child_error",
    "prepare_model",
]

MODELS = ("bcnn", "cnn", "mlp")


def train_recipe(name: str, requested: str | None = None) -> str:
    """The recipe the bench trains (and reuses) model ``name`` with: ``requested``, else the model's default.

    The default is :func:`train.recipes.default_recipe` (``fast`` for the bcnn), what
    ``python -m train --model NAME`` uses; a weaker recipe (``seed`` for the bcnn) only when asked.
    """
    from train.recipes import default_recipe

    return requested or default_recipe(name)


@dataclass
class Prepared:
    """One model as the benchmark uses it.

    Attributes:
        name: zoo name.
        h5: the Keras model.
        h5_sha256: its sha256.
        train_report: ``NAME.train.json`` (empty when there is none, with ``reuse``).
        trained: trained by this run.
        converted: converted by this run.
        flatbuffers: format (``float``, ``int8``, ``lce``) -> path, the formats convert wrote.
        skipped: format -> why convert skipped it (``int8`` of a binary model).
        convert_report: ``NAME.convert.json``.
        seconds: time spent training and converting in this run.
    """

    name: str
    h5: Path
    h5_sha256: str
    train_report: dict[str, Any]
    trained: bool = False
    converted: bool = False
    flatbuffers: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    convert_report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def recipe(self) -> str | None:
        """The name of the recipe that trained the model, from its train report (``None``: no report)."""
        return _recipe_name(self.train_report)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (paths, sha256, recipe, what this run did)."""
        return {
            "h5": str(self.h5),
            "h5_sha256": self.h5_sha256,
            "recipe": self.recipe,
            "epochs": self.train_report.get("epochs"),
            "params": self.train_report.get("params"),
            "train_images": self.train_report.get("train_images"),
            "keras_test_accuracy_at_training": self.train_report.get("test_accuracy"),
            "train_seconds": self.train_report.get("train_seconds"),
            "trained_this_run": self.trained,
            "converted_this_run": self.converted,
            "flatbuffers": {
                fmt: {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
                for fmt, path in sorted(self.flatbuffers.items())
            },
            "skipped_formats": dict(self.skipped),
            "prepare_seconds": round(self.seconds, 2),
        }


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or ``None`` if missing or not a JSON object."""
    try:
        value = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def training_mismatch(
    name: str, report: dict[str, Any] | None, data_sha256: dict[str, str], zoo_params: int, recipe: str | None = None
) -> str | None:
    """Why a ``NAME.train.json`` does not describe a model the benchmark can reuse (``None``: it does).

    Args:
        name: zoo name.
        report: the parsed ``NAME.train.json`` (``None`` when missing or unreadable).
        data_sha256: sha256 of the MNIST files this run reads (``Dataset.sha256``).
        zoo_params: parameter count of the zoo's current ``name`` model.
        recipe: the recipe the model must have been trained with (``None``: any).
    """
    if report is None:
        return "no readable train report"
    if report.get("model") != name:
        return f"the train report is for model {report.get('model')!r}"
    if report.get("limit") is not None:
        return f"trained on the first {report.get('limit')} images only"
    if recipe is not None and _recipe_name(report) != recipe:
        return f"trained with the {_recipe_name(report)} recipe, not {recipe}"
    if report.get("params") != zoo_params:
        return f"{report.get('params')} parameters, the zoo's {name} has {zoo_params}"
    data = report.get("data")
    recorded = data.get("sha256") if isinstance(data, dict) else None
    if recorded != data_sha256:
        return "trained on other MNIST files (sha256 differs)"
    return None


def flatbuffer_path(folder: Path, entry: dict[str, Any]) -> Path:
    """Where a convert report's format entry is on disk: its file name in the report's folder.

    ``python -m convert`` records the path as it was given (often relative to where it ran);
    the flatbuffers always sit beside the report.
    """
    return folder / Path(str(entry.get("path"))).name


def conversion_mismatch(h5_sha256: str, report: dict[str, Any] | None, folder: Path) -> str | None:
    """Why a ``NAME.convert.json`` does not describe up-to-date flatbuffers of the ``.h5`` (``None``: it does).

    Args:
        h5_sha256: sha256 of the ``.h5`` now on disk.
        report: the parsed ``NAME.convert.json`` (``None`` when missing or unreadable).
        folder: the report's folder (where its flatbuffers are).
    """
    if report is None:
        return "no readable convert report"
    source = report.get("source")
    if not isinstance(source, dict) or source.get("sha256") != h5_sha256:
        return "converted from another .h5 (sha256 differs)"
    formats = report.get("formats")
    if not isinstance(formats, dict) or "float" not in formats or "lce" not in formats:
        return "the convert report lacks the float or lce format"
    for entry in formats.values():
        if not isinstance(entry, dict) or entry.get("skipped"):
            continue
        path = flatbuffer_path(folder, entry)
        if not path.is_file():
            return f"{path} is missing"
        if sha256_file(path) != entry.get("sha256"):
            return f"{path} changed since it was converted"
    return None


def _zoo_params(name: str) -> int:
    from train.models import build_model

    return int(build_model(name).count_params())


def _recipe_name(report: dict[str, Any] | None) -> str | None:
    recipe = (report or {}).get("recipe")
    return recipe.get("name") if isinstance(recipe, dict) else None


def child_error(stderr: str) -> str:
    """The reason in a stage's one-line error (``python -m convert: error: REASON`` -> ``REASON``).

    A stage run from bench reports its failure on stderr; bench repeats the reason in its own
    single line instead of printing a second one.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no error message"
    last = lines[-1]
    marker = ": error: "
    return last.split(marker, 1)[1] if marker in last else last


def _run(command: list[str], what: str, log: Callable[[str], None]) -> None:
    log(f"running: {' '.join(command)}")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()][-3:]
        raise CheckError(f"{what} failed (exit {result.returncode}): {' | '.join(tail)}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if lines:
        log(lines[-1])


def _convert(h5: Path, out: Path, check_images: int, data_dir: str | None, log: Callable[[str], None]) -> None:
    """``python -m convert H5 --out OUT --check N [--data DIR]``, in this process (no second TensorFlow start)."""
    from convert.cli import main as convert_main

    args = [str(h5), "--out", str(out), "--check", str(check_images), *(["--data", data_dir] if data_dir else [])]
    log(f"running: python -m convert {' '.join(args)}")
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        status = convert_main(args)
    if status != 0:
        raise CheckError(f"python -m convert {h5} failed (exit {status}): {child_error(errors.getvalue())}")
    lines = [line for line in printed.getvalue().splitlines() if line.strip()]
    if lines:
        log(lines[-1])


def prepare_model(
    name: str,
    artifacts: Path,
    *,
    data_sha256: dict[str, str],
    data_dir: str | None,
    reuse: bool,
    check_images: int,
    recipe: str | None = None,
    log: Callable[[str], None] = print,
) -> Prepared:
    """Reuse or produce ``artifacts/NAME.h5`` and its flatbuffers.

    Args:
        name: zoo name.
        artifacts: the artifacts folder.
        data_sha256: sha256 of the MNIST files of this run.
        data_dir: ``--data`` passed on to train and convert (``None``: their default).
        reuse: take an existing ``.h5`` as it is; never train.
        check_images: ``--check`` for ``python -m convert`` when it has to run.
        recipe: the recipe to train with and to require of a reused model (``None``: the
            model's default, :func:`train_recipe`).
        log: progress printer.

    Returns:
        The :class:`Prepared` model.

    Raises:
        InputError: ``reuse`` and no ``.h5``.
        CheckError: training or conversion failed.
    """
    start = time.perf_counter()
    h5 = artifacts / f"{name}.h5"
    train_report = read_json(artifacts / f"{name}.train.json")
    trained = False
    if reuse:
        if not h5.is_file():
            raise InputError(f"--reuse: {h5} does not exist (run without --reuse to train it)")
        log(f"{name}: reusing {h5} as it is (--reuse; {_recipe_name(train_report)} recipe)")
    else:
        wanted = train_recipe(name, recipe)
        reason = "no .h5" if not h5.is_file() else training_mismatch(name, train_report, data_sha256, _zoo_params(name), wanted)
        if reason is None:
            log(f"{name}: reusing {h5} ({wanted} recipe)")
        else:
            log(f"{name}: training with the {wanted} recipe ({reason})")
            command = [sys.executable, "-m", "train", "--model", name, "--recipe", wanted, "--quiet"]
            command += ["--out", str(artifacts)]
            _run(command + (["--data", data_dir] if data_dir else []), f"python -m train --model {name}", log)
            train_report = read_json(artifacts / f"{name}.train.json")
            trained = True
    h5_sha256 = sha256_file(h5)
    report_path = artifacts / f"{name}.convert.json"
    convert_report = read_json(report_path)
    reason = conversion_mismatch(h5_sha256, convert_report, artifacts)
    converted = False
    if reason is not None:
        log(f"{name}: converting ({reason})")
        _convert(h5, artifacts, check_images, data_dir, log)
        convert_report = read_json(report_path)
        converted = True
        if convert_report is None or conversion_mismatch(h5_sha256, convert_report, artifacts) is not None:
            raise CheckError(f"python -m convert did not leave a consistent {report_path}")
    if convert_report is None:  # conversion_mismatch returns a reason for a missing report
        raise CheckError(f"{report_path}: no convert report")
    flatbuffers, skipped = {}, {}
    for fmt, entry in convert_report["formats"].items():
        if entry.get("skipped"):
            skipped[fmt] = str(entry.get("reason"))
        else:
            flatbuffers[fmt] = flatbuffer_path(artifacts, entry)
    return Prepared(
        name=name,
        h5=h5,
        h5_sha256=h5_sha256,
        train_report=train_report or {},
        trained=trained,
        converted=converted,
        flatbuffers=flatbuffers,
        skipped=skipped,
        convert_report=convert_report,
        seconds=time.perf_counter() - start,
    )
