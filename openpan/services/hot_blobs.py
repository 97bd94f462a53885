"""Small blobs kept in memory while they are popular.

An image host serves the same few small images over and over; answering those from memory
saves opening and reading a file per request. Blobs never change once written (a new upload
gets a new key), so an entry never goes stale; it only leaves when memory is needed for others.
Large blobs are never held here: they are streamed from the store.
"""

from __future__ import annotations

from collections import OrderedDict


class HotBlobs:
    """A least-recently-used set of whole small blobs, bounded in total bytes."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._total = 0

    def get(self, key: str) -> bytes | None:
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
        return data

    def put(self, key: str, data: bytes, budget: int) -> None:
        """Keep ``data`` for ``key`` within ``budget`` bytes in all, dropping the least
        recently used entries to make room."""
        if len(data) > budget or key in self._entries:
            return
        while self._entries and self._total + len(data) > budget:
            _, dropped = self._entries.popitem(last=False)
            self._total -= len(dropped)
        self._entries[key] = data
        self._total += len(data)

    def discard(self, key: str) -> None:
        data = self._entries.pop(key, None)
        if data is not None:
            self._total -= len(data)

    @property
    def total(self) -> int:
        return self._total
