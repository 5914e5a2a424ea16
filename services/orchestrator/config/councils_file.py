"""COUNCILS_FILE: the councils a deployment wants, as YAML; each one missing from the store is created at start-up.

```yaml
councils:
  - role: DEV            # DEV | QA | ARCHITECT | DEVOPS | DATA
    num_agents: 3        # 1..10 (0 or absent: the service default)
    rounds: 1            # 1..5 (0 or absent: the service default)
    model: Qwen/Qwen3-0.6B   # optional, default VLLM_MODEL
    temperature: 0.7     # optional, 0..2
    max_tokens: 1024     # optional, 16..32768
    token_budget: 20000  # optional: the council's default token budget per deliberation; 0 = unlimited
```

A council that already exists is left as it is (the file never reconfigures or deletes one), so restarts and
several replicas starting at once are safe. Any problem with the file stops start-up with one line naming it.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.application.commands import CreateCouncil
from orchestrator.domain.errors import ConfigError
from orchestrator.domain.model import Role

MAX_FILE_BYTES = 256 * 1024


class CouncilEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    num_agents: int = Field(0, ge=0, le=10, description="0 = the service default (DEFAULT_AGENTS)")
    rounds: int = Field(0, ge=0, le=5, description="0 = the service default (DEFAULT_ROUNDS)")
    model: str = Field("", max_length=200)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int = Field(0, ge=0, le=32_768)
    token_budget: int | None = Field(None, ge=0, description="the council's default token budget; 0 = unlimited")

    @field_validator("role", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("max_tokens")
    @classmethod
    def _tokens(cls, value: int) -> int:
        if value and value < 16:
            raise ValueError("must be 0 (the default) or 16..32768")
        return value

    def command(self) -> CreateCouncil:
        return CreateCouncil(
            role=self.role.value,
            num_agents=self.num_agents,
            rounds=self.rounds,
            model=self.model,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            token_budget=self.token_budget,
        )


class CouncilsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    councils: list[CouncilEntry] = Field(default_factory=list, max_length=len(Role))

    @field_validator("councils")
    @classmethod
    def _one_per_role(cls, entries: list[CouncilEntry]) -> list[CouncilEntry]:
        roles = [e.role for e in entries]
        duplicates = sorted({r.value for r in roles if roles.count(r) > 1})
        if duplicates:
            raise ValueError(f"one council per role; listed more than once: {', '.join(duplicates)}")
        return entries


def load_councils_file(path: str) -> list[CreateCouncil]:
    """The councils the file lists, as commands; ConfigError (one line) for a missing, oversize or invalid file."""
    file = Path(path)
    where = f"COUNCILS_FILE {path}"
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{where}: larger than {MAX_FILE_BYTES // 1024} KiB")
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read it ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}") from None
    if raw is None:
        return []
    try:
        parsed = CouncilsFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{where}: {field}: {first['msg']}") from None
    return [entry.command() for entry in parsed.councils]
