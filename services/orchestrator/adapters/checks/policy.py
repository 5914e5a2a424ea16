"""Policy rules over a proposal's whole text (prose and code alike). A violation reads "rule: snippet".

Credentials (secrets are never echoed; violations show the key or kind and the value's length only):
- Token shapes, found by the detect-secrets plugins (Yelp's maintained scanner), used in-process on the text:
  only their regexes run (`analyze_string`), so no baseline or settings file is read and no key is verified
  over the network. aws-access-key: AKIA/ASIA... key ids; token-literal: Azure storage `AccountKey=`, JWTs,
  GitHub, GitLab, Slack (tokens and webhooks), Stripe, SendGrid, Twilio, Mailchimp, PyPI, Square, Discord and
  Telegram tokens. Long lines are scanned in overlapping windows of _SCAN_WINDOW characters, which bounds
  the plugins' backtracking on hostile text. Where a plugin's pattern captures only a token's prefix (GitHub's
  `ghp`, GitLab's `glpat`), the whole match is the token (the plugins' own `analyze_string` would report the
  prefix alone, which is too short to count as a secret).
- token-literal, our own patterns for shapes the plugins lack: bare OpenAI/Anthropic-style `sk-...` keys
  (20+ characters with letters and digits), Google `AIza...` API keys, GitHub `github_pat_...`, npm `npm_...`.
- aws-secret-key, our own pattern: an AWS secret access key (40 characters) given unquoted to a key named like
  one (`aws_secret_access_key = ...` in ~/.aws/credentials, `secret_access_key: ...`); the AWS plugin finds
  only quoted ones.
- private-key: a PEM "-----BEGIN ... PRIVATE KEY-----" header followed by actual base64 key material.
- credentials-in-url: scheme://user:password@host.
- hardcoded-secret (our own patterns: detect-secrets' keyword plugin knows neither passphrase nor credentials):
  a key named like a credential (password, passwd, pwd, passphrase, secret, token, credential(s),
  api_key/apikey, access_key, secret_key, private_key, with or without a prefix) given a quoted literal
  (`password = "..."`, `"api_key": "..."`, `pwd='...'`), an unquoted value in the UPPER_CASE env style
  (`PASSWORD=hunter2`, `DB_PASSWORD=hunter2`, `API_KEY=...`), or any scalar value in a parsed YAML document
  (also the Kubernetes env form `{name: DB_PASSWORD, value: ...}`).
  To keep false positives low, values that are obviously not real credentials are ignored: shorter than
  4 characters, containing whitespace, references (`$X`, `${X}`, `$(...)`, `{{ ... }}`, `%(x)s`), paths,
  `<...>` slots, ellipses, masks (`***`, `xxx`, one repeated character), file names (`creds.json`), and dummy
  words (changeme, example, placeholder, your-..., dummy, fake, sample, redacted, replace, password, secret,
  test, string...);
  code that reads a secret (`os.environ["PASSWORD"]`, `password = get_secret()`) has no literal to flag.
  A value flagged by a token rule is not flagged again as a hardcoded-secret.
Dangerous practice. Code is always flagged: a match inside a fenced code block counts whatever the comments
around it say (`rm -rf / # avoid mistakes`). In prose a match is excused only when a negation clearly refers to
it: a negation word (never, don't, avoid, forbid, instead of, ...) before the match, in the same clause (cut at
". ", "! ", "? ", "; " and at but/then/just/however...), at most _NEGATION_REACH words before it.
- rm-rf-root: rm with options (-rf, -r, -f...) of /, /*, ~ or $HOME.
- rm-rf-variable: a recursive rm of a bare variable (`rm -rf "$DIR"`, `rm -rf $DIR/*`): unset or empty, it
  deletes the wrong tree (`/*`); `"${DIR:?}"` (fails when unset or empty) is not flagged.
- curl-pipe-shell (download-then-run): curl/wget piped into a shell, a shell running `$(curl ...)` /
  `<(curl ...)`, or a download followed on the same line by running a script (`wget URL && bash install.sh`,
  `curl -o x.sh URL; sh x.sh`, `... && ./x.sh`).
- chmod-777: chmod 777 / a+rwx, os.chmod(..., 0o777).
- privileged-container: `privileged: true`, `--privileged`, `allowPrivilegeEscalation: true`.
- skip-verification: `--no-verify` (skips git hooks / signature checks).
- tls-verification-disabled: verify=False, InsecureSkipVerify: true, insecure-skip-tls-verify,
  rejectUnauthorized: false, NODE_TLS_REJECT_UNAUTHORIZED=0, ssl._create_unverified_context, CERT_NONE,
  wget --no-check-certificate, curl -k/--insecure.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from orchestrator.adapters.checks.code_blocks import CodeBlock, extract_code_blocks
from orchestrator.domain.model import PolicyResult
from orchestrator.domain.text import flat_ellipsize

MAX_VIOLATIONS = 20
_SNIPPET_CHARS = 60

_SECRET_KEY = (
    r"[\w.-]*?(?:password|passwd|pwd|passphrase|secret|token|credentials?|api[_-]?key|apikey|access[_-]?key|"
    r"secret[_-]?key|private[_-]?key)"
)
_SECRET_KEY_NAME = re.compile(_SECRET_KEY, re.IGNORECASE)
_QUOTED_SECRET = re.compile(
    rf"""(?<![\w.-])["']?({_SECRET_KEY})["']?\s*(?::=|=>|=|:)\s*[bru]?(["'])([^"'\n]*)\2""", re.IGNORECASE
)
# With or without a prefix: `PASSWORD=...` as much as `DB_PASSWORD=...` (the shell's own PWD holds a path).
_ENV_SECRET = re.compile(
    r"(?<![\w$])((?=[A-Z])[A-Z0-9_]*(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|CREDENTIALS?|APIKEY|_PWD|"
    r"(?:API|ACCESS|SECRET|PRIVATE|ACCOUNT|AUTH)_KEY))"
    r"=([^\s\"'`;&|()\[\]{}<>$]+)(?=[\s;&|\"')]|$)",
    re.MULTILINE,
)
_PRIVATE_KEY = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{40,}")
# Shapes detect-secrets lacks (its OpenAI plugin knows only the legacy `...T3BlbkFJ...` keys). The lookbehinds
# let each match start only at a token's start, which keeps the scan linear.
# A pattern with a group reports the group: the secret without the key it is given to.
_OWN_TOKENS = (
    ("token-literal", "sk- key", re.compile(r"(?<![\w-])sk-[A-Za-z0-9_-]{20,}+")),
    ("token-literal", "Google API key", re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])")),
    ("token-literal", "GitHub fine-grained token", re.compile(r"(?<!\w)github_pat_\w{40,}+")),
    ("token-literal", "npm token", re.compile(r"(?<!\w)npm_[A-Za-z0-9]{36}(?!\w)")),
    (
        "aws-secret-key",
        "AWS secret access key",
        re.compile(
            r"(?<![\w-])(?:aws[_-]?)?secret[_-]?(?:access[_-]?)?key(?:[_-]?id)?\s*[:=]\s*([A-Za-z0-9/+]{40})(?![\w/+=])",
            re.IGNORECASE,
        ),
    ),
)
_DETECT_SECRETS: tuple[tuple[str, RegexBasedDetector], ...] = (
    ("aws-access-key", AWSKeyDetector()),
    *(
        ("token-literal", plugin)
        for plugin in (
            AzureStorageKeyDetector(),
            JwtTokenDetector(),
            GitHubTokenDetector(),
            GitLabTokenDetector(),
            SlackDetector(),
            StripeDetector(),
            SendGridDetector(),
            TwilioKeyDetector(),
            MailchimpDetector(),
            PypiTokenDetector(),
            SquareOAuthDetector(),
            DiscordBotTokenDetector(),
            TelegramBotTokenDetector(),
        )
    ),
)
_SCAN_WINDOW = 2048
_SCAN_OVERLAP = 512
_URL_CREDENTIALS = re.compile(r"(?<![A-Za-z0-9+.-])([a-z][a-z0-9+.-]*)://([^\s:/@'\"]+):([^\s:/@'\"]+)@")

