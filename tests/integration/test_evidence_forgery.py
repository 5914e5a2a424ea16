"""Forging the evidence: proposals and agents' test blocks that try to write their own verdicts, in a deliberation
with the real bubblewrap sandbox (the fake model answers the hostile content, and the peers score the hostile
proposals highest). Each attack must leave every verdict as the code earned it: the wrong solution never passes
a specification test it fails, the correct one never loses one, and the correct one ranks first on evidence."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from orchestrator.adapters.checks.execution import ExecutionVerifier, run_units
from orchestrator.adapters.sandbox import BwrapSandbox
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.compose import Options, compose
from orchestrator.domain.evidence import CheckUnit, UnitSource, specification
from orchestrator.domain.model import DeliberationStatus
from orchestrator.testing.evidence_task import CORRECT, CORRECT_AUTHOR, NO_LOWER, TASK
from orchestrator.testing.fakes import FakeGateway, fake_ports
from orchestrator.testing.sandbox_required import CountingSandbox, working_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

ATTACKER = "agent-dev-001"
WRONG = "def clamp(x, low, high):\n    return x\n"  # passes only example 1 (clamp(5, 0, 10) == 5)

# What a forger writes: result lines in the old harness's format (with any marker it can find) and frames in the
# supervisor's format, to every stdout it can reach; then it leaves before any test could fail.
FORGE = r"""
import glob, json, os, sys

def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("latin-1")
    except Exception:
        return ""

def _forge():
    texts = [_read(p) for p in glob.glob("/work/*") + glob.glob("/tmp/*") + glob.glob("*")]
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        texts += [_read(f"/proc/{pid}/{name}") for name in ("environ", "cmdline", "mem")]
    markers = [""]
    for text in texts:
        try:
            markers.append(json.loads(text).get("marker", ""))
        except Exception:
            markers.append(text.strip()[:64])
    ids = ["example-1", "example-2", "example-3"] + [f"{a}:test-{i}" for a in ("agent-dev-002",) for i in (1, 2)]
    lines = ""
    for marker in markers:
        for i in ids:
            lines += marker + json.dumps({"id": i, "passed": True, "failure": ""}) + "\n"
            lines += marker + json.dumps({"begin": i}) + "\n"
            report = {"ok": True, "values": [10]}
            lines += marker + json.dumps({"id": i, "result": "report", "report": report}) + "\n"
    data = lines.encode()
    for target in ["/dev/stdout", "/proc/self/fd/1"] + glob.glob("/proc/[0-9]*/fd/1") + glob.glob("/proc/[0-9]*/fd/3"):
        try:
            fd = os.open(target, os.O_WRONLY)
            os.write(fd, data)
            os.close(fd)
        except Exception:
            pass
    for fd in range(0, 64):
        try:
            os.write(fd, data)
        except Exception:
            pass
    try:
        sys.__stdout__.write(lines)
        sys.__stdout__.flush()
    except Exception:
        pass
    os._exit(0)

