"""A folder or a tar archive of data files, read as one tree (nothing is unpacked to disk).

A dataset of files (images in a folder per class, audio clips) arrives as a folder or as a
``.tar``, ``.tar.gz`` or ``.tgz`` of one. :func:`open_tree` gives both the same interface: the
files with the wanted extensions as ``/``-separated paths relative to the top (``cat/1.png``),
the folders, each file's bytes, and one digest that names the content for a cache key:

* an archive's digest is the sha256 of the archive file (cheap: the cache can be checked
  without reading a single member);
* a folder's digest is one sha256 over its sorted entries: each folder's relative path, and each
  wanted file's relative path, size and bytes (every file is read; files without a wanted
  extension are not part of the dataset and not of the digest).

Names starting with ``.`` (``.DS_Store``, ``._x.png`` from macOS tar, ``.ipynb_checkpoints``) are
skipped, files and folders alike. An archive is read member by member with :mod:`tarfile` and
refused, with one line naming the member, when it holds an absolute path, a ``..`` component,
a link, a device or FIFO, or the same path twice; a truncated or corrupt archive is refused too.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.artifacts import sha256_file
from pipeline.errors import InputError, first_line

__all__ = ["ARCHIVE_SUFFIXES", "Listing", "FileTree", "FolderTree", "TarTree", "is_archive", "open_tree"]

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_TREE_DIGEST_VERSION = b"bnn-mcu file tree 1\0"


def is_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like a tar archive (``.tar``, ``.tar.gz``, ``.tgz``, any case)."""
    return Path(path).name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class Listing:
    """What a tree holds.

    Attributes:
        files: the wanted files, sorted ``/``-separated paths relative to the top.
        folders: every folder (including those only implied by a file's path), sorted.
        read: a file's bytes by its relative path.
        others: the files without a wanted extension (not hidden), sorted, never read: only named
            in messages (a tree of ``.wav`` files given where images were expected).
    """

    files: tuple[str, ...]
    folders: tuple[str, ...]
    read: Callable[[str], bytes]
    others: tuple[str, ...] = ()


def _hidden(parts: Iterable[str]) -> bool:
    return any(part.startswith(".") for part in parts)


def _wanted(rel: str, extensions: tuple[str, ...]) -> bool:
    return rel.lower().endswith(extensions)


def _parents(paths: Iterable[str]) -> set[str]:
    """Every proper ancestor folder of the normalized relative ``paths`` (not the top itself)."""
    found: set[str] = set()
    for path in paths:
        cut = path.rfind("/")
        while cut > 0 and path[:cut] not in found:
            found.add(path[:cut])
            cut = path.rfind("/", 0, cut)
    return found


class FileTree(ABC):
    """A folder or an archive of data files (see the module doc).

    Attributes:
        path: the folder or archive.
        extensions: the wanted files' extensions, lower case with the dot (``(".png", ".jpg")``).
    """

    def __init__(self, path: Path, extensions: tuple[str, ...]) -> None:
        self.path = path
        self.extensions = tuple(ext.lower() for ext in extensions)
        self._digest: str | None = None

    def digest(self) -> str:
        """Hex sha256 naming the tree's content (see the module doc), computed once."""
        if self._digest is None:
            self._digest = self._compute_digest()
        return self._digest

    @abstractmethod
    def _compute_digest(self) -> str:
        """The digest, read from the source."""

    @abstractmethod
    def sha256_entry(self) -> dict[str, str]:
        """One ``{name: digest}`` entry for :attr:`pipeline.dataset.Dataset.sha256`."""

    @abstractmethod
    def listing(self) -> Listing:
        """The tree's wanted files and folders, and how to read a file."""

    @abstractmethod
    def name(self, rel: str) -> str:
        """How messages name the file at ``rel``."""


