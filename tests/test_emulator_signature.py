"""emulator.signature: what a firmware takes and returns, read from firmware.json or bnn_model.h, and its input bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emulator.signature import (
    DEFAULT_SIGNATURE,
    FirmwareSignature,
    check_data,
    check_results,
    encode_inputs,
    read_signature,
)
from pipeline.errors import CheckError, InputError

KWS = {
    "input_shape": [49, 10, 1],
    "input_dtype": "float32",
    "input_quantization": None,
    "model_input_shape": [1, 49, 10, 1],
    "num_classes": 12,
    "score_dtype": "float32",
}
HEADER = """// generated
#ifndef BNN_MODEL_H
#define BNN_MODEL_H
#include <stdint.h>
#define BNN_INPUT_HEIGHT 32  // rows
#define BNN_INPUT_WIDTH 32
#define BNN_INPUT_CHANNELS 3
#define BNN_INPUT_SIZE (BNN_INPUT_HEIGHT * BNN_INPUT_WIDTH * BNN_INPUT_CHANNELS)
#define BNN_INPUT_TYPE int8_t
#define BNN_INPUT_SCALE 0.0078125f
#define BNN_INPUT_ZERO_POINT -128
#define BNN_NUM_CLASSES 10u
#define BNN_SCORE_TYPE float
#define BNN_SCORE_IS_FLOAT 1
#endif
"""


def test_firmware_json_signature_wins(tmp_path: Path) -> None:
    (tmp_path / "bnn_model.h").write_text(HEADER)
    (tmp_path / "firmware.json").write_text(json.dumps({"engine": "bnn", "report": {"signature": KWS}}))
    signature = read_signature(tmp_path)
    assert signature == FirmwareSignature((49, 10, 1), "float32", None, 12, "float32", "firmware.json", (1, 49, 10, 1))
    assert signature.input_bytes == 49 * 10 * 4 and signature.describe() == "49x10x1 float32 -> 12 float32 scores"
    assert signature.to_json()["input_shape"] == [49, 10, 1]


def test_header_macros_when_firmware_json_has_no_signature(tmp_path: Path) -> None:
    (tmp_path / "bnn_model.h").write_text(HEADER)
    (tmp_path / "firmware.json").write_text(json.dumps({"engine": "bnn", "report": {}}))
    signature = read_signature(tmp_path)
    assert signature.input_shape == (32, 32, 3) and signature.input_dtype == "int8"
    assert signature.input_quantization == (0.0078125, -128)
    assert (signature.num_classes, signature.score_dtype, signature.source) == (10, "float32", "bnn_model.h")


def test_old_headers_and_no_header_fall_back_to_the_first_api(tmp_path: Path) -> None:
    old_header = "#define BNN_INPUT_SIZE (28 * 28)\nint bnn_predict(const uint8_t p[784], int32_t s[10]);\n"
    (tmp_path / "bnn_model.h").write_text(old_header)
    old = read_signature(tmp_path)
    assert old.input_shape == (1, 1, 784) and (old.input_dtype, old.num_classes, old.score_dtype) == ("uint8", 10, "int32")
    assert "defaults for BNN_INPUT_TYPE, BNN_NUM_CLASSES, BNN_SCORE_TYPE" in old.source
    (tmp_path / "bnn_model.h").unlink()
    assert read_signature(tmp_path) == DEFAULT_SIGNATURE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_dtype": "int16"}, "input_dtype 'int16'"),
        ({"input_shape": [49, 0, 1]}, "dimension below 1"),
        ({"num_classes": 0}, "num_classes must be an integer >= 1"),
        ({"score_dtype": "float64"}, "score_dtype 'float64'"),
        ({"input_dtype": "int8"}, "needs input_quantization"),
    ],
)
def test_malformed_signatures_are_input_errors(tmp_path: Path, change: dict, message: str) -> None:
    (tmp_path / "firmware.json").write_text(json.dumps({"report": {"signature": {**KWS, **change}}}))
    with pytest.raises(InputError, match=message):
        read_signature(tmp_path)


def test_bad_header_values_are_input_errors(tmp_path: Path) -> None:
    header = tmp_path / "bnn_model.h"
    for text, message in (
        ("#define BNN_INPUT_TYPE double\n", "BNN_INPUT_TYPE 'double'"),
        ("#define BNN_NUM_CLASSES foo()\n", "not an integer expression"),
        ("#define BNN_INPUT_TYPE int8_t\n", "needs BNN_INPUT_SCALE"),
    ):
        header.write_text(text)
        with pytest.raises(InputError, match=message):
            read_signature(tmp_path)


def test_encoding_follows_the_signature() -> None:
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    assert encode_inputs(DEFAULT_SIGNATURE, pixels) == pixels.tobytes()
    features = rng.normal(size=(2, 49, 10)).astype(np.float32)
    kws = FirmwareSignature((49, 10, 1), "float32", None, 12, "float32", "test")
    assert encode_inputs(kws, features) == features.astype("<f4").tobytes()
    # uint8 data into a float32 firmware: the same values, exactly (what the interpreters are fed)
    as_float = FirmwareSignature((28, 28, 1), "float32", None, 10, "int32", "test")
    np.testing.assert_array_equal(np.frombuffer(encode_inputs(as_float, pixels), "<f4"), pixels.reshape(-1))


def test_int8_inputs_are_quantized_like_the_interpreters(tmp_path: Path) -> None:
    """Independent reference: round half to even of x / scale, plus the zero point, clipped."""
    signature = FirmwareSignature((2, 3, 1), "int8", (0.5, -3), 4, "float32", "test")
    values = np.array([[-70.0, -0.75, -0.25, 0.25, 0.75, 1.25], [63.0, 64.25, 65.0, 0.0, 1.0, -1.0]], np.float32)
    expected = np.array([[-128, -5, -3, -3, -1, -1], [123, 125, 127, -3, -1, -5]], np.int8)
    np.testing.assert_array_equal(np.frombuffer(encode_inputs(signature, values), np.int8).reshape(2, 6), expected)


def test_data_that_does_not_fit_is_refused_with_one_line() -> None:
    kws = FirmwareSignature((49, 10, 1), "float32", None, 12, "float32", "test")
    cases = [
        (DEFAULT_SIGNATURE, (28, 28), "float32", 10, "takes uint8 inputs (raw 8-bit values) but the data is float32"),
        (DEFAULT_SIGNATURE, (28, 28), "float32", 10, "--input-type float32"),
        (DEFAULT_SIGNATURE, (32, 32, 3), "uint8", 10, "the data's 32x32x3 examples (3072 values) do not fit"),
        (kws, (49, 10, 1), "float32", 10, "the firmware's model has 12 classes but the dataset has 10"),
        (kws, (28, 28), "uint8", 12, "28x28 examples (784 values) do not fit the firmware's 49x10x1 float32"),
    ]
    for signature, shape, dtype, classes, message in cases:
        with pytest.raises(InputError) as err:
            check_data(signature, shape, dtype, classes)
        assert message in str(err.value) and "\n" not in str(err.value)
    check_data(kws, (490,), "float32", 12)  # any layout of the same values
    check_data(kws, (49, 10), "uint8", 12)  # uint8 data converts exactly to float32


def test_results_must_match_the_signature() -> None:
    scores = np.zeros((2, 12), np.float32)
    kws = FirmwareSignature((49, 10, 1), "float32", None, 12, "float32", "firmware.json")
    check_results(kws, 12, scores, 490 * 4, "results.bin")
    with pytest.raises(CheckError, match="read 490-byte inputs"):
        check_results(kws, 12, scores, 490, "results.bin")
    with pytest.raises(CheckError, match="wrote 12 int32 scores"):
        check_results(kws, 12, scores.astype(np.int32), 490 * 4, "results.bin")
