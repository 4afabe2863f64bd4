"""Build ``libtensorflow-microlite.a`` for one core and kernel set, cached across runs.

TFLite-Micro's own makefile does the compiling (``TARGET=cortex_m_generic``, its flags: ``-Os``
for the framework, ``-O2`` for kernels, ``OPTIMIZED_KERNEL_DIR=cmsis_nn`` for the CMSIS-NN
kernels) with the system's ``arm-none-eabi-gcc``. This module asks that makefile for its source
lists (a small makefile read after it, ``templates/tflm_build/lists.mk.j2``), chooses the objects
to build, names them as goals of the same makefile (its pattern rules compile them) and archives
them itself. By default every object of the ``microlite`` library is built; with ``ops`` only the
framework, the third-party kernel sources (CMSIS-NN) and the kernel files those ops need
(:func:`firmware_gen.tflm_build.kernels.select_kernel_sources`): the linker takes the same
objects out of either archive, and the build takes a fraction of the time.

Cache (default ``build/tflm/`` in the repository, or ``$TFLM_CACHE``): objects in
``obj/CORE-KERNELS-BUILDTYPE-KEY/`` (KEY: tree, core, kernel set, build type, compiler, device
header), shared by every op set; archives in ``lib/CORE-KERNELS-OPS-KEY/`` with
``library.json``. A library whose record matches is returned without running make.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_gen.render import render
from firmware_gen.targets import get_core
from firmware_gen.tflm_build.kernels import RESOLVER_HEADER, resolver_table, select_kernel_sources
from firmware_gen.tflm_build.lock import file_lock, write_if_changed
from firmware_gen.tflm_build.sources import Tree
from firmware_gen.tflm_build.target import TFLM_ARCH, device_header, write_device_headers
from pipeline.artifacts import sha256_file
from pipeline.errors import CheckError, InputError

__all__ = [
    "KERNEL_SETS",
    "BUILD_TYPES",
    "LIBRARY_NAME",
    "BUILD_TOOLS",
    "LibrarySpec",
    "Library",
    "default_cache",
    "missing_build_tools",
    "object_path",
    "build_library",
]

KERNEL_SETS: dict[str, str] = {"reference": "", "cmsis_nn": "cmsis_nn"}
"""Kernel set -> TFLite-Micro's ``OPTIMIZED_KERNEL_DIR``."""
BUILD_TYPES = ("default", "release_with_logs", "release")
LIBRARY_NAME = "libtensorflow-microlite.a"
BUILD_TOOLS = ("make", "arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar", "git")
_FORMAT = 1  # bumped when what this module builds changes (part of every cache key)
_MAKEFILE = "tensorflow/lite/micro/tools/make/Makefile"
_REPO = Path(__file__).resolve().parents[2]
_LIST_KEYS = ("core", "kernels", "third_party", "third_party_kernels", "custom", "objdirs")


@dataclass(frozen=True)
class LibrarySpec:
    """What to build.

    Attributes:
        core: core registry name (``cortex-m4``).
        kernels: a key of :data:`KERNEL_SETS`.
        ops: builtin ops the library must hold (sorted), or ``None`` for the whole library.
        build_type: TFLite-Micro's ``BUILD_TYPE``.
    """

    core: str
    kernels: str = "cmsis_nn"
    ops: tuple[str, ...] | None = None
    build_type: str = "default"

    def checked(self) -> LibrarySpec:
        """The spec with a canonical core name and sorted ops.

        Raises:
            InputError: unknown core, kernel set or build type, or an empty op list.
        """
        core = get_core(self.core).name
        if self.kernels not in KERNEL_SETS:
            raise InputError(f"unknown kernel set {self.kernels!r}: valid sets are {', '.join(KERNEL_SETS)}")
        if self.build_type not in BUILD_TYPES:
            raise InputError(f"unknown build type {self.build_type!r}: valid types are {', '.join(BUILD_TYPES)}")
        if self.ops is not None and not self.ops:
            raise InputError("an empty op list: name at least one op, or build the whole library")
        ops = None if self.ops is None else tuple(sorted(set(self.ops)))
        return LibrarySpec(core, self.kernels, ops, self.build_type)


