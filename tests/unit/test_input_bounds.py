"""Untrusted input is bounded where it enters, and nothing secret or unbounded leaves as text (issue 13)."""

from __future__ import annotations

import json

import pytest

from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Limits
from orchestrator.application.councils import build_council, page_of
from orchestrator.config import load_settings
from orchestrator.config.logging_setup import configure_logging
from orchestrator.domain.errors import CallErrorKind, ConfigError, InvalidArgumentError, NotFoundError
from orchestrator.domain.redaction import clip, redact_secrets, redact_url
from orchestrator.domain.validation import check_task_id, parse_int_param, parse_page_token, parse_role

DEFAULTS = CouncilDefaults("model", 0.7, 256)


def council(**changes: object) -> CreateCouncil:
    return CreateCouncil(role="DEV", **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "nats://alice:s3cr3t@nats.example:4222",
        "nats://s3cr3t@nats.example:4222",
        "bolt://neo4j:s3cr3t@db:7687",
        "https://user:s3cr3t@llm.example/v1",
        "http://llm.example/v1?api_key=s3cr3t",
        "nats://alice:p@ss:s3cr3t@h:4222",
        "nats://a:s3cr3t@h1:4222,nats://b:s3cr3t@h2:4222",
    ],
)
def test_credentials_in_a_url_are_redacted(url: str) -> None:
    redacted = redact_url(url)
    assert "s3cr3t" not in redacted
    assert "***" in redacted


def test_urls_without_credentials_are_kept_as_they_are() -> None:
    for url in ("nats://127.0.0.1:4222", "http://localhost:8000/v1", "sqlite:///tmp/x.db", "ray://head:10001"):
        assert redact_url(url) == url


def test_a_url_inside_free_text_is_redacted() -> None:
    text = "nats unavailable: cannot connect to nats://u:s3cr3t@h:4222: OSError('refused')"
    assert redact_secrets(text) == "nats unavailable: cannot connect to nats://***@h:4222: OSError('refused')"


def test_an_invalid_setting_does_not_echo_a_password() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(vllm_url="ftp://user:s3cr3t@llm.example")
    assert "s3cr3t" not in str(info.value)
    assert "VLLM_URL" in str(info.value)


def test_logged_urls_lose_their_credentials_and_huge_values_are_cut(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    configure_logging("json", "INFO")
    try:
        log = structlog.get_logger("test")
        log.info("orchestrator_ready", nats="nats://alice:s3cr3t@nats:4222", role="R" * 15_000_000)
        line = capsys.readouterr().err.strip()
    finally:
        structlog.reset_defaults()
    assert "s3cr3t" not in line
    assert len(line) < 10_000
    assert json.loads(line)["nats"] == "nats://***@nats:4222"


def test_a_task_id_with_a_trailing_newline_is_invalid() -> None:
    check_task_id("task-1")
    for bad in ("task-1\n", "task-1\r\n", "\ntask-1", "x" * 129):
        with pytest.raises(InvalidArgumentError):
            check_task_id(bad)


@pytest.mark.parametrize("token", ["99999999999999999999", "²", "9" * 5000, "-1", " 1", "1 ", "0x10", "\u0661"])
def test_a_page_token_that_is_not_a_small_number_is_invalid(token: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_page_token(token)
    assert len(str(info.value)) < 200


def test_page_tokens_the_service_hands_out_are_accepted() -> None:
    assert parse_page_token("") == 0
    assert parse_page_token("500") == 500


def test_echoed_client_input_is_cut_to_a_short_prefix() -> None:
    with pytest.raises(InvalidArgumentError) as role:
        parse_role("R" * 15_000_000)
    with pytest.raises(InvalidArgumentError) as param:
        parse_int_param({"rounds": "x" * 100_000}, "rounds", 1)
    missing = NotFoundError("deliberation", "t" * 20_000)
    for message in (str(role.value), str(param.value), str(missing)):
        assert len(message) < 300, message[:100]
    assert "15000000 characters" in str(role.value)
    assert clip("short") == "'short'"


def test_a_huge_model_profile_is_invalid_naming_the_limit() -> None:
    limits = Limits()
    with pytest.raises(InvalidArgumentError) as info:
        build_council(council(model="m" * 2_000_000), DEFAULTS, limits, 0)
    assert info.value.field == "config.model_profile"
    assert str(limits.max_model_chars) in info.value.reason
    build_council(council(model="m" * limits.max_model_chars), DEFAULTS, limits, 0)


def test_too_many_or_too_large_custom_params_are_invalid_naming_the_limit() -> None:
    limits = Limits()
    many = {f"k{i}": "v" for i in range(100_000)}
    with pytest.raises(InvalidArgumentError) as count:
        build_council(council(custom_params=many), DEFAULTS, limits, 0)
    assert count.value.field == "config.custom_params" and str(limits.max_custom_params) in count.value.reason
    with pytest.raises(InvalidArgumentError) as size:
        build_council(council(custom_params={"note": "x" * 10_000}), DEFAULTS, limits, 0)
    assert str(limits.max_custom_param_chars) in size.value.reason
    with pytest.raises(InvalidArgumentError):
        build_council(council(custom_params={"model": "m" * 1_000}), DEFAULTS, limits, 0)
    fine = {f"k{i}": "v" * 100 for i in range(limits.max_custom_params)}
    assert build_council(council(custom_params=fine), DEFAULTS, limits, 0).custom_params == fine


def test_councils_are_listed_in_pages() -> None:
    councils = [build_council(CreateCouncil(role=r), DEFAULTS, Limits(), 0) for r in ("ARCHITECT", "DATA", "DEV")]
    first, token = page_of(councils, 2, "")
    assert [c.role.value for c in first] == ["ARCHITECT", "DATA"] and token == "2"
    rest, end = page_of(councils, 2, token)
    assert [c.role.value for c in rest] == ["DEV"] and end == ""
    assert page_of(councils, 0, "") == (councils, "")
    for size, bad_token in ((-1, ""), (101, ""), (0, "²")):
        with pytest.raises(InvalidArgumentError):
            page_of(councils, size, bad_token)


def test_an_llm_failure_tells_the_client_its_kind_only() -> None:
    from orchestrator.adapters.grpc.errors import public_detail
    from orchestrator.domain.errors import LLMCallError

    detail = public_detail(LLMCallError("agent-dev-001", CallErrorKind.AGENT_UNAVAILABLE, "ActorDiedError pid=4242"))
    assert "pid" not in detail and "agent-dev-001" not in detail and "agent_unavailable" in detail


def test_the_start_up_error_line_shows_no_password(capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.entrypoints.cli import _fail

    _fail("nats unavailable: cannot connect to nats://alice:s3cr3t@nats:4222: OSError()", 2)
    line = capsys.readouterr().err
    assert "s3cr3t" not in line and "nats://***@nats:4222" in line
