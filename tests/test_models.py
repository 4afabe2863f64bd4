"""The zoo: exact parameter counts, the raw-pixel input contract, and which inputs each model takes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from train.models import ZOO, build_model

# (total, trainable): the seed BCNN's figures are the study's; cnn and mlp are ours, pinned.
EXPECTED_PARAMS = {
    "bcnn": (93_790, 93_322),
    "cnn": (94_258, 93_790),
    "mlp": (118_282, 118_282),
    "logreg": (7_850, 7_850),
    "bc_mlp": (118_282, 118_282),
    "bc_cnn": (93_322, 93_322),
    # For 32x32x3 and 10 classes. resnet8 is MLPerf Tiny's pretrainedResnet.h5 layer for layer (78,666 params).
    "colour_bnn": (420_990, 420_010),
    "resnet8": (78_666, 78_186),
    # For 61 frames x 20 bands and 10 classes. ds_cnn is MLPerf Tiny's DS-CNN: its 22,604 weights and biases for 12
    # classes (kws_ref_model.tflite) with 10 classes' dense layer (-780 + 650) and 9 batch norms (+2,304), on any input.
    "kws_bnn": (53_550, 53_242),
    "ds_cnn": (24_778, 23_626),
}
PHOTO_MODELS = ("colour_bnn", "resnet8")
AUDIO_MODELS = ("kws_bnn", "ds_cnn")


def _natural_shape(name: str) -> tuple[int, int, int]:
    if name in AUDIO_MODELS:
        return (61, 20, 1)
    return (32, 32, 3) if name in PHOTO_MODELS else (28, 28, 1)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_parameter_counts(name: str) -> None:
    model = build_model(name, _natural_shape(name), 10)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert (model.count_params(), trainable) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_models_take_raw_pixels(name: str) -> None:
    shape = _natural_shape(name)
    model = build_model(name, shape, 10)
    assert model.input_shape == (None, *shape)
    lo, hi = ZOO[name].input_range
    if (lo, hi) == (0.0, 255.0):  # takes the raw values unscaled (MLPerf's ResNet-8)
        assert not isinstance(model.layers[1], tf.keras.layers.Rescaling)
        return
    rescale = next(layer for layer in model.layers if isinstance(layer, tf.keras.layers.Rescaling))
    out = rescale(np.array([0.0, 255.0], dtype=np.float32).reshape(1, 2, 1, 1)).numpy().ravel()
    assert out == pytest.approx([lo, hi], abs=1e-6)


@pytest.mark.parametrize(("shape", "classes"), [((16, 24, 1), 2), ((32, 32, 4), 7), ((8, 8, 3), 3)])
def test_photo_models_follow_the_dataset(shape: tuple[int, int, int], classes: int) -> None:
    for name in PHOTO_MODELS:
        assert ZOO[name].problem(shape, "uint8", classes) is None
        model = build_model(name, shape, classes)
        assert model.input_shape == (None, *shape)
        assert model.output_shape == (None, classes)


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "classes", "words"),
    [
        ("bcnn", (32, 32, 3), "uint8", 10, "28x28"),
        ("cnn", (28, 28), "uint8", 12, "10 classes"),
        ("colour_bnn", (30, 30, 3), "uint8", 10, "multiples of 8"),
        ("resnet8", (32, 32, 3), "float32", 10, "8-bit"),
        ("colour_bnn", (32, 32, 3), "uint8", 1, "at least 2 classes"),
        ("resnet8", (49, 10), "uint8", 10, "multiples of 4"),
    ],
)
def test_models_refuse_inputs_they_do_not_take(name: str, shape: tuple[int, ...], dtype: str, classes: int, words: str) -> None:
    problem = ZOO[name].problem(shape, dtype, classes)
    assert problem is not None and words in problem
    assert ZOO[name].problem(_natural_shape(name), "uint8", 10) is None


def test_bcnn_binary_layers() -> None:
    import larq as lq

    model = build_model("bcnn")
    quant = [layer for layer in model.layers if isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense))]
    assert len(quant) == 5
    assert quant[0].input_quantizer is None, "the first conv takes float input"
    assert all(layer.input_quantizer is not None for layer in quant[1:])
    assert sum(int(np.prod(layer.kernel.shape)) for layer in quant) == 93_088
