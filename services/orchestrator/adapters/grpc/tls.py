"""TLS for the gRPC server: certificate files that are re-read when they change (Kubernetes rotates a mounted
Secret by swapping a symlink), without a restart.

gRPC asks `CertificateFiles.fetch` for the certificate configuration before each new handshake; it answers None
("unchanged") unless a file's (inode, size, mtime) moved, so the check costs three `stat` calls. A half-written
rotation (a new certificate with the old key) fails the pair check and the previous pair stays in use until the
files agree again. Connections already open keep the certificate they were made with.
"""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

from orchestrator.domain.errors import ConfigError

log = structlog.get_logger(__name__)

FileSignature = tuple[int, int, int] | None


@dataclass(frozen=True)
class TlsConfig:
    """PEM files of the server's certificate chain and key; with `client_ca`, clients must present a certificate
    signed by it (mTLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @property
    def mode(self) -> str:
        return "mtls" if self.client_ca is not None else "tls"


@dataclass(frozen=True)
class _Material:
    cert: bytes
    key: bytes
    client_ca: bytes | None


def _signature(path: Path) -> FileSignature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{what} {path}: not a PEM file")
    return data


def load_material(config: TlsConfig) -> _Material:
    """Reads and checks the files: the key must match the certificate, the client CA must be certificates."""
    cert = _read(config.cert, "GRPC_TLS_CERT")
    key = _read(config.key, "GRPC_TLS_KEY")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(config.cert, config.key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"GRPC_TLS_CERT {config.cert} and GRPC_TLS_KEY {config.key}: not a matching certificate and key "
            f"({getattr(exc, 'reason', None) or type(exc).__name__})"
        ) from None
    client_ca = None
    if config.client_ca is not None:
        client_ca = _read(config.client_ca, "GRPC_TLS_CLIENT_CA")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_verify_locations(cafile=config.client_ca)
        except (ssl.SSLError, OSError):
            raise ConfigError(f"GRPC_TLS_CLIENT_CA {config.client_ca}: no CA certificate in it") from None
    return _Material(cert, key, client_ca)


class CertificateFiles:
    """The current certificate configuration, re-read from the files when they change."""

    def __init__(self, config: TlsConfig) -> None:
        self.config = config
        self._lock = threading.Lock()  # gRPC calls fetch from its own threads
        self._signatures = self._stat()
        self.material = load_material(config)

    def _paths(self) -> list[Path]:
        return [self.config.cert, self.config.key, *([self.config.client_ca] if self.config.client_ca else [])]

    def _stat(self) -> list[FileSignature]:
        return [_signature(p) for p in self._paths()]

    def certificate_configuration(self) -> grpc.ServerCertificateConfiguration:
        m = self.material
        return grpc.ssl_server_certificate_configuration([(m.key, m.cert)], root_certificates=m.client_ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate-configuration fetcher: a new configuration when the files changed, else None."""
        with self._lock:
            signatures = self._stat()
            if signatures == self._signatures or None in signatures:
                return None
            try:
                material = load_material(self.config)
            except ConfigError as exc:
                # Not recorded as seen: the next handshake tries again, once the rotation is complete.
                log.warning("tls_reload_failed", error=str(exc), keeping="previous certificate")
                return None
            self._signatures, self.material = signatures, material
            log.info("tls_reloaded", cert=str(self.config.cert), mode=self.config.mode)
            return self.certificate_configuration()


def server_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    """Server credentials that follow the files; client certificates are required when a client CA is set."""
    return grpc.dynamic_ssl_server_credentials(
        files.certificate_configuration(),
        files.fetch,  # type: ignore[arg-type]  # None means "unchanged" to gRPC; the stubs omit it
        require_client_authentication=files.config.client_ca is not None,
    )
