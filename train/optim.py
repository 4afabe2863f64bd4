"""Optimizers, learning-rate schedules and model preparation as a recipe describes them.

Small pure builders: the trainer calls :func:`make_optimizer` and :func:`prepare_model`;
tests call :func:`make_schedule` to check that a schedule decays.
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

from train.recipes import Recipe

__all__ = ["WARMUP_START_DIVISOR", "make_schedule", "make_optimizer", "prepare_model"]

WARMUP_START_DIVISOR = 25.0

Schedule = float | tf.keras.optimizers.schedules.LearningRateSchedule


def make_schedule(recipe: Recipe, initial: float, steps: int) -> Schedule:
    """The value of a hyper-parameter over ``steps`` optimizer steps, shaped by ``recipe.schedule``.

    Args:
        recipe: supplies ``schedule`` and ``final_lr_fraction``.
        initial: the value at step 0 (a learning rate, or Bop's gamma).
        steps: total optimizer steps of the run.

    Returns:
        ``initial`` itself for ``constant``, else a Keras schedule that reaches
        ``initial * final_lr_fraction`` at step ``steps``. With ``warmup_fraction`` (cosine only)
        the value first rises linearly from ``initial / 25`` to ``initial`` over that share of the
        steps, and the cosine decay takes the rest.

    Raises:
        ValueError: unknown schedule.
    """
    steps = max(1, int(steps))
    if recipe.schedule == "constant":
        return initial
    if recipe.schedule == "cosine":
        warmup = int(round(recipe.warmup_fraction * steps))
        if warmup == 0:
            return tf.keras.optimizers.schedules.CosineDecay(initial, decay_steps=steps, alpha=recipe.final_lr_fraction)
        return tf.keras.optimizers.schedules.CosineDecay(
            initial / WARMUP_START_DIVISOR,
            decay_steps=max(1, steps - warmup),
            alpha=recipe.final_lr_fraction,
            warmup_target=initial,
            warmup_steps=warmup,
        )
    if recipe.schedule == "exponential":
        return tf.keras.optimizers.schedules.ExponentialDecay(initial, decay_steps=steps, decay_rate=recipe.final_lr_fraction)
    raise ValueError(f"unknown schedule {recipe.schedule!r}")


def make_optimizer(recipe: Recipe, steps: int) -> tf.keras.optimizers.Optimizer:
    """The optimizer of ``recipe`` for a run of ``steps`` steps.

    ``adam`` trains every weight with Adam, ``sgd`` with SGD and the recipe's momentum. ``bop``
    hands the binary kernels (variables with ``precision == 1``) to Larq's Bop and everything
    else (batch-norm offsets) to Adam.

    Raises:
        ValueError: unknown optimizer or schedule.
    """
    learning_rate = make_schedule(recipe, recipe.lr, steps)
    if recipe.optimizer == "adam":
        return tf.keras.optimizers.Adam(learning_rate=learning_rate)
    if recipe.optimizer == "sgd":
        return tf.keras.optimizers.SGD(learning_rate=learning_rate, momentum=recipe.momentum)
    if recipe.optimizer == "bop":
        # Larq's CaseOptimizer and Bop are built on the legacy optimizer base class.
        adam = tf.keras.optimizers.legacy.Adam(learning_rate=learning_rate)
        bop = lq.optimizers.Bop(threshold=recipe.bop_threshold, gamma=make_schedule(recipe, recipe.bop_gamma, steps))
        return lq.optimizers.CaseOptimizer((lq.optimizers.Bop.is_binary_variable, bop), default_optimizer=adam)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def prepare_model(model: tf.keras.Model, recipe: Recipe) -> tf.keras.Model:
    """Apply the recipe's layer hyper-parameters to a built model, in place.

    Only ``bn_momentum`` for now: it sets ``momentum`` on every BatchNormalization layer,
    which changes neither the layers nor the weights (the parameter count stays the same).

    Returns:
        The same model.
    """
    if recipe.bn_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = float(recipe.bn_momentum)
    return model
