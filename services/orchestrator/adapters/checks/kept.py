"""A bounded mapping that forgets its least recently used entry first: what the checks keep of their earlier
results (verdicts.py, checker.py)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Kept(Generic[K, V]):
    """At most `limit` entries (0 keeps none); `get` and `put` make an entry the most recently used."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"the number of entries kept must be 0 or more, got {limit}")
        self._limit = limit
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if not self._limit:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)
