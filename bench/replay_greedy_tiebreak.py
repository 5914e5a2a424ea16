"""Replays ranking key 6 (the greedy answer, `domain/ranking.py`) on recorded council rows of `bench/quality.py`.

Among the candidates equal to the recorded winner on the keys before it (policy, answers the task, specification,
behaviour group, agreement), the unrevised greedy proposal (`agent-dev-001`, the first DEV agent) goes first.
Prints every problem whose winner that changes, whether the change passes the hidden tests, and the totals. Rows
recorded before the greedy first proposal existed (commit 9dffcb4) have no greedy proposal: their first agent
sampled like the others, and a replay of them says nothing.

    python bench/replay_greedy_tiebreak.py bench/results/quality-pilot-v4-dev.rows.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GREEDY = "agent-dev-001"


def evidence_key(candidate: dict[str, Any]) -> tuple[object, ...]:
    execution, evidence = candidate["execution"], candidate["evidence"]
    passed, total = execution.get("spec") or (0, 0)
    answers = execution.get("defines_task", True)
    group = len(execution.get("behaviour_group") or ()) if answers else 0
    return (
        not evidence.get("policy_violations"),
        answers,
        total > 0 and passed == total,
        passed,
        group,
        execution.get("agreement", 0),
    )


def replay(rows: list[dict[str, Any]]) -> dict[str, Any]:
    changed: list[tuple[str, bool, bool]] = []
    ties = 0
    for row in rows:
        candidates = row["council"]["candidates"]
        if not candidates:
            continue
        winner = candidates[0]
        top = [c for c in candidates if evidence_key(c) == evidence_key(winner)]
        greedy = [c for c in top if c["agent"] == GREEDY and c["revisions"] == 0 and not c["execution"].get("skipped")]
        if len(top) < 2 or not greedy:
            continue
        ties += 1
        if greedy[0] is not winner:
            changed.append((row["task_id"], bool(winner["passed"]), bool(greedy[0]["passed"])))
    return {
        "problems": len(rows),
        "ties_with_greedy": ties,
        "changed": changed,
        "gained": sum(1 for _, before, after in changed if after and not before),
        "lost": sum(1 for _, before, after in changed if before and not after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=Path)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    result = replay(rows)
    for task_id, before, after in result["changed"]:
        if before != after:
            print(
                f"{task_id}: the recorded winner {'passes' if before else 'fails'} the hidden tests, the greedy "
                f"answer {'passes' if after else 'fails'} them"
            )
    print(
        f"{result['problems']} problems; {result['ties_with_greedy']} ties at the top hold the unrevised greedy "
        f"answer; its key changes {len(result['changed'])} winners: {result['gained']} gained, {result['lost']} lost"
    )


if __name__ == "__main__":
    main()
