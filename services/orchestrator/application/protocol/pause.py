"""How a run waits while the LLM endpoint is down for everyone (see application/protocol/engine.py)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.domain.model import AgentFailure


@dataclass
class EndpointPause:
    """How a run waits while the LLM endpoint is down for everyone: one backoff shared by all its calls, so
    the calls that failed retry together in waves (delays doubling from `first_s` up to `max_s`, each cut by a
    random 0-50 % so runs do not retry in step), rather than each hammering a recovering server on its own.
    There is no limit of its own: the deliberation's deadline ends the wait."""

    first_s: float = 0.5
    max_s: float = 10.0
    since: float | None = None
    """`time.monotonic()` when the outage was first seen; None while the endpoint answers."""
    attempt: int = 0
    resume_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.since is not None

    def wait_for(self, now: float) -> tuple[float, bool]:
        """How long a call that failed at `now` waits, and whether it opened a new wave (calls that fail
        before that wave starts join it instead of pushing it further out)."""
        if self.since is None:
            self.since, self.attempt = now, 0
        elif self.resume_at > now:
            return self.resume_at - now, False
        else:
            self.attempt += 1
        delay = min(self.max_s, self.first_s * 2 ** min(self.attempt, 32)) * random.uniform(0.5, 1.0)
        self.resume_at = now + delay
        return delay, True

    def end(self, now: float) -> float:
        """The endpoint answered: the pause is over. Returns how long it lasted."""
        lasted = now - self.since if self.since is not None else 0.0
        self.since, self.attempt, self.resume_at = None, 0, 0.0
        return lasted


def describe(failures: Iterable[AgentFailure]) -> str:
    return "; ".join(f"{f.agent_id} ({f.stage} r{f.round}): {f.error}" for f in failures)
