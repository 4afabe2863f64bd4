"""The zoo: exact parameter counts and the raw-pixel input contract."""

from __future__ import annotations

import numpy as np
import pytest

from train.models import ZOO, build_model

# (total, trainable): the seed BCNN's figures are the study's; cnn and mlp are ours, pinned.
EXPECTED_PARAMS = {
    "bcnn": (93_790, 93_322),
    "cnn": (94_258, 93_790),
    "mlp": (118_282, 118_282),
    "logreg": (7_850, 7_850),
    "bc_mlp": (118_282, 118_282),
    "bc_cnn": (93_322, 93_322),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_parameter_counts(name: str) -> None:
    model = build_model(name)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert (model.count_params(), trainable) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_models_take_raw_pixels(name: str) -> None:
    model = build_model(name)
    assert model.input_shape == (None, 28, 28, 1)
    rescale = model.layers[0]
    lo, hi = ZOO[name].input_range
    out = rescale(np.array([0.0, 255.0], dtype=np.float32).reshape(1, 2, 1, 1)).numpy().ravel()
    assert out == pytest.approx([lo, hi], abs=1e-6)


def test_bcnn_binary_layers() -> None:
    import larq as lq

    model = build_model("bcnn")
    quant = [layer for layer in model.layers if isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense))]
    assert len(quant) == 5
    assert quant[0].input_quantizer is None, "the first conv takes float input"
    assert all(layer.input_quantizer is not None for layer in quant[1:])
    assert sum(int(np.prod(layer.kernel.shape)) for layer in quant) == 93_088
