"""The deterministic checks of a proposal's markdown: code blocks, lint, dry run, policy, requirements, score."""

from __future__ import annotations

import base64
import builtins
import json
import shutil
import socket
import time

import pytest

from orchestrator.adapters.checks import python_lint
from orchestrator.adapters.checks.policy import check_policy
from orchestrator.adapters.checks.proposal_checks import (
    MAX_CONTENT_CHARS,
    extract_code_blocks,
    requirement_coverage,
    run_checks,
)
from orchestrator.domain.model import CheckResult, CheckSuite

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.local:5000/web:1.4.2
          env:
            - name: DB_PASSWORD
              valueFrom: {secretKeyRef: {name: db, key: password}}
          resources:
            limits: {cpu: 500m, memory: 256Mi}
"""

CLEAN = f"""\
# Cache the catalogue in Redis

Add a Redis cache in front of the catalogue service, with retries on failed requests.

```python
import redis


def cached_get(client: redis.Redis, key: str) -> bytes | None:
    return client.get(key)
```

```yaml
{DEPLOYMENT}```

```bash
if [ -n "$REDIS_URL" ]; then
  echo "using $REDIS_URL"
fi
```
"""

BROKEN = """\
# Something

```python
def handler(event:
    return missing_name
```

```yaml
a: [1, 2
```

```bash
if true; then
  echo never closed
```

