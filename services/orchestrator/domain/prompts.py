"""The prompts of each stage and the JSON shapes the structured stages ask for.

Every agent of a stage gets the same instructions; diversity comes from its temperature and seed. The user
message starts with a `Stage: <name>` line and embeds peer proposals as `<proposal author="ID">…</proposal>`
blocks, which keeps the prompt readable for a model and machine-checkable for tests.

Everything a client or an agent wrote (task, rubric, requirements, metadata, proposals, critiques) is untrusted:
before it is embedded, the `<` of any `<proposal`/`</proposal` tag in it becomes `&lt;`, so only this module can
open or close a proposal block, and no such text can start a line that reads as one of the prompt's own section
headers (`Stage:`, `Requirements:`, ...): one-line items (requirements, metadata, critiques) have their line
breaks folded into spaces, and a header-like line of the task or rubric is indented. Benign text is unchanged.
"""

from __future__ import annotations

import hashlib
import html
import random
import re
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
    stop: tuple[str, ...] = ()
    """Where the model stops writing (the OpenAI `stop` parameter, which llama.cpp and vLLM accept)."""


# Fullwidth and small "less-than" signs too: a model may read them as the real thing.
_STRUCTURAL_TAG = re.compile(r"[<\uff1c\ufe64](?=\s*/?\s*proposal)", re.IGNORECASE)
_SECTION_HEADERS = (
    "Stage", "Round", "Task", "Rubric", "Requirements", "Context", "Your peers proposed",
    "Your current proposal", "Critiques you received", "Final proposals of your peers", "Acceptance tests",
    "Verification", "What verification found in your proposal",
)  # fmt: skip
_HEADER_LINE = re.compile(
    r"^(?=[ \t]*(?:" + "|".join(re.escape(h) for h in _SECTION_HEADERS) + r")[ \t]*:)", re.IGNORECASE | re.MULTILINE
)


def untrusted_text(text: str) -> str:
    """Multi-line untrusted text with no proposal tag and no line that poses as a section header."""
    lines = "\n".join(text.splitlines())  # \r, \u2028... count as line breaks to models and tests alike
    return _HEADER_LINE.sub("  ", _STRUCTURAL_TAG.sub("&lt;", lines))


def untrusted_line(text: str) -> str:
    """Untrusted text for a one-line item: line breaks folded into spaces, no proposal tag."""
    return _STRUCTURAL_TAG.sub("&lt;", " ".join(text.splitlines()))


def _attribute(value: str) -> str:
    return html.escape(" ".join(value.splitlines()), quote=True)


def _system(task: TaskSpec) -> str:
    return (
        f"You are {PERSONAS[task.role]}, one member of a council of {task.role.value} agents. "
        "Be concrete and brief. Put code and configuration in fenced blocks tagged with their language."
    )


def _context(task: TaskSpec) -> str:
    parts = [f"Task:\n{untrusted_text(task.description)}"]
    if task.rubric:
        parts.append(f"Rubric:\n{untrusted_text(task.rubric)}")
    if task.requirements:
        parts.append("Requirements:\n" + "\n".join(f"- {untrusted_line(r)}" for r in task.requirements))
    if task.metadata:
        items = sorted(task.metadata.items())
        parts.append("Context:\n" + "\n".join(f"- {untrusted_line(k)}: {untrusted_line(v)}" for k, v in items))
    if task.acceptance_tests:
        tests = untrusted_text(task.acceptance_tests)
        parts.append(f"Acceptance tests (your code must pass them):\n```python\n{tests}\n```")
    return "\n\n".join(parts)


def _proposal_block(author_id: str, content: str) -> str:
    # Inside the block a header-like line is only content: the block cannot be closed from within.
    body = _STRUCTURAL_TAG.sub("&lt;", content)
    return f'<proposal author="{_attribute(author_id)}">\n{body}\n</proposal>'


