"""Commands: one frozen dataclass per use case, validated by the use case against the domain's limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.domain.model import DeliberationStatus


@dataclass(frozen=True)
class CouncilDefaults:
    """What a council gets when the request leaves something unset (from Settings)."""

    model: str
    temperature: float
    max_tokens: int
    rounds: int = 1
    num_agents: int = 3
    temperature_spread: float = 0.15


@dataclass(frozen=True)
class CreateCouncil:
    role: str
    num_agents: int = 0
    rounds: int = 0
    model: str = ""
    temperature: float | None = None
    max_tokens: int = 0
    agent_type: str = ""
    enable_peer_review: bool = True
    custom_params: dict[str, str] = field(default_factory=dict)
    token_budget: int | None = None
    """The council's default token budget: None = not set (the service default applies), 0 = unlimited."""


@dataclass(frozen=True)
class Deliberate:
    task_description: str
    role: str
    task_id: str = ""
    rounds: int | None = None
    """None: the council's default; 0: propose -> verify -> rank (best-of-N with verification)."""
    num_agents: int = 0
    rubric: str = ""
    requirements: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    timeout_s: int = 0
    source: str = "grpc"
    acceptance_tests: str = ""
    """Python test code that is part of the specification (TaskConstraints.acceptance_tests)."""
    token_budget: int | None = None
    """Most tokens the deliberation may spend: None = not set (the council's, else the service's default),
    0 = unlimited whatever the defaults."""
    samples: int | None = None
    """Proposals per agent in the propose stage: None = the council's `samples_per_agent`, else 1."""


@dataclass(frozen=True)
class Limits:
    """Input limits enforced at the application boundary (every adapter goes through them)."""

    max_task_chars: int = 32_000
    max_rubric_chars: int = 8_000
    max_acceptance_tests_chars: int = 32_000
    max_requirements: int = 50
    max_requirement_chars: int = 1_000
    max_metadata_entries: int = 50
    max_metadata_chars: int = 2_000
    max_timeout_s: int = 3_600
    max_agents: int = 10
    max_rounds: int = 5
    max_samples: int = 4
    """Proposals per agent in the propose stage (DeliberateRequest.samples_per_agent, custom_params)."""
    max_model_chars: int = 256
    """CouncilConfig.model_profile (a model name); every agent of the council repeats it in ListCouncils."""
    max_custom_params: int = 50
    max_custom_param_chars: int = 2_000
    """Per CouncilConfig.custom_params entry, key and value together."""


@dataclass(frozen=True)
class RunDefaults:
    """What a new deliberation gets where its request and its council set nothing, and the limits it is held to."""

    limits: Limits = field(default_factory=Limits)
    timeout_s: float = 600.0
    token_budget: int | None = None
    """The service-wide token budget; None = unlimited."""


@dataclass(frozen=True)
class GetDeliberation:
    task_id: str


@dataclass(frozen=True)
class CancelDeliberation:
    task_id: str


@dataclass(frozen=True)
class WatchDeliberation:
    task_id: str


@dataclass(frozen=True)
class ListDeliberations:
    status: DeliberationStatus | None = None
    role: str = ""
    page_size: int = 0
    """0: the default page size."""
    page_token: str = ""
