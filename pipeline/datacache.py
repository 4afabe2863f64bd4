"""Decoded datasets cached on disk: a source's files are decoded once, later runs read arrays.

Where: ``$BNN_DATA_CACHE``, else ``~/.cache/bnn-mcu/datasets/``. One uncompressed ``.npz`` per
entry, named ``KIND-KEY.npz`` and written atomically (:func:`pipeline.artifacts.atomic_path`),
so a crash or two processes building the same entry never leave a half-written file.

The key (:func:`cache_key`) is a sha256 over the kind (``images``), the loader's format
version, the source's digest (:meth:`pipeline.filetree.FileTree.digest`: a tar's sha256, a
folder's tree digest) and every option that shapes the arrays (the split rule, the decoder's
version), as canonical JSON: change any of them and the entry is another one.

An entry holds ``x_train``, ``y_train``, ``x_test``, ``y_test``, ``classes`` and ``checksum``
(a sha256 over the others' names, dtypes, shapes and bytes); an audio entry also holds
``raw_train`` and ``raw_test`` (the int16 clips the features were computed from), which the
checksum then covers too, after the others (so image entries written before audio existed still
check and read as they are). One that cannot be read, lacks or
adds a key, has inconsistent shapes or labels, or fails its checksum is rebuilt and replaced,
never trusted. When the folder cannot be written, the data is still returned and one line on
stderr says the cache was not written. Nothing is evicted: delete the folder to free the space.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import atomic_path
from pipeline.dataset import DTYPES, Dataset

__all__ = [
    "CACHE_ENV",
    "CachedArrays",
    "cache_folder",
    "cache_key",
    "entry_path",
    "checksum",
    "read_entry",
    "write_entry",
    "load_or_build",
]

CACHE_ENV = "BNN_DATA_CACHE"
_DEFAULT_FOLDER = Path("~/.cache/bnn-mcu/datasets")
_ARRAYS = ("x_train", "y_train", "x_test", "y_test", "classes")
_RAW = ("raw_train", "raw_test")  # both or neither: an audio source's int16 clips


@dataclass(frozen=True)
class CachedArrays:
    """What a cache entry holds: a dataset's splits and class names (and an audio source's raw clips).

    Attributes:
        x_train: ``(N, ...)`` uint8 or float32 examples, in training order.
        y_train: ``(N,)`` integer labels.
        x_test: ``(M, ...)`` examples, ``M >= 1``, the same shape per example and dtype.
        y_test: ``(M,)`` labels.
        classes: the class names, label ``i`` named ``classes[i]``.
        raw_train: for audio, int16 ``(N, samples)`` clips in ``x_train``'s order; else ``None``.
        raw_test: for audio, int16 ``(M, samples)`` clips in ``x_test``'s order (both or neither).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    raw_train: np.ndarray | None = None
    raw_test: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.raw_train is None) != (self.raw_test is None):  # a loader's mistake, not user input
            raise ValueError("CachedArrays: raw_train and raw_test go together (both or neither)")

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by its key in the entry (``classes`` as a unicode array; the raw clips when present)."""
        arrays = {
            "x_train": self.x_train,
            "y_train": self.y_train,
            "x_test": self.x_test,
            "y_test": self.y_test,
            "classes": np.array(self.classes, dtype=np.str_),
        }
        if self.raw_train is not None:
            arrays.update(raw_train=self.raw_train, raw_test=self.raw_test)
        return arrays

    def to_dataset(self, source: str, sha256: dict[str, str], frontend: dict[str, Any] | None = None) -> Dataset:
        """The :class:`~pipeline.dataset.Dataset` these arrays make, read from ``source`` (its ``sha256``
        entries) with an audio source's ``frontend`` config."""
        return Dataset(
            self.x_train,
            self.y_train,
            self.x_test,
            self.y_test,
            source,
            sha256,
            len(self.classes),
            self.classes,
            frontend,
            self.raw_train,
            self.raw_test,
        )


def cache_folder() -> Path:
    """``$BNN_DATA_CACHE`` if set (and not empty), else ``~/.cache/bnn-mcu/datasets``."""
    return Path(os.environ.get(CACHE_ENV) or _DEFAULT_FOLDER).expanduser()