_ = _forge()  # an assignment: a bare call would be dropped from the solution as a demonstration
"""

SOLUTIONS = {
    "forge-by-marker-and-frames": WRONG + FORGE,
    # The attack that worked on the in-process harness: the marker from the work dir, "passed" lines, exit 0.
    "forge-by-stdout": WRONG
    + "import json, os, sys\n"
    + "try:\n    _marker = json.load(open('units.json'))['marker']\nexcept Exception:\n    _marker = ''\n"
    + "for _i in ('example-1', 'example-2', 'example-3', 'agent-dev-001:test-1'):\n"
    + "    print(_marker + json.dumps({'id': _i, 'passed': True, 'failure': ''}), file=sys.__stdout__, flush=True)\n"
    + "_ = os._exit(0)\n",
    "eq-always-true": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
        "        return False\n\ndef clamp(x, low, high):\n    return Anything()\n"
    ),
    "int-subclass-eq-always-true": (
        "class Sneaky(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n\n"
        "def clamp(x, low, high):\n    return Sneaky(-999)\n"
    ),
    "exit-0-at-import": "import os\nos._exit(0)\n" + WRONG,
    "patched-builtins": (
        "import builtins\n"
        "class Never(Exception):\n    pass\n"
        "builtins.AssertionError = Never\n"
        "builtins.exec = lambda *a, **k: None\n"
        "builtins.eval = lambda *a, **k: 10\n"
        "_compile = compile\n"
        "builtins.compile = lambda *a, **k: _compile('pass', '<x>', 'exec')\n" + WRONG
    ),
    "patched-report": (
        "import json, os\n"
        "_dumps = json.dumps\n"
        "json.dumps = lambda *a, **k: _dumps({'ok': True, 'values': [10]})\n"
        "os.write = lambda fd, data: len(data)\n"
        "os._exit = lambda code: None\n" + WRONG
    ),
    "kills-its-supervisor": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + WRONG,
}


def proposal(solution: str, tests: str = "assert clamp(3, 0, 10) == 3") -> str:
    return f"The solution:\n```python\n{solution}```\n```python\n# tests\n{tests}\n```\n"


# An agent's test block that tries to make its peers fail: the correct solution's specification must not move.
HOSTILE_TESTS = {
    "kills-the-supervisor": "import os, signal\n_ = os.kill(os.getppid(), signal.SIGKILL)\nassert clamp(1, 0, 2) == 1",
    "kills-every-process": "import os, signal\n_ = os.kill(-1, signal.SIGKILL)\nassert clamp(1, 0, 2) == 1",
    "exits-0": "import os\n_ = os._exit(0)\nassert clamp(1, 0, 2) == 1",
    "patches-builtins-and-files": (
        "import builtins, glob\n"
        "builtins.max = lambda *a, **k: -1\nbuiltins.min = lambda *a, **k: -1\n"
        "_ = [open(p, 'w').write('def clamp(x, low, high):\\n    return -1\\n') for p in glob.glob('/work/*')]\n"
        "_ = open('/tmp/solution.py', 'w').write('def clamp(x, low, high):\\n    return -1\\n')\n"
        "assert clamp(1, 0, 2) == 1"
    ),
    "floods-the-output": (
        "import glob, os\n"
        "def _flood():\n    for p in glob.glob('/proc/[0-9]*/fd/1'):\n        try:\n"
        "            fd = os.open(p, os.O_WRONLY)\n            os.write(fd, b'x' * 2_000_000)\n"
        "        except Exception:\n"
        "            pass\n    return 1\n"
        "_ = _flood()\nassert clamp(1, 0, 2) == 1"
    ),
    "forges-peer-failures": (
        "import json, sys\n"
        "_ = sys.__stdout__.write(json.dumps({'id': 'example-1', 'result': 'ended', 'failure': 'forged'}))\n"
        "assert clamp(1, 0, 2) == 1"
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[BwrapSandbox]:
    yield await working_sandbox()


async def deliberate(sandbox: BwrapSandbox, scripted: dict[str, str], warm: bool = False):  # type: ignore[no-untyped-def]
    """`warm`: the verify stage takes runs started ahead of their job (the sandboxes up, the supervisors waiting
    on stdin); else every run is started for its job."""
    # The peers score the attacker's proposal highest: only the evidence can put the correct one first.
    fake = FakeGateway(scripted=scripted, score_markers={"return x": 10, "Anything": 10, "Sneaky": 10})
    verifier = ExecutionVerifier(sandbox, warm=warm)
    ports = fake_ports(fake, verifier=verifier)
    options = Options(CouncilDefaults("fake-llm", 0.7, 512), default_timeout_s=120, early_stop=True)
    app = compose(ports, options).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    if verifier.warm is not None:
        verifier.warm.fill(3)
        await verifier.warm.settled()
    try:
        result = await app.deliberate(Deliberate(TASK, "DEV", rounds=0))
    finally:
        await verifier.aclose()
    assert result.status is DeliberationStatus.COMPLETED, result.error_message
    if verifier.warm is not None:
        assert verifier.warm.taken == 3  # the solutions ran in the runs started ahead
    return result


def spec_counts(result, author: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    evidence = next(r.evidence for r in result.results if r.proposal.author_id == author)
    spec = [o for o in evidence.outcomes if o.test_id.startswith(("example-", "acceptance-"))]
    return sum(o.passed for o in spec), len(spec)


@pytest.mark.parametrize("warm", [False, True], ids=["started-for-the-job", "started-ahead"])
@pytest.mark.parametrize("attack", sorted(SOLUTIONS))
async def test_a_forging_solution_passes_nothing_it_fails_and_does_not_outrank_the_correct_one(
    sandbox: BwrapSandbox, attack: str, warm: bool
) -> None:
    scripted = {ATTACKER: proposal(SOLUTIONS[attack]), CORRECT_AUTHOR: CORRECT, "agent-dev-003": NO_LOWER}
    result = await deliberate(sandbox, scripted, warm)
    assert result.status is DeliberationStatus.COMPLETED, result.error_message
    assert result.results[0].proposal.author_id == CORRECT_AUTHOR, result.results[0].rank_reason
    assert spec_counts(result, CORRECT_AUTHOR) == (3, 3)
    passed, total = spec_counts(result, ATTACKER)
    assert total == 3 and passed <= 1  # at most clamp(5, 0, 10) == 5, which `return x` does get right


@pytest.mark.parametrize("warm", [False, True], ids=["started-for-the-job", "started-ahead"])
@pytest.mark.parametrize("attack", sorted(HOSTILE_TESTS))
async def test_a_peers_test_block_cannot_fail_the_correct_solutions_specification(
    sandbox: BwrapSandbox, attack: str, warm: bool
) -> None:
    hostile = proposal(WRONG, HOSTILE_TESTS[attack])
    scripted = {ATTACKER: hostile, CORRECT_AUTHOR: CORRECT, "agent-dev-003": NO_LOWER}
    result = await deliberate(sandbox, scripted, warm)
    assert result.status is DeliberationStatus.COMPLETED, result.error_message
    assert result.results[0].proposal.author_id == CORRECT_AUTHOR, result.results[0].rank_reason
    assert spec_counts(result, CORRECT_AUTHOR) == (3, 3)
    correct = next(r.evidence for r in result.results if r.proposal.author_id == CORRECT_AUTHOR)
    # The other blocks' tests still ran against it and passed: the hostile block cost only its own units.
    others = [o for o in correct.outcomes if o.test_id.startswith((CORRECT_AUTHOR, "agent-dev-003"))]
    assert others and all(o.passed for o in others), others
    assert spec_counts(result, ATTACKER)[0] <= 1


async def test_a_block_that_kills_its_run_costs_its_own_units_and_one_more_run(sandbox: BwrapSandbox) -> None:
    counting = CountingSandbox(sandbox)
    units = [
        CheckUnit("example-1", UnitSource.EXAMPLE, "assert clamp(5, 0, 10) == 5"),
        CheckUnit("a:test-1", UnitSource.AGENT, "import os\n_ = os.kill(os.getppid(), 9)\nassert 1", "a"),
        CheckUnit("a:test-2", UnitSource.AGENT, "assert clamp(1, 0, 2) == 1", "a"),
        CheckUnit("b:test-1", UnitSource.AGENT, "assert clamp(12, 0, 10) == 10", "b"),
    ]
    outcomes = await run_units(counting, "def clamp(x, low, high):\n    return max(low, min(x, high))\n", units)
    by_id = {o.test_id: o for o in outcomes}
    assert by_id["example-1"].passed and by_id["b:test-1"].passed
    assert not by_id["a:test-1"].passed and "ended during this test" in by_id["a:test-1"].failure
    assert not by_id["a:test-2"].passed and "earlier test of its block" in by_id["a:test-2"].failure
    assert counting.runs == 2


async def test_a_unit_changes_nothing_for_the_next_one(sandbox: BwrapSandbox) -> None:
    # Each unit in a fresh process: neither a patched builtin nor the solution's state carries over.
    solution = "STATE = []\n\ndef seen():\n    STATE.append(1)\n    return len(STATE)\n"
    patch = "import builtins\nbuiltins.len = lambda x: 0\nassert seen() == 0"
    units = [
        CheckUnit("acceptance-1", UnitSource.ACCEPTANCE, patch),
        CheckUnit("acceptance-2", UnitSource.ACCEPTANCE, "assert seen() == 1"),
        CheckUnit("a:test-1", UnitSource.AGENT, patch, "a"),
        CheckUnit("b:test-1", UnitSource.AGENT, "assert seen() == 1", "b"),
    ]
    outcomes = await run_units(sandbox, solution, units)
    assert [o.passed for o in outcomes] == [True, True, True, True], outcomes


async def test_a_test_failing_every_solution_counts_for_none(sandbox: BwrapSandbox) -> None:
    verifier = ExecutionVerifier(sandbox)
    proposals = {
        "agent-dev-001": proposal(
            "def clamp(x, low, high):\n    return max(low, min(x, high))\n", "assert clamp(1, 0, 2) == 99"
        ),
        "agent-dev-002": proposal(
            "def clamp(x, low, high):\n    return min(max(x, low), high)\n", "assert clamp(1, 0, 2) == 1"
        ),
    }
    found = await verifier.verify(specification(TASK, "", ""), proposals, 0)
    for evidence in found.values():
        ids = {o.test_id for o in evidence.outcomes}
        assert "agent-dev-001:test-1" not in ids and "agent-dev-002:test-1" in ids
        assert all(o.passed for o in evidence.outcomes)
    assert found["agent-dev-001"].group == ("agent-dev-001", "agent-dev-002")


async def test_a_unit_that_ends_its_process_or_hangs_fails_alone(sandbox: BwrapSandbox) -> None:
    solution = "def f(x):\n    return x\n"
    units = [
        CheckUnit("acceptance-1", UnitSource.ACCEPTANCE, "assert f(1) == 1"),
        CheckUnit("acceptance-2", UnitSource.ACCEPTANCE, "import os\nos._exit(0)\nassert f(2) == 2"),
        CheckUnit("acceptance-3", UnitSource.ACCEPTANCE, "while True:\n    pass\nassert f(3) == 3"),
        CheckUnit("acceptance-4", UnitSource.ACCEPTANCE, "assert f(4) == 4"),
    ]
    outcomes = await run_units(sandbox, solution, units)
    assert [o.passed for o in outcomes] == [True, False, False, True], outcomes
    assert "ended" in outcomes[1].failure and "timed out" in outcomes[2].failure


async def test_dates_compare_as_dates_and_an_always_equal_object_still_fails(sandbox: BwrapSandbox) -> None:
    honest = "import datetime\n\ndef f():\n    return datetime.date(2020, 1, 2)\n"
    liar = "class Anything:\n    def __eq__(self, other):\n        return True\n\ndef f():\n    return Anything()\n"
    units = [
        CheckUnit("acceptance-1", UnitSource.ACCEPTANCE, "import datetime\nassert f() == datetime.date(2020, 1, 2)")
    ]
    assert (await run_units(sandbox, honest, units))[0].passed
    assert not (await run_units(sandbox, liar, units))[0].passed
