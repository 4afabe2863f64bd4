"""convert.flatbuffer: ops, tensors, buffers and options of real flatbuffers; corrupt input never crashes.

The reference is TensorFlow Lite's own interpreter (tensor names, shapes, types, constant
values) and the Keras model the flatbuffer came from (layer shapes and options).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from convert.flatbuffer import read_model, read_model_bytes
from pipeline.errors import InputError


@pytest.fixture(scope="module")
def bcnn_lce(tiny_flatbuffers):
    return read_model(tiny_flatbuffers["bcnn"]["lce"])


@pytest.fixture(scope="module")
def cnn_float(tiny_flatbuffers):
    return read_model(tiny_flatbuffers["cnn"]["float"])


@pytest.fixture(scope="module")
def cnn_int8(tiny_flatbuffers):
    return read_model(tiny_flatbuffers["cnn"]["int8"])


def test_tensors_match_tflite_interpreter(tiny_flatbuffers, cnn_float, cnn_int8):
    import tensorflow as tf

    for fmt, model in (("float", cnn_float), ("int8", cnn_int8)):
        interpreter = tf.lite.Interpreter(
            model_path=str(tiny_flatbuffers["cnn"][fmt]),
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
        details = {d["index"]: d for d in interpreter.get_tensor_details()}
        assert len(details) >= len(model.tensors)  # the interpreter may add scratch tensors after ours
        constants = 0
        for tensor in model.tensors:
            ref = details[tensor.index]
            assert tensor.name == ref["name"]
            assert tensor.shape == tuple(ref["shape"])
            assert np.dtype(ref["dtype"]).name == tensor.dtype.lower()
            if tensor.quantization is not None and len(tensor.quantization.scale) == 1:
                assert tensor.quantization.scale[0] == pytest.approx(ref["quantization"][0])
                assert tensor.quantization.zero_point[0] == ref["quantization"][1]
            if tensor.is_constant:
                constants += 1
                np.testing.assert_array_equal(tensor.array(), interpreter.get_tensor(tensor.index))
        assert constants >= 10  # 5 weight + 5 bias tensors at least
        assert model.inputs == tuple(d["index"] for d in interpreter.get_input_details())
        assert model.outputs == tuple(d["index"] for d in interpreter.get_output_details())


def test_buffers_account_for_the_file(cnn_float, cnn_int8, bcnn_lce):
    for model in (cnn_float, cnn_int8, bcnn_lce):
        distinct = {}
        for tensor in model.tensors:
            if tensor.is_constant:
                assert len(tensor.data) == int(np.prod(tensor.shape)) * tensor.itemsize, tensor.name
                distinct[tensor.buffer] = len(tensor.data)
        assert sum(distinct.values()) <= model.buffer_bytes <= model.size
        assert model.buffer_bytes > 0.9 * model.size  # weights are nearly the whole file
        assert model.op_names == sorted(model.op_names)


def test_cnn_ops_and_options_follow_the_keras_model(cnn_float, cnn_int8, tiny_models):
    import tensorflow as tf

    keras = tf.keras.models.load_model(tiny_models["cnn"], compile=False)
    kernels = [layer.kernel.shape for layer in keras.layers if hasattr(layer, "kernel")]
    for model in (cnn_float, cnn_int8):
        counts = Counter(op.name for op in model.operators)
        assert counts["CONV_2D"] == 3 and counts["FULLY_CONNECTED"] == 2 and counts["MAX_POOL_2D"] == 2
        assert model.custom_ops == [] and not model.has_lce_ops
        convs = [op for op in model.operators if op.name == "CONV_2D"]
        for op, kernel in zip(convs, kernels[:3], strict=True):
            assert op.options["padding"] == "VALID" and op.options["strideH"] == 1
            weights = model.tensors[op.inputs[1]]
            assert weights.shape == (kernel[3], kernel[0], kernel[1], kernel[2])  # OHWI
        pool = next(op for op in model.operators if op.name == "MAX_POOL_2D")
        assert pool.options["filterHeight"] == 2 and pool.options["strideW"] == 2
        assert model.producer(model.outputs[0]).name == "SOFTMAX"
        assert model.consumers(model.inputs[0])
    for model, dtype in ((cnn_float, "FLOAT32"), (cnn_int8, "INT8")):
        assert model.tensors[model.inputs[0]].shape == (1, 28, 28, 1)
        assert model.tensors[model.inputs[0]].dtype == dtype
    quant = cnn_int8.tensors[cnn_int8.inputs[0]].quantization
    assert quant is not None and quant.scale[0] == pytest.approx(1.0, rel=0.02)  # raw 0..255 in int8 steps


def test_lce_bconv2d_custom_options(bcnn_lce, tiny_models):
    import larq  # noqa: F401
    import tensorflow as tf

    keras = tf.keras.models.load_model(tiny_models["bcnn"], compile=False)
    binary_convs = [layer for layer in keras.layers if type(layer).__name__ == "QuantConv2D"][1:]
    bconvs = [op for op in bcnn_lce.operators if op.name == "LceBconv2d"]
    assert len(bconvs) == len(binary_convs) == 2
    assert bcnn_lce.has_lce_ops and {"LceBconv2d", "LceQuantize"} <= set(bcnn_lce.custom_ops)
    for op, layer in zip(bconvs, binary_convs, strict=True):
        kh, kw, cin, cout = layer.kernel.shape
        assert op.is_custom
        assert op.options["channels_in"] == cin
        assert op.options["stride_height"] == 1 and op.options["stride_width"] == 1
        assert op.options["dilation_height_factor"] == 1
        filters = bcnn_lce.tensors[op.inputs[1]]
        assert filters.dtype == "INT32" and filters.shape == (cout, kh, kw, (cin + 31) // 32)  # bit-packed
        assert bcnn_lce.producer(op.inputs[0]).name == "LceQuantize"


def test_truncated_flatbuffer_is_always_input_error(tiny_flatbuffers):
    data = tiny_flatbuffers["bcnn"]["lce"].read_bytes()
    cuts = sorted({*range(0, 64), *range(0, len(data), 499), *range(len(data) - 64, len(data))})
    for cut in cuts:
        with pytest.raises(InputError, match="truncated|TFLite flatbuffer"):
            read_model_bytes(data[:cut], "cut.tflite")


def test_corrupt_flatbuffer_never_crashes(tiny_flatbuffers):
    """Random damage: the reader returns a model or raises a one-line InputError, nothing else."""
    data = tiny_flatbuffers["cnn"]["int8"].read_bytes()
    rng = np.random.default_rng(0)
    for _ in range(150):
        damaged = bytearray(data)
        # the tables sit outside the big weight buffers: aim at the first and last 4 KiB too
        region = rng.choice([len(data), 4096])
        positions = rng.integers(0, region, 6)
        if rng.random() < 0.5:
            positions = len(data) - 1 - positions
        for position in positions:
            damaged[position] = int(rng.integers(0, 256))
        try:
            read_model_bytes(bytes(damaged), "damaged.tflite")
        except InputError as err:
            assert "\n" not in str(err)


def test_damaged_file_identifier_is_always_refused(tiny_flatbuffers):
    """Bytes 4..7 hold the file identifier TFL3: any change there is refused, whatever the value."""
    data = tiny_flatbuffers["cnn"]["int8"].read_bytes()
    assert data[4:8] == b"TFL3"
    for position in range(4, 8):
        for value in (0, 0x20, data[position] ^ 1, 0xFF):
            damaged = bytearray(data)
            damaged[position] = value
            with pytest.raises(InputError, match="TFL3"):
                read_model_bytes(bytes(damaged), "damaged.tflite")


def test_not_a_flatbuffer(tmp_path):
    text = tmp_path / "model.tflite"
    text.write_text("hello, this is text\n" * 10)
    with pytest.raises(InputError, match="TFL3"):
        read_model(text)
    with pytest.raises(InputError, match="no such file"):
        read_model(tmp_path / "missing.tflite")
    with pytest.raises(InputError):
        read_model_bytes(b"")
