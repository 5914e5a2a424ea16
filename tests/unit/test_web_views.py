"""What the web view computes from the records (matrix, proposals, timeline, usage, plan graph), its security
helpers, and the WEB_PORT setting."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.adapters.web import views
from orchestrator.adapters.web.plan_graph import plan_graph
from orchestrator.adapters.web.rendering import highlight
from orchestrator.adapters.web.security import request_token, safe_next
from orchestrator.config import load_settings
from orchestrator.domain.cross_checks import CheckKind, CheckStatus, CrossCheck, FollowUp
from orchestrator.domain.errors import ConfigError
from orchestrator.domain.model import DeliberationStatus, Role
from orchestrator.domain.plans import ApprovedPlan, PlanDispatch, PlanSubtask, SubtaskRecord, SubtaskState
from orchestrator.testing.web_records import ranked_deliberation


def test_matrix_columns_are_grouped_by_source_and_rows_follow_the_ranking() -> None:
    d = ranked_deliberation("m-1", agents=3, tests=12)
    m = views.evidence_matrix(d)
    assert [g.source for g in m.groups] == ["example", "acceptance", "agent", "agent", "agent"]
    assert [g.label for g in m.groups][2:] == [
        "tests by agent-dev-001",
        "tests by agent-dev-002",
        "tests by agent-dev-003",
    ]
    assert m.columns == 12
    assert [r.author_id for r in m.rows] == ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
    assert [r.rank for r in m.rows] == [1, 2, 3]
    winner = m.rows[0]
    assert winner.passed == winner.total == 12 and all(c is not None and c.passed for c in winner.cells)
    loser = m.rows[2]
    failed = [c for c in loser.cells if c is not None and not c.passed]
    assert failed and all(c.text.startswith("expected") for c in failed)


def test_agreement_groups_get_one_label_each() -> None:
    m = views.evidence_matrix(ranked_deliberation("m-2", agents=3))
    assert m.rows[0].group == m.rows[1].group == "A" and m.rows[2].group == "B"
    assert m.agreement_groups == (("A", ("agent-dev-001", "agent-dev-002")), ("B", ("agent-dev-003",)))


def test_a_running_deliberation_shows_its_latest_evidence_unranked() -> None:
    done = ranked_deliberation("m-3", agents=2, tests=6)
    running = replace(done, results=(), winner_id="")
    m = views.evidence_matrix(running)
    assert [r.rank for r in m.rows] == [0, 0] and m.columns == 6
    assert [p.rank for p in views.proposal_views(running)] == [0, 0]


def test_columns_sort_by_test_number_not_text() -> None:
    d = ranked_deliberation("m-4", agents=1, tests=72)  # 12 examples: example-10 comes after example-9
    examples = views.evidence_matrix(d).groups[0].test_ids
    assert examples[:3] == ("example-0", "example-1", "example-2") and examples[-2:] == ("example-10", "example-11")


def test_proposal_text_splits_into_prose_and_fenced_code() -> None:
    parts = views.segments("Intro\n```python\nx = 1\n```\nmiddle\n~~~\nplain\n~~~\nend")
    assert parts == [
        views.Segment("Intro"),
        views.Segment("x = 1", "python"),
        views.Segment("middle"),
        views.Segment("plain", "text"),
        views.Segment("end"),
    ]


def test_revisions_carry_the_diff_against_the_one_before() -> None:
    p = ranked_deliberation("m-5").results[0].proposal
    revs = views.revisions(p)
    assert [r.number for r in revs] == [1, 2] and revs[0].diff == ()
    kinds = {line.kind for line in revs[1].diff}
    assert {"add", "del"} <= kinds
    assert any("# first try" in line.text for line in revs[1].diff if line.kind == "del")


def test_the_first_revision_is_diffed_against_the_original_proposal_when_it_is_known() -> None:
    p = ranked_deliberation("m-5b").results[0].proposal
    first = views.revisions(p, original="Approach: nothing yet\n")[0]
    assert first.diff and any(line.kind == "del" and "nothing yet" in line.text for line in first.diff)


def test_usage_per_stage_sums_tokens_and_takes_the_slowest_call() -> None:
    usage = views.stage_usage(ranked_deliberation("m-6", agents=3))
    assert [u.label for u in usage] == ["propose r0", "critique r1", "revise r1", "score r1"]
    assert all(u.calls == 3 and u.tokens == 3 * 420 and u.seconds == 0.8 for u in usage)
    chart = views.usage_chart(usage)
    assert len(chart.bars) == 4 and all(b.tokens_width == 240 for b in chart.bars)


def test_timeline_orders_rounds_with_critiques_and_evidence() -> None:
    rounds = views.timeline(ranked_deliberation("m-7", agents=2))
    assert [r for r, _ in rounds] == [1]
    kinds = {e.kind for e in rounds[0][1]}
    assert kinds == {"critique", "evidence"}


def _plan() -> PlanDispatch:
    def sub(sid: str, *deps: str) -> SubtaskRecord:
        return SubtaskRecord(
            PlanSubtask(sid, Role.DEV, sid, "do it", depends_on=deps), f"d-{sid}", SubtaskState.COMPLETED
        )

    plan = ApprovedPlan("p-1", "s-1", "ann", (Role.DEV,), "now")
    return PlanDispatch(plan, (sub("a"), sub("b", "a"), sub("c", "a"), sub("d", "b", "c")), 0)


def test_plan_graph_places_subtasks_by_dependency_depth_with_an_edge_per_dependency() -> None:
    graph = plan_graph(_plan(), ["d-a", "d-b"])
    x = {n.subtask_id: n.x for n in graph.nodes}
    assert x["a"] < x["b"] == x["c"] < x["d"]
    assert len(graph.edges) == 4
    assert {n.subtask_id for n in graph.nodes if n.linked} == {"a", "b"}


def test_plan_graph_draws_devs_follow_up_after_the_qa_subtask_that_sent_it() -> None:
    plan = _plan()
    check = CrossCheck(CheckKind.QA_ON_DEV, "b", "a", CheckStatus.FAILED, 1, 2)
    follow = FollowUp("a", "d-follow", "assert True", "COMPLETED", "agent-dev-002")
    graph = plan_graph(replace(plan, checks=(check,), follow_up=follow), ["d-a", "d-b", "d-follow"])
    nodes = {n.subtask_id: n for n in graph.nodes}
    extra = nodes["a follow-up"]
    assert extra.x > max(n.x for n in graph.nodes if n is not extra) and extra.linked
    assert (extra.state, extra.winner, extra.deliberation_id) == ("COMPLETED", "agent-dev-002", "d-follow")
    assert len(graph.edges) == 5 and graph.edges[-1].x1 == nodes["b"].x + 220 and graph.edges[-1].x2 == extra.x
    assert graph.width == 40 + 280 * 4


def test_highlighting_escapes_the_code() -> None:
    html = str(highlight("<script>alert(1)</script>", "html"))
    assert "<script>" not in html and "&lt;" in html
    assert "<img" not in str(highlight('<img src=x onerror="alert(1)">', "no-such-language"))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/deliberations/x?partial=1", "/deliberations/x?partial=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x", "/"),
    ],
)
def test_sign_in_only_returns_to_paths_of_this_site(target: str, expected: str) -> None:
    assert safe_next(target) == expected


def test_the_header_token_comes_before_the_cookie() -> None:
    assert request_token("Bearer from-header", "from-cookie") == "from-header"
    assert request_token(None, "from-cookie") == "from-cookie"
    assert request_token("Basic abc", None) is None
    assert request_token(None, " ") is None


def test_web_port_is_off_when_unset_empty_or_zero_and_must_be_a_port() -> None:
    assert load_settings().web_port is None
    assert load_settings(web_port="").web_port == 0
    assert load_settings(web_port="8081").web_port == 8081
    with pytest.raises(ConfigError, match="WEB_PORT"):
        load_settings(web_port="70000")


def test_a_running_deliberation_shows_how_long_it_has_been_running() -> None:
    done = ranked_deliberation("m-8")
    assert views.elapsed_s(done, now_ms=done.finished_at_ms + 60_000) == 4.2
    running = replace(done, status=DeliberationStatus.IN_PROGRESS, finished_at_ms=0)
    assert views.elapsed_s(running, now_ms=done.started_at_ms + 12_500) == 12.5
    row = views.list_row(running, now_ms=done.started_at_ms + 1000)
    assert row.duration_s == 1.0 and row.title == "Implement `clamp(x, low, high)`."


def test_embedded_serve_and_demo_turn_the_web_view_on_at_8080_unless_web_port_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.entrypoints import cli

    monkeypatch.delenv("WEB_PORT", raising=False)
    assert cli._settings(None, need_llm=False, web_view=True).web_port == 8080
    assert cli._settings(None, need_llm=False).web_port is None  # plain serve: off
    monkeypatch.setenv("WEB_PORT", "0")
    assert cli._settings(None, need_llm=False, web_view=True).web_port == 0
    monkeypatch.setenv("WEB_PORT", "")
    assert cli._settings(None, need_llm=False, web_view=True).web_port == 0
    monkeypatch.setenv("WEB_PORT", "9443")
    assert cli._settings(None, need_llm=False, web_view=True).web_port == 9443
