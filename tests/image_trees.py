"""Image trees for the dataset tests, written by the tests themselves (never the real CIFAR-10).

PNG and JPEG bytes, grey and colour, of an odd size (13x7); folders and tar files of them in a
sub-folder per class; spec files. (The tests' cache folder is conftest's ``data_cache``.)
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import InputError

__all__ = [
    "W",
    "H",
    "pixels",
    "encode",
    "encode_back",
    "write_tree",
    "write_tar",
    "split_tree",
    "class_tree",
    "write_spec",
    "ident_of",
    "one_line",
    "png",
    "png16",
    "minimal_tree",
]

W, H = 13, 7  # an odd size: 13 wide, 7 high


def pixels(ident: int, channels: int = 1, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """A uint8 (H, W, C) image that carries ``ident`` in its first pixel (PNG keeps it exactly)."""
    rng = np.random.default_rng(ident)
    image = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    image[0, 0, 0] = ident
    return image


def encode(image: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    """``image`` (H, W, C) as PNG or JPEG bytes, optionally converted to Pillow ``mode`` first."""
    pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    if mode is not None:
        pil = pil.convert(mode)
    buffer = io.BytesIO()
    pil.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def write_tree(root: Path, files: dict[str, bytes], folders: tuple[str, ...] = ()) -> Path:
    """Write ``files`` (relative path -> bytes) and empty ``folders`` under ``root``."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for rel in folders:
        (root / rel).mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_tar(path: Path, files: dict[str, bytes], folders: tuple[str, ...] = ()) -> Path:
    """A tar (gzip for ``.gz``/``.tgz``) holding ``folders`` and ``files``, in that order."""
    mode = "w:gz" if path.name.endswith((".gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as tar:
        for rel in folders:
            info = tarfile.TarInfo(rel)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def split_tree(channels: int = 1, fmt: str = "PNG", per_class: tuple[int, int] = (6, 3), top: str = "") -> dict[str, bytes]:
    """``[top/]train/CLASS/NN.ext`` and ``[top/]test/CLASS/NN.ext`` for classes cat, dog, ant (ids unique)."""
    ext = "png" if fmt == "PNG" else "jpg"
    files = {}
    ident = 1
    for split, count in zip(("train", "test"), per_class, strict=True):
        for cls in ("cat", "dog", "ant"):
            for index in range(count):
                files[f"{top}{split}/{cls}/{index:02d}.{ext}"] = encode(pixels(ident, channels), fmt)
                ident += 1
    return files


def ident_of(image: np.ndarray) -> int:
    return int(image[0, 0, 0])


def one_line(excinfo: pytest.ExceptionInfo[InputError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and text
    return text


def encode_back(data: bytes) -> np.ndarray:
    image = np.asarray(Image.open(io.BytesIO(data)))
    return image.reshape(*image.shape[:2], -1)


def png16(width: int, height: int, colour: bool) -> bytes:
    """A 16-bit PNG (grey or RGB), written chunk by chunk (Pillow reads RGB ones as 8-bit silently)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes(width * (6 if colour else 2))
    header = struct.pack(">IIBBBBB", width, height, 16, 2 if colour else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b"")


def class_tree(count: int, channels: int = 1, classes: tuple[str, ...] = ("cat", "dog")) -> dict[str, bytes]:
    """``CLASS/NNN.png`` for ``classes``, ``count`` images each, unique ids."""
    return {
        f"{cls}/{index:03d}.png": encode(pixels(1 + c * count + index, channels))
        for c, cls in enumerate(classes)
        for index in range(count)
    }


def write_spec(path: Path, spec: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return path


def png(ident: int = 1, channels: int = 1, size: tuple[int, int] = (W, H)) -> bytes:
    return encode(pixels(ident, channels, size))


def minimal_tree(**extra: bytes) -> dict[str, bytes]:
    """train/a, train/b, test/a, test/b: one grey 13x7 PNG each."""
    names = [f"{split}/{cls}/0.png" for split in ("train", "test") for cls in "ab"]
    files = {name: png(ident) for ident, name in enumerate(names)}
    files.update(extra)
    return files
