"""A task with doctest examples and three scripted proposals for the evidence-driven protocol's tests: one correct
solution and two subtly wrong ones, each with its own tests. Used with `FakeGateway.scripted` and the fake LLM
server's `scripted_proposals`; `PEERS_PREFER_WRONG` makes peer review score the wrong ones highest."""

from __future__ import annotations

TASK = '''Implement `clamp(x, low, high)`: `x` limited to the closed range [low, high].

```python
def clamp(x: int, low: int, high: int) -> int:
    """
    >>> clamp(5, 0, 10)
    5
    >>> clamp(-3, 0, 10)
    0
    >>> clamp(12, 0, 10)
    10
    """
```
'''

CORRECT = """The solution:
```python
def clamp(x: int, low: int, high: int) -> int:
    return max(low, min(x, high))
```
```python
# tests
assert clamp(10, 0, 10) == 10
assert clamp(0, 0, 10) == 0
```
"""
# Subtly wrong: the upper bound is exclusive.
OFF_BY_ONE = """The solution:
```python
def clamp(x: int, low: int, high: int) -> int:
    return max(low, min(x, high - 1))
```
```python
# tests
assert clamp(5, 0, 10) == 5
```
"""
# Subtly wrong: forgets the lower bound.
NO_LOWER = """The solution:
```python
def clamp(x: int, low: int, high: int) -> int:
    return min(x, high)
```
```python
# tests
assert clamp(3, 0, 10) == 3
```
"""


SCRIPTED = {"agent-dev-001": OFF_BY_ONE, "agent-dev-002": CORRECT, "agent-dev-003": NO_LOWER}
CORRECT_AUTHOR = "agent-dev-002"
PEERS_PREFER_WRONG = {"high - 1": 10, "return min(x, high)": 10, "max(low, min(x, high))": 2}
