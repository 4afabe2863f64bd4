"""Dataset spec files (``--data FILE.json``): the one place for a dataset's loading options.

Every stage takes a single ``--data`` argument. A bare folder or file there is read with its
kind's defaults; a ``.json`` spec names the source and its options::

    {"images": "photos", "split": {"test_fraction": 0.2}}

The format, strictly checked (each problem is one :class:`~pipeline.errors.InputError` line):

* a JSON object with exactly one *kind key*, which names the kind of source and its path:
  ``"images"`` (:mod:`pipeline.images`: a folder or ``.tar``/``.tar.gz``/``.tgz`` of PNG or
  JPEG images, a sub-folder per class) or ``"audio"`` (:mod:`pipeline.audio`: a folder or tar
  of WAV files, labelled by folder or by file name, turned into the audio front end's features);
* the object's other keys are that kind's options: each kind lists the keys it requires and the
  keys it takes, and any other key is refused naming it and the valid ones (a typo never passes
  silently); objects inside options are checked the same way (:func:`check_keys`);
* paths are relative to the spec file's folder (or absolute; ``~`` is expanded);
* every spec may hold a ``"comment"`` string (JSON has no comments: where the data comes from,
  its licence and attribution), which nothing reads.

Adding a kind: write a module that defines ``KIND = Kind(key="sounds", what=..., load=...,
required=(...), optional=(...), example={...})``, whose ``load(spec: DataSpec) -> Dataset``
validates ``spec.options`` first (with :func:`check_keys`, :func:`pipeline.splits.parse_split`),
reads ``spec.source`` and caches what it decodes (:mod:`pipeline.datacache`); then add
``"sounds": "pipeline.sounds"`` to :data:`KIND_MODULES`. The module is imported only when a
spec names its kind. A kind with required options cannot be read from a bare ``--data`` path:
:func:`load_source` refuses it with the minimal spec (:func:`needs_spec`).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import InputError
from pipeline.json_input import JSONDepthError, parse_json

if TYPE_CHECKING:
    from pipeline.dataset import Dataset

__all__ = [
    "COMMENT_KEY",
    "KIND_MODULES",
    "DataSpec",
    "Kind",
    "check_keys",
    "get_kind",
    "parse_spec",
    "read_spec",
    "load",
    "load_spec",
    "load_source",
    "needs_spec",
]

# A key every spec may hold: free text for people (the data's origin, licence, attribution).
COMMENT_KEY = "comment"
# Kind key -> the module that defines its ``KIND`` (imported when a spec names the kind).
KIND_MODULES: dict[str, str] = {"audio": "pipeline.audio", "images": "pipeline.images"}


@dataclass(frozen=True)
class DataSpec:
    """A dataset source and its options, from a spec file or a bare ``--data`` path.

    Attributes:
        kind: the kind key (``"images"``).
        source: the source's path, resolved against the spec file's folder.
        options: the spec's other keys with their JSON values, key names already checked
            against the kind's; the kind's loader checks the values.
        file: the spec file, or ``None`` when ``--data`` named the source itself.
    """

    kind: str
    source: Path
    options: Mapping[str, Any] = field(default_factory=dict)
    file: Path | None = None

    @property
    def where(self) -> str:
        """What messages name: the spec file, else the source."""
        return str(self.file if self.file is not None else self.source)

    def option_where(self, key: str) -> str:
        """What messages about option ``key`` name (``SPEC.json: split``)."""
        return f"{self.where}: {key}"

    def sha256(self, source_entry: Mapping[str, str]) -> dict[str, str]:
        """What ``Dataset.sha256`` records: the spec file's sha256 (when there is one), then the source's entry."""
        from pipeline.artifacts import sha256_file

        recorded = {self.file.name: sha256_file(self.file)} if self.file is not None else {}
        recorded.update(source_entry)
        return recorded


@dataclass(frozen=True)
class Kind:
    """A kind of dataset source: its spec key, its options and its loader.

    Attributes:
        key: the kind key of a spec, whose value is the source's path (``"images"``).
        what: what the source is, for messages (``"a folder or .tar of images, a sub-folder per class"``).
        load: reads ``spec`` into a :class:`~pipeline.dataset.Dataset`; raises
            :class:`~pipeline.errors.InputError` with one line on bad options or data.
        required: option keys a spec of this kind must have.
        optional: option keys it may have.
        example: the options of a minimal spec, which messages show (``{"sample_rate": 16000}``).
        hint: what messages add about those options (where their values come from).
    """

    key: str
    what: str
    load: Callable[[DataSpec], Dataset]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    example: Mapping[str, Any] = field(default_factory=dict)
    hint: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key a spec of this kind may hold, the kind key first."""
        return (self.key, *self.required, *self.optional)


def _names(keys: Sequence[str]) -> str:
    return ", ".join(repr(key) for key in keys)


def check_keys(obj: Mapping[str, Any], where: str, *, required: Sequence[str] = (), optional: Sequence[str] = ()) -> None:
    """Refuse a JSON object with an unknown key or without a required one.

    Args:
        obj: the parsed object.
        where: what messages name (``SPEC.json``, ``SPEC.json: split``).
        required: keys it must have.
        optional: keys it may have.

    Raises:
        InputError: one line naming the first unknown (or missing) key and the valid ones.
    """
    valid = [*required, *optional]
    for key in obj:
        if key not in valid:
            raise InputError(f"{where}: unknown key {key!r}; valid keys: {_names(valid)}")
    missing = [key for key in required if key not in obj]
    if missing:
        raise InputError(f"{where}: missing key {missing[0]!r}; required: {_names(required)}")


