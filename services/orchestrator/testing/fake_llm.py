"""A fake OpenAI-compatible chat-completions server for tests and benchmarks.

It is real HTTP on loopback (aiohttp) served from its own thread and event loop, so synchronous tests,
asynchronous tests running another loop and orchestrator subprocesses can all point an OpenAI client at it::

    with FakeLLMServer(FakeLLMConfig(latency_s=0.05, broken_python_agents={"agent-dev-002"})) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x")
        ...
        srv.set_fault("agent-dev-001", FaultSpec("429", times=1))  # the next call of that agent gets a 429
        srv.outage(3.5)  # the whole endpoint goes away for 3.5 s: connections refused, open ones dropped
        assert srv.count(stage="propose") == 3 and srv.max_in_flight >= 3

Answers are deterministic functions of the request (see `fake_content`): propose/revise get a markdown
proposal with one fenced code block chosen from sha256(agent id + task), critique/score get the JSON the
prompt asks for. The agent id is the request's `user` field. Faults (429, 500, hang, malformed body) and
latency can be set per agent at runtime; every call is recorded as a `RecordedCall` (times are
`time.monotonic()`), including calls whose client went away before the answer (`disconnected=True`,
status 499).

From a shell (prints the base URL on one line, serves until SIGINT/SIGTERM)::

    python -m orchestrator.testing.fake_llm --port 8001 --latency 0.2 --fault agent-dev-001=500:2
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, Literal, get_args

from aiohttp import web

from orchestrator.testing.fake_content import AnswerOptions, ParsedPrompt, answer, parse_prompt, reasoning

FaultKind = Literal["429", "500", "hang", "malformed", "context_length", "no_structured_output"]
"""`context_length`: a 400 as vLLM answers a prompt longer than the model's context. `no_structured_output`: a
400 for requests that carry `response_format`, as servers without structured output answer (others succeed)."""
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
OutageKind = Literal["refuse", "503"]
"""`refuse`: nothing listens and open connections are dropped, as with a stopped or restarting server. `503`:
every call is answered 503, as a proxy in front of a stopped server answers."""
ANY_AGENT = "*"
"""Fault key that applies to every agent without a fault of its own."""
DISCONNECTED_STATUS = 499
"""Status recorded for a call whose client closed the connection before the answer."""
MALFORMED_BODY = '{"id": "chatcmpl-fake", "object": "chat.completion", "choices": ['
_CREATED = 1_700_000_000


@dataclass(frozen=True)
class FaultSpec:
    """How calls of one agent fail.

    `times` None fails every matching call; N fails only the next N matching calls, then answers normally.
    `stage` limits the fault to calls of that stage. `retry_after_s` is sent with 429 answers.
    """

    kind: FaultKind
    times: int | None = None
    retry_after_s: float = 1.0
    stage: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0 or None")


@dataclass(frozen=True)
class FakeLLMConfig:
    """Server settings; change them at runtime with `FakeLLMServer.update_config`/`set_latency`."""

    host: str = "127.0.0.1"
    port: int = 0
    models: tuple[str, ...] = ("fake-llm",)
    latency_s: float = 0.0
    agent_latency_s: Mapping[str, float] = field(default_factory=dict)
    broken_python_agents: AbstractSet[str] = frozenset()
    """These agents always write a Python block with a SyntaxError in propose and revise."""
    valid_python_agents: AbstractSet[str] = frozenset()
    """These agents always write a valid Python block (broken wins if an agent is in both)."""
    ignore_response_format: bool = False
    """Wrap critique/score JSON in prose and a ```json fence, for every agent."""
    ignore_response_format_agents: AbstractSet[str] = frozenset()
    think: bool = False
    """Prefix content with `<think>…</think>` and add `reasoning_content`, for every agent."""
    think_agents: AbstractSet[str] = frozenset()
    faults: Mapping[str, FaultSpec] = field(default_factory=dict)
    """Initial faults by agent id (`ANY_AGENT` for all)."""
    scripted_proposals: Mapping[str, str] = field(default_factory=dict)
    """These agents answer every propose and revise call with this exact text (e.g. a solution and its tests)."""
    score_markers: Mapping[str, int] = field(default_factory=dict)
    """Peer review scores a proposal containing one of these substrings with its score (first match wins)."""
    backlog: int = 1024
    shutdown_timeout_s: float = 1.0

    def latency_for(self, agent_id: str) -> float:
        return self.agent_latency_s.get(agent_id, self.latency_s)

    def options_for(self, agent_id: str) -> AnswerOptions:
        return AnswerOptions(
            broken_python=agent_id in self.broken_python_agents,
            valid_python=agent_id in self.valid_python_agents,
            wrap_json=self.ignore_response_format or agent_id in self.ignore_response_format_agents,
            scripted=self.scripted_proposals.get(agent_id),
            score_markers=tuple(self.score_markers.items()),
        )

    def thinks(self, agent_id: str) -> bool:
        return self.think or agent_id in self.think_agents


@dataclass(frozen=True)
class RecordedCall:
    """One chat-completions call as the server saw it. Times are `time.monotonic()` seconds."""

    agent_id: str
    stage: str | None
    round: int
    started_at: float
    finished_at: float
    status_code: int
    disconnected: bool = False
    fault: str | None = None
    prompt: str = ""
    """The user message the call carried."""


@dataclass
class _CallState:
    started_at: float
    agent_id: str = ""
    stage: str | None = None
    round: int = 0
    status_code: int = 0
    disconnected: bool = False
    fault: str | None = None
    prompt: str = ""

    def record(self) -> RecordedCall:
        return RecordedCall(
            self.agent_id,
            self.stage,
            self.round,
            self.started_at,
            time.monotonic(),
            self.status_code,
            self.disconnected,
            self.fault,
            self.prompt,
        )


@dataclass
class _FaultState:
    spec: FaultSpec
    remaining: int | None


class _BadRequest(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    """An OpenAI-style error document."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def count_tokens(text: str) -> int:
    """A deterministic, non-zero token estimate (about four characters per token)."""
    return max(1, (len(text) + 3) // 4)


def _text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _validate(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        raise _BadRequest("The request body must be a JSON object.", "invalid_request")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' is a required non-empty array.", "missing_messages")
    if not all(isinstance(m, dict) and "role" in m for m in messages):
        raise _BadRequest("Every message needs a 'role'.", "invalid_messages")
    if body.get("stream"):
        raise _BadRequest("The fake server does not stream.", "stream_unsupported")
    return messages


def _user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    return users[-1] if users else ""


def completion(body: Mapping[str, Any], config: FakeLLMConfig) -> dict[str, Any]:
    """The chat.completion document answering a validated request body."""
    messages: list[dict[str, Any]] = body["messages"]
    agent_id = str(body.get("user") or "")
    parsed = parse_prompt(_user_text(messages))
    content = answer(agent_id, parsed, config.options_for(agent_id))
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if config.thinks(agent_id):
        thought = reasoning(agent_id, parsed)
        message.update(content=f"<think>{thought}</think>\n{content}", reasoning_content=thought)
    prompt_tokens = sum(count_tokens(_text(m.get("content"))) for m in messages)
    completion_tokens = count_tokens(message["content"])
    key = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "id": f"chatcmpl-{key[:24]}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": str(body.get("model") or config.models[0]),
        "system_fingerprint": "fp_fake_llm",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _rate_limited(spec: FaultSpec) -> web.Response:
    headers = {
        "Retry-After": str(math.ceil(max(0.0, spec.retry_after_s))),
        "retry-after-ms": str(int(max(0.0, spec.retry_after_s) * 1000)),
    }
    body = error_body("Rate limit reached (injected by the fake LLM).", "requests", "rate_limit_exceeded")
    return web.json_response(body, status=429, headers=headers)


class FakeLLMServer:
    """The fake server: `start()` returns the base URL (`http://127.0.0.1:PORT/v1`), `stop()` ends it."""

    def __init__(self, config: FakeLLMConfig | None = None) -> None:
        self._config = config or FakeLLMConfig()
        self._cond = threading.Condition()
        self._records: list[RecordedCall] = []
        self._faults: dict[str, _FaultState] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._down_until = 0.0
        self._comeback: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._port: int | None = None
        for agent_id, spec in self._config.faults.items():
            self.set_fault(agent_id, spec)

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> str:
        """Bind and serve in a background thread; returns `base_url`. Idempotent."""
        if self._thread is not None:
            return self.base_url
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run_loop, args=(loop,), name="fake-llm", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._port = asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def stop(self) -> None:
        """Stop serving (hanging calls are answered 503) and join the thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._loop = self._thread = None
        self._port = None

    def __enter__(self) -> FakeLLMServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeLLMServer is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._config.host}:{self.port}/v1"

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    async def _astart(self) -> int:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(
            app,
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=self._config.shutdown_timeout_s,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._config.host, self._config.port, backlog=self._config.backlog)
        await site.start()
        self._runner, self._site = runner, site
        return int(runner.addresses[0][1])

    async def _astop(self) -> None:
        if self._comeback is not None:
            self._comeback.cancel()
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- runtime control (thread-safe) ----------------------------------------------------------------

    @property
    def config(self) -> FakeLLMConfig:
        return self._config

    def update_config(self, **changes: Any) -> FakeLLMConfig:
        """Replace config fields at runtime (e.g. `broken_python_agents={...}`); returns the new config."""
        with self._cond:
            self._config = dataclasses.replace(self._config, **changes)
            return self._config

    def set_latency(self, latency_s: float | None, agent_id: str | None = None) -> None:
        """Set the default latency (agent_id None) or one agent's; None removes that agent's override."""
        with self._cond:
            if agent_id is None:
                self._config = dataclasses.replace(self._config, latency_s=latency_s or 0.0)
                return
            overrides = dict(self._config.agent_latency_s)
            if latency_s is None:
                overrides.pop(agent_id, None)
            else:
                overrides[agent_id] = latency_s
            self._config = dataclasses.replace(self._config, agent_latency_s=overrides)

    def set_fault(self, agent_id: str, spec: FaultSpec | None) -> None:
        """Inject (None: clear) a fault for `agent_id` (`ANY_AGENT`: all agents); `times` counts from now."""
        with self._cond:
            if spec is None or spec.times == 0:
                self._faults.pop(agent_id, None)
            else:
                self._faults[agent_id] = _FaultState(spec, spec.times)

    def outage(self, duration_s: float, kind: OutageKind = "refuse") -> None:
        """The whole endpoint goes away for `duration_s` from now, for every agent, then comes back on the same
        port. `refuse` stops listening and drops every open connection, calls in flight included; `503` answers
        every call 503 meanwhile. Returns at once."""
        if self._loop is None:
            raise RuntimeError("FakeLLMServer is not started")
        asyncio.run_coroutine_threadsafe(self._go_down(duration_s, kind), self._loop).result(timeout=10)

    def down(self) -> bool:
        """Whether an outage is going on."""
        return time.monotonic() < self._down_until

    async def _go_down(self, duration_s: float, kind: OutageKind) -> None:
        self._down_until = time.monotonic() + duration_s
        if kind == "refuse" and self._site is not None and self._runner is not None:
            site, self._site = self._site, None
            await site.stop()
            for connection in self._runner.server.connections if self._runner.server else ():
                connection.force_close()
            self._comeback = asyncio.create_task(self._come_back(duration_s))

    async def _come_back(self, after_s: float) -> None:
        await asyncio.sleep(after_s)
        if self._runner is None:
            return
        site = web.TCPSite(self._runner, self._config.host, self.port, backlog=self._config.backlog)
        await site.start()
        self._site = site

    def reset(self) -> None:
        """Forget recorded calls, peak concurrency and faults (latency and config stay)."""
        with self._cond:
            self._records.clear()
            self._faults.clear()
            self._max_in_flight = self._in_flight

    def _take_fault(self, agent_id: str, stage: str | None) -> FaultSpec | None:
        with self._cond:
            key = agent_id if agent_id in self._faults else ANY_AGENT
            state = self._faults.get(key)
            if state is None or state.spec.stage not in (None, stage):
                return None
            if state.remaining is not None:
                state.remaining -= 1
                if state.remaining <= 0:
                    del self._faults[key]
            return state.spec

    # --- observation (thread-safe) --------------------------------------------------------------------

    def calls(self) -> list[RecordedCall]:
        """A copy of every finished call, in completion order."""
        with self._cond:
            return list(self._records)

    @property
    def requests(self) -> list[RecordedCall]:
        """Same as `calls()`."""
        return self.calls()

    def count(self, agent_id: str | None = None, stage: str | None = None) -> int:
        """Finished calls, optionally of one agent and/or one stage."""
        with self._cond:
            return sum(1 for r in self._records if _matches(r, agent_id, stage))

    def in_flight(self) -> int:
        """Calls being handled right now."""
        with self._cond:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Peak number of calls handled at once since start or `reset()`."""
        with self._cond:
            return self._max_in_flight

    def wait_for_calls(
        self, n: int, agent_id: str | None = None, stage: str | None = None, timeout: float = 5.0
    ) -> bool:
        """Block until `count(agent_id, stage) >= n`; False on timeout. From async code use `to_thread`."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(1 for r in self._records if _matches(r, agent_id, stage)) >= n, timeout
            )

    def _enter(self) -> None:
        with self._cond:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self, call: _CallState) -> None:
        with self._cond:
            self._in_flight -= 1
            self._records.append(call.record())
            self._cond.notify_all()

    # --- handlers -------------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": _CREATED, "owned_by": "fake"} for m in self._config.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.Response:
        call = _CallState(started_at=time.monotonic())
        self._enter()
        try:
            response = await self._serve_chat(request, call)
            call.status_code = response.status
            return response
        except asyncio.CancelledError:
            call.disconnected, call.status_code = True, DISCONNECTED_STATUS
            raise
        finally:
            self._leave(call)

    async def _serve_chat(self, request: web.Request, call: _CallState) -> web.Response:
        if self.down():  # a "503" outage (or a request that slipped in as a "refuse" outage began)
            call.fault = "outage"
            body = error_body("The model server is unavailable (injected by the fake LLM).", "server_error", None)
            return web.json_response(body, status=503)
        try:
            body = await request.json()
            messages = _validate(body)
        except ValueError:
            return web.json_response(
                error_body("The request body is not valid JSON.", "invalid_request_error", "invalid_json"),
                status=400,
            )
        except _BadRequest as exc:
            return web.json_response(error_body(str(exc), "invalid_request_error", exc.code), status=400)
        config = self._config
        call.agent_id = str(body.get("user") or "")
        call.prompt = _user_text(messages)
        parsed: ParsedPrompt = parse_prompt(call.prompt)
        call.stage, call.round = parsed.stage, parsed.round
        fault = self._take_fault(call.agent_id, parsed.stage)
        if fault is not None and fault.kind == "no_structured_output" and not body.get("response_format"):
            fault = None
        call.fault = fault.kind if fault else None
        latency = config.latency_for(call.agent_id)
        if latency > 0:
            await asyncio.sleep(latency)
        if fault is not None:
            return await self._fault_response(fault)
        return web.json_response(completion(body, config))

    async def _fault_response(self, spec: FaultSpec) -> web.Response:
        if spec.kind == "429":
            return _rate_limited(spec)
        if spec.kind == "500":
            body = error_body("The server had an error (injected by the fake LLM).", "server_error", "internal_error")
            return web.json_response(body, status=500)
        if spec.kind == "malformed":
            return web.Response(text=MALFORMED_BODY, status=200, content_type="application/json")
        if spec.kind == "context_length":
            message = (
                "This model's maximum context length is 4096 tokens. However, you requested 5120 tokens "
                "(4096 in the messages, 1024 in the completion). Please reduce the length of the messages."
            )
            return web.json_response(error_body(message, "BadRequestError", None), status=400)
        if spec.kind == "no_structured_output":
            message = "response_format of type json_schema is not supported by this server"
            return web.json_response(error_body(message, "invalid_request_error", None), status=400)
        assert self._stopping is not None
        await self._stopping.wait()  # "hang": until the client disconnects (cancels us) or the server stops
        return web.json_response(error_body("The fake LLM is shutting down.", "server_error", None), status=503)


def _matches(record: RecordedCall, agent_id: str | None, stage: str | None) -> bool:
    return (agent_id is None or record.agent_id == agent_id) and (stage is None or record.stage == stage)


# --- command line ---------------------------------------------------------------------------------------


def parse_fault(text: str) -> tuple[str, FaultSpec]:
    """`AGENT=KIND[:TIMES]` (AGENT may be `*`) as given to `--fault`."""
    agent_id, _, rest = text.partition("=")
    kind, _, times = rest.partition(":")
    if not agent_id or kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"expected AGENT=KIND[:TIMES] with KIND in {FAULT_KINDS}: {text!r}")
    return agent_id, FaultSpec(kind, int(times) if times else None)  # type: ignore[arg-type]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.testing.fake_llm", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--model", action="append", default=[], help="model id to list (repeatable)")
    parser.add_argument("--broken-python", action="append", default=[], metavar="AGENT")
    parser.add_argument("--valid-python", action="append", default=[], metavar="AGENT")
    parser.add_argument("--fault", action="append", default=[], type=parse_fault, metavar="AGENT=KIND[:TIMES]")
    parser.add_argument("--ignore-response-format", action="store_true")
    parser.add_argument("--think", action="store_true")
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> FakeLLMConfig:
    args = _parser().parse_args(argv)
    return FakeLLMConfig(
        host=args.host,
        port=args.port,
        models=tuple(args.model) or FakeLLMConfig.models,
        latency_s=args.latency,
        broken_python_agents=frozenset(args.broken_python),
        valid_python_agents=frozenset(args.valid_python),
        ignore_response_format=args.ignore_response_format,
        think=args.think,
        faults=dict(args.fault),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, after printing the base URL on one line."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with FakeLLMServer(config_from_args(argv)) as server:
        print(server.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
