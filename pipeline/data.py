"""Datasets as arrays: MNIST's IDX layout, an ``.npz`` of any shape, image folders, spec files.

Sources, in order: an explicit ``--data`` source, ``$MNIST_DIR``, the Keras cache file
``~/.keras/datasets/mnist.npz``, then ``tf.keras.datasets.mnist.load_data()``. A source is

* a folder with the four standard IDX files (``.gz`` or raw; 28x28 grey images, labels 0..9)
  or a Keras-style ``mnist.npz``;
* an ``.npz`` file: ``x_test`` and ``y_test`` (and optionally ``x_train`` and ``y_train``, for
  training and for convert's int8 calibration): examples of ANY shape ``(N, ...)`` as uint8 or
  float32 (float16 and float64 are converted to float32; other dtypes are refused), integer
  labels ``(N,)`` (or ``(N, 1)``), and optionally ``num_classes`` (a scalar; else the largest
  label + 1 over both splits);
* a folder of images in a sub-folder per class (a folder without IDX files or ``mnist.npz``
  that has sub-folders), or a ``.tar``, ``.tar.gz`` or ``.tgz`` of one: :mod:`pipeline.images`,
  decoded once into a cache (:mod:`pipeline.datacache`);
* a ``.json`` dataset spec naming a source and its options: :mod:`pipeline.dataspec`; audio
  (a folder or tar of WAV files, :mod:`pipeline.audio`) needs one, for its sample rate: a bare
  folder or tar of WAV files is refused with one line showing the minimal spec.

The :class:`~pipeline.dataset.Dataset` records the example shape, dtype and class count, which
``convert`` and the emulator check every model against.

Every structural problem (missing file or key, wrong magic, wrong dimensions, truncation, a
count or shape mismatch, labels out of range, an empty test set, a corrupt archive) raises
:class:`~pipeline.errors.InputError` with one clear line.

Headers are read before data: the four IDX headers, or every ``.npy`` header of an ``.npz``,
must agree (as many labels as examples) and declare at most
:data:`~pipeline.limits.MAX_DATASET_BYTES` in all before any array is allocated, and each file
is then read for exactly what its header declares (a gzip is never decompressed further, an
``.npz`` member must hold exactly its header's bytes).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np

from pipeline.artifacts import sha256_file
from pipeline.dataset import DEFAULT_NUM_CLASSES, DTYPES, Dataset, format_shape
from pipeline.errors import InputError, printable
from pipeline.limits import MAX_DATASET_BYTES, MAX_NPY_HEADER_BYTES, describe_bytes

__all__ = [
    "IDX_IMAGE_SHAPE",
    "IDX_NUM_CLASSES",
    "IDX_FILES",
    "DTYPES",
    "Dataset",
    "load_dataset",
    "load_mnist",
    "parse_idx",
    "read_idx_header",
    "read_idx_data",
    "resolve_source",
    "portable_source",
    "format_shape",
]

# The IDX layout (MNIST and any dataset written like it): 28x28 grey images, labels 0..9.
IDX_IMAGE_SHAPE = (28, 28)
IDX_NUM_CLASSES = DEFAULT_NUM_CLASSES
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_CONVERTED = {np.dtype(np.float16): np.dtype(np.float32), np.dtype(np.float64): np.dtype(np.float32)}
_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801
_KERAS_CACHE = Path("~/.keras/datasets/mnist.npz")


_READ_CHUNK = 1 << 20
_T = TypeVar("_T")


def _open_idx(path: Path) -> BinaryIO:
    """``path`` opened for reading, through gzip when it ends in ``.gz`` (decompressed only as read)."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _reading(path: Path, read: Callable[[], _T]) -> _T:
    """``read()``, with a corrupt or truncated gzip stream as one line naming ``path``."""
    try:
        return read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise InputError(f"{path}: corrupt or truncated gzip file ({err})") from None


