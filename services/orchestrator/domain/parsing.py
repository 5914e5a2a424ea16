"""Reading model output: reasoning blocks stripped, structured answers parsed leniently.

Models that honour `response_format` return bare JSON; small local models often wrap it in prose or a fenced
block, or answer `agent-x: 7` lines. The parsers accept all of these and never raise: what cannot be read is
simply absent from the result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_THINK = re.compile(r"<think>.*?(</think>|\Z)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_SCORE_LINE = re.compile(r"(agent-[\w-]+)\W{0,6}(?:score\W{0,4})?(\d{1,2}(?:\.\d+)?)\s*(?:/\s*10)?", re.I)


_WRAPPER_OPEN = re.compile(r"<proposal(?:\s[^>]*)?>", re.IGNORECASE)
_WRAPPER_CLOSE = "</proposal>"


def strip_proposal_wrapper(text: str) -> str:
    """Small models often echo the `<proposal author=…>` tags their prompt used; the proposal is what is inside.

    Only a leading `<proposal>` or `<proposal attr…>` tag and a trailing `</proposal>` are removed (not
    `<proposals>` or other tags), in linear time: a regex spanning the body backtracks quadratically over long
    runs of blank space. Tags left inside the body are escaped by the prompts that embed it."""
    body = text.strip()
    opening = _WRAPPER_OPEN.match(body)
    if opening is None:
        return body
    body = body[opening.end() :].rstrip()
    if body[-len(_WRAPPER_CLOSE) :].lower() == _WRAPPER_CLOSE:
        body = body[: -len(_WRAPPER_CLOSE)]
    return body.strip()


def strip_reasoning(text: str) -> str:
    """Removes `<think>…</think>` blocks (also an unterminated one) and surrounding blank space."""
    return _THINK.sub("", text).strip()


def _json_candidates(text: str) -> Iterable[str]:
    yield text
    yield from (m.group(1) for m in _FENCE.finditer(text))
    start = text.find("{")
    end = text.rfind("}")
    if 0 <= start < end:
        yield text[start : end + 1]


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object found in `text` (bare, fenced, or embedded in prose), or None."""
    for candidate in _json_candidates(strip_reasoning(text)):
        try:
            value = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _items(text: str, key: str) -> list[dict[str, Any]]:
    obj = parse_json_object(text)
    if obj is None:
        return []
    raw = obj.get(key)
    if isinstance(raw, dict):  # {"agent-x": ...} form
        return [{"target": k, "value": v} for k, v in raw.items()]
    return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []


def parse_critiques(text: str, peer_ids: Iterable[str]) -> dict[str, str]:
    """Critique text per peer id; ids outside `peer_ids` (self, invented) are dropped."""
    peers = set(peer_ids)
    found: dict[str, str] = {}
    for item in _items(text, "critiques"):
        target = str(item.get("target", ""))
        body = item.get("critique", item.get("value", ""))
        if target in peers and isinstance(body, str) and body.strip():
            found[target] = body.strip()
    if not found and len(peers) == 1:
        # One peer and no structure: the whole answer is the critique of that peer.
        plain = strip_reasoning(text)
        if plain:
            found[next(iter(peers))] = plain
    return found


def _clamp_score(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return min(10.0, max(1.0, number)) if number == number else None


def parse_scores(text: str, peer_ids: Iterable[str]) -> dict[str, tuple[float, str]]:
    """(score 1..10, rationale) per peer id, from JSON or from `agent-x: 7` lines."""
    peers = set(peer_ids)
    found: dict[str, tuple[float, str]] = {}
    for item in _items(text, "scores"):
        target = str(item.get("target", ""))
        score = _clamp_score(item.get("score", item.get("value")))
        if target in peers and score is not None:
            found[target] = (score, str(item.get("rationale", "")))
    if not found:
        for match in _SCORE_LINE.finditer(strip_reasoning(text)):
            score = _clamp_score(match.group(2))
            if match.group(1) in peers and score is not None:
                found.setdefault(match.group(1), (score, ""))
    return found
