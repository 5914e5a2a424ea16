"""Policy rules over a proposal's whole text (prose and code alike). A violation reads "rule: snippet".

Credentials (secrets are never echoed; violations show the key and the value's length only):
- aws-access-key: AKIA/ASIA followed by 16 capitals or digits, except AWS's documented ...EXAMPLE keys.
- private-key: a PEM "-----BEGIN ... PRIVATE KEY-----" header followed by actual base64 key material.
- token-literal: GitHub (ghp_, gho_..., github_pat_) and Slack (xox?-) token shapes.
- credentials-in-url: scheme://user:password@host.
- hardcoded-secret: a key ending in password, passwd, secret, token, api_key/apikey, access_key,
  secret_key or private_key given a quoted literal (`password = "..."`, `"api_key": "..."`,
  `token: '...'`), an unquoted value in the UPPER_CASE env style (`DB_PASSWORD=hunter2`), or any scalar
  value in a parsed YAML document (also the Kubernetes env form `{name: DB_PASSWORD, value: ...}`).
  To keep false positives low, values that are obviously not real credentials are ignored: shorter than
  4 characters, containing whitespace, references (`$X`, `${X}`, `$(...)`, `{{ ... }}`, `%(x)s`), paths,
  `<...>` slots, ellipses, masks (`***`, `xxx`, one repeated character), and dummy words (changeme,
  example, placeholder, your-..., dummy, fake, sample, redacted, replace, password, secret, test, string...).
Dangerous practice (not reported in a sentence that warns against it: never, don't, avoid, forbid, ...):
- rm-rf-root: rm with options (-rf, -r, -f...) of /, /*, ~ or $HOME.
- curl-pipe-shell: curl/wget piped into a shell, or a shell running `$(curl ...)` / `<(curl ...)`.
- chmod-777: chmod 777 / a+rwx, os.chmod(..., 0o777).
- privileged-container: `privileged: true`, `--privileged`, `allowPrivilegeEscalation: true`.
- skip-verification: `--no-verify` (skips git hooks / signature checks).
- tls-verification-disabled: verify=False, InsecureSkipVerify: true, insecure-skip-tls-verify,
  rejectUnauthorized: false, NODE_TLS_REJECT_UNAUTHORIZED=0, ssl._create_unverified_context, CERT_NONE,
  wget --no-check-certificate, curl -k/--insecure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from orchestrator.domain.model import PolicyResult

MAX_VIOLATIONS = 20
_SNIPPET_CHARS = 60

_SECRET_KEY = (
    r"[\w.-]*?(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key)"
)
_SECRET_KEY_NAME = re.compile(_SECRET_KEY, re.IGNORECASE)
_QUOTED_SECRET = re.compile(
    rf"""(?<![\w-])["']?({_SECRET_KEY})["']?\s*(?::=|=>|=|:)\s*[bru]?(["'])([^"'\n]*)\2""", re.IGNORECASE
)
_ENV_SECRET = re.compile(
    r"(?<![\w$])([A-Z][A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY))"
    r"=([^\s\"'`;&|()\[\]{}<>$]+)(?=[\s;&|\"')]|$)",
    re.MULTILINE,
)
_AWS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_PRIVATE_KEY = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{40,}")
_TOKEN_LITERAL = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_\w{40,}|xox[abprs]-[0-9A-Za-z-]{10,})")
_URL_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.-]*)://([^\s:/@'\"]+):([^\s:/@'\"]+)@")

_PLACEHOLDER_WORDS_TEXT = """changeme password passwd secret example dummy placeholder redacted test none null todo
fixme pass foo bar sample fake value string str text token apikey"""
_PLACEHOLDER_WORDS = frozenset(_PLACEHOLDER_WORDS_TEXT.split())
_PLACEHOLDER_MARKERS = (
    "${", "{{", "$(", "%(", "<", "...", "…", "***", "xxx", "example", "placeholder", "changeme",
    "change_me", "change-me", "replace", "your", "dummy", "redacted", "fake", "sample",
)  # fmt: skip
_NEGATION = re.compile(
    r"\b(?:never|don'?t|do not|does not|must not|mustn'?t|should not|shouldn'?t|avoid\w*|forbid\w*|"
    r"prohibit\w*|disallow\w*|block(?:ed|ing|list\w*)?|reject\w*|detect\w*|deny|denies|ban|banned|instead of)\b",
    re.IGNORECASE,
)


_SENTENCE_ENDS = (". ", "! ", "? ")


@dataclass(frozen=True)
class _Rule:
    name: str
    patterns: tuple[re.Pattern[str], ...]


