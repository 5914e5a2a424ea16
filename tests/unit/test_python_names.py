"""The one scope-insensitive name analysis the lint fallback, the examples reader and the test fake share."""

from __future__ import annotations

import ast

import pytest

from orchestrator.adapters.checks import python_lint
from orchestrator.domain.python_names import bound_names, called_names, read_names
from orchestrator.testing.fake_content import undefined_names


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("x = 1", "x"),
        ("x += 1", "x"),
        ("a, (b, c) = t", "c"),
        ("del x", "x"),
        ("for i in r: pass", "i"),
        ("with open(p) as fh: pass", "fh"),
        ("if (n := 3): pass", "n"),
        ("[y for y in r]", "y"),
        ("def f(a, *args, k=1, **kw): pass", "kw"),
        ("async def g(): pass", "g"),
        ("class C: pass", "C"),
        ("lambda q: q", "q"),
        ("import os.path", "os"),
        ("import numpy as np", "np"),
        ("from a.b import c as d", "d"),
        ("try:\n    pass\nexcept E as err:\n    pass", "err"),
        ("match v:\n    case [first, *rest]: pass", "rest"),
        ("match v:\n    case {'k': 1, **others}: pass", "others"),
        ("match v:\n    case Point(x=px): pass", "px"),
        ("def f():\n    global counter", "counter"),
    ],
)
def test_bound_names_sees_every_binding_form(code: str, name: str) -> None:
    assert name in bound_names(ast.parse(code))


def test_a_star_import_binds_no_name_called_star() -> None:
    assert "*" not in bound_names(ast.parse("from os import *"))


def test_read_and_called_names() -> None:
    tree = ast.parse("y = f(x) + obj.g(z)")
    assert read_names(tree) == {"f", "x", "obj", "z"}
    assert called_names(tree) == {"f"}  # a method call names no free function
    assert bound_names(tree) == {"y"}


def test_the_fake_and_the_lint_fallback_agree_on_a_match_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """A match capture binds its name for both (the fake once reported `head` and `tail` as undefined)."""
    code = "match v:\n    case [head, *tail]:\n        print(head, tail)\n"
    assert undefined_names(ast.parse(code)) == ("v",)
    monkeypatch.setattr(python_lint, "_ruff", lambda *_: None)  # as when ruff cannot run: the stdlib fallback
    found = python_lint.lint_python([code])
    assert found.linter == "stdlib-fallback"
    assert found.result.errors == ("python block 1 line 1: F821 Undefined name `v`",)
