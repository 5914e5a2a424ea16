"""ThreadedChecker keeps the suites of texts it checked: the same text is inspected once, a linter that was skipped
is asked again."""

from __future__ import annotations

import pytest

from orchestrator.adapters.checks import checker as checker_module
from orchestrator.adapters.checks.checker import ThreadedChecker

PYTHON = "```python\ndef add(a, b):\n    return a + b\n```"
SHELL = "```bash\nset -euo pipefail\necho hi\n```"


@pytest.fixture
def inspections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = checker_module.inspect_proposal

    def counting(content, requirements):  # type: ignore[no-untyped-def]
        seen.append(content)
        return real(content, requirements)

    monkeypatch.setattr(checker_module, "inspect_proposal", counting)
    return seen


async def test_a_text_checked_before_is_not_checked_again(inspections: list[str]) -> None:
    checker = ThreadedChecker()
    first = await checker.check(PYTHON, ["ruff"])
    again = await checker.check(PYTHON, ["ruff"])
    assert again == first and inspections == [PYTHON]
    await checker.check(PYTHON, [])  # other requirements: checked
    await checker.check(PYTHON + "\n", ["ruff"])  # another text: checked
    assert len(inspections) == 3


async def test_a_suite_with_a_skipped_linter_is_not_kept(inspections: list[str]) -> None:
    checker = ThreadedChecker()  # no sandbox: shellcheck is skipped
    suite = await checker.check(SHELL, [])
    assert any("skipped" in r.message for r in suite.additional), suite.additional
    await checker.check(SHELL, [])
    assert inspections == [SHELL, SHELL]


async def test_kept_is_bounded(inspections: list[str]) -> None:
    checker = ThreadedChecker(kept=1)
    await checker.check(PYTHON, [])
    await checker.check(PYTHON + "\n", [])  # PYTHON leaves
    await checker.check(PYTHON, [])
    assert len(inspections) == 3
    none_kept = ThreadedChecker(kept=0)
    await none_kept.check(PYTHON, [])
    await none_kept.check(PYTHON, [])
    assert len(inspections) == 5
