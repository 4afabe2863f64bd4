"""TFLite metadata entries: the audio front end's config travels inside every flatbuffer.

A keyword model only means something with the front end that made its features, so ``python
-m convert --data AUDIO`` writes the dataset's :class:`~pipeline.frontend.FrontendConfig` into
each flatbuffer (float, int8, LCE) as a metadata entry named :data:`FRONTEND_METADATA` whose
buffer holds the config's canonical JSON (:meth:`FrontendConfig.canonical_json`, ASCII).
TFLite, LCE and TFLite-Micro ignore metadata they do not know, so the files run unchanged.

Writing (:func:`embed_metadata`) unpacks the model with TensorFlow's generated schema module
(``ModelT``), adds the buffer and the entry, and packs it again with every buffer's data aligned
to :data:`BUFFER_ALIGNMENT` bytes: the generated ``Pack`` aligns a byte vector only to its 4-byte
length word, so a repacked model would move its weights to other alignments than the converter
chose (a Cortex-M0 faults on an unaligned word load, and vector kernels prefer 16 bytes).
Reading (:func:`read_metadata`, :func:`frontend_from_metadata`) is part of
:func:`convert.flatbuffer.read_model_bytes`; a corrupt or hostile entry is one
:class:`~pipeline.errors.InputError` line.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.frontend import FrontendConfig
from pipeline.json_input import parse_json

__all__ = [
    "FRONTEND_METADATA",
    "MAX_FRONTEND_BYTES",
    "BUFFER_ALIGNMENT",
    "embed_metadata",
    "embed_frontend",
    "read_metadata",
    "frontend_from_metadata",
]

FRONTEND_METADATA = "bnn_mcu.frontend"
"""Name of the metadata entry holding the front end config's canonical JSON."""
MAX_FRONTEND_BYTES = 4096
"""Largest front end entry read (a canonical config is under 250 bytes)."""
BUFFER_ALIGNMENT = 16
"""Alignment of every buffer's data in a written file."""
_FILE_IDENTIFIER = b"TFL3"


def _schema() -> Any:
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


class _AlignedBuffer:
    """A ``BufferT`` that packs its data at :data:`BUFFER_ALIGNMENT` (the generated ``Pack`` aligns to 1)."""

    def __init__(self, buffer: Any, schema: Any) -> None:
        self._buffer, self._schema = buffer, schema

    def Pack(self, builder: Any) -> int:  # noqa: N802  (the generated object API's method name)
        schema, buffer = self._schema, self._buffer
        data = None
        if buffer.data is not None:
            raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head : builder.head + len(raw)] = raw
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, buffer.offset)
        schema.BufferAddSize(builder, buffer.size)
        return schema.BufferEnd(builder)


def embed_metadata(data: bytes, name: str, value: bytes) -> bytes:
    """The flatbuffer ``data`` with a metadata entry ``name`` holding ``value`` (replacing one of that name).

    Args:
        data: a TFLite flatbuffer whose buffers are stored inline (what the converters write).
        name: the entry's name.
        value: the entry's bytes.

    Returns:
        The new flatbuffer: the same model, every buffer's data 16-byte aligned, the entry added.

    Raises:
        InputError: ``data`` is not a TFLite flatbuffer, or keeps its buffers outside the
            flatbuffer (offset/size), which the object API cannot repack.
    """
    import flatbuffers

    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise InputError("cannot add metadata: not a TFLite flatbuffer (missing 'TFL3' file identifier)")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as err:
        raise InputError(f"cannot add metadata: corrupt TFLite flatbuffer ({type(err).__name__}: {err})") from None
    buffers = list(model.buffers or [])
    if any(buffer.offset and buffer.offset > 1 for buffer in buffers):
        raise InputError("cannot add metadata: the flatbuffer keeps its buffers outside the file (offset/size)")
    entries = [entry for entry in (model.metadata or []) if _text(entry.name) != name]
    stored = schema.BufferT()
    stored.data = np.frombuffer(value, dtype=np.uint8)
    buffers.append(stored)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(buffers) - 1
    model.metadata = [*entries, entry]
    model.buffers = [_AlignedBuffer(buffer, schema) for buffer in buffers]
    builder = flatbuffers.Builder(len(data) + len(value) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def embed_frontend(data: bytes, config: FrontendConfig) -> bytes:
    """``data`` with :data:`FRONTEND_METADATA` holding ``config``'s canonical JSON (see :func:`embed_metadata`)."""
    return embed_metadata(data, FRONTEND_METADATA, config.canonical_json().encode("ascii"))


def read_metadata(model: Any, buffers: list[bytes | None], where: str) -> list[tuple[str, bytes]]:
    """(name, bytes) of every metadata entry of an unpacked model (``ModelT``), in file order.

    Names may repeat (TFLite's int8 converter writes ``min_runtime_version`` twice), except
    :data:`FRONTEND_METADATA`.

    Args:
        model: the unpacked model.
        buffers: the model's buffers' bytes (``None`` for an empty buffer).
        where: the file name, for messages.

    Raises:
        InputError: an entry without a name, one naming a buffer that does not exist, or two
            front end entries.
    """
    entries: list[tuple[str, bytes]] = []
    for index, entry in enumerate(model.metadata or []):
        if entry.name is None:
            raise InputError(f"{where}: metadata entry {index} has no name")
        name = _text(entry.name)
        if not 0 <= entry.buffer < len(buffers):
            raise InputError(f"{where}: metadata entry {name!r} points at buffer {entry.buffer} of {len(buffers)}")
        if name == FRONTEND_METADATA and any(seen == name for seen, _ in entries):
            raise InputError(f"{where}: two metadata entries are named {name!r}")
        entries.append((name, buffers[entry.buffer] or b""))
    return entries


def frontend_from_metadata(entries: list[tuple[str, bytes]], where: str) -> FrontendConfig | None:
    """The front end config stored under :data:`FRONTEND_METADATA`, or ``None`` when there is none.

    Args:
        entries: from :func:`read_metadata`.
        where: the file name, for messages.

    Raises:
        InputError: the entry is larger than :data:`MAX_FRONTEND_BYTES`, not UTF-8, not JSON, or
            not a valid config (:meth:`FrontendConfig.from_json`), in one line naming the file.
    """
    raw = dict(entries).get(FRONTEND_METADATA)
    if raw is None:
        return None
    prefix = f"{where}: metadata {FRONTEND_METADATA}"
    if len(raw) > MAX_FRONTEND_BYTES:
        raise InputError(f"{prefix} holds {len(raw):,} bytes, more than a front end config's {MAX_FRONTEND_BYTES:,}")
    try:
        value = parse_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{prefix} is not UTF-8 text") from None
    except ValueError as err:
        raise InputError(f"{prefix} is not JSON ({type(err).__name__}: {str(err)[:120]})") from None
    try:
        return FrontendConfig.from_json(value)
    except InputError as err:
        raise InputError(f"{prefix}: {err}") from None
    except (TypeError, ValueError, OverflowError) as err:
        raise InputError(f"{prefix}: not a valid front end config ({type(err).__name__}: {str(err)[:120]})") from None
