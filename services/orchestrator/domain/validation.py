"""Parsing of untrusted values into domain types, with errors that say what is wrong."""

from __future__ import annotations

import re
from collections.abc import Mapping

from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.model import Role
from orchestrator.domain.redaction import clip

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}")
"""Every id a client names (gRPC `task_id`, NATS `story_id`, `plan_id`, `subtask_id`, ...): ASCII only, matched
with fullmatch (`$` would also accept a trailing newline), and never stripped first (`a\n` is not `a`)."""
ID_RULE = "must be 1-128 characters of letters, digits and _.:/- starting with a letter or digit"
PAGE_TOKEN_PATTERN = re.compile(r"[0-9]{1,9}")
"""Page tokens are offsets this service handed out: ASCII digits only (`str.isdigit` also accepts '²'), and short
enough that no database integer overflows."""


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().upper())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidArgumentError("role", f"unknown role {clip(value)}; known roles: {known}") from None


def parse_int_param(params: Mapping[str, str], key: str, default: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgumentError(f"custom_params.{key}", f"not an integer: {clip(raw)}") from None


def parse_float_param(params: Mapping[str, str], key: str, default: float) -> float:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidArgumentError(f"custom_params.{key}", f"not a number: {clip(raw)}") from None


def is_valid_id(value: str) -> bool:
    """Whether `value` is an id this service accepts, over gRPC and NATS alike (ID_PATTERN)."""
    return ID_PATTERN.fullmatch(value) is not None


def check_id(field: str, value: str) -> None:
    if not is_valid_id(value):
        raise InvalidArgumentError(field, ID_RULE)


def check_task_id(task_id: str) -> None:
    check_id("task_id", task_id)


def parse_page_token(token: str) -> int:
    """The offset a page token stands for; "" is the first page."""
    if not token:
        return 0
    if not PAGE_TOKEN_PATTERN.fullmatch(token):
        raise InvalidArgumentError("page_token", f"{clip(token)} is not a token returned by this service")
    return int(token)


def normalize_base_url(url: str) -> str:
    """`http://host:8000`, `http://host:8000/` and `http://host:8000/v1` all mean the same endpoint."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"VLLM_URL must be an http(s) URL, got {url!r}")
    return url if url.endswith("/v1") else f"{url}/v1"
