"""The CMake libraries firmware_gen writes: bnn_model and the tflm model library, with the toolchain file.

Cross builds are checked against the ELF attributes the compiler records (``readelf -A``), not
against the flags the generator wrote; the user project runs the library on the host and must
give exactly the scores of the emulator's host backend.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import require_cmake, require_toolchain, run_module

from firmware_gen.targets import get_core

# What the compiler records for each core (Tag_CPU_arch; hard-float cores pass floats in VFP registers).
ARCH_TAGS = {"cortex-m0": ("v6S-M", False), "cortex-m4": ("v7E-M", True)}
IMAGES = 300

USER_MAIN = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bnn_model.h"

/* user_app IMAGES COUNT SCORES LABELS: classifies COUNT images of BNN_INPUT_SIZE raw bytes,
   writes each image's scores (BNN_SCORE_TYPE) to SCORES and its class (int32) to LABELS. */
int main(int argc, char** argv) {
  if (argc != 5) return 2;
  FILE* in = fopen(argv[1], "rb");
  FILE* scores_out = fopen(argv[3], "wb");
  FILE* labels_out = fopen(argv[4], "wb");
  if (in == NULL || scores_out == NULL || labels_out == NULL) return 3;
  long count = strtol(argv[2], NULL, 10);
  static uint8_t raw[BNN_INPUT_SIZE];
  static BNN_INPUT_TYPE input[BNN_INPUT_SIZE];
  BNN_SCORE_TYPE scores[BNN_NUM_CLASSES];
  for (long i = 0; i < count; ++i) {
    if (fread(raw, 1, sizeof raw, in) != sizeof raw) return 4;
    for (long k = 0; k < BNN_INPUT_SIZE; ++k) input[k] = (BNN_INPUT_TYPE)raw[k];
    int32_t label = (int32_t)bnn_predict(input, scores);
    if (fwrite(scores, sizeof scores, 1, scores_out) != 1 || fwrite(&label, sizeof label, 1, labels_out) != 1) return 5;
  }
  return fclose(scores_out) == 0 && fclose(labels_out) == 0 && fclose(in) == 0 ? 0 : 6;
}
"""

USER_CMAKE = """
cmake_minimum_required(VERSION 3.13)
project(user_app LANGUAGES C)
add_subdirectory({firmware} bnn_model)
add_executable(user_app main.c)
target_compile_options(user_app PRIVATE -Wall -Wextra -Werror)
target_link_libraries(user_app PRIVATE bnn_model)
"""


def _run(cmd: list[str | Path], cwd: Path | None = None) -> str:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, check=False)
    assert (
        result.returncode == 0
    ), f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def _configure_and_build(source: Path, build: Path, *options: str) -> str:
    cmake = require_cmake()
    log = _run([cmake, "-S", source, "-B", build, *options])
    return log + _run([cmake, "--build", build, "--", "VERBOSE=1"])


@pytest.fixture(scope="module")
def bnn_firmware(tiny_flatbuffers, tmp_path_factory) -> dict[str, Path]:
    """core -> folder written by python -m firmware_gen for the tiny bcnn's LCE flatbuffer."""
    out = tmp_path_factory.mktemp("cmake_bnn")
    folders = {}
    for core in ARCH_TAGS:
        folder = out / f"bcnn.lce-{core}"
        result = run_module("firmware_gen", "--target", core, "--model", tiny_flatbuffers["bcnn"]["lce"], "--out", folder)
        assert result.returncode == 0, result.stderr
        folders[core] = folder
    return folders


