"""The Jinja environment every engine renders with, and the small filters C emission needs.

Templates live in ``firmware_gen/templates/`` and hold layout only; the Python that calls
:func:`render` computes every value. Jinja runs with ``StrictUndefined`` (a missing variable is
an error, never an empty string) and keeps the final newline, so output is byte-stable.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from pipeline.artifacts import TOOL_VERSION

__all__ = [
    "TEMPLATE_DIR",
    "MAX_IDENTIFIER",
    "MAX_COMMENT",
    "SafeNames",
    "safe_names",
    "environment",
    "render",
    "hex_lines",
    "c_identifier",
    "comment_text",
    "markdown_text",
    "markdown_comment",
    "banner_context",
    "round_up",
]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def hex_lines(data: bytes | Iterable[int], per_line: int = 12, indent: str = "  ") -> str:
    """Format bytes as C initializer lines: ``0x1c, 0x00, ...`` with ``per_line`` per line.

    Every line but the last ends with a comma; the last has none, so the text fits between
    ``{`` and ``}`` in C89 and later. An empty input gives an empty string.

    Args:
        data: the bytes (or ints 0..255).
        per_line: values per line.
        indent: prefix of every line.

    Returns:
        Lines joined with ``\\n`` (no trailing newline).
    """
    values = bytes(data)
    lines = []
    for start in range(0, len(values), per_line):
        chunk = values[start : start + per_line]
        lines.append(indent + ", ".join(f"0x{byte:02x}" for byte in chunk))
    return ",\n".join(lines)


_IDENT_RE = re.compile(r"[^0-9A-Za-z]+")
_UNPRINTABLE_RE = re.compile(r"[^\x20-\x7e]")
MAX_IDENTIFIER = 48
MAX_COMMENT = 120


@dataclass(frozen=True)
class SafeNames:
    """A file name as generated files may spell it.

    Attributes:
        comment: one line of printable ASCII, safe inside ``//``, ``#`` and ``/* */`` (Markdown
            needs :func:`markdown_text` or :func:`markdown_comment` on top):
            control and non-ASCII characters become ``?`` (runs of ``?`` collapse, so no
            trigraph such as ``??/`` appears), ``*/`` and ``/*`` lose their slash, a backtick
            becomes ``'``; at most :data:`MAX_COMMENT` characters.
        identifier: a C (and C++) identifier fragment: ASCII letters, digits and single
            underscores, starting with a letter (``m_`` is put in front of a leading digit),
            no leading, trailing or double underscore, at most :data:`MAX_IDENTIFIER`
            characters (a longer name is cut and keeps a hash of the whole); ``model`` when
            nothing usable is left. With a prefix or suffix (``g_NAME_model_data``,
            ``NAME_MODEL_DATA_H_`` with ``.upper()``) it is a valid identifier that no C or
            C++ standard reserves.
    """

    comment: str
    identifier: str


def safe_names(name: str) -> SafeNames:
    """The one sanitiser for everything generated from a file name: comments and C identifiers.

    Args:
        name: a file name or stem as the user chose it (any characters: spaces, newlines,
            quotes, ``*/``, a leading digit, a C keyword, non-ASCII letters).

    Returns:
        The :class:`SafeNames`.
    """
    comment = _UNPRINTABLE_RE.sub("?", name)
    comment = re.sub(r"\?{2,}", "?", comment).replace("*/", "*").replace("/*", "*").replace("`", "'")
    if len(comment) > MAX_COMMENT:
        comment = comment[: MAX_COMMENT - 3] + "..."
    ident = _IDENT_RE.sub("_", name).strip("_") or "model"
    ident = re.sub(r"_+", "_", ident)
    if ident[0].isdigit():
        ident = "m_" + ident
    if len(ident) > MAX_IDENTIFIER:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        ident = ident[: MAX_IDENTIFIER - 9].rstrip("_") + "_" + digest
    return SafeNames(comment=comment, identifier=ident)


def c_identifier(name: str) -> str:
    """A file stem as a C identifier fragment: ``cnn.int8`` -> ``cnn_int8`` (see :func:`safe_names`).

    The result is a valid identifier on its own and between a prefix and a suffix
    (``g_NAME_model_data``, ``NAME_MODEL_DATA_H_``), never a reserved one.
    """
    return safe_names(name).identifier


def comment_text(text: str) -> str:
    """``text`` made safe inside any generated comment: one line of printable ASCII (see :func:`safe_names`)."""
    return safe_names(text).comment


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown text (a heading, a table cell): one line (:func:`comment_text`), HTML's
    ``&``, ``<`` and ``>`` as entities (no tag, no comment), Markdown's ``\\ ` * _ [ ] |`` escaped with a
    backslash (no code span, emphasis, link or image, no extra table cell).

    ``<img src=x onerror=alert(1)>.int8.tflite`` -> ``&lt;img src=x onerror=alert(1)&gt;.int8.tflite``.
    """
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", html.escape(comment_text(text), quote=False))


def markdown_comment(text: str) -> str:
    """``text`` safe inside an HTML comment ``<!-- ... -->`` of a Markdown file: one line
    (:func:`comment_text`), ``&``, ``<`` and ``>`` as entities, and no ``--`` (a space goes between
    two hyphens), so neither ``-->`` nor ``--!>`` can close the comment early."""
    return re.sub(r"-(?=-)", "- ", html.escape(comment_text(text), quote=False))


def banner_context(model: Any, engine: str, core: Any, board: Any = None) -> dict[str, Any]:
    """The variables of ``common/banner.j2``, which starts every generated file.

    Args:
        model: the parsed flatbuffer (``path``, ``size``, ``sha256``).
        engine: what generated the file (``tflm engine``, ``bnn engine``, ...).
        core: the target core (``name``).
        board: the board or ``None``.

    Returns:
        ``engine``, ``core``, ``board``, ``model_name`` (the file name, made comment-safe),
        ``model_bytes`` and ``model_sha256``.
    """
    return {
        "engine": engine,
        "core": core,
        "board": board,
        "model_name": comment_text(Path(model.path).name),
        "model_bytes": int(model.size),
        "model_sha256": model.sha256,
    }


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared Jinja environment (StrictUndefined, no autoescape, trailing newline kept)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hex_lines"] = hex_lines
    env.filters["c_identifier"] = c_identifier
    env.filters["md_text"] = markdown_text
    env.filters["md_comment"] = markdown_comment
    env.globals["generator_version"] = TOOL_VERSION
    return env


def render(template: str, **context: Any) -> str:
    """Render ``template`` (a path under ``firmware_gen/templates/``) with ``context``.

    Args:
        template: for example ``"tflm/model_data.c.j2"``.
        **context: the template's variables; ``generator_version`` is always available.

    Returns:
        The rendered text.

    Raises:
        jinja2.UndefinedError: the template uses a variable the context lacks.
    """
    return environment().get_template(template).render(**context)