def cache_key(kind: str, version: int, source_digest: str, options: Mapping[str, Any]) -> str:
    """The hex sha256 naming one decoded dataset.

    Args:
        kind: the spec kind (``"images"``).
        version: the kind's loader format version (raise it when the arrays it writes change).
        source_digest: the source's digest (a tar's sha256, a folder's tree digest).
        options: every option that shapes the arrays, JSON-ready (``{"split": ..., "decoder": ...}``).
    """
    identity = {"kind": kind, "version": version, "source": source_digest, "options": options}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def entry_path(kind: str, key: str) -> Path:
    """The entry file for ``key``: ``CACHE_FOLDER/KIND-KEY.npz``."""
    return cache_folder() / f"{kind}-{key}.npz"


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """Hex sha256 over the arrays of :data:`_ARRAYS`, then the raw clips if present: each one's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for key in (*_ARRAYS, *(key for key in _RAW if key in arrays)):
        value = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}\0{value.dtype.str}\0{value.shape}\0".encode())
        digest.update(memoryview(value).cast("B"))
    return digest.hexdigest()


def _consistent(arrays: Mapping[str, np.ndarray]) -> bool:
    """Whether an entry's arrays have the keys, dtypes, shapes and labels :class:`CachedArrays` promises."""
    if set(arrays) not in ({*_ARRAYS, "checksum"}, {*_ARRAYS, *_RAW, "checksum"}):
        return False
    x_train, y_train, x_test, y_test, classes = (arrays[key] for key in _ARRAYS)
    if classes.ndim != 1 or classes.dtype.kind != "U" or not classes.size:
        return False
    if x_train.ndim < 2 or x_train.shape[1:] != x_test.shape[1:] or x_train.dtype != x_test.dtype or x_test.dtype not in DTYPES:
        return False
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
            return False
        if y.size and not 0 <= int(y.min()) <= int(y.max()) < len(classes):
            return False
    if "raw_train" in arrays and not _raw_consistent(arrays["raw_train"], arrays["raw_test"], len(x_train), len(x_test)):
        return False
    stored = arrays["checksum"]
    return bool(len(x_test)) and stored.shape == () and stored.dtype.kind == "U" and str(stored) == checksum(arrays)


def _raw_consistent(raw_train: np.ndarray, raw_test: np.ndarray, train: int, test: int) -> bool:
    """Whether raw clips are int16 ``(N, samples)`` of one length, one per example."""
    for raw, count in ((raw_train, train), (raw_test, test)):
        if raw.dtype != np.int16 or raw.ndim != 2 or len(raw) != count or not raw.shape[1]:
            return False
    return raw_train.shape[1] == raw_test.shape[1]


def read_entry(path: Path) -> CachedArrays | None:
    """The entry at ``path``, or ``None`` when it is missing, unreadable or fails a check."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in npz.files}
    except (ValueError, OSError, EOFError, KeyError, AttributeError, zipfile.BadZipFile, zlib.error):
        return None
    if not _consistent(arrays):
        return None
    return CachedArrays(
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        tuple(str(c) for c in arrays["classes"]),
        arrays.get("raw_train"),
        arrays.get("raw_test"),
    )


def write_entry(path: Path, cached: CachedArrays) -> None:
    """Write ``cached`` to ``path`` atomically, as an uncompressed ``.npz`` with its checksum.

    Raises:
        OSError: the folder cannot be created or written.
    """
    arrays = cached.arrays()
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, checksum=np.array(checksum(arrays)), **arrays)


def load_or_build(kind: str, key: str, build: Callable[[], CachedArrays]) -> CachedArrays:
    """The entry for ``key`` from the cache, else ``build()``, written to the cache and returned.

    Args:
        kind: the spec kind (the entry file's prefix).
        key: from :func:`cache_key`.
        build: decodes the source (called only when no sound entry exists).

    Returns:
        The arrays, read or built.

    Raises:
        InputError: whatever ``build`` raises about the source.
    """
    path = entry_path(kind, key)
    cached = read_entry(path)
    if cached is not None:
        return cached
    cached = build()
    try:
        write_entry(path, cached)
    except OSError as err:
        print(
            f"note: could not write the data cache {path} ({err.strerror or err}); set {CACHE_ENV} to a writable folder",
            file=sys.stderr,
        )
    return cached
