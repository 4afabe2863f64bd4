"""The host and QEMU backends on firmware of other shapes: float, uint8 and int8 inputs, int32 and float scores.

Stand-in engines (written here, never shipped) with the bnn engine's C API (contract13.md): a
``bnn_model.h`` with the shape, type and class-count macros and a ``bnn_predict`` whose scores
numpy computes exactly (one input value per class, times 2 plus 0.5, or per-class sums); the
bare-metal project around them is the real one (``firmware_gen.baremetal.generate``). The
checks: what the harness is fed follows the signature, the scores decode with their type, and
the emulator refuses data that does not fit, with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import list_firmware_files, require_toolchain, require_tools

from emulator.host import run_host
from emulator.signature import FirmwareSignature, read_signature
from firmware_gen.baremetal import generate
from firmware_gen.engines import EngineOutput
from firmware_gen.targets import get_core
from pipeline.errors import InputError
from pipeline.interpreters import quantize

HEADER = """#ifndef BNN_MODEL_H
#define BNN_MODEL_H
#include <stdint.h>
#define BNN_INPUT_HEIGHT {h}
#define BNN_INPUT_WIDTH {w}
#define BNN_INPUT_CHANNELS {c}
#define BNN_INPUT_SIZE (BNN_INPUT_HEIGHT * BNN_INPUT_WIDTH * BNN_INPUT_CHANNELS)
#define BNN_INPUT_TYPE {input_type}
{quantization}#define BNN_NUM_CLASSES {classes}
#define BNN_SCORE_TYPE {score_type}
#define BNN_SCORE_IS_FLOAT {is_float}
int bnn_predict(const BNN_INPUT_TYPE input[BNN_INPUT_SIZE], BNN_SCORE_TYPE scores[BNN_NUM_CLASSES]);
#endif
"""
# One value per class (every STEP-th input), scaled exactly: float32 arithmetic that numpy repeats bit for bit.
PICK = """#include "bnn_model.h"
#define STEP (BNN_INPUT_SIZE / BNN_NUM_CLASSES)
int bnn_predict(const BNN_INPUT_TYPE input[BNN_INPUT_SIZE], BNN_SCORE_TYPE scores[BNN_NUM_CLASSES]) {
    int best = 0;
    for (int c = 0; c < BNN_NUM_CLASSES; c++) {
        scores[c] = (BNN_SCORE_TYPE)((float)input[c * STEP] * 2.0f + 0.5f);
        if (scores[c] > scores[best]) {
            best = c;
        }
    }
    return best;
}
"""
# Per-class sums of the raw values (integer scores).
SUMS = """#include "bnn_model.h"
int bnn_predict(const BNN_INPUT_TYPE input[BNN_INPUT_SIZE], BNN_SCORE_TYPE scores[BNN_NUM_CLASSES]) {
    int best = 0;
    for (int c = 0; c < BNN_NUM_CLASSES; c++) {
        scores[c] = 0;
    }
    for (int i = 0; i < BNN_INPUT_SIZE; i++) {
        scores[i % BNN_NUM_CLASSES] += (BNN_SCORE_TYPE)input[i];
    }
    for (int c = 1; c < BNN_NUM_CLASSES; c++) {
        if (scores[c] > scores[best]) {
            best = c;
        }
    }
    return best;
}
"""
KWS = FirmwareSignature((49, 10, 1), "float32", None, 12, "float32", "firmware.json", (1, 49, 10, 1))
CIFAR = FirmwareSignature((32, 32, 3), "uint8", None, 10, "int32", "firmware.json", (1, 32, 32, 3))
INT8 = FirmwareSignature((8, 8, 2), "int8", (0.03125, -7), 3, "float32", "firmware.json", (1, 8, 8, 2))
_C_TYPES = {"uint8": "uint8_t", "int8": "int8_t", "float32": "float", "int32": "int32_t"}


class FakeModel:
    """What the banner reads of a parsed flatbuffer."""

    path = "fake.lce.tflite"
    size = 1234
    sha256 = "0" * 64


def write_firmware(
    folder: Path, signature: FirmwareSignature, body: str, core: str = "cortex-m4", *, manifest: bool = True
) -> Path:
    """A stand-in engine with ``signature``'s API, its bare-metal project and (``manifest``) a firmware.json."""
    h, w, c = signature.input_shape
    quant = signature.input_quantization
    quantization = "" if quant is None else f"#define BNN_INPUT_SCALE {quant[0]!r}f\n#define BNN_INPUT_ZERO_POINT {quant[1]}\n"
    header = HEADER.format(
        h=h,
        w=w,
        c=c,
        input_type=_C_TYPES[signature.input_dtype],
        quantization=quantization,
        classes=signature.num_classes,
        score_type=_C_TYPES[signature.score_dtype],
        is_float=int(signature.score_dtype == "float32"),
    )
    files = {"bnn_model.h": header.encode(), "bnn_model.c": body.encode()}
    project = generate(FakeModel(), get_core(core), None, EngineOutput(files=files))
    folder.mkdir(parents=True)
    for name, data in {**files, **project.files}.items():
        (folder / name).write_bytes(data)
    if manifest:
        entry = {key: value for key, value in signature.to_json().items() if key != "source"}
        report = {"engine": "bnn", "target": core, "model": None, "report": {"signature": entry, **project.report}}
        (folder / "firmware.json").write_text(json.dumps(report))
    return list_firmware_files(folder)


