"""A TFLite-Micro source tree ready for its own makefile, without network when possible.

Three ways to get one, tried in this order by :func:`prepare_tree` (``source="auto"``):

1. ``tflm_dir``: a TFLite-Micro checkout the user provides (``--tflm-dir`` or ``$TFLM_DIR``),
   used in place as it is. Its makefile downloads what its ``downloads/`` folder lacks.
2. ``vendor``: the source archives of :data:`~firmware_gen.tflm_build.pins.PINS` in a vendor
   folder (``--vendor``, ``$TFLM_VENDOR``, else ``../shared/vendor`` beside the repository). Each
   archive is checked against the folder's ``SHA256SUMS`` and its ``git archive`` header must
   name the pinned commit; then the trees are unpacked where TFLite-Micro's makefile expects them
   and TFLite-Micro's own flatbuffers and kissfft patches are applied, as its download scripts do.
3. ``git``: the same revisions fetched from their public repositories (``git fetch --depth 1`` of
   the commit id), each checkout checked to be the pinned commit, then laid out the same way.

Trees made from archives or git land in ``CACHE/src/tflite-micro-90b983c2-KEY/`` (KEY: a hash
of the pins and of this layout), written in a temporary folder and renamed when complete, and
are reused by every later build. ``pigweed`` is left empty (only TFLite-Micro's tests use it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_gen.tflm_build.lock import file_lock
from firmware_gen.tflm_build.pins import PIGWEED, PINS, Pin, tflm_short
from pipeline.artifacts import sha256_file
from pipeline.errors import CheckError, InputError

__all__ = [
    "SOURCES",
    "LAYOUT_VERSION",
    "Tree",
    "default_vendor",
    "read_sha256sums",
    "archive_commit",
    "verify_vendor",
    "fetch_pin",
    "prepare_tree",
]

SOURCES = ("auto", "tflm-dir", "vendor", "git")
LAYOUT_VERSION = 1
"""Bumped when the way a tree is laid out changes (part of the tree's cache key)."""

STAMP = "bnn-mcu-tree.json"
_MAKEFILE = "tensorflow/lite/micro/tools/make/Makefile"
_REPO = Path(__file__).resolve().parents[2]
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Tree:
    """A TFLite-Micro tree the build can use.

    Attributes:
        path: the tree's root (holds ``tensorflow/lite/micro``).
        source: ``tflm-dir``, ``vendor`` or ``git``.
        identity: what makes two trees the same for the library cache (JSON-ready).
        reused: the tree was already in the cache.
    """

    path: Path
    source: str
    identity: dict[str, Any] = field(default_factory=dict)
    reused: bool = False


def default_vendor() -> Path | None:
    """``$TFLM_VENDOR``, else ``../shared/vendor`` beside the repository when it holds ``SHA256SUMS``."""
    env = os.environ.get("TFLM_VENDOR")
    if env:
        return Path(env)
    shared = _REPO.parent / "shared" / "vendor"
    return shared if (shared / "SHA256SUMS").is_file() else None


def read_sha256sums(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum`` listing: file name -> lower-case hex digest.

    Raises:
        InputError: unreadable file or a line that is not ``DIGEST  NAME``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from None
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line.strip())
        if match is None:
            raise InputError(f"{path}:{number}: not a sha256sum line: {line.strip()[:80]!r}")
        sums[match.group(2)] = match.group(1).lower()
    return sums


def archive_commit(path: Path) -> str | None:
    """The commit id ``git archive`` recorded in a tar's pax header (``None`` if there is none).

    Raises:
        InputError: the file is not a readable tar archive.
    """
    try:
        with tarfile.open(path) as archive:
            comment = archive.pax_headers.get("comment")
    except (OSError, tarfile.TarError, EOFError) as err:
        raise InputError(f"{path}: not a readable tar archive ({err})") from None
    return comment if comment and _HEX40.match(comment) else None


def verify_vendor(vendor: Path, pins: tuple[Pin, ...] = PINS) -> dict[str, str]:
    """Check every pinned archive in ``vendor`` against ``SHA256SUMS`` and its pinned commit.

    Args:
        vendor: the folder with the archives and ``SHA256SUMS``.
        pins: the pins to check (default :data:`PINS`).

    Returns:
        archive name -> sha256.

    Raises:
        InputError: no ``SHA256SUMS``, an archive missing or not listed.
        CheckError: a checksum or a commit id differs from the pinned one.
    """
    sums = read_sha256sums(vendor / "SHA256SUMS")
    checked = {}
    for entry in pins:
        path = vendor / entry.archive
        if entry.archive not in sums:
            raise InputError(f"{vendor}/SHA256SUMS does not list {entry.archive}")
        if not path.is_file():
            raise InputError(f"{path}: missing from the vendor folder")
        digest = sha256_file(path)
        if digest != sums[entry.archive]:
            raise CheckError(f"{path}: sha256 {digest} differs from SHA256SUMS ({sums[entry.archive]})")
        commit = archive_commit(path)
        if commit != entry.revision:
            raise CheckError(f"{path}: holds commit {commit or 'unknown'}, the pinned {entry.name} revision is {entry.revision}")
        checked[entry.archive] = digest
    return checked


def _extract(archive: Path, top: str, dest: Path) -> None:
    """Unpack ``archive`` (one top folder ``top``) so that its content becomes ``dest``."""
    scratch = Path(tempfile.mkdtemp(prefix=".unpack.", dir=dest.parent))
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            outside = [m.name for m in members if m.name != top and not m.name.startswith(top + "/")]
            if outside:
                raise CheckError(f"{archive}: entries outside its top folder {top}/ ({outside[0]})")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, filter="data")
            else:  # Python without extraction filters: refuse links and absolute or parent paths
                unsafe = [m.name for m in members if m.issym() or m.islnk() or m.name.startswith("/") or ".." in m.name]
                if unsafe:
                    raise CheckError(f"{archive}: unsafe entry {unsafe[0]}")
                tar.extractall(scratch)
        os.replace(scratch / top, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _git(args: list[str], cwd: Path, what: str) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CEILING_DIRECTORIES": str(cwd.parent)}
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=1800)
    except FileNotFoundError:
        raise InputError("git is not installed (needed to apply TFLite-Micro's patches and to fetch sources)") from None
    except subprocess.TimeoutExpired:
        raise CheckError(f"{what}: git {args[0]} took longer than 30 minutes") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise CheckError(f"{what}: git {args[0]} failed: {last}")
    return result.stdout.strip()


