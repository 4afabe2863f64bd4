"""The ``host`` backend: compile a ``bnn`` firmware folder with the host gcc and run it.

The engine's C (``bnn_*.c`` of the folder) is compiled with ``-std=c99 -O2 -Wall -Wextra
-Werror`` (plus ``-fsanitize=address,undefined -fno-sanitize-recover=all`` when asked) together
with a small harness that reads all images from a file, times each ``bnn_predict`` with
``clock_gettime`` and writes predictions, scores and latencies back. Everything is built in a
temporary folder, so the firmware tree stays byte-identical. Nothing is compiled before the
folder's files are found to be the ones its ``firmware.json`` lists
(:func:`emulator.firmware_files.check_firmware_files`; ``allow_modified`` skips the check).

Three builds of the same C: the default is the fast host build, only meant to run on the
machine that compiles it (``-DBNN_POPCOUNT_BUILTIN -mpopcnt`` and :func:`fast_flags`:
``-O3 -DBNN_CHANNEL_INNER -march=native``, ``-mprefer-vector-width=512`` on AVX-512 CPUs: the
layers' channel loops are innermost and vectorize); ``fast=False`` is the portable build (the
target's loops, the builtin popcount, ``-O2``); ``builtin_popcount=False`` is exactly the C a
Cortex-M core runs. All three give the same scores (tests/test_bnn_engine.py).

Flash and RAM come from a separate plain build of the engine objects: flash = ``text + data``
of ``size``; RAM = ``data + bss`` plus the deepest stack path below ``bnn_predict`` from gcc's
``-fstack-usage`` / ``-fcallgraph-info`` (the host's x86-64 frames, an estimate of the
target's).

Inputs are fed as the folder's signature says (:mod:`emulator.signature`: any shape; uint8,
float32 or int8), and the scores come back as int32 or float32.

``python -m emulator.host FIRMWARE_DIR MODEL.lce.tflite`` compares the folder's C with the LCE
interpreter on the test set (MNIST, or ``--data``) in one run (agreement, both accuracies, both median
latencies per image, flash, RAM, a sanitizer build on 1,000 images).
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emulator.backend_result import BackendRun
from emulator.firmware_files import check_firmware_files
from emulator.signature import FirmwareSignature, check_data, check_results, encode_inputs, read_signature
from firmware_gen.baremetal import protocol
from pipeline.errors import CheckError, InputError, OneLineArgumentParser, non_negative_int, positive_int, run_cli

__all__ = [
    "host_harness_source",
    "C_FLAGS",
    "SANITIZE_FLAGS",
    "FAST_FLAGS",
    "run_host",
    "compiler",
    "popcount_flags",
    "fast_flags",
    "compare_with_lce",
    "main",
]

C_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
# The fast host build (only for a binary that runs on the machine that builds it): the
# channel-inner kernels of the generated C (their channel loops vectorize; with -march=native
# on an AVX-512 VPOPCNTDQ CPU every 16 channels take one popcount instruction), -O3 to
# vectorize them, and the build machine's instruction set.
FAST_FLAGS = ("-O3", "-DBNN_CHANNEL_INNER")
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")
_ENTRY = "bnn_predict"
AGREEMENT_BAR = 99.98  # percent of test images on which host C must equal the LCE interpreter


def popcount_flags(builtin: bool = True) -> list[str]:
    """Flags selecting the popcount: ``__builtin_popcount`` (with ``-mpopcnt`` on x86-64 CPUs that
    have the instruction), or ``[]`` to keep the generated per-core variant of ``bnn_popcount.h``."""
    if not builtin:
        return []
    flags = ["-DBNN_POPCOUNT_BUILTIN"]
    if platform.machine() in ("x86_64", "AMD64") and " popcnt" in _cpu_flags():
        flags.append("-mpopcnt")
    return flags


@functools.cache
def _accepts(cc: str, flag: str) -> bool:
    probe = subprocess.run([cc, flag, "-E", "-x", "c", os.devnull], capture_output=True, check=False)
    return probe.returncode == 0


def fast_flags(cc: str) -> list[str]:
    """Flags of the fast host build: :data:`FAST_FLAGS`, plus ``-march=native`` when ``cc`` takes
    it and ``-mprefer-vector-width=512`` when the CPU has AVX-512 (gcc otherwise stops at 256-bit
    vectors; measured on the seed BCNN: 4.5 against 6.3 us per image)."""
    flags = list(FAST_FLAGS)
    if _accepts(cc, "-march=native"):
        flags.append("-march=native")
        if "avx512f" in _cpu_flags() and _accepts(cc, "-mprefer-vector-width=512"):
            flags.append("-mprefer-vector-width=512")
    return flags


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def compiler() -> str:
    """The host C compiler: ``$CC`` or ``gcc``.

    Raises:
        CheckError: no compiler on PATH.
    """
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise CheckError(f"host C compiler {cc!r} not found: install gcc or set CC")
    return cc


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        first = next((line for line in detail if "error" in line), detail[0] if detail else "")
        raise CheckError(f"{what} failed (exit {result.returncode}): {first.strip()}")
    return result.stdout + result.stderr


def _engine_sources(firmware_dir: Path) -> list[Path]:
    if not (firmware_dir / "bnn_model.h").is_file():
        raise InputError(f"{firmware_dir}: no bnn_model.h; is this a firmware folder of the bnn engine?")
    sources = sorted(firmware_dir.glob("bnn_*.c"))
    if not sources:
        raise InputError(f"{firmware_dir}: no bnn_*.c engine sources")
    return sources


def _footprint(cc: str, sources: list[Path], firmware_dir: Path, build: Path, extra: list[str]) -> dict[str, object]:
    from firmware_gen.baremetal.footprint import deepest_path, read_callgraph, read_stack_usage

    objects = []
    for src in sources:
        obj = build / (src.stem + ".o")
        flags = [*C_FLAGS, *extra, "-fstack-usage", "-fcallgraph-info=su"]
        _run([cc, *flags, f"-I{firmware_dir}", "-c", str(src), "-o", str(obj)], f"compiling {src.name}")
        objects.append(obj)
    size_tool = shutil.which("size")
    if size_tool is None:
        raise CheckError("binutils 'size' not found: install binutils")
    text = _run([size_tool, *map(str, objects)], "size")
    totals = {"text": 0, "data": 0, "bss": 0}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            totals["text"] += int(parts[0])
            totals["data"] += int(parts[1])
            totals["bss"] += int(parts[2])
    usage = read_stack_usage([obj.with_suffix(".su") for obj in objects])
    edges, _ = read_callgraph([obj.with_suffix(".ci") for obj in objects])
    stack = deepest_path(_ENTRY, usage, edges)
    return {
        "sizes": totals,
        "flash_bytes": totals["text"] + totals["data"],
        "static_ram_bytes": totals["data"] + totals["bss"],
        "stack_bytes": stack.bytes,
        "stack_path": stack.path,
    }


def host_harness_source() -> str:
    """The C of the host harness that reads images from a file, runs ``bnn_predict`` and writes the
    classes, scores and per-input timings in the baremetal protocol's framing."""
    from firmware_gen.render import render

    return render(
        "bnn/host_harness.c.j2",
        magic_header=protocol.MAGIC_HEADER,
        magic_trailer=protocol.MAGIC_TRAILER,
        format_version=protocol.FORMAT_VERSION,
        host_clock_hz=protocol.HOST_CLOCK_HZ,
    )