def pick_reference(values: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy's ``PICK``: scores and argmax (first maximum) from the values the firmware was fed."""
    flat = values.reshape(len(values), -1).astype(np.float32)
    step = flat.shape[1] // classes
    scores = flat[:, [c * step for c in range(classes)]] * np.float32(2.0) + np.float32(0.5)
    return scores.astype(np.float32), np.argmax(scores, axis=1)


def sums_reference(values: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    flat = values.reshape(len(values), -1).astype(np.int64)
    scores = np.stack([flat[:, c::classes].sum(axis=1) for c in range(classes)], axis=1)
    return scores.astype(np.int32), np.argmax(scores, axis=1)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(13)
    return {
        "kws": rng.normal(0.0, 3.0, (40, 49, 10, 1)).astype(np.float32),
        "cifar": rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8),
        "int8": rng.normal(0.0, 2.0, (30, 8, 8, 2)).astype(np.float32),
    }


@pytest.fixture(scope="module", autouse=True)
def host_compiler() -> None:
    require_tools("gcc", "size", hint="the host backend needs gcc and binutils")


def test_host_float_inputs_and_float_scores(tmp_path: Path, data: dict[str, np.ndarray]) -> None:
    folder = write_firmware(tmp_path / "kws", KWS, PICK)
    run = run_host(folder, data["kws"])
    scores, expected = pick_reference(data["kws"], 12)
    assert run.extra["scores"].dtype == np.float32 and run.extra["scores"].shape == (40, 12)
    np.testing.assert_array_equal(run.extra["scores"], scores)
    np.testing.assert_array_equal(run.predictions, expected)
    assert run.extra["signature"]["input_shape"] == [49, 10, 1] and run.extra["signature"]["source"] == "firmware.json"


def test_host_uint8_inputs_of_another_shape(tmp_path: Path, data: dict[str, np.ndarray]) -> None:
    folder = write_firmware(tmp_path / "cifar", CIFAR, SUMS, manifest=False)  # signature from bnn_model.h's macros
    assert read_signature(folder).source == "bnn_model.h"
    run = run_host(folder, data["cifar"], fast=False)
    scores, expected = sums_reference(data["cifar"], 10)
    np.testing.assert_array_equal(run.extra["scores"], scores)
    np.testing.assert_array_equal(run.predictions, expected)


def test_host_int8_inputs_are_quantized_like_the_interpreters(tmp_path: Path, data: dict[str, np.ndarray]) -> None:
    folder = write_firmware(tmp_path / "int8", INT8, PICK, manifest=False)
    run = run_host(folder, data["int8"])
    fed = quantize(data["int8"].reshape(30, -1), 0.03125, -7, np.int8)
    scores, expected = pick_reference(fed, 3)
    np.testing.assert_array_equal(run.extra["scores"], scores)
    np.testing.assert_array_equal(run.predictions, expected)


def test_host_refuses_data_that_does_not_fit(tmp_path: Path, data: dict[str, np.ndarray]) -> None:
    folder = write_firmware(tmp_path / "cifar", CIFAR, SUMS)
    with pytest.raises(InputError, match="takes uint8 inputs .* --input-type float32"):
        run_host(folder, data["cifar"].astype(np.float32))
    with pytest.raises(InputError, match=r"the data's 49x10x1 examples \(490 values\) do not fit the firmware's 32x32x3 uint8"):
        run_host(folder, data["kws"])


def _npz(path: Path, x: np.ndarray, y: np.ndarray, **extra: object) -> Path:
    np.savez(path, x_test=x, y_test=y, **extra)
    return path


def test_emulator_cli_runs_a_firmware_on_its_own_data(tmp_path: Path, data: dict[str, np.ndarray], capsys) -> None:
    from emulator.cli import main

    folder = write_firmware(tmp_path / "kws-cortex-m4", KWS, PICK)
    labels = np.arange(40) % 12
    dataset = _npz(tmp_path / "kws.npz", data["kws"], labels)
    assert main([str(folder), "--data", str(dataset), "--json", str(tmp_path / "kws.json")]) == 0
    printed = capsys.readouterr().out
    assert "49x10x1 float32 examples, 12 classes" in printed and "49x10x1 float32 -> 12 float32 scores" in printed
    report = json.loads((tmp_path / "kws.json").read_text())
    _, expected = pick_reference(data["kws"], 12)
    assert report["backend"] == "host" and report["correct"] == int(np.sum(expected == labels))
    assert report["input_shape"] == [49, 10, 1] and report["num_classes"] == 12 and report["data"]["dtype"] == "float32"
    assert report["signature"]["input_dtype"] == "float32" and report["signature"]["score_dtype"] == "float32"
    # The host backend reports the target's flash and RAM from firmware.json (none here: the folder
    # was written without arm-none-eabi-gcc's figures); the host's own x86-64 objects stay in extra.
    assert report["extra"]["host_flash_bytes"] > 0 and report["extra"]["host_ram_bytes"] > 0


def test_emulator_cli_refusals_are_one_line(tmp_path: Path, data: dict[str, np.ndarray], mnist_path: Path, capsys) -> None:
    from emulator.cli import main

    kws = write_firmware(tmp_path / "kws", KWS, PICK)
    cifar = write_firmware(tmp_path / "cifar", CIFAR, SUMS)
    ten = _npz(tmp_path / "ten.npz", data["kws"], np.arange(40) % 10)
    floats = _npz(tmp_path / "floats.npz", data["cifar"].astype(np.float32), np.arange(30) % 10)
    cases = [
        ([kws, "--data", mnist_path], "the data's 28x28 examples (784 values) do not fit the firmware's 49x10x1 float32"),
        ([kws, "--data", ten], "the firmware's model has 12 classes but the dataset has 10"),
        ([cifar, "--data", floats], "takes uint8 inputs (raw 8-bit values) but the data is float32; generate it with"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main([str(a) for a in args]) == 2, args
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], (args, lines)
    assert not list(tmp_path.rglob("*.emulate.json"))


QEMU_CASES = {"kws": ("cortex-m4", KWS, PICK), "int8": ("cortex-m0", INT8, PICK), "cifar": ("cortex-m3", CIFAR, SUMS)}


@pytest.mark.toolchain
@pytest.mark.parametrize("name", sorted(QEMU_CASES))
def test_qemu_decodes_every_input_and_score_type(tmp_path: Path, data: dict[str, np.ndarray], name: str) -> None:
    require_toolchain()
    from emulator.qemu import run_qemu

    core, signature, body = QEMU_CASES[name]
    folder = write_firmware(tmp_path / name, signature, body, core)
    values = data[name][:12]
    run = run_qemu(folder, values, core=core)
    if signature.input_dtype == "int8":
        assert signature.input_quantization is not None
        values = quantize(values.reshape(len(values), -1), *signature.input_quantization, np.int8)
    reference = sums_reference if body == SUMS else pick_reference
    scores, expected = reference(values, signature.num_classes)
    assert run.extra["scores"].dtype == np.dtype(signature.score_dtype)
    np.testing.assert_array_equal(run.extra["scores"], scores)
    np.testing.assert_array_equal(run.predictions, expected)
    assert run.instructions_per_inference is not None and run.instructions_per_inference > 0
    # the same C on the host gives the same scores
    np.testing.assert_array_equal(run_host(folder, data[name][:12]).extra["scores"], run.extra["scores"])