def fetch_pin(entry: Pin, dest: Path) -> None:
    """Fetch ``entry.revision`` of ``entry.repository`` with git into ``dest`` (no ``.git`` left).

    ``git fetch --depth 1 REPOSITORY COMMIT`` (GitHub serves any commit by id), a detached
    checkout, then ``git rev-parse HEAD`` must equal the pinned commit.

    Raises:
        CheckError: git failed (no network?) or checked out another commit.
    """
    dest.mkdir(parents=True)
    what = f"{entry.name} {entry.revision[:12]} from {entry.repository}"
    _git(["init", "--quiet"], dest, what)
    _git(["fetch", "--quiet", "--depth", "1", entry.repository, entry.revision], dest, what)
    _git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", "FETCH_HEAD"], dest, what)
    head = _git(["rev-parse", "HEAD"], dest, what)
    if head != entry.revision:
        raise CheckError(f"{what}: checked out {head}, not the pinned commit")
    shutil.rmtree(dest / ".git")


def _lay_out(entry: Pin, tree: Path, fetch: Callable[[Pin, Path], None]) -> None:
    """Put one pinned tree in place inside ``tree``, with its BUILD files dropped and its patch applied."""
    dest = tree / entry.dest if entry.dest else tree
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetch(entry, dest)
    if entry.drop_build_files:
        for build_file in [*dest.rglob("BUILD"), *dest.rglob("BUILD.bazel")]:
            if build_file.is_file():
                build_file.unlink()
    if entry.patch is not None:
        patch = tree / entry.patch
        if not patch.is_file():
            raise CheckError(f"TFLite-Micro tree has no {entry.patch} (needed for {entry.name})")
        # TFLite-Micro's download scripts apply their patches with these git apply flags.
        _git(["apply", "--ignore-space-change", "--ignore-whitespace", str(patch)], dest, f"{entry.name}: {entry.patch}")


