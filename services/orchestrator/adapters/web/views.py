"""What the pages show, computed from the domain records the application returns (the same ones gRPC maps):
the rows of the list, a deliberation's proposals, evidence matrix, timeline and per-stage usage, a plan's graph.

Pure functions of domain values; every string in them is still untrusted text, escaped by the templates.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.evidence import ProposalEvidence
from orchestrator.domain.model import Proposal, RankedProposal, Stage

MAX_DIFF_LINES = 400


@dataclass(frozen=True)
class ListRow:
    task_id: str
    role: str
    status: str
    stage: str
    round: int
    rounds: int
    winner: str
    tokens: int
    duration_s: float
    created_at_ms: int
    source: str
    title: str


def elapsed_s(d: Deliberation, now_ms: int) -> float:
    """How long it ran, or, while it runs, has been running."""
    if d.started_at_ms and not d.finished_at_ms and not d.status.finished:
        return max(0, now_ms - d.started_at_ms) / 1000
    return d.duration_ms / 1000


def list_row(d: Deliberation, now_ms: int) -> ListRow:
    first_line = next((line.strip() for line in d.task.description.splitlines() if line.strip()), "")
    return ListRow(
        task_id=d.task_id,
        role=d.task.role.value,
        status=d.status.value,
        stage=d.stage,
        round=d.round,
        rounds=d.task.rounds,
        winner=d.winner_id,
        tokens=d.usage.total_tokens,
        duration_s=elapsed_s(d, now_ms),
        created_at_ms=d.created_at_ms,
        source=d.source,
        title=first_line if len(first_line) <= 90 else first_line[:89] + "…",
    )


# --- the evidence matrix ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    passed: bool
    text: str = ""
    """What the cell shows on hover: a test's failure message, or a probe's value."""
    probe: bool = False
    """A probe's cell: `text` holds the value the call gave; it is not a test and counts in no pass rate."""


@dataclass(frozen=True)
class ColumnGroup:
    label: str
    source: str
    """example | acceptance | agent: the CSS class of the group's header."""
    test_ids: tuple[str, ...]


@dataclass(frozen=True)
class MatrixRow:
    author_id: str
    rank: int
    """0 while the deliberation runs (unranked)."""
    cells: tuple[Cell | None, ...]
    """One per column, in column order; None where the test did not run against this solution."""
    group: str
    """The agreement group's label ("A", "B"...), "" when the solution is in no group."""
    group_index: int
    agreement: int
    skipped: str
    passed: int
    total: int


