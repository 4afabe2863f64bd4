"""Emit the bare-metal project around an engine: startup, linker script, semihosting, harness.

The engine's files (``bnn_*.c``/``.h``) are the deployable part; everything emitted here is
test scaffolding kept in separate files: ``startup.c`` (vector table, reset handler),
``semihost.c``/``.h`` (ARM semihosting), ``harness.c`` (reads images, times ``bnn_predict``
with SysTick, writes results), ``rt.c`` (memcpy/memset for a libc-free link), ``link.ld``
(the core's QEMU memory map) and a ``Makefile`` (``make``, ``make run``, ``make size``).

:func:`generate_tflm` emits the same harness for the ``tflm`` engine's application in a
``qemu/`` subfolder (the folder's own ``Makefile`` is the application's): ``tflm_setup`` once,
then ``tflm_predict`` timed per image, linked with newlib-nano and the TFLite-Micro library.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any

from convert.flatbuffer import Model
from firmware_gen.baremetal import protocol
from firmware_gen.engines import EngineOutput
from firmware_gen.render import banner_context, environment
from firmware_gen.targets import Board, Core

if TYPE_CHECKING:
    from firmware_gen.clip import ClipPart

__all__ = [
    "HARNESS_FILES",
    "TFLM_HARNESS_FILES",
    "TFLM_QEMU_DIR",
    "DEFAULT_OPT",
    "ENTRY_POINT",
    "generate",
    "generate_tflm",
    "architecture",
]

# Output file -> template. Sources compiled into the harness, in link order.
HARNESS_FILES: dict[str, str] = {
    "Makefile": "baremetal/Makefile.j2",
    "link.ld": "baremetal/link.ld.j2",
    "startup.c": "baremetal/startup.c.j2",
    "semihost.h": "baremetal/semihost.h.j2",
    "semihost.c": "baremetal/semihost.c.j2",
    "harness.c": "baremetal/harness.c.j2",
    "rt.c": "baremetal/rt.c.j2",
}
_HARNESS_SOURCES = ("harness.c", "startup.c", "semihost.c", "rt.c")
# The tflm engine's harness: the same scaffolding without rt.c (newlib-nano provides memcpy & co).
TFLM_QEMU_DIR = "qemu"
TFLM_HARNESS_FILES: dict[str, str] = {
    "Makefile": "baremetal/Makefile_tflm.j2",
    "link.ld": "baremetal/link.ld.j2",
    "startup.c": "baremetal/startup.c.j2",
    "semihost.h": "baremetal/semihost.h.j2",
    "semihost.c": "baremetal/semihost.c.j2",
    "harness.c": "baremetal/harness.c.j2",
}
_TFLM_HARNESS_SOURCES = ("harness.c", "startup.c", "semihost.c")
TFLM_ENTRY, TFLM_SETUP, TFLM_HEADER = "tflm_predict", "tflm_setup", "tflm_model.h"
# -Os and -O2 measured with the seed BCNN: -Os is smaller AND runs fewer instructions on every core
# (first 200 test images: cortex-m4 774 K vs 803 K instructions per inference, 14,604 vs 15,128
# bytes of flash; cortex-m0 1.11 M vs 1.18 M, 14,616 vs 14,976 bytes).
DEFAULT_OPT = "-Os"
ENTRY_POINT = "bnn_predict"
# The linker script refuses a layout that leaves less than this for the stack.
MIN_STACK_BYTES = 2048
_PREDICT_DECL = re.compile(r"\bint\s+bnn_predict\s*\(")
_OPT_RE = re.compile(r"^-O[0-3sz]$|^-Og$|^-Ofast$")


def architecture(core: Core) -> str:
    """``Armv6-M``, ``Armv7-M``/``Armv7E-M`` or ``Armv8-M``/``Armv8.1-M`` for a core (comments only)."""
    return {
        "cortex-m0": "Armv6-M",
        "cortex-m0plus": "Armv6-M",
        "cortex-m3": "Armv7-M",
        "cortex-m4": "Armv7E-M",
        "cortex-m7": "Armv7E-M",
        "cortex-m33": "Armv8-M Mainline",
        "cortex-m55": "Armv8.1-M Mainline",
    }.get(core.name, "Armv6-M" if core.thumb1_only else "Armv7-M")


def _engine_layout(files: dict[str, bytes]) -> tuple[list[str], list[str], str]:
    """Sources, headers and the header that declares ``bnn_predict`` among the engine's files."""
    clash = sorted(set(files) & set(HARNESS_FILES))
    if clash:
        raise ValueError(f"engine files {clash} clash with the bare-metal project's own files; rename them in the engine")
    sources = sorted(name for name in files if name.endswith(".c") and "/" not in name)
    headers = sorted(name for name in files if name.endswith(".h") and "/" not in name)
    if not sources:
        raise ValueError("the engine produced no C source file; nothing would provide bnn_predict")
    declaring = [name for name in headers if _PREDICT_DECL.search(files[name].decode("utf-8", "replace"))]
    if not declaring:
        raise ValueError(f"no engine header declares int bnn_predict(...) (headers: {headers or 'none'})")
    main = "bnn_model.h" if "bnn_model.h" in declaring else declaring[0]
    return sources, headers, main


