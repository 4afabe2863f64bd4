"""The audio part of a firmware: the front end beside the network, and the clip API that joins them.

A flatbuffer converted from an audio dataset carries its front end config
(:attr:`convert.flatbuffer.Model.frontend`); for such a model :func:`generate` emits, next to an
engine's network,

* ``API_frontend.h/.c`` (:func:`firmware_gen.frontend.generate` with the engine's prefix: ``bnn``
  or ``tflm``): raw 16-bit PCM to uint8 log-mel features, the same bytes as Python's;
* ``API_clip.h/.c`` (``templates/clip/``): ``API_clip_begin``, ``API_clip_push`` (any chunking),
  ``API_clip_finish`` (pads a short clip), ``API_clip_end`` (pads, runs the network on the
  features, returns the class), ``API_classify_clip`` (the whole clip in one call) and
  ``API_clip_features``; the features buffer (static) is the network's input.

:func:`harness_files` renders the clip harness (``harness.c``: a clip streamed from a host file in
chunks through one small static buffer, the front end and the network timed apart) with its QEMU
platform (``harness_qemu.c``) and its host platform (``harness_host.c``); the results format is
version 3 of :mod:`firmware_gen.baremetal.protocol`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_gen.baremetal import protocol
from firmware_gen.baremetal.footprint import Footprint, measure_link
from firmware_gen.frontend import generate as generate_frontend
from firmware_gen.render import environment
from firmware_gen.targets import Core
from pipeline.errors import InputError
from pipeline.frontend import FrontendConfig

__all__ = [
    "ClipTarget",
    "CLIP_TARGETS",
    "ClipPart",
    "HARNESS_SOURCES",
    "LINKS",
    "check_network_input",
    "generate",
    "int8_input",
    "harness_files",
    "measure_links",
    "measure_frontend",
    "split_figures",
]


@dataclass(frozen=True)
class ClipTarget:
    """How an engine's network is called from the clip API.

    Attributes:
        api: the C prefix (``bnn``: ``bnn_clip_push``, ``bnn_frontend.c``).
        model_header: the header declaring the network's predict function.
        predict: ``int predict(const uint8_t *features, SCORE_TYPE *scores)``.
        setup: a function the application calls once first (``tflm_setup``), or ``None``.
        input_size: the model header's macro for the input's value count.
    """

    api: str
    model_header: str
    predict: str
    setup: str | None
    input_size: str

    @property
    def functions(self) -> list[str]:
        """The clip API's functions, in the header's order."""
        names = ("clip_begin", "clip_push", "clip_finish", "clip_end", "classify_clip", "clip_features")
        return [f"{self.api}_{name}" for name in names]

    @property
    def entry(self) -> str:
        """The deployable link's entry: the one-call API (the streaming calls are kept alive beside it)."""
        return f"{self.api}_classify_clip"


CLIP_TARGETS = {
    "bnn": ClipTarget("bnn", "bnn_model.h", "bnn_predict", None, "BNN_INPUT_SIZE"),
    "tflm": ClipTarget("tflm", "tflm_model.h", "tflm_predict", "tflm_setup", "TFLM_INPUT_SIZE"),
}
HARNESS_SOURCES = ("harness.c", "harness_qemu.c")
"""The clip harness's sources in a bare-metal project (beside startup, semihosting and runtime)."""


@dataclass
class ClipPart:
    """The generated audio part.

    Attributes:
        target: the engine's :class:`ClipTarget`.
        config: the front end config.
        files: file name -> bytes (front end and clip API).
        sources: the ``.c`` files among them (front end first).
        report: ``firmware.json``'s ``report.frontend`` (config, sha256, files, API, sizes).
        int8: the network takes the features as int8 (scale 1, zero point -128; :func:`int8_input`).
    """

    target: ClipTarget
    config: FrontendConfig
    files: dict[str, bytes] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    int8: bool = False

    @property
    def frontend_source(self) -> str:
        """The front end's C file (``bnn_frontend.c``): measured alone for the split."""
        return f"{self.target.api}_frontend.c"


