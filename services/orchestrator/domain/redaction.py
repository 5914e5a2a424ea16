"""What may leave the service as text: URLs without their credentials, and client input cut to a short prefix.

Every URL the service logs or returns goes through `redact_url` (or `redact_secrets` for free text that may
contain one), and every piece of client input an error message or a log line echoes goes through `clip`.
"""

from __future__ import annotations

import re

REDACTED = "***"
ECHO_CHARS = 64
"""How much of a client's value an error message repeats: enough to recognise it, never enough to flood a
status trailer (the client's metadata limit is 8-16 KiB) or a log line."""

# scheme://userinfo@ -- the userinfo runs to the last "@" before the path, so a password with "@" in it is
# covered too. Several URLs in one string (NATS server lists) each match on their own.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s?#'\"]*@")
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:password|passwd|pwd|pass|token|access_token|api[_-]?key|apikey|secret|auth|key)=)[^&;#\s'\"]*",
    re.IGNORECASE,
)


def redact_secrets(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by ***: `nats://alice:pw@host` becomes
    `nats://***@host`, and `?password=pw` / `?token=…` query values become `***`."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('name')}{REDACTED}", text)


def redact_url(url: str) -> str:
    """A URL (or a comma-separated list of them) fit for a log line or a response: no user, password or token."""
    return redact_secrets(url)


def clip(value: object, limit: int = ECHO_CHARS) -> str:
    """`repr(value)` cut to `limit` characters, saying how long the whole was, for echoing client input."""
    text = repr(value) if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str | bytes) else len(text)
    return f"{text[:limit]}… ({size} characters)"