def generate(
    model: Model,
    core: Core,
    board: Board | None,
    engine_output: EngineOutput,
    *,
    opt: str = DEFAULT_OPT,
    clip: ClipPart | None = None,
) -> EngineOutput:
    """Emit the bare-metal QEMU project that builds and runs an engine's C on ``core``.

    Args:
        model: the parsed flatbuffer; its name, size and ``sha256`` go into every banner.
        core: the target core (compiler flags, QEMU machine and memory map).
        board: the board, or ``None``; recorded in the report only (the linker script uses the
            QEMU machine's memory so the harness fits; budgets apply to the deployable part).
        engine_output: the engine's files (``bnn_model.h``/``.c`` and kernels); they are not
            copied, only listed in the Makefile.
        opt: optimisation flag for every object (``-O2`` or ``-Os``).
        clip: the audio part (:func:`firmware_gen.clip.generate`), or ``None``. With it the
            harness is the clip harness (raw samples in, :mod:`firmware_gen.clip`), the deployable
            link holds the network, the front end and the clip API (entered at
            ``bnn_classify_clip``), and ``build/network.elf`` and ``build/frontend.elf`` link each
            part alone.

    Returns:
        :class:`EngineOutput` with the project's own files (the caller merges them with the
        engine's) and a ``report`` entry ``baremetal`` describing the build and the timer.

    Raises:
        ValueError: the engine's files lack a source or a header declaring ``bnn_predict``, or
            clash with a project file name; ``opt`` is not an ``-O`` flag; the core's QEMU
            machine has no measured SysTick clock.
    """
    from firmware_gen.clip import HARNESS_SOURCES as CLIP_HARNESS_SOURCES

    sources, headers, main_header = _engine_layout(engine_output.files)
    context = _context(model, core, board, opt, "bnn engine, bare-metal QEMU project")
    harness = _HARNESS_SOURCES if clip is None else (*CLIP_HARNESS_SOURCES, *_HARNESS_SOURCES[1:])
    context.update(
        {
            "api": "BNN",
            "entry": ENTRY_POINT,
            "setup": None,
            "log_callback": False,
            "cxx": False,
            "engine_sources": sources,
            "engine_header": main_header,
            "harness_sources": list(harness),
            "headers": [*headers, "semihost.h"],
            "clip": None,
        }
    )
    templates = dict(HARNESS_FILES)
    extra = _clip_harness(clip, context, templates) if clip is not None else {}
    env = environment()
    files = {name: env.get_template(template).render(context).encode("utf-8") for name, template in sorted(templates.items())}
    report = _report(core, board, opt, sources, harness)
    if clip is not None:
        report["frontend_sources"] = list(clip.sources)
    return EngineOutput(files={**files, **extra}, report={"baremetal": report})


def _clip_harness(
    clip: ClipPart, context: dict[str, Any], templates: dict[str, str], header_prefix: str = ""
) -> dict[str, bytes]:
    """Make a project the clip harness's (raw samples in): the image harness's template leaves
    ``templates``, ``context`` gains the audio part and the clips file's QEMU flags; returns the
    clip harness's rendered files (:func:`firmware_gen.clip.harness_files`)."""
    from firmware_gen.clip import harness_files as clip_harness_files

    del templates["harness.c"]
    context["clip"] = _clip_context(clip)
    clip_headers = [f"{header_prefix}{name}" for name in clip.files if name.endswith(".h")]
    context["headers"] = sorted({*context["headers"], *clip_headers, "harness_platform.h"})
    context["qemu_flags"] = " ".join(
        shlex.quote(arg) if "$" not in arg else arg
        for arg in protocol.qemu_flags("$(MACHINE)", "firmware.elf", "$(CLIPS)", "$(RESULTS)")
    )
    return clip_harness_files(clip, context)


def _clip_context(clip: ClipPart) -> dict[str, Any]:
    """The Makefile's variables for the audio part: its sources and the entries of the three links."""
    api = clip.target.api
    return {
        "sources": list(clip.sources),
        "frontend_object": clip.frontend_source.removesuffix(".c") + ".o",
        "entry": clip.target.entry,
        "keep": [name for name in clip.target.functions if name != clip.target.entry],
        "frontend_entry": f"{api}_frontend_push",
        "frontend_keep": [f"{api}_frontend_reset", f"{api}_frontend_finish"],
        "clips_name": protocol.CLIPS_NAME,
    }


