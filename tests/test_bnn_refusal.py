"""Models outside the supported set are refused with one line naming the layer and the op.

Two kinds of refusal: an op that is not in the registry (firmware_gen/bnn/ops; nothing falls
through to another kernel), and a registered op with an option outside its set. Both are one
InputError line (exit status 2 at the CLI) and leave no files behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_module, stderr_lines

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)
from firmware_gen.bnn import generate
from firmware_gen.bnn.ops import REGISTRY
from firmware_gen.targets import get_core
from pipeline.errors import InputError

M4 = get_core("cortex-m4")
BINARY = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "use_bias": False}


def _convert(shape: tuple[int, ...], body) -> bytes:
    import tensorflow as tf

    from convert.converter import to_lce

    inputs = tf.keras.Input(shape)
    model = tf.keras.Model(inputs, body(inputs))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and not isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in weights])
    return to_lce(model)


def _tanh() -> bytes:
    """A binary conv followed by TANH: an op outside the registry."""
    import larq as lq
    import tensorflow as tf

    return _convert((8, 8, 3), lambda x: tf.keras.layers.Activation("tanh")(lq.layers.QuantConv2D(4, 3, **BINARY)(x)))


def _mean_over_channels() -> bytes:
    """MEAN over the channel axis: a registered op with an option outside its set."""
    import larq as lq
    import tensorflow as tf

    def body(x):
        y = lq.layers.QuantConv2D(4, 3, **BINARY)(x)
        return tf.keras.layers.Lambda(lambda t: tf.reduce_mean(t, axis=-1))(y)

    return _convert((8, 8, 3), body)


def _concat_constant() -> bytes:
    """CONCATENATION with a constant input."""
    import tensorflow as tf

    def body(x):
        return tf.keras.layers.Lambda(lambda t: tf.concat([t, tf.ones_like(t[:, :1]) * 0.5], axis=1))(tf.keras.layers.ReLU()(x))

    return _convert((4, 4, 2), body)


CASES = {
    "tanh": (_tanh, r"^bnn engine: layer \d+ \(TANH\): op not supported by the bnn engine \(supported: .*LceBconv2d"),
    "mean_over_channels": (_mean_over_channels, r"^bnn engine: layer \d+ \(MEAN\): mean over axes \[3\]"),
    "concat_constant": (_concat_constant, r"^bnn engine: layer \d+ \(CONCATENATION\): constant inputs are not supported"),
}


@pytest.fixture(scope="module")
def flatbuffers() -> dict[str, bytes]:
    return {name: build() for name, (build, _) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_unsupported_model_is_refused_in_one_line(name: str, flatbuffers: dict[str, bytes]) -> None:
    with pytest.raises(InputError, match=CASES[name][1]) as caught:
        generate(flatbuffers[name], M4)
    assert "\n" not in str(caught.value)


def test_the_registry_covers_the_issue_op_set() -> None:
    expected = {
        "LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
        "ADD", "MUL", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "CONCATENATION", "PAD", "RESHAPE", "RELU", "RELU6",
        "PRELU", "LOGISTIC", "SOFTMAX",
    }  # fmt: skip
    assert expected <= set(REGISTRY)
    assert all(kind.summary and (kind.template or name == "RESHAPE") for name, kind in REGISTRY.items())


def test_cli_refusal_is_one_line_exit_2(flatbuffers: dict[str, bytes], tmp_path: Path) -> None:
    model = tmp_path / "tanh.lce.tflite"
    model.write_bytes(flatbuffers["tanh"])
    out = tmp_path / "fw"
    result = run_module("firmware_gen", "--target", "cortex-m4", "--engine", "bnn", "--model", model, "--out", out)
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and "layer" in lines[0] and "TANH" in lines[0], lines
    assert not out.exists() or not any(out.iterdir()), "a refused model left files behind"


def test_non_flatbuffer_is_refused() -> None:
    with pytest.raises(InputError, match="not a TFLite flatbuffer"):
        generate(b"not a model at all", M4)


def test_input_type_outside_the_set_is_refused(flatbuffers: dict[str, bytes]) -> None:
    with pytest.raises(InputError, match="input type 'int16' is not one of auto, uint8, float32"):
        generate(flatbuffers["tanh"], M4, input_type="int16")


def test_optimization_outside_the_set_is_refused(flatbuffers: dict[str, bytes]) -> None:
    with pytest.raises(InputError, match="unknown optimization 'tiny': valid choices are speed, size"):
        generate(flatbuffers["tanh"], M4, optimize="tiny")


def _fc_output_scale(value: float):
    """cnn.int8's FULLY_CONNECTED (operator 3) writes a tensor of int8 scale ``value``."""

    def edit(model) -> None:
        graph = model.subgraphs[0]
        graph.tensors[int(graph.operators[3].outputs[0])].quantization.scale = np.array([value], np.float32)

    return edit


def _softmax_beta(model) -> None:
    """cnn.int8's SOFTMAX (operator 4) gets beta -1000: the int8 kernel's exp table overflows float32."""
    model.subgraphs[0].operators[4].builtinOptions.beta = -1000.0


def _reshape_reads_its_shape(model) -> None:
    """bcnn.lce's RESHAPE (operator 11) reads its shape constant as the data too: no activation input."""
    op = model.subgraphs[0].operators[11]
    op.inputs[0] = op.inputs[1]


# Readable flatbuffers that LCE loads, on which the compiler raised something else than InputError
# (make fuzz, mutants 244, 940, 4268, 9112 of seed 0).
HOSTILE = {
    "int8 output scale 0 (ZeroDivisionError)": ("cnn.int8", _fc_output_scale(0.0), "a scale must be positive and finite"),
    "int8 output scale -0.0 (ZeroDivisionError)": ("cnn.int8", _fc_output_scale(-0.0), "a scale must be positive and finite"),
    "softmax beta -1000 (ValueError in the C writer)": ("cnn.int8", _softmax_beta, "not finite in float32"),
    "reshape without a data input (IndexError)": ("bcnn.lce", _reshape_reads_its_shape, "has 0 activation input"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_readable_model_is_one_input_error(mini_flatbuffers, case: str) -> None:
    from fuzzing import edit_model

    seed, edit, message = HOSTILE[case]
    data = edit_model(mini_flatbuffers[seed].read_bytes(), edit)
    with pytest.raises(InputError) as caught:
        generate(data, M4)
    text = str(caught.value)
    assert message in text and "\n" not in text and text.startswith("bnn engine: "), text
