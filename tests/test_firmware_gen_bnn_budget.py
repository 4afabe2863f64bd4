"""``python -m firmware_gen --board`` judges the bnn engine by the deployable part's ELF figures.

The figures come from building the engine objects with arm-none-eabi-gcc at generation time,
and must be the same ones the QEMU backend reports for that folder later.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require_toolchain, run_module, stderr_lines

from emulator.qemu import run_qemu

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module", autouse=True)
def toolchain() -> None:
    require_toolchain()


def test_board_verdict_uses_elf_figures(emulator_artifacts: Path, tmp_path: Path, mnist) -> None:
    out = tmp_path / "m0"
    result = run_module("firmware_gen", "--board", "stm32f030f4", "--model", emulator_artifacts / "bcnn.lce.tflite", "--out", out)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "firmware.json").read_text())
    engine = report["report"]
    budget = report["budget"]
    assert sorted(budget["checked"]) == ["flash", "ram"] and budget["ok"] is True
    assert budget["flash"]["need"] == engine["flash_bytes"] and budget["ram"]["need"] == engine["ram_bytes"]
    # packed weights and thresholds are part of the deployable flash; the arena part of its RAM
    assert engine["flash_bytes"] > engine["model_data_bytes"]
    assert engine["ram_bytes"] > engine["activation_ram_bytes"]
    on_chip = run_qemu(out, mnist.x_test[:20], core="cortex-m0")
    assert (on_chip.flash_bytes, on_chip.ram_bytes) == (engine["flash_bytes"], engine["ram_bytes"])


def test_tight_flash_budget_is_reported_by_emulator(emulator_artifacts: Path, tmp_path: Path) -> None:
    out = tmp_path / "m4"
    assert (
        run_module(
            "firmware_gen", "--target", "cortex-m4", "--model", emulator_artifacts / "bcnn.lce.tflite", "--out", out
        ).returncode
        == 0
    )
    flash = json.loads((out / "firmware.json").read_text())["report"]["flash_bytes"]
    result = run_module(
        "emulator", out, "--backend", "qemu", "--target", "cortex-m4", "--limit", "10", "--flash-budget", str(flash - 1)
    )
    assert result.returncode == 3
    lines = stderr_lines(result)
    assert len(lines) == 1 and f"needs {flash:,} bytes" in lines[0] and "over by 1)" in lines[0]
