"""The only attributes a span of this service may carry: names, and the whitelist the facade enforces.

GenAI names follow the OpenTelemetry GenAI semantic conventions (`gen_ai.*`, `error.type`, `rpc.*`); the rest are
this service's own, under `fleet.`. Nothing here can hold a prompt, a proposal, a URL, a key, a token or a
password: the facade refuses every other name, so a secret cannot reach a span by a new `set()` call.
"""

from __future__ import annotations

from typing import Final

OPERATION: Final = "gen_ai.operation.name"
WORKFLOW_NAME: Final = "gen_ai.workflow.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_SEED: Final = "gen_ai.request.seed"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
AGENT_ID: Final = "gen_ai.agent.id"
TOOL_NAME: Final = "gen_ai.tool.name"
ERROR_TYPE: Final = "error.type"

RPC_SYSTEM: Final = "rpc.system"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
RPC_GRPC_STATUS: Final = "rpc.grpc.status_code"

TASK_ID: Final = "fleet.task_id"
ROLE: Final = "fleet.role"
AGENT_COUNT: Final = "fleet.agents"
ROUNDS: Final = "fleet.rounds"
ROUNDS_RUN: Final = "fleet.rounds_run"
STATUS: Final = "fleet.status"
STOP_CODE: Final = "fleet.stop_code"
SOURCE: Final = "fleet.source"
STAGE: Final = "fleet.stage"
ROUND: Final = "fleet.round"
CALLERS: Final = "fleet.callers"
RETRIES: Final = "fleet.retries"
TOKEN_BUDGET: Final = "fleet.token_budget"
TOKENS_SPENT: Final = "fleet.tokens_spent"
CHECK_PASSED: Final = "fleet.check.passed"
CHECK_SKIPPED: Final = "fleet.check.skipped"
EXIT_CODE: Final = "process.exit.code"
PLAN_ID: Final = "fleet.plan_id"
SUBTASK_ID: Final = "fleet.subtask_id"
MESSAGING_SYSTEM: Final = "messaging.system"
MESSAGING_DESTINATION: Final = "messaging.destination.name"

ALLOWED: Final = frozenset(
    {
        OPERATION,
        WORKFLOW_NAME,
        REQUEST_MODEL,
        RESPONSE_MODEL,
        REQUEST_TEMPERATURE,
        REQUEST_SEED,
        REQUEST_MAX_TOKENS,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        AGENT_ID,
        TOOL_NAME,
        ERROR_TYPE,
        RPC_SYSTEM,
        RPC_SERVICE,
        RPC_METHOD,
        RPC_GRPC_STATUS,
        TASK_ID,
        ROLE,
        AGENT_COUNT,
        ROUNDS,
        ROUNDS_RUN,
        STATUS,
        STOP_CODE,
        SOURCE,
        STAGE,
        ROUND,
        CALLERS,
        RETRIES,
        TOKEN_BUDGET,
        TOKENS_SPENT,
        CHECK_PASSED,
        CHECK_SKIPPED,
        EXIT_CODE,
        PLAN_ID,
        SUBTASK_ID,
        MESSAGING_SYSTEM,
        MESSAGING_DESTINATION,
    }
)

MAX_VALUE_CHARS: Final = 256
"""Ids, model names, statuses: short by nature; anything longer is cut, never exported whole."""
