"""The verdicts of finished sandbox runs, kept by everything that decides them, so the same code against the same
units runs once: proposals that are the same code (common where a small model answers several agents alike) share
one run within a verify stage, and a revision that left a proposal's code and the stage's tests as they were is not
run again in the next stage.

What decides a run's verdicts is its input alone: the solution, the task's preamble, the units (their ids, sources
and code, in order) and the run's limits; every unit runs in a fresh process of a fresh sandbox (execution.py), so
no earlier run can leave anything behind for a later one to find. A run whose verdicts could have come from the
host rather than the code (a unit or the run out of time, a run ended early, a unit not run) is not kept: run again
it may do otherwise. Bounded by runs kept, least recently used first out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict

from orchestrator.adapters.checks.kept import Kept
from orchestrator.domain.evidence import CheckUnit, UnitOutcome
from orchestrator.domain.execution import SandboxLimits

MAX_RUNS_KEPT = 256
# How a unit fails when the host, not the code, may have decided it (execution.py and sandbox_supervisor.py word
# them so): a time limit, a run that ended or was ended before the unit's result, a unit that was not run.
_HOST_DEPENDENT = ("timed out", "time limit", "not run", "no result", "the run ended", "the run was ended", "no value")


def run_key(solution: str, preamble: Sequence[str], units: Sequence[CheckUnit], limits: SandboxLimits) -> str:
    """The identity of a run's input: equal keys, equal verdicts (up to code whose result is random)."""
    material = [solution, list(preamble), [[u.test_id, u.source.value, u.code] for u in units], asdict(limits)]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def reusable(outcomes: Sequence[UnitOutcome]) -> bool:
    """Every verdict came from the code: none is a time-out, a run ended early or a unit not run."""
    return not any(not o.passed and any(word in o.failure for word in _HOST_DEPENDENT) for o in outcomes)


class Verdicts:
    """Finished runs' outcomes by `run_key`, at most `max_runs` of them (least recently used first out)."""

    def __init__(self, max_runs: int = MAX_RUNS_KEPT) -> None:
        self._runs: Kept[str, tuple[UnitOutcome, ...]] = Kept(max_runs)
        self.hits = 0

    def __len__(self) -> int:
        return len(self._runs)

    def clear(self) -> None:
        self._runs.clear()

    def get(self, key: str) -> list[UnitOutcome] | None:
        outcomes = self._runs.get(key)
        if outcomes is None:
            return None
        self.hits += 1
        return list(outcomes)

    def keep(self, key: str, outcomes: Sequence[UnitOutcome]) -> None:
        """Keeps a finished run's outcomes, unless the host may have decided one of them."""
        if reusable(outcomes):
            self._runs.put(key, tuple(outcomes))
