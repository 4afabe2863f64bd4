"""Image datasets: a folder of PNG or JPEG images, a sub-folder per class, or a tar of one.

``--data photos`` (a folder), ``--data photos.tar.gz`` (a ``.tar``, ``.tar.gz`` or ``.tgz``,
read member by member, never unpacked; :mod:`pipeline.filetree`), or a dataset spec
(:mod:`pipeline.dataspec`) ``{"images": "photos", "split": {"test_fraction": 0.2}}`` whose only
option, ``split``, splits a tree without ``train/`` and ``test/`` folders
(:mod:`pipeline.splits`). Which file is which class, split and position:
:mod:`pipeline.image_layout`.

Examples are uint8 ``(H, W, C)``, decoded with Pillow as stored (no resizing; EXIF orientation
is not applied). Channels follow the image's mode: grey (``L``) gives C = 1, ``RGB`` C = 3,
``RGBA`` C = 4; other 8-bit modes are converted: 1-bit (``1``) to ``L`` (0 or 255); palette
(``P``) to ``RGB``, or ``RGBA`` when the palette has transparency; grey or palette with alpha
(``LA``, ``La``, ``PA``) and premultiplied ``RGBa`` to ``RGBA`` (alpha is kept, as for
``RGBA``); ``RGBX``, ``CMYK``, ``YCbCr``, ``LAB`` and ``HSV`` to ``RGB``. 16-bit images
(a 16-bit PNG, grey or colour) and 32-bit ones are refused. Every image of both splits must
have one size and one channel count.

The decoded arrays are cached (:mod:`pipeline.datacache`) under a key made of the source's
digest, the split rule, the decoder's version and :data:`FORMAT_VERSION`: the next run with the
same source and options reads the cache and decodes nothing.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import PIL
from PIL import Image, UnidentifiedImageError, features

from pipeline.datacache import CachedArrays, cache_key, load_or_build
from pipeline.dataset import Dataset
from pipeline.dataspec import DataSpec, Kind, needs_spec
from pipeline.errors import InputError, first_line
from pipeline.filetree import FileTree, open_tree
from pipeline.image_layout import plan_layout
from pipeline.splits import SplitRule, parse_split

__all__ = ["EXTENSIONS", "FORMAT_VERSION", "KIND", "decode_image", "decode_images", "decoder_version", "load_images"]

# Raise when the arrays written for the same source and options change (layout, order, modes).
FORMAT_VERSION = 1
EXTENSIONS = (".png", ".jpg", ".jpeg")
_FORMATS = ("PNG", "JPEG")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEPT = {"L", "RGB", "RGBA"}
_CONVERTED = {
    "1": "L",
    "LA": "RGBA",
    "La": "RGBA",
    "PA": "RGBA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
}
_CHANNELS = {1: "grey", 3: "RGB", 4: "RGBA"}
# Pillow's plugins raise all of these on malformed input (UnidentifiedImageError is an OSError).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)


def decoder_version() -> str:
    """The decoder's identity for cache keys: Pillow's version and its JPEG library's."""
    jpeg = features.version("libjpeg_turbo") or features.version_codec("jpg")
    return f"Pillow {PIL.__version__}, libjpeg {jpeg}"


