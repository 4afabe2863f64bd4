"""Training recipes: optimizer, learning-rate schedule, batch size, epochs, augmentation, per model.

``seed`` reproduces the seed study (Adam, batch 64, 6 epochs, constant learning rate). A recipe
is data; the trainer reads it, and ``NAME.train.json`` records every field of it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pipeline.limits import MAX_EPOCHS

__all__ = [
    "Recipe",
    "RECIPES",
    "RANGES",
    "Range",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "default_recipe",
    "get_recipe",
    "recipe_names",
    "parse_override",
]

OPTIMIZERS = ("adam", "bop", "sgd")
PRECISIONS = ("float32", "mixed_bfloat16")
SCHEDULES = ("constant", "cosine", "exponential")


@dataclass(frozen=True)
class Range:
    """The values a numeric recipe field takes: finite, from ``low`` to ``high`` (ends included
    unless open), whole numbers when ``whole``."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    whole: bool = False

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"

    def problem(self, key: str, value: Any) -> str | None:
        """Why ``value`` is not a valid ``key`` (``None``: it is): wrong type, NaN, infinite or out of range."""
        kinds = (int,) if self.whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"{key} must be {'a whole number' if self.whole else 'a number'} in {self}, got {value!r}"
        above = self.low < value if self.low_open else self.low <= value
        below = value < self.high if self.high_open else value <= self.high
        if not (math.isfinite(value) and above and below):
            return f"{key} must be in {self}, got {value!r}"
        return None


RANGES: dict[str, Range] = {
    "lr": Range(0, 10, low_open=True),
    "batch_size": Range(1, 65_536, whole=True),
    "epochs": Range(1, MAX_EPOCHS, whole=True),
    "final_lr_fraction": Range(0, 1),
    "warmup_fraction": Range(0, 1, high_open=True),
    "bn_momentum": Range(0, 1, high_open=True),
    "augment_shift": Range(0, 256),
    "augment_rotation": Range(0, 180),
    "augment_crop": Range(0, 256, whole=True),
    "logit_scale": Range(0, 1_000, low_open=True),
    "keep_best_epochs": Range(0, MAX_EPOCHS, whole=True),
    "bn_recalibration_images": Range(0, 10_000_000, whole=True),
    "distill_alpha": Range(0, 1),
    "distill_temperature": Range(0, 1_000, low_open=True),
    "bop_threshold": Range(0, 1),
    "bop_gamma": Range(0, 1),
    "momentum": Range(0, 1, high_open=True),
}
"""Every numeric field of :class:`Recipe` and the values it takes (``bn_momentum`` may also be
``None``; a ``keep_best_epochs`` above ``epochs`` chooses among every epoch, so ``--epochs 1`` works
with any recipe). NaN and infinities are never valid."""


