"""``keep_best_epochs``: the trainer keeps the weights of the last epochs' most accurate one on validation."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)

SLICE = 1200  # 1,080 trained on, 120 held out (train.trainer.validation_split)


def _validation_accuracy(model, mnist) -> float:
    from train.trainer import validation_split

    held = validation_split(SLICE)
    x, y = mnist.x_train[SLICE - held : SLICE], mnist.y_train[SLICE - held : SLICE]
    predictions = np.argmax(model.predict(x.reshape(-1, 28, 28, 1).astype(np.float32), verbose=0), axis=1)
    return float(np.mean(predictions == y))


def test_the_kept_epoch_is_the_most_accurate_of_the_last_ones_and_its_weights_are_returned(mnist) -> None:
    from train.recipes import get_recipe
    from train.trainer import fit

    # Adam 8e-3 without decay on a BNN: the validation accuracy swings from epoch to epoch.
    recipe = get_recipe("fast").with_overrides(epochs=5, keep_best_epochs=4, schedule="constant")
    result = fit("bcnn", recipe, mnist, seed=2, limit=SLICE)
    history = result.history["val_accuracy"]
    last = history[1:]
    expected = 1 + max(range(len(last)), key=lambda i: (last[i], i)) + 1  # ties: the later epoch
    assert result.kept_epoch == expected < recipe.epochs  # this seed's last epoch is not its best
    assert result.validation_accuracy == history[expected - 1] == max(last)
    assert _validation_accuracy(result.model, mnist) == pytest.approx(history[expected - 1], abs=1e-6)


def test_without_it_the_last_epoch_is_kept(mnist) -> None:
    from train.recipes import get_recipe
    from train.trainer import fit

    recipe = get_recipe("fast").with_overrides(epochs=2)
    result = fit("bcnn", recipe, mnist, seed=1, limit=SLICE)
    assert result.kept_epoch == 2 and result.validation_accuracy == result.history["val_accuracy"][-1]
    assert _validation_accuracy(result.model, mnist) == pytest.approx(result.validation_accuracy, abs=1e-6)


def test_it_needs_a_validation_split_and_may_exceed_the_epochs(mnist) -> None:
    from train.recipes import get_recipe
    from train.trainer import fit

    assert get_recipe("fast").with_overrides(epochs=2, keep_best_epochs=3).keep_best_epochs == 3  # best of every epoch
    with pytest.raises(ValueError, match="needs a validation split"):
        fit("bcnn", get_recipe("fast").with_overrides(epochs=1, keep_best_epochs=1), mnist, seed=0, limit=5)