CODE_FORMAT = "If your proposal includes Python code, put the complete solution in one ```python block."
"""The propose, retry and revise prompts ask for the solution alone. Tests come from a stage of their own (the test
designer's probes, `design_probes`): asked for a second `# tests` block, the small model looped on it until
`max_tokens` (67 of 100 greedy HumanEval dev answers at commit 7a8b8bf), and its tests failed 35-52 % of correct
solutions. The parser stays lenient with models that still add tests."""

ANSWER_FORMATS = {
    Role.QA: "Answer with the tests alone, in one ```python block: plain `def test_...():` functions with asserts "
    "that import what they test from its module (`from module import name`). Do not write the code under test.",
    Role.DEVOPS: "Put each manifest or file in a fenced block tagged with its language (```yaml for Kubernetes "
    "manifests, ```dockerfile, ```bash); no Python unless the task asks for it.",
}
"""What a proposal is, for the roles whose deliverable is not the solution itself. Told to put "the complete
solution in one python block", the embedded model's QA agents copied the DEV module they were to test, and its
DEVOPS agents wrote their Deployment's YAML inside a python block (the demo's plan)."""


def answer_format(task: TaskSpec) -> str:
    return ANSWER_FORMATS.get(task.role, CODE_FORMAT)


CODE_STOP = ("\n```\n",)
"""A DEV (or QA) proposal ends at the closing fence of its code block: whatever follows (an explanation, a repeated
block, the repetition loop a small model falls into) would cost tokens and could only be noise. `close_fence` puts
the fence back."""


def code_stop(task: TaskSpec) -> tuple[str, ...]:
    """DEV's solution and QA's tests are one block each; DEVOPS may need several (a Deployment and a Dockerfile)."""
    return CODE_STOP if task.role in (Role.DEV, Role.QA) else ()


def close_fence(content: str) -> str:
    """A proposal cut at its stop sequence lacks the closing fence of its last block: it is put back."""
    if content.count("```") % 2 == 1:
        return content.rstrip() + "\n```"
    return content


def _verification(findings: str) -> str:
    return untrusted_text(findings) if findings else "- (nothing was checked)"


def propose(task: TaskSpec) -> Prompt:
    user = f"Stage: {Stage.PROPOSE}\n\n{_context(task)}\n\nWrite your proposal. {answer_format(task)}"
    return Prompt(_system(task), user, stop=code_stop(task))


PLAIN_SYSTEM = "You are a helpful assistant."
"""The system message of the plain proposal: the chat template's usual default, no persona."""


def propose_plain(task: TaskSpec) -> Prompt:
    """The task as a user would send it in one call: no persona, no council or stage framing, the same answer
    format. A DEV council asked for several samples per agent decodes it greedily as its first agent's own proposal
    (`protocol.stages.proposal_calls`)."""
    return Prompt(PLAIN_SYSTEM, f"{_context(task)}\n\n{answer_format(task)}", stop=code_stop(task))


def design_probes(task: TaskSpec, signatures: Iterable[str]) -> Prompt:
    """The test designer: calls (inputs only) that tell correct solutions from wrong ones. It writes no expected
    values: those come from the task alone (its examples); the calls' values only group the candidates."""
    listed = "\n".join(f"- `{untrusted_line(s)}`" for s in signatures) or "- (none found: use the task's names)"
    user = (
        f"Stage: {Stage.VERIFY}\n\n{_context(task)}\n\n"
        f"The solutions define:\n{listed}\n\n"
        "You are the test designer. Write up to 8 calls of these functions (or methods, on an instance built in "
        "the same expression) with inputs that would tell a correct solution from a wrong one: edge cases, "
        "empty and single-element inputs, the boundaries the task mentions. One call per line in one ```python "
        "block; no assert, no expected value, no print."
    )
    return Prompt("You are a QA engineer who designs inputs that find bugs. Be brief.", user, stop=CODE_STOP)