def _read_upto(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end of the stream."""
    parts, left = [], size
    while left > 0:
        part = stream.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_idx_header(stream: BinaryIO, *, expect_magic: int, name: str) -> tuple[int, ...]:
    """Read one IDX header from ``stream`` and return the dimensions it declares (nothing more is read).

    Args:
        stream: the file's uncompressed bytes, at its start.
        expect_magic: ``0x803`` for image files, ``0x801`` for label files.
        name: file name used in error messages.

    Raises:
        InputError: wrong magic, a truncated header, or images other than 28x28.
    """
    head = _read_upto(stream, 4)
    if len(head) < 4:
        raise InputError(f"{name}: truncated IDX file ({len(head)} bytes, no header)")
    (magic,) = struct.unpack(">I", head)
    if magic != expect_magic:
        raise InputError(f"{name}: bad IDX magic 0x{magic:08x}, expected 0x{expect_magic:08x}")
    ndim = magic & 0xFF
    rest = _read_upto(stream, 4 * ndim)
    if len(rest) < 4 * ndim:
        raise InputError(f"{name}: truncated IDX header ({4 + len(rest)} bytes, need {4 + 4 * ndim})")
    dims = struct.unpack(f">{ndim}I", rest)
    if ndim == 3 and tuple(dims[1:]) != IDX_IMAGE_SHAPE:
        raise InputError(
            f"{name}: images are {dims[1]}x{dims[2]}, expected 28x28 grey (the IDX layout); "
            "write other shapes as an .npz (x_test, y_test)"
        )
    return dims


def read_idx_data(stream: BinaryIO, dims: tuple[int, ...], *, name: str) -> np.ndarray:
    """Read exactly the ``prod(dims)`` bytes a header declared, then check that nothing follows.

    At most one byte past the declared data is read (a gzip is not decompressed further).

    Returns:
        The uint8 array, shaped ``dims``.

    Raises:
        InputError: fewer bytes than declared (truncated) or more (oversized).
    """
    expected = math.prod(dims)
    values = np.empty(expected, dtype=np.uint8)
    view, filled = memoryview(values), 0
    while filled < expected:
        count = stream.readinto(view[filled : filled + _READ_CHUNK])
        if not count:
            raise InputError(f"{name}: truncated IDX file: header promises {expected} bytes of data, found {filled}")
        filled += count
    if stream.read(1):
        raise InputError(f"{name}: oversized IDX file: header promises {expected} bytes of data, found more")
    return values.reshape(dims)


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
    stream = io.BytesIO(data)
    return read_idx_data(stream, read_idx_header(stream, expect_magic=expect_magic, name=name), name=name)


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{folder}: missing {stem}(.gz); expected the four MNIST IDX files, mnist.npz, or images in a sub-folder per class"
    )


def _check_pair(
    images: np.ndarray, labels: np.ndarray, split: str, num_classes: int = IDX_NUM_CLASSES, noun: str = "images"
) -> None:
    if images.shape[0] != labels.shape[0]:
        raise InputError(f"{split}: {images.shape[0]} {noun} but {labels.shape[0]} labels")
    if labels.size and int(labels.max()) >= num_classes:
        raise InputError(f"{split}: label {int(labels.max())} out of range 0..{num_classes - 1}")


def _check_not_empty(source: Path, count: int) -> None:
    if count == 0:
        raise InputError(f"{source}: the test set is empty (0 examples); nothing to check or measure")


def _load_idx_folder(folder: Path) -> Dataset:
    """The four IDX files: every header read and checked against the others and the limit, then the data."""
    paths = {key: _find_idx(folder, stem) for key, stem in IDX_FILES.items()}
    with contextlib.ExitStack() as stack:
        streams = {key: stack.enter_context(_open_idx(path)) for key, path in paths.items()}
        dims = {
            key: _reading(
                path,
                lambda key=key, path=path: read_idx_header(
                    streams[key], expect_magic=_IMAGE_MAGIC if key.endswith("images") else _LABEL_MAGIC, name=str(path)
                ),
            )
            for key, path in paths.items()
        }
        declared = {key: math.prod(shape) for key, shape in dims.items()}
        total = sum(declared.values())
        if total > MAX_DATASET_BYTES:
            largest = max(declared, key=lambda key: declared[key])
            raise InputError(
                f"{paths[largest]}: its header declares {format_shape(dims[largest])} uint8, the four IDX files "
                f"{describe_bytes(total)} in all: over the {describe_bytes(MAX_DATASET_BYTES)} a dataset may hold"
            )
        for split in ("train", "test"):
            images, labels = dims[f"{split}_images"][0], dims[f"{split}_labels"][0]
            if images != labels:
                raise InputError(
                    f"{folder}: {split}: {images} images but {labels} labels "
                    f"(the headers of {paths[f'{split}_images'].name} and {paths[f'{split}_labels'].name})"
                )
        arrays = {
            key: _reading(path, lambda key=key, path=path: read_idx_data(streams[key], dims[key], name=str(path)))
            for key, path in paths.items()
        }
    _check_pair(arrays["train_images"], arrays["train_labels"], "train")
    _check_pair(arrays["test_images"], arrays["test_labels"], "test")
    _check_not_empty(folder, len(arrays["test_images"]))
    return Dataset(
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
        source=str(folder),
        sha256={path.name: sha256_file(path) for path in paths.values()},
    )


_NPZ_KEYS = ("x_test", "y_test", "x_train", "y_train", "num_classes")
_NPY_MAGIC = b"\x93NUMPY"
_NPY_LENGTH_FIELDS = {(1, 0): "<H", (2, 0): "<I"}
# What zipfile, zlib and numpy raise for a damaged member (an encrypted one: RuntimeError; an
# unknown compression method: NotImplementedError).
_NPZ_ERRORS = (ValueError, OSError, EOFError, KeyError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class _NpyMember:
    """What one ``.npy`` member of an ``.npz`` declares in its header."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    header_bytes: int

    @property
    def nbytes(self) -> int:
        """The bytes of data the header promises (and loading allocates)."""
        return math.prod(self.shape) * self.dtype.itemsize


def _read_npy_header(path: Path, key: str, member: BinaryIO, info: zipfile.ZipInfo) -> _NpyMember:
    """The header of one ``.npy`` member, its length checked before it is read."""
    version = np.lib.format.read_magic(member)
    if version not in _NPY_LENGTH_FIELDS:
        raise InputError(f"{path}: {key} is an .npy of version {version[0]}.{version[1]}; expected 1.0 or 2.0")
    field = _read_upto(member, struct.calcsize(_NPY_LENGTH_FIELDS[version]))
    if len(field) < struct.calcsize(_NPY_LENGTH_FIELDS[version]):
        raise ValueError(f"{key}: truncated .npy header")
    (length,) = struct.unpack(_NPY_LENGTH_FIELDS[version], field)
    if length > MAX_NPY_HEADER_BYTES:
        raise InputError(f"{path}: {key}'s .npy header declares {length:,} bytes, over the {MAX_NPY_HEADER_BYTES:,} numpy reads")
    header = io.BytesIO(field + _read_upto(member, length))
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(header, max_header_size=MAX_NPY_HEADER_BYTES)
    if any(d < 0 for d in shape):
        raise InputError(f"{path}: {key} declares shape {shape}, with a negative dimension")
    return _NpyMember(info, tuple(shape), dtype, len(_NPY_MAGIC) + 2 + len(field) + length)


def _example_layout(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse examples that are not ``(N, ...)`` uint8 or float (float16/float64 become float32)."""
    if len(shape) < 2:
        raise InputError(f"{path}: {key} must be (N, ...) with one example per row, got shape {shape}")
    if any(d == 0 for d in shape[1:]):
        raise InputError(f"{path}: {key} has empty examples (shape {shape})")
    if _CONVERTED.get(dtype, dtype) not in DTYPES:
        raise InputError(
            f"{path}: {key} has dtype {dtype}; expected uint8 (raw 8-bit values) or float32 (float16 and float64 are converted)"
        )


def _label_layout(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse labels that are not integers ``(N,)`` or ``(N, 1)``."""
    if len(shape) != 1 and shape[1:] != (1,):
        raise InputError(f"{path}: {key} must be (N,) integer labels, got shape {shape}")
    if not np.issubdtype(dtype, np.integer):
        raise InputError(f"{path}: {key} must hold integer class labels, got dtype {dtype}")


def _check_npz_headers(path: Path, members: dict[str, _NpyMember]) -> None:
    """Everything the headers say, checked before any array is read: layouts, sizes, counts, stored bytes."""
    for key, member in members.items():
        if key.startswith("x_"):
            _example_layout(path, key, member.shape, member.dtype)
        elif key.startswith("y_"):
            _label_layout(path, key, member.shape, member.dtype)
        elif math.prod(member.shape) != 1 or not np.issubdtype(member.dtype, np.integer):
            raise InputError(f"{path}: num_classes must be one integer >= 1, got {member.dtype} of shape {member.shape}")
    total = sum(member.nbytes for member in members.values())
    if total > MAX_DATASET_BYTES:
        key, member = max(members.items(), key=lambda item: item[1].nbytes)
        raise InputError(
            f"{path}: {key} declares shape {member.shape} {member.dtype}, the arrays {describe_bytes(total)} in all: "
            f"over the {describe_bytes(MAX_DATASET_BYTES)} a dataset may hold"
        )
    for split in ("train", "test"):
        if f"x_{split}" in members:
            examples, labels = members[f"x_{split}"].shape[0], members[f"y_{split}"].shape[0]
            if examples != labels:
                raise InputError(f"{path}: {split}: {examples} examples but {labels} labels (as their .npy headers declare)")
    for member in members.values():
        stored = member.info.file_size - member.header_bytes
        if stored != member.nbytes:
            kind = "truncated" if stored < member.nbytes else "oversized"
            raise InputError(
                f"{path}: {kind} member {printable(member.info.filename)}: its header declares {member.nbytes:,} bytes of data, "
                f"the archive holds {stored:,}"
            )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` dataset (no pickled objects), or one line saying why not.

    Only ``x_test``, ``y_test``, ``x_train``, ``y_train`` and ``num_classes`` are read. Every
    member's ``.npy`` header is read and checked first (:func:`_check_npz_headers`), then each
    array is read for exactly the bytes its header declares.
    """
    try:
        if not zipfile.is_zipfile(path):
            with path.open("rb") as handle:
                if handle.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                    raise InputError(f"{path}: a single .npy array, not an .npz archive with x_test and y_test")
            raise InputError(f"{path}: not a readable .npz archive (not a zip file)")
        archive = zipfile.ZipFile(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise InputError(f"{path}: not a readable .npz archive ({_reason(err)})") from None
    with archive:
        names = {name[:-4] if name.endswith(".npy") else name: name for name in archive.namelist()}
        missing = [key for key in ("x_test", "y_test") if key not in names]
        if missing:
            found = ", ".join(printable(name) for name in sorted(names)) or "nothing"
            raise InputError(
                f"{path}: missing {' and '.join(missing)} (an .npz dataset holds x_test, y_test[, x_train, y_train]; "
                f"found {found})"
            )
        if ("x_train" in names) != ("y_train" in names):
            alone = "x_train" if "x_train" in names else "y_train"
            raise InputError(f"{path}: has {alone} without its pair; give both or neither")
        try:
            members = {}
            for key in (key for key in _NPZ_KEYS if key in names):
                if not names[key].endswith(".npy"):
                    raise InputError(f"{path}: member {printable(names[key])} is not an .npy array ({key}.npy)")
                info = archive.getinfo(names[key])
                with archive.open(info) as member:
                    members[key] = _read_npy_header(path, key, member, info)
            _check_npz_headers(path, members)
            arrays = {}
            for key, member in members.items():
                with archive.open(member.info) as stream:
                    arrays[key] = np.lib.format.read_array(stream, allow_pickle=False, max_header_size=MAX_NPY_HEADER_BYTES)
            return arrays
        except _NPZ_ERRORS as err:
            raise InputError(f"{path}: corrupt .npz file ({_reason(err)})") from None


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _examples(path: Path, key: str, values: np.ndarray) -> np.ndarray:
    """``values`` as uint8 or float32 examples ``(N, ...)``, checked."""
    _example_layout(path, key, values.shape, values.dtype)
    dtype = _CONVERTED.get(values.dtype, values.dtype)
    if values.dtype.kind == "f" and values.size:
        # Checked in the stored dtype, before the cast (min and max: no copy of the array): a
        # float64 beyond float32's range would otherwise become inf with numpy's two-line warning.
        low, high = float(values.min()), float(values.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise InputError(f"{path}: {key} holds NaN or infinite values")
        largest = max(-low, high)
        if largest > float(np.finfo(np.float32).max):
            raise InputError(
                f"{path}: {key} holds values beyond float32's range (magnitude up to {largest:.3g}, float32 holds "
                f"{float(np.finfo(np.float32).max):.3g}); the models take float32"
            )
    with np.errstate(over="ignore", invalid="ignore"):  # nothing left to overflow: checked above
        values = np.ascontiguousarray(values, dtype=dtype)
    return values


def _labels(path: Path, key: str, values: np.ndarray) -> np.ndarray:
    """Integer labels ``(N,)`` (``(N, 1)`` is flattened), checked non-negative."""
    _label_layout(path, key, values.shape, values.dtype)
    values = values.reshape(-1)
    if values.size and int(values.min()) < 0:
        raise InputError(f"{path}: {key} has a negative label ({int(values.min())}); labels are 0..num_classes-1")
    return values.astype(np.int64)


def _num_classes(path: Path, arrays: dict[str, np.ndarray], labels: list[np.ndarray]) -> int:
    """The ``num_classes`` entry, or the largest label + 1."""
    largest = max((int(y.max()) for y in labels if y.size), default=0)
    if "num_classes" not in arrays:
        return largest + 1
    entry = arrays["num_classes"]
    if entry.size != 1 or not np.issubdtype(entry.dtype, np.integer) or int(entry.reshape(-1)[0]) < 1:
        raise InputError(f"{path}: num_classes must be one integer >= 1, got {entry.dtype} {entry.reshape(-1)[:3].tolist()}")
    return int(entry.reshape(-1)[0])


def _load_npz(path: Path) -> Dataset:
    arrays = _read_npz(path)
    x_test = _examples(path, "x_test", arrays["x_test"])
    y_test = _labels(path, "y_test", arrays["y_test"])
    if "x_train" in arrays:
        x_train = _examples(path, "x_train", arrays["x_train"])
        y_train = _labels(path, "y_train", arrays["y_train"])
        if x_train.shape[1:] != x_test.shape[1:] or x_train.dtype != x_test.dtype:
            raise InputError(
                f"{path}: x_train examples are {x_train.dtype} {format_shape(x_train.shape[1:])} but x_test's are "
                f"{x_test.dtype} {format_shape(x_test.shape[1:])}; both splits need the same shape and dtype"
            )
    else:
        x_train = np.zeros((0, *x_test.shape[1:]), dtype=x_test.dtype)
        y_train = np.zeros(0, dtype=np.int64)
    num_classes = _num_classes(path, arrays, [y_train, y_test])
    _check_pair(x_train, y_train, f"{path}: train", num_classes, "examples")
    _check_pair(x_test, y_test, f"{path}: test", num_classes, "examples")
    _check_not_empty(path, len(x_test))
    dtype = np.min_scalar_type(num_classes - 1)
    return Dataset(
        x_train, y_train.astype(dtype), x_test, y_test.astype(dtype), str(path), {path.name: sha256_file(path)}, num_classes
    )


def portable_source(source: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """``source`` as a path relative to ``root`` (POSIX separators), for reports that are committed.

    A report names its dataset by the files' sha256 and this relative path, never by an absolute
    path of the machine that made it (``../shared/data/mnist`` rather than ``/home/me/...``).
    """
    return Path(os.path.relpath(Path(source).resolve(), Path(root).resolve())).as_posix()


def resolve_source(data: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the folder or file to read, or ``None`` to fall back to Keras' downloader.

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


def _holds_folders(folder: Path) -> bool:
    """Whether ``folder`` has a sub-folder (not hidden): an image tree does, an IDX folder need not."""
    return any(child.is_dir() and not child.name.startswith(".") for child in folder.iterdir())


def load_dataset(data: str | os.PathLike[str] | None = None) -> Dataset:
    """Load a dataset from any ``--data`` source (see the module doc).

    Args:
        data: a folder with the four IDX files (``.gz`` or raw) or ``mnist.npz``; an ``.npz``
            file; an image folder (a sub-folder per class) or a ``.tar``/``.tar.gz``/``.tgz``
            of one; or a ``.json`` dataset spec. ``None`` tries ``$MNIST_DIR``, the Keras
            cache, then a download.

    Returns:
        The :class:`Dataset` (its ``example_shape``, ``dtype`` and ``num_classes`` say what
        a model must take and return).

    Raises:
        InputError: the source is missing or malformed, or its test set is empty.
    """
    from pipeline.dataspec import load_source, load_spec
    from pipeline.filetree import is_archive

    path = resolve_source(data)
    if path is None:
        return _download()
    if path.is_dir():
        idx = any((path / f"{stem}.gz").exists() or (path / stem).exists() for stem in IDX_FILES.values())
        if not idx and (path / "mnist.npz").is_file():
            return _load_npz(path / "mnist.npz")
        if not idx and _holds_folders(path):
            return load_source("images", path)
        if not idx and any(child.suffix.lower() == ".wav" for child in path.iterdir()):
            return load_source("audio", path)  # refused: audio needs a spec (its sample rate)
        return _load_idx_folder(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    if path.suffix.lower() == ".json":
        return load_spec(path)
    if is_archive(path):
        return load_source("images", path)
    raise InputError(
        f"{path}: expected a folder (MNIST IDX files, or images in a folder per class), an .npz, "
        "a .tar/.tar.gz/.tgz of image folders or a .json dataset spec (which audio needs)"
    )


# The loader's first name, from when it read MNIST only (train and tools still call it so).
load_mnist = load_dataset


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