@pytest.fixture(scope="module")
def tflm_firmware(tiny_cnn_tflite, tmp_path_factory) -> Path:
    """Folder of the tflm engine's files for the tiny cnn (int8), cortex-m4."""
    out = tmp_path_factory.mktemp("cmake_tflm") / "cnn.int8-cortex-m4"
    result = run_module("firmware_gen", "--target", "cortex-m4", "--model", tiny_cnn_tflite["int8"], "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def _arch(library: Path) -> tuple[str, bool]:
    text = _run(["arm-none-eabi-readelf", "-A", library])
    arch = re.search(r"Tag_CPU_arch: (\S+)", text)
    assert arch, text
    return arch.group(1), "Tag_ABI_VFP_args: VFP registers" in text


def test_bnn_folder_has_the_cmake_library_and_a_toolchain_file(bnn_firmware):
    """CMakeLists.txt builds only the deployable part; the toolchain file carries the core's flags from targets.py."""
    for core, folder in bnn_firmware.items():
        cmake = (folder / "CMakeLists.txt").read_text()
        assert "add_library(bnn_model STATIC ${CMAKE_CURRENT_SOURCE_DIR}/bnn_model.c)" in cmake
        assert "harness.c" not in cmake.split("cmake_minimum_required")[1]
        toolchain = (folder / "arm-none-eabi.cmake").read_text()
        assert f'set(ARM_CPU_FLAGS "{" ".join(get_core(core).gcc_flags)}")' in toolchain
        makefile = (folder / "Makefile").read_text()
        assert f"CPU_FLAGS := {' '.join(get_core(core).gcc_flags)}" in makefile  # the same flags as the Makefile


@pytest.mark.toolchain
@pytest.mark.parametrize("core", list(ARCH_TAGS))
def test_bnn_library_cross_compiles_with_the_toolchain_file(bnn_firmware, tmp_path, core):
    """cmake + the generated toolchain file: a warning-free libbnn_model.a for the core's architecture."""
    require_toolchain("arm-none-eabi-readelf")
    folder = bnn_firmware[core]
    log = _configure_and_build(
        folder, tmp_path / "build", f"-DCMAKE_TOOLCHAIN_FILE={folder / 'arm-none-eabi.cmake'}", "-DBNN_WERROR=ON"
    )
    library = tmp_path / "build" / "libbnn_model.a"
    assert library.is_file(), log
    assert "warning" not in log.lower()
    arch, vfp = ARCH_TAGS[core]
    assert _arch(library) == (arch, vfp)
    symbols = _run(["arm-none-eabi-nm", library])
    assert re.search(r"^[0-9a-f]+ T bnn_predict$", symbols, re.MULTILINE), symbols


def test_bnn_user_project_runs_on_the_host_with_the_host_backend_scores(bnn_firmware, mnist, tmp_path):
    """add_subdirectory + target_link_libraries in a user project; its scores equal emulator.host's."""
    from emulator.host import run_host

    folder = bnn_firmware["cortex-m4"]
    project = tmp_path / "user"
    project.mkdir()
    (project / "main.c").write_text(USER_MAIN)
    (project / "CMakeLists.txt").write_text(USER_CMAKE.format(firmware=folder.as_posix()))
    log = _configure_and_build(project, tmp_path / "build", "-DBNN_WERROR=ON")
    assert "warning" not in log.lower()
    images = mnist.x_test[:IMAGES]
    (tmp_path / "images.bin").write_bytes(np.ascontiguousarray(images).tobytes())
    _run(
        [tmp_path / "build" / "user_app", tmp_path / "images.bin", str(IMAGES), tmp_path / "scores.bin", tmp_path / "labels.bin"]
    )
    reference = run_host(folder, images)
    expected = np.asarray(reference.extra["scores"])
    scores = np.frombuffer((tmp_path / "scores.bin").read_bytes(), dtype=expected.dtype.newbyteorder("=")).reshape(expected.shape)
    labels = np.frombuffer((tmp_path / "labels.bin").read_bytes(), dtype=np.int32)
    np.testing.assert_array_equal(scores, expected)
    np.testing.assert_array_equal(labels, reference.predictions)


def test_tflm_folder_has_the_cmake_library(tflm_firmware):
    """Target named after the model, main.cc without main(), the C API header, TFLM_DIR as a cache variable."""
    cmake = (tflm_firmware / "CMakeLists.txt").read_text()
    assert "add_library(cnn_int8 STATIC ${CMAKE_CURRENT_SOURCE_DIR}/main.cc ${CMAKE_CURRENT_SOURCE_DIR}/model_data.c)" in cmake
    assert 'set(TFLM_DIR "" CACHE PATH' in cmake and "TFLM_APP_NO_MAIN" in cmake
    assert "TARGET_ARCH=cortex-m4+fp" in cmake
    header = (tflm_firmware / "tflm_model.h").read_text()
    assert "int tflm_classify(const uint8_t* pixels);" in header and "#define TFLM_INPUT_ELEMENTS 784" in header
    assert '#include "tflm_model.h"' in (tflm_firmware / "main.cc").read_text()


def test_tflm_library_needs_tflm_dir(tflm_firmware, tmp_path):
    """Configuring without TFLM_DIR stops with the message that says how to set it."""
    cmake = require_cmake()
    result = subprocess.run([cmake, "-S", tflm_firmware, "-B", tmp_path / "build"], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "-DTFLM_DIR=/path/to/tflite-micro" in result.stderr


def _fake_tflm_dir(root: Path) -> Path:
    """TFLite-Micro's headers as test_firmware_gen_tflm fakes them (no checkout can be fetched here)."""
    from test_firmware_gen_tflm import _fake_tflm

    return _fake_tflm(root)


@pytest.mark.toolchain
@pytest.mark.parametrize("core", [*ARCH_TAGS, "host"])
def test_tflm_library_builds_with_a_prebuilt_tflm_lib(tiny_cnn_tflite, tmp_path, core):
    """TFLM_DIR (fake headers) + TFLM_LIB: the model library compiles warning-free for M0, M4 and the host."""
    require_cmake()
    if core != "host":
        require_toolchain("arm-none-eabi-g++", "arm-none-eabi-readelf")
    folder = tmp_path / "fw"
    target = "cortex-m4" if core == "host" else core
    result = run_module("firmware_gen", "--target", target, "--model", tiny_cnn_tflite["int8"], "--out", folder)
    assert result.returncode == 0, result.stderr
    options = [] if core == "host" else [f"-DCMAKE_TOOLCHAIN_FILE={folder / 'arm-none-eabi.cmake'}"]
    prebuilt = tmp_path / "libtensorflow-microlite.a"
    prebuilt.write_bytes(b"!<arch>\n")  # an empty archive: a static library does not link it
    fake = _fake_tflm_dir(tmp_path)
    log = _configure_and_build(
        folder, tmp_path / "build", f"-DTFLM_DIR={fake}", f"-DTFLM_LIB={prebuilt}", "-DTFLM_APP_WERROR=ON", *options
    )
    library = tmp_path / "build" / "libcnn_int8.a"
    assert library.is_file(), log
    assert "warning" not in log.lower()
    assert f"-isystem {fake}" in log  # TFLite-Micro's headers are system headers
    if core != "host":
        assert _arch(library) == ARCH_TAGS[core]


@pytest.mark.toolchain
def test_tflm_library_builds_tflite_micro_with_its_makefile_when_no_lib_is_given(tflm_firmware, tmp_path):
    """Without TFLM_LIB the build runs TFLite-Micro's makefile for cortex_m_generic with the toolchain's compiler."""
    require_toolchain("arm-none-eabi-g++")
    cmake = require_cmake()
    fake = _fake_tflm_dir(tmp_path)
    build = tmp_path / "build"
    _run(
        [
            cmake,
            "-S",
            tflm_firmware,
            "-B",
            build,
            f"-DTFLM_DIR={fake}",
            f"-DCMAKE_TOOLCHAIN_FILE={tflm_firmware / 'arm-none-eabi.cmake'}",
        ]
    )
    recipe = (build / "CMakeFiles" / "tflm_microlite_build.dir" / "build.make").read_text()
    command = next(line for line in recipe.splitlines() if "tensorflow/lite/micro/tools/make/Makefile" in line)
    assert "$(MAKE) -C" in command  # the calling make, so its -j (jobserver) reaches TFLite-Micro's build
    assert "TARGET=cortex_m_generic" in command and "TARGET_ARCH=cortex-m4+fp" in command
    assert "OPTIMIZED_KERNEL_DIR=cmsis_nn" in command and f"-C {fake}" in command
    assert re.search(r"TARGET_TOOLCHAIN_ROOT=/\S*/ ", command), command
    assert f"GENDIR={build}/tflm/" in command and command.rstrip().endswith("microlite")
