"""The Jinja environment every engine renders with, and the small filters C emission needs.

Templates live in ``firmware_gen/templates/`` and hold layout only; the Python that calls
:func:`render` computes every value. Jinja runs with ``StrictUndefined`` (a missing variable is
an error, never an empty string) and keeps the final newline, so output is byte-stable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from pipeline.artifacts import TOOL_VERSION

__all__ = ["TEMPLATE_DIR", "environment", "render", "hex_lines", "c_identifier", "comment_text", "banner_context", "round_up"]

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


_IDENT_RE = re.compile(r"[^0-9A-Za-z_]")


def c_identifier(name: str) -> str:
    """Turn a file stem into a C identifier fragment: ``cnn.int8`` -> ``cnn_int8``.

    Characters outside ``[0-9A-Za-z_]`` become ``_``; the result is used between a prefix and a
    suffix (``g_NAME_model_data``), so a leading digit or a C keyword cannot clash.

    Raises:
        ValueError: the name is empty.
    """
    if not name:
        raise ValueError("empty name cannot become a C identifier")
    return _IDENT_RE.sub("_", name)


_UNPRINTABLE_RE = re.compile(r"[^\x20-\x7e]")


def comment_text(text: str) -> str:
    """``text`` made safe inside any generated comment: one line of printable ASCII.

    Control characters (a newline in a file name would end a ``//`` comment and put the rest
    of the name into the code) and non-ASCII characters become ``?``; ``*/`` and ``/*`` (which
    would end or nest a block comment) lose their slash.
    """
    return _UNPRINTABLE_RE.sub("?", text).replace("*/", "*").replace("/*", "*")


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
