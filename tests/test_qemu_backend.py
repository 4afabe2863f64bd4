"""The qemu backend on every core with stand-in engines whose results are known exactly.

Stand-ins (written here, never shipped): ``sums`` returns the argmax of ten pixel sums (numpy
computes the same); ``loop`` spends a hand-written ``subs``/``bne`` loop of ``1 + 1000 *
pixels[0]`` iterations, so the instruction counter must see 2,000 more instructions per unit
of ``pixels[0]``; ``hang`` never returns; ``fault`` executes an undefined instruction; ``big``
holds 20 KiB of static RAM (more than the micro:bit has).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import list_firmware_files, require_toolchain

from emulator.qemu import QemuError, QemuTimeoutError, run_qemu
from firmware_gen.baremetal import generate, instructions_per_tick
from firmware_gen.baremetal.protocol import parse_results
from firmware_gen.engines import EngineOutput
from firmware_gen.targets import CORES, get_core
from pipeline.errors import InputError

pytestmark = pytest.mark.toolchain

HEADER = """#ifndef BNN_MODEL_H
#define BNN_MODEL_H
#include <stdint.h>
#define BNN_INPUT_SIZE (28 * 28)
#define BNN_INPUT_TYPE uint8_t
#define BNN_NUM_CLASSES 10
#define BNN_SCORE_TYPE int32_t
#define BNN_SCORE_IS_FLOAT 0
int bnn_predict(const uint8_t pixels[28 * 28], int32_t scores[10]);
#endif
"""
BODIES = {
    "sums": """
    int32_t acc[10];
    memset(acc, 0, sizeof(acc));
    for (int i = 0; i < 28 * 28; i++) {
        acc[i % 10] += pixels[i];
    }
    int best = 0;
    for (int c = 0; c < 10; c++) {
        scores[c] = acc[c];
        if (acc[c] > acc[best]) {
            best = c;
        }
    }
    return best;
""",
    "loop": """
    uint32_t n = 1u + 1000u * pixels[0];
    __asm__ volatile(".syntax unified\\n1:\\n\\tsubs %0, %0, #1\\n\\tbne 1b\\n" : "+l"(n) : : "cc");
    scores[0] = (int32_t)n;
    return pixels[0] % 10;
""",
    "hang": """
    (void)pixels;
    (void)scores;
    for (;;) {
        __asm__ volatile("" ::: "memory");
    }
""",
    "broken": """
    (void)pixels;
    return scores[0] +;  /* a syntax error: the build fails */
""",
    "big": """
    static uint8_t scratch[20 * 1024];  /* more than the micro:bit's 16 KiB of RAM */
    memcpy(scratch, pixels, 28 * 28);
    scores[0] = scratch[0];
    return 0;
""",
    "fault": """
    (void)pixels;
    (void)scores;
    __asm__ volatile("udf #0");
    return 0;
