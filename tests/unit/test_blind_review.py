"""Blind peer review and the field presence of enable_peer_review."""

from __future__ import annotations

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.adapters.grpc.mapping import create_council_command, deliberate_command
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.compose import compose
from orchestrator.domain import prompts
from orchestrator.testing.fake_content import parse_prompt
from orchestrator.testing.fakes import FakeGateway, fake_options, fake_ports

TASK = "Write a Python function that parses ISO-8601 dates and returns a datetime"


def test_each_reviewer_gets_neutral_labels_in_an_order_of_its_own() -> None:
    authors = ["agent-dev-001", "agent-dev-002", "agent-dev-003", "agent-dev-004"]
    orders = {tuple(a for _, a in prompts.blind_labels(r, "t-1", authors)) for r in authors}
    assert len(orders) > 1  # not everyone sees the same order
    labels = prompts.blind_labels("agent-dev-001", "t-1", authors)
    assert [label for label, _ in labels] == ["proposal-A", "proposal-B", "proposal-C", "proposal-D"]
    assert sorted(a for _, a in labels) == authors
    assert prompts.blind_labels("agent-dev-001", "t-1", authors) == labels  # deterministic, so resumable


async def test_peer_review_prompts_never_name_an_author_and_scores_map_back_to_authors() -> None:
    gateway = FakeGateway()
    app = compose(fake_ports(gateway), fake_options(512)).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1))
    score_prompts = [(agent, text) for agent, stage, _, text in gateway.prompts if stage == "score"]
    assert len(score_prompts) == 3
    seen_orders = set()
    for agent, text in score_prompts:
        shown = [label for label, _ in parse_prompt(text).proposals]
        assert shown == ["proposal-A", "proposal-B"]  # neutral labels only, never an author id
        assert f'author="{agent}"' not in text  # and never the reviewer's own proposal
        seen_orders.add(tuple(content for _, content in parse_prompt(text).proposals))
    assert len(seen_orders) == 3
    for r in result.results:
        assert {s.scorer_id for s in r.peer_scores} == {"agent-dev-001", "agent-dev-002", "agent-dev-003"} - {
            r.proposal.author_id
        }
        assert all(s.target_id == r.proposal.author_id for s in r.peer_scores)


def test_peer_review_is_on_unless_explicitly_turned_off() -> None:
    with_config = pb.CreateCouncilRequest(role="DEV", config=pb.CouncilConfig(deliberation_rounds=2))
    assert create_council_command(with_config).enable_peer_review is True
    assert create_council_command(pb.CreateCouncilRequest(role="DEV")).enable_peer_review is True
    off = pb.CreateCouncilRequest(role="DEV", config=pb.CouncilConfig(enable_peer_review=False))
    assert create_council_command(off).enable_peer_review is False


def test_rounds_unset_means_the_default_and_an_explicit_zero_means_best_of_n() -> None:
    assert deliberate_command(pb.DeliberateRequest(task_description=TASK, role="DEV")).rounds is None
    assert deliberate_command(pb.DeliberateRequest(task_description=TASK, role="DEV", rounds=0)).rounds == 0
    tests = pb.TaskConstraints(acceptance_tests="assert f(1) == 2")
    cmd = deliberate_command(pb.DeliberateRequest(task_description=TASK, role="DEV", constraints=tests))
    assert cmd.acceptance_tests == "assert f(1) == 2"


async def test_best_of_n_proposes_verifies_and_ranks_without_critique_or_peer_review() -> None:
    gateway = FakeGateway()
    app = compose(fake_ports(gateway), fake_options(512)).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=3, rounds=2))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=0))
    assert {stage for _, stage, _ in gateway.calls} == {"propose"}
    assert len(result.results) == 3 and result.winner_id
    assert result.progress.rounds_run == 0 and result.progress.stop_reason == "best-of-N: no rounds asked"
    default = await app.deliberate(Deliberate(TASK, "DEV"))
    assert default.task.rounds == 2  # unset: the council's rounds
