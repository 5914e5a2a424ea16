"""The protocol's stages over a run: what each agent is asked, and what its answer changes in the record.

Each LLM stage function handles one agent; the engine fans it out over every agent still taking part. Verify and
score handle the whole council at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import structlog

from orchestrator.application.protocol import budgeting, verification
from orchestrator.application.protocol.run import Run
from orchestrator.domain import prompts
from orchestrator.domain.errors import CallErrorKind
from orchestrator.domain.events import AgentFinished
from orchestrator.domain.evidence import (
    defined_names,
    example_mutants,
    findings_text,
    probe_calls,
    python_code,
    signatures,
    spec_failures,
)
from orchestrator.domain.model import (
    AgentFailure,
    AgentSpec,
    CheckSuite,
    Critique,
    DeliberationStatus,
    PeerScore,
    Proposal,
    RankedProposal,
    Role,
    Stage,
    agent_of,
    sample_author,
)
from orchestrator.domain.parsing import parse_critiques, parse_scores, strip_proposal_wrapper
from orchestrator.domain.ranking import rank_by_evidence

log = structlog.get_logger(__name__)

SAMPLE_SEED_STEP = 100
"""An agent's n-th sample uses its seed + (n - 1) x this: distinct from every other agent's seed (1000 + i)."""


def proposal_calls(run: Run, agent: AgentSpec) -> list[tuple[str, AgentSpec, prompts.Prompt]]:
    """(author id, caller, prompt) of every proposal an agent makes in the propose stage: its own, then its extra
    samples (`TaskSpec.samples`), each with a seed of its own. Where a DEV task asks for more than one sample per
    agent, the first agent's own proposal is the model's greedy answer to the task asked plainly (temperature 0,
    `prompts.propose_plain`): the answer one plain call would give is among the candidates. On HumanEval dev
    (bench/replay_selection.py over the rows of 52f5973), that greedy answer and five samples held a passing
    candidate for 90 problems, five samples alone for 85; but a pilot of the council with 2 per agent picked worse
    among its six than the council among three (README, Quality), so the default stays 1."""
    task = run.snapshot.task
    task_prompt = prompts.propose(task)
    own: tuple[AgentSpec, prompts.Prompt] = (agent, task_prompt)
    if task.samples > 1 and task.role is Role.DEV and agent.agent_id == run.snapshot.agents[0].agent_id:
        own = (replace(agent, temperature=0.0), prompts.propose_plain(task))
    extra = [
        (sample_author(agent.agent_id, n), replace(agent, seed=agent.seed + SAMPLE_SEED_STEP * (n - 1)), task_prompt)
        for n in range(2, task.samples + 1)
    ]
    return [(agent.agent_id, *own), *extra]


async def propose(run: Run, agent: AgentSpec, round_: int) -> None:
    """The agent's proposals, concurrently. Its own failing drops the agent (and its samples); a sample failing
    is only a candidate fewer."""
    await asyncio.gather(
        *(
            _propose_one(run, agent, author, caller, prompt, round_)
            for author, caller, prompt in proposal_calls(run, agent)
        )
    )


async def _propose_one(
    run: Run, agent: AgentSpec, author: str, caller: AgentSpec, prompt: prompts.Prompt, round_: int
) -> None:
    own = author == agent.agent_id
    completion = await run.call(caller, Stage.PROPOSE, round_, prompt, drop=own)
    if completion is None:
        return
    content = strip_proposal_wrapper(prompts.close_fence(completion.content))
    if not content:
        if own:
            failure = AgentFailure(
                agent.agent_id, Stage.PROPOSE, round_, "empty: the model returned no text", CallErrorKind.EMPTY
            )
            run.drop(failure, Stage.PROPOSE)
        return
    if not own and agent.agent_id in run.snapshot.failed_agent_ids:
        return  # the agent dropped out while this sample was in flight: its samples went with it
    run.set_proposal(Proposal(author, agent.role, content, run.clock.now_ms()))
    run.emit(AgentFinished(run.snapshot, agent.agent_id))


def peers_of(run: Run, agent_id: str) -> list[Proposal]:
    """The proposals of the other agents (not the agent's own, nor its extra samples)."""
    return [p for aid, p in sorted(run.snapshot.progress.proposals.items()) if agent_of(aid) != agent_id]


async def critique(run: Run, agent: AgentSpec, round_: int) -> None:
    """Critiques of the peers whose revision will read them; no call when there are none (every peer passes
    everything or gets a new attempt; an extra sample is never revised), since a critique nobody reads is a call
    spent for nothing."""
    progress, task = run.snapshot.progress, run.snapshot.task
    peers = [
        p
        for p in peers_of(run, agent.agent_id)
        if p.author_id == agent_of(p.author_id)  # an extra sample is never revised: nobody would read it
        and verification.reads_critiques(task, progress.evidence.get(p.author_id), progress.checks.get(p.author_id))
    ]
    if not peers:
        return
    evidence = {p.author_id: findings(run, p.author_id) for p in peers}
    prompt = prompts.critique(run.snapshot.task, round_, peers, evidence)
    completion = await run.call(agent, Stage.CRITIQUE, round_, prompt)
    if completion is None:
        return
    found = parse_critiques(completion.content, [p.author_id for p in peers])
    new = tuple(Critique(agent.agent_id, target, round_, text) for target, text in sorted(found.items()))
    run.snapshot = run.snapshot.with_progress(critiques=(*run.snapshot.progress.critiques, *new))
    run.emit(AgentFinished(run.snapshot, agent.agent_id))


async def revise(run: Run, agent: AgentSpec, round_: int) -> None:
    own = run.snapshot.progress.proposals.get(agent.agent_id)
    if own is None:
        return
    progress = run.snapshot.progress
    if not verification.revised(
        run.snapshot.task, progress.evidence.get(own.author_id), progress.checks.get(own.author_id)
    ):
        return  # kept as it is: nothing to fix, or nothing a revision was seen to fix (verification.py)
    failures = spec_failures(progress.evidence.get(own.author_id), verification.spec_of(run.snapshot.task))
    if failures:  # it fails the task's own tests: a new attempt, told how (see prompts.retry); nobody critiqued it
        prompt = prompts.retry(run.snapshot.task, round_, failures)
    else:
        received = sorted(  # by critic, so the prompt does not depend on which peer answered first
            f"{c.critic_id}: {c.text}"
            for c in progress.critiques
            if c.target_id == agent.agent_id and c.round == round_
        )
        prompt = prompts.revise(run.snapshot.task, round_, own, received, findings(run, own.author_id))
    completion = await run.call(agent, Stage.REVISE, round_, prompt)
    if completion is None:
        return
    # An empty revision keeps the previous text as this round's revision rather than losing the proposal.
    text = strip_proposal_wrapper(prompts.close_fence(completion.content)) or own.content
    if failures:
        gains, before, now = await verification.retry_gains(
            run.snapshot.task, progress.evidence.get(own.author_id), text, round_, verifier=run.verifier
        )
        if not gains:  # the version it would replace stays, with its evidence; the call's tokens are accounted
            log.info("retry_discarded", agent_id=agent.agent_id, round=round_, spec_passed=before, retry_passed=now)
            return
    current = run.snapshot.progress.proposals.get(agent.agent_id, own)
    run.set_proposal(replace(current, content=text, revisions=(*current.revisions, text)))
    checks = {a: c for a, c in run.snapshot.progress.checks.items() if a != agent.agent_id}
    run.snapshot = run.snapshot.with_progress(checks=checks)
    run.emit(AgentFinished(run.snapshot, agent.agent_id))


async def score_one(run: Run, agent: AgentSpec, round_: int) -> None:
    peers = peers_of(run, agent.agent_id)
    if not peers:
        return
    labels = prompts.blind_labels(agent.agent_id, run.snapshot.task_id, (p.author_id for p in peers))
    by_author = {p.author_id: p for p in peers}
    prompt = prompts.score(run.snapshot.task, [(label, by_author[author]) for label, author in labels])
    completion = await run.call(agent, Stage.SCORE, round_, prompt)
    if completion is None:
        return
    author_of = dict(labels)
    found = parse_scores(completion.content, list(author_of))
    new = tuple(PeerScore(agent.agent_id, author_of[t], s, why) for t, (s, why) in sorted(found.items()))
    run.snapshot = run.snapshot.with_progress(peer_scores=(*run.snapshot.progress.peer_scores, *new))
    run.emit(AgentFinished(run.snapshot, agent.agent_id))


async def current_checks(run: Run, proposals: list[Proposal]) -> dict[str, CheckSuite]:
    """The latest verify stage's checks, when they are of these very proposals; else checked now."""
    known = run.snapshot.progress.checks  # a revision drops its author's entry until the next verify
    if all(p.author_id in known for p in proposals):
        return {p.author_id: known[p.author_id] for p in proposals}
    return await check_all(run, proposals)


async def check_all(run: Run, proposals: list[Proposal]) -> dict[str, CheckSuite]:
    requirements = run.snapshot.task.requirements
    suites = await asyncio.gather(*(run.checker.check(p.content, requirements) for p in proposals))
    return {p.author_id: suite for p, suite in zip(proposals, suites, strict=True)}


def findings(run: Run, author_id: str) -> str:
    progress = run.snapshot.progress
    suite = progress.checks.get(author_id)
    return findings_text(
        progress.evidence.get(author_id),
        verification.spec_of(run.snapshot.task),
        suite.lint.errors if suite else (),
        suite.policy.violations if suite else (),
    )


async def design(run: Run, round_: int) -> tuple[str, ...]:
    """The probes, made once (before the first verify): the test designer's calls of what the task names (its
    stubs, its prose signatures), by the first agent at temperature 0, then the task's examples with one argument
    changed (`example_mutants`, no model call). No probe without such names, without a sandbox to run them or
    without two solutions to tell apart; a failed designer call leaves the mutants and drops nobody."""
    progress, task = run.snapshot.progress, run.snapshot.task
    alive = run.snapshot.alive_agents()
    if progress.probes or round_ != 0 or not alive or len(progress.proposals) < 2 or task.role is not Role.DEV:
        return progress.probes
    if run.verifier is None or not run.verifier.availability().available:
        return ()
    spec = verification.spec_of(task)
    wanted = spec.names
    if not wanted:
        return ()
    codes = [python_code(p.content) for _, p in sorted(progress.proposals.items())]
    defining = next((c for c in codes if set(wanted) <= defined_names(c)), codes[0])
    prompt = prompts.design_probes(task, signatures(defining))
    completion = await run.call(replace(alive[0], temperature=0.0), Stage.VERIFY, round_, prompt, drop=False)
    designed = probe_calls(prompts.close_fence(completion.content), wanted) if completion is not None else []
    probes = tuple(dict.fromkeys([*designed, *example_mutants(spec.units, wanted)]))
    run.snapshot = run.snapshot.with_progress(probes=probes)
    return probes


async def verify(run: Run, round_: int) -> None:
    probes = await design(run, round_)
    progress = run.snapshot.progress
    checks, evidence = await verification.verify(
        run.snapshot.task, progress.proposals, round_, checker=run.checker, verifier=run.verifier, probes=probes
    )
    run.snapshot = run.snapshot.with_progress(
        checks=checks, evidence=evidence, evidence_log=(*progress.evidence_log, *evidence.values())
    )


def rank(run: Run, proposals: list[Proposal], checks: dict[str, CheckSuite]) -> tuple[RankedProposal, ...]:
    progress = run.snapshot.progress
    return rank_by_evidence(
        proposals,
        checks,
        progress.peer_scores,
        evidence=progress.evidence,
        spec=verification.spec_of(run.snapshot.task, progress.probes),
        critiques=progress.critiques,
        usage=run.snapshot.usage_by_agent(),
    )


async def score(run: Run, round_: int) -> None:
    """Peer review (LLM) and any missing checks at the same time; then the verification-first ranking. With
    rounds = 0 (best-of-N with verification), or once the token budget stopped the run, there is no peer review."""
    final = list(run.snapshot.progress.proposals.values())
    scorers = run.snapshot.alive_agents() if budgeting.peer_review_runs(run) else ()
    checks, _ = await asyncio.gather(
        current_checks(run, final), asyncio.gather(*(score_one(run, a, round_) for a in scorers))
    )
    progress = run.snapshot.progress
    ranked = rank(run, [progress.proposals[p.author_id] for p in final if p.author_id in progress.proposals], checks)
    run.update(results=ranked, winner_id=ranked[0].proposal.author_id if ranked else "")
    if ranked:
        run.finish(DeliberationStatus.COMPLETED)


AGENT_STEPS = {Stage.PROPOSE: propose, Stage.CRITIQUE: critique, Stage.REVISE: revise}
"""The stages that are one call per agent, fanned out over the council."""