_PLACEHOLDER_WORDS_TEXT = """changeme password passwd secret example dummy placeholder redacted test none null todo
fixme pass foo bar sample fake value string str text token apikey"""
_PLACEHOLDER_WORDS = frozenset(_PLACEHOLDER_WORDS_TEXT.split())
_FILE_NAME = re.compile(r"[\w.-]{1,200}\.(?:json|ya?ml|pem|key|ini|cfg|conf|toml|txt|env|p12|pfx|crt|cer)")
"""A value that names a file (`credentials = "service-account.json"`): where a secret is, not the secret."""
_PLACEHOLDER_MARKERS = (
    "${", "{{", "$(", "%(", "<", "...", "…", "***", "xxx", "example", "placeholder", "changeme",
    "change_me", "change-me", "replace", "your", "dummy", "redacted", "fake", "sample",
)  # fmt: skip
_NEGATION = re.compile(
    r"\b(?:never|don['\u2019]?t|do not|does not|must not|mustn['\u2019]?t|should not|shouldn['\u2019]?t|"
    r"avoid\w*|forbid\w*|prohibit\w*|disallow\w*|block(?:ed|ing|list\w*)?|"
    r"reject\w*|detect\w*|deny|denies|ban|banned|instead of)\b",
    re.IGNORECASE,
)
# What ends the clause a negation can reach into: a sentence or clause end, or a turn to another thought.
_CLAUSE_END = re.compile(
    r"[.!?;](?:\s|$)|\b(?:but|then|just|however|anyway|still|though|although|otherwise|instead(?!\s+of))\b",
    re.IGNORECASE,
)
_NEGATION_REACH = 8
_NEGATION_WINDOW = 300
"""Characters looked back from a match for its clause: bounds the work per match on one-line hostile text."""


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
        "rm-rf-variable",
        (
            re.compile(
                r"(?<![\w-])rm\s+(?=(?:-{1,2}[\w-]+\s+){0,7}(?:-[a-zA-Z]*[rR]|--recursive\b))"
                r"((?:-{1,2}[\w-]+\s+){1,8})(?:--\s+)?(\"?)\$(?:[A-Za-z_]\w{0,100}|\{[A-Za-z_]\w{0,100}\})"
                r"(?:/\*?)?\2(?:/\*?)?(?=$|[\s;&|)`])",
                re.MULTILINE,
            ),
        ),
    ),
    _Rule(
        "curl-pipe-shell",
        (
            re.compile(r"\b(?:curl|wget)\b[^\n|]{0,500}\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:ba|z|da|k|fi)?sh\b"),
            re.compile(r"\b(?:ba|z)?sh\s+(?:-c\s+)?[\"']?(?:\$\(|<\()\s*(?:curl|wget)\b"),
            # Download, then run: `wget URL && bash install.sh`, `curl -o x.sh URL; sh x.sh`, `... && ./x.sh`.
            re.compile(
                r"\b(?:curl|wget)\b[^\n;&]{0,500}(?:&&|;)\s*(?:chmod\s[^\n;&]{0,200}(?:&&|;)\s*)?"
                r"(?:sudo\s+(?:-\S+\s+){0,4})?"
                r"(?:(?:(?:ba|z|da|k|fi)?sh|source)\s+(?!-c\b)[\w./~\"'$-]|\.{1,2}/[\w.-])"
            ),
        ),
    ),
    _Rule(
        "chmod-777",
        (
            re.compile(r"\bchmod\s+(?:-[a-zA-Z]+\s+)*(?:0?777|a\+rwx|ugo\+rwx)(?![\w+])"),
            re.compile(r"\bchmod\([^)\n]{0,200}\b0o777\b"),
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
            re.compile(r"\bcurl\b[^\n]{0,500}?\s(?:-k|--insecure)(?=\s|$)", re.MULTILINE),
        ),
    ),
)


