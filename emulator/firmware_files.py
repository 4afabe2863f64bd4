"""A firmware folder is code: before a backend builds one, its files must be the ones ``firmware.json`` lists.

The host backend compiles the folder's C with the host compiler and runs it; the QEMU backends
run its ``Makefile`` (any command it holds runs on this machine) and the firmware it builds. A
folder edited after ``python -m firmware_gen`` (or the search) wrote it would run the edits, so
every backend that builds a folder (:mod:`emulator.host`, :mod:`emulator.qemu`,
:mod:`emulator.qemu_tflm`, :mod:`emulator.clips`) first calls :func:`check_firmware_files`:
every file the folder holds must be listed in its ``firmware.json`` (``files``: path, bytes,
sha256, as :mod:`firmware_gen.cli` and :mod:`search.measure` write it) with the same size and
sha256, and every listed file must be there. The first difference (in path order) is refused in
one line naming the file (:class:`~pipeline.errors.InputError`, exit 2); ``allow_modified``
(``--allow-modified`` on the command line) builds the folder anyway.

Not counted: ``firmware.json`` itself, what the emulator writes into the folder
(``*.emulate.json`` reports at its top) and what a build writes there (:data:`SKIPPED`: ``build/``
folders, ``firmware.elf``, the harness's data files), which no backend compiles and the QEMU
backends never copy into their build folder (:func:`copy_ignore`). A folder without
``firmware.json`` or whose ``firmware.json`` has no file list (not written by this project) is
refused the same way: nothing says what it should hold.

This is a check against edits, not a signature: whoever can edit the folder can rewrite
``firmware.json`` too. Build only folders you trust.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from firmware_gen.baremetal.protocol import CLIPS_NAME, IMAGES_NAME, RESULTS_NAME
from pipeline.artifacts import sha256_file
from pipeline.errors import InputError
from pipeline.json_input import parse_json

__all__ = ["MANIFEST", "SKIPPED", "REPORT_SUFFIX", "ALLOW_HINT", "check_firmware_files", "firmware_files_problem", "copy_ignore"]

MANIFEST = "firmware.json"
# Build outputs and harness data files, at any depth: never compiled, never copied into a build.
SKIPPED = ("build", "firmware.elf", IMAGES_NAME, RESULTS_NAME, CLIPS_NAME)
# The emulator's reports (FOLDER/FOLDERNAME.BACKEND.emulate.json, emulator.report.default_json_path).
REPORT_SUFFIX = ".emulate.json"
ALLOW_HINT = "building a firmware folder runs its code; --allow-modified builds it anyway"
_HEX = frozenset("0123456789abcdef")


def copy_ignore() -> Callable[[Any, list[str]], set[str]]:
    """The ``ignore`` of :func:`shutil.copytree` for a backend's build copy: :data:`SKIPPED`."""
    return shutil.ignore_patterns(*SKIPPED)


def check_firmware_files(folder: str | os.PathLike[str], *, allow_modified: bool = False) -> None:
    """Refuse to build a firmware folder whose files are not the ones its ``firmware.json`` lists.

    Args:
        folder: the user's firmware folder (not a backend's build copy).
        allow_modified: build it anyway (no check).

    Raises:
        InputError: one line naming the first file that is missing, extra, changed or not a
            regular file, or saying that ``firmware.json`` lists no files.
    """
    if allow_modified:
        return
    problem = firmware_files_problem(Path(folder))
    if problem is not None:
        raise InputError(f"{problem}; {ALLOW_HINT}")


def _listed(folder: Path, manifest_path: Path) -> dict[str, tuple[int, str]] | str:
    """``firmware.json``'s files (path -> (bytes, sha256)), or why there is no usable list."""
    if not manifest_path.is_file():
        return f"{folder}: no {MANIFEST} listing the folder's files (not written by python -m firmware_gen)"
    try:
        manifest = parse_json(manifest_path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        return f"{manifest_path}: not valid JSON ({err})"
    except OSError as err:
        return f"{manifest_path}: cannot be read ({err.strerror or err})"
    entries = manifest.get("files") if isinstance(manifest, dict) else None
    no_list = f"{manifest_path}: no list of files with sha256s (written by an older version, or edited)"
    if not isinstance(entries, list):
        return no_list
    listed: dict[str, tuple[int, str]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            return no_list
        path, size, digest = entry.get("path"), entry.get("bytes"), entry.get("sha256")
        if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
            return no_list
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _HEX):
            return no_list
        parts = PurePosixPath(path).parts if isinstance(path, str) and path else ()
        if not parts or path != PurePosixPath(*parts).as_posix() or path.startswith("/") or ".." in parts or "\\" in path:
            return f"{manifest_path}: lists {path!r}, not a path inside the folder"
        if path == MANIFEST or path in listed:
            return f"{manifest_path}: lists {path!r} twice or lists itself"
        listed[path] = (size, digest)
    return listed


def _raise(err: OSError) -> None:
    raise err


def _present(folder: Path) -> dict[str, os.stat_result]:
    """Every entry the folder holds (relative POSIX path -> lstat), links and special files included, minus the skipped."""
    present: dict[str, os.stat_result] = {}
    for root, dirs, files in os.walk(folder, onerror=_raise, followlinks=False):
        base = Path(root)
        rel_root = base.relative_to(folder)
        kept = []
        for name in dirs:
            path = base / name
            if name in SKIPPED:
                continue
            if path.is_symlink():  # os.walk does not enter it: a link to a folder is an entry of its own
                present[(rel_root / name).as_posix()] = path.lstat()
            else:
                kept.append(name)
        dirs[:] = kept
        for name in files:
            rel = (rel_root / name).as_posix()
            if name in SKIPPED or (rel_root == Path(".") and (name == MANIFEST or name.endswith(REPORT_SUFFIX))):
                continue
            present[rel] = (base / name).lstat()
    return present


def firmware_files_problem(folder: Path) -> str | None:
    """The first difference between ``folder`` and its ``firmware.json`` file list, or ``None`` (see the module)."""
    manifest_path = folder / MANIFEST
    listed = _listed(folder, manifest_path)
    if isinstance(listed, str):
        return listed
    try:
        present = _present(folder)
    except OSError as err:
        return f"{folder}: cannot be listed ({err.strerror or err})"
    for rel in sorted(set(listed) | set(present)):
        path = folder / rel
        if rel not in listed:
            return f"{path}: not a file {manifest_path} lists (added after the folder was generated?)"
        if rel not in present:
            return f"{path}: missing ({manifest_path} lists it)"
        info = present[rel]
        if not stat.S_ISREG(info.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
            return f"{path}: {kind}, not the file {manifest_path} lists"
        size, digest = listed[rel]
        if info.st_size != size:
            return f"{path}: changed since it was generated ({info.st_size:,} bytes, {manifest_path} says {size:,})"
        try:
            actual = sha256_file(path)
        except OSError as err:
            return f"{path}: cannot be read ({err.strerror or err})"
        if actual != digest:
            return f"{path}: changed since it was generated (its sha256 is not the one {manifest_path} lists)"
    return None
