"""Flash and RAM of the deployable part, from a built bare-metal project.

* Flash and static RAM: ``arm-none-eabi-size`` of ``build/deployable.elf``, the engine's
  objects linked alone (entry ``bnn_predict``, ``--gc-sections``) with only the libgcc and
  newlib-nano helpers they call. Flash = text + data, static RAM = data + bss. The plain sum
  over the engine's objects is reported next to it.
* Stack: gcc's ``-fstack-usage`` (``.su``: bytes per function) and ``-fcallgraph-info=su``
  (``.ci``: who calls whom). The deepest path from ``bnn_predict`` is the stack figure.
  A callee without stack information (a library helper such as ``__aeabi_uidiv``) is charged
  :data:`UNKNOWN_CALLEE_BYTES`; recursion, indirect calls or dynamic frames make the figure
  a lower bound and are reported as such (``bounded: false``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import CheckError

__all__ = [
    "UNKNOWN_CALLEE_BYTES",
    "StackPath",
    "Footprint",
    "parse_size_output",
    "read_stack_usage",
    "read_callgraph",
    "deepest_path",
    "measure_link",
    "measure_footprint",
    "measure_generated",
    "build_generated",
    "FOOTPRINT_TOOLS",
]

FOOTPRINT_TOOLS = ("make", "arm-none-eabi-gcc", "arm-none-eabi-size")
_BUILD_TIMEOUT = 300.0

# Charged for a callee outside the engine's objects (libgcc/newlib helpers such as __aeabi_idivmod
# or memset push at most a few registers; 64 bytes is a conservative bound).
UNKNOWN_CALLEE_BYTES = 64
_SU_LINE = re.compile(r"^(?P<loc>.*):(?P<line>\d+):(?P<col>\d+):(?P<func>[^\t]+)\t(?P<bytes>\d+)\t(?P<kind>\S+)\s*$")
_CI_NODE = re.compile(r'node:\s*\{\s*title:\s*"(?P<title>[^"]+)"\s*label:\s*"(?P<label>[^"]*)"')
_CI_EDGE = re.compile(r'edge:\s*\{\s*sourcename:\s*"(?P<src>[^"]+)"\s*targetname:\s*"(?P<dst>[^"]+)"')
_CI_BYTES = re.compile(r"\\n(\d+) bytes \(([^)]*)\)")


@dataclass
class StackPath:
    """The deepest call path from a root.

    Attributes:
        bytes: stack bytes along the path (frames summed).
        path: function names from the root down.
        bounded: ``False`` if recursion, an indirect call or a dynamic frame was seen.
        unknown_callees: callees charged :data:`UNKNOWN_CALLEE_BYTES`.
        notes: why the figure may be a lower bound.
    """

    bytes: int
    path: list[str]
    bounded: bool = True
    unknown_callees: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Footprint:
    """Deployable flash and RAM.

    Attributes:
        flash_bytes: text + data of the deployable link.
        ram_bytes: data + bss of the deployable link plus the deepest stack path.
        detail: JSON-ready breakdown (sizes, object sums, stack path).
    """

    flash_bytes: int
    ram_bytes: int
    detail: dict[str, Any]


def parse_size_output(text: str) -> dict[str, dict[str, int]]:
    """Parse ``arm-none-eabi-size`` (Berkeley format) output.

    Args:
        text: the tool's stdout.

    Returns:
        file name -> ``{"text", "data", "bss"}``.

    Raises:
        CheckError: no data line was found.
    """
    sizes: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0].isdigit():
            sizes[parts[5]] = {"text": int(parts[0]), "data": int(parts[1]), "bss": int(parts[2])}
    if not sizes:
        raise CheckError(f"could not read arm-none-eabi-size output: {text.strip()[:200]!r}")
    return sizes


def read_stack_usage(paths: list[Path]) -> dict[str, tuple[int, str]]:
    """Read gcc ``.su`` files: function -> (bytes, kind) with kind ``static``/``dynamic``/``dynamic,bounded``.

    A name defined in two files (two ``static`` helpers) keeps the larger frame.
    """
    usage: dict[str, tuple[int, str]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            match = _SU_LINE.match(line)
            if not match:
                continue
            name, size, kind = match["func"], int(match["bytes"]), match["kind"]
            if name not in usage or usage[name][0] < size:
                usage[name] = (size, kind)
    return usage


def read_callgraph(paths: list[Path]) -> tuple[dict[str, set[str]], set[str]]:
    """Read gcc ``-fcallgraph-info`` ``.ci`` files.

    gcc titles a ``static`` function ``unit.c:name`` in the graph but ``name`` in the ``.su``
    file; titles are mapped back to the name on the node's label so both files agree.

    Returns:
        (caller -> callees, names of functions defined in these files).
    """
    edges: dict[str, set[str]] = {}
    defined: set[str] = set()
    texts = [path.read_text() for path in paths]
    alias: dict[str, str] = {}
    for text in texts:
        for match in _CI_NODE.finditer(text):
            if _CI_BYTES.search(match["label"]):
                name = match["label"].split("\\n", 1)[0]
                alias[match["title"]] = name
                defined.add(name)
    for text in texts:
        for match in _CI_EDGE.finditer(text):
            source, target = alias.get(match["src"], match["src"]), alias.get(match["dst"], match["dst"])
            edges.setdefault(source, set()).add(target)
    return edges, defined


def deepest_path(root: str, usage: dict[str, tuple[int, str]], edges: dict[str, set[str]]) -> StackPath:
    """Deepest stack path from ``root`` over the call graph.

    Args:
        root: the entry function (``bnn_predict``).
        usage: from :func:`read_stack_usage`.
        edges: caller -> callees, from :func:`read_callgraph`.

    Returns:
        The :class:`StackPath`.

    Raises:
        CheckError: ``root`` has no stack usage entry (not compiled with -fstack-usage?).
    """
    if root not in usage:
        raise CheckError(f"no stack usage for {root}: were the engine objects built with -fstack-usage?")
    notes: list[str] = []
    unknown: set[str] = set()
    bounded = True
    memo: dict[str, tuple[int, list[str]]] = {}

    def visit(name: str, active: frozenset[str]) -> tuple[int, list[str]]:
        nonlocal bounded
        if name in memo:
            return memo[name]
        if name in active:
            bounded = False
            notes.append(f"recursion through {name}: counted once")
            return 0, []
        if name not in usage:
            if name == "__indirect_call":
                bounded = False
                notes.append("an indirect call: its target is not in the graph")
            unknown.add(name)
            return UNKNOWN_CALLEE_BYTES, [name]
        size, kind = usage[name]
        if kind.startswith("dynamic") and kind != "dynamic,bounded":
            bounded = False
            notes.append(f"{name} has a dynamic frame: its static part is counted")
        best: tuple[int, list[str]] = (0, [])
        for callee in sorted(edges.get(name, ())):
            depth, path = visit(callee, active | {name})
            if depth > best[0]:
                best = (depth, path)
        memo[name] = (size + best[0], [name, *best[1]])
        return memo[name]

    total, path = visit(root, frozenset())
    return StackPath(bytes=total, path=path, bounded=bounded, unknown_callees=sorted(unknown), notes=notes)


def _run_size(size_tool: str, files: list[Path]) -> dict[str, dict[str, int]]:
    result = subprocess.run([size_tool, *map(str, files)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CheckError(f"{size_tool} failed: {result.stderr.strip()[:300]}")
    return parse_size_output(result.stdout)


def measure_link(
    project: Path,
    sources: list[str],
    elf: str,
    roots: tuple[str, ...] | list[str],
    *,
    what: str = "bnn_predict",
    size_tool: str = "arm-none-eabi-size",
) -> Footprint:
    """Flash and RAM of one link of a built project: ``build/ELF`` made of ``sources``' objects.

    Args:
        project: the project folder (with ``build/``).
        sources: the ``.c`` files whose objects make the link (their ``.su``/``.ci`` give the stack).
        elf: the linked file under ``build/`` (``deployable.elf``).
        roots: the entry points; the stack figure is the deepest path from any of them.
        what: how the ``ram_source`` text names the roots.
        size_tool: the ``size`` program.

    Returns:
        The :class:`Footprint` (flash ``text + data``, RAM ``data + bss`` plus the deepest stack path).

    Raises:
        CheckError: missing build outputs or unreadable tool output.
    """
    build = project / "build"
    objects = [build / (Path(src).stem + ".o") for src in sources]
    linked_path = build / elf
    missing = [p.name for p in [*objects, linked_path] if not p.exists()]
    if missing:
        raise CheckError(f"build outputs missing in {build}: {', '.join(missing)} (did make succeed?)")
    sizes = _run_size(size_tool, [*objects, linked_path])
    linked = sizes[str(linked_path)]
    objects_sum = {key: sum(sizes[str(obj)][key] for obj in objects) for key in ("text", "data", "bss")}
    # Stack: the engine's frames only; library helpers (memcpy, __aeabi_*) count as unknown callees.
    usage = read_stack_usage([obj.with_suffix(".su") for obj in objects])
    edges, _ = read_callgraph([obj.with_suffix(".ci") for obj in objects])
    stack = max((deepest_path(root, usage, edges) for root in roots), key=lambda path: path.bytes)
    flash = linked["text"] + linked["data"]
    static_ram = linked["data"] + linked["bss"]
    detail = {
        "flash_source": f"arm-none-eabi-size build/{elf}: text + data",
        "ram_source": f"arm-none-eabi-size build/{elf}: data + bss, plus the deepest {what} stack path",
        "deployable_elf": linked,
        "engine_objects": {Path(src).stem + ".o": sizes[str(obj)] for src, obj in zip(sources, objects, strict=True)},
        "engine_objects_sum": objects_sum,
        "static_ram_bytes": static_ram,
        "stack_bytes": stack.bytes,
        "stack_path": stack.path,
        "stack_bounded": stack.bounded,
        "stack_unknown_callees": stack.unknown_callees,
        "stack_notes": stack.notes,
    }
    return Footprint(flash_bytes=flash, ram_bytes=static_ram + stack.bytes, detail=detail)


def measure_footprint(project: Path, engine_sources: list[str], *, size_tool: str = "arm-none-eabi-size") -> Footprint:
    """Deployable flash and RAM of a built project (``make`` has run): :func:`measure_link` of
    ``build/deployable.elf``, entered at ``bnn_predict``.

    Args:
        project: the project folder (with ``build/``).
        engine_sources: the engine's ``.c`` files (their objects are the deployable part).
        size_tool: the ``size`` program.

    Returns:
        The :class:`Footprint`.

    Raises:
        CheckError: missing build outputs or unreadable tool output.
    """
    return measure_link(project, engine_sources, "deployable.elf", ("bnn_predict",), size_tool=size_tool)


def build_generated(files: dict[str, bytes], folder: Path, targets: tuple[str, ...] = ("build/deployable.elf",)) -> None:
    """Write a generated project into ``folder`` and ``make`` the ``targets`` there.

    Raises:
        CheckError: the build fails or takes too long (generated C that does not compile is a bug,
            not bad input).
    """
    for rel, data in files.items():
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    try:
        result = subprocess.run(
            ["make", "-s", *targets], cwd=folder, capture_output=True, text=True, timeout=_BUILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise CheckError(f"building the deployable part took over {_BUILD_TIMEOUT:g} s") from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise CheckError(f"building the deployable part failed:\n{tail}")


def measure_generated(files: dict[str, bytes], engine_sources: list[str]) -> Footprint | None:
    """Build the deployable part of a generated project in a scratch folder and measure it.

    ``firmware_gen`` calls this right after generating, so ``firmware.json`` and the board
    verdict carry the same ELF figures the QEMU backend reports later.

    Args:
        files: the generated project (relative path -> bytes), engine and bare-metal files.
        engine_sources: the engine's ``.c`` files (the deployable part).

    Returns:
        The :class:`Footprint`, or ``None`` when the Arm toolchain is not installed.

    Raises:
        CheckError: the build fails (generated C that does not compile is a bug, not bad input).
    """
    if any(shutil.which(tool) is None for tool in FOOTPRINT_TOOLS):
        return None
    with tempfile.TemporaryDirectory(prefix="bnn-footprint-") as tmp:
        build_generated(files, Path(tmp))
        return measure_footprint(Path(tmp), engine_sources)
