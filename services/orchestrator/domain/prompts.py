"""The prompts of each stage and the JSON shapes the structured stages ask for.

Every agent of a stage gets the same instructions; diversity comes from its temperature and seed. The user
message starts with a `Stage: <name>` line and embeds peer proposals as `<proposal author="ID">…</proposal>`
blocks, which keeps the prompt readable for a model and machine-checkable for tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.domain.model import Proposal, Role, Stage, TaskSpec

PERSONAS: dict[Role, str] = {
    Role.DEV: "a senior software developer who writes correct, idiomatic, tested code",
    Role.QA: "a QA engineer who designs thorough, automated tests and finds edge cases",
    Role.ARCHITECT: "a software architect who weighs trade-offs, interfaces and failure modes",
    Role.DEVOPS: "a DevOps engineer who writes safe, reproducible deployment and CI configuration",
    Role.DATA: "a data engineer who designs schemas, pipelines and queries that are correct and efficient",
}

CRITIQUE_SCHEMA_NAME = "critiques"
SCORE_SCHEMA_NAME = "peer_scores"

MAX_CRITIQUE_CHARS = 600
MAX_RATIONALE_CHARS = 300


def critique_schema(peer_ids: list[str]) -> dict[str, Any]:
    """One critique per peer. The enum keeps a grammar-constrained model from inventing author names, and the
    length bounds keep the JSON complete within a small max_tokens."""
    return {
        "type": "object",
        "properties": {
            "critiques": {
                "type": "array",
                "minItems": len(peer_ids),
                "maxItems": len(peer_ids),
                "items": {
                    "type": "object",
                    "properties": {
                        "target": {"type": "string", "enum": peer_ids},
                        "critique": {"type": "string", "maxLength": MAX_CRITIQUE_CHARS},
                    },
                    "required": ["target", "critique"],
                },
            }
        },
        "required": ["critiques"],
    }


def score_schema(peer_ids: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "scores": {
                "type": "array",
                "minItems": len(peer_ids),
                "maxItems": len(peer_ids),
                "items": {
                    "type": "object",
                    "properties": {
                        "target": {"type": "string", "enum": peer_ids},
                        "score": {"type": "integer", "minimum": 1, "maximum": 10},
                        "rationale": {"type": "string", "maxLength": MAX_RATIONALE_CHARS},
                    },
                    "required": ["target", "score"],
                },
            }
        },
        "required": ["scores"],
    }


@dataclass(frozen=True)
class Prompt:
    """A chat prompt for one agent call; `schema_name`/`schema` ask for structured JSON output."""

    system: str
    user: str
    schema_name: str = ""
    schema: Mapping[str, Any] | None = None


def _system(task: TaskSpec) -> str:
    return (
        f"You are {PERSONAS[task.role]}, one member of a council of {task.role.value} agents. "
        "Be concrete and brief. Put code and configuration in fenced blocks tagged with their language."
    )


def _context(task: TaskSpec) -> str:
    parts = [f"Task:\n{task.description}"]
    if task.rubric:
        parts.append(f"Rubric:\n{task.rubric}")
    if task.requirements:
        parts.append("Requirements:\n" + "\n".join(f"- {r}" for r in task.requirements))
    if task.metadata:
        parts.append("Context:\n" + "\n".join(f"- {k}: {v}" for k, v in sorted(task.metadata.items())))
    return "\n\n".join(parts)


def _proposal_block(author_id: str, content: str) -> str:
    return f'<proposal author="{author_id}">\n{content}\n</proposal>'


def propose(task: TaskSpec) -> Prompt:
    user = f"Stage: {Stage.PROPOSE}\n\n{_context(task)}\n\nWrite your proposal."
    return Prompt(_system(task), user)


def critique(task: TaskSpec, round_: int, peers: Iterable[Proposal]) -> Prompt:
    peers = list(peers)
    blocks = "\n\n".join(_proposal_block(p.author_id, p.content) for p in peers)
    user = (
        f"Stage: {Stage.CRITIQUE}\nRound: {round_}\n\n{_context(task)}\n\n"
        f"Your peers proposed:\n\n{blocks}\n\n"
        "For each peer proposal give one specific critique: errors, missing requirements, risks. "
        'Answer as JSON: {"critiques": [{"target": "<author id>", "critique": "..."}]}.'
    )
    return Prompt(_system(task), user, CRITIQUE_SCHEMA_NAME, critique_schema([p.author_id for p in peers]))


def revise(task: TaskSpec, round_: int, own: Proposal, critiques: Iterable[str]) -> Prompt:
    received = "\n".join(f"- {c}" for c in critiques) or "- (no critiques received)"
    user = (
        f"Stage: {Stage.REVISE}\nRound: {round_}\n\n{_context(task)}\n\n"
        f"Your current proposal:\n\n{_proposal_block(own.author_id, own.content)}\n\n"
        f"Critiques you received:\n{received}\n\n"
        "Rewrite your proposal in full, addressing the critiques that are right."
    )
    return Prompt(_system(task), user)


def score(task: TaskSpec, peers: Iterable[Proposal]) -> Prompt:
    peers = list(peers)
    blocks = "\n\n".join(_proposal_block(p.author_id, p.content) for p in peers)
    user = (
        f"Stage: {Stage.SCORE}\n\n{_context(task)}\n\n"
        f"Final proposals of your peers:\n\n{blocks}\n\n"
        "Score each one from 1 (unusable) to 10 (excellent) against the rubric and requirements. "
        'Answer as JSON: {"scores": [{"target": "<author id>", "score": 7, "rationale": "..."}]}.'
    )
    return Prompt(_system(task), user, SCORE_SCHEMA_NAME, score_schema([p.author_id for p in peers]))