@dataclass
class Library:
    """A built (or reused) library.

    Attributes:
        path: the ``.a`` file.
        tree: the TFLite-Micro tree it was built from (include paths for the application).
        spec: what it holds.
        record: ``library.json`` (key, sources, objects, compiler, seconds, ...).
        reused: taken from the cache without running make.
    """

    path: Path
    tree: Path
    spec: LibrarySpec
    record: dict[str, Any] = field(default_factory=dict)
    reused: bool = False

    @property
    def include_dirs(self) -> list[Path]:
        """The folders an application needs on its include path (tree, flatbuffers, gemmlowp, ruy)."""
        downloads = self.tree / "tensorflow/lite/micro/tools/make/downloads"
        return [self.tree, downloads / "flatbuffers/include", downloads / "gemmlowp", downloads / "ruy"]


def default_cache() -> Path:
    """``$TFLM_CACHE``, else ``build/tflm`` in the repository (``build/`` is git-ignored)."""
    env = os.environ.get("TFLM_CACHE")
    return Path(env) if env else _REPO / "build" / "tflm"


def missing_build_tools() -> list[str]:
    """Programs the build needs that are not on ``PATH``."""
    return [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]


def object_path(objdir: str, source: str) -> str:
    """TFLite-Micro's object name for ``source`` under ``objdir`` (``x.cc``, ``x.c``, ``x.S`` -> ``x.o``)."""
    stem, _, _ = source.rpartition(".")
    return f"{objdir}{stem}.o"


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def _valid_record(record_path: Path, library: Path, key: str) -> dict[str, Any] | None:
    """The library's record when it describes this very archive (key and sha256), else ``None``."""
    if not (record_path.is_file() and library.is_file()):
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or record.get("sha256") != sha256_file(library):
        return None
    return record


def _compiler_id() -> str:
    result = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True, check=False)
    return (result.stdout.splitlines() or ["unknown"])[0].strip()


