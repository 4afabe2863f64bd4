"""MNIST (or any dataset in the same IDX layout) as uint8 arrays.

Sources, in order: an explicit folder or ``.npz`` file (``--data``), ``$MNIST_DIR``, the
Keras cache file ``~/.keras/datasets/mnist.npz``, then ``tf.keras.datasets.mnist.load_data()``.
A folder holds the four standard IDX files (``.gz`` or raw) or a Keras-style ``mnist.npz``.
Every structural problem (missing file, wrong magic, wrong dimensions, truncation, count
mismatch, label out of range) raises :class:`~pipeline.errors.InputError` with one clear line.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.artifacts import sha256_file
from pipeline.errors import InputError

__all__ = ["IMAGE_SHAPE", "NUM_CLASSES", "IDX_FILES", "Dataset", "load_mnist", "parse_idx", "resolve_source", "portable_source"]

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801
_KERAS_CACHE = Path("~/.keras/datasets/mnist.npz")


@dataclass(frozen=True)
class Dataset:
    """Train and test splits as uint8 arrays, with where they came from.

    Attributes:
        x_train: ``(N, 28, 28)`` uint8 images.
        y_train: ``(N,)`` uint8 labels in 0..9.
        x_test: ``(M, 28, 28)`` uint8 images.
        y_test: ``(M,)`` uint8 labels in 0..9.
        source: the folder or file the data was read from.
        sha256: file name -> sha256 of the file as stored.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: dict[str, str] = field(default_factory=dict)


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise InputError(f"{path}: corrupt or truncated gzip file ({err})") from None


def parse_idx(data: bytes, *, expect_magic: int, name: str) -> np.ndarray:
    """Parse one IDX file's bytes into a uint8 array.

    Args:
        data: the uncompressed file content.
        expect_magic: ``0x803`` for image files, ``0x801`` for label files.
        name: file name used in error messages.

    Returns:
        ``(N, 28, 28)`` for images, ``(N,)`` for labels, dtype uint8.

    Raises:
        InputError: wrong magic, wrong dimensions, or a payload that does not match the header.
    """
    if len(data) < 4:
        raise InputError(f"{name}: truncated IDX file ({len(data)} bytes, no header)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expect_magic:
        raise InputError(f"{name}: bad IDX magic 0x{magic:08x}, expected 0x{expect_magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{name}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if ndim == 3 and tuple(dims[1:]) != IMAGE_SHAPE:
        raise InputError(f"{name}: images are {dims[1]}x{dims[2]}, expected 28x28 grey")
    expected = int(np.prod(dims))
    payload = len(data) - header
    if payload != expected:
        kind = "truncated" if payload < expected else "oversized"
        raise InputError(f"{name}: {kind} IDX file: header promises {expected} bytes of data, found {payload}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise InputError(f"{folder}: missing {stem}(.gz); expected the four MNIST IDX files or mnist.npz")


def _check_pair(images: np.ndarray, labels: np.ndarray, split: str) -> None:
    if images.shape[0] != labels.shape[0]:
        raise InputError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise InputError(f"{split}: label {int(labels.max())} out of range 0..{NUM_CLASSES - 1}")


def _load_idx_folder(folder: Path) -> Dataset:
    paths = {key: _find_idx(folder, stem) for key, stem in IDX_FILES.items()}
    arrays = {}
    for key, path in paths.items():
        magic = _IMAGE_MAGIC if key.endswith("images") else _LABEL_MAGIC
        arrays[key] = parse_idx(_read_maybe_gzip(path), expect_magic=magic, name=str(path))
    _check_pair(arrays["train_images"], arrays["train_labels"], "train")
    _check_pair(arrays["test_images"], arrays["test_labels"], "test")
    return Dataset(
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
        source=str(folder),
        sha256={path.name: sha256_file(path) for path in paths.values()},
    )


def _load_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as err:
        raise InputError(f"{path}: not a keras-style mnist.npz (missing {err})") from None
    except (ValueError, OSError, zlib.error, EOFError) as err:
        raise InputError(f"{path}: corrupt .npz file ({err})") from None
    for key in ("x_train", "x_test"):
        if arrays[key].ndim != 3 or arrays[key].shape[1:] != IMAGE_SHAPE or arrays[key].dtype != np.uint8:
            raise InputError(f"{path}: {key} must be uint8 (N, 28, 28), got {arrays[key].dtype} {arrays[key].shape}")
    y_train = arrays["y_train"].astype(np.uint8)
    y_test = arrays["y_test"].astype(np.uint8)
    _check_pair(arrays["x_train"], y_train, "train")
    _check_pair(arrays["x_test"], y_test, "test")
    return Dataset(arrays["x_train"], y_train, arrays["x_test"], y_test, str(path), {path.name: sha256_file(path)})


def portable_source(source: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """``source`` as a path relative to ``root`` (POSIX separators), for reports that are committed.

    A report names its dataset by the files' sha256 and this relative path, never by an absolute
    path of the machine that made it (``../shared/data/mnist`` rather than ``/home/me/...``).
    """
    return Path(os.path.relpath(Path(source).resolve(), Path(root).resolve())).as_posix()


def resolve_source(data: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the folder or ``.npz`` to read, or ``None`` to fall back to Keras' downloader.

    Raises:
        InputError: an explicit ``data`` (or ``$MNIST_DIR``) that does not exist.
    """
    for origin, value in (("--data", data), ("$MNIST_DIR", os.environ.get("MNIST_DIR") or None)):
        if value is None:
            continue
        path = Path(value).expanduser()
        if not path.exists():
            raise InputError(f"{origin} {value}: no such file or folder")
        return path
    cache = _KERAS_CACHE.expanduser()
    return cache if cache.is_file() else None


def load_mnist(data: str | os.PathLike[str] | None = None) -> Dataset:
    """Load MNIST, or any dataset in its IDX layout, as uint8 arrays.

    Args:
        data: a folder with the four IDX files (``.gz`` or raw) or ``mnist.npz``, or an
            ``.npz`` file. ``None`` tries ``$MNIST_DIR``, the Keras cache, then a download.

    Returns:
        The :class:`Dataset`.

    Raises:
        InputError: the source is missing or malformed.
    """
    path = resolve_source(data)
    if path is None:
        return _download()
    if path.is_dir():
        npz = path / "mnist.npz"
        if npz.is_file() and not any((path / f"{stem}.gz").exists() or (path / stem).exists() for stem in IDX_FILES.values()):
            return _load_npz(npz)
        return _load_idx_folder(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    raise InputError(f"{path}: expected a folder with the MNIST IDX files or an .npz file")


def _download() -> Dataset:  # pragma: no cover - needs the network
    import tensorflow as tf

    try:
        (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    except Exception as err:
        raise InputError(f"no MNIST found (pass --data DIR or set MNIST_DIR) and the download failed: {err}") from None
    cache = _KERAS_CACHE.expanduser()
    return Dataset(
        x_train, y_train.astype(np.uint8), x_test, y_test.astype(np.uint8), str(cache), {cache.name: sha256_file(cache)}
    )
