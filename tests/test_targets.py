"""firmware_gen.targets: the core and board tables, name lookup, sizes and budget verdicts."""

from __future__ import annotations

import subprocess

import pytest
from conftest import require_tools

from firmware_gen.targets import (
    BOARDS,
    CORES,
    QEMU_MEMORY,
    check_budget,
    get_board,
    get_core,
    parse_size,
    raise_if_over,
)
from pipeline.errors import BudgetError, InputError

EXPECTED_CORES = ["cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
EXPECTED_MACHINES = {
    "cortex-m0": "microbit",
    "cortex-m0plus": "microbit",
    "cortex-m3": "mps2-an385",
    "cortex-m4": "mps2-an386",
    "cortex-m7": "mps2-an500",
    "cortex-m33": "mps2-an505",
    "cortex-m55": "mps3-an547",
}
# name -> (core, flash bytes, RAM bytes) from the vendors' datasheets.
EXPECTED_BOARDS = {
    "stm32f030f4": ("cortex-m0", 16 * 1024, 4 * 1024),
    "stm32f103c8": ("cortex-m3", 64 * 1024, 20 * 1024),
    "stm32f411re": ("cortex-m4", 512 * 1024, 128 * 1024),
    "nrf52840": ("cortex-m4", 1024 * 1024, 256 * 1024),
    "rp2040": ("cortex-m0plus", 2 * 1024 * 1024, 264 * 1024),
    "stm32f746": ("cortex-m7", 1024 * 1024, 320 * 1024),
    "stm32l552": ("cortex-m33", 512 * 1024, 256 * 1024),
}


def test_every_core_is_registered_with_its_qemu_machine():
    assert list(CORES) == EXPECTED_CORES
    for name, machine in EXPECTED_MACHINES.items():
        assert CORES[name].qemu_machine == machine


def test_cortex_m_is_an_alias_of_m4_and_lookup_ignores_case():
    assert get_core("cortex-m") is CORES["cortex-m4"]
    assert get_core("Cortex-M7") is CORES["cortex-m7"]


def test_unknown_core_lists_the_valid_names():
    with pytest.raises(InputError) as err:
        get_core("cortex-m9")
    message = str(err.value)
    assert "cortex-m9" in message
    for name in [*EXPECTED_CORES, "cortex-m"]:
        assert name in message


@pytest.mark.parametrize("name", EXPECTED_CORES)
def test_gcc_flags_match_the_core_features(name):
    core = CORES[name]
    flags = core.gcc_flags
    assert flags[:2] == (f"-mcpu={name}", "-mthumb")
    assert core.cpu_flag == f"-mcpu={name}"
    hard = "-mfloat-abi=hard" in flags
    assert hard == core.has_fpu
    assert ("-mfloat-abi=soft" in flags) == (not core.has_fpu)
    assert core.thumb1_only == (name in ("cortex-m0", "cortex-m0plus"))
    # Armv6-M and the M3 have neither FPU nor DSP; the others here have both.
    assert core.has_dsp == core.has_fpu == (name not in ("cortex-m0", "cortex-m0plus", "cortex-m3"))


def test_memory_maps_are_the_qemu_table():
    for core in CORES.values():
        flash, ram = QEMU_MEMORY[core.qemu_machine]
        assert (core.flash, core.ram) == (flash, ram)
        assert core.flash.end <= core.ram.origin or core.ram.end <= core.flash.origin  # no overlap
    microbit = CORES["cortex-m0"]
    assert (microbit.flash.origin, microbit.flash.length) == (0, 256 * 1024)
    assert (microbit.ram.origin, microbit.ram.length) == (0x20000000, 16 * 1024)


def test_boards_have_the_datasheet_numbers():
    for name, (core, flash, ram) in EXPECTED_BOARDS.items():
        board = get_board(name)
        assert (board.core, board.flash_bytes, board.ram_bytes) == (core, flash, ram)
    m55 = [board for board in BOARDS.values() if board.core == "cortex-m55"]
    assert m55, "a Cortex-M55 board is required"
    for board in BOARDS.values():
        assert board.core in CORES


def test_unknown_board_lists_the_valid_names():
    with pytest.raises(InputError) as err:
        get_board("esp32")
    for name in BOARDS:
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("4096B", 4096),
        ("16KiB", 16384),
        ("16 KiB", 16384),
        ("16k", 16384),
        ("64KB", 65536),
        ("1MiB", 1048576),
        ("1MB", 1048576),
        ("2m", 2097152),
        ("0", 0),
        (123, 123),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "KiB", "1.5KiB", "-4", "16 GiB", "sixteen", "16KiBs", -1])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(InputError):
        parse_size(text)


def test_check_budget_names_the_budget_the_need_and_the_overshoot():
    verdict = check_budget(10_000, 5_120, 16_384, 4_096, label="board stm32f030f4")
    assert verdict["ok"] is False
    assert verdict["flash"] == {"need": 10_000, "budget": 16_384, "over": -6_384, "ok": True}
    assert verdict["ram"] == {"need": 5_120, "budget": 4_096, "over": 1_024, "ok": False}
    assert verdict["message"] == "over RAM budget of board stm32f030f4: needs 5,120 bytes, has 4,096 (over by 1,024)"
    with pytest.raises(BudgetError) as err:
        raise_if_over(verdict)
    assert err.value.exit_code == 3
    assert "\n" not in str(err.value)


def test_check_budget_both_over_is_still_one_line():
    verdict = check_budget(20_000, 5_000, 16_384, 4_096)
    assert verdict["message"] == (
        "over flash budget: needs 20,000 bytes, has 16,384 (over by 3,616); "
        "over RAM budget: needs 5,000 bytes, has 4,096 (over by 904)"
    )


def test_check_budget_exact_fit_and_unknowns_pass():
    fits = check_budget(16_384, 4_096, 16_384, 4_096)
    assert fits["ok"] is True and fits["checked"] == ["flash", "ram"] and fits["message"] is None
    verdict = check_budget(None, 100, 16_384, None)
    assert verdict["ok"] is None and verdict["checked"] == []  # nothing could be checked: not "fits"
    assert verdict["flash"]["ok"] is None and verdict["ram"]["ok"] is None
    raise_if_over(verdict)  # does not raise
    partial = check_budget(None, 100, 16_384, 4_096)
    assert partial["ok"] is True and partial["checked"] == ["ram"]


@pytest.mark.toolchain
def test_gcc_accepts_every_core_flag_set(tmp_path):
    """arm-none-eabi-gcc compiles and links a float program with each core's flags."""
    require_tools("arm-none-eabi-gcc", hint="install with `make toolchain` (gcc-arm-none-eabi)")
    source = tmp_path / "t.c"
    source.write_text("float f(float a, float b) { return a * b; }\nint main(void) { return (int)f(2.0f, 3.0f); }\n")
    for core in CORES.values():
        result = subprocess.run(
            [
                "arm-none-eabi-gcc",
                *core.gcc_flags,
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "--specs=rdimon.specs",
                str(source),
                "-o",
                str(tmp_path / "t.elf"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{core.name}: {result.stderr}"
