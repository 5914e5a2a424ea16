"""EMBEDDED_MODEL: the names the setting accepts are exactly the models the embedded stack knows how to assemble."""

from __future__ import annotations

import typing

import pytest

from orchestrator.adapters.embedded.model import EMBEDDED, MODELS, QWEN_CODER_1_5B
from orchestrator.config import load_settings
from orchestrator.config.settings import Settings
from orchestrator.domain.errors import ConfigError


def test_every_name_the_setting_accepts_is_a_model_the_stack_can_assemble() -> None:
    accepted = set(typing.get_args(Settings.model_fields["embedded_model"].annotation))
    assert accepted == set(MODELS)
    assert MODELS[Settings.model_fields["embedded_model"].default][0] is EMBEDDED
    assert MODELS["qwen2.5-coder-1.5b"][0] is QWEN_CODER_1_5B


def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDED_MODEL", "qwen2.5-coder-1.5b")
    assert load_settings().embedded_model == "qwen2.5-coder-1.5b"


def test_an_unknown_model_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDED_MODEL", "gpt-5")
    with pytest.raises(ConfigError, match=r"EMBEDDED_MODEL.*qwen2\.5-coder-0\.5b.*gpt-5"):
        load_settings()
