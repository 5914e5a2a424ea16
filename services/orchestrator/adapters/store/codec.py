"""Domain records <-> JSON, through pydantic's validators for dataclasses (types checked on the way in)."""

from __future__ import annotations

from pydantic import TypeAdapter

from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.model import Council
from orchestrator.domain.plans import PlanDispatch

_COUNCIL = TypeAdapter(Council)
_DELIBERATION = TypeAdapter(Deliberation)
_DISPATCH = TypeAdapter(PlanDispatch)


def council_to_json(council: Council) -> str:
    return _COUNCIL.dump_json(council).decode()


def council_from_json(data: str | bytes) -> Council:
    return _COUNCIL.validate_json(data)


def deliberation_to_json(deliberation: Deliberation) -> str:
    return _DELIBERATION.dump_json(deliberation).decode()


def deliberation_from_json(data: str | bytes) -> Deliberation:
    return _DELIBERATION.validate_json(data)


def dispatch_to_json(dispatch: PlanDispatch) -> str:
    return _DISPATCH.dump_json(dispatch).decode()


def dispatch_from_json(data: str | bytes) -> PlanDispatch:
    return _DISPATCH.validate_json(data)
