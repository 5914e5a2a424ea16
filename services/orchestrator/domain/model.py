"""The deliberation vocabulary: councils, agents, tasks, proposals, checks, results.

Plain frozen dataclasses (standard library only) so that every layer, Ray included, can pickle and compare them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from orchestrator.domain.errors import CallErrorKind
from orchestrator.domain.evidence import ProposalEvidence

LIMITS_MAX_AGENTS = 10
LIMITS_MAX_ROUNDS = 5
DEFAULT_AGENTS = 3


class Role(enum.StrEnum):
    DEV = "DEV"
    QA = "QA"
    ARCHITECT = "ARCHITECT"
    DEVOPS = "DEVOPS"
    DATA = "DATA"


class Stage(enum.StrEnum):
    PROPOSE = "propose"
    VERIFY = "verify"
    CRITIQUE = "critique"
    REVISE = "revise"
    SCORE = "score"


class DeliberationStatus(enum.StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self not in (DeliberationStatus.PENDING, DeliberationStatus.IN_PROGRESS)


@dataclass(frozen=True)
class AgentSpec:
    """One council member: its id, and the sampling settings that make its proposals differ from its peers'."""

    agent_id: str
    role: Role
    model: str
    temperature: float
    seed: int
    max_tokens: int


@dataclass(frozen=True)
class Council:
    council_id: str
    role: Role
    agents: tuple[AgentSpec, ...]
    rounds: int
    model: str
    enable_peer_review: bool = True
    custom_params: dict[str, str] = field(default_factory=dict)
    created_at_ms: int = 0
    token_budget: int | None = None
    """The default token budget of this council's deliberations: None = not set (the service default applies),
    0 = unlimited (domain/budget.py, resolve_budget)."""


@dataclass(frozen=True)
class TaskSpec:
    """What a council deliberates on. `rounds`/`num_agents` are already resolved against the council."""

    task_id: str
    description: str
    role: Role
    rounds: int
    num_agents: int
    rubric: str = ""
    requirements: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 0.0
    acceptance_tests: str = ""
    """Test code from the client (Python asserts / test functions): part of the specification, shown to the agents
    and run against every proposal."""
    token_budget: int | None = None
    """The effective token budget (task, else council, else service default), resolved when the deliberation is
    created; None = unlimited."""
    samples: int = 1
    """Proposals each agent makes in the propose stage (request, else the council's `samples_per_agent`, else 1).
    The agent's own is revised in the rounds; the others (`sample_author`) are candidates of their own, ranked by
    the same evidence and never revised."""


SAMPLE_MARK = ".s"


def sample_author(agent_id: str, n: int) -> str:
    """The author id of an agent's n-th proposal (n >= 2) in the propose stage: `agent-dev-001.s2`."""
    return f"{agent_id}{SAMPLE_MARK}{n}"


def agent_of(author_id: str) -> str:
    """The agent that made a proposal: the author id itself, or the agent of an extra sample."""
    base, mark, n = author_id.rpartition(SAMPLE_MARK)
    return base if mark and base and n.isdigit() else author_id


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class CallRecord:
    """Accounting of one LLM call, successful or not."""

    agent_id: str
    stage: Stage
    round: int
    usage: Usage
    latency_ms: float
    model: str
    temperature: float
    seed: int
    ok: bool = True
    error: str = ""


@dataclass(frozen=True)
class Proposal:
    author_id: str
    author_role: Role
    content: str
    created_at_ms: int
    revisions: tuple[str, ...] = ()
    """Every revised text, oldest first; `content` is the latest one (the original when there is none)."""


@dataclass(frozen=True)
class Critique:
    critic_id: str
    target_id: str
    round: int
    text: str


@dataclass(frozen=True)
class PeerScore:
    scorer_id: str
    target_id: str
    score: float
    """1..10 as given by the scorer."""
    rationale: str = ""


@dataclass(frozen=True)
class AgentFailure:
    agent_id: str
    stage: Stage
    round: int
    error: str
    kind: CallErrorKind = CallErrorKind.OTHER


@dataclass(frozen=True)
class PolicyResult:
    passed: bool
    violations: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class LintResult:
    passed: bool
    error_count: int = 0
    warning_count: int = 0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class DryRunResult:
    passed: bool
    output: str = ""
    exit_code: int = 0
    message: str = ""


@dataclass(frozen=True)
class CheckResult:
    check_type: str
    passed: bool
    score: float
    message: str = ""
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckSuite:
    """Deterministic findings on one proposal. `score` in [0, 1] is what the checks contribute to ranking."""

    policy: PolicyResult
    lint: LintResult
    dryrun: DryRunResult
    additional: tuple[CheckResult, ...] = ()
    all_passed: bool = False
    score: float = 0.0


@dataclass(frozen=True)
class RankedProposal:
    proposal: Proposal
    checks: CheckSuite
    peer_score: float
    """Mean peer score normalised to [0, 1]; -1 when no peer scored this proposal."""
    score: float
    rank: int
    peer_scores: tuple[PeerScore, ...] = ()
    critiques: tuple[Critique, ...] = ()
    usage: Usage = Usage()
    rank_reason: str = ""
    """Which evidence decided this rank (domain/ranking.py)."""
    evidence: ProposalEvidence | None = None
    """What the execution checks found for the final proposal; None when verification did not run."""