_RULES = (
    _Rule(
        "rm-rf-root",
        (
            re.compile(
                r"(?<![\w-])rm\s+((?:-{1,2}[\w-]+\s+)+)(?:--\s+)?[\"']?(?:/\*?|~/?\*?|\$\{?HOME\}?/?\*?)[\"']?"
                r"(?=$|[\s;&|)`])",
                re.MULTILINE,
            ),
        ),
    ),
    _Rule(
        "curl-pipe-shell",
        (
            re.compile(r"\b(?:curl|wget)\b[^\n|]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:ba|z|da|k|fi)?sh\b"),
            re.compile(r"\b(?:ba|z)?sh\s+(?:-c\s+)?[\"']?(?:\$\(|<\()\s*(?:curl|wget)\b"),
        ),
    ),
    _Rule(
        "chmod-777",
        (
            re.compile(r"\bchmod\s+(?:-[a-zA-Z]+\s+)*(?:0?777|a\+rwx|ugo\+rwx)(?![\w+])"),
            re.compile(r"\bchmod\([^)\n]*\b0o777\b"),
        ),
    ),
    _Rule(
        "privileged-container",
        (
            re.compile(r"\bprivileged\s*:\s*(?:true|True|TRUE|yes)\b"),
            re.compile(r"--privileged\b(?!\s*=\s*false)"),
            re.compile(r"\ballowPrivilegeEscalation\s*:\s*true\b"),
        ),
    ),
    _Rule("skip-verification", (re.compile(r"--no-verify\b"),)),
    _Rule(
        "tls-verification-disabled",
        (
            re.compile(r"\bverify\s*=\s*False\b"),
            re.compile(r"\bInsecureSkipVerify\s*:\s*true\b"),
            re.compile(r"--insecure-skip-tls-verify\b(?!\s*=\s*false)"),
            re.compile(r"\binsecure-skip-tls-verify\s*:\s*true\b"),
            re.compile(r"\brejectUnauthorized\s*:\s*false\b"),
            re.compile(r"\bNODE_TLS_REJECT_UNAUTHORIZED\s*=\s*[\"']?0\b"),
            re.compile(r"\bssl\._create_unverified_context\b|\bCERT_NONE\b"),
            re.compile(r"--no-check-certificate\b"),
            re.compile(r"\bcurl\b[^\n]*?\s(?:-k|--insecure)(?=\s|$)", re.MULTILINE),
        ),
    ),
)


def check_policy(content: str, yaml_documents: Sequence[object] = ()) -> PolicyResult:
    found = [*_credentials(content), *_yaml_secrets(yaml_documents), *_practices(content)]
    violations = tuple(dict.fromkeys(found))
    if not violations:
        return PolicyResult(passed=True, message="no policy violations")
    rules = ", ".join(dict.fromkeys(v.split(":", 1)[0] for v in violations))
    return PolicyResult(
        passed=False,
        violations=violations[:MAX_VIOLATIONS],
        message=f"{len(violations)} policy violations ({rules})",
    )


def is_placeholder(value: str) -> bool:
    """Whether a credential-like value is obviously not a real credential (see the module docstring)."""
    lowered = value.strip().lower()
    if len(lowered) < 4 or any(c.isspace() for c in lowered) or lowered.startswith(("$", "/", "./", "~/")):
        return True
    if re.sub(r"[^a-z0-9]", "", lowered) in _PLACEHOLDER_WORDS or len(set(lowered)) == 1:
        return True
    return any(marker in lowered for marker in _PLACEHOLDER_MARKERS)


def _secret(key: str, value: str) -> str:
    return f"hardcoded-secret: {key} = <redacted, {len(value)} chars>"


def _credentials(content: str) -> Iterator[str]:
    for m in _AWS_KEY.finditer(content):
        if "EXAMPLE" not in m.group(0):
            yield f"aws-access-key: {m.group(0)[:4]}{'*' * 16}"
    for m in _PRIVATE_KEY.finditer(content):
        yield f"private-key: -----BEGIN {m.group(1)}PRIVATE KEY-----"
    for m in _TOKEN_LITERAL.finditer(content):
        yield f"token-literal: {m.group(0)[:4]}<redacted, {len(m.group(0))} chars>"
    for m in _URL_CREDENTIALS.finditer(content):
        if not is_placeholder(m.group(3)):
            yield f"credentials-in-url: {m.group(1)}://{m.group(2)}:<redacted>@"
    for m in _QUOTED_SECRET.finditer(content):
        if not is_placeholder(m.group(3)):
            yield _secret(m.group(1), m.group(3))
    for m in _ENV_SECRET.finditer(content):
        if not is_placeholder(m.group(2)):
            yield _secret(m.group(1), m.group(2))


def _yaml_secrets(documents: Sequence[object]) -> Iterator[str]:
    for node in _walk(documents):
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if isinstance(key, str) and _literal(value) and _SECRET_KEY_NAME.fullmatch(key):
                yield _secret(key, str(value))
        name, value = node.get("name"), node.get("value")
        if isinstance(name, str) and _SECRET_KEY_NAME.fullmatch(name) and _literal(value):
            yield _secret(name, str(value))


def _literal(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and not is_placeholder(str(value))


def _walk(documents: Sequence[object], limit: int = 20_000) -> Iterator[object]:
    """Every node once; YAML aliases can make a document a graph, even a cyclic one."""
    stack = list(documents)
    seen: set[int] = set()
    while stack and len(seen) < limit:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _practices(content: str) -> Iterator[str]:
    for rule in _RULES:
        for pattern in rule.patterns:
            for m in pattern.finditer(content):
                if not _NEGATION.search(_sentence_of(content, m.start(), m.end())):
                    yield f"{rule.name}: {_snippet(m.group(0))}"


def _sentence_of(content: str, start: int, end: int) -> str:
    """The match's sentence, cut at line ends and at ". ", "! ", "? " (commands hold dots, rarely dot-space)."""
    line_start = content.rfind("\n", 0, start) + 1
    line_end = content.find("\n", end)
    line_end = len(content) if line_end == -1 else line_end
    before = [content.rfind(mark, line_start, start) for mark in _SENTENCE_ENDS]
    after = [i for i in (content.find(mark, end, line_end) for mark in _SENTENCE_ENDS) if i != -1]
    return content[max([line_start, *(i + 2 for i in before if i != -1)]) : min([line_end, *after])]


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET_CHARS else flat[: _SNIPPET_CHARS - 1] + "…"