def check_policy(
    content: str, yaml_documents: Sequence[object] = (), blocks: Sequence[CodeBlock] | None = None
) -> PolicyResult:
    """The policy result of `content`; `blocks` are its fenced code blocks when the caller has them already."""
    blocks = extract_code_blocks(content) if blocks is None else blocks
    found = [*_credentials(content), *_yaml_secrets(yaml_documents), *_practices(content, blocks)]
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
    if _FILE_NAME.fullmatch(lowered):
        return True
    return any(marker in lowered for marker in _PLACEHOLDER_MARKERS)


def _secret(key: str, value: str) -> str:
    return f"hardcoded-secret: {key} = <redacted, {len(value)} chars>"


def _credentials(content: str) -> Iterator[str]:
    tokens: set[str] = set()
    for rule, kind, value in _tokens(content):
        # Windows overlap, so one token can be found twice, or once whole and once cut at a window's edge.
        if not any(value in seen or seen in value for seen in tokens) and not is_placeholder(value):
            tokens.add(value)
            shown = f"{value[:4]}{'*' * 16}" if rule == "aws-access-key" and len(value) == 20 else kind
            yield f"{rule}: {shown} <redacted, {len(value)} chars>"
    for m in _PRIVATE_KEY.finditer(content):
        yield f"private-key: -----BEGIN {m.group(1)}PRIVATE KEY-----"
    for m in _URL_CREDENTIALS.finditer(content):
        if not is_placeholder(m.group(3)):
            yield f"credentials-in-url: {m.group(1)}://{m.group(2)}:<redacted>@"
    assigned = [*((m.group(1), m.group(3)) for m in _QUOTED_SECRET.finditer(content))]
    assigned += [(m.group(1), m.group(2)) for m in _ENV_SECRET.finditer(content)]
    for key, value in assigned:
        if not is_placeholder(value) and not any(token in value or value in token for token in tokens):
            yield _secret(key, value)