def get_kind(key: str) -> Kind:
    """The :class:`Kind` registered under ``key`` in :data:`KIND_MODULES` (its module imported now).

    Raises:
        InputError: no such kind.
    """
    if key not in KIND_MODULES:
        raise InputError(f"unknown dataset kind {key!r}; known kinds: {_names(sorted(KIND_MODULES))}")
    kind = importlib.import_module(KIND_MODULES[key]).KIND
    if kind.key != key:  # pragma: no cover - a registration mistake, not user input
        raise RuntimeError(f"{KIND_MODULES[key]}.KIND has key {kind.key!r}, registered as {key!r}")
    return kind


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise InputError(f"key {key!r} appears twice")
        obj[key] = value
    return obj


def parse_spec(obj: Any, base: Path, where: str, file: Path | None = None) -> DataSpec:
    """Check a parsed spec object and resolve its source path.

    Args:
        obj: the JSON value.
        base: the folder relative source paths start from (the spec file's).
        where: what messages name (the spec file).
        file: the spec file, recorded in the result.

    Returns:
        The :class:`DataSpec` (options' key names checked, values not yet).

    Raises:
        InputError: not an object; no kind key or two; an unknown or missing key; a source that
            is not a non-empty string or does not exist.
    """
    if not isinstance(obj, Mapping):
        raise InputError(f'{where}: a dataset spec is a JSON object such as {{"images": "photos"}}, got {type(obj).__name__}')
    named = [key for key in obj if key in KIND_MODULES]
    if len(named) != 1:
        found = f"both {_names(named)}" if named else f"found {_names(list(obj)) or 'nothing'}"
        raise InputError(
            f"{where}: a dataset spec names exactly one source kind as a key, one of {_names(sorted(KIND_MODULES))}; {found}"
        )
    kind = get_kind(named[0])
    check_keys(obj, where, required=(kind.key, *kind.required), optional=(*kind.optional, COMMENT_KEY))
    if not isinstance(obj.get(COMMENT_KEY, ""), str):
        raise InputError(f"{where}: {COMMENT_KEY} must be a string (free text), got {obj[COMMENT_KEY]!r}")
    value = obj[kind.key]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {kind.key} must be the path of {kind.what} (a non-empty string), got {value!r}")
    source = Path(os.path.expanduser(value))
    source = source if source.is_absolute() else base / source
    if not source.exists():
        raise InputError(f"{where}: {kind.key} {value!r}: no such file or folder ({source})")
    options = {key: obj[key] for key in obj if key not in (kind.key, COMMENT_KEY)}
    return DataSpec(kind.key, source, options, file)


def read_spec(path: str | os.PathLike[str]) -> DataSpec:
    """Read and check a spec file (see the module doc).

    Raises:
        InputError: the file is unreadable or not JSON, or :func:`parse_spec` refuses it.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the dataset spec ({err})") from None
    try:
        obj = parse_json(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except (InputError, JSONDepthError) as err:
        raise InputError(f"{path}: {err}") from None
    return parse_spec(obj, path.parent, str(path), path)


def load(spec: DataSpec) -> Dataset:
    """Load ``spec`` with its kind's loader.

    Raises:
        InputError: bad options or data (one line).
    """
    return get_kind(spec.kind).load(spec)


def load_spec(path: str | os.PathLike[str]) -> Dataset:
    """Read the spec file at ``path`` and load its dataset (:func:`read_spec`, then :func:`load`)."""
    return load(read_spec(path))


def needs_spec(key: str, path: str | os.PathLike[str], found: str = "") -> str:
    """The one-line message for a source of kind ``key`` that only a spec file can describe.

    Args:
        key: the kind key (``"audio"``).
        path: the source.
        found: what the source was found to hold, when that is how the kind was recognised
            (``"3000 .wav files and no image"``).

    Returns:
        ``PATH: [FOUND; ]WHAT needs a dataset spec file with REQUIRED: --data FILE.json holding {...}
        (...; HINT)``, the JSON a minimal spec (the kind's :attr:`Kind.example` options).
    """
    kind = get_kind(key)
    example = json.dumps({key: Path(path).name or str(path), **kind.example})
    required = f" with {_names(kind.required)}" if kind.required else ""
    hint = f"; {kind.hint}" if kind.hint else ""
    return (
        f"{path}: {found + '; ' if found else ''}{kind.what} needs a dataset spec file{required}: "
        f"--data FILE.json holding {example} (paths relative to the spec file's folder{hint})"
    )


def load_source(key: str, path: str | os.PathLike[str]) -> Dataset:
    """Load a source named directly by ``--data`` (no spec file) as kind ``key`` with default options.

    Raises:
        InputError: the kind needs options only a spec file gives (:func:`needs_spec`), or the data is bad.
    """
    kind = get_kind(key)
    if kind.required:
        raise InputError(needs_spec(key, path))
    return kind.load(DataSpec(key, Path(path)))