def check_network_input(
    config: FrontendConfig,
    shape: tuple[int, ...] | list[int],
    dtype: str,
    where: str,
    quantization: dict[str, Any] | None = None,
) -> None:
    """Refuse a network whose input is not the front end's features.

    The features are ``frames x channels`` uint8, frame after frame: the input must hold that many
    values, shaped ``(frames, channels)`` once its dimensions of 1 are dropped (or flat), and take
    them as uint8, or as int8 with scale 1 and zero point -128 (what ``python -m convert`` gives a
    network trained on the features 0..255: feature ``u`` is the int8 ``u - 128``, the same byte
    with its top bit flipped; :func:`int8_input`).

    Args:
        config: the front end the model carries.
        shape: the network's input shape as the firmware takes it (``(H, W, C)``).
        dtype: the firmware's input type (``uint8``, ``int8``, ``float32``).
        where: the model, for messages.
        quantization: an int8 input's ``{"scale", "zero_point"}``.

    Raises:
        InputError: one line naming both.
    """
    frames, channels = config.feature_shape
    kept = tuple(int(d) for d in shape if int(d) != 1)
    if math.prod(int(d) for d in shape) != frames * channels or kept not in ((frames, channels), (frames * channels,)):
        raise InputError(
            f"{where}: the network takes {'x'.join(str(d) for d in shape)} values but its front end makes {frames}x{channels} "
            "features (frames x channels); convert the model with the dataset it was trained on, or pass --no-frontend"
        )
    if dtype == "int8" and int8_input(quantization):
        return
    if dtype == "int8":
        raise InputError(
            f"{where}: the front end writes uint8 features 0..255 but the network's int8 input has scale "
            f"{(quantization or {}).get('scale')} and zero point {(quantization or {}).get('zero_point')} "
            "(the clip API takes scale 1, zero point -128: convert the model with the dataset it was trained on)"
        )
    if dtype != "uint8":
        raise InputError(
            f"{where}: the front end writes uint8 features but the network's input is {dtype}; "
            "drop --input-type float32 (the zoo's keyword models take uint8), or pass --no-frontend"
        )


def int8_input(quantization: dict[str, Any] | None) -> bool:
    """Whether an int8 input's quantization is scale 1, zero point -128: the features as they are, shifted."""
    if not quantization:
        return False
    return float(quantization.get("scale", 0.0)) == 1.0 and int(quantization.get("zero_point", 0)) == -128


def _context(target: ClipTarget, config: FrontendConfig, banner: dict[str, Any], int8: bool) -> dict[str, Any]:
    frames, channels = config.feature_shape
    return {
        **banner,
        "api": target.api,
        "upper": target.api.upper(),
        "model_header": target.model_header,
        "predict": target.predict,
        "setup": target.setup,
        "input_size": target.input_size,
        "frames": frames,
        "channels": channels,
        "config_sha256": config.sha256(),
        "int8_input": int8,
    }


def generate(target: ClipTarget, config: FrontendConfig, banner: dict[str, Any], *, int8: bool = False) -> ClipPart:
    """The front end and the clip API for ``target``'s network.

    Args:
        target: the engine's :class:`ClipTarget`.
        config: the front end the model carries.
        banner: :func:`firmware_gen.render.banner_context` of the model (every file's banner).
        int8: the network takes int8 (scale 1, zero point -128; :func:`int8_input`): the clip API
            flips the features' top bits before the network and back after it.

    Returns:
        The :class:`ClipPart` (deterministic: the same inputs give the same bytes).
    """
    frontend = generate_frontend(config, prefix=target.api)
    env = environment()
    context = _context(target, config, banner, int8)
    clip = {
        f"{target.api}_clip.h": env.get_template("clip/clip.h.j2").render(context).encode("utf-8"),
        f"{target.api}_clip.c": env.get_template("clip/clip.c.j2").render(context).encode("utf-8"),
    }
    files = {**frontend.files, **clip}
    report = {
        "config": config.to_json(),
        "config_sha256": config.sha256(),
        "prefix": target.api,
        "files": sorted(files),
        "api": target.functions,
        "sample_rate": config.sample_rate,
        "clip_samples": config.clip_samples,
        "frames": frontend.report["frames"],
        "channels": frontend.report["channels"],
        "feature_bytes": frontend.report["feature_bytes"],
        "state_bytes": frontend.report["state_bytes"],
        "table_bytes": frontend.report["table_bytes"],
        "network_input": "int8 (scale 1, zero point -128)" if int8 else "uint8",
    }
    return ClipPart(target, config, files, [frontend.source, f"{target.api}_clip.c"], report, int8)


