"""The study's models: each trains on a slice with its ``study`` recipe and reloads from ``.h5``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)

SLICE = 300


def _numpy_bc_mlp(model, images: np.ndarray) -> np.ndarray:
    """bc_mlp's inference written out in NumPy: sign(latent kernels), bias, / sqrt(fan-in), ReLU, softmax."""
    import larq as lq

    dense = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantDense)]
    assert len(dense) == 3
    h = images.reshape(len(images), -1).astype(np.float64) / 255.0
    for index, layer in enumerate(dense):
        kernel, bias = layer.get_weights()  # the latent (real) kernel
        z = (h @ np.where(kernel >= 0, 1.0, -1.0) + bias) / math.sqrt(kernel.shape[0])
        h = np.maximum(z, 0.0) if index < 2 else z
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_zoo_input_shape_is_shared():
    from train.models import INPUT_SHAPE
    from train.study_models import INPUT_SHAPE as STUDY_INPUT_SHAPE

    assert STUDY_INPUT_SHAPE == INPUT_SHAPE


@pytest.mark.parametrize("name", ["logreg", "bc_mlp", "bc_cnn"])
def test_trains_on_a_slice_and_reloads_from_h5(name: str, mnist, tmp_path: Path):
    import tensorflow as tf

    from train.recipes import get_recipe
    from train.trainer import fit

    recipe = get_recipe("study", name).with_overrides(epochs=1, batch_size=32)
    result = fit(name, recipe, mnist, seed=0, limit=SLICE)
    assert 0.0 <= result.test_accuracy <= 1.0 and result.train_images == SLICE - SLICE // 10
    path = tmp_path / f"{name}.h5"
    result.model.save(path, save_format="h5", include_optimizer=False)

    import larq  # noqa: F401

    import train.quantizers  # noqa: F401  (what convert and the emulator import before loading)

    reloaded = tf.keras.models.load_model(path, compile=False)  # no custom_objects
    images = mnist.x_test[:64].astype(np.float32)[..., None]
    before = result.model.predict(images, verbose=0)
    after = reloaded.predict(images, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), after)  # inference is deterministic
    if name == "bc_mlp":
        np.testing.assert_allclose(after, _numpy_bc_mlp(reloaded, mnist.x_test[:64]), rtol=1e-4, atol=1e-5)


def test_bc_cnn_layers_are_binary_and_scaled():
    import larq as lq

    from train.models import build_model

    model = build_model("bc_cnn")
    quant = [layer for layer in model.layers if isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense))]
    assert len(quant) == 5
    assert all(layer.kernel_quantizer.precision == 1 and layer.input_quantizer is None for layer in quant)
    scales = [layer.scale for layer in model.layers if layer.name.startswith("fan_in_scale")]
    fan_ins = [9 * 1, 9 * 32, 9 * 64, 3 * 3 * 64, 64]
    assert scales == pytest.approx([1 / math.sqrt(n) for n in fan_ins])
    assert not any("batch_normalization" in layer.name for layer in model.layers)


def test_bc_mlp_latent_weights_live_on_the_fan_in_scale(mnist):
    """bc_mlp: stochastic kernels with latent weights in [-1/sqrt(fan_in), 1/sqrt(fan_in)], kept there by training."""
    import larq as lq

    from train.quantizers import StochasticBinary
    from train.recipes import get_recipe
    from train.trainer import fit

    recipe = get_recipe("study", "bc_mlp").with_overrides(epochs=1, batch_size=32)
    model = fit("bc_mlp", recipe, mnist, seed=0, limit=SLICE).model
    quant = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantDense)]
    fan_ins = [28 * 28, 128, 128]
    assert [layer.kernel.shape[0] for layer in quant] == fan_ins
    for layer, fan_in in zip(quant, fan_ins, strict=True):
        bound = 1 / math.sqrt(fan_in)
        assert isinstance(layer.kernel_quantizer, StochasticBinary)
        assert layer.kernel_quantizer.scale == pytest.approx(bound)
        kernel = layer.get_weights()[0]
        assert np.max(np.abs(kernel)) <= bound * (1 + 1e-6)  # the clip constraint holds after the updates
        assert np.max(np.abs(kernel)) > 0.5 * bound  # and the weights use the range
    scales = [layer.scale for layer in model.layers if layer.name.startswith("fan_in_scale")]
    assert scales == pytest.approx([1 / math.sqrt(n) for n in fan_ins])