@dataclass(frozen=True)
class Recipe:
    """How to train: every field lands in ``NAME.train.json``.

    Every numeric field is finite and in its :data:`RANGES` entry; a recipe outside them is
    refused when it is made (``ValueError`` naming the field and its range), before any training.

    Attributes:
        name: recipe name (``seed``, ``best``, ...).
        optimizer: ``adam`` (every weight), or ``bop`` (Larq's Bop flips the binary weights,
            Adam with ``lr`` trains the rest), or ``sgd`` (SGD with ``momentum``, every weight).
        lr: initial Adam learning rate.
        batch_size: images per step.
        epochs: passes over the training slice.
        schedule: ``constant``, ``cosine`` (cosine decay from ``lr`` to ``lr * final_lr_fraction``)
            or ``exponential`` (exponential decay to ``lr * final_lr_fraction`` at the last step).
        final_lr_fraction: learning rate at the last step as a fraction of ``lr`` (decaying schedules).
        warmup_fraction: ``cosine`` only: share of the steps over which the rate first rises
            linearly from ``lr / 25`` to ``lr`` before the cosine decay (0: no warm-up; about
            0.3 is the one-cycle policy's shape, without its momentum cycle).
        bn_momentum: moving-average momentum set on every BatchNormalization layer after build
            (``None``: keep the model's own, 0.99 in Keras). Changes no weight and no parameter count.
        augment_shift: largest random shift in pixels per axis, drawn per image and epoch (0: none).
        augment_rotation: largest random rotation in degrees, drawn per image and epoch (0: none).
        augment_crop: largest random translation in whole pixels per axis, the uncovered border
            filled with 0: the "pad by N, then take a random crop" augmentation of photo datasets
            (0: none).
        augment_flip: mirror each training image left-right with probability 1/2 (photos; not
            digits).
        logit_scale: the loss is the cross-entropy of ``logit_scale`` times the logits (1: plain;
            see :mod:`train.losses`). The model and its argmax predictions are unchanged.
        keep_best_epochs: keep the weights of the epoch most accurate on the validation split
            among the last ``keep_best_epochs`` (0: the last epoch's weights; ties keep the later
            epoch). A BNN's accuracy still swings by tenths of a point between its last epochs,
            its batch-norm thresholds drifting with the moving averages; this picks among them
            on held-back images only. Needs a validation split.
        bn_recalibration_images: after training, set every batch-norm layer's moving mean and
            variance to the exact statistics of this many (unaugmented) training images
            (0: keep the training-time moving averages; see :mod:`train.batchnorm`).
        distill_teacher: name of the recipe that first trains ``teacher_model`` as a teacher ("": no
            distillation, unless a trained teacher is given: ``python -m train --teacher FILE.h5``).
            The student then learns from soft targets (:mod:`train.distill`).
        teacher_model: the zoo model the ``distill_teacher`` recipe trains (the float ``cnn`` for MNIST).
        distill_alpha: weight of the teacher's predictions in the targets, in [0, 1].
        distill_temperature: softening of the teacher's predictions (1: as they are).
        bop_threshold: Bop's flip threshold (``optimizer == "bop"`` only).
        bop_gamma: Bop's initial adaptivity rate; it follows the same schedule as ``lr``.
        momentum: SGD's momentum (``optimizer == "sgd"`` only).
        precision: ``float32``, or ``mixed_bfloat16``: layers compute in bfloat16 while training
            (variables and the softmax output stay float32; about 1.5x faster on CPUs with
            AVX512-BF16); the saved model is float32 and every figure (validation, test,
            conversion) is computed in float32.
        description: one line for ``--help``.
    """

    name: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    schedule: str = "constant"
    final_lr_fraction: float = 0.0
    warmup_fraction: float = 0.0
    bn_momentum: float | None = None
    augment_shift: float = 0.0
    augment_rotation: float = 0.0
    augment_crop: int = 0
    augment_flip: bool = False
    logit_scale: float = 1.0
    keep_best_epochs: int = 0
    bn_recalibration_images: int = 0
    distill_teacher: str = ""
    teacher_model: str = "cnn"
    distill_alpha: float = 0.0
    distill_temperature: float = 1.0
    bop_threshold: float = 1e-8
    bop_gamma: float = 1e-4
    momentum: float = 0.9
    precision: str = "float32"
    description: str = ""

    def __post_init__(self) -> None:
        for key, valid in RANGES.items():
            value = getattr(self, key)
            problem = None if key == "bn_momentum" and value is None else valid.problem(key, value)
            if problem:
                raise ValueError(f"recipe {self.name!r}: {problem}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"recipe {self.name!r}: optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"recipe {self.name!r}: precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"recipe {self.name!r}: schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.schedule == "exponential" and self.final_lr_fraction <= 0.0:
            raise ValueError(f"recipe {self.name!r}: the exponential schedule needs final_lr_fraction > 0")
        if self.warmup_fraction > 0 and self.schedule != "cosine":
            raise ValueError(f"recipe {self.name!r}: warmup_fraction needs the cosine schedule, not {self.schedule!r}")
        if self.distill_teacher and self.distill_teacher == self.name:
            raise ValueError(f"recipe {self.name!r}: a recipe cannot be its own distillation teacher")

    @property
    def augments(self) -> bool:
        """True when the recipe shifts, rotates, crops or mirrors training images."""
        return self.augment_shift > 0 or self.augment_rotation > 0 or self.augment_crop > 0 or self.augment_flip

    def with_overrides(self, **changes: Any) -> Recipe:
        """Return a copy with the non-``None`` entries of ``changes`` applied."""
        return replace(self, **{key: value for key, value in changes.items() if value is not None})

    def to_json(self) -> dict[str, Any]:
        """The recipe as a JSON-ready dict."""
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    "seed": Recipe("seed", "adam", 1e-3, 64, 6, description="the seed study: Adam 1e-3, batch 64, 6 epochs"),
    "teacher": Recipe(
        "teacher",
        "adam",
        1e-3,
        64,
        8,
        schedule="cosine",
        augment_shift=2.0,
        augment_rotation=10.0,
        description="float teacher for distillation: Adam 1e-3 cosine, 8 epochs, +-2 px / +-10 deg",
    ),
    "fast": Recipe(
        "fast",
        "adam",
        8e-3,
        128,
        20,
        schedule="cosine",
        bn_momentum=0.9,
        augment_shift=1.0,
        augment_rotation=5.0,
        logit_scale=3.0,
        description="bcnn >= 99.0% in minutes: Adam 8e-3 cosine, batch 128, 20 epochs, BN momentum 0.9, "
        "+-1 px / +-5 deg, logit scale 3, no teacher",
    ),
    "teacher_fast": Recipe(
        "teacher_fast",
        "adam",
        2e-3,
        128,
        2,
        schedule="cosine",
        augment_shift=1.0,
        augment_rotation=5.0,
        description="a 2-epoch float teacher (tried with fast: it did not pay): Adam 2e-3 cosine, batch 128, +-1 px / +-5 deg",
    ),
    "best": Recipe(
        "best",
        "adam",
        2e-3,
        64,
        40,
        schedule="cosine",
        bn_momentum=0.9,
        augment_shift=1.0,
        augment_rotation=5.0,
        logit_scale=3.0,
        distill_teacher="teacher",
        distill_alpha=0.5,
        distill_temperature=2.0,
        description="bcnn >= 99%: Adam 2e-3 cosine, 40 epochs, BN momentum 0.9, +-1 px / +-5 deg, "
        "logit scale 3, distilled from the teacher-recipe cnn",
    ),
    # Photos (CIFAR-10-like): pad-and-crop by 4 pixels and mirror images, as is usual for small photos.
    "photo": Recipe(
        "photo",
        "adam",
        2e-3,
        128,
        120,
        schedule="cosine",
        bn_momentum=0.9,
        augment_crop=4,
        augment_flip=True,
        logit_scale=3.0,
        keep_best_epochs=5,
        distill_alpha=0.5,
        distill_temperature=2.0,
        precision="mixed_bfloat16",
        description="colour_bnn: Adam 2e-3 cosine, batch 128, 120 epochs, BN momentum 0.9, crop 4 + flip, logit scale 3, "
        "bfloat16 compute, best of the last 5 epochs; distils (alpha 0.5, T 2) from --teacher FILE.h5 when given",
    ),
    "resnet8_finetune": Recipe(
        "resnet8_finetune",
        "adam",
        1e-3,
        128,
        15,
        schedule="cosine",
        augment_crop=4,
        augment_flip=True,
        description="fine-tune a trained resnet8 (--init FILE.h5): Adam 1e-3 cosine, batch 128, 15 epochs, crop 4 + flip",
    ),
    "resnet8": Recipe(
        "resnet8",
        "adam",
        1e-3,
        128,
        200,
        schedule="cosine",
        augment_crop=4,
        augment_flip=True,
        keep_best_epochs=5,
        description="resnet8 from scratch: Adam 1e-3 cosine, batch 128, 200 epochs, crop 4 + flip, best of the last 5 epochs",
    ),
    # Keyword spotting on the audio front end's features: no augmentation (shifting or rotating a
    # spectrogram is not what a speaker does; a pad-and-crop of 2 bands cost 3 points on FSDD).
    "kws": Recipe(
        "kws",
        "adam",
        2e-3,
        128,
        100,
        schedule="cosine",
        bn_momentum=0.9,
        logit_scale=3.0,
        keep_best_epochs=5,
        description="kws_bnn: Adam 2e-3 cosine, batch 128, 100 epochs, BN momentum 0.9, logit scale 3, no augmentation, "
        "best of the last 5 epochs",
    ),
    "kws_float": Recipe(
        "kws_float",
        "adam",
        1e-3,
        128,
        80,
        schedule="cosine",
        keep_best_epochs=5,
        description="ds_cnn: Adam 1e-3 cosine, batch 128, 80 epochs, no augmentation, best of the last 5 epochs",
    ),
}

