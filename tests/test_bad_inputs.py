"""The bad-input matrix: every command, every hostile input, one line on stderr and the documented exit status.

Each case runs a command's ``main`` in this process (the same edge as ``python -m STAGE``;
TensorFlow starts once) inside a scratch folder and checks: the exit status, exactly one
non-empty stderr line with the expected words, no ``Traceback``, and no new file anywhere in the
folder (inputs live there too; outputs would land there). Exit statuses: 1 a check failed,
2 bad usage or input. Every case here failed before issue 19: a traceback, a second line, a
silent exit, a process killed by a signal, or a file written.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fuzzing import edit_model

MAINS = {
    "train": "train.cli",
    "convert": "convert.cli",
    "firmware_gen": "firmware_gen.cli",
    "emulator": "emulator.cli",
    "emulator.host": "emulator.host",
    "bench": "bench.run",
}


def run_main(command: str, argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    """(exit status, non-empty stderr lines, stdout) of ``python -m COMMAND ARGV`` run in-process."""
    main = importlib.import_module(MAINS[command]).main
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse usage errors leave from inside the parser
        code = stop.code
    out, err = capfd.readouterr()
    return int(code or 0), [line for line in err.splitlines() if line.strip()], out


def tree(folder: Path) -> set[str]:
    """Every path under ``folder`` (files and folders), relative."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image_bytes = struct.pack(">IIII", 0x803, len(images), 28, 28) + images.astype(np.uint8).tobytes()
    label_bytes = struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes()
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(image_bytes))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(label_bytes))


MARKER = "lambda-ran.txt"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, mnist, mini_flatbuffers) -> dict[str, Path]:
    """Hostile inputs, built once: datasets, Keras files and flatbuffer mutants (name -> path)."""
    import h5py
    import tensorflow as tf

    root = tmp_path_factory.mktemp("bad_inputs")
    paths: dict[str, Path] = {}
    write_idx(root / "small", mnist.x_test[:40], mnist.y_test[:40], "t10k")
    write_idx(root / "small", mnist.x_train[:600], mnist.y_train[:600], "train")
    paths["small"] = root / "small"
    empty = np.zeros((0, 28, 28), np.uint8)
    write_idx(root / "empty", empty, np.zeros(0, np.uint8), "t10k")
    write_idx(root / "empty", mnist.x_train[:100], mnist.y_train[:100], "train")
    paths["empty"] = root / "empty"

    # A Lambda whose code writes a marker file in the working directory when it runs.
    function = eval(f"lambda x: (__import__('pathlib').Path({MARKER!r}).write_text('ran'), x)[1]")
    previous = os.getcwd()
    os.chdir(root)
    try:
        model = tf.keras.Sequential([tf.keras.layers.Lambda(function, input_shape=(28, 28, 1)), tf.keras.layers.Flatten()])
        model.add(tf.keras.layers.Dense(10))
        model.save(root / "lambda.h5", save_format="h5")
    finally:
        os.chdir(previous)
    (root / MARKER).unlink()
    paths["lambda"] = root / "lambda.h5"

    # All-NaN scores (argmax of NaN is 0 in Keras and in TFLite alike): NaN weights, and finite
    # weights so large that every score overflows to infinity and softmax makes NaN of it.
    for name, value in (("nan", np.nan), ("overflow", 3e38)):
        model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(28, 28, 1)), tf.keras.layers.Dense(10)])
        kernel, bias = model.layers[1].get_weights()
        model.layers[1].set_weights([np.full_like(kernel, value), bias])
        model.add(tf.keras.layers.Activation("softmax"))
        model.save(root / f"{name}.h5", save_format="h5")
        paths[name] = root / f"{name}.h5"

    # An .h5 whose model is a Sequential with no layers.
    with h5py.File(root / "empty.h5", "w") as handle:
        handle.attrs["keras_version"] = "2.16.0"
        handle.attrs["backend"] = "tensorflow"
        handle.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"name": "empty", "layers": []}})
        weights = handle.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([], dtype="S1")
    paths["empty_h5"] = root / "empty.h5"

    def mutant(name: str, seed: str, edit: Callable) -> None:
        paths[name] = root / f"{name}.tflite"
        paths[name].write_bytes(edit_model(mini_flatbuffers[seed].read_bytes(), edit))

    def g(model):
        return model.subgraphs[0]

    def infinite_first_weight(model) -> None:
        conv = g(model).operators[0]
        tensor = g(model).tensors[conv.inputs[1]]
        values = np.array(model.buffers[tensor.buffer].data, np.uint8).view(np.float32).copy()
        values[0] = np.inf
        model.buffers[tensor.buffer].data = np.frombuffer(values.tobytes(), np.uint8)

    def filter_zero_point(model) -> None:
        conv = g(model).operators[0]
        quant = g(model).tensors[conv.inputs[1]].quantization
        quant.zeroPoint = np.full(len(quant.zeroPoint), 5, np.int64)

    def reshape_declared_wrong(model) -> None:
        reshape = next(op for op in g(model).operators if model.operatorCodes[op.opcodeIndex].builtinCode == 22)
        tensor = g(model).tensors[reshape.outputs[0]]
        tensor.shape = np.array([1, int(np.prod(tensor.shape)) - 1], np.int32)

    mutant("input_minus_one", "cnn", lambda m: g(m).inputs.__setitem__(0, -1))
    mutant("int8_input_minus_one", "cnn.int8", lambda m: g(m).inputs.__setitem__(0, -1))
    mutant("infinite_weight", "bcnn.lce", infinite_first_weight)
    mutant("missing_zero_point", "cnn.int8", lambda m: setattr(g(m).tensors[g(m).inputs[0]].quantization, "zeroPoint", None))
    mutant("filter_zero_point", "cnn.int8", filter_zero_point)
    mutant("reshape_declared_wrong", "cnn", reshape_declared_wrong)
    mutant("version_2", "cnn", lambda m: setattr(m, "version", 2))

    firmware = root / "fw-m4"
    firmware.mkdir()
    manifest = {"engine": "bnn", "target": "cortex-m4", "model": {"path": str(mini_flatbuffers["bcnn.lce"]), "sha256": "ab"}}
    (firmware / "firmware.json").write_text(json.dumps(manifest))
    paths["firmware_m4"] = firmware
    (root / "artifacts").mkdir()
    (root / "artifacts" / "bcnn.h5").write_text("not a model\n")
    paths["bench_artifacts"] = root / "artifacts"
    (root / "a_file").write_text("x\n")
    paths["a_file"] = root / "a_file"
    return paths