def critique(
    task: TaskSpec, round_: int, peers: Iterable[Proposal], findings: Mapping[str, str] | None = None
) -> Prompt:
    """Each peer proposal with what verification found in it (failing tests with their output, lint errors)."""
    peers = list(peers)
    findings = findings or {}
    blocks = "\n\n".join(
        _proposal_block(p.author_id, p.content)
        + (
            f"\nVerification of {_attribute(p.author_id)}:\n{_verification(findings[p.author_id])}"
            if p.author_id in findings
            else ""
        )
        for p in peers
    )
    user = (
        f"Stage: {Stage.CRITIQUE}\nRound: {round_}\n\n{_context(task)}\n\n"
        f"Your peers proposed:\n\n{blocks}\n\n"
        "For each peer proposal give one specific critique: errors, missing requirements, risks. "
        "Where verification found failing tests, explain the cause and the fix. "
        'Answer as JSON: {"critiques": [{"target": "<author id>", "critique": "..."}]}.'
    )
    return Prompt(_system(task), user, CRITIQUE_SCHEMA_NAME, critique_schema([p.author_id for p in peers]))


def revise(task: TaskSpec, round_: int, own: Proposal, critiques: Iterable[str], findings: str = "") -> Prompt:
    """The author's own proposal, what verification found in it, and the critiques it received."""
    received = "\n".join(f"- {untrusted_line(c)}" for c in critiques) or "- (no critiques received)"
    user = (
        f"Stage: {Stage.REVISE}\nRound: {round_}\n\n{_context(task)}\n\n"
        f"Your current proposal:\n\n{_proposal_block(own.author_id, own.content)}\n\n"
        f"What verification found in your proposal:\n{_verification(findings)}\n\n"
        f"Critiques you received:\n{received}\n\n"
        "Rewrite your proposal in full. Make it pass every failing test of the task (its examples and acceptance "
        "tests come first), fix the lint errors, and address the critiques that are right. "
        f"{answer_format(task)}"
    )
    return Prompt(_system(task), user, stop=code_stop(task))


def retry(task: TaskSpec, round_: int, failures: str) -> Prompt:
    """The revision of a proposal that fails the task's own tests (its examples, its acceptance tests): a new
    attempt at the task, told which of those tests an earlier solution failed and how, without the failed code.

    Measured on the quality benchmark's dev slice with the embedded 0.5B model: shown its own broken code, the
    critiques and the full findings (`revise`), a small model copies the code back, and no revision fixed a failing
    problem; a new-attempt prompt quoting the full findings made it loop. This one stays close to the propose
    prompt, where the model is at its best, and adds only what the run showed (README, Quality)."""
    user = (
        f"Stage: {Stage.REVISE}\nRound: {round_}\n\n{_context(task)}\n\n"
        "A solution to this task was run against the task's own examples and failed:\n"
        f"{untrusted_text(failures)}\n\n"
        f"Write your proposal: a correct solution. {answer_format(task)}"
    )
    return Prompt(_system(task), user, stop=code_stop(task))


def blind_labels(reviewer_id: str, task_id: str, authors: Iterable[str]) -> list[tuple[str, str]]:
    """Blind peer review: (neutral label, author id) pairs in an order of this reviewer's own (a deterministic
    shuffle seeded by reviewer and task), so no reviewer sees who wrote what or the same order as another."""
    ordered = sorted(authors)
    rng = random.Random(hashlib.sha256(f"{reviewer_id}/{task_id}".encode()).digest())
    rng.shuffle(ordered)
    return [(f"proposal-{chr(ord('A') + i)}", author) for i, author in enumerate(ordered)]


def score(task: TaskSpec, peers: Iterable[tuple[str, Proposal]]) -> Prompt:
    """Peer review of `(label, proposal)` pairs: the proposals appear under their neutral labels only."""
    peers = list(peers)
    blocks = "\n\n".join(_proposal_block(label, p.content) for label, p in peers)
    user = (
        f"Stage: {Stage.SCORE}\n\n{_context(task)}\n\n"
        f"Final proposals of your peers:\n\n{blocks}\n\n"
        "Score each one from 1 (unusable) to 10 (excellent) against the rubric and requirements. "
        'Answer as JSON: {"scores": [{"target": "<proposal label>", "score": 7, "rationale": "..."}]}.'
    )
    return Prompt(_system(task), user, SCORE_SCHEMA_NAME, score_schema([label for label, _ in peers]))