_DEFAULT_BY_MODEL = {
    "bcnn": "fast",
    "cnn": "seed",
    "mlp": "seed",
    "colour_bnn": "photo",
    "resnet8": "resnet8",
    "kws_bnn": "kws",
    "ds_cnn": "kws_float",
}


def default_recipe(model: str) -> str:
    """Name of the recipe ``python -m train --model MODEL`` uses without ``--recipe``."""
    return _DEFAULT_BY_MODEL.get(model, "seed")


def get_recipe(name: str, model: str | None = None) -> Recipe:
    """Look up a recipe by name; the study's recipes (``study``, ``study_full``) also by model.

    Raises:
        KeyError: unknown recipe, or a study recipe without a ``model`` it has an entry for.
    """
    from train.study_recipes import STUDY_RECIPES

    if name in STUDY_RECIPES:
        if model not in STUDY_RECIPES[name]:
            raise KeyError(f"recipe {name!r} has no entry for model {model!r} (it has {', '.join(STUDY_RECIPES[name])})")
        return STUDY_RECIPES[name][model]
    return RECIPES[name]


def recipe_names() -> dict[str, str]:
    """Every recipe name ``--recipe`` takes, with its one-line description."""
    from train.study_recipes import STUDY_DESCRIPTIONS

    return {**{name: recipe.description for name, recipe in RECIPES.items()}, **STUDY_DESCRIPTIONS}


