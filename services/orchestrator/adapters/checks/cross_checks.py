"""The CrossChecker port on the execution checks' own machinery: one subtask's tests on another's solutions, each
unit in its own sandboxed process with the verdict decided outside the judged code (`execution.run_units`), and
manifests read for references to the DEV module.

A QA proposal's tests are written against a module of their own (`from textstats import word_count`); inside the
sandbox the solution is the module `solution`, so their imports of anything that is not the standard library (nor
pytest, which the sandbox lacks: a small shim stands in for `pytest.raises`) are pointed at it
(`domain.cross_checks.as_solution_tests`). Nothing of either proposal runs in the service's process.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import yaml

from orchestrator.adapters.checks.code_blocks import YAML, extract_code_blocks
from orchestrator.adapters.checks.execution import RUN_LIMITS, run_units, split_proposal
from orchestrator.application.ports import Sandbox
from orchestrator.domain.cross_checks import Reference, TestRuns, as_solution_tests, defined_names, one_assert_each
from orchestrator.domain.evidence import CheckUnit, UnitOutcome, UnitSource, split_tests
from orchestrator.domain.execution import SandboxLimits

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod", "ReplicaSet"}
_PORT_IN_CODE = re.compile(
    r"(?:\bport\s*[=:]\s*|\.run\([^)]*?|\bbind\(\(\s*['\"][^'\"]*['\"]\s*,\s*|HTTPServer\(\(\s*['\"][^'\"]*['\"]\s*,\s*)"
    r"(\d{2,5})\b",
    re.IGNORECASE,
)


class SandboxCrossChecker:
    """Cross-checks on a Sandbox (the execution checks' own: bubblewrap on the Ray workers in production)."""

    def __init__(self, sandbox: Sandbox, limits: SandboxLimits = RUN_LIMITS) -> None:
        self._sandbox = sandbox
        self._limits = limits

    async def run_tests(self, tests: Mapping[str, str], solutions: Mapping[str, str]) -> TestRuns:
        code = {author: split_proposal(text).solution for author, text in sorted(solutions.items())}
        shadowing = frozenset(name for solution in code.values() for name in defined_names(solution))
        units = {author: _units(author, text, shadowing) for author, text in sorted(tests.items())}
        units = {author: found for author, found in units.items() if found}
        if not self._sandbox.availability().available:
            return TestRuns(units, {}, skipped=self._sandbox.availability().summary)
        every = [u for found in units.values() for u in found]
        ran = await asyncio.gather(*(self._run(code[dev], every) for dev in code))
        by_dev = dict(zip(code, ran, strict=True))
        outcomes = {
            qa: {dev: tuple(o for o in by_dev[dev] if o.test_id.startswith(f"{qa}:")) for dev in code} for qa in units
        }
        return TestRuns(units, outcomes)

    async def _run(self, solution: str, units: list[CheckUnit]) -> list[UnitOutcome]:
        if not solution:
            return [UnitOutcome(u.test_id, False, "no Python solution in the proposal") for u in units]
        if not units:
            return []
        sweep = not self._sandbox.availability().unsafe
        return await run_units(self._sandbox, solution, units, self._limits, sweep=sweep)

    def references(self, manifests: str, solution: str, module: str) -> tuple[Reference, ...]:
        containers = [c for doc in _documents(manifests) for c in _containers(doc)]
        code = split_proposal(solution).solution
        ports = {int(p) for p in _PORT_IN_CODE.findall(code)}
        refs: list[Reference] = []
        for container in containers:
            command = " ".join(
                str(part) for part in [*_strings(container.get("command")), *_strings(container.get("args"))]
            )
            if module and command:
                runs_it = re.search(rf"(?:^|[\s/=]){re.escape(module)}(?:\.py|:|\s|$)", command) is not None
                refs.append(Reference("entry point", command, f"runs the DEV module {module}", runs_it))
            listed = [p.get("containerPort") for p in container.get("ports") or [] if isinstance(p, dict)]
            exposed = {p for p in listed if isinstance(p, int)}
            if ports and exposed:
                found = ", ".join(str(p) for p in sorted(exposed))
                wanted = ", ".join(str(p) for p in sorted(ports))
                refs.append(
                    Reference("port", found, f"the port the DEV module listens on ({wanted})", bool(ports & exposed))
                )
        return tuple(refs)


def _units(author: str, proposal: str, shadowing: frozenset[str]) -> tuple[CheckUnit, ...]:
    """The tests of a QA proposal, as units run against a solution: every Python block's tests and imports (a QA
    proposal is tests, so what looks like a solution in it is taken as test set-up), without the definitions that
    would shadow the solution's."""
    split = split_proposal(proposal)
    code = "\n\n".join(part for part in (split.solution, split.tests) if part.strip())
    ready = one_assert_each(as_solution_tests(code, shadowing))
    return tuple(
        CheckUnit(f"{author}:test-{i + 1}", UnitSource.AGENT, unit, author) for i, unit in enumerate(split_tests(ready))
    )


def _documents(text: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for block in extract_code_blocks(text):
        if block.language != YAML:
            continue
        try:
            docs += [d for d in yaml.safe_load_all(block.code) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("kind") not in WORKLOADS:
        return []
    spec = doc.get("spec") or {}
    if doc.get("kind") != "Pod":
        spec = ((spec.get("template") or {}).get("spec")) or {} if isinstance(spec, dict) else {}
    containers = spec.get("containers") if isinstance(spec, dict) else None
    return [c for c in containers or [] if isinstance(c, dict)]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []
