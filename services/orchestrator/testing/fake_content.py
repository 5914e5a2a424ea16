"""Deterministic answers of the fake LLM: parse the orchestrator's prompt and write a plausible reply.

Everything here is pure (no I/O, no clock, no randomness): the same prompt and agent id always give the same
text, so tests can assert on it. The prompt format is the one built by `orchestrator.domain.prompts`:
a `Stage: <name>` first line, an optional `Round: N` line, a `Task:` section, an optional `Requirements:`
list and peer proposals embedded as `<proposal author="ID">…</proposal>` blocks.

Propose/revise answers are markdown with one fenced code block whose kind is picked from
sha256(agent id + task): valid Python, Python with an undefined name (a lint error), YAML, bash or JSON
(`python_broken` with a SyntaxError only when forced). Critique and score answers are JSON; a score is
1..4 for a peer whose Python block does not parse and 5..10 otherwise, lower for lint errors and
missing requirements.
"""

from __future__ import annotations

import ast
import builtins
import enum
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.domain.model import Stage
from orchestrator.domain.prompts import ANSWER_FORMATS, CODE_FORMAT
from orchestrator.domain.python_names import bound_names, read_names


class Variant(enum.StrEnum):
    """The kind of fenced code block a proposal carries."""

    PYTHON_VALID = "python_valid"
    PYTHON_LINT = "python_lint"
    YAML = "yaml"
    BASH = "bash"
    JSON = "json"
    PYTHON_BROKEN = "python_broken"


HASHED_VARIANTS: tuple[Variant, ...] = (
    Variant.PYTHON_VALID,
    Variant.PYTHON_LINT,
    Variant.YAML,
    Variant.BASH,
    Variant.JSON,
)
"""The variants an agent can draw from its hash (PYTHON_BROKEN only comes from configuration)."""

IGNORES_REQUIREMENTS: frozenset[Variant] = frozenset({Variant.PYTHON_LINT})
"""Variants whose proposals do not mention the task's requirements."""

_LANGUAGE: dict[Variant, str] = {
    Variant.PYTHON_VALID: "python",
    Variant.PYTHON_LINT: "python",
    Variant.PYTHON_BROKEN: "python",
    Variant.YAML: "yaml",
    Variant.BASH: "bash",
    Variant.JSON: "json",
}

_PLANS: dict[str, tuple[str, ...]] = {
    "python": (
        "Write a small, typed function with a docstring",
        "Cover the edge cases with unit tests",
        "Keep I/O at the edges so the core stays pure",
        "Validate inputs early and fail loudly",
    ),
    "yaml": (
        "Describe the desired state declaratively",
        "Pin versions and resources explicitly",
        "Keep secrets out of the file",
        "Validate the configuration in CI before applying it",
    ),
    "bash": (
        "Fail fast with `set -euo pipefail`",
        "Make every step idempotent",
        "Log each step for the audit trail",
        "Check preconditions before changing anything",
    ),
    "json": (
        "Define the data shape explicitly",
        "Keep field names stable for consumers",
        "Version the document",
        "Validate it against a schema",
    ),
}

_TIPS: tuple[str, ...] = (
    "add a test for the empty-input case",
    "document the failure modes",
    "say how it is rolled back",
    "name the inputs and outputs explicitly",
    "bound the resources it may use",
)

