"""JSON a user hands in (spec files, search spaces, reports, ``firmware.json``, an ``.h5``'s
model config, ``TF_CONFIG``), nested at most :data:`MAX_JSON_DEPTH` levels.

Python's JSON parser recurses once per level of nesting: text nested 100,000 deep raises
``RecursionError`` (a traceback, not a refusal), and a document that parses just under the
interpreter's limit still stops the code that walks it. :func:`parse_json` is ``json.loads``
with the nesting bounded: deeper text raises :class:`JSONDepthError`, a ``ValueError`` like
``json.JSONDecodeError``, so each reader's ``except ValueError`` turns it into its own one-line
:class:`~pipeline.errors.InputError` naming the file. Every document the project reads nests
ten levels or fewer (a Keras model config: eight, and a few more per nested model).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "JSONDepthError", "parse_json", "json_depth_exceeds"]

MAX_JSON_DEPTH = 100
"""Most levels of arrays and objects inside one another that a JSON input may have."""


class JSONDepthError(ValueError):
    """JSON nested deeper than the limit (a ``ValueError``, like a syntax error)."""


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (decoded JSON) has more than ``limit`` levels of lists and dicts.

    Iterative, so it answers for any depth; a scalar has depth 0, ``[]`` and ``{}`` depth 1.
    """
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(
    text: str | bytes,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """``json.loads(text)``, refusing text nested more than ``max_depth`` levels.

    Args:
        text: the JSON text (``bytes`` are decoded as ``json.loads`` does).
        object_pairs_hook: passed to ``json.loads`` (for example to refuse repeated keys).
        max_depth: most levels of arrays and objects inside one another.

    Returns:
        The decoded value.

    Raises:
        JSONDepthError: nested deeper than ``max_depth`` (also when the parser itself ran out of
            recursion).
        json.JSONDecodeError: not JSON (and whatever ``object_pairs_hook`` raises).
    """
    message = f"JSON nested deeper than {max_depth} levels"
    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise JSONDepthError(message) from None
    if json_depth_exceeds(value, max_depth):
        raise JSONDepthError(message)
    return value
