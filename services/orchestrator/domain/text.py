"""Cutting text for display: one helper for every message, detail and snippet the service shortens, so each is cut
the same way (an ellipsis marks the cut) and stays within its limit."""

from __future__ import annotations

ELLIPSIS = "…"


def ellipsize(text: str, limit: int) -> str:
    """`text`, or its first `limit - 1` characters and an ellipsis: never longer than `limit`."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def flat_ellipsize(text: str, limit: int) -> str:
    """`text` on one line (every run of white space one space), then ellipsized to `limit`."""
    return ellipsize(" ".join(text.split()), limit)


def cut_with_size(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters, an ellipsis and how long the whole was: for echoing input and
    log values, where the reader should know how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}{ELLIPSIS} ({len(text)} characters)"
