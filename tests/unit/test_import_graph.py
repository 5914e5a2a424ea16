"""The shape of services/: no import cycle between its modules, small application modules, short functions.

Every import counts, wherever it is written: at module level, inside a function, or under `TYPE_CHECKING` (a cycle
hidden from the interpreter is still one for the reader)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
MAX_APPLICATION_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SERVICES).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


GENERATED = "DO NOT EDIT"
"""protoc's output (services/fleet/): not written here, so not held to the function length."""


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SERVICES.rglob("*.py") if "egg-info" not in str(p)}


def written_here(path: Path) -> bool:
    return GENERATED not in "".join(path.read_text().splitlines(keepends=True)[:5])


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of services/ that `name` imports anywhere in its text."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_the_checker_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_services() -> None:
    edges = graph()
    assert "orchestrator.application.protocol.engine" in edges  # the walk did find the modules
    assert cycles(edges) == []


def test_no_application_module_over_300_lines() -> None:
    long = {
        str(p.relative_to(SERVICES)): n
        for p in (SERVICES / "orchestrator" / "application").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_APPLICATION_MODULE_LINES
    }
    assert long == {}


def test_no_function_over_50_lines_in_services() -> None:
    long = []
    for path in filter(written_here, modules().values()):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SERVICES)}:{node.lineno} {node.name} ({length} lines)")
    assert long == []