# Field types as written in the dataclass (annotations are strings under `from __future__`).
_FIELD_TYPES = {field.name: str(field.type) for field in fields(Recipe)}
_NONE_WORDS = ("", "none")
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``--set KEY=VALUE`` into a :class:`Recipe` field name and a typed value.

    ``KEY`` is any field but ``name``; the value is read as the field's type (``int``,
    ``float``, ``bool`` (true/false, 1/0, yes/no), ``str``; ``none`` or nothing clears ``bn_momentum`` and ``distill_teacher``).

    Raises:
        ValueError: no ``=``, an unknown or read-only key, or a value of the wrong type.
    """
    key, sep, raw = text.partition("=")
    key, raw = key.strip().replace("-", "_"), raw.strip()
    if not sep:
        raise ValueError(f"--set {text!r}: expected KEY=VALUE")
    if key not in _FIELD_TYPES or key == "name":
        known = ", ".join(name for name in _FIELD_TYPES if name != "name")
        raise ValueError(f"--set {text!r}: unknown recipe field {key!r} (one of: {known})")
    kind = _FIELD_TYPES[key]
    if kind == "bool":
        if raw.lower() not in _BOOL_WORDS:
            raise ValueError(f"--set {text!r}: {key} takes true or false (or 1 / 0, yes / no)")
        return key, _BOOL_WORDS[raw.lower()]
    if kind == "str":
        if key == "distill_teacher" and raw.lower() in _NONE_WORDS:
            return key, ""
        if key == "distill_teacher" and raw not in RECIPES:
            raise ValueError(f"--set {text!r}: no recipe named {raw!r} (one of: {', '.join(RECIPES)})")
        return key, raw
    if "None" in kind and raw.lower() in _NONE_WORDS:
        return key, None
    try:
        return key, int(raw) if kind == "int" else float(raw)
    except ValueError:
        raise ValueError(f"--set {text!r}: {key} takes {'an integer' if kind == 'int' else 'a number'}") from None
