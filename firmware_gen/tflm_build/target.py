"""TFLite-Micro's ``cortex_m_generic`` target per core: its ``TARGET_ARCH`` and CMSIS device header.

:data:`TFLM_ARCH` is the ``TARGET_ARCH`` each core builds with (hard float where the core has an
FPU, as the project's compiler flags).

``cortex_m_generic_makefile.inc`` compiles every file with
``-DCMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE="ARMCM4.h"`` (the core's name) and adds
``$(CORTEX_DFP_PATH)/Device/ARMCM4/Include`` to the include path; only ``micro_time.cc`` uses it
(``DCB``/``DWT`` or the PMU for its cycle counter). Arm's Cortex_DFP pack is not among the vendor
archives, so :func:`write_device_headers` renders a small header per core that sets the core's
configuration macros and includes CMSIS_6's own core header; the build passes the folder as
``CORTEX_DFP_PATH``.
"""

from __future__ import annotations

from pathlib import Path

from firmware_gen.render import render
from firmware_gen.targets import CORES, Core
from firmware_gen.tflm_build.lock import write_if_changed

__all__ = ["TFLM_ARCH", "CMSIS_CORE", "device_name", "device_header", "write_device_headers"]

# Core -> TARGET_ARCH of TFLite-Micro's cortex_m_generic target.
TFLM_ARCH: dict[str, str] = {
    "cortex-m0": "cortex-m0",
    "cortex-m0plus": "cortex-m0plus",
    "cortex-m3": "cortex-m3",
    "cortex-m4": "cortex-m4+fp",
    "cortex-m7": "cortex-m7+fp",
    "cortex-m33": "cortex-m33",
    "cortex-m55": "cortex-m55",
}

# Core -> TFLite-Micro's CORE (cortex_m_generic_makefile.inc), which names ARMC<CORE>.h.
CMSIS_CORE: dict[str, str] = {
    "cortex-m0": "M0",
    "cortex-m0plus": "M0plus",
    "cortex-m3": "M3",
    "cortex-m4": "M4",
    "cortex-m7": "M7",
    "cortex-m33": "M33",
    "cortex-m55": "M55",
}
_V8M = ("cortex-m33", "cortex-m55")


def device_name(core: Core) -> str:
    """``ARMCM4`` for cortex-m4: the device TFLite-Micro's makefile names for the core.

    Raises:
        KeyError: a core TFLite-Micro's cortex_m_generic target does not know.
    """
    return f"ARMC{CMSIS_CORE[core.name]}"


def device_header(core: Core) -> tuple[str, str]:
    """``(relative path, text)`` of the device header for ``core`` (``Device/ARMCM4/Include/ARMCM4.h``)."""
    name = device_name(core)
    suffix = CMSIS_CORE[core.name]
    text = render(
        "tflm_build/device.h.j2",
        core=core,
        header=f"{name}.h",
        guard=f"BNN_MCU_{name.upper()}_H",
        core_header=f"core_c{suffix.lower()}.h",
        rev_macro=f"__C{suffix.upper()}_REV",
        v8m=core.name in _V8M,
        fpu_dp=core.name in ("cortex-m7", "cortex-m55"),
        pmu=core.name == "cortex-m55",
    )
    return f"Device/{name}/Include/{name}.h", text


def write_device_headers(folder: Path) -> Path:
    """Write every core's device header under ``folder`` (unchanged files are not rewritten).

    Returns:
        ``folder``, the value for TFLite-Micro's ``CORTEX_DFP_PATH``.
    """
    for core in CORES.values():
        rel, text = device_header(core)
        write_if_changed(folder / rel, text)
    return folder
