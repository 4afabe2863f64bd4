"""``python -m firmware_gen.tflm_build``: build real TFLite-Micro for a core, offline when the vendor archives are there.

Examples::

    python -m firmware_gen.tflm_build --core cortex-m4                      # CMSIS-NN kernels, whole library
    python -m firmware_gen.tflm_build --core cortex-m0 --kernels reference --model artifacts/mlp.int8.tflite
    python -m firmware_gen.tflm_build --core cortex-m7 --ops CONV_2D,FULLY_CONNECTED --json lib.json
    python -m firmware_gen.tflm_build --check-vendor                         # checksums and commits only

Prints one line per step and, at the end, the library's path. Exit codes: 0 built or reused,
1 a check or the build failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from firmware_gen.targets import CORE_ALIASES, CORES
from firmware_gen.tflm_build.library import BUILD_TYPES, KERNEL_SETS
from firmware_gen.tflm_build.sources import SOURCES
from pipeline.errors import InputError, OneLineArgumentParser, positive_int, run_cli

__all__ = ["PROG", "build_parser", "main"]

PROG = "python -m firmware_gen.tflm_build"


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m firmware_gen.tflm_build`` argument parser."""
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Build libtensorflow-microlite.a (TFLite-Micro 90b983c2) for a Cortex-M core, cached.",
        epilog="Sources: --tflm-dir/$TFLM_DIR, else the vendor archives (--vendor, $TFLM_VENDOR, ../shared/vendor), "
        "else git. Cache: --cache, $TFLM_CACHE, else build/tflm. Exit 1: a check or the build failed; 2: bad input.",
    )
    parser.add_argument("--core", help="core: " + ", ".join([*CORES, *CORE_ALIASES]))
    parser.add_argument("--kernels", default="cmsis_nn", choices=list(KERNEL_SETS), help="kernel set (default cmsis_nn)")
    parser.add_argument("--ops", help="comma-separated builtin ops (CONV_2D,...): build only their kernels and the framework")
    parser.add_argument("--model", action="append", default=[], help="a .tflite whose ops the library must hold (repeatable)")
    parser.add_argument("--build-type", default="default", choices=BUILD_TYPES, help="TFLite-Micro's BUILD_TYPE (default)")
    parser.add_argument("--source", default="auto", choices=SOURCES, help="where the sources come from (default auto)")
    parser.add_argument("--tflm-dir", type=Path, help="a TFLite-Micro checkout to build (default $TFLM_DIR)")
    parser.add_argument("--vendor", type=Path, help="folder with the source archives and SHA256SUMS")
    parser.add_argument("--cache", type=Path, help="cache folder (default $TFLM_CACHE, else build/tflm)")
    parser.add_argument("--jobs", type=positive_int, help="parallel compile jobs (default: CPU count)")
    parser.add_argument("--rebuild", action="store_true", help="compile this configuration again from scratch")
    parser.add_argument("--json", type=Path, help="also write the library's record (library.json) here")
    parser.add_argument("--check-vendor", action="store_true", help="only check the vendor archives, then exit")
    return parser


def _ops(args: argparse.Namespace) -> list[str] | None:
    if not args.ops and not args.model:
        return None
    ops = {op.strip().upper() for op in (args.ops or "").split(",") if op.strip()}
    if args.ops is not None and not ops:
        raise InputError(f"--ops {args.ops!r}: name at least one builtin op")
    from convert.flatbuffer import read_model

    for path in args.model:
        model = read_model(path)
        if model.custom_ops:
            raise InputError(f"{path}: custom op(s) {', '.join(model.custom_ops)}; TFLite-Micro builds builtin ops only")
        ops.update(model.builtin_ops)
    return sorted(ops)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from firmware_gen.tflm_build.library import LibrarySpec, build_library, default_cache
    from firmware_gen.tflm_build.sources import default_vendor, prepare_tree, verify_vendor

    vendor = args.vendor or default_vendor()
    if args.check_vendor:
        if vendor is None:
            raise InputError("no vendor folder: pass --vendor DIR (or set $TFLM_VENDOR)")
        for name, digest in verify_vendor(vendor).items():
            print(f"{name}: sha256 {digest} and the pinned commit: OK")
        return 0
    if not args.core:
        raise InputError("--core is required (cortex-m4, ...); see --help")
    ops = _ops(args)
    spec = LibrarySpec(args.core, args.kernels, None if ops is None else tuple(ops), args.build_type).checked()
    env_dir = os.environ.get("TFLM_DIR")
    tflm_dir = args.tflm_dir or (Path(env_dir) if env_dir else None)
    cache = args.cache or default_cache()
    tree = prepare_tree(cache, source=args.source, tflm_dir=tflm_dir, vendor=vendor)
    library = build_library(spec, tree, cache=cache, jobs=args.jobs, rebuild=args.rebuild)
    if args.json:
        from pipeline.artifacts import write_json

        write_json(args.json, library.record)
    state = "reused" if library.reused else f"built in {library.record.get('seconds', 0):.0f} s"
    print(f"{library.path} ({library.record.get('objects')} objects, {state})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m firmware_gen.tflm_build``; returns the exit status."""
    return run_cli(PROG, _main, argv)
