"""Emit the audio front end's C from a :class:`~pipeline.frontend.FrontendConfig`.

:func:`generate` renders ``PREFIX_frontend.h`` and ``PREFIX_frontend.c`` (templates
``frontend/*.j2``): the streaming API (``PREFIX_frontend_reset``, ``PREFIX_frontend_push``,
``PREFIX_frontend_finish``), the integer tables of :func:`pipeline.frontend.frontend_tables` as
``static const`` arrays (plus the FFT's bit-reversal swaps), and the algorithm of
:mod:`pipeline.frontend.compute` in C99 with 32-bit arithmetic only: the same integers, computed
in the order that suits a Cortex-M (two radix-2 stages per pass over the buffer, bins k and M - k
from one twiddle, SMLAD butterflies on cores with the DSP extension, plain C everywhere else).
Every file starts with a banner naming the generator version and the config's sha256 and JSON;
the same config gives byte-identical files.

:func:`harness_files` adds the test harness (:mod:`emulator.frontend` builds and runs it): for
the host (stdio) or for a core under QEMU (semihosting, SysTick, the bare-metal project's
startup, linker script and runtime).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from firmware_gen.baremetal import protocol
from firmware_gen.baremetal.project import DEFAULT_OPT, MIN_STACK_BYTES, architecture
from firmware_gen.render import environment
from firmware_gen.targets import Core
from pipeline.errors import InputError
from pipeline.frontend import FrontendConfig, frontend_tables
from pipeline.frontend.tables import bit_reverse

__all__ = [
    "DEFAULT_PREFIX",
    "HARNESS_MAGIC",
    "HARNESS_VERSION",
    "CHUNK_MAX",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "FrontendSource",
    "check_prefix",
    "generate",
    "harness_files",
]

DEFAULT_PREFIX = "kws"
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_MAX_PREFIX = 24
HARNESS_MAGIC = {"in": 0x4E494546, "out": 0x554F4546, "end": 0x444E4546}  # "FEIN", "FEOU", "FEND"
HARNESS_VERSION = 1
CHUNK_MAX = 1024  # samples per push the harness can hold
INPUT_NAME = "clips.bin"
OUTPUT_NAME = "features.bin"


@dataclass(frozen=True)
class FrontendSource:
    """The generated front end.

    Attributes:
        prefix: the C prefix (``kws`` gives ``kws_frontend_push``).
        files: file name -> bytes (``PREFIX_frontend.h``, ``PREFIX_frontend.c``).
        report: JSON-ready figures: config and its sha256, table and state bytes, the API.
    """

    prefix: str
    files: dict[str, bytes]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def header(self) -> str:
        """The header's file name."""
        return f"{self.prefix}_frontend.h"

    @property
    def source(self) -> str:
        """The C file's name."""
        return f"{self.prefix}_frontend.c"


def check_prefix(prefix: str) -> str:
    """Refuse a prefix that is not a short lower-case C identifier fragment.

    Raises:
        InputError: empty, longer than 24 characters, or not ``[a-z][a-z0-9]*`` words joined
            by single underscores.
    """
    if not isinstance(prefix, str) or len(prefix) > _MAX_PREFIX or not _PREFIX_RE.match(prefix):
        raise InputError(
            f"front end prefix must be lower-case letters and digits in words joined by single underscores, "
            f"starting with a letter, at most {_MAX_PREFIX} characters; got {prefix!r}"
        )
    return prefix


