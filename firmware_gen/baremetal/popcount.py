"""The fastest 32-bit popcount per Cortex-M core, as a header the bnn engine can include.

No Cortex-M core has a popcount instruction, so the XNOR/popcount kernels pick a software
variant. ``tests/test_baremetal_popcount.py`` measures every variant in QEMU (instructions
per ``acc += popcount(a[i] ^ w[i])`` word) and checks that :data:`POPCOUNT_CHOICE` names the
fastest one on each core. The header also offers ``bnn_xor_popcount_words``, a multi-word
XOR-popcount that sums byte counts over blocks of up to 31 words (cheaper per word when a dot
product spans several words).

The ``bnn`` engine's kernels now reduce a window's XOR words with carry-save trees first
(:mod:`firmware_gen.bnn.csa`) and count only the few weighted words left, in one SWAR pass on
every core (measured on the seed BCNN, cortex-m0: 1.11 M instructions per inference against
1.21 M with :data:`POPCOUNT_CHOICE` per weighted word). ``bnn_popcount32`` serves the
``BNN_WORD_POPCOUNT`` build, ``bnn_popcount_swar_shift`` the vectorizable channel-inner loops.
"""

from __future__ import annotations

from convert.flatbuffer import Model
from firmware_gen.render import banner_context, environment
from firmware_gen.targets import Core

__all__ = ["VARIANTS", "POPCOUNT_CHOICE", "HEADER_NAME", "popcount_header"]

HEADER_NAME = "bnn_popcount.h"
# Single-word variants in bnn_popcount.h (function bnn_popcount_<name>).
VARIANTS = ("swar_mul", "swar_shift", "lut8", "lut4", "builtin")
# Fastest single-word variant per core: instructions per ``acc += popcount(a ^ w)`` word, QEMU
# 7.2, arm-none-eabi-gcc 12.2 -Os (the project default), popcount part only (loop overhead
# subtracted), 256-word loop / 8-word calls:
#   Armv6-M (M0, M0+): lut8 18.0/18.5, swar_mul 22.0/22.6, builtin 22.0/22.5, swar_shift
#   27.0/27.6, lut4 77/78; the multi-word byte-count block 20.9/22.9.
#   Armv7-M / v8-M (M3, M4, M7, M33, M55): swar_mul 10.0/10.1, lut8 11.0/11.1, swar_shift 12.0,
#   builtin 14.0/14.4, lut4 52-58; the block 7.6/9.0 (6.7/8.3 on M55) beats them all.
# At -O2 the order is the same (M0: lut8 17.0, swar_mul 19.0; v7-M: swar_mul 11.0, lut8 11.0).
# On Armv6-M gcc expands swar_mul's multiply into shifts and adds (it assumes a slow multiplier).
POPCOUNT_CHOICE: dict[str, str] = {
    "cortex-m0": "lut8",
    "cortex-m0plus": "lut8",
    "cortex-m3": "swar_mul",
    "cortex-m4": "swar_mul",
    "cortex-m7": "swar_mul",
    "cortex-m33": "swar_mul",
    "cortex-m55": "swar_mul",
}


def _lut8_rows() -> list[str]:
    counts = [bin(value).count("1") for value in range(256)]
    return [", ".join(str(c) for c in counts[row : row + 16]) for row in range(0, 256, 16)]


def popcount_header(model: Model, core: Core, *, choice: str | None = None) -> bytes:
    """Render ``bnn_popcount.h`` for ``core``.

    Args:
        model: the parsed flatbuffer (named in the banner).
        core: the target core.
        choice: override the variant (measurement builds); default :data:`POPCOUNT_CHOICE`.

    Returns:
        The header's bytes (deterministic).

    Raises:
        ValueError: unknown variant.
    """
    picked = choice or POPCOUNT_CHOICE.get(core.name, "swar_mul")
    if picked not in VARIANTS:
        raise ValueError(f"unknown popcount variant {picked!r}: valid variants are {', '.join(VARIANTS)}")
    text = (
        environment()
        .get_template("baremetal/bnn_popcount.h.j2")
        .render(
            **banner_context(model, "bnn engine", core),
            choice=picked,
            lut8_rows=_lut8_rows(),
        )
    )
    return text.encode("utf-8")
