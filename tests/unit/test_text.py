"""The one way the service cuts text for display."""

from __future__ import annotations

import pytest

from orchestrator.domain.text import cut_with_size, ellipsize, flat_ellipsize


@pytest.mark.parametrize("limit", [1, 2, 5, 10])
def test_ellipsize_never_exceeds_its_limit_and_marks_the_cut(limit: int) -> None:
    text = "abcdefghijklmnop"
    out = ellipsize(text, limit)
    assert len(out) == limit and out.endswith("…") and text.startswith(out[:-1])


def test_text_within_the_limit_is_unchanged() -> None:
    assert ellipsize("short", 5) == "short" and flat_ellipsize("a  b\n c", 10) == "a b c"
    assert cut_with_size("short", 5) == "short"


def test_flat_ellipsize_folds_white_space_before_cutting() -> None:
    assert flat_ellipsize("one\n\ntwo   three four", 10) == "one two t…"


def test_cut_with_size_says_how_long_the_whole_was() -> None:
    assert cut_with_size("x" * 50, 10) == "x" * 10 + "… (50 characters)"