def _mode(image: Image.Image, name: str) -> str:
    """The mode ``image`` is decoded to (see the module doc), or a refusal."""
    mode = image.mode
    if mode in _KEPT:
        return mode
    if mode == "P":
        return "RGBA" if image.has_transparency_data else "RGB"
    if mode in _CONVERTED:
        return _CONVERTED[mode]
    bits = "a 16-bit" if mode.startswith("I;16") else "a 32-bit" if mode in ("I", "F") else "an unsupported"
    raise InputError(f"{name}: {bits} image (Pillow mode {mode}); images must be 8 bits per channel, save it as such")


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode one PNG or JPEG file to uint8 ``(H, W, C)`` (modes as in the module doc).

    Args:
        data: the file's bytes.
        name: how messages name the file.

    Returns:
        The pixels, C = 1, 3 or 4.

    Raises:
        InputError: not a PNG or JPEG, corrupt or truncated, 16-bit or 32-bit.
    """
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) > 24 and data[24] == 16:
        raise InputError(f"{name}: a 16-bit PNG; images must be 8 bits per channel, save it as such")
    try:
        with Image.open(io.BytesIO(data), formats=_FORMATS) as image:
            image.load()
            mode = _mode(image, name)
            pixels = np.asarray(image if image.mode == mode else image.convert(mode), dtype=np.uint8)
    except _DECODE_ERRORS as err:
        reason = "an unknown format" if isinstance(err, UnidentifiedImageError) else first_line(err, 120)
        raise InputError(f"{name}: not a readable PNG or JPEG image ({reason}); replace or remove it") from None
    return pixels.reshape(*pixels.shape[:2], -1)


def _describe(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]} (width x height) {_CHANNELS.get(shape[2], f'{shape[2]}-channel')}"


def decode_images(paths: Sequence[str], read: Callable[[str], bytes], name: Callable[[str], str]) -> np.ndarray:
    """Decode ``paths`` in order into one uint8 ``(N, H, W, C)`` array.

    Args:
        paths: the files, as ``read`` and ``name`` take them (at least one).
        read: a file's bytes.
        name: how messages name a file.

    Returns:
        The images.

    Raises:
        InputError: an image :func:`decode_image` refuses, or one whose size or channel count
            differs from the first image's (naming both).
    """
    first = decode_image(read(paths[0]), name(paths[0]))
    out = np.empty((len(paths), *first.shape), dtype=np.uint8)
    out[0] = first
    for index in range(1, len(paths)):
        pixels = decode_image(read(paths[index]), name(paths[index]))
        if pixels.shape != first.shape:
            what = "sizes" if pixels.shape[:2] != first.shape[:2] else "channel counts"
            raise InputError(
                f"mixed image {what}: {name(paths[0])} is {_describe(first.shape)}, {name(paths[index])} is "
                f"{_describe(pixels.shape)}; every image needs one size and one mode (convert them first)"
            )
        out[index] = pixels
    return out


def _split_rule(spec: DataSpec) -> SplitRule | None:
    return parse_split(spec.options["split"], spec.option_where("split")) if "split" in spec.options else None


def _build(tree: FileTree, split: SplitRule | None, where: str) -> CachedArrays:
    """Read the tree, lay it out and decode every image (what the cache spares later runs)."""
    listing = tree.listing()
    wavs = sum(path.lower().endswith(".wav") for path in listing.others)
    if not listing.files and wavs:
        raise InputError(needs_spec("audio", tree.path, f"{wavs} .wav files and no image"))
    layout = plan_layout(listing, split, where, tree.name)
    images = decode_images((*layout.train, *layout.test), listing.read, tree.name)
    label_dtype = np.min_scalar_type(len(layout.classes) - 1)
    count = len(layout.train)
    return CachedArrays(
        images[:count],
        np.asarray(layout.train_labels, dtype=label_dtype),
        images[count:],
        np.asarray(layout.test_labels, dtype=label_dtype),
        layout.classes,
    )


def load_images(spec: DataSpec) -> Dataset:
    """Load an image dataset, from the cache when it holds it (see the module doc).

    Args:
        spec: kind ``images``; its source a folder or a tar archive; option ``split``.

    Returns:
        The :class:`~pipeline.dataset.Dataset`: uint8 ``(H, W, C)`` examples, the class names in
        ``classes``, ``sha256`` naming the spec file (if any) and the source (the archive's
        sha256, or ``FOLDER/`` -> its tree digest).

    Raises:
        InputError: a bad option, a bad layout, an undecodable or mismatched image, a corrupt
            or unsafe archive (one line each).
    """
    split = _split_rule(spec)
    tree = open_tree(spec.source, EXTENSIONS)
    options = {"split": split.describe() if split else None, "decoder": decoder_version()}
    key = cache_key(KIND.key, FORMAT_VERSION, tree.digest(), options)
    cached = load_or_build(KIND.key, key, lambda: _build(tree, split, spec.where))
    return cached.to_dataset(spec.where, spec.sha256(tree.sha256_entry()))


KIND = Kind(
    key="images",
    what="a folder (or .tar, .tar.gz, .tgz) of PNG or JPEG images, a sub-folder per class",
    load=load_images,
    optional=("split",),
)
