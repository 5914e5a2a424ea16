"""What a stage may do with the run it works on: the narrow interface the stages and the token budget see.

The engine (protocol/engine.py) implements it; stages.py and budgeting.py know only this, so the protocol's modules
import in one direction: engine -> stages -> budgeting -> run.
"""

from __future__ import annotations

from typing import Protocol

from orchestrator.application.ports import Checker, Clock, Completion, Verifier
from orchestrator.domain import prompts
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.events import RunEvent
from orchestrator.domain.model import AgentFailure, AgentSpec, DeliberationStatus, Proposal, Stage


class Run(Protocol):
    snapshot: Deliberation
    """The latest state of the record; a stage reads it and replaces it with what its answers change."""

    @property
    def clock(self) -> Clock: ...

    @property
    def checker(self) -> Checker: ...

    @property
    def verifier(self) -> Verifier | None: ...

    @property
    def peer_review(self) -> bool: ...

    async def call(
        self, agent: AgentSpec, stage: Stage, round_: int, prompt: prompts.Prompt, *, drop: bool = True
    ) -> Completion | None:
        """One agent call with its accounting; None when it failed (the agent dropped out on it, if `drop`)."""
        ...

    def emit(self, event: RunEvent) -> None: ...

    def drop(self, failure: AgentFailure, stage: Stage) -> None: ...

    def set_proposal(self, proposal: Proposal) -> None: ...

    def update(self, **changes: object) -> None: ...

    def finish(self, status: DeliberationStatus, error: str = "") -> Deliberation: ...
