"""Targets: Cortex-M cores (compiler flags, QEMU machine and its memory map) and boards (budgets).

Everything here is plain data in two tables, :data:`CORES` and :data:`BOARDS`, plus the two
helpers every stage shares for budgets: :func:`parse_size` and :func:`check_budget`.

The QEMU memory maps were read from ``info mtree -f`` of qemu-system-arm 7.2 (``-S``, monitor)
and from QEMU's ``hw/arm/mps2.c`` / ``mps2-tz.c``:

* microbit (nRF51): flash 256 KiB at 0x0, SRAM 16 KiB at 0x20000000.
* mps2-an385 / an386 / an500: ZBT SSRAM1 4 MiB at 0x0 (code), SSRAM2/3 4 MiB at 0x20000000.
* mps2-an505 (Cortex-M33, boots Secure; the IDAU makes address bit 28 the Secure alias):
  SSRAM1 4 MiB at 0x0 seen Secure at 0x10000000; SSRAM2 + SSRAM3 (2 MiB each, contiguous at
  0x28000000) seen Secure at 0x38000000.
* mps3-an547 (Cortex-M55, SSE-300, boots Secure): ITCM 512 KiB at 0x0 (Secure 0x10000000),
  DTCM 512 KiB at 0x20000000 (Secure 0x30000000).

For the TrustZone machines the table holds the Secure aliases, because firmware runs Secure.

Sizes: ``KiB``/``MiB``/``K``/``M`` and also ``KB``/``MB`` are 1024-based. Microcontroller
datasheets (STM32, nRF) write "KB" and mean 1024 bytes, so we follow them; there is no
1000-based unit here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline.errors import BudgetError, InputError

__all__ = [
    "Region",
    "Core",
    "Board",
    "CORES",
    "BOARDS",
    "CORE_ALIASES",
    "QEMU_MEMORY",
    "get_core",
    "get_board",
    "parse_size",
    "format_bytes",
    "check_budget",
    "raise_if_over",
]

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Region:
    """A memory region a linker script can use: ``ORIGIN = origin, LENGTH = length``."""

    origin: int
    length: int

    @property
    def end(self) -> int:
        """First address past the region."""
        return self.origin + self.length


# QEMU machine -> (code/flash region, RAM region). One table so a boot test can correct it.
QEMU_MEMORY: dict[str, tuple[Region, Region]] = {
    "microbit": (Region(0x00000000, 256 * KIB), Region(0x20000000, 16 * KIB)),
    "mps2-an385": (Region(0x00000000, 4 * MIB), Region(0x20000000, 4 * MIB)),
    "mps2-an386": (Region(0x00000000, 4 * MIB), Region(0x20000000, 4 * MIB)),
    "mps2-an500": (Region(0x00000000, 4 * MIB), Region(0x20000000, 4 * MIB)),
    "mps2-an505": (Region(0x10000000, 4 * MIB), Region(0x38000000, 4 * MIB)),
    "mps3-an547": (Region(0x10000000, 512 * KIB), Region(0x30000000, 512 * KIB)),
}


@dataclass(frozen=True)
class Core:
    """A Cortex-M core as the compiler and QEMU see it.

    Attributes:
        name: registry name (``cortex-m4``).
        cpu: the ``-mcpu=`` value.
        gcc_flags: arm-none-eabi-gcc machine flags (``-mcpu``, ``-mthumb``, float ABI, FPU).
        has_fpu: single-precision (or better) hardware floating point.
        has_dsp: the DSP extension (SIMD multiply-accumulate on 8/16-bit lanes).
        thumb1_only: Armv6-M (M0/M0+): no 32-bit Thumb-2 data processing, no hardware divide.
        qemu_machine: the ``qemu-system-arm -M`` machine that emulates this core.
        flash: code region of that QEMU machine (where the linker puts ``.text``/``.rodata``).
        ram: data region of that QEMU machine (``.data``, ``.bss``, stack).
    """

    name: str
    cpu: str
    gcc_flags: tuple[str, ...]
    has_fpu: bool
    has_dsp: bool
    thumb1_only: bool
    qemu_machine: str
    flash: Region
    ram: Region

    @property
    def cpu_flag(self) -> str:
        """``-mcpu=...``."""
        return f"-mcpu={self.cpu}"


def _core(name: str, fpu: str | None, dsp: bool, thumb1: bool, machine: str) -> Core:
    flags = [f"-mcpu={name}", "-mthumb"]
    if fpu is None:
        flags.append("-mfloat-abi=soft")
    else:
        flags.append("-mfloat-abi=hard")
        if fpu != "auto":
            flags.append(f"-mfpu={fpu}")
    flash, ram = QEMU_MEMORY[machine]
    return Core(name, name, tuple(flags), fpu is not None, dsp, thumb1, machine, flash, ram)


# Cores. M0+ runs on QEMU's microbit, whose CPU is an M0: both are Armv6-M with the same ISA.
# FPUs: M4 FPv4-SP, M7 FPv5 double precision (QEMU's M7 has it), M33 FPv5-SP, M55 lets
# -mcpu pick its FPU (gcc 12 selects the v8-m.main+dp multilib; MVE is not used).
CORES: dict[str, Core] = {
    core.name: core
    for core in (
        _core("cortex-m0", None, False, True, "microbit"),
        _core("cortex-m0plus", None, False, True, "microbit"),
        _core("cortex-m3", None, False, False, "mps2-an385"),
        _core("cortex-m4", "fpv4-sp-d16", True, False, "mps2-an386"),
        _core("cortex-m7", "fpv5-d16", True, False, "mps2-an500"),
        _core("cortex-m33", "fpv5-sp-d16", True, False, "mps2-an505"),
        _core("cortex-m55", "auto", True, False, "mps3-an547"),
    )
}

CORE_ALIASES: dict[str, str] = {"cortex-m": "cortex-m4"}


@dataclass(frozen=True)
class Board:
    """A real part: its core and the flash and RAM a firmware may use.

    Attributes:
        name: registry name (lower case part number).
        description: one line for ``--list-targets``.
        core: the core registry name.
        flash_bytes: on-chip (or, where stated, external) program memory.
        ram_bytes: SRAM available to the core.
    """

    name: str
    description: str
    core: str
    flash_bytes: int
    ram_bytes: int


# Numbers from the vendors' datasheets / product pages.
BOARDS: dict[str, Board] = {
    board.name: board
    for board in (
        Board("stm32f030f4", "ST STM32F030F4 (TSSOP20)", "cortex-m0", 16 * KIB, 4 * KIB),
        Board("stm32f103c8", 'ST STM32F103C8 ("blue pill")', "cortex-m3", 64 * KIB, 20 * KIB),
        Board("stm32f411re", "ST STM32F411RE (Nucleo-F411RE)", "cortex-m4", 512 * KIB, 128 * KIB),
        Board("nrf52840", "Nordic nRF52840", "cortex-m4", 1 * MIB, 256 * KIB),
        # RP2040 has no on-chip flash: 2 MiB is the external QSPI flash of the Raspberry Pi Pico.
        Board("rp2040", "Raspberry Pi RP2040 (Pico, 2 MiB external QSPI flash)", "cortex-m0plus", 2 * MIB, 264 * KIB),
        Board("stm32f746", "ST STM32F746NG (32F746G-DISCO)", "cortex-m7", 1 * MIB, 320 * KIB),
        Board("stm32l552", "ST STM32L552ZE (Nucleo-L552ZE-Q)", "cortex-m33", 512 * KIB, 256 * KIB),
        # Alif Ensemble E3, RTSS-HE Cortex-M55: up to 5.5 MB MRAM on the part; the HE core's
        # data TCM (SRAM5) is 256 KB (Alif white paper "RAM Regions and Linker Files in Alif
        # Microcontrollers", AWPR0003). We budget the DTCM only, the conservative choice.
        Board("alif-e3-he", "Alif Ensemble E3, Cortex-M55 HE core (MRAM, 256 KiB DTCM)", "cortex-m55", 5632 * KIB, 256 * KIB),
    )
}


def get_core(name: str) -> Core:
    """Look a core up by name (``cortex-m`` is ``cortex-m4``).

    Args:
        name: core name, case-insensitive.

    Returns:
        The :class:`Core`.

    Raises:
        InputError: unknown name; the message lists the valid names.
    """
    key = name.strip().lower()
    key = CORE_ALIASES.get(key, key)
    if key not in CORES:
        valid = ", ".join([*CORES, *CORE_ALIASES])
        raise InputError(f"unknown target {name!r}: valid targets are {valid}")
    return CORES[key]


def get_board(name: str) -> Board:
    """Look a board up by name.

    Args:
        name: board name, case-insensitive.

    Returns:
        The :class:`Board`.

    Raises:
        InputError: unknown name; the message lists the valid names.
    """
    key = name.strip().lower()
    if key not in BOARDS:
        raise InputError(f"unknown board {name!r}: valid boards are {', '.join(BOARDS)}")
    return BOARDS[key]


_SIZE_RE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB}


def parse_size(text: str | int) -> int:
    """Parse a byte size: ``4096``, ``4096B``, ``16K``, ``16KiB``, ``64KB``, ``1M``, ``1MiB``.

    Every unit is 1024-based, ``KB`` and ``MB`` included (datasheets use "KB" for 1024).

    Args:
        text: the size, or an int (returned as is if not negative).

    Returns:
        The size in bytes.

    Raises:
        InputError: not a non-negative whole number with one of those units.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise InputError(f"size must not be negative, got {text}")
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise InputError(
            f"bad size {text!r}: expected a whole number of bytes with an optional unit "
            "B, KiB, KB, K, MiB, MB, M (all 1024-based)"
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def format_bytes(count: int) -> str:
    """``5120`` -> ``"5,120"`` (what budget messages print)."""
    return f"{count:,}"


def check_budget(
    flash_need: int | None,
    ram_need: int | None,
    flash_budget: int | None,
    ram_budget: int | None,
    *,
    label: str = "",
) -> dict[str, Any]:
    """Compare needs against budgets; a ``None`` budget or need is not checked.

    Args:
        flash_need: bytes the artifact needs in flash.
        ram_need: bytes it needs in RAM.
        flash_budget: flash bytes available.
        ram_budget: RAM bytes available.
        label: what owns the budget, for the message (``"board stm32f030f4"``).

    Returns:
        A JSON-ready verdict: ``{"flash": {"need", "budget", "over", "ok"}, "ram": {...},
        "checked": ["flash", "ram"], "ok": bool | None, "message": str | None}``. ``over`` is
        ``need - budget`` (negative means headroom); a pair with a ``None`` side has ``ok``
        ``None`` and is left out of ``checked``. ``ok`` is False when any budget is exceeded,
        None when nothing could be checked, True otherwise. ``message`` is one line naming
        each budget that is exceeded, the need and the overshoot, e.g. ``over RAM budget of
        board stm32f030f4: needs 5,120 bytes, has 4,096 (over by 1,024)``.
    """
    verdict: dict[str, Any] = {}
    problems = []
    owner = f" of {label}" if label else ""
    for key, title, need, budget in (
        ("flash", "flash", flash_need, flash_budget),
        ("ram", "RAM", ram_need, ram_budget),
    ):
        if need is None or budget is None:
            verdict[key] = {"need": need, "budget": budget, "over": None, "ok": None}
            continue
        over = need - budget
        verdict[key] = {"need": need, "budget": budget, "over": over, "ok": over <= 0}
        if over > 0:
            problems.append(
                f"over {title} budget{owner}: needs {format_bytes(need)} bytes, "
                f"has {format_bytes(budget)} (over by {format_bytes(over)})"
            )
    checked = [key for key in ("flash", "ram") if verdict[key]["ok"] is not None]
    verdict["checked"] = checked
    verdict["ok"] = False if problems else (True if checked else None)
    verdict["message"] = "; ".join(problems) if problems else None
    return verdict


def raise_if_over(verdict: dict[str, Any]) -> None:
    """Raise :class:`~pipeline.errors.BudgetError` (exit 3) with the verdict's message if over.

    Args:
        verdict: a dict from :func:`check_budget`.

    Raises:
        BudgetError: a budget is exceeded (a verdict that could check nothing passes).
    """
    if verdict["ok"] is False:
        raise BudgetError(verdict["message"])
