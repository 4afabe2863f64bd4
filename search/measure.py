"""Every candidate measured as firmware: convert, compile with the bnn engine, build, run.

* :func:`compile_model`: Keras model -> LCE flatbuffer (:func:`convert.converter.to_lce`) -> the
  ``bnn`` engine for the board's core (:func:`firmware_gen.engines.run_engine`, which also builds
  the deployable part with arm-none-eabi-gcc and reads its flash and RAM from the ELF, as
  ``python -m firmware_gen --board`` does). On an audio dataset the flatbuffer carries the front
  end (:func:`convert.metadata.embed_frontend`) and the engine runs twice: the network alone (the
  firmware the search runs, on the dataset's features) and the whole firmware with the front end
  and the clip API, whose flash and RAM are the candidate's (what the board must hold).
* :func:`write_firmware`: the generated project as a firmware folder (the same layout and
  ``firmware.json`` name ``python -m firmware_gen`` writes), atomically.
* :func:`run_firmware`: the generated C compiled for the host on many images (exactly the C the
  core runs: its loops and its popcount, ``run_host(..., builtin_popcount=False)``; fast enough
  for a whole validation split), and the firmware on QEMU's
  emulation of the core on a few hundred of them (instructions per inference, flash and RAM of
  the deployable ELF, predictions compared with the host's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firmware_gen.targets import Board, Core
from pipeline.artifacts import TOOL_VERSION, sha256_bytes
from pipeline.errors import CheckError

__all__ = [
    "Compiled",
    "FirmwareRun",
    "compile_model",
    "write_firmware",
    "write_whole_firmware",
    "run_firmware",
    "engine_difference",
]


@dataclass
class Compiled:
    """A model compiled by the bnn engine.

    Attributes:
        lce: the LCE flatbuffer bytes (with the front end's metadata on an audio dataset).
        files: the generated project of the network (relative path -> bytes): fed the dataset's
            examples (an audio dataset's features).
        report: the engine's report (``model_data_bytes``, ``activation_ram_bytes``, ``layers``,
            ``flash_bytes`` and ``ram_bytes`` of the deployable ELF, ``score_int64``, ...).
        whole: on an audio dataset, the firmware with the front end and the clip API (its
            ``files`` and ``report``); ``None`` otherwise.
    """

    lce: bytes
    files: dict[str, bytes]
    report: dict[str, Any]
    whole: Compiled | None = None

    @property
    def flash_bytes(self) -> int:
        """Flash of the deployable part (ELF text + data), the front end's included when there is one.

        Raises:
            CheckError: the Arm toolchain is missing, so nothing was measured.
        """
        return int((self.whole or self)._figure("flash_bytes"))

    @property
    def ram_bytes(self) -> int:
        """RAM of the deployable part (ELF data + bss + deepest stack path), the front end's included."""
        return int((self.whole or self)._figure("ram_bytes"))

    def _figure(self, key: str) -> int:
        value = self.report.get(key)
        if not isinstance(value, int):
            raise CheckError(f"the bnn engine reported no {key}: arm-none-eabi-gcc, arm-none-eabi-size and make are needed")
        return value


def compile_model(
    model: Any,
    core: Core,
    board: Board | None,
    name: str = "candidate",
    *,
    optimize: str = "speed",
    frontend: dict[str, Any] | None = None,
) -> Compiled:
    """Convert a Keras model to LCE and compile it with the bnn engine for ``core``.

    Args:
        model: a Keras model of the search space (trained or not).
        core: the target core.
        board: the board (named in the banners), or ``None``.
        name: the flatbuffer's name in banners and reports.
        optimize: the engine's ``speed`` or ``size`` code (``python -m firmware_gen --optimize``).
        frontend: the audio dataset's front end config (``Dataset.frontend``): the firmware
            takes raw samples, so its flash and RAM count the front end too (``Compiled.whole``).

    Returns:
        The :class:`Compiled` model.

    Raises:
        InputError: the engine refuses the model (one line naming the layer).
        CheckError: the deployable part does not build.
    """
    from convert.converter import to_lce
    from convert.flatbuffer import read_model_bytes
    from firmware_gen.engines import run_engine

    lce = to_lce(model)
    if frontend is not None:
        from convert.metadata import embed_frontend
        from pipeline.frontend import FrontendConfig

        lce = embed_frontend(lce, FrontendConfig.from_json(frontend))
    parsed = read_model_bytes(lce, f"{name}.lce.tflite")
    output = run_engine("bnn", parsed, core, board, optimize=optimize, frontend=False)
    compiled = Compiled(lce, dict(output.files), dict(output.report))
    if frontend is not None:
        whole = run_engine("bnn", parsed, core, board, optimize=optimize, frontend=True)
        compiled.whole = Compiled(lce, dict(whole.files), dict(whole.report))
    return compiled


def write_firmware(compiled: Compiled, folder: Path, core: Core, board: Board | None) -> Path:
    """Write the generated project and its ``firmware.json`` as the whole content of ``folder``.

    The network's project (``compiled.files``); :func:`write_whole_firmware` writes the one with
    the front end.

    Returns:
        ``folder``.
    """
    from firmware_gen.cli import REPORT_NAME, write_tree

    report = {
        "version": TOOL_VERSION,
        "engine": "bnn",
        "target": core.name,
        "board": None if board is None else board.name,
        "model": {"sha256": sha256_bytes(compiled.lce), "bytes": len(compiled.lce)},
        "report": compiled.report,
        "files": [
            {"path": rel, "bytes": len(data), "sha256": sha256_bytes(data)} for rel, data in sorted(compiled.files.items())
        ],
    }
    files = dict(compiled.files)
    files[REPORT_NAME] = (json.dumps(report, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    write_tree(Path(folder), files)
    return Path(folder)


def write_whole_firmware(compiled: Compiled, folder: Path, core: Core, board: Board | None) -> Path | None:
    """Write the firmware with the front end and the clip API (an audio dataset's) into ``folder``.

    Returns:
        ``folder``, or ``None`` when the model has no front end (nothing written).
    """
    if compiled.whole is None:
        return None
    return write_firmware(compiled.whole, folder, core, board)


@dataclass
class FirmwareRun:
    """What the firmware did on the images.

    Attributes:
        host_predictions: classes from the generated C built for the host, one per image.
        qemu_images: how many of the images ran on QEMU (the first ones).
        qemu_agreement: share of those where QEMU's class equals the host build's.
        instructions: mean instructions per inference under QEMU (``-icount``).
        instructions_detail: median, min, max and resolution.
        flash_bytes: deployable flash measured by the QEMU build.
        ram_bytes: deployable RAM (static + deepest stack path) measured by the QEMU build.
        seconds: wall time of the host run and of the QEMU run.
    """

    host_predictions: np.ndarray
    qemu_images: int
    qemu_agreement: float
    instructions: float
    instructions_detail: dict[str, float] = field(default_factory=dict)
    flash_bytes: int = 0
    ram_bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def run_firmware(folder: Path, core: Core, images: np.ndarray, qemu_images: int) -> FirmwareRun:
    """Run a firmware folder on the host (every image) and on QEMU (the first ``qemu_images``).

    Args:
        folder: a folder from :func:`write_firmware`.
        core: the core QEMU emulates.
        images: raw pixels ``(N, 28, 28)`` uint8.
        qemu_images: how many of them QEMU runs (at least 1).

    Returns:
        The :class:`FirmwareRun`.

    Raises:
        CheckError: a build or run failed, or QEMU's classes differ from the host build's.
    """
    import time

    from emulator.host import run_host
    from emulator.qemu import run_qemu

    start = time.perf_counter()
    # Exactly the C the Cortex-M runs (the target's loops and popcount), built for the host.
    host = run_host(folder, images, builtin_popcount=False)
    host_seconds = time.perf_counter() - start
    count = max(1, min(int(qemu_images), len(images)))
    start = time.perf_counter()
    qemu = run_qemu(folder, images[:count], core=core.name)
    qemu_seconds = time.perf_counter() - start
    same = qemu.predictions == host.predictions[:count]
    agreement = float(same.mean())
    if agreement < 1.0:
        first = int(np.flatnonzero(~same)[0])
        raise CheckError(
            f"{folder}: the firmware on QEMU ({core.name}) and the same C on the host disagree on "
            f"{int((~same).sum())} of {count} images (first: image {first})"
        )
    stats = qemu.extra["instructions"]
    return FirmwareRun(
        host_predictions=np.asarray(host.predictions),
        qemu_images=count,
        qemu_agreement=agreement,
        instructions=float(qemu.instructions_per_inference),
        instructions_detail={key: float(stats[key]) for key in ("median", "min", "max", "resolution")},
        flash_bytes=int(qemu.flash_bytes),
        ram_bytes=int(qemu.ram_bytes),
        seconds={"host": round(host_seconds, 2), "qemu": round(qemu_seconds, 2)},
    )


def engine_difference(estimate: Any, report: dict[str, Any]) -> list[str]:
    """Where a :class:`~search.estimate.PackedSize` differs from the engine's report.

    The class affine's width is the one figure decided by trained values: when the engine
    chose another width than the estimate assumed (``score_int64``), the estimate's scores row
    is taken 8 bytes a class larger or smaller (:meth:`~search.estimate.PackedSize.scores_extra`)
    before comparing.

    Returns:
        One line per difference (model data, arena, or a layer's field); empty when exact.
    """
    extra = estimate.scores_extra(bool(report.get("score_int64")))
    problems = []
    if estimate.model_data_bytes + extra != report.get("model_data_bytes"):
        problems.append(f"model data: estimate {estimate.model_data_bytes + extra}, engine {report.get('model_data_bytes')}")
    if estimate.arena_bytes != report.get("activation_ram_bytes"):
        problems.append(f"arena: estimate {estimate.arena_bytes}, engine {report.get('activation_ram_bytes')}")
    layers = report.get("layers", [])
    if len(layers) != len(estimate.layers):
        problems.append(f"layers: estimate {len(estimate.layers)}, engine {len(layers)}")
        return problems
    for index, (row, layer) in enumerate(zip(estimate.layers, layers, strict=True)):
        for key in ("packed_weight_bytes", "threshold_bytes", "activation_bytes"):
            expected = row[key] + (extra if key == "threshold_bytes" and index == len(layers) - 1 else 0)
            if expected != layer.get(key):
                problems.append(f"layer {index} ({row['layer']}) {key}: estimate {expected}, engine {layer.get(key)}")
    return problems
