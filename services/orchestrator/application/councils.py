"""Council use cases: create, list, delete, and restore at start-up."""

from __future__ import annotations

import uuid

from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Limits
from orchestrator.application.ports import AgentRuntime, CouncilStore
from orchestrator.domain.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from orchestrator.domain.model import AgentSpec, Council, Role
from orchestrator.domain.redaction import clip
from orchestrator.domain.validation import parse_float_param, parse_int_param, parse_page_token, parse_role

ACCEPTED_AGENT_TYPES = {"", "VLLM", "RAY_VLLM"}
MAX_COUNCIL_PAGE = 100


def _agents(
    role: Role, count: int, model: str, temperature: float, spread: float, max_tokens: int
) -> tuple[AgentSpec, ...]:
    """Agents differ only in sampling: temperatures spread around the base, and distinct seeds."""
    offset = (count - 1) / 2
    return tuple(
        AgentSpec(
            agent_id=f"agent-{role.value.lower()}-{i + 1:03d}",
            role=role,
            model=model,
            temperature=round(min(2.0, max(0.0, temperature + (i - offset) * spread)), 3),
            seed=1000 + i,
            max_tokens=max_tokens,
        )
        for i in range(count)
    )


def council_samples(params: dict[str, str], limits: Limits) -> int:
    """A council's default proposals per agent (`custom_params.samples_per_agent`), 1 when not set."""
    samples = parse_int_param(params, "samples_per_agent", 1)
    if not 1 <= samples <= limits.max_samples:
        raise InvalidArgumentError("custom_params.samples_per_agent", f"must be 1..{limits.max_samples}, got {samples}")
    return samples


def check_config_size(cmd: CreateCouncil, limits: Limits) -> None:
    """A council's configuration is stored and listed with every agent, so it is bounded like any request."""
    params = cmd.custom_params
    if len(params) > limits.max_custom_params:
        raise InvalidArgumentError(
            "config.custom_params", f"{len(params)} entries exceed the limit of {limits.max_custom_params}"
        )
    if any(len(k) + len(v) > limits.max_custom_param_chars for k, v in params.items()):
        raise InvalidArgumentError(
            "config.custom_params", f"an entry exceeds the limit of {limits.max_custom_param_chars} characters"
        )
    model = cmd.model or params.get("model", "")
    if len(model) > limits.max_model_chars:
        raise InvalidArgumentError(
            "config.model_profile", f"{len(model)} characters exceed the limit of {limits.max_model_chars}"
        )


def build_council(cmd: CreateCouncil, defaults: CouncilDefaults, limits: Limits, now_ms: int) -> Council:
    role = parse_role(cmd.role)
    if cmd.agent_type.upper() not in ACCEPTED_AGENT_TYPES:
        raise InvalidArgumentError(
            "config.agent_type",
            f"{clip(cmd.agent_type)} is not supported (use VLLM or RAY_VLLM; MOCK agents are gone)",
        )
    check_config_size(cmd, limits)
    params = cmd.custom_params
    count = cmd.num_agents or defaults.num_agents
    if not 1 <= count <= limits.max_agents:
        raise InvalidArgumentError("num_agents", f"must be 1..{limits.max_agents}, got {count}")
    rounds = cmd.rounds or parse_int_param(params, "rounds", defaults.rounds)
    if not 0 <= rounds <= limits.max_rounds:
        raise InvalidArgumentError("config.deliberation_rounds", f"must be 0..{limits.max_rounds}, got {rounds}")
    model = cmd.model or params.get("model", "") or defaults.model
    temperature = (
        cmd.temperature
        if cmd.temperature is not None
        else parse_float_param(params, "temperature", defaults.temperature)
    )
    if not 0.0 <= temperature <= 2.0:
        raise InvalidArgumentError("temperature", f"must be 0..2, got {temperature}")
    max_tokens = cmd.max_tokens or parse_int_param(params, "max_tokens", defaults.max_tokens)
    if not 16 <= max_tokens <= 32_768:
        raise InvalidArgumentError("max_tokens", f"must be 16..32768, got {max_tokens}")
    if cmd.token_budget is not None and cmd.token_budget < 0:
        raise InvalidArgumentError("config.token_budget", f"must be 0 (unlimited) or positive, got {cmd.token_budget}")
    council_samples(params, limits)
    agents = _agents(role, count, model, temperature, defaults.temperature_spread, max_tokens)
    return Council(
        council_id=f"council-{role.value.lower()}-{uuid.uuid4().hex[:8]}",
        role=role,
        agents=agents,
        rounds=rounds,
        model=model,
        enable_peer_review=cmd.enable_peer_review,
        custom_params=dict(params),
        created_at_ms=now_ms,
        token_budget=cmd.token_budget,
    )


async def create_council(
    cmd: CreateCouncil,
    *,
    store: CouncilStore,
    runtime: AgentRuntime,
    defaults: CouncilDefaults,
    limits: Limits,
    now_ms: int,
) -> Council:
    """Stores the council and starts its agents; a role that already has a council is ALREADY_EXISTS."""
    council = build_council(cmd, defaults, limits, now_ms)
    if not await store.add(council):
        raise AlreadyExistsError("council", council.role.value)
    try:
        await runtime.start_council(council)
    except BaseException:
        await store.remove(council.role)  # no half-created council is left behind
        raise
    return council


async def list_councils(role_filter: str, *, store: CouncilStore) -> list[Council]:
    councils = await store.all_councils()
    if role_filter:
        role = parse_role(role_filter)
        councils = [c for c in councils if c.role is role]
    return sorted(councils, key=lambda c: c.role.value)


def page_of(councils: list[Council], page_size: int, page_token: str) -> tuple[list[Council], str]:
    """One page of a council list and the token of the next page ("" at the end); 0 = the largest page."""
    if not 0 <= page_size <= MAX_COUNCIL_PAGE:
        raise InvalidArgumentError("page_size", f"must be 0..{MAX_COUNCIL_PAGE}, got {page_size}")
    offset = parse_page_token(page_token)
    end = offset + (page_size or MAX_COUNCIL_PAGE)
    return councils[offset:end], str(end) if end < len(councils) else ""


async def delete_council(role_name: str, *, store: CouncilStore, runtime: AgentRuntime) -> tuple[Council, int]:
    """Removes the council and kills its agents; returns the council and how many agents were removed."""
    role = parse_role(role_name)
    council = await store.get(role)
    if council is None:
        raise NotFoundError("council", role.value)
    removed = await runtime.stop_council(council)
    await store.remove(role)
    return council, removed


async def restore_councils(*, store: CouncilStore, runtime: AgentRuntime) -> list[Council]:
    """At start-up: every stored council gets its agents back (re-attached or re-created)."""
    councils = await store.all_councils()
    for council in councils:
        await runtime.start_council(council)
    return councils


async def ensure_councils(
    wanted: list[CreateCouncil],
    *,
    store: CouncilStore,
    runtime: AgentRuntime,
    defaults: CouncilDefaults,
    limits: Limits,
    now_ms: int,
) -> list[Council]:
    """Creates each wanted council whose role has none yet; returns those it created. Existing councils are
    left as they are, and one created meanwhile by another replica counts as there."""
    created = []
    for cmd in wanted:
        if await store.get(parse_role(cmd.role)) is not None:
            continue
        try:
            council = await create_council(
                cmd, store=store, runtime=runtime, defaults=defaults, limits=limits, now_ms=now_ms
            )
        except AlreadyExistsError:
            continue
        created.append(council)
    return created