class FolderTree(FileTree):
    """A folder on disk."""

    def _walk(self) -> tuple[list[str], list[str], list[str]]:
        files: list[str] = []
        folders: list[str] = []
        others: list[str] = []

        def refuse(err: OSError) -> None:
            raise InputError(f"{err.filename}: cannot read the folder ({err.strerror or err})")

        for top, dirs, names in os.walk(self.path, onerror=refuse):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel_top = PurePosixPath(Path(top).relative_to(self.path).as_posix())
            folders.extend(str(rel_top / d) for d in dirs)
            for name in names:
                rel = str(rel_top / name)
                if not name.startswith(".") and (Path(top) / name).is_file():
                    (files if _wanted(name, self.extensions) else others).append(rel)
        return sorted(files), sorted(folders), sorted(others)

    def _read(self, rel: str) -> bytes:
        try:
            return (self.path / rel).read_bytes()
        except OSError as err:
            raise InputError(f"{self.name(rel)}: cannot read ({err.strerror or err})") from None

    def _compute_digest(self) -> str:
        """One sha256 over the sorted folders' and wanted files' paths and the files' bytes."""
        files, folders, _ = self._walk()
        digest = hashlib.sha256(_TREE_DIGEST_VERSION)
        entries = sorted([(rel, False) for rel in folders] + [(rel, True) for rel in files])
        for rel, is_file in entries:
            digest.update((b"f\0" if is_file else b"d\0") + rel.encode("utf-8", "surrogateescape") + b"\0")
            if is_file:
                data = self._read(rel)
                digest.update(len(data).to_bytes(8, "big") + data)
        return digest.hexdigest()

    def sha256_entry(self) -> dict[str, str]:
        """``{"FOLDER/": tree digest}`` (the trailing ``/`` marks a tree digest, not a file's)."""
        return {f"{self.path.resolve().name}/": self.digest()}

    def listing(self) -> Listing:
        """Walk the folder (files are read only when asked for)."""
        files, folders, others = self._walk()
        return Listing(tuple(files), tuple(folders), self._read, tuple(others))

    def name(self, rel: str) -> str:
        """``FOLDER/REL``."""
        return str(self.path / rel)


class TarTree(FileTree):
    """A ``.tar``, ``.tar.gz`` or ``.tgz`` archive, read member by member into memory."""

    def _compute_digest(self) -> str:
        """The archive file's sha256."""
        try:
            return sha256_file(self.path)
        except OSError as err:
            raise InputError(f"{self.path}: cannot read ({err.strerror or err})") from None

    def sha256_entry(self) -> dict[str, str]:
        """``{"ARCHIVE.tar.gz": its sha256}``."""
        return {self.path.name: self.digest()}

    def _member_path(self, member: tarfile.TarInfo) -> str:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise InputError(f"{self.name(member.name)}: an absolute path or one with '..'; refusing the archive")
        if member.issym() or member.islnk():
            raise InputError(f"{self.name(member.name)}: a link; a dataset archive holds plain files and folders only")
        if not member.isfile() and not member.isdir():
            raise InputError(f"{self.name(member.name)}: a device or FIFO; a dataset archive holds plain files and folders only")
        return str(path)

    def listing(self) -> Listing:
        """Read every member once: check it, keep the wanted files' bytes, note the folders."""
        content: dict[str, bytes] = {}
        folders: set[str] = set()
        others: set[str] = set()
        try:
            with open(self.path, "rb") as handle:
                try:
                    tar = tarfile.open(fileobj=handle, mode="r:*")
                except tarfile.ReadError:
                    raise InputError(f"{self.path}: not a tar archive (plain, gzip, bzip2 or xz), or a corrupt one") from None
                with tar:
                    for member in tar:
                        rel = self._member_path(member)
                        if rel == "." or _hidden(PurePosixPath(rel).parts):
                            continue
                        if member.isdir():
                            folders.add(rel)
                        elif _wanted(rel, self.extensions):
                            if rel in content:
                                raise InputError(f"{self.name(rel)}: appears twice in the archive; refusing it")
                            extracted = tar.extractfile(member)
                            content[rel] = extracted.read() if extracted is not None else b""
                        else:
                            others.add(rel)
        except (tarfile.TarError, EOFError, zlib.error) as err:
            raise InputError(
                f"{self.path}: corrupt or truncated tar archive ({first_line(err, 120)}); download or write it again"
            ) from None
        except OSError as err:  # gzip.BadGzipFile, lzma/bz2 errors, a read error
            raise InputError(f"{self.path}: cannot read the tar archive ({first_line(err, 120)})") from None
        folders |= _parents(content) | _parents(folders)
        return Listing(tuple(sorted(content)), tuple(sorted(folders)), content.__getitem__, tuple(sorted(others)))

    def name(self, rel: str) -> str:
        """``ARCHIVE member REL``."""
        return f"{self.path} member {rel}"


def open_tree(path: str | os.PathLike[str], extensions: tuple[str, ...]) -> FileTree:
    """The tree at ``path``: a folder, or an archive named ``.tar``, ``.tar.gz`` or ``.tgz``.

    Args:
        path: the folder or archive.
        extensions: the wanted files' extensions (``(".png", ".jpg", ".jpeg")``).

    Returns:
        A :class:`FolderTree` or :class:`TarTree` (nothing is read yet).

    Raises:
        InputError: ``path`` is neither a folder nor an archive named so.
    """
    path = Path(path)
    if path.is_dir():
        return FolderTree(path, extensions)
    if path.is_file() and is_archive(path):
        return TarTree(path, extensions)
    raise InputError(f"{path}: expected a folder or a {', '.join(ARCHIVE_SUFFIXES)} archive of one")
