"""The local LLM for `demo`: llama.cpp's OpenAI-compatible server, run in this process by `xllamacpp`.

Facts about xllamacpp (2026.10) this module relies on:
- `xllamacpp.Server(params)` loads the model and starts llama.cpp's HTTP server on native threads of this
  process; it returns once the model is loaded and the socket listens, and raises RuntimeError ("Failed to init
  server") on a bad model path or a busy port. It holds the GIL while loading (about a second here).
- `port = 0` makes llama.cpp bind a free port itself; `listening_address` reports the real one, so there is no
  pick-then-bind race.
- It has no stop method: dropping the last reference runs the C++ destructor, which ends the main loop, joins
  the HTTP and inference threads and closes the socket. `stop()` therefore only drops our one reference.
"""

from __future__ import annotations

import asyncio
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from orchestrator.adapters.embedded.processes import wait_until
from orchestrator.domain.errors import ConfigError, DependencyUnavailableError

MODEL_NAME = "qwen2.5-coder-0.5b-instruct"
# Critique and score prompts carry every peer's proposal (2-4k tokens) plus the answer, so each slot needs 4k.
CTX_PER_SLOT = 4096
# llama.cpp keeps finished prompts in RAM for reuse (8 GiB by default); a demo's prompts rarely repeat.
PROMPT_CACHE_MIB = 1024
# llama.cpp's log levels: 1 = errors only; its info lines (one per request) would drown the service's own logs.
LOG_VERBOSITY = 1
# Health checks go straight to loopback, never through an HTTP(S)_PROXY from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def available_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class LocalLLMConfig:
    """How to run the local model. `n_ctx` is shared by the slots; None gives each slot CTX_PER_SLOT tokens."""

    model_path: Path
    n_parallel: int = 4
    n_ctx: int | None = None
    n_threads: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    model_name: str = MODEL_NAME
    startup_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.n_parallel < 1:
            raise ConfigError(f"local LLM: n_parallel must be at least 1, got {self.n_parallel}")
        if self.total_ctx < 256 * self.n_parallel:
            raise ConfigError(
                f"local LLM: n_ctx {self.total_ctx} leaves under 256 tokens for each of {self.n_parallel} slots"
            )

    @property
    def total_ctx(self) -> int:
        return self.n_ctx if self.n_ctx is not None else CTX_PER_SLOT * self.n_parallel


class LocalLLMError(DependencyUnavailableError):
    """The local LLM server could not be started or did not become ready."""

    def __init__(self, detail: str) -> None:
        super().__init__("local LLM", detail)


class LocalLLMServer:
    """llama.cpp serving `/v1/chat/completions`, `/v1/models`, `/health` and `/metrics` on loopback.

    Use as a context manager (sync or async) or call `start()`/`stop()`; `stop()` is idempotent.
    """

    def __init__(self, config: LocalLLMConfig) -> None:
        self._config = config
        self._server: Any = None
        self._address = ""
        self._lock = threading.Lock()

    @property
    def config(self) -> LocalLLMConfig:
        return self._config

    @property
    def model_name(self) -> str:
        """The name `/v1/models` lists; any name is accepted in requests, this one is the honest one to send."""
        return self._config.model_name

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, `http://127.0.0.1:PORT/v1`."""
        if not self._address:
            raise RuntimeError("the local LLM server is not running")
        return f"{self._address}/v1"

    @property
    def port(self) -> int:
        return int(self._address.rsplit(":", 1)[1]) if self._address else 0

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        """Load the model and serve; blocks until `/health` answers ok (bounded by `startup_timeout_s`)."""
        with self._lock:
            if self._server is not None:
                return self
            xllamacpp = _import_xllamacpp()
            try:
                self._server = xllamacpp.Server(_params(xllamacpp, self._config))
            except RuntimeError as exc:
                raise LocalLLMError(_start_failure(self._config, exc)) from exc
            self._address = str(self._server.listening_address).rstrip("/")
        try:
            _wait_healthy(self._address, self._config.startup_timeout_s)
        except LocalLLMError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving and free the port, the threads and the model's memory. Safe to call twice."""
        with self._lock:
            # Our reference is the only one, so dropping it runs the destructor, which joins llama.cpp's threads.
            server, self._server, self._address = self._server, None, ""
            del server

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Loading holds the GIL for about a second, so the loop stalls that long even in a worker thread.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise ConfigError(
            "the local LLM needs xllamacpp: install it with `pip install '.[local-model]'` (or run `make demo`)"
        ) from exc
    return xllamacpp


def _params(xllamacpp: Any, config: LocalLLMConfig) -> Any:
    threads = config.n_threads or available_cpus()
    params = xllamacpp.CommonParams()
    params.model.path = str(config.model_path)
    params.model_alias = {config.model_name}
    params.n_parallel = config.n_parallel
    params.n_ctx = config.total_ctx
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.hostnames = [config.host]
    params.port = config.port
    params.endpoint_metrics = True
    params.ui = False
    params.cache_ram_mib = PROMPT_CACHE_MIB
    params.verbosity = LOG_VERBOSITY
    return params


def _start_failure(config: LocalLLMConfig, exc: RuntimeError) -> str:
    # llama.cpp says only "Failed to init server"; the cause is on stderr. Name the usual two.
    if not config.model_path.is_file():
        return f"model file {config.model_path} does not exist"
    where = f"{config.host}:{config.port}" if config.port else config.host
    return f"llama.cpp could not start ({exc}): is {where} free and {config.model_path} a GGUF? (see stderr)"


def _wait_healthy(address: str, timeout_s: float) -> None:
    last = ["no answer yet"]

    def healthy() -> bool:
        try:
            with _DIRECT.open(f"{address}/health", timeout=2) as response:
                last[0] = f"HTTP {response.status}"
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError) as exc:
            last[0] = str(exc)  # 503 while the model is still loading, or not listening yet
            return False

    if wait_until(healthy, timeout_s, poll_s=0.1):
        return
    raise LocalLLMError(f"{address}/health not ready after {timeout_s:.0f}s ({last[0]})")
