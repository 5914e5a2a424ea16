"""The names a piece of Python binds and reads, scope-insensitively: one module-wide set each.

Used wherever the service asks "does this code read a name nothing gives it" without running it: the lint
fallback (when ruff cannot run), the examples a task's text shows (one reading a name no set-up binds is no test),
and the test fake's critique. Scope-insensitive on purpose: a name bound anywhere counts as bound everywhere, which
errs towards "defined" (a missed finding, never a false one).
"""

from __future__ import annotations

import ast


def bound_names(tree: ast.AST) -> set[str]:
    """Every name the tree binds: assignment, `del`, loop, `with`, walrus and comprehension targets, definitions,
    parameters, imports (the first part of a dotted one; not `*`), `except ... as`, match captures, and names a
    `global`/`nonlocal` statement declares."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias) and node.name != "*":
            names.add(node.asname or node.name.split(".", 1)[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
    return names


def read_names(tree: ast.AST) -> set[str]:
    """Every name the tree reads (loads)."""
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def called_names(tree: ast.AST) -> set[str]:
    """Every plain name the tree calls (`f(x)`; not `obj.f(x)`)."""
    return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
