"""Bare-metal Cortex-M projects that run an engine's C under QEMU (issue 7).

``generate`` emits the test scaffolding around the engine's deployable files (startup, linker
script, semihosting, harness, Makefile); ``protocol`` states the harness/host contract
(SysTick clock per QEMU machine, results file, QEMU flags); ``footprint`` measures the
deployable part's flash and RAM from a build.
"""

from firmware_gen.baremetal.footprint import Footprint, measure_footprint
from firmware_gen.baremetal.project import DEFAULT_OPT, HARNESS_FILES, generate
from firmware_gen.baremetal.protocol import SYSTICK_HZ, instructions_per_tick, parse_results, qemu_flags

__all__ = [
    "DEFAULT_OPT",
    "HARNESS_FILES",
    "SYSTICK_HZ",
    "Footprint",
    "generate",
    "instructions_per_tick",
    "measure_footprint",
    "parse_results",
    "qemu_flags",
]
