"""Models outside the supported set are refused with one line naming the layer and the op."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_module, stderr_lines

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)
from firmware_gen.bnn import generate
from firmware_gen.targets import get_core
from pipeline.errors import InputError

M4 = get_core("cortex-m4")
BINARY = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "use_bias": False}


def _convert(layers: list) -> bytes:
    import tensorflow as tf

    from convert.converter import to_lce

    model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), *layers])
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and layer.__class__.__name__ in ("QuantConv2D", "QuantDense", "Dense", "Conv2D"):
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in weights])
    return to_lce(model)


def _average_pool() -> bytes:
    import larq as lq
    import tensorflow as tf

    return _convert(
        [
            lq.layers.QuantConv2D(8, 3, kernel_quantizer="ste_sign", use_bias=False),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.AveragePooling2D(2),
            lq.layers.QuantConv2D(8, 3, **BINARY),
            tf.keras.layers.Flatten(),
            lq.layers.QuantDense(10, **BINARY),
        ]
    )


def _float_dense_relu() -> bytes:
    import larq as lq
    import tensorflow as tf

    return _convert(
        [
            lq.layers.QuantConv2D(8, 3, kernel_quantizer="ste_sign", use_bias=False),
            tf.keras.layers.BatchNormalization(),
            lq.layers.QuantConv2D(8, 3, **BINARY),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(16, activation="relu"),
            lq.layers.QuantDense(10, **BINARY),
        ]
    )


def _float_first_conv() -> bytes:
    import larq as lq
    import tensorflow as tf

    return _convert(
        [
            tf.keras.layers.Conv2D(8, 3, use_bias=False),
            tf.keras.layers.BatchNormalization(),
            lq.layers.QuantConv2D(8, 3, **BINARY),
            tf.keras.layers.Flatten(),
            lq.layers.QuantDense(10, **BINARY),
        ]
    )


CASES = {
    "average_pool": (_average_pool, r"^bnn engine: layer \d+ \(AVERAGE_POOL_2D\): op not supported"),
    "float_dense_relu": (_float_dense_relu, r"^bnn engine: layer \d+ \(FULLY_CONNECTED\): op not supported on the float output"),
    "float_first_conv": (_float_first_conv, r"^bnn engine: layer 0 \(CONV_2D\): weights are not binary"),
}


@pytest.fixture(scope="module")
def flatbuffers() -> dict[str, bytes]:
    return {name: build() for name, (build, _) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_unsupported_model_is_refused_in_one_line(name: str, flatbuffers: dict[str, bytes]) -> None:
    with pytest.raises(InputError, match=CASES[name][1]) as caught:
        generate(flatbuffers[name], M4)
    assert "\n" not in str(caught.value)


def test_cli_refusal_is_one_line_exit_2(flatbuffers: dict[str, bytes], tmp_path: Path) -> None:
    model = tmp_path / "avg.lce.tflite"
    model.write_bytes(flatbuffers["average_pool"])
    out = tmp_path / "fw"
    result = run_module("firmware_gen", "--target", "cortex-m4", "--engine", "bnn", "--model", model, "--out", out)
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and "layer" in lines[0] and "AVERAGE_POOL_2D" in lines[0], lines
    assert not out.exists() or not any(out.iterdir()), "a refused model left files behind"


def test_non_flatbuffer_is_refused() -> None:
    with pytest.raises(InputError, match="not a TFLite flatbuffer"):
        generate(b"not a model at all", M4)