def _environment() -> dict[str, str]:
    """TFLite-Micro's makefile runs ``python3`` (with numpy): this interpreter's folder goes first on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path}


def _make_command(tree: Path, spec: LibrarySpec, gendir: Path, device_dir: Path, lists_mk: Path) -> list[str]:
    toolchain = Path(shutil.which("arm-none-eabi-g++") or "arm-none-eabi-g++").parent
    command = ["make", "-C", str(tree), "-f", _MAKEFILE, "-f", str(lists_mk), "TARGET=cortex_m_generic"]
    command += [f"TARGET_ARCH={TFLM_ARCH[spec.core]}", f"BUILD_TYPE={spec.build_type}"]
    if KERNEL_SETS[spec.kernels]:
        command.append(f"OPTIMIZED_KERNEL_DIR={KERNEL_SETS[spec.kernels]}")
    command += [f"TARGET_TOOLCHAIN_ROOT={toolchain}/", f"CORTEX_DFP_PATH={device_dir}", f"GENDIR={gendir}/"]
    return command


def _run(command: list[str], what: str, timeout: float, niceness: int) -> str:
    prefix = ["nice", "-n", str(niceness)] if niceness and shutil.which("nice") else []
    try:
        result = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, env=_environment(), timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise CheckError(f"{what} took longer than {timeout:g} s") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()] or lines
        raise CheckError(f"{what} failed: {' | '.join(errors[-3:])[:600]}")
    return result.stdout


def _read_lists(command: list[str], niceness: int) -> dict[str, list[str]]:
    output = _run([*command, "bnn-mcu-lists"], "listing TFLite-Micro's sources", 600, niceness)
    lists = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.startswith("bnn-") and key[4:] in _LIST_KEYS:
            lists[key[4:]] = value.split()
    missing = [key for key in _LIST_KEYS if key not in lists]
    if missing or len(lists["objdirs"]) != 4:
        raise CheckError(f"TFLite-Micro's makefile did not print its source lists ({', '.join(missing) or 'objdirs'})")
    return lists


def _objects(tree: Path, lists: dict[str, list[str]], spec: LibrarySpec) -> tuple[list[str], list[str]]:
    """``(sources, objects)`` to build for ``spec``."""
    core_dir, kernel_dir, third_dir, third_kernel_dir = lists["objdirs"]
    kernels = lists["kernels"]
    if spec.ops is not None:
        table = resolver_table((tree / RESOLVER_HEADER).read_text(encoding="utf-8"))
        kernels = select_kernel_sources(
            kernels, lambda rel: (tree / rel).read_text(encoding="utf-8", errors="replace"), spec.ops, table
        )
    groups: Iterable[tuple[str, list[str]]] = (
        (core_dir, lists["core"]),
        (kernel_dir, kernels),
        (third_dir, lists["third_party"]),
        (third_kernel_dir, lists["third_party_kernels"]),
    )
    sources, objects = [], []
    for objdir, group in groups:
        for source in group:
            sources.append(source)
            objects.append(object_path(objdir, source))
    return sources, [*objects, *lists["custom"]]


def build_library(
    spec: LibrarySpec,
    tree: Tree,
    *,
    cache: Path | None = None,
    jobs: int | None = None,
    niceness: int = 10,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
) -> Library:
    """Build (or reuse) the library ``spec`` describes from ``tree``.

    Args:
        spec: core, kernel set, ops (``None``: everything) and build type.
        tree: the TFLite-Micro tree (:func:`firmware_gen.tflm_build.sources.prepare_tree`).
        cache: the cache folder (default :func:`default_cache`).
        jobs: parallel compile jobs (default: the CPU count).
        niceness: ``nice`` level of the compilers (0: not lowered).
        rebuild: drop this configuration's objects and archive and build them again.
        log: progress printer (one line per step).

    Returns:
        The :class:`Library`.

    Raises:
        InputError: bad spec, or a build tool is missing.
        CheckError: TFLite-Micro's makefile or the archiver failed.
    """
    spec = spec.checked()
    missing = missing_build_tools()
    if missing:
        raise InputError(
            f"missing {', '.join(missing)}: install gcc-arm-none-eabi, libnewlib-arm-none-eabi, "
            "libstdc++-arm-none-eabi-newlib, make and git (make toolchain)"
        )
    cache = (cache or default_cache()).resolve()
    core = get_core(spec.core)
    _, device_text = device_header(core)
    config = {
        "format": _FORMAT,
        "tree": tree.identity,
        "core": spec.core,
        "target_arch": TFLM_ARCH[spec.core],
        "kernels": spec.kernels,
        "build_type": spec.build_type,
        "compiler": _compiler_id(),
        "device_header": hashlib.sha256(device_text.encode()).hexdigest(),
    }
    name = f"{spec.core}-{spec.kernels}-{spec.build_type}"
    gendir = cache / "obj" / f"{name}-{_hash(config)}"
    ops_tag = "all" if spec.ops is None else f"{len(spec.ops)}ops"
    key = _hash({**config, "ops": spec.ops})
    libdir = cache / "lib" / f"{spec.core}-{spec.kernels}-{ops_tag}-{key}"
    library, record_path = libdir / LIBRARY_NAME, libdir / "library.json"
    record = None if rebuild else _valid_record(record_path, library, key)
    if record is not None:
        return Library(library, tree.path, spec, record, reused=True)
    # One build per object folder at a time; other configurations build side by side.
    with file_lock(gendir.parent / f"{gendir.name}.lock"):
        if rebuild:
            shutil.rmtree(gendir, ignore_errors=True)
            shutil.rmtree(libdir, ignore_errors=True)
        record = _valid_record(record_path, library, key)
        if record is not None:  # built by another process while this one waited
            return Library(library, tree.path, spec, record, reused=True)
        start = time.perf_counter()
        device_dir = write_device_headers(cache / "device")
        lists_mk = cache / "lists.mk"
        write_if_changed(lists_mk, render("tflm_build/lists.mk.j2"))
        command = _make_command(tree.path, spec, gendir, device_dir, lists_mk)
        lists = _read_lists(command, niceness)
        sources, objects = _objects(tree.path, lists, spec)
        todo = sum(not Path(obj).is_file() for obj in objects)
        workers = jobs or os.cpu_count() or 1
        log(f"TFLite-Micro {spec.kernels} for {spec.core}: {len(objects)} objects ({ops_tag}), {todo} to compile, -j{workers}")
        _run([*command, f"-j{workers}", *objects], f"building TFLite-Micro ({name})", 7200, niceness)
        libdir.mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(".tmp")  # this configuration's lock is held: the name is ours
        partial.unlink(missing_ok=True)
        archiver = ["arm-none-eabi-ar", "-rcsD", str(partial), *objects]
        _run(archiver, f"archiving {LIBRARY_NAME}", 600, 0)
        os.replace(partial, library)
        seconds = round(time.perf_counter() - start, 1)
        record = {
            "key": key,
            "config": config,
            "ops": list(spec.ops) if spec.ops is not None else None,
            "tree": str(tree.path),
            "tree_source": tree.source,
            "sources": sources,
            "objects": len(objects),
            "compiled": todo,
            "seconds": seconds,
            "jobs": workers,
            "make": command,
            "sha256": sha256_file(library),
        }
        tmp = record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, record_path)
    log(f"TFLite-Micro {spec.kernels} for {spec.core}: {library} ({todo} objects compiled in {seconds:.0f} s)")
    return Library(library, tree.path, spec, record)