def _tokens(content: str) -> Iterator[tuple[str, str, str]]:
    """(rule, kind, value) of every token-shaped secret: detect-secrets' plugins, then our own patterns."""
    for segment in _scan_segments(content):
        for rule, plugin in _DETECT_SECRETS:
            for value in _plugin_secrets(plugin, segment):
                yield rule, str(plugin.secret_type), value
    for rule, kind, pattern in _OWN_TOKENS:
        for m in pattern.finditer(content):
            if kind != "sk- key" or (re.search(r"\d", m.group(0)) and re.search(r"[A-Za-z]", m.group(0)[3:])):
                yield rule, kind, m.group(m.lastindex or 0)


def _plugin_secrets(plugin: RegexBasedDetector, segment: str) -> Iterator[str]:
    """The secrets a plugin finds: its `analyze_string`, except for patterns with a group, whose group is the
    secret only where it is one (AWS's quoted secret key), not where it is the token's prefix (GitHub's `ghp`)."""
    patterns = list(plugin.denylist)
    if not any(p.groups for p in patterns):
        yield from plugin.analyze_string(segment)
        return
    for pattern in patterns:
        for m in pattern.finditer(segment):
            group = m.group(1) if pattern.groups else None
            yield group if group and len(group) >= _MIN_SECRET_GROUP else m.group(0)


_MIN_SECRET_GROUP = 16


def _scan_segments(content: str) -> Iterator[str]:
    """Overlapping windows of the text. The plugins' patterns never cross a line break, so a window of many
    lines finds what a line-by-line scan would (at a fraction of the calls), and bounded windows bound the
    backtracking some of those patterns do on hostile text."""
    step = _SCAN_WINDOW - _SCAN_OVERLAP
    for start in range(0, max(1, len(content) - _SCAN_OVERLAP), step):
        yield content[start : start + _SCAN_WINDOW]


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


def _practices(content: str, blocks: Sequence[CodeBlock]) -> Iterator[str]:
    code = _code_spans(content, blocks)
    reported: set[str] = set()
    for rule in _RULES:
        for pattern in rule.patterns:
            for m in pattern.finditer(content):
                violation = f"{rule.name}: {_snippet(m.group(0))}"
                if violation not in reported and (_in_spans(code, m.start()) or not _negated(content, m.start())):
                    reported.add(violation)
                    yield violation


def _code_spans(content: str, blocks: Sequence[CodeBlock]) -> list[tuple[int, int]]:
    """Character ranges of the fenced blocks' code, by the lines extract_code_blocks numbered (splitlines)."""
    offsets = [0]
    for line in content.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    spans = []
    for block in blocks:
        first = block.start_line - 1
        last = min(first + block.code.count("\n"), len(offsets) - 1)
        if first < last:
            spans.append((offsets[first], offsets[last]))
    return spans


def _in_spans(spans: Sequence[tuple[int, int]], position: int) -> bool:
    i = bisect.bisect_right(spans, (position, math.inf)) - 1
    return i >= 0 and position < spans[i][1]


def _negated(content: str, start: int) -> bool:
    """Whether prose warns against the practice matched at `start`: a negation shortly before it, same clause."""
    window = max(0, start - _NEGATION_WINDOW)
    line_start = max(content.rfind(mark, window, start) for mark in ("\n", "\r", "\u2028", "\u2029")) + 1
    clause = content[max(window, line_start) : start]
    ends = list(_CLAUSE_END.finditer(clause))
    if ends:
        clause = clause[ends[-1].end() :]
    negations = list(_NEGATION.finditer(clause))
    return bool(negations) and len(clause[negations[-1].end() :].split()) <= _NEGATION_REACH


def _snippet(text: str) -> str:
    return flat_ellipsize(text, _SNIPPET_CHARS)