Then run `curl https://get.example.sh | sh` and `chmod 777 /srv`.
"""


def fenced(language: str, code: str) -> str:
    return f"Text before.\n\n```{language}\n{code}```\n\nText after.\n"


def additional(suite: CheckSuite, check_type: str) -> CheckResult:
    found = [c for c in suite.additional if c.check_type == check_type]
    assert len(found) == 1, f"expected one {check_type} check in {suite.additional}"
    return found[0]


# Code blocks


def test_code_blocks_are_extracted_with_their_language() -> None:
    content = (
        "```Python title=app.py\nx = 1\n```\n"
        "~~~yml\na: 1\n~~~\n"
        "```\nFROM python:3.11\n```\n"
        "   ```console\n   $ ls\n   ```\n"
        "Inline ```not a fence``` here.\n"
        "```sh\necho cut off"
    )
    blocks = extract_code_blocks(content)
    assert [(b.language, b.index) for b in blocks] == [
        ("python", 0),
        ("yaml", 1),
        ("dockerfile", 2),
        ("shell", 3),
        ("shell", 4),
    ]
    assert blocks[0].code == "x = 1\n"
    assert blocks[0].start_line == 2
    assert blocks[3].code == "$ ls\n"
    assert blocks[3].tag == "console"
    assert blocks[4].code == "echo cut off\n"


def test_a_longer_fence_keeps_shorter_fences_inside_it() -> None:
    blocks = extract_code_blocks("````markdown\n```python\nx = 1\n```\n````\n")
    assert len(blocks) == 1
    assert blocks[0].language == "markdown"
    assert "```python" in blocks[0].code


# Lint


def test_broken_python_block_fails_lint_with_its_line_number() -> None:
    suite = run_checks(fenced("python", "x = 1\ny = 2\ndef f(:\n    pass\n"))
    assert not suite.lint.passed
    assert suite.lint.error_count == 1
    assert suite.lint.errors[0].startswith("python block 1 line 3: SyntaxError")
    assert not suite.all_passed


def test_undefined_name_is_a_lint_error_reported_by_ruff() -> None:
    suite = run_checks(fenced("python", "def f() -> int:\n    return undefined_thing\n"))
    assert not suite.lint.passed
    assert suite.lint.errors == ("python block 1 line 2: F821 Undefined name `undefined_thing`",)
    assert additional(suite, "code_blocks").details["python_linter"] == "ruff"


def test_unused_import_is_only_a_warning() -> None:
    suite = run_checks(fenced("py", "import os\n\nprint('hi')\n"))
    assert suite.lint.passed
    assert (suite.lint.error_count, suite.lint.warning_count) == (0, 1)
    assert "F401" in suite.lint.errors[0]
    assert suite.lint.errors[0].endswith("(warning)")


def test_valid_python_passes_lint() -> None:
    code = "import json\n\n\ndef dump(data: dict[str, int]) -> str:\n    return json.dumps(data)\n"
    suite = run_checks(fenced("python", code))
    assert suite.lint.passed
    assert (suite.lint.error_count, suite.lint.warning_count, suite.lint.errors) == (0, 0, ())


def test_a_name_bound_in_another_python_block_is_defined() -> None:
    content = fenced("python", "app = object()\n") + fenced("python", "print(app)\n")
    assert run_checks(content).lint.passed


def test_interactive_session_is_linted_on_its_input_lines() -> None:
    suite = run_checks(fenced("python", ">>> x = 2\n>>> x * 21\n42\n"))
    assert suite.lint.passed


def test_non_ascii_code_is_linted_and_validated() -> None:
    suite = run_checks(fenced("python", "print('café ☕')\n") + fenced("bash", "echo 'café ☕'\n"))
    assert suite.lint.passed, suite.lint.errors
    assert suite.dryrun.passed, suite.dryrun.output


def test_without_ruff_the_stdlib_fallback_still_finds_undefined_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(python_lint, "_ruff_command", lambda: ("/nonexistent/ruff",))
    suite = run_checks(fenced("python", "import os\n\nprint(os.sep, nowhere)\n"))
    assert suite.lint.errors == ("python block 1 line 3: F821 Undefined name `nowhere`",)
    assert additional(suite, "code_blocks").details["python_linter"] == "stdlib-fallback"


def test_python_blocks_past_the_limit_are_reported_as_skipped() -> None:
    content = "".join(fenced("python", f"x{n} = {n}\n") for n in range(python_lint.MAX_PYTHON_BLOCKS + 2))
    suite = run_checks(content)
    skipped = additional(suite, "code_blocks").details["skipped"]
    assert "python block 11: not linted" in skipped
    assert "python block 12: not linted" in skipped


# Dry run


def test_yaml_parse_error_fails_dryrun_with_its_line() -> None:
    suite = run_checks(fenced("yaml", "a: 1\nb: [1, 2\n"))
    assert not suite.dryrun.passed
    assert suite.dryrun.exit_code == 1
    assert suite.dryrun.message == "1 blocks validated: 0 ok, 1 failed"
    assert suite.dryrun.output.startswith("yaml block 1: YAML error line 3:")


def test_invalid_json_fails_dryrun() -> None:
    suite = run_checks(fenced("json", '{"a": 1,}\n'))
    assert not suite.dryrun.passed
    assert "json block 1: JSON error line 1" in suite.dryrun.output


@needs_bash
def test_bash_n_catches_an_unclosed_if() -> None:
    suite = run_checks(fenced("bash", "if true; then\n  echo hi\n"))
    assert not suite.dryrun.passed
    assert suite.dryrun.exit_code == 2
    assert "shell block 1: bash -n exit 2: bash:" in suite.dryrun.output
    assert "syntax error" in suite.dryrun.output


@needs_bash
def test_console_prompts_and_placeholders_do_not_fail_bash() -> None:
    console = fenced("console", "$ kubectl apply -f <manifest-file>\ndeployment.apps/web created (output)\n")
    shell = fenced("sh", "$ export NS=<your namespace>\n$ kubectl -n $NS get pods\n")
    suite = run_checks(console + shell)
    assert suite.dryrun.passed, suite.dryrun.output
    assert suite.dryrun.message == "2 blocks validated: 2 ok, 0 failed"


def test_helm_templates_are_skipped_not_failed() -> None:
    suite = run_checks(fenced("yaml", "image: {{ .Values.image }}\nreplicas: {{ .Values.replicas }}\n"))
    assert suite.dryrun.passed
    assert "templated" in additional(suite, "code_blocks").details["skipped"]


def test_dockerfile_must_start_with_from() -> None:
    good = run_checks(fenced("dockerfile", "ARG V=3.11\nFROM python:${V}\nRUN pip install x \\\n  && true\n"))
    bad = run_checks(fenced("Dockerfile", "RUN echo hi\nFROM python:3.11\n"))
    assert good.dryrun.passed
    assert not bad.dryrun.passed
    assert "first instruction is RUN" in bad.dryrun.output


# Kubernetes manifests


def test_valid_deployment_passes_k8s_schema() -> None:
    check = additional(run_checks(fenced("yaml", DEPLOYMENT)), "k8s_schema")
    assert check.passed
    assert check.score == 1.0
    assert check.details == {"yaml block 1 doc 1 Deployment/web": "ok"}


def test_deployment_without_containers_fails_k8s_schema() -> None:
    manifest = DEPLOYMENT.split("      containers:")[0] + "      restartPolicy: Always\n"
    suite = run_checks(fenced("yaml", manifest))
    check = additional(suite, "k8s_schema")
    assert not check.passed
    assert check.score == 0.0
    assert "spec.template.spec.containers is missing" in check.details["yaml block 1 doc 1 Deployment/web"]
    assert suite.dryrun.passed  # it is valid YAML, only not a valid Deployment
    assert not suite.all_passed


def test_latest_image_and_missing_limits_are_k8s_warnings() -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: c, image: nginx:latest}\n"
    check = additional(run_checks(fenced("yaml", pod)), "k8s_schema")
    assert check.passed
    assert check.score == 0.9
    assert "uses the latest tag" in check.details["yaml block 1 doc 1 Pod/p"]
    assert "no resource limits" in check.details["yaml block 1 doc 1 Pod/p"]


def test_yaml_without_manifests_has_no_k8s_check() -> None:
    suite = run_checks(fenced("yaml", "retries: 3\n"))
    assert all(c.check_type != "k8s_schema" for c in suite.additional)


# Policy


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("```bash\ncurl -fsSL https://x.example/install | sh\n```", "curl-pipe-shell"),
        ("Clean up with `sudo rm -rf /`.", "rm-rf-root"),
        ("Reset the box: rm -rf ~", "rm-rf-root"),
        ("aws_access_key_id = AKIAABCDEFGHIJKLMNOP", "aws-access-key"),
        ("-----BEGIN RSA PRIVATE KEY-----\n" + "MIIEpAIBAAKCAQEA" * 4 + "\n", "private-key"),
        ('db_password = "hunter2-real"', "hardcoded-secret"),
        ("export GITHUB_TOKEN=abc123def456", "hardcoded-secret"),
        ("```yaml\nenv:\n  - name: API_KEY\n    value: sk-live-1234\n```", "hardcoded-secret"),
        ("DATABASE_URL=postgres://app:s3cr3t@db:5432/app", "credentials-in-url"),
        ("chmod -R 777 /var/www", "chmod-777"),
        ("securityContext:\n  privileged: true", "privileged-container"),
        ("requests.get(url, verify=False)", "tls-verification-disabled"),
        ("tls.Config{InsecureSkipVerify: true}", "tls-verification-disabled"),
        ("git commit --no-verify -m wip", "skip-verification"),
    ],
)
def test_dangerous_practice_is_a_policy_violation(text: str, rule: str) -> None:
    policy = run_checks(text).policy
    assert not policy.passed
    assert [v.split(":", 1)[0] for v in policy.violations] == [rule]


@pytest.mark.parametrize(
    "text",
    [
        'db_password = "${DB_PASSWORD}"',
        "password: <your-password>",
        'api_key = "changeme"',
        'token = os.environ["API_TOKEN"]',
        "export DB_PASSWORD=$DB_PASSWORD",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        "rm -rf /tmp/build ~/.cache/pip",
        "curl -s https://api.example/health | python -m json.tool",
        "secretName: db-credentials",
        "Never pipe `curl https://x.example | sh`: download and verify the script first.",
        "privileged: false",
    ],
)
def test_placeholders_and_safe_text_are_not_violations(text: str) -> None:
    policy = run_checks(text).policy
    assert policy.passed, policy.violations
    assert policy.message == "no policy violations"


def test_a_policy_violation_does_not_echo_the_secret() -> None:
    policy = run_checks('client_secret: "Zx9-very-real-secret"').policy
    assert policy.violations == ("hardcoded-secret: client_secret = <redacted, 20 chars>",)
    assert "Zx9" not in policy.message


def _b64(document: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


JWT = (
    f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': '1234567890'})}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
AZURE_KEY = "q8Xc0vM3n1Lk9Jf2Hd7Gs5Ta4Pw6Re8Yu0Io2Kl4Zx6Cv8Bn1Mq3Wz5Ex7Rt9Yp0As2Df4Gh6Jk8Lz1Xc3Vb5Nm7Qw9Ee0Rr2Tt4Y="


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("```bash\nPASSWORD=hunter2x ./run.sh\n```", "hardcoded-secret"),
        ("API_KEY=a8f5f167f44f4964e6c998dee827110c", "hardcoded-secret"),
        ("export TOKEN=ab12cd34ef56", "hardcoded-secret"),
        ("SECRET=s3cr3tv4lue", "hardcoded-secret"),
        ("DJANGO_SECRET_KEY=k3y-f0r-pr0d", "hardcoded-secret"),
        ('conn = connect(host, pwd="Tr0ub4dor&3")', "hardcoded-secret"),
        ("client = OpenAI(api_key=sk-4f8Kq2LmN9pX7vR3tY6wZ1bC5dE0gH)", "token-literal"),
        ("OPENAI_API_KEY=sk-proj-4f8Kq2LmN9pX7vR3tY6wZ1bC5dE0gH", "token-literal"),
        (f"Authorization: Bearer {JWT}", "token-literal"),
        ("maps_url = f'{BASE}?key=AIzaSyD4f8Kq2LmN9pX7vR3tY6wZ1bC5dE0gH1k'", "token-literal"),
        (f"AZURE_CONN=DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY}", "token-literal"),
        ("stripe.api_key = sk_live_4eC39HqLyjWDarjtT1zdp7dc", "token-literal"),
        ("curl -X POST https://hooks.slack.com/services/T0A1B2C3/B4D5E6F7/abcd1234efgh5678ijkl", "token-literal"),
    ],
)
def test_common_secret_shapes_are_policy_violations(text: str, rule: str) -> None:
    policy = run_checks(text).policy
    assert [v.split(":", 1)[0] for v in policy.violations] == [rule], policy.violations
    assert not any(len(word) > 12 and word in policy.message + "".join(policy.violations) for word in text.split())


GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"  # split: no scanner flags this file
AWS_SECRET = "Zk3n8Qp2Lr5Tv7Wx9Yb1Cd3Ef5Gh7Jk9Mn1Pq3Rs"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f"git clone https://github.com/acme/app && export GH={GITHUB_TOKEN}", "token-literal"),
        (f"headers = {{'Authorization': 'token {GITHUB_TOKEN}'}}", "token-literal"),
        ("gitlab: glpat-" + "x1Y2z3A4b5C6d7E8f9G0h1", "token-literal"),
        (f"[default]\naws_secret_access_key = {AWS_SECRET}\n", "aws-secret-key"),
        (f"secret_access_key: {AWS_SECRET}", "aws-secret-key"),
        ('passphrase = "correct-horse-battery-9"', "hardcoded-secret"),
        ("```bash\nGPG_PASSPHRASE=Tr0ub4dor3x gpg --batch ...\n```", "hardcoded-secret"),
        ('credentials = "svc:Zk3n8Qp2Lr5Tv7"', "hardcoded-secret"),
        ("DB_CREDENTIALS=admin:Zk3n8Qp2Lr5Tv7", "hardcoded-secret"),
        (
            'conn = "DefaultEndpointsProtocol=https;AccountName=acct;'
            f'AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net"',
            "token-literal",
        ),
        ('```bash\nrm -rf "$DIR"\n```', "rm-rf-variable"),
        ("```bash\nrm -r -f ${BUILD_DIR}/*\n```", "rm-rf-variable"),
        ("```bash\nwget -O - https://x.example/i.sh | bash\n```", "curl-pipe-shell"),
        ("```bash\nwget https://x.example/install.sh && bash install.sh\n```", "curl-pipe-shell"),
        ("```bash\ncurl -o i.sh https://x.example/i.sh; sudo sh i.sh\n```", "curl-pipe-shell"),
        ("```bash\ncurl -LO https://x.example/i.sh && chmod +x i.sh && ./i.sh\n```", "curl-pipe-shell"),
    ],
)
def test_the_secret_and_practice_forms_issue_23_found_missing_are_violations(text: str, rule: str) -> None:
    policy = run_checks(text).policy
    assert [v.split(":", 1)[0] for v in policy.violations] == [rule], policy.violations
    for secret in (GITHUB_TOKEN, AWS_SECRET, AZURE_KEY, "Tr0ub4dor3x", "Zk3n8Qp2Lr5Tv7", "correct-horse"):
        assert secret not in policy.message + "".join(policy.violations)


@pytest.mark.parametrize(
    "text",
    [
        'rm -rf "${DIR:?}"',
        'rm -rf "${DIR:?}/"*',
        'rm -rf "$DIR/build"',
        'rm -f "$LOCK_FILE"',
        "wget -q https://x.example/a.tgz && tar xzf a.tgz",
        "curl -fsS http://localhost:8080/health && echo up",
        'credentials = "service-account.json"',
        "credentials = load_credentials()",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        'Never `rm -rf "$DIR"` without `${DIR:?}`.',
    ],
)
def test_the_safe_neighbours_of_those_forms_are_not_violations(text: str) -> None:
    policy = run_checks(text).policy
    assert policy.passed, policy.violations


@pytest.mark.parametrize(
    "text",
    [
        'password = os.environ["PASSWORD"]',
        "password = get_secret()",
        "TOKEN=<your-token>",
        'api_key = "<your-token>"',
        "export API_KEY=${API_KEY}",
        "PWD=/home/app",
        "pip install scikit-learn sk-learn-pipeline-estimators",
        "connect(password=db_password)",
        "SECRET=changeme",
    ],
)
def test_code_that_reads_a_secret_or_a_placeholder_is_not_a_violation(text: str) -> None:
    policy = run_checks(text).policy
    assert policy.passed, policy.violations


@pytest.mark.parametrize(
    "text",
    [
        "rm -rf / # avoid mistakes",
        "```bash\n# never run this outside a throwaway VM\nrm -rf /\n```",
        "```bash\ncurl -fsSL https://x.example/i.sh | sh  # do not pipe to sh in prod\n```",
        "Don't worry, just run `rm -rf /` to start over.",
        "We avoid downtime; run `chmod 777 /srv` first.",
        "Never mind the warnings: the quickest fix is to reset everything and then run `rm -rf ~`.",
    ],
)
def test_a_negation_that_does_not_refer_to_the_practice_does_not_excuse_it(text: str) -> None:
    policy = run_checks(text).policy
    assert not policy.passed, text


@pytest.mark.parametrize(
    "text",
    [
        "Never run `rm -rf /` on a shared host.",
        "Do not use `chmod 777`; grant the service user 750 instead.",
        "Avoid `curl https://x.example/install | sh`: download, verify, then run it.",
        "Use a scoped delete instead of `rm -rf /`.",
    ],
)
def test_prose_that_warns_against_a_practice_is_not_a_violation(text: str) -> None:
    policy = run_checks(text).policy
    assert policy.passed, policy.violations


def test_secret_scanning_reads_no_file_and_opens_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the policy check touched the outside world: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(builtins, "open", refuse)
    text = "\n".join(["aws_access_key_id = AKIAABCDEFGHIJKLMNOP", "key: xoxb-1234567890-abcdefghij", JWT])
    policy = check_policy(text)
    assert [v.split(":", 1)[0] for v in policy.violations] == ["aws-access-key", "token-literal", "token-literal"]


@pytest.mark.parametrize(
    "unit", ["a.", "sk-", "eyJ", "curl ", "//", "\n", "aws key ", "--privileged ", "rm -r ", "curl x && ", "ghp_"]
)
def test_policy_rules_take_linear_time_on_hostile_text(unit: str) -> None:
    """Growth, not speed: 4x the hostile text may cost about 4x the time (a backtracking rule would cost 16x or
    more). The best of three runs of each size keeps a loaded machine from deciding the ratio."""

    def best_of_three(chars: int) -> float:
        text = unit * (chars // len(unit))
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            check_policy(text)
            runs.append(time.perf_counter() - started)
        return max(min(runs), 1e-4)

    small, large = best_of_three(MAX_CONTENT_CHARS // 8), best_of_three(MAX_CONTENT_CHARS // 2)
    assert large / small < 10, f"4x the text took {large / small:.1f}x the time ({small:.3f}s -> {large:.3f}s)"


# Requirements


def test_requirement_coverage_counts_covered_and_missing() -> None:
    check = requirement_coverage(
        CLEAN, ["Cache catalogue responses in Redis", "Support OAuth2 login with PKCE", "Retry failed requests"]
    )
    assert not check.passed
    assert check.score == pytest.approx(2 / 3, abs=1e-4)
    assert check.message == "2/3 requirements covered"
    assert check.details == {
        "Cache catalogue responses in Redis": "covered",
        "Support OAuth2 login with PKCE": "missing",
        "Retry failed requests": "covered",
    }


def test_requirement_words_match_across_inflections() -> None:
    check = requirement_coverage("We are caching the indexes and retrying.", ["cached index", "retries"])
    assert check.passed


def test_long_requirements_are_truncated_in_details() -> None:
    requirement = "word " * 40
    check = requirement_coverage("nothing relevant", [requirement])
    (key,) = check.details
    assert len(key) == 80
    assert check.details[key] == "missing"


def test_no_requirements_pass_with_full_score() -> None:
    check = additional(run_checks("Plain prose."), "requirements")
    assert (check.passed, check.score) == (True, 1.0)


# Suite and score


def test_clean_proposal_passes_everything() -> None:
    suite = run_checks(CLEAN, ["Cache catalogue responses in Redis"])
    assert suite.policy.passed, suite.policy.violations
    assert suite.lint.passed, suite.lint.errors
    assert suite.dryrun.passed, suite.dryrun.output
    assert suite.all_passed
    assert suite.score == 1.0


def test_clean_proposal_scores_higher_than_a_broken_one() -> None:
    requirements = ["Cache catalogue responses in Redis"]
    clean, broken = run_checks(CLEAN, requirements), run_checks(BROKEN, requirements)
    assert not broken.all_passed
    assert {v.split(":", 1)[0] for v in broken.policy.violations} == {"curl-pipe-shell", "chmod-777"}
    assert broken.score < 0.5 < clean.score


def test_prose_only_proposal_is_scored_on_requirement_coverage() -> None:
    suite = run_checks("We will cache catalogue pages in Redis.", ["cache catalogue pages", "OAuth2 login PKCE"])
    # 0.35 policy + 0.30 lint + 0.15 dry run (nothing to check) + 0.20 * 1/2 coverage
    assert suite.score == pytest.approx(0.9)
    assert additional(suite, "code_blocks").score == 0.5


def test_checks_are_deterministic() -> None:
    requirements = ["Cache catalogue responses in Redis", "OAuth2"]
    assert run_checks(BROKEN, requirements) == run_checks(BROKEN, requirements)
    assert run_checks(CLEAN, requirements) == run_checks(CLEAN, requirements)


def test_only_the_first_200_kb_are_checked() -> None:
    content = "x" * MAX_CONTENT_CHARS + "\nrm -rf /\n"
    suite = run_checks(content)
    assert suite.policy.passed
    assert "content_truncated" in additional(suite, "code_blocks").details


def test_a_typical_proposal_checks_quickly() -> None:
    run_checks(CLEAN)  # warm the ruff lookup and the OS caches
    started = time.perf_counter()
    run_checks(CLEAN, ["Cache catalogue responses in Redis"])
    assert time.perf_counter() - started < 1.0
