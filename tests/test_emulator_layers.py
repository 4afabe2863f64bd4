"""The per-layer table, checked against the Keras model the flatbuffer was converted from."""

from __future__ import annotations

from pathlib import Path

import emulator  # noqa: F401  (legacy Keras before TensorFlow loads)
from convert.flatbuffer import read_model
from emulator.layers import format_layers, layer_table, layer_totals


def _keras_macs(h5: Path) -> tuple[int, int]:
    """(binary, float) MACs from the Keras layers: binary when the layer binarizes its input."""
    import larq as lq
    import tensorflow as tf

    from convert.keras_io import load_keras_model

    binary = full = 0
    for layer in load_keras_model(h5).layers:
        if isinstance(layer, tf.keras.layers.Conv2D):
            _, h, w, c = layer.output_shape
            kh, kw = layer.kernel_size
            macs = h * w * c * kh * kw * int(layer.input_shape[-1])
        elif isinstance(layer, tf.keras.layers.Dense):
            macs = int(layer.input_shape[-1]) * layer.units
        else:
            continue
        quantizer = getattr(layer, "input_quantizer", None)
        is_binary = isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense)) and quantizer is not None
        if is_binary:
            binary += macs
        else:
            full += macs
    return binary, full


def test_bcnn_lce_macs_match_keras(emulator_artifacts: Path) -> None:
    rows = layer_table(read_model(emulator_artifacts / "bcnn.lce.tflite"))
    totals = layer_totals(rows)
    assert (totals["binary_macs"], totals["float_macs"]) == _keras_macs(emulator_artifacts / "bcnn.h5")
    ops = {row.op for row in rows if row.binary_macs}
    assert ops == {"LceBconv2d", "FULLY_CONNECTED"}


def test_cnn_has_only_float_macs_and_the_same_total(emulator_artifacts: Path) -> None:
    for name in ("cnn.tflite", "cnn.int8.tflite"):
        totals = layer_totals(layer_table(read_model(emulator_artifacts / name)))
        assert (totals["binary_macs"], totals["float_macs"]) == _keras_macs(emulator_artifacts / "cnn.h5"), name


def test_columns_add_up_to_the_flatbuffer(emulator_artifacts: Path) -> None:
    for name in ("bcnn.lce.tflite", "cnn.int8.tflite", "mlp.tflite"):
        model = read_model(emulator_artifacts / name)
        rows = layer_table(model)
        assert [row.index for row in rows] == list(range(len(model.operators)))
        constants = {i for op in model.operators for i in op.inputs if i >= 0 and model.tensors[i].is_constant}
        assert sum(row.weight_bytes for row in rows) == sum(len(model.tensors[i].data) for i in constants)
        for row, op in zip(rows, model.operators, strict=True):
            out = model.tensors[op.outputs[0]]
            assert row.output_shape == out.shape
            assert row.activation_bytes == out.size * out.itemsize


def test_lce_params_count_logical_binary_weights(emulator_artifacts: Path) -> None:
    model = read_model(emulator_artifacts / "bcnn.lce.tflite")
    rows = layer_table(model)
    for row, op in zip(rows, model.operators, strict=True):
        if op.name != "LceBconv2d":
            continue
        filt = model.tensors[op.inputs[1]]
        logical = filt.shape[0] * filt.shape[1] * filt.shape[2] * int(op.options["channels_in"])
        assert logical <= row.params <= logical + 2 * filt.shape[0]  # + per-channel multiplier and bias
        assert row.weight_bytes < row.params  # a 32nd of the bits, plus the per-channel floats
    text = format_layers(rows)
    assert text.splitlines()[0].split()[:3] == ["#", "op", "output"]
    assert "total" in text.splitlines()[-1]
