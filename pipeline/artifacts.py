"""Artifact helpers shared by every stage: atomic writes, sha256, the tool version.

A failed run must never leave a half-written artifact, so every write goes to a temporary
file in the destination folder and is renamed into place only once complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "TOOL_VERSION",
    "atomic_path",
    "check_files_writable",
    "check_inputs_kept",
    "check_replaceable",
    "replace_files",
    "replace_folder",
    "write_bytes",
    "write_text",
    "write_json",
    "sha256_file",
    "sha256_bytes",
]


def _tool_version() -> str:
    try:
        return metadata.version("bnn-mcu")
    except metadata.PackageNotFoundError:
        return "0+unknown"


TOOL_VERSION = _tool_version()
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it to ``dest`` if the block succeeds.

    The temporary name keeps ``dest``'s suffix, so writers that look at the extension
    (``model.save("x.h5")``) behave the same. On any exception the temporary file is removed
    and ``dest`` is left untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(dest: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write ``data`` to ``dest`` and return the path."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike[str], text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``dest`` (LF line endings) and return the path."""
    return write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented, key-sorted JSON with a final newline."""
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))


def _same_file(a: Path, b: Path) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def check_inputs_kept(
    inputs: Iterable[str | os.PathLike[str] | None],
    *,
    files: Iterable[str | os.PathLike[str]] = (),
    folders: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Refuse outputs that would overwrite or delete an input (check it before any work).

    An output file is refused when it is one of the inputs (the same path once every symlink is
    resolved, or the same file through a hard link); an output folder, which is replaced whole,
    when an input lies inside it.

    Args:
        inputs: the files (or folders) the command reads; ``None`` entries are ignored.
        files: the output files it would write.
        folders: the output folders it would replace.

    Raises:
        InputError: an output overlaps an input (the message names both).
    """
    from pipeline.errors import InputError

    sources = [Path(path) for path in inputs if path is not None]
    for output in map(Path, files):
        for source in sources:
            if _same_file(output, source):
                raise InputError(f"refusing to write {output}: it is the input {source} (choose another --out or name)")
    for folder in map(Path, folders):
        root = _resolved(folder)
        for source in sources:
            if _resolved(source) == root or root in _resolved(source).parents:
                raise InputError(f"refusing to replace {folder}: it holds the input {source} (choose another --out)")


def check_files_writable(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse output files that cannot take a file's place (check it before any work).

    Raises:
        InputError: a folder stands at one of ``paths``.
    """
    from pipeline.errors import InputError

    for path in map(Path, paths):
        if path.is_dir():
            raise InputError(f"refusing to write {path}: a folder stands there; nothing written")


def replace_files(files: dict[Path, bytes]) -> None:
    """Write every file of ``files`` (path -> bytes), or none of them: a set of outputs is all or nothing.

    Each file is first written to a temporary file beside its destination; only when all are
    written are they renamed into place, each previous file moved aside first and put back if a
    later rename fails. Files are renamed in the dict's order (put a report that names the others
    last).

    Raises:
        InputError: a destination is a folder (checked before anything is written).
    """
    check_files_writable(files)
    temps: dict[Path, Path] = {}
    moved: list[tuple[Path, Path | None]] = []
    try:
        for dest, data in files.items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=dest.parent)
            os.close(fd)
            temps[dest] = Path(name)
            os.chmod(name, 0o666 & ~_UMASK)
            temps[dest].write_bytes(data)
        for dest, tmp in temps.items():
            old = None
            if os.path.lexists(dest):
                fd, name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".old{dest.suffix}", dir=dest.parent)
                os.close(fd)
                old = Path(name)
                os.replace(dest, old)
            moved.append((dest, old))
            os.replace(tmp, dest)
    except BaseException:
        for dest, old in reversed(moved):
            if old is not None:
                os.replace(old, dest)
            elif os.path.lexists(dest):
                dest.unlink()
        raise
    finally:
        for tmp in temps.values():
            if os.path.lexists(tmp):
                tmp.unlink()
    for _, old in moved:
        if old is not None and os.path.lexists(old):
            old.unlink()


def check_replaceable(out: str | os.PathLike[str], *, marker: str, owner: str) -> None:
    """Refuse an output folder :func:`replace_folder` must not replace (check it before long work).

    Raises:
        InputError: ``out`` is a file, or a non-empty folder without the file ``marker``.
    """
    from pipeline.errors import InputError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise InputError(f"refusing to replace {out}: it is not empty and holds no {marker} (not an output of {owner})")


def replace_folder(out: str | os.PathLike[str], files: dict[str, bytes], *, marker: str, owner: str) -> None:
    """Make ``files`` (relative POSIX path -> bytes) the whole content of folder ``out``, or leave it as it was.

    The files are written into a temporary sibling folder, which then takes ``out``'s place: the
    previous folder is moved aside first and deleted only once the new one is in place (on
    failure it is moved back). A non-empty ``out`` without the file ``marker`` is refused, so a
    mistyped ``--out`` cannot wipe an unrelated folder.

    Args:
        out: the folder to write.
        files: its content; paths must be relative and stay inside ``out``.
        marker: a file every output of this kind holds (``firmware.json``, ``results.json``).
        owner: what writes such folders, for the refusal (``firmware_gen``, ``the study``).

    Raises:
        InputError: ``out`` is a file, a non-empty folder without ``marker``, or a path in
            ``files`` is absolute or leaves ``out``.
    """
    from pipeline.errors import InputError

    out = Path(out)
    if out.is_symlink():
        out = _resolved(out)  # replace the folder the link names; the link stays as it was
    check_replaceable(out, marker=marker, owner=owner)
    relpaths = {}
    for rel in files:
        path = PurePosixPath(rel)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise InputError(f"invalid output path {rel!r}: it must stay inside {out}")
        relpaths[rel] = path
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    old: Path | None = None
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        for rel in sorted(files):
            dest = tmp.joinpath(*relpaths[rel].parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(files[rel])
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.rmdir(old)
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not out.exists():
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
