"""What happens during a run, as typed events: the engine emits them, and the update hub (watchers), the metrics,
the outbox (NATS) and any other listener consume them.

Each event carries the record as it stood right after it (`snapshot`). `name` is the event's word on the wire
(`DeliberationUpdate`, the watch stream) and in logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.model import AgentFailure, CallRecord, Stage


@dataclass(frozen=True)
class RunEvent:
    snapshot: Deliberation
    name: ClassVar[str] = ""

    @property
    def task_id(self) -> str:
        return self.snapshot.task_id

    @property
    def agent_id(self) -> str:
        return ""


@dataclass(frozen=True)
class RunStarted(RunEvent):
    """The run took its slot and is IN_PROGRESS (again, for a resumed run)."""

    name: ClassVar[str] = "started"


@dataclass(frozen=True)
class StageStarted(RunEvent):
    """`snapshot.stage` and `snapshot.round` say which."""

    name: ClassVar[str] = "stage_started"


@dataclass(frozen=True)
class StageFinished(RunEvent):
    name: ClassVar[str] = "stage_finished"


@dataclass(frozen=True)
class CallFinished(RunEvent):
    """One LLM call attempt ended, answered or failed; `call` is its accounting. Not a watcher update: the agent's
    outcome follows as AgentFinished or AgentDropped."""

    call: CallRecord
    name: ClassVar[str] = "call_finished"

    @property
    def agent_id(self) -> str:
        return self.call.agent_id


@dataclass(frozen=True)
class AgentFinished(RunEvent):
    """An agent's output of the current stage is in the record."""

    agent: str
    name: ClassVar[str] = "agent_finished"

    @property
    def agent_id(self) -> str:
        return self.agent


@dataclass(frozen=True)
class AgentDropped(RunEvent):
    """An agent's call failed for good: it takes no part in the later stages."""

    failure: AgentFailure
    name: ClassVar[str] = "agent_failed"

    @property
    def agent_id(self) -> str:
        return self.failure.agent_id


@dataclass(frozen=True)
class EndpointPaused(RunEvent):
    """The LLM endpoint is down for everyone: the run waits for it instead of dropping its agents."""

    name: ClassVar[str] = "llm_unavailable"


@dataclass(frozen=True)
class EndpointBack(RunEvent):
    name: ClassVar[str] = "llm_back"


@dataclass(frozen=True)
class BudgetStopped(RunEvent):
    """The token budget ended the rounds before `before` (domain/budget.py): the run ranks what it has and
    completes; `snapshot.progress.stop_reason` says why, `estimate` is what the skipped stage was expected to cost."""

    before: Stage
    estimate: int
    name: ClassVar[str] = "token_budget_reached"


@dataclass(frozen=True)
class RunFinished(RunEvent):
    """The run reached its final status (`snapshot.status`), and the record is saved."""

    name: ClassVar[str] = "finished"
