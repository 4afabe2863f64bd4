"""Training recipes: augmentation, schedules, optimizers, BN momentum and the recorded recipe.

Fast: tiny slices and one epoch. The accuracy of the ``best`` recipe itself is a benchmark
(``bench/recipes.md``), not a test.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from itertools import pairwise

import numpy as np
import pytest
from conftest import run_module, stderr_lines

from train.augment import augment_images, transform_images
from train.recipes import RANGES, RECIPES, Recipe, default_recipe, get_recipe, parse_override

BCNN_PARAMS = 93_790


# --- augmentation ---------------------------------------------------------------------------


def test_augment_keeps_shape_dtype_and_range(mnist):
    images = mnist.x_train[:64]
    out = augment_images(images, np.random.default_rng(0), max_shift=2, max_rotation=10)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert out.min() >= 0 and out.max() <= 255
    assert not np.array_equal(out, images)
    # Small moves keep the ink: total intensity changes by a few percent at most per image.
    ratio = out.reshape(64, -1).sum(1) / images.reshape(64, -1).sum(1)
    assert np.all((ratio > 0.85) & (ratio < 1.15))
    assert np.array_equal(images, mnist.x_train[:64])  # the input is untouched


def test_augment_is_deterministic_under_a_seed(mnist):
    images = mnist.x_train[:32]
    first = augment_images(images, np.random.default_rng(7))
    again = augment_images(images, np.random.default_rng(7))
    other = augment_images(images, np.random.default_rng(8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_zero_limits_are_the_identity(mnist):
    images = mnist.x_train[:8]
    assert np.array_equal(augment_images(images, np.random.default_rng(0), max_shift=0, max_rotation=0), images)


def test_integer_shift_matches_array_slicing(mnist):
    images = mnist.x_train[:2]
    out = transform_images(images, np.zeros(2), np.array([[2.0, 0.0], [0.0, -3.0]]))
    down = np.zeros_like(images[0])
    down[2:] = images[0][:-2]
    left = np.zeros_like(images[1])
    left[:, :-3] = images[1][:, 3:]
    assert np.array_equal(out[0], down)
    assert np.array_equal(out[1], left)


def test_quarter_turn_matches_numpy_rot90(mnist):
    images = mnist.x_train[:1]
    assert np.array_equal(transform_images(images, np.array([-90.0]), np.zeros((1, 2)))[0], np.rot90(images[0]))
    assert np.array_equal(transform_images(images, np.array([90.0]), np.zeros((1, 2)))[0], np.rot90(images[0], -1))


def test_augment_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        augment_images(np.zeros((2, 28, 28), np.float32), np.random.default_rng(0))


# --- recipes, schedules, optimizers -----------------------------------------------------------


def test_seed_recipe_is_the_seed_study():
    seed = get_recipe("seed")
    assert (seed.optimizer, seed.lr, seed.batch_size, seed.epochs, seed.schedule) == ("adam", 1e-3, 64, 6, "constant")
    assert seed.bn_momentum is None and not seed.augments


def test_fast_is_the_bcnn_default_and_best_stays():
    assert default_recipe("bcnn") == "fast"
    fast = RECIPES["fast"]
    assert (fast.optimizer, fast.lr, fast.batch_size, fast.epochs, fast.schedule) == ("adam", 8e-3, 128, 20, "cosine")
    assert not fast.distill_teacher and fast.augments
    assert RECIPES["best"].distill_teacher in RECIPES and RECIPES["teacher_fast"].epochs == 2
    assert default_recipe("cnn") == "seed"


@pytest.mark.parametrize("key", sorted(RANGES))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e300])
def test_every_numeric_field_must_be_finite_and_in_its_range(key, value):
    if RANGES[key].whole:
        value = 10**20 if value == 1e300 else value  # a whole number too big, or a float where one is needed
    with pytest.raises(ValueError, match=rf"^recipe 'x': {key} must be (a whole number )?in [[(]"):
        replace(RECIPES["seed"], name="x", **{key: value})


def test_range_ends_are_included_or_not_as_stated():
    seed = RECIPES["seed"]
    assert replace(seed, lr=10.0, batch_size=65_536, momentum=0.0, distill_alpha=1.0).lr == 10.0
    for key, value in (("lr", 0.0), ("momentum", 1.0), ("batch_size", 0), ("distill_temperature", 0.0)):
        with pytest.raises(ValueError, match=f"{key} must be"):
            replace(seed, **{key: value})
    with pytest.raises(ValueError, match=r"epochs must be a whole number in \[1, 10000\], got 2.0"):
        replace(seed, epochs=2.0)
    with pytest.raises(ValueError, match=r"augment_shift must be a number in \[0, 256\], got True"):
        replace(seed, augment_shift=True)


def test_one_epoch_of_a_recipe_that_keeps_the_best_of_five_is_valid():
    """``--epochs 1`` (a quick look) works with every recipe: the best of the last 5 is then the only epoch."""
    for name, recipe in RECIPES.items():
        assert recipe.with_overrides(epochs=1).epochs == 1, name
    assert get_recipe("photo").keep_best_epochs > 1


def test_recipe_rejects_unknown_choices():
    with pytest.raises(ValueError, match="optimizer"):
        Recipe("x", "rmsprop", 1e-3, 64, 1)
    with pytest.raises(ValueError, match="schedule"):
        Recipe("x", "adam", 1e-3, 64, 1, schedule="step")
    with pytest.raises(ValueError, match="final_lr_fraction"):
        Recipe("x", "adam", 1e-3, 64, 1, schedule="exponential", final_lr_fraction=0.0)


def test_warmup_rises_from_a_25th_then_decays():
    from train.optim import make_schedule

    recipe = Recipe("x", "adam", 4e-3, 64, 1, schedule="cosine", warmup_fraction=0.2)
    lr = make_schedule(recipe, 4e-3, 1000)
    values = [float(lr(step)) for step in (0, 100, 200, 600, 1000)]
    assert values[0] == pytest.approx(4e-3 / 25) and values[1] == pytest.approx((4e-3 / 25 + 4e-3) / 2)
    assert values[2] == pytest.approx(4e-3) and values[3] == pytest.approx(2e-3) and values[4] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="warmup_fraction needs the cosine schedule"):
        Recipe("x", "adam", 1e-3, 64, 1, warmup_fraction=0.1)
    with pytest.raises(ValueError, match=r"warmup_fraction must be in \[0, 1\)"):
        Recipe("x", "adam", 1e-3, 64, 1, schedule="cosine", warmup_fraction=1.0)


@pytest.mark.parametrize("schedule", ["cosine", "exponential"])
def test_schedule_decays_to_the_final_fraction(schedule):
    from train.optim import make_schedule

    recipe = Recipe("x", "adam", 1e-2, 64, 1, schedule=schedule, final_lr_fraction=0.01)
    lr = make_schedule(recipe, 1e-2, 1000)
    values = [float(lr(step)) for step in (0, 250, 500, 750, 1000)]
    assert values[0] == pytest.approx(1e-2)
    assert all(a > b for a, b in pairwise(values))
    assert values[-1] == pytest.approx(1e-4, rel=1e-3)


def test_bn_momentum_keeps_layers_and_params():
    import tensorflow as tf

    from train.models import build_model
    from train.optim import prepare_model

    model = prepare_model(build_model("bcnn"), get_recipe("seed").with_overrides(bn_momentum=0.9))
    momenta = [layer.momentum for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert momenta == [0.9] * 5
    assert model.count_params() == BCNN_PARAMS
    assert len(model.layers) == len(build_model("bcnn").layers)


def test_bop_flips_binary_kernels_and_adam_trains_the_rest(mnist):
    """After one Bop step every binary kernel holds exactly +-1; batch-norm offsets moved."""
    from train.models import build_model
    from train.optim import make_optimizer

    recipe = get_recipe("seed").with_overrides(optimizer="bop", bop_gamma=1e-3, lr=1e-2)
    model = build_model("bcnn")
    model.compile(optimizer=make_optimizer(recipe, 10), loss="sparse_categorical_crossentropy")
    beta_vars = [w for w in model.trainable_weights if "beta" in w.name]
    betas = [w.numpy().copy() for w in beta_vars]
    model.train_on_batch(mnist.x_train[:64].astype(np.float32)[..., None], mnist.y_train[:64])
    kernels = [w.numpy() for w in model.trainable_weights if "kernel" in w.name]
    assert len(kernels) == 5
    for kernel in kernels:
        assert set(np.unique(kernel)) <= {-1.0, 1.0}
    assert any(not np.allclose(before, w.numpy()) for before, w in zip(betas, beta_vars, strict=True))


def test_scaled_crossentropy_matches_numpy():
    from train.losses import scaled_sparse_crossentropy

    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 1])
    for scale in (1.0, 3.0):
        logits = scale * np.log(probabilities)
        soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        expected = -np.log(soft[[0, 1], labels])
        got = scaled_sparse_crossentropy(scale)(labels, probabilities).numpy()
        assert np.allclose(got, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="positive"):
        scaled_sparse_crossentropy(0.0)


def test_soft_targets_mix_labels_and_the_softened_teacher():
    from train.distill import soft_targets, soften

    teacher = np.array([[0.9, 0.05, 0.05], [0.2, 0.2, 0.6]], np.float32)
    plain = soft_targets(np.array([0, 2]), teacher, alpha=0.0, temperature=4.0)
    assert np.array_equal(plain, np.eye(3, dtype=np.float32)[[0, 2]])
    mixed = soft_targets(np.array([0, 2]), teacher, alpha=0.5, temperature=1.0)
    assert np.allclose(mixed, 0.5 * np.eye(3)[[0, 2]] + 0.5 * teacher, atol=1e-6)
    assert np.allclose(mixed.sum(axis=1), 1.0)
    # Temperature 2 is the square root of the probabilities, renormalised.
    root = np.sqrt(teacher) / np.sqrt(teacher).sum(axis=1, keepdims=True)
    assert np.allclose(soften(teacher, 2.0), root, atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        soft_targets(np.array([0, 2]), teacher, alpha=1.5, temperature=1.0)


def test_recalibrated_batchnorm_holds_the_exact_input_statistics(mnist):
    """The first BN layer's moving mean/variance equal numpy's over its input; later ones moved too."""
    import tensorflow as tf

    from train.batchnorm import recalibrate_batchnorm
    from train.models import build_model

    model = build_model("bcnn")
    images = mnist.x_train[:300].astype(np.float32)[..., None]
    assert recalibrate_batchnorm(model, images, batch_size=128) == 5
    bns = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    first_input = tf.keras.Sequential(model.layers[:3])(images).numpy().reshape(-1, 32)
    assert np.allclose(bns[0].moving_mean.numpy(), first_input.mean(axis=0), atol=1e-4)
    assert np.allclose(bns[0].moving_variance.numpy(), first_input.var(axis=0), rtol=1e-3)
    assert all(not np.allclose(bn.moving_variance.numpy(), 1.0) for bn in bns)
    assert model.count_params() == BCNN_PARAMS


# --- end to end -----------------------------------------------------------------------------


def test_best_recipe_end_to_end_on_a_slice(tmp_path, mnist_path, mnist):
    """``--recipe best`` trains on 500 images for one epoch and records every recipe field."""
    out = tmp_path / "out"
    result = run_module(
        "train", "--model", "bcnn", "--recipe", "best", "--epochs", "1", "--limit", "500",
        "--data", mnist_path, "--out", out, "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, stderr_lines(result)
    report = json.loads((out / "bcnn.train.json").read_text())
    expected = get_recipe("best").with_overrides(epochs=1).to_json()
    assert report["recipe"] == expected
    assert set(report["recipe"]) == {field.name for field in fields(Recipe)}
    assert report["teacher_recipe"] == get_recipe(get_recipe("best").distill_teacher).to_json()
    assert 0.0 <= report["teacher_test_accuracy"] <= 1.0
    assert report["params"] == BCNN_PARAMS
    assert report["train_images"] == 450 and report["val_images"] == 50
    assert len(report["history"]["loss"]) == 1
    assert 0.0 <= report["test_accuracy"] <= 1.0
    # The distillation wrapper stays out of the saved model: plain Keras + larq reload it.
    import larq  # noqa: F401
    import tensorflow as tf

    model = tf.keras.models.load_model(out / "bcnn.h5")
    assert type(model) is tf.keras.Sequential and model.name == "bcnn" and model.count_params() == BCNN_PARAMS
    predicted = model.predict(mnist.x_test.astype(np.float32)[..., None], verbose=0).argmax(axis=1)
    assert float((predicted == mnist.y_test).mean()) == report["test_accuracy"]


# --- --set KEY=VALUE and --track-test ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=30", ("epochs", 30)),
        ("lr=1e-3", ("lr", 1e-3)),
        ("batch-size=128", ("batch_size", 128)),
        ("bn_momentum=none", ("bn_momentum", None)),
        ("bn_momentum=0.99", ("bn_momentum", 0.99)),
        ("distill_teacher=", ("distill_teacher", "")),
        ("distill_teacher=teacher", ("distill_teacher", "teacher")),
        ("schedule=constant", ("schedule", "constant")),
        ("augment_flip=true", ("augment_flip", True)),
        ("augment-flip=0", ("augment_flip", False)),
        ("augment_crop=4", ("augment_crop", 4)),
    ],
)
def test_parse_override_types_the_value(text, expected):
    key, value = parse_override(text)
    assert (key, value) == expected and type(value) is type(expected[1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs", "expected KEY=VALUE"),
        ("depth=3", "unknown recipe field 'depth'"),
        ("name=mine", "unknown recipe field 'name'"),
        ("epochs=2.5", "epochs takes an integer"),
        ("lr=fast", "lr takes a number"),
        ("distill_teacher=oracle", "no recipe named 'oracle'"),
        ("epochs=none", "epochs takes an integer"),
        ("augment_flip=maybe", "augment_flip takes true or false"),
    ],
)
def test_parse_override_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        parse_override(text)


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--set", "depth=3"], "unknown recipe field 'depth'"),
        (["--set", "bn_momentum=1.5"], "bn_momentum must be in [0, 1)"),
        (["--set", "schedule=step"], "schedule 'step' is not one of"),
        (["--set", "epochs=0"], "epochs must be in [1, 10000], got 0"),
        (["--set", "lr=-1"], "lr must be in (0, 10], got -1.0"),
        (["--set", "augment_crop=-2"], "augment_crop must be in [0, 256], got -2"),
        # Infinite, NaN and absurd values are refused too (they used to train a NaN model, exit 0).
        (["--set", "lr=inf"], "lr must be in (0, 10], got inf"),
        (["--set", "augment_shift=nan"], "augment_shift must be in [0, 256], got nan"),
        (["--set", "logit_scale=inf"], "logit_scale must be in (0, 1000], got inf"),
        (["--set", "distill_temperature=inf"], "distill_temperature must be in (0, 1000], got inf"),
        (["--set", "batch_size=99999999999"], "batch_size must be in [1, 65536], got 99999999999"),
        (["--recipe", "seed", "--set", "distill_teacher=seed"], "cannot be its own distillation teacher"),
    ],
)
def test_cli_refuses_a_bad_override_before_loading_data(tmp_path, args, expect):
    out = tmp_path / "out"
    # --data points nowhere: the override is refused first, with one line and exit 2.
    result = run_module("train", "--model", "bcnn", *args, "--data", tmp_path / "absent", "--out", out)
    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1 and expect in lines[0], lines
    assert not out.exists()


def test_overrides_and_test_tracking_are_recorded(tmp_path, mnist_path):
    """--set changes the recorded recipe; --track-test's last epoch equals the final test figure."""
    out = tmp_path / "out"
    result = run_module(
        "train", "--model", "bcnn", "--recipe", "seed", "--epochs", "2", "--limit", "400",
        "--set", "schedule=cosine", "--set", "bn_momentum=0.9", "--set", "augment_shift=1",
        "--track-test", "--data", mnist_path, "--out", out, "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, stderr_lines(result)
    report = json.loads((out / "bcnn.train.json").read_text())
    expected = get_recipe("seed").with_overrides(epochs=2, schedule="cosine", bn_momentum=0.9, augment_shift=1.0)
    assert report["recipe"] == expected.to_json()
    assert report["recipe_overrides"] == {"schedule": "cosine", "bn_momentum": 0.9, "augment_shift": 1.0, "epochs": 2}
    tracked = report["history"]["test_accuracy"]
    assert len(tracked) == 2 and all(0.0 <= value <= 1.0 for value in tracked)
    assert tracked[-1] == report["test_accuracy"]  # nothing happens to the model after the last epoch
