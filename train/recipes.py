"""Training recipes: optimizer, learning rate, batch size, epochs, per model.

``seed`` reproduces the seed study (Adam, batch 64, 6 epochs). A recipe is data; the
trainer reads it, and ``NAME.train.json`` records it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["Recipe", "RECIPES", "default_recipe", "get_recipe"]


@dataclass(frozen=True)
class Recipe:
    """How to train: every field lands in ``NAME.train.json``.

    Attributes:
        name: recipe name (``seed``, ...).
        optimizer: ``adam``.
        lr: initial learning rate.
        batch_size: images per step.
        epochs: passes over the training slice.
        schedule: ``constant`` or ``cosine`` (decay to 0 over all steps).
        description: one line for ``--help``.
    """

    name: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    schedule: str = "constant"
    description: str = ""

    def with_overrides(self, **changes: Any) -> Recipe:
        """Return a copy with the non-``None`` entries of ``changes`` applied."""
        return replace(self, **{key: value for key, value in changes.items() if value is not None})

    def to_json(self) -> dict[str, Any]:
        """The recipe as a JSON-ready dict."""
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    "seed": Recipe("seed", "adam", 1e-3, 64, 6, description="the seed study: Adam 1e-3, batch 64, 6 epochs"),
}

_DEFAULT_BY_MODEL = {"bcnn": "seed", "cnn": "seed", "mlp": "seed"}


def default_recipe(model: str) -> str:
    """Name of the recipe ``python -m train --model MODEL`` uses without ``--recipe``."""
    return _DEFAULT_BY_MODEL.get(model, "seed")


def get_recipe(name: str) -> Recipe:
    """Look up a recipe by name.

    Raises:
        KeyError: unknown recipe.
    """
    return RECIPES[name]
