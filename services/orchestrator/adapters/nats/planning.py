"""The planning consumer's handler: parse and validate the event, dispatch the plan, say how to settle it."""

from __future__ import annotations

from orchestrator.adapters.nats.jetstream import Handled, Handler, Outcome
from orchestrator.adapters.nats.plan_events import InvalidPlanEvent, parse_plan_event
from orchestrator.application.dispatch import PlanDispatcher
from orchestrator.domain.errors import InvalidArgumentError


def plan_approved_handler(dispatcher: PlanDispatcher) -> Handler:
    """Malformed or invalid events are dead-lettered at once; anything else that fails is retried (nak with
    delay) until the consumer's delivery limit, then dead-lettered too. The event is acked only once the
    dispatch is durably recorded."""

    async def handle(body: bytes) -> Handled:
        try:
            plan = parse_plan_event(body)
        except InvalidPlanEvent as exc:
            return Handled(Outcome.DEAD, exc.reason)
        try:
            await dispatcher.dispatch(plan)
        except InvalidArgumentError as exc:
            return Handled(Outcome.DEAD, str(exc))
        except Exception as exc:
            return Handled(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        return Handled(Outcome.ACK)

    return handle
