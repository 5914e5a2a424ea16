"""A plan that checks itself, scripted for the fake LLM: DEV's peers prefer a buggy `textstats` module that DEV's
acceptance test cannot tell from the correct one, QA's tests catch it (a second QA suite fails on everything), and
DEVOPS's Deployment runs the module. Shared by the integration and end-to-end tests of plan cross-checks."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.model import Role
from orchestrator.domain.plans import ApprovedPlan, PlanSubtask

MODULE = "Write the Python module `textstats` with `word_count(text: str) -> int`: the number of words in text."
BUGGY = "```python\n# variant: favourite\ndef word_count(text):\n    return len(text.split(' '))\n```"
CORRECT = "```python\n# variant: plain\ndef word_count(text):\n    return len(text.split())\n```"
WRONG = "```python\n# variant: broken\ndef word_count(text):\n    return 0\n```"
QA_GOOD = """```python
# tests
import pytest
from textstats import word_count


def test_two_words():
    assert word_count("hello world") == 2


def test_empty_text_has_no_words():
    assert word_count("") == 0


def test_runs_of_spaces_separate_one_word():
    assert word_count("  a   b ") == 2


def test_none_is_refused():
    with pytest.raises(AttributeError):
        word_count(None)
```"""
QA_FAILS_EVERYTHING = """```python
# tests
from textstats import word_count


def test_one_word():
    assert word_count("hello") == 7
```"""
OPS_GOOD = """# ops: good
```yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: textstats}
spec:
  replicas: 1
  selector: {matchLabels: {app: textstats}}
  template:
    metadata: {labels: {app: textstats}}
    spec:
      containers:
        - name: textstats
          image: python:3.11-slim
          command: ["python", "-m", "textstats"]
          resources: {limits: {cpu: 100m, memory: 64Mi}}
```"""
OPS_OTHER = OPS_GOOD.replace("# ops: good", "# ops: other").replace('"-m", "textstats"', '"app.py"')
SCRIPTED = {
    "agent-dev-001": BUGGY,
    "agent-dev-002": CORRECT,
    "agent-dev-003": WRONG,
    "agent-qa-001": QA_GOOD,
    "agent-qa-002": QA_FAILS_EVERYTHING,
    "agent-devops-001": OPS_GOOD,
    "agent-devops-002": OPS_OTHER,
    "agent-devops-003": OPS_OTHER,
}
# The peers like the buggy DEV proposal best, so it wins DEV's own deliberation: DEV's acceptance test cannot tell.
PEERS = {"variant: favourite": 10, "variant: plain": 2, "variant: broken": 5, "ops: good": 9, "ops: other": 1}

DEV_ACCEPTANCE = "assert word_count('a b') == 2"


def approved_plan(plan_id: str) -> ApprovedPlan:
    """DEV, then QA and DEVOPS, both depending on DEV."""
    return ApprovedPlan(
        plan_id=plan_id,
        story_id="story-checks",
        approved_by="po",
        roles=(),
        timestamp="t",
        title="Text statistics",
        subtasks=(
            PlanSubtask("dev", Role.DEV, "Implement textstats", MODULE, acceptance_tests=DEV_ACCEPTANCE),
            PlanSubtask("qa", Role.QA, "Test textstats", "Write pytest tests for textstats.", depends_on=("dev",)),
            PlanSubtask("ops", Role.DEVOPS, "Deploy textstats", "Write its Deployment.", depends_on=("dev",)),
        ),
    )


def plan_payload(plan_id: str) -> dict[str, Any]:
    """The same plan as a `planning.plan.approved` payload."""
    plan = approved_plan(plan_id)
    return {
        "story_id": plan.story_id,
        "plan_id": plan_id,
        "approved_by": plan.approved_by,
        "timestamp": "2026-12-07T10:00:00Z",
        "plan": {"title": plan.title},
        "subtasks": [
            {
                "subtask_id": s.subtask_id,
                "role": s.role.value,
                "title": s.title,
                "description": s.description,
                "depends_on": list(s.depends_on),
                "acceptance_tests": s.acceptance_tests,
            }
            for s in plan.subtasks
        ],
    }