def harness_files(part: ClipPart, context: dict[str, Any]) -> dict[str, bytes]:
    """The clip harness: ``harness.c``, ``harness_platform.h``, ``harness_qemu.c`` and ``harness_host.c``.

    Args:
        part: the generated audio part.
        context: the bare-metal project's template variables (banner, core, SysTick, calibration).

    Returns:
        File name -> bytes.
    """
    env = environment()
    variables = {
        **context,
        **_context(part.target, part.config, {}, part.int8),
        "banner": "common/banner.j2",
        "harness_of": "clip",
        "host_timer": ", a nanosecond clock",
        "status_names": "emulator/clips.py",
        "clips_magic": protocol.CLIPS_MAGIC,
        "clip_version": protocol.CLIP_FORMAT_VERSION,
        "magic_header": protocol.MAGIC_HEADER,
        "magic_trailer": protocol.MAGIC_TRAILER,
        "mode_stream": protocol.CLIP_MODES["stream"],
        "mode_classify": protocol.CLIP_MODES["classify"],
        "chunk_max": protocol.CLIP_CHUNK_MAX,
        "host_clock_hz": protocol.HOST_CLOCK_HZ,
        "input_name": protocol.CLIPS_NAME,
        "output_name": protocol.RESULTS_NAME,
    }
    names = {
        "harness.c": "clip/harness.c.j2",
        "harness_platform.h": "frontend/harness_platform.h.j2",
        "harness_qemu.c": "frontend/harness_qemu.c.j2",
        "harness_host.c": "clip/harness_host.c.j2",
    }
    return {name: env.get_template(template).render(variables).encode("utf-8") for name, template in names.items()}


LINKS = ("deployable", "network", "frontend")
"""The three links of an audio firmware's project: everything deployable, the network alone, the front end alone."""


def measure_links(
    folder: Path, engine_sources: list[str], frontend_sources: list[str], target: ClipTarget
) -> dict[str, Footprint]:
    """Flash and RAM of the three links of a built audio firmware (``build/deployable.elf``, ``network.elf``, ``frontend.elf``).

    Args:
        folder: the built project.
        engine_sources: the network's ``.c`` files.
        frontend_sources: the front end's and the clip API's ``.c`` files (front end first).
        target: the engine's :class:`ClipTarget`.

    Returns:
        ``{"deployable", "network", "frontend"}`` -> :class:`~firmware_gen.baremetal.Footprint`; the
        deployable stack is the deepest path from any clip API call, the front end's from push or finish.

    Raises:
        CheckError: a missing build output or unreadable tool output.
    """
    api = target.api
    return {
        "deployable": measure_link(
            folder, [*engine_sources, *frontend_sources], "deployable.elf", target.functions, what="clip API"
        ),
        "network": measure_link(folder, engine_sources, "network.elf", (target.predict,), what=target.predict),
        "frontend": measure_link(
            folder, frontend_sources[:1], "frontend.elf", (f"{api}_frontend_push", f"{api}_frontend_finish"), what="front end"
        ),
    }


def split_figures(links: dict[str, Footprint]) -> dict[str, dict[str, Any]]:
    """JSON-ready flash, RAM, static RAM, stack and stack path of each link of :func:`measure_links`."""
    return {
        name: {
            "flash_bytes": footprint.flash_bytes,
            "ram_bytes": footprint.ram_bytes,
            "static_ram_bytes": footprint.detail["static_ram_bytes"],
            "stack_bytes": footprint.detail["stack_bytes"],
            "stack_path": footprint.detail["stack_path"],
        }
        for name, footprint in links.items()
    }


def measure_frontend(part: ClipPart, core: Core) -> dict[str, Any] | None:
    """Flash and RAM of the front end alone on ``core``, built with its own project
    (:func:`firmware_gen.frontend.harness_files`: entered at push, reset and finish kept).

    Returns:
        ``{"flash_bytes", "ram_bytes", "static_ram_bytes", "stack_bytes", "stack_path"}``, or
        ``None`` without the Arm toolchain.

    Raises:
        CheckError: the build fails.
    """
    import shutil
    import tempfile

    from firmware_gen.baremetal.footprint import FOOTPRINT_TOOLS, build_generated
    from firmware_gen.frontend import harness_files as frontend_harness

    if any(shutil.which(tool) is None for tool in FOOTPRINT_TOOLS):
        return None
    api = part.target.api
    files = {**generate_frontend(part.config, prefix=api).files, **frontend_harness(part.config, api, core)}
    with tempfile.TemporaryDirectory(prefix="frontend-footprint-") as tmp:
        folder = Path(tmp)
        build_generated(files, folder)
        link = measure_link(folder, [part.frontend_source], "deployable.elf", (f"{api}_frontend_push", f"{api}_frontend_finish"))
    return split_figures({"frontend": link})["frontend"]
