"""Test helpers for the bnn engine: generate C for a model, build it with a host compiler, run it.

Independent of ``emulator`` (which feeds dataset images): any input shape and type, any
compiler (gcc, clang), with or without ASan/UBSan, always ``-std=c99 -Wall -Wextra -Werror``.
The harness is the engine's own ``bnn/host_harness.c.j2`` and its results file is decoded by
``firmware_gen.baremetal.protocol.parse_results``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)
from emulator.host import host_harness_source
from firmware_gen.baremetal import protocol
from firmware_gen.bnn import generate
from firmware_gen.targets import get_core

__all__ = ["CBuild", "write_engine", "run_c", "lce_run", "input_dtype", "random_inputs", "STRICT", "SANITIZE"]

STRICT = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")
_NUMPY_INPUT = {"uint8": np.uint8, "int8": np.int8, "float32": np.float32}


@dataclass
class CBuild:
    """Scores and classes of one run of the generated C."""

    classes: np.ndarray
    scores: np.ndarray
    report: dict


def write_engine(
    flatbuffer: bytes, folder: Path, core: str = "cortex-m4", input_type: str = "auto", optimize: str = "speed"
) -> dict:
    """Generate the engine's files into ``folder``; returns the engine report."""
    out = generate(flatbuffer, get_core(core), input_type=input_type, optimize=optimize)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in out.files.items():
        (folder / name).write_bytes(data)
    return out.report


def input_dtype(report: dict) -> type:
    """The numpy type of the model's C input."""
    return _NUMPY_INPUT[report["signature"]["input_dtype"]]


def run_c(
    folder: Path, report: dict, inputs: np.ndarray, *, cc: str = "gcc", sanitize: bool = False, extra: tuple = ()
) -> CBuild:
    """Compile ``folder``'s engine with the host harness and classify ``inputs``.

    Args:
        folder: written by :func:`write_engine`.
        report: its report (the signature gives the input type and class count).
        inputs: ``(N, ...)`` values, converted to the signature's input type.
        cc: the compiler.
        sanitize: add ASan/UBSan (any report aborts the run).
        extra: more compiler flags.
    """
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    signature = report["signature"]
    data = np.ascontiguousarray(np.asarray(inputs).astype(input_dtype(report)))
    count = len(data)
    with tempfile.TemporaryDirectory(prefix="bnn-test-") as tmp:
        build = Path(tmp)
        harness = build / "harness.c"
        harness.write_text(host_harness_source())
        flags = [*STRICT, *(SANITIZE if sanitize else ()), *extra]
        sources = sorted(str(p) for p in folder.glob("bnn_*.c"))
        cmd = [cc, *flags, f"-I{folder}", str(harness), *sources, "-o", str(build / "harness")]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert result.returncode == 0 and not result.stderr.strip(), f"{cc} failed:\n{result.stderr[-3000:]}"
        (build / "in.bin").write_bytes(data.tobytes())
        run = subprocess.run(
            [str(build / "harness"), str(build / "in.bin"), str(build / "out.bin")], capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, f"harness failed ({run.returncode}): {run.stderr[-3000:]}"
        results = protocol.parse_results((build / "out.bin").read_bytes(), count, "test harness")
    assert results.scores.shape == (count, signature["num_classes"])
    return CBuild(np.asarray(results.predictions), np.asarray(results.scores), report)


def lce_run(flatbuffer: bytes, inputs: np.ndarray, **options) -> np.ndarray:
    """The LCE interpreter's raw outputs ``(N, classes)`` for ``inputs`` (one invoke per input)."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(flatbuffer, num_threads=1, **options)
    return np.asarray(interpreter.predict(np.asarray(inputs))).reshape(len(inputs), -1)


def random_inputs(shape: tuple[int, ...], count: int, seed: int, dtype: str = "float32") -> np.ndarray:
    """``count`` random inputs of ``shape``: uint8 0..255, or floats in [-2, 2] with some exact zeros."""
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        return rng.integers(0, 256, size=(count, *shape)).astype(np.uint8)
    values = rng.uniform(-2, 2, size=(count, *shape)).astype(np.float32)
    values[rng.random(values.shape) < 0.02] = 0.0
    return values