def _identity(pins: tuple[Pin, ...]) -> dict[str, Any]:
    return {"layout": LAYOUT_VERSION, "pins": {entry.name: entry.revision for entry in pins}}


def _user_tree(tflm_dir: Path) -> Tree:
    root = tflm_dir.resolve()
    if not (root / _MAKEFILE).is_file():
        raise InputError(f"{tflm_dir}: not a TFLite-Micro tree (no {_MAKEFILE})")
    head = None
    if (root / ".git").exists():
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(root.parent)}
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, env=env, check=False)
        head = result.stdout.strip() if result.returncode == 0 else None
    return Tree(root, "tflm-dir", {"tflm_dir": str(root), "git_head": head})


def _resolve_source(source: str, tflm_dir: Path | None, vendor: Path | None) -> str:
    if source not in SOURCES:
        raise InputError(f"unknown TFLite-Micro source {source!r}: valid sources are {', '.join(SOURCES)}")
    if source != "auto":
        return source
    if tflm_dir is not None:
        return "tflm-dir"
    return "vendor" if vendor is not None else "git"


def prepare_tree(
    cache: Path,
    *,
    source: str = "auto",
    tflm_dir: Path | None = None,
    vendor: Path | None = None,
    pins: tuple[Pin, ...] = PINS,
    log: Callable[[str], None] = print,
) -> Tree:
    """A TFLite-Micro tree for the pinned revisions (or the user's own).

    Args:
        cache: the build cache folder (trees go to ``cache/src``).
        source: ``auto`` (``tflm_dir`` if given, else ``vendor`` if given, else ``git``),
            ``tflm-dir``, ``vendor`` or ``git``.
        tflm_dir: a TFLite-Micro checkout used in place.
        vendor: the folder with the pinned archives and ``SHA256SUMS``.
        pins: the revisions (default :data:`PINS`; tests pass their own).
        log: progress printer.

    Returns:
        The :class:`Tree`.

    Raises:
        InputError: a required argument is missing, or a folder is not what it should be.
        CheckError: a checksum, a commit id or a patch does not match; git failed.
    """
    kind = _resolve_source(source, tflm_dir, vendor)
    if kind == "tflm-dir":
        if tflm_dir is None:
            raise InputError("--source tflm-dir needs --tflm-dir DIR (or $TFLM_DIR): a TFLite-Micro checkout")
        return _user_tree(tflm_dir)
    if kind == "vendor" and vendor is None:
        raise InputError("no vendor folder: pass --vendor DIR (or set $TFLM_VENDOR) or use --source git")
    identity = _identity(pins)
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    root = cache / "src"
    final = root / f"{tflm_short(pins)}-{key}"
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".lock"):
        if (final / STAMP).is_file():
            stamp = json.loads((final / STAMP).read_text(encoding="utf-8"))
            return Tree(final, stamp.get("source", kind), identity, reused=True)
        sums: dict[str, str] = {}
        fetch: Callable[[Pin, Path], None] = fetch_pin
        if vendor is not None and kind == "vendor":
            folder = vendor
            log(f"checking {len(pins)} archives in {folder} against SHA256SUMS and the pinned commits")
            sums = verify_vendor(folder, pins)

            def fetch(entry: Pin, dest: Path) -> None:
                _extract(folder / entry.archive, entry.top_folder, dest)

        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
        try:
            tree = work / "tree"
            for entry in sorted(pins, key=lambda p: p.dest):  # the TFLite-Micro tree ("") first
                log(f"  {entry.name} {entry.ref} ({'archive' if kind == 'vendor' else 'git'})")
                _lay_out(entry, tree, fetch)
            (tree / PIGWEED).mkdir(parents=True, exist_ok=True)
            stamp = {"source": kind, **identity, "archives_sha256": sums}
            (tree / STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)  # an incomplete tree left without a stamp
            os.replace(tree, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log(f"TFLite-Micro tree: {final}")
    return Tree(final, kind, identity)