_SECTION_END = (
    r"\n\n(?:Rubric:|Requirements:|Context:|Your |Final proposals|Write your proposal|"
    + "|".join(re.escape(f[:24]) for f in (CODE_FORMAT, *ANSWER_FORMATS.values()))
    + ")"
)
_TASK_RE = re.compile(r"^Task:\n(.*?)(?=" + _SECTION_END + r"|\Z)", re.DOTALL | re.MULTILINE)
_PROPOSAL_RE = re.compile(r'<proposal author="([^"]*)">\n?(.*?)\n?</proposal>', re.DOTALL)
_FENCE_RE = re.compile(r"```([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_BUILTINS: frozenset[str] = frozenset(dir(builtins))


@dataclass(frozen=True)
class ParsedPrompt:
    """What the fake understands of a user message."""

    stage: str | None
    round: int
    task: str
    requirements: tuple[str, ...] = ()
    proposals: tuple[tuple[str, str], ...] = ()
    """(author id, content) of every embedded `<proposal>` block, in prompt order."""
    critiques: tuple[str, ...] = ()
    """The critiques listed under `Critiques you received:` (revise stage)."""


@dataclass(frozen=True)
class Assessment:
    """What a critic notices in a peer's proposal."""

    language: str | None
    python_parses: bool | None
    """None when the proposal has no Python block."""
    code_note: str
    missing_requirements: tuple[str, ...]
    undefined_names: tuple[str, ...] = ()


def digest(*parts: str) -> int:
    """A stable integer from text (sha256), the only source of variety in the fake."""
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


# --- prompt parsing -----------------------------------------------------------------------------------


def _header(text: str, name: str) -> str | None:
    match = re.search(rf"^{name}:[ \t]*(\S+)[ \t]*$", text, re.MULTILINE)
    return match.group(1) if match else None


def _dash_list(text: str, header: str) -> tuple[str, ...]:
    """The `- item` lines right after a `header` line, up to the first line that is not one."""
    match = re.search(rf"^{re.escape(header)}\n", text, re.MULTILINE)
    if match is None:
        return ()
    items: list[str] = []
    for line in text[match.end() :].splitlines():
        if not line.startswith("- "):
            break
        items.append(line[2:].strip())
    return tuple(items)


def parse_prompt(user: str) -> ParsedPrompt:
    """Parse the user message of an orchestrator prompt; unknown formats give stage None. A prompt that starts with
    its `Task:` section and has no stage header is the plain proposal (`prompts.propose_plain`)."""
    task_match = _TASK_RE.search(user)
    stage = _header(user, "Stage") or (str(Stage.PROPOSE) if user.startswith("Task:") and task_match else None)
    round_text = _header(user, "Round")
    task = task_match.group(1).strip() if task_match else user.strip()
    critiques = tuple(c for c in _dash_list(user, "Critiques you received:") if c != "(no critiques received)")
    return ParsedPrompt(
        stage=stage.lower() if stage else None,
        round=int(round_text) if round_text and round_text.isdigit() else 0,
        task=task,
        requirements=_dash_list(user, "Requirements:"),
        proposals=tuple((m.group(1), m.group(2)) for m in _PROPOSAL_RE.finditer(user)),
        critiques=critiques,
    )


# --- proposals ----------------------------------------------------------------------------------------


def summarize(task: str, limit: int = 80) -> str:
    """The task's first non-empty line, whitespace collapsed, at most `limit` characters."""
    first = next((line for line in task.splitlines() if line.strip()), "the task")
    text = " ".join(first.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _safe(text: str, limit: int = 60) -> str:
    """Text safe inside a docstring, a quoted YAML scalar or a shell string."""
    cleaned = " ".join(re.sub(r"[^A-Za-z0-9 ,.:_-]", " ", text).split())
    return (cleaned[:limit].rstrip() or "task").rstrip(".")


def _slug(text: str, sep: str = "_") -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())[:4]
    slug = sep.join(words) or "task"
    return slug[:40].strip(sep)


def choose_variant(agent_id: str, task: str, *, broken: bool = False, valid: bool = False) -> Variant:
    """The code block `agent_id` writes for `task`; `broken`/`valid` force a Python block."""
    if broken:
        return Variant.PYTHON_BROKEN
    if valid:
        return Variant.PYTHON_VALID
    return HASHED_VARIANTS[digest(agent_id, task) % len(HASHED_VARIANTS)]


def _python_code(variant: Variant, task: str) -> str:
    name, doc = "handle_" + _slug(task), _safe(summarize(task))
    if variant is Variant.PYTHON_BROKEN:
        return f'def {name}(:\n    """{doc}."""\n    return None\n'
    if variant is Variant.PYTHON_LINT:
        return f'def {name}(items):\n    """{doc}."""\n    return [normalise(item) for item in items]\n'
    return (
        f"def {name}(items: list[str]) -> list[str]:\n"
        f'    """{doc}."""\n'
        "    result: list[str] = []\n"
        "    for item in items:\n"
        "        cleaned = item.strip()\n"
        "        if cleaned:\n"
        "            result.append(cleaned)\n"
        "    return result\n"
    )


def _yaml_code(task: str) -> str:
    return (
        f"name: {_slug(task, '-')}\n"
        f'description: "{_safe(summarize(task))}"\n'
        "steps:\n"
        "  - name: prepare\n"
        "    run: make setup\n"
        "  - name: verify\n"
        "    run: make test\n"
    )


def _bash_code(task: str) -> str:
    return (
        "#!/usr/bin/env bash\n"
        "set -euo pipefail\n\n"
        f'TASK="{_slug(task, "-")}"\n'
        'echo "starting ${TASK}"\n'
        "make build\n"
        "make test\n"
        'echo "done ${TASK}"\n'
    )


def _json_code(task: str, requirements: Sequence[str]) -> str:
    doc = {
        "task": summarize(task),
        "version": 1,
        "steps": ["prepare", "verify"],
        "requirements": [*requirements],
    }
    return json.dumps(doc, indent=2) + "\n"


def code_block(variant: Variant, task: str, requirements: Sequence[str]) -> str:
    """The fenced code block of a proposal, language tag included."""
    language = _LANGUAGE[variant]
    if language == "python":
        code = _python_code(variant, task)
    elif variant is Variant.YAML:
        code = _yaml_code(task)
    elif variant is Variant.BASH:
        code = _bash_code(task)
    else:
        code = _json_code(task, requirements)
    return f"```{language}\n{code}```"


def _plan(variant: Variant, seed: int) -> list[str]:
    pool = _PLANS[_LANGUAGE[variant]]
    count = 2 + seed % 3
    start = (seed // 3) % len(pool)
    return [pool[(start + i) % len(pool)] for i in range(count)]


def render_proposal(agent_id: str, parsed: ParsedPrompt, variant: Variant, revision_note: str = "") -> str:
    """A markdown proposal: heading, optional revision note, plan, requirements, one code block."""
    seed = digest(agent_id, parsed.task, variant)
    lines = [f"## Proposal: {summarize(parsed.task)}", ""]
    if revision_note:
        lines += [revision_note, ""]
    lines += [f"Approach by {agent_id}.", "", "Plan:"]
    lines += [f"- {step}" for step in _plan(variant, seed)]
    if parsed.requirements and variant not in IGNORES_REQUIREMENTS:
        lines += ["", "Requirements covered:"]
        lines += [f"- {req}: handled by the code below" for req in parsed.requirements]
    lines += ["", code_block(variant, parsed.task, parsed.requirements)]
    return "\n".join(lines) + "\n"


def revision_note(round_: int, critiques: Sequence[str]) -> str:
    """The line a revision adds so that it differs from the original."""
    if not critiques:
        return f"Revision {round_}: no critiques received; kept the approach."
    return f"Revision {round_}: addressed: {summarize(critiques[0], 100)}"


# --- critique and score -------------------------------------------------------------------------------


def undefined_names(tree: ast.AST) -> tuple[str, ...]:
    """Names read but never bound anywhere in the module (scope-insensitive, good enough for a fake)."""
    return tuple(sorted(read_names(tree) - bound_names(tree) - _BUILTINS))


def _assess_python(code: str) -> tuple[bool, str, tuple[str, ...]]:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return False, f"its python block does not parse (SyntaxError: {exc.msg}, line {exc.lineno})", ()
    names = undefined_names(tree)
    if names:
        return True, f"its python block parses but uses undefined name(s): {', '.join(names)}", names
    return True, "its python block parses cleanly", ()


def _assess_other(language: str, code: str) -> str:
    if language == "json":
        try:
            json.loads(code)
        except ValueError:
            return "its json block is not valid JSON"
        return "its json block is valid JSON"
    lines = len(code.strip().splitlines())
    return f"its {language or 'untagged'} block has {lines} line(s)"


def assess(content: str, requirements: Sequence[str]) -> Assessment:
    """Inspect a proposal: its first code block (Python is parsed) and the requirements it mentions."""
    lowered = content.lower()
    missing = tuple(r for r in requirements if r.lower() not in lowered)
    fence = _FENCE_RE.search(content)
    if fence is None:
        return Assessment(None, None, "it has no fenced code block", missing)
    language, code = fence.group(1).lower(), fence.group(2)
    if language in ("python", "py", "python3"):
        parses, note, names = _assess_python(code)
        return Assessment("python", parses, note, missing, names)
    return Assessment(language, None, _assess_other(language, code), missing)


def _requirements_note(assessment: Assessment, total: int) -> str:
    if not total:
        return "no explicit requirements to check"
    if not assessment.missing_requirements:
        return f"it covers all {total} requirement(s)"
    return f"it does not mention requirement '{assessment.missing_requirements[0]}'"


def critique_text(critic_id: str, content: str, requirements: Sequence[str]) -> str:
    """One concrete critique of a peer proposal."""
    found = assess(content, requirements)
    tip = _TIPS[digest(critic_id, content) % len(_TIPS)]
    return f"{found.code_note}; {_requirements_note(found, len(requirements))}. Suggestion: {tip}."


def peer_score(scorer_id: str, content: str, requirements: Sequence[str]) -> tuple[int, str]:
    """(score 1..10, rationale): 1..4 when the Python block does not parse, else 5..10 by quality."""
    found = assess(content, requirements)
    seed = digest(scorer_id, content)
    rationale = f"{found.code_note}; {_requirements_note(found, len(requirements))}"
    if found.python_parses is False:
        return 1 + seed % 4, rationale
    score = 10 - seed % 3
    score -= 2 if found.undefined_names else 0
    score -= 1 if found.missing_requirements else 0
    score -= 2 if found.language is None else 0
    return max(5, score), rationale


def critiques_payload(agent_id: str, parsed: ParsedPrompt) -> dict[str, Any]:
    """The `{"critiques": [...]}` answer naming every embedded peer proposal."""
    items = [
        {"target": author, "critique": critique_text(agent_id, content, parsed.requirements)}
        for author, content in parsed.proposals
    ]
    return {"critiques": items}


def scores_payload(agent_id: str, parsed: ParsedPrompt) -> dict[str, Any]:
    """The `{"scores": [...]}` answer scoring every embedded peer proposal."""
    items: list[dict[str, Any]] = []
    for author, content in parsed.proposals:
        value, rationale = peer_score(agent_id, content, parsed.requirements)
        items.append({"target": author, "score": value, "rationale": rationale})
    return {"scores": items}


# --- entry point --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerOptions:
    """Per-call switches decided by the server configuration."""

    broken_python: bool = False
    valid_python: bool = False
    wrap_json: bool = False
    """Put the JSON in prose and a ```json fence, as a model ignoring `response_format` would."""
    scripted: str | None = None
    """The exact proposal text of every propose and revise answer."""
    score_markers: tuple[tuple[str, int], ...] = ()
    """(substring, score): peer review gives a proposal containing the substring that score."""


def _wrap(payload: dict[str, Any], stage: str) -> str:
    body = json.dumps(payload, indent=2)
    noun = "scores" if stage == Stage.SCORE else "critiques"
    return f"Here are my {noun}:\n```json\n{body}\n```\nHope this helps."


def _marked_scores(
    payload: dict[str, Any], parsed: ParsedPrompt, markers: tuple[tuple[str, int], ...]
) -> dict[str, Any]:
    contents = dict(parsed.proposals)
    for item in payload["scores"]:
        content = contents.get(item["target"], "")
        item["score"] = next((score for marker, score in markers if marker in content), item["score"])
    return payload


def answer(agent_id: str, parsed: ParsedPrompt, options: AnswerOptions) -> str:
    """The assistant message content for one call (without any `<think>` prefix)."""
    if parsed.stage in (Stage.CRITIQUE, Stage.SCORE):
        builder = critiques_payload if parsed.stage == Stage.CRITIQUE else scores_payload
        payload = builder(agent_id, parsed)
        if parsed.stage == Stage.SCORE and options.score_markers:
            payload = _marked_scores(payload, parsed, options.score_markers)
        return _wrap(payload, parsed.stage) if options.wrap_json else json.dumps(payload)
    if options.scripted is not None:
        return options.scripted
    variant = choose_variant(agent_id, parsed.task, broken=options.broken_python, valid=options.valid_python)
    note = revision_note(parsed.round, parsed.critiques) if parsed.stage == Stage.REVISE else ""
    return render_proposal(agent_id, parsed, variant, note)


def reasoning(agent_id: str, parsed: ParsedPrompt) -> str:
    """The hidden reasoning text used when the fake plays a thinking model."""
    return (
        f"{agent_id} thinking about stage {parsed.stage or 'unknown'} of '{summarize(parsed.task, 60)}' "
        f"with {len(parsed.proposals)} peer proposal(s) and {len(parsed.requirements)} requirement(s)."
    )
