"""Render a model's view into one self-contained HTML file (Jinja, StrictUndefined, autoescape).

The page loads nothing: styles are inline, figures are inline SVG, there is no script, and a
Content-Security-Policy forbids any fetch, so it reads the same offline as online.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pipeline.artifacts import write_text

__all__ = ["TEMPLATE_DIR", "TEMPLATE", "environment", "render_html", "write_html"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "model_report.html.j2"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The report's Jinja environment: StrictUndefined, HTML autoescaping, a ``safe_svg`` filter."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["safe_svg"] = Markup  # the SVG module escapes every text it draws
    return env


def render_html(view: dict[str, Any]) -> str:
    """The HTML of one report.

    Raises:
        jinja2.UndefinedError: the template uses a name the view lacks (a bug, not bad input).
    """
    return environment().get_template(TEMPLATE).render(**view)


def write_html(path: Path, view: dict[str, Any]) -> Path:
    """Render ``view`` and write it atomically to ``path`` (temporary file, then rename)."""
    return write_text(path, render_html(view))
