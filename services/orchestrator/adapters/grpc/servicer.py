"""OrchestratorService: translate the request, call the application, translate the answer back (both in mapping)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc import mapping
from orchestrator.adapters.grpc.errors import streaming, unary
from orchestrator.adapters.grpc.health import Health
from orchestrator.application.councils import page_of
from orchestrator.application.service import Orchestrator
from orchestrator.domain.errors import DependencyUnavailableError

Context = grpc.aio.ServicerContext[Any, Any]


class OrchestratorServicer(pb_grpc.OrchestratorServiceServicer):
    """Built with everything it answers from: the application (None while the service is still starting: every
    call is UNAVAILABLE), the server's health, which GetStatus's `status` follows, and the server's own warnings."""

    def __init__(
        self, app: Orchestrator | None, health: Health | None = None, warnings: Callable[[], list[str]] = list
    ) -> None:
        self._given = app
        self._health = health
        self._warnings = warnings

    def _now_ms(self) -> int:
        return self._app.clock.now_ms()

    @property
    def _app(self) -> Orchestrator:
        if self._given is None:
            raise DependencyUnavailableError("orchestrator", "still starting up")
        return self._given

    @unary
    async def Deliberate(self, request: pb.DeliberateRequest, context: Context) -> pb.DeliberateResponse:
        # If the client cancels or its deadline passes, grpc.aio cancels this coroutine, and the
        # application cancels the deliberation this call started.
        result = await self._app.deliberate(mapping.deliberate_command(request))
        if result.failed_as_unreachable:
            raise DependencyUnavailableError("LLM endpoint", result.error_message)
        return mapping.deliberate_response(result, self._now_ms())

    @unary
    async def GetDeliberationResult(
        self, request: pb.GetDeliberationResultRequest, context: Context
    ) -> pb.GetDeliberationResultResponse:
        return mapping.result_response(await self._app.get_result(request.task_id), self._now_ms())

    @unary
    async def CreateCouncil(self, request: pb.CreateCouncilRequest, context: Context) -> pb.CreateCouncilResponse:
        council = await self._app.create_council(mapping.create_council_command(request))
        return mapping.create_council_response(council)

    @unary
    async def ListCouncils(self, request: pb.ListCouncilsRequest, context: Context) -> pb.ListCouncilsResponse:
        councils = await self._app.list_councils(request.role_filter)
        page, token = page_of(councils, request.page_size, request.page_token)
        return mapping.list_councils_response(page, request.include_agents, token)

    @unary
    async def DeleteCouncil(self, request: pb.DeleteCouncilRequest, context: Context) -> pb.DeleteCouncilResponse:
        council, removed = await self._app.delete_council(request.role)
        return mapping.delete_council_response(council, removed)

    @unary
    async def GetStatus(self, request: pb.GetStatusRequest, context: Context) -> pb.GetStatusResponse:
        report = await self._app.status()
        if self._health is not None and not self._health.serving:
            report = dataclasses.replace(report, serving=False)
        response = mapping.status_response(report, request.include_stats)
        response.warnings.extend(self._warnings())
        return response

    @unary
    async def SubmitDeliberation(
        self, request: pb.DeliberateRequest, context: Context
    ) -> pb.SubmitDeliberationResponse:
        record, created = await self._app.submit(mapping.deliberate_command(request))
        return mapping.submit_response(record, created)

    @unary
    async def CancelDeliberation(
        self, request: pb.CancelDeliberationRequest, context: Context
    ) -> pb.CancelDeliberationResponse:
        record, cancelled = await self._app.cancel(request.task_id)
        return mapping.cancel_response(record, cancelled)

    @unary
    async def ListDeliberations(
        self, request: pb.ListDeliberationsRequest, context: Context
    ) -> pb.ListDeliberationsResponse:
        page, token = await self._app.list_deliberations(
            status=mapping.status_filter(request.status_filter),
            role=request.role_filter,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return mapping.list_deliberations_response(page, token, self._now_ms())

    @unary
    async def GetPlan(self, request: pb.GetPlanRequest, context: Context) -> pb.GetPlanResponse:
        dispatch, runs = await self._app.get_plan(request.plan_id)
        return mapping.plan_pb(dispatch, runs)

    @streaming
    async def WatchDeliberation(
        self, request: pb.WatchDeliberationRequest, context: Context
    ) -> AsyncIterator[pb.DeliberationUpdate]:
        async for update in self._app.watch(request.task_id):
            yield mapping.update_pb(update, self._now_ms())

    @streaming
    async def StreamDeliberation(
        self, request: pb.DeliberateRequest, context: Context
    ) -> AsyncIterator[pb.DeliberationUpdate]:
        async for update in self._app.stream(mapping.deliberate_command(request)):
            yield mapping.update_pb(update, self._now_ms())