""",
}
LOOP_STEP = 1000


@pytest.fixture(scope="module", autouse=True)
def toolchain() -> None:
    require_toolchain()


class FakeModel:
    """What the banner reads of a parsed flatbuffer."""

    path = "fake.lce.tflite"
    size = 1234
    sha256 = "0" * 64


def write_firmware(folder: Path, core: str, kind: str) -> Path:
    signature = "int bnn_predict(const uint8_t pixels[28 * 28], int32_t scores[10])"
    source = f'#include <string.h>\n#include "bnn_model.h"\n\n{signature} {{{BODIES[kind]}}}\n'
    files = {"bnn_model.h": HEADER.encode(), "bnn_model.c": source.encode()}
    out = generate(FakeModel(), get_core(core), None, EngineOutput(files=files))
    folder.mkdir(parents=True)
    for name, data in {**files, **out.files}.items():
        (folder / name).write_bytes(data)
    return list_firmware_files(folder)


def sums_reference(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1).astype(np.int64)
    sums = np.stack([flat[:, c::10].sum(axis=1) for c in range(10)], axis=1)
    return np.argmax(sums, axis=1)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("core", sorted(CORES))
def test_every_core_builds_runs_and_calibrates(tmp_path: Path, core: str, images: np.ndarray) -> None:
    folder = write_firmware(tmp_path / core, core, "sums")
    run = run_qemu(folder, images, core=core)
    np.testing.assert_array_equal(run.predictions, sums_reference(images))
    calibration = run.extra["calibration"]
    assert calibration["expected_instructions"] == 2_000_000
    assert abs(calibration["error"]) <= 2 * instructions_per_tick(get_core(core).qemu_machine)
    assert run.ram_source == "elf"
    assert run.flash_bytes is not None and 100 < run.flash_bytes < 4096
    footprint = run.extra["footprint"]
    assert run.ram_bytes == footprint["static_ram_bytes"] + footprint["stack_bytes"]
    # The static stack bound covers what the painted stack shows.
    assert 0 < run.extra["stack_measured_peak_bytes"] <= footprint["stack_bytes"]
    assert not any(folder.glob("build")), "the generated folder must stay clean"


@pytest.mark.parametrize("core", ["cortex-m0", "cortex-m4"])
def test_instructions_per_inference_follow_a_loop_of_known_length(tmp_path: Path, core: str) -> None:
    folder = write_firmware(tmp_path / core, core, "loop")
    pixels = np.zeros((6, 28, 28), dtype=np.uint8)
    pixels[:, 0, 0] = [0, 1, 2, 5, 10, 40]
    run = run_qemu(folder, pixels, core=core)
    np.testing.assert_array_equal(run.predictions, pixels[:, 0, 0] % 10)
    per_tick = instructions_per_tick(get_core(core).qemu_machine)
    # The harness's counts per image: 2 instructions per iteration plus a small constant
    # (the timer reads and the call), quantised to whole ticks.
    base = run.extra["instructions"]["min"]
    assert 0 <= base <= 64 + per_tick
    measured = run.instructions_per_inference * len(pixels) - base * len(pixels)
    expected = 2 * LOOP_STEP * int(pixels[:, 0, 0].astype(np.int64).sum())
    assert abs(measured - expected) <= len(pixels) * per_tick


def test_make_run_writes_the_results_file(tmp_path: Path, images: np.ndarray) -> None:
    folder = write_firmware(tmp_path / "m0", "cortex-m0", "sums")
    (folder / "mine.bin").write_bytes(images[:5].tobytes())
    build = subprocess.run(["make", "-s"], cwd=folder, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    command = ["make", "-s", "run", "IMAGES=mine.bin", "RESULTS=out.bin"]
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    results = parse_results((folder / "out.bin").read_bytes(), 5)
    np.testing.assert_array_equal(results.predictions, sums_reference(images[:5]))


def _qemu_pids_in(prefix: str) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if prefix in os.readlink(entry / "cwd"):
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def test_a_hung_guest_is_killed_and_reported(tmp_path: Path, images: np.ndarray) -> None:
    folder = write_firmware(tmp_path / "hang", "cortex-m3", "hang")
    before = _qemu_pids_in("bnn-qemu-")
    with pytest.raises(QemuTimeoutError, match="did not finish 3 images within 5 s and was killed"):
        run_qemu(folder, images[:3], core="cortex-m3", timeout=5)
    assert _qemu_pids_in("bnn-qemu-") <= before


def test_a_faulting_guest_reports_its_exit_status(tmp_path: Path, images: np.ndarray) -> None:
    folder = write_firmware(tmp_path / "fault", "cortex-m0", "fault")
    with pytest.raises(QemuError, match=r"status 70 \(the firmware took an unexpected exception"):
        run_qemu(folder, images[:2], core="cortex-m0")


def test_failures_are_one_line(tmp_path: Path, images: np.ndarray) -> None:
    """A build failure used to print make's last 15 lines, a faulting guest QEMU's register dump: one line each now."""
    folder = write_firmware(tmp_path / "broken", "cortex-m4", "broken")
    with pytest.raises(QemuError) as caught:
        run_qemu(folder, images[:2], core="cortex-m4")
    assert "\n" not in str(caught.value) and "make failed" in str(caught.value) and "error" in str(caught.value)
    folder = write_firmware(tmp_path / "fault", "cortex-m0", "fault")
    with pytest.raises(QemuError) as caught:
        run_qemu(folder, images[:2], core="cortex-m0")
    assert "\n" not in str(caught.value)


def test_a_firmware_larger_than_the_machine_says_so_in_one_line(tmp_path: Path, images: np.ndarray) -> None:
    """The linker's overflow, not its closing "collect2: error: ld returned 1 exit status"."""
    folder = write_firmware(tmp_path / "big", "cortex-m0", "big")
    with pytest.raises(QemuError) as caught:
        run_qemu(folder, images[:2], core="cortex-m0")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("big does not fit QEMU microbit (cortex-m0): region `RAM' overflowed by ")
    assert message.endswith(" bytes") and "collect2" not in message
    # The same firmware fits the Cortex-M3's machine (4 MiB of RAM).
    run_qemu(write_firmware(tmp_path / "big-m3", "cortex-m3", "big"), images[:2], core="cortex-m3")


def test_bad_inputs_are_input_errors(tmp_path: Path, images: np.ndarray) -> None:
    with pytest.raises(InputError, match="not a folder"):
        run_qemu(tmp_path / "nope", images, core="cortex-m4")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(InputError, match="no Makefile"):
        run_qemu(tmp_path / "empty", images, core="cortex-m4")
    folder = write_firmware(tmp_path / "m4", "cortex-m4", "sums")
    with pytest.raises(InputError, match="takes uint8 inputs .* but the data is float32; .*--input-type float32"):
        run_qemu(folder, images.astype(np.float32), core="cortex-m4")
    with pytest.raises(InputError, match=r"the data's 27x28 examples \(756 values\) do not fit the firmware's 1x1x784 uint8"):
        run_qemu(folder, images[:, 1:], core="cortex-m4")
    with pytest.raises(InputError, match="unknown target"):
        run_qemu(folder, images, core="cortex-m99")