def run_host(
    firmware_dir: Path,
    images: np.ndarray,
    *,
    signature: FirmwareSignature | None = None,
    sanitize: bool = False,
    builtin_popcount: bool = True,
    fast: bool | None = None,
    allow_modified: bool = False,
) -> BackendRun:
    """Compile the folder's engine for the host and classify ``images`` in one process.

    Args:
        firmware_dir: a folder generated by the ``bnn`` engine (``bnn_model.h``, ``bnn_*.c``).
        images: raw examples ``(N, ...)`` (uint8 or float32), fed as the firmware's signature
            says (:func:`emulator.signature.encode_inputs`).
        signature: the firmware's signature (default: :func:`emulator.signature.read_signature`
            of the folder).
        sanitize: build with AddressSanitizer and UndefinedBehaviorSanitizer.
        builtin_popcount: use ``__builtin_popcount`` (see :func:`popcount_flags`); ``False``
            keeps the variant ``bnn_popcount.h`` selects for the target core.
        fast: add :func:`fast_flags` (the channel-inner kernels, ``-O3``, ``-march=native``);
            ``False`` builds the portable path, the kernels the targets run, with
            :data:`C_FLAGS` only. ``None`` (default) means ``builtin_popcount``: with
            ``builtin_popcount=False`` the build is exactly the C a Cortex-M core runs.
        allow_modified: build the folder even when its files are not the ones its
            ``firmware.json`` lists (:func:`emulator.firmware_files.check_firmware_files`).

    Returns:
        :class:`BackendRun` with predictions, flash and RAM (``ram_source`` ``elf``) and
        ``extra``: ``latency_us_median``, ``predictions`` and ``scores`` (``(N, classes)``,
        int32 or float32 as the firmware returns them), sizes and stack path.

    Raises:
        InputError: not a bnn firmware folder, files that are not the ones its ``firmware.json``
            lists, or inputs that do not fit its signature.
        CheckError: the compiler, a warning (``-Werror``) or the harness failed.
    """
    firmware_dir = Path(firmware_dir)
    sources = _engine_sources(firmware_dir)
    check_firmware_files(firmware_dir, allow_modified=allow_modified)
    signature = signature or read_signature(firmware_dir)
    payload = encode_inputs(signature, images)
    count = len(images)
    cc = compiler()
    with tempfile.TemporaryDirectory(prefix="bnn-host-") as tmp:
        build = Path(tmp)
        variant = popcount_flags(builtin_popcount)
        if builtin_popcount if fast is None else fast:
            variant += fast_flags(cc)
        footprint = _footprint(cc, sources, firmware_dir, build, variant)
        harness = build / "harness.c"
        harness.write_text(host_harness_source())
        exe = build / "harness"
        flags = [*C_FLAGS, *variant, *(SANITIZE_FLAGS if sanitize else ())]
        _run([cc, *flags, f"-I{firmware_dir}", str(harness), *map(str, sources), "-o", str(exe)], "host build")
        (build / "images.bin").write_bytes(payload)
        out = build / "out.bin"
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
        cmd = [str(exe), str(build / "images.bin"), str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise CheckError(f"host harness failed (exit {result.returncode}): {' | '.join(lines[:3])}")
        results = protocol.parse_results(out.read_bytes(), count, "host harness results")
    check_results(signature, results.scores.shape[1], results.scores, results.input_bytes, "host harness results")
    extra = {
        "latency_us_median": float(np.median(results.ticks)) / 1000.0 if count else None,
        "predictions": results.predictions,
        "scores": results.scores,
        "signature": signature.to_json(),
        "sanitize": sanitize,
        "compiler": cc,
        "c_flags": " ".join(flags),
        **footprint,
    }
    flash = int(footprint["flash_bytes"])
    ram = int(footprint["static_ram_bytes"]) + int(footprint["stack_bytes"])
    return BackendRun(predictions=results.predictions, flash_bytes=flash, ram_bytes=ram, ram_source="elf", extra=extra)


def compare_with_lce(
    firmware_dir: Path,
    flatbuffer: bytes,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    sanitize_images: int = 1000,
    allow_modified: bool = False,
) -> dict[str, Any]:
    """The host C engine next to the LCE interpreter on the same images, in one run.

    Args:
        firmware_dir: a folder generated by the ``bnn`` engine from ``flatbuffer``.
        flatbuffer: the ``.lce.tflite`` bytes (the reference).
        images: raw examples ``(N, ...)`` of the dataset the model takes.
        labels: ``(N,)`` true classes.
        sanitize_images: images for the ASan/UBSan build (0 skips it).
        allow_modified: build the folder even when its files are not the ones its ``firmware.json`` lists.

    Returns:
        JSON-ready figures: agreement count, both accuracies, both median latencies, flash,
        RAM, the sanitizer verdict and the indices of disagreeing images.
    """
    from pipeline.interpreters import time_lce

    run = run_host(firmware_dir, images, allow_modified=allow_modified)
    lce = time_lce(flatbuffer, images, warmup=0)
    expected = lce.scores.argmax(axis=1)
    agree = run.predictions == expected
    result: dict[str, Any] = {
        "images": len(images),
        "agreement": int(agree.sum()),
        "agreement_percent": 100.0 * float(agree.mean()),
        "disagreeing_images": np.flatnonzero(~agree).tolist()[:50],
        "accuracy_host": float((run.predictions == labels).mean()),
        "accuracy_lce": float((expected == labels).mean()),
        "latency_us_median_host": run.extra["latency_us_median"],
        "latency_us_median_lce": lce.median_us,
        "flash_bytes": run.flash_bytes,
        "ram_bytes": run.ram_bytes,
        "static_ram_bytes": run.extra["static_ram_bytes"],
        "stack_bytes": run.extra["stack_bytes"],
        "c_flags": run.extra["c_flags"],
    }
    if sanitize_images:
        checked = run_host(firmware_dir, images[:sanitize_images], sanitize=True, allow_modified=allow_modified)
        result["sanitized_images"] = min(sanitize_images, len(images))
        result["sanitizer_clean"] = bool(np.array_equal(checked.predictions, run.predictions[:sanitize_images]))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emulator.host FIRMWARE_DIR MODEL.lce.tflite``: host C vs the LCE interpreter.

    Exit status: 0 when agreement >= :data:`AGREEMENT_BAR` percent and the sanitizer build is
    clean, 1 otherwise, 2 on bad input.
    """
    parser = OneLineArgumentParser(
        prog="python -m emulator.host",
        description="Compile a bnn firmware folder with the host gcc and compare it with the LCE interpreter.",
    )
    parser.add_argument("firmware", type=Path, help="folder generated by the bnn engine")
    parser.add_argument("model", type=Path, help="the .lce.tflite it was generated from")
    parser.add_argument(
        "--data",
        help="MNIST IDX folder, .npz, image folder or .tar of one, or .json dataset spec (default $MNIST_DIR, keras cache)",
    )
    parser.add_argument("--limit", type=positive_int, default=10000, help="test images (default 10000)")
    parser.add_argument(
        "--sanitize", type=non_negative_int, default=1000, help="images for the ASan/UBSan build (default 1000, 0 skips)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--allow-modified",
        action="store_true",
        help="build the folder even when its files are not the ones its firmware.json lists: RUNS ITS CODE",
    )

    def body(args_in: Sequence[str] | None) -> int:
        from pipeline.artifacts import TOOL_VERSION, sha256_file, write_json
        from pipeline.data import load_dataset

        args = parser.parse_args(args_in)
        if not args.model.is_file():
            raise InputError(f"{args.model}: no such file")
        data = load_dataset(args.data)
        check_data(read_signature(args.firmware), data.example_shape, data.dtype, data.num_classes)
        images, labels = data.x_test[: args.limit], data.y_test[: args.limit]
        result = compare_with_lce(
            args.firmware,
            args.model.read_bytes(),
            images,
            labels,
            sanitize_images=args.sanitize,
            allow_modified=args.allow_modified,
        )
        for key in sorted(result):
            if key != "disagreeing_images":
                print(f"{key}: {result[key]}")
        if args.json:
            write_json(args.json, {**result, "version": TOOL_VERSION, "model_sha256": sha256_file(args.model)})
        if result["agreement_percent"] < AGREEMENT_BAR:
            raise CheckError(
                f"host C agrees with the LCE interpreter on {result['agreement_percent']:.2f}% of {result['images']:,} "
                f"images ({result['agreement']:,}), below {AGREEMENT_BAR:g}%"
            )
        if not result.get("sanitizer_clean", True):
            raise CheckError(f"the sanitizer build predicted differently on {result['sanitized_images']:,} images")
        return 0

    return run_cli("python -m emulator.host", body, argv)


if __name__ == "__main__":
    sys.exit(main())
