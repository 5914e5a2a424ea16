"""TLS for the gRPC server: certificate files that are re-read when they change (Kubernetes rotates a mounted
Secret by swapping a symlink), without a restart.

gRPC asks `CertificateFiles.fetch` for the certificate configuration before each new handshake; it answers None
("unchanged") unless a file's (inode, size, mtime) moved, so the check costs three `stat` calls. A half-written
rotation (a new certificate with the old key) fails the pair check and the previous pair stays in use until the
files agree again. Connections already open keep the certificate they were made with.

The server's own certificate (the first of the chain) must be valid now: an expired or not yet valid one stops
start-up with a line that says when it was valid (clients would refuse every handshake), and a rotation to such a
certificate is ignored like a mismatched pair. One that expires within EXPIRY_WARNING_DAYS is logged as a warning
at start-up and at each reload, and listed in GetStatus `warnings` while it lasts.
"""

from __future__ import annotations

import datetime
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from cryptography import x509

from orchestrator.domain.errors import ConfigError

log = structlog.get_logger(__name__)

FileSignature = tuple[int, int, int] | None
EXPIRY_WARNING_DAYS = 14
"""A server certificate that expires within this many days is warned about (log, GetStatus)."""


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
    not_after: datetime.datetime
    """When the server's own certificate expires (UTC)."""


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def check_validity(cert: bytes, path: Path, now: datetime.datetime) -> datetime.datetime:
    """The expiry of the chain's first certificate (the server's own); ConfigError when it is not valid at `now`."""
    try:
        leaf = x509.load_pem_x509_certificate(cert)
    except ValueError:
        raise ConfigError(f"GRPC_TLS_CERT {path}: its first PEM block is not an X.509 certificate") from None
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < not_before:
        raise ConfigError(
            f"GRPC_TLS_CERT {path}: the certificate is not valid yet (valid from {_when(not_before)}, now "
            f"{_when(now)}): clients would refuse it; check the clock or issue one valid now"
        )
    if now >= not_after:
        raise ConfigError(
            f"GRPC_TLS_CERT {path}: the certificate expired at {_when(not_after)} (now {_when(now)}): clients would "
            "refuse it; renew it"
        )
    return not_after


def expiry_warning(material: _Material, path: Path, now: datetime.datetime) -> str | None:
    """A sentence for an operator when the certificate expires within EXPIRY_WARNING_DAYS, else None."""
    left = material.not_after - now
    if left >= datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        return None
    expiry = _when(material.not_after)
    if left <= datetime.timedelta(0):
        return f"GRPC_TLS_CERT {path}: the certificate expired at {expiry}: clients refuse it; renew it"
    days = left.total_seconds() / 86_400
    return f"GRPC_TLS_CERT {path}: the certificate expires at {expiry} (in {days:.1f} days); renew it"


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


def load_material(config: TlsConfig, now: datetime.datetime | None = None) -> _Material:
    """Reads and checks the files: the certificate valid now, the key matching it, the client CA certificates."""
    cert = _read(config.cert, "GRPC_TLS_CERT")
    not_after = check_validity(cert, config.cert, now or _utc_now())
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
    return _Material(cert, key, client_ca, not_after)


class CertificateFiles:
    """The current certificate configuration, re-read from the files when they change."""

    def __init__(self, config: TlsConfig, now: datetime.datetime | None = None) -> None:
        self.config = config
        self._lock = threading.Lock()  # gRPC calls fetch from its own threads
        self._signatures = self._stat()
        self.material = load_material(config, now)
        self._warn_if_expiring(now)

    def _warn_if_expiring(self, now: datetime.datetime | None) -> None:
        if warning := expiry_warning(self.material, self.config.cert, now or _utc_now()):
            log.warning("tls_certificate_expires_soon", problem=warning)

    def problems(self, now: datetime.datetime | None = None) -> list[str]:
        """The certificate in use expiring soon (or expired while serving), for GetStatus; [] when neither."""
        warning = expiry_warning(self.material, self.config.cert, now or _utc_now())
        return [warning] if warning else []

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
            self._warn_if_expiring(None)
            return self.certificate_configuration()


def server_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    """Server credentials that follow the files; client certificates are required when a client CA is set."""
    return grpc.dynamic_ssl_server_credentials(
        files.certificate_configuration(),
        files.fetch,  # type: ignore[arg-type]  # None means "unchanged" to gRPC; the stubs omit it
        require_client_authentication=files.config.client_ca is not None,
    )
