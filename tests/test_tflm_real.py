"""The tflm engine against real TFLite-Micro (90b983c2, CMSIS-NN kernels, Cortex-M4), built from the vendor archives.

Runs when the sources are available without network (``../shared/vendor`` beside the repository,
``$TFLM_VENDOR`` or ``$TFLM_DIR``); under ``CI=true`` their absence is a failure. The library is
built once (the tiny models' ops only, about a minute and a half on two idle cores) into the
cache (``build/tflm`` or ``$TFLM_CACHE``) and reused by later runs.

* the engine's resolver table is TFLite-Micro's own ``micro_mutable_op_resolver.h`` table;
* the generated project builds with its own Makefile against the real headers and library,
  without a warning;
* the firmware on QEMU's Cortex-M4 predicts what the TFLite-Micro Python interpreter predicts,
  through the library call and through ``python -m emulator FOLDER --backend qemu`` (inputs fed
  per ``firmware.json``'s signature, the reference run in the isolation child);
* the device headers written for TFLite-Micro's cortex_m_generic target compile for every core.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tflm_sources, require_toolchain, run_module

from convert.flatbuffer import read_model
from emulator.qemu_tflm import run_tflm_harness
from emulator.reference import firmware_input_values
from firmware_gen.targets import CORES
from firmware_gen.tflm import TFLM_OPS
from firmware_gen.tflm_build import default_cache, default_vendor, ensure_library, prepare_tree
from firmware_gen.tflm_build.kernels import RESOLVER_HEADER, resolver_table
from firmware_gen.tflm_build.target import device_name, write_device_headers
from pipeline.isolation import run_checked

pytestmark = [pytest.mark.toolchain, pytest.mark.slow]

CORE = "cortex-m4"
KERNELS = "cmsis_nn"


@pytest.fixture(scope="module")
def tree():
    """The TFLite-Micro tree (vendor archives checked and laid out, or $TFLM_DIR)."""
    require_tflm_sources()
    env_dir = os.environ.get("TFLM_DIR")
    return prepare_tree(default_cache(), tflm_dir=Path(env_dir) if env_dir else None, vendor=default_vendor(), log=print)


@pytest.fixture(scope="module")
def library(tiny_cnn_tflite):
    """libtensorflow-microlite.a for the Cortex-M4 with CMSIS-NN, holding the tiny cnn's ops."""
    require_tflm_sources()
    require_toolchain("arm-none-eabi-g++", "arm-none-eabi-ar", "git")
    ops = sorted({op for path in tiny_cnn_tflite.values() for op in read_model(path).builtin_ops})
    return ensure_library(CORE, KERNELS, ops, log=print)


def _generate(model: Path, out: Path) -> Path:
    from firmware_gen.cli import main as firmware_gen_main

    assert firmware_gen_main(["--engine", "tflm", "--target", CORE, "--model", str(model), "--out", str(out)]) == 0
    return out


def test_resolver_table_is_tflite_micros_own(tree):
    """Every builtin op of TFLite-Micro's MicroMutableOpResolver, with its method, and nothing else."""
    table = resolver_table((tree.path / RESOLVER_HEADER).read_text(encoding="utf-8"))
    assert {op: entry.method for op, entry in table.items()} == TFLM_OPS


def test_generated_project_builds_with_its_own_makefile(library, tiny_cnn_tflite, tmp_path):
    """The user-facing Makefile, real headers and library: compiles, links, no warning."""
    folder = _generate(tiny_cnn_tflite["int8"], tmp_path / "app")
    build = tmp_path / "build"
    result = subprocess.run(
        ["make", "-C", str(folder), f"TFLM_DIR={library.tree}", f"TFLM_LIB={library.path}", f"BUILD={build}"],
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "warning:" not in output, output[-3000:]
    assert (build / "cnn_int8_tflm.elf").is_file()


@pytest.mark.parametrize(("fmt", "count"), [("int8", 60), ("float", 15)])
def test_firmware_on_qemu_equals_the_python_interpreter(library, tiny_cnn_tflite, mnist, tmp_path, fmt, count):
    model = tiny_cnn_tflite[fmt]
    folder = _generate(model, tmp_path / "app")
    images = mnist.x_test[:count]
    run = run_tflm_harness(folder, images, core=CORE, kernels=KERNELS, library=library)
    feed = firmware_input_values(read_model(model), images)
    expected = np.argmax(run_checked("tflm", model.read_bytes(), feed, model.name), axis=1)
    np.testing.assert_array_equal(run.results.predictions, expected)
    assert run.instructions.min() > 10_000
    assert run.footprint.flash_bytes > model.stat().st_size + 20_000  # the model plus TFLite-Micro's code
    assert run.footprint.detail["static_ram_bytes"] > 0 and run.footprint.detail["stack_bytes"] > 0
    assert run.footprint.ram_bytes == run.footprint.detail["static_ram_bytes"] + run.footprint.detail["stack_bytes"]


def test_emulator_cli_runs_a_tflm_folder_against_its_interpreter(library, tiny_cnn_tflite, mnist_path, tmp_path):
    """The user's command: the signature feeds the firmware, the reference is TFLite-Micro in Python."""
    folder = _generate(tiny_cnn_tflite["int8"], tmp_path / "app")
    signature = json.loads((folder / "firmware.json").read_text())["report"]["signature"]
    assert signature["input_dtype"] == "uint8" and signature["score_dtype"] == "int32"
    assert signature["num_classes"] == 10 and signature["input_shape"] == [28, 28, 1]
    report = tmp_path / "report.json"
    result = run_module(
        "emulator", folder, "--backend", "qemu", "--target", CORE, "--data", mnist_path, "--limit", "20", "--json", report
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["reference"]["backend"] == "tflm" and data["agreement"] == 1.0
    assert data["signature"]["source"] == "firmware.json" and data["flash_bytes"] > 20_000


@pytest.mark.parametrize("core", list(CORES))
def test_device_headers_compile_against_cmsis(tree, tmp_path, core):
    """The ARMCMx.h written for cortex_m_generic brings CMSIS_6's core registers (DWT, DCB, SysTick)."""
    require_toolchain()
    devices = write_device_headers(tmp_path / "device")
    spec = CORES[core]
    name = device_name(spec)
    uses_dwt = not spec.thumb1_only
    source = tmp_path / "probe.c"
    source.write_text(
        f'#include "{name}.h"\n'
        "unsigned probe(void) {\n"
        "  SysTick->LOAD = 1u;\n"
        + ("  DCB->DEMCR |= DCB_DEMCR_TRCENA_Msk;\n  return DWT->CYCCNT;\n" if uses_dwt else "  return SysTick->VAL;\n")
        + "}\n"
    )
    cmsis = tree.path / "tensorflow/lite/micro/tools/make/downloads/cmsis/CMSIS/Core/Include"
    if not cmsis.is_dir():
        pytest.skip(f"{cmsis}: not in this TFLite-Micro tree (its makefile downloads it on first use)")
    command = ["arm-none-eabi-gcc", *spec.gcc_flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", str(source)]
    command += ["-I", str(devices / f"Device/{name}/Include"), "-I", str(cmsis), "-o", str(tmp_path / "probe.o")]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