# name -> (command, argv with {placeholders} from the inputs fixture, exit status, words of the line)
CASES: dict[str, tuple[str, list[str], int, str]] = {
    "train --seed -1": ("train", ["--model", "mlp", "--seed", "-1"], 2, "--seed: must be a whole number"),
    "train --seed 2**32": ("train", ["--model", "mlp", "--seed", "4294967296"], 2, "--seed: must be a whole number"),
    "train --out is a file, before training": (
        "train",
        ["--model", "mlp", "--data", "{small}", "--out", "{a_file}/sub"],
        2,
        "exists and is not a folder",
    ),
    "train 0 test images, before training": (
        "train",
        ["--model", "mlp", "--data", "{empty}", "--out", "out"],
        2,
        "test set is empty",
    ),
    "convert a Lambda layer": ("convert", ["{lambda}", "--data", "{small}", "--check", "20"], 2, "carry Python code"),
    "convert an empty Sequential": ("convert", ["{empty_h5}", "--data", "{small}", "--check", "20"], 2, "no layers"),
    "convert NaN weights": (
        "convert",
        ["{nan}", "--data", "{small}", "--check", "20", "--formats", "float"],
        2,
        "NaN or infinite values: a constant must be finite",
    ),
    "convert all-NaN scores from finite weights": (
        "convert",
        ["{overflow}", "--data", "{small}", "--check", "20", "--formats", "float,lce"],
        1,
        "scores NaN or infinite on 20 images",
    ),
    "firmware_gen graph input -1 (tflm: SIGSEGV)": (
        "firmware_gen",
        ["--target", "cortex-m4", "--engine", "tflm", "--model", "{int8_input_minus_one}", "--out", "fw"],
        2,
        "graph input names tensor -1",
    ),
    "firmware_gen infinite weight (bnn: OverflowError)": (
        "firmware_gen",
        ["--target", "cortex-m4", "--engine", "bnn", "--model", "{infinite_weight}", "--out", "fw"],
        2,
        "NaN or infinite",
    ),
    "firmware_gen missing zero point (tflm: IndexError)": (
        "firmware_gen",
        ["--target", "cortex-m4", "--engine", "tflm", "--model", "{missing_zero_point}", "--out", "fw"],
        2,
        "zero points",
    ),
    "firmware_gen a model TFLite refuses": (
        "firmware_gen",
        ["--target", "cortex-m4", "--engine", "tflm", "--model", "{filter_zero_point}", "--out", "fw"],
        2,
        "TFLite interpreter cannot load the model",
    ),
    "firmware_gen shapes TFLite computes differently": (
        "firmware_gen",
        ["--target", "cortex-m4", "--engine", "tflm", "--model", "{reshape_declared_wrong}", "--out", "fw"],
        2,
        "but TFLite computes",
    ),
    "firmware_gen wrong schema version": (
        "firmware_gen",
        ["--target", "cortex-m4", "--model", "{version_2}", "--out", "fw"],
        2,
        "schema version 2",
    ),
    "emulator graph input -1 (TFLite-Micro: SIGSEGV)": ("emulator", ["{input_minus_one}", "--limit", "5"], 2, "tensor -1"),
    "emulator a Lambda layer": ("emulator", ["{lambda}", "--data", "{small}"], 2, "carry Python code"),
    "emulator 0 test images": ("emulator", ["{nan}", "--data", "{empty}"], 2, "test set is empty"),
    "emulator --min-agreement 150": ("emulator", ["{nan}", "--min-agreement", "150"], 2, "--min-agreement"),
    "emulator M4 firmware on cortex-m0": (
        "emulator",
        ["{firmware_m4}", "--backend", "qemu", "--target", "cortex-m0", "--data", "{small}"],
        2,
        "generated for cortex-m4",
    ),
    "emulator.host --limit 0": ("emulator.host", ["{firmware_m4}", "{nan}", "--limit", "0"], 2, "--limit"),
    "emulator.host --limit -1": ("emulator.host", ["{firmware_m4}", "{nan}", "--limit", "-1"], 2, "--limit"),
    "emulator.host --limit -10000": ("emulator.host", ["{firmware_m4}", "{nan}", "--limit", "-10000"], 2, "--limit"),
    "emulator.host --sanitize -5000": ("emulator.host", ["{firmware_m4}", "{nan}", "--sanitize", "-5000"], 2, "--sanitize"),
    "emulator.host 0 test images": ("emulator.host", ["{firmware_m4}", "{nan}", "--data", "{empty}"], 2, "test set is empty"),
    "bench: a stage fails in one line": (
        "bench",
        ["--reuse", "--artifacts", "{bench_artifacts}", "--data", "{small}", "--out", "bench_out"],
        1,
        "python -m convert",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_an_exit_status(case: str, inputs, tmp_path, monkeypatch, capfd) -> None:
    command, template, status, words = CASES[case]
    argv = [part.format(**{key: str(value) for key, value in inputs.items()}) for part in template]
    monkeypatch.chdir(tmp_path)

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr("train.trainer.fit", no_training)
    before_inputs, before_here = tree(inputs["small"].parent), tree(tmp_path)
    code, lines, _ = run_main(command, argv, capfd)
    assert code == status, (case, code, lines)
    assert len(lines) == 1 and words in lines[0], (case, lines)
    assert lines[0].startswith(f"python -m {command}: error: "), lines
    assert not any("Traceback" in line for line in lines)
    assert tree(tmp_path) == before_here, f"new files: {tree(tmp_path) - before_here}"
    assert tree(inputs["small"].parent) == before_inputs, f"new files: {tree(inputs['small'].parent) - before_inputs}"
    assert not (tmp_path / MARKER).exists() and not (inputs["small"].parent / MARKER).exists(), "the Lambda's code ran"


def test_trust_model_runs_the_lambda(inputs, tmp_path, monkeypatch) -> None:
    """The refusal above is what stops the code: with --trust-model the same file runs it (the marker appears)."""
    from convert.keras_io import load_keras_model

    monkeypatch.chdir(tmp_path)
    load_keras_model(inputs["lambda"], trust_model=True)
    assert (tmp_path / MARKER).read_text() == "ran"
