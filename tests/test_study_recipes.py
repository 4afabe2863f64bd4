"""The study's recipes: one per model, the study's settings, SGD with momentum."""

from __future__ import annotations

import pytest

from train.recipes import get_recipe, parse_override, recipe_names
from train.study_recipes import STUDY_RECIPES

STUDY_MODELS = ("logreg", "mlp", "bc_mlp", "cnn", "bc_cnn", "bcnn")


def test_every_study_model_has_both_recipes():
    for name in ("study", "study_full"):
        assert set(STUDY_RECIPES[name]) == set(STUDY_MODELS)
    assert all(get_recipe("study", model).name == "study" for model in STUDY_MODELS)
    # study_full only changes bc_cnn; the other models keep their study recipe, name included
    assert all(get_recipe("study_full", model) == get_recipe("study", model) for model in STUDY_MODELS if model != "bc_cnn")
    assert get_recipe("study_full", "bc_cnn").name == "study_full"
    assert {"study", "study_full", "seed", "best"} <= set(recipe_names())


def test_study_settings():
    for model in ("logreg", "mlp", "bc_mlp"):
        recipe = get_recipe("study", model)
        assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.epochs) == ("adam", 1e-3, 512, 10)
    cnn = get_recipe("study", "cnn")
    assert (cnn.optimizer, cnn.lr, cnn.momentum) == ("sgd", 1e-3, 0.9)
    full = get_recipe("study_full", "bc_cnn")
    assert (full.optimizer, full.lr, full.batch_size, full.epochs, full.schedule) == ("adam", 2e-3, 8, 40, "exponential")
    assert full.final_lr_fraction == pytest.approx(0.9**40)  # 0.9 per epoch
    practical = get_recipe("study", "bc_cnn")
    assert practical.with_overrides(name="study_full", batch_size=8, description=full.description) == full
    assert (
        get_recipe("study", "bcnn").to_json()
        == get_recipe("seed").with_overrides(name="study", description=get_recipe("study", "bcnn").description).to_json()
    )


def test_study_recipe_needs_a_model():
    with pytest.raises(KeyError, match="study"):
        get_recipe("study")
    with pytest.raises(KeyError, match="resnet"):
        get_recipe("study", "resnet")


def test_sgd_optimizer_and_momentum():
    import tensorflow as tf

    from train.optim import make_optimizer

    optimizer = make_optimizer(get_recipe("study", "cnn"), steps=10)
    assert isinstance(optimizer, tf.keras.optimizers.SGD)
    assert float(optimizer.momentum) == pytest.approx(0.9)
    assert parse_override("momentum=0.5") == ("momentum", 0.5)
    with pytest.raises(ValueError, match="momentum"):
        get_recipe("study", "cnn").with_overrides(momentum=1.0)