def _context(model: Model, core: Core, board: Board | None, opt: str, engine: str) -> dict[str, Any]:
    """The template variables every bare-metal project shares (banner, core, timer, protocol, QEMU flags)."""
    if not _OPT_RE.match(opt):
        raise ValueError(f"opt must be an -O flag such as -O2 or -Os, got {opt!r}")
    if core.qemu_machine not in protocol.SYSTICK_HZ:
        raise ValueError(f"no SysTick clock is known for QEMU machine {core.qemu_machine!r}")
    systick_hz = protocol.SYSTICK_HZ[core.qemu_machine]
    per_tick = protocol.instructions_per_tick(core.qemu_machine)
    return {
        **banner_context(model, engine, core, board),
        "arch": architecture(core),
        "cpu_flags": " ".join(core.gcc_flags),
        "opt": opt,
        "images_name": protocol.IMAGES_NAME,
        "results_name": protocol.RESULTS_NAME,
        "systick_hz": systick_hz,
        "instructions_per_tick": f"{per_tick:g}",
        "calib_short": protocol.CALIB_SHORT,
        "calib_long": protocol.CALIB_LONG,
        "magic_header": protocol.MAGIC_HEADER,
        "magic_trailer": protocol.MAGIC_TRAILER,
        "format_version": protocol.FORMAT_VERSION,
        "min_stack": MIN_STACK_BYTES,
        "qemu_flags": " ".join(
            shlex.quote(arg) if "$" not in arg else arg
            for arg in protocol.qemu_flags("$(MACHINE)", "firmware.elf", "$(IMAGES)", "$(RESULTS)")
        ),
    }


def _report(core: Core, board: Board | None, opt: str, sources: list[str], harness: tuple[str, ...]) -> dict[str, Any]:
    return {
        "qemu_machine": core.qemu_machine,
        "cpu_flags": list(core.gcc_flags),
        "opt": opt,
        "engine_sources": sources,
        "harness_sources": list(harness),
        "systick_hz": protocol.SYSTICK_HZ[core.qemu_machine],
        "instructions_per_tick": protocol.instructions_per_tick(core.qemu_machine),
        "flash_region": {"origin": core.flash.origin, "length": core.flash.length},
        "ram_region": {"origin": core.ram.origin, "length": core.ram.length},
        "board": board.name if board is not None else None,
    }


def generate_tflm(
    model: Model,
    core: Core,
    board: Board | None,
    engine_output: EngineOutput,
    *,
    opt: str = DEFAULT_OPT,
    clip: ClipPart | None = None,
) -> EngineOutput:
    """Emit the QEMU harness project for the ``tflm`` engine's application, under ``qemu/``.

    Args:
        model: the parsed flatbuffer (its ``sha256`` goes into every banner).
        core: the target core.
        board: recorded in the report only.
        engine_output: the tflm engine's files; ``main.cc``, ``model_data.c`` and ``tflm_model.h``
            must be among them (they are referenced as ``../NAME``, never copied).
        opt: optimisation flag of the application and harness objects (the library keeps
            TFLite-Micro's own flags).
        clip: the audio part (its files sit beside ``main.cc``), or ``None``; with it the harness
            is the clip harness and the Makefile links the deployable part with the front end and
            the clip API, plus ``build/network.elf`` and ``build/frontend.elf`` (as :func:`generate`).

    Returns:
        :class:`EngineOutput` with ``qemu/*`` files and a ``baremetal`` report entry.

    Raises:
        ValueError: a required application file is missing, ``opt`` is not an ``-O`` flag, or
            the core's machine has no measured SysTick clock.
    """
    missing = [name for name in ("main.cc", "model_data.c", "model_data.h", TFLM_HEADER) if name not in engine_output.files]
    if missing:
        raise ValueError(f"the tflm engine's files lack {', '.join(missing)}")
    from firmware_gen.clip import HARNESS_SOURCES as CLIP_HARNESS_SOURCES

    context = _context(model, core, board, opt, "tflm engine, bare-metal QEMU harness")
    harness = _TFLM_HARNESS_SOURCES if clip is None else (*CLIP_HARNESS_SOURCES, *_TFLM_HARNESS_SOURCES[1:])
    context.update(
        {
            "api": "TFLM",
            "entry": TFLM_ENTRY,
            "setup": TFLM_SETUP,
            "log_callback": True,
            "cxx": True,
            "engine_header": TFLM_HEADER,
            "harness_sources": list(harness),
            "headers": [f"../{TFLM_HEADER}", "../model_data.h", "semihost.h"],
            "clip": None,
        }
    )
    templates = dict(TFLM_HARNESS_FILES)
    extra: dict[str, bytes] = {}
    if clip is not None:
        rendered = _clip_harness(clip, context, templates, header_prefix="../")
        extra = {f"{TFLM_QEMU_DIR}/{name}": data for name, data in rendered.items() if name != "harness_host.c"}
    env = environment()
    files = {
        f"{TFLM_QEMU_DIR}/{name}": env.get_template(template).render(context).encode("utf-8")
        for name, template in sorted(templates.items())
    }
    report = _report(core, board, opt, ["main.cc", "model_data.c"], harness)
    report.update({"folder": TFLM_QEMU_DIR, "entry": TFLM_ENTRY, "setup": TFLM_SETUP})
    if clip is not None:
        report["frontend_sources"] = list(clip.sources)
    return EngineOutput(files={**files, **extra}, report={"baremetal": report})
