"""Templates (Jinja2, autoescaped: every value is escaped unless a filter here made it markup from escaped text)
and server-side highlighting (Pygments, which escapes the code it formats)."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import jinja2
from markupsafe import Markup
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from orchestrator.adapters.web import views

FORMATTER = HtmlFormatter(cssclass="hl", nowrap=False)
MAX_HIGHLIGHT_CHARS = 200_000
"""Longer code is shown as plain (escaped) text: highlighting is for reading, not for megabytes."""


@lru_cache(maxsize=64)
def _lexer(lang: str) -> Lexer:
    try:
        lexer: Lexer = get_lexer_by_name(lang or "text", stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    return lexer


def highlight(code: str, lang: str = "python") -> Markup:
    if len(code) > MAX_HIGHLIGHT_CHARS:
        lang = "text"
    return Markup(pygments_highlight(code, _lexer(lang), FORMATTER))


def pygments_css() -> str:
    return str(FORMATTER.get_style_defs(".hl"))  # type: ignore[no-untyped-call]


def when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + " UTC" if ms else "-"


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator.adapters.web", "templates"),
        autoescape=True,  # every template, whatever its name: all of them are HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(highlight=highlight, when=when, seconds=seconds)
    env.globals.update(segments=views.segments)
    return env


def render(env: jinja2.Environment, name: str, **context: Any) -> str:
    return env.get_template(name).render(**context)
