"""Domain errors: one small hierarchy; the gRPC adapter maps each class to a status code in one table."""

from __future__ import annotations

from enum import StrEnum

from orchestrator.domain.redaction import clip


class OrchestratorError(Exception):
    """Base of every error the service reports on purpose."""


class InvalidArgumentError(OrchestratorError):
    """A request or event is malformed or out of range; `field` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFoundError(OrchestratorError):
    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {clip(key)} not found")
        self.kind = kind
        self.key = key


class AlreadyExistsError(OrchestratorError):
    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {clip(key)} already exists")
        self.kind = kind
        self.key = key


class CouncilMissingError(OrchestratorError):
    """No council for a role, so nothing can deliberate on its tasks."""

    def __init__(self, role: str) -> None:
        super().__init__(f"no council for role {role}; create one first (orchestrator councils setup)")
        self.role = role


class CapacityError(OrchestratorError):
    """Admission control refused new work."""


class PlacementError(OrchestratorError):
    """The agent runtime cannot place a council's agents: no node offers what they ask for (`resource`). Retrying
    does not help; the cluster or the service's settings must change, and `remedy` says how."""

    def __init__(self, resource: str, problem: str, remedy: str) -> None:
        super().__init__(f"{problem}; {remedy}")
        self.resource = resource
        self.problem = problem
        self.remedy = remedy


class DependencyUnavailableError(OrchestratorError):
    """A dependency (LLM endpoint, Ray, store, NATS) cannot be reached."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency} unavailable: {detail}")
        self.dependency = dependency
        self.detail = detail


class CallErrorKind(StrEnum):
    """Why an agent's call failed, as a kind the service acts on (pause, drop, answer UNAVAILABLE). The adapters
    raise it typed (`LLMCallError.kind`); the HTTP status of an HTTP failure is data beside it (`status`)."""

    UNAVAILABLE = "unavailable"
    """The LLM endpoint cannot be reached at all (connection refused, unreachable, a proxy's 502/503/504)."""
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    HTTP = "http"
    MALFORMED = "malformed"
    NO_AGENT = "no_agent"
    AGENT_UNAVAILABLE = "agent_unavailable"
    AGENT_ERROR = "agent_error"
    EMPTY = "empty"
    """The model answered with no usable text."""
    OTHER = "other"

    @property
    def endpoint_unreachable(self) -> bool:
        """The kinds that mean nobody could reach the LLM endpoint (the gRPC adapter answers UNAVAILABLE when
        every agent failed so)."""
        return self in (CallErrorKind.UNAVAILABLE, CallErrorKind.TIMEOUT)


class LLMCallError(OrchestratorError):
    """One agent's LLM call failed for good (after the client's retries)."""

    def __init__(self, agent_id: str, kind: CallErrorKind, detail: str, status: int | None = None) -> None:
        self.agent_id = agent_id
        self.kind = kind
        self.detail = detail
        self.status = status
        """The HTTP status the endpoint answered (kind HTTP); None for the other kinds."""
        super().__init__(f"{agent_id}: {self.code}: {detail}")

    @property
    def code(self) -> str:
        """The kind as one word for logs, spans and the failure's text, with the status when there is one:
        `http_500`, `rate_limited`, `unavailable`..."""
        return f"{self.kind.value}_{self.status}" if self.status is not None else self.kind.value

    @property
    def endpoint_down(self) -> bool:
        """The LLM endpoint itself could not be reached (kind `unavailable`: connection refused, unreachable, a
        proxy's 502/503/504). That is the same for every agent, unlike this agent's call failing, so a run
        waits for the endpoint rather than dropping the agent."""
        return self.kind is CallErrorKind.UNAVAILABLE

    def __reduce__(self) -> tuple[type[LLMCallError], tuple[str, CallErrorKind, str, int | None]]:
        # Keeps the attributes when Ray pickles the error across processes.
        return (LLMCallError, (self.agent_id, self.kind, self.detail, self.status))


class ConfigError(OrchestratorError):
    """Settings or a councils file are invalid; the service refuses to start."""


class TaskIdConflictError(OrchestratorError):
    """A task_id that names an existing deliberation, reused for other work (another role, text, rounds…).
    `differences` names what differs; client text is never repeated in it."""

    def __init__(self, task_id: str, differences: tuple[str, ...]) -> None:
        shown = task_id if len(task_id) <= 64 else f"{task_id[:64]}…"
        super().__init__(
            f"deliberation {shown!r} already exists with other parameters: {', '.join(differences)}; "
            "send the same request to attach to it, or use another task_id"
        )
        self.task_id = task_id
        self.differences = differences