def _c_ints(values: Any, per_line: int = 16) -> str:
    items = [str(int(v)) for v in values]
    lines = ["    " + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join(lines)


def _fft_plan(config: FrontendConfig) -> dict[str, Any]:
    """What the C's FFT and power steps loop over: the bit reversal's swaps, the bins computed in
    pairs (k, M - k), where the overlap moves, whether a stage is left after the radix-4 passes."""
    tab = frontend_tables(config)
    n = config.frame_length
    points = n // 2
    keep = n - config.hop
    if tab.end_bin > points:
        raise RuntimeError(f"front end: bin {points} (Nyquist) feeds a band; the C computes the bins below it only")
    order = bit_reverse(points)
    swaps = [(i, int(order[i])) for i in range(points) if i < order[i]]
    mirrored = [min(k, points - k) for k in range(tab.first_bin, tab.end_bin)]
    reverse_type = "uint8_t" if points <= 256 else "uint16_t"
    return {
        "swaps": len(swaps),
        "reverse_type": reverse_type,
        "reverse": _c_ints([v for pair in swaps for v in pair]),
        "reverse_bytes": 2 * len(swaps) * (1 if reverse_type == "uint8_t" else 2),
        "pair_first": min(mirrored),
        "pair_last": max(mirrored),
        "rotate_in_peak": keep > 0 and 2 * config.hop == n,
        "odd_stages": (n.bit_length() - 2) % 2 == 1,
    }


def _context(config: FrontendConfig, prefix: str) -> dict[str, Any]:
    tab = frontend_tables(config)
    n = config.frame_length
    keep = n - config.hop
    plan = _fft_plan(config)
    segment_type = "uint8_t" if tab.end_bin <= 255 else "uint16_t"
    segment_bytes = (1 if segment_type == "uint8_t" else 2) * len(tab.segment_start)
    table_bytes = 2 * len(tab.sine) + segment_bytes + len(tab.weights) + len(tab.log_table) + plan["reverse_bytes"]
    return {
        "prefix": prefix,
        "upper": prefix.upper(),
        "config": config,
        "config_sha256": config.sha256(),
        "config_json": config.canonical_json(),
        "frames": config.frames,
        "channels": config.channels,
        "normalize": config.normalize == "max",
        "points": n // 2,
        "quarter": n // 4,
        "keep": keep,
        "log2n": n.bit_length() - 1,
        "first_bin": tab.first_bin,
        "end_bin": tab.end_bin,
        "sine": _c_ints(tab.sine, 12),
        "segment_type": segment_type,
        "segment_start": _c_ints(tab.segment_start),
        "weight_count": len(tab.weights),
        "weights": _c_ints(tab.weights),
        "log_table": _c_ints(tab.log_table),
        "state_bytes": 2 * n + 2 * keep + 4,
        "table_bytes": table_bytes,
        **plan,
    }


def generate(config: FrontendConfig, prefix: str = DEFAULT_PREFIX) -> FrontendSource:
    """Render the front end's C for ``config``.

    Args:
        config: the front end's settings.
        prefix: C prefix of the API and file names (:func:`check_prefix`).

    Returns:
        The :class:`FrontendSource` (deterministic: the same config and prefix give the same bytes).

    Raises:
        InputError: a bad prefix.
    """
    check_prefix(prefix)
    context = _context(config, prefix)
    env = environment()
    files = {
        f"{prefix}_frontend.h": env.get_template("frontend/frontend.h.j2").render(context).encode("utf-8"),
        f"{prefix}_frontend.c": env.get_template("frontend/frontend.c.j2").render(context).encode("utf-8"),
    }
    report = {
        "config": config.to_json(),
        "config_sha256": context["config_sha256"],
        "prefix": prefix,
        "frames": config.frames,
        "channels": config.channels,
        "feature_bytes": config.frames * config.channels,
        "state_bytes": context["state_bytes"],
        "table_bytes": context["table_bytes"],
        "api": [f"{prefix}_frontend_reset", f"{prefix}_frontend_push", f"{prefix}_frontend_finish"],
    }
    return FrontendSource(prefix=prefix, files=files, report=report)


class _ConfigAsModel:
    """What the bare-metal templates' banner reads of a model, for a front end config."""

    def __init__(self, config: FrontendConfig, prefix: str) -> None:
        self.path = f"{prefix} front end config"
        self.size = len(config.canonical_json())
        self.sha256 = config.sha256()


def harness_files(
    config: FrontendConfig, prefix: str = DEFAULT_PREFIX, core: Core | None = None, opt: str = DEFAULT_OPT
) -> dict[str, bytes]:
    """The test harness around the front end: for the host (``core`` None) or for ``core`` under QEMU.

    Args:
        config: the front end's settings.
        prefix: its C prefix.
        core: the target core, or ``None`` for the build machine.
        opt: optimisation flag of the QEMU build's objects.

    Returns:
        file name -> bytes: ``harness.c``, ``harness_platform.h`` and ``harness_host.c``; for a
        core also ``harness_qemu.c``, ``startup.c``, ``semihost.c``/``.h``, ``rt.c``,
        ``link.ld`` and a ``Makefile`` (``make`` builds ``firmware.elf`` and the deployable
        ``build/deployable.elf``).
    """
    check_prefix(prefix)
    context = _context(config, prefix)
    context.update(
        {
            "banner": "frontend/banner.j2",
            "harness_of": "front end",
            "host_timer": ", no timer",
            "status_names": "emulator/frontend.py",
            "magic_in": HARNESS_MAGIC["in"],
            "magic_out": HARNESS_MAGIC["out"],
            "magic_end": HARNESS_MAGIC["end"],
            "version": HARNESS_VERSION,
            "chunk_max": CHUNK_MAX,
            "input_name": INPUT_NAME,
            "output_name": OUTPUT_NAME,
        }
    )
    env = environment()
    names = {"harness.c": "frontend/harness.c.j2", "harness_platform.h": "frontend/harness_platform.h.j2"}
    if core is None:
        names["harness_host.c"] = "frontend/harness_host.c.j2"
        return {name: env.get_template(template).render(context).encode("utf-8") for name, template in names.items()}
    model = _ConfigAsModel(config, prefix)
    machine = core.qemu_machine
    context.update(
        {
            "engine": "audio front end, bare-metal QEMU harness",
            "core": core,
            "board": None,
            "model_name": model.path,
            "model_bytes": model.size,
            "model_sha256": model.sha256,
            "arch": architecture(core),
            "cpu_flags": " ".join(core.gcc_flags),
            "opt": opt,
            "cxx": False,
            "min_stack": MIN_STACK_BYTES,
            "systick_hz": protocol.SYSTICK_HZ[machine],
            "instructions_per_tick": f"{protocol.instructions_per_tick(machine):g}",
            "calib_short": protocol.CALIB_SHORT,
            "calib_long": protocol.CALIB_LONG,
            "entry": f"{prefix}_frontend_push",
            "engine_sources": [f"{prefix}_frontend.c"],
            "harness_sources": ["harness.c", "harness_qemu.c", "startup.c", "semihost.c", "rt.c"],
            "headers": [f"{prefix}_frontend.h", "harness_platform.h", "semihost.h"],
            "qemu_flags": " ".join(
                shlex.quote(arg) if "$" not in arg else arg
                for arg in protocol.qemu_flags("$(MACHINE)", "firmware.elf", "$(INPUT)", "$(OUTPUT)")
            ),
        }
    )
    names.update(
        {
            "harness_qemu.c": "frontend/harness_qemu.c.j2",
            "Makefile": "frontend/Makefile.j2",
            "startup.c": "baremetal/startup.c.j2",
            "semihost.c": "baremetal/semihost.c.j2",
            "semihost.h": "baremetal/semihost.h.j2",
            "rt.c": "baremetal/rt.c.j2",
            "link.ld": "baremetal/link.ld.j2",
        }
    )
    return {name: env.get_template(template).render(context).encode("utf-8") for name, template in sorted(names.items())}