@dataclass(frozen=True)
class Matrix:
    groups: tuple[ColumnGroup, ...]
    rows: tuple[MatrixRow, ...]
    agreement_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(label, members) of every agreement group with more than nothing in it."""

    @property
    def columns(self) -> int:
        return sum(len(g.test_ids) for g in self.groups)


def _test_sort_key(test_id: str) -> tuple[str, int, str]:
    head, _, number = test_id.rpartition("-")
    return (head, int(number), "") if number.isdigit() else (test_id, 0, test_id)


def _column_groups(evidence: Iterable[ProposalEvidence]) -> tuple[ColumnGroup, ...]:
    ids = {o.test_id for e in evidence for o in e.outcomes}
    examples = sorted((t for t in ids if t.startswith("example-")), key=_test_sort_key)
    acceptance = sorted((t for t in ids if t.startswith("acceptance-")), key=_test_sort_key)
    probes = sorted((t for t in ids if t.startswith("probe-")), key=_test_sort_key)
    groups = []
    if examples:
        groups.append(ColumnGroup("task examples", "example", tuple(examples)))
    if acceptance:
        groups.append(ColumnGroup("acceptance tests", "acceptance", tuple(acceptance)))
    if probes:  # a cell's text is the value the call gave: equal texts, equal behaviour
        groups.append(ColumnGroup("test designer's probes (values)", "probe", tuple(probes)))
    by_author: dict[str, list[str]] = {}
    for t in ids - set(examples) - set(acceptance) - set(probes):
        author = t.split(":", 1)[0] if ":" in t else "unknown"
        by_author.setdefault(author, []).append(t)
    for author in sorted(by_author):
        groups.append(ColumnGroup(f"tests by {author}", "agent", tuple(sorted(by_author[author], key=_test_sort_key))))
    return tuple(groups)


def evidence_matrix(d: Deliberation) -> Matrix:
    """Rows: the ranked solutions (or, while it runs, the latest evidence of each); columns: every test that ran,
    grouped by source; cells: pass/fail with the trimmed failure."""
    if d.results:
        ranked = [(r.proposal.author_id, r.rank, r.evidence) for r in d.results]
    else:
        ranked = [(a, 0, e) for a, e in sorted(d.progress.evidence.items())]
    present = [e for _, _, e in ranked if e is not None]
    groups = _column_groups(present)
    order = [t for g in groups for t in g.test_ids]
    labels = _group_labels(present)
    index = {label: i for i, label in enumerate(labels.values())}
    rows = []
    for author, rank, e in ranked:
        outcomes = {o.test_id: o for o in e.outcomes} if e else {}
        cells = tuple(
            Cell(o.passed, o.value or o.failure, t.startswith("probe-")) if (o := outcomes.get(t)) is not None else None
            for t in order
        )
        tests = [c for c in cells if c is not None and not c.probe]
        group = labels.get(tuple(sorted(e.group)), "") if e and e.group else ""
        rows.append(
            MatrixRow(
                author_id=author,
                rank=rank,
                cells=cells,
                group=group,
                group_index=index.get(group, 0),
                agreement=e.agreement if e else 0,
                skipped=e.skipped if e else "no evidence recorded",
                passed=sum(c.passed for c in tests),
                total=len(tests),
            )
        )
    return Matrix(groups, tuple(rows), tuple((label, members) for members, label in labels.items()))


def _group_labels(evidence: Sequence[ProposalEvidence]) -> dict[tuple[str, ...], str]:
    distinct = sorted({tuple(sorted(e.group)) for e in evidence if e.group}, key=lambda g: (-len(g), g))
    return {members: chr(ord("A") + i) if i < 26 else f"G{i}" for i, members in enumerate(distinct)}


# --- proposals: text and code, revisions and their diffs ----------------------------------------------------------

_FENCE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+.#-]*)[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)


@dataclass(frozen=True)
class Segment:
    """A piece of a proposal: prose (`lang` empty) or a fenced code block in `lang` ("text" when unnamed)."""

    text: str
    lang: str = ""


def segments(content: str) -> list[Segment]:
    out: list[Segment] = []
    at = 0
    for m in _FENCE.finditer(content):
        if m.start() > at and content[at : m.start()].strip():
            out.append(Segment(content[at : m.start()].strip("\n")))
        out.append(Segment(m["body"].rstrip("\n"), (m["lang"] or "text").lower()))
        at = m.end()
    if content[at:].strip():
        out.append(Segment(content[at:].strip("\n")))
    return out


@dataclass(frozen=True)
class DiffLine:
    kind: str
    """add | del | hunk | same"""
    text: str


@dataclass(frozen=True)
class Revision:
    number: int
    text: str
    diff: tuple[DiffLine, ...] = ()
    """Against the revision before it; empty for the first stored version."""
    diff_cut: bool = False


def diff_lines(before: str, after: str) -> tuple[tuple[DiffLine, ...], bool]:
    lines = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        lines.append(DiffLine(kind, line))
    return tuple(lines[:MAX_DIFF_LINES]), len(lines) > MAX_DIFF_LINES


def revisions(p: Proposal, original: str = "") -> list[Revision]:
    """The revisions, each with its diff against the text before it: the one before, or for the first the
    `original` proposal (from the run's checkpoints; "" when unknown: no diff)."""
    out = []
    for i, text in enumerate(p.revisions):
        before = p.revisions[i - 1] if i else original
        diff, cut = diff_lines(before, text) if before else ((), False)
        out.append(Revision(i + 1, text, diff, cut))
    return out


@dataclass(frozen=True)
class ProposalView:
    author_id: str
    rank: int
    content: str
    revisions: list[Revision]
    winner: bool = False
    ranked: RankedProposal | None = None


def proposal_views(d: Deliberation, originals: Mapping[str, str] | None = None) -> list[ProposalView]:
    """The ranked proposals (or, while it runs, the current ones), with their revisions diffed; `originals`:
    each author's first proposal, where known."""
    originals = originals or {}
    if d.results:
        return [
            ProposalView(
                r.proposal.author_id,
                r.rank,
                r.proposal.content,
                revisions(r.proposal, originals.get(r.proposal.author_id, "")),
                winner=r.proposal.author_id == d.winner_id,
                ranked=r,
            )
            for r in d.results
        ]
    return [ProposalView(p.author_id, 0, p.content, revisions(p)) for _, p in sorted(d.progress.proposals.items())]


# --- rounds as a timeline, usage per stage ------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    round: int
    kind: str
    """critique | revision | evidence | failure"""
    actor: str
    target: str
    text: str


def timeline(d: Deliberation) -> list[tuple[int, list[TimelineEntry]]]:
    """Per round: the critiques given, the evidence each proposal had, the failures of agents."""
    entries: list[TimelineEntry] = []
    for e in d.progress.evidence_log:
        passed = sum(o.passed for o in e.outcomes)
        summary = (e.skipped and f"not executed ({e.skipped})") or f"passed {passed} of {len(e.outcomes)} tests"
        entries.append(TimelineEntry(e.round, "evidence", e.author_id, "", summary))
    for c in d.progress.critiques:
        entries.append(TimelineEntry(c.round, "critique", c.critic_id, c.target_id, c.text))
    for f in d.progress.failures:
        entries.append(TimelineEntry(f.round, "failure", f.agent_id, "", f"{f.stage.value}: {f.error}"))
    by_round: dict[int, list[TimelineEntry]] = {}
    for entry in entries:
        by_round.setdefault(entry.round, []).append(entry)
    return sorted(by_round.items())


@dataclass(frozen=True)
class StageUsage:
    label: str
    calls: int
    tokens: int
    seconds: float
    """The slowest call of the stage: its calls run concurrently."""


def stage_usage(d: Deliberation) -> list[StageUsage]:
    grouped: dict[tuple[int, int, str], list[tuple[int, float]]] = {}
    order = {s: i for i, s in enumerate(Stage)}
    for c in d.progress.calls:
        grouped.setdefault((c.round, order[c.stage], c.stage.value), []).append(
            (c.usage.total_tokens, c.latency_ms / 1000)
        )
    return [
        StageUsage(f"{stage} r{rnd}", len(calls), sum(t for t, _ in calls), max(s for _, s in calls))
        for (rnd, _, stage), calls in sorted(grouped.items())
    ]


@dataclass(frozen=True)
class Bar:
    label: str
    y: int
    tokens: int
    tokens_width: int
    seconds: float
    seconds_width: int


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    height: int
    width: int = 640
    bar_space: int = 240
    """Pixels for the longest bar of each kind."""


def usage_chart(usage: Sequence[StageUsage]) -> Chart:
    most_tokens = max((u.tokens for u in usage), default=0) or 1
    most_seconds = max((u.seconds for u in usage), default=0.0) or 1.0
    bars = tuple(
        Bar(
            u.label,
            24 + 22 * i,
            u.tokens,
            max(1, round(240 * u.tokens / most_tokens)),
            u.seconds,
            max(1, round(240 * u.seconds / most_seconds)),
        )
        for i, u in enumerate(usage)
    )
    return Chart(bars, 34 + 22 * len(bars))
