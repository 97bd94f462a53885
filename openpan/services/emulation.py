"""Emulator mode's state: the request journal, fault rules, simulated remote files and the
switches a test suite turns (``/_openpan/`` is its HTTP face, ``api/control.py``).

It lives in this process's memory (emulator mode is the embedded, one-process shape) and every
change is made without an ``await`` in between, so each control call is atomic.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

JOURNAL_SIZE = 10_000
# Simulated bytes are made in blocks, each from its own seed, so any range is cheap to make.
BLOCK = 64 * 1024


@dataclass
class Fault:
    """A rule that breaks matching requests: one effect among an error envelope, a bare HTTP
    status, a delay before the normal answer, or a dropped connection."""

    id: int
    method: str  # "" matches any
    path: str
    times: int | None  # None: until removed
    probability: float
    error: tuple[int, str] | None = None
    status: int | None = None
    delay_ms: int | None = None
    drop: bool = False
    fired: int = 0

    def describe(self) -> dict[str, Any]:
        """The rule as the control API lists it."""
        rule: dict[str, Any] = {
            "id": self.id,
            "method": self.method or "*",
            "path": self.path,
            "times": self.times,
            "probability": self.probability,
            "fired": self.fired,
        }
        if self.error is not None:
            rule["error"] = {"code": self.error[0], "message": self.error[1]}
        if self.status is not None:
            rule["status"] = self.status
        if self.delay_ms is not None:
            rule["delayMs"] = self.delay_ms
        if self.drop:
            rule["drop"] = True
        return rule


@dataclass
class RemoteFile:
    """A file an offline download reads from memory instead of the network."""

    url: str
    content: bytes | None  # None: ``size`` deterministic bytes
    size: int
    status: int = 200
    content_type: str = "application/octet-stream"
    bytes_per_second: int | None = None

    def read(self, offset: int, length: int) -> bytes:
        """Bytes ``offset`` to ``offset + length`` of the file."""
        if self.content is not None:
            return self.content[offset : offset + length]
        return deterministic_bytes(self.url, offset, min(length, self.size - offset))


def deterministic_bytes(seed: str, offset: int, length: int) -> bytes:
    """``length`` bytes from ``offset`` of the endless byte string that ``seed`` names: the
    same every time, in any pieces."""
    out = bytearray()
    block = offset // BLOCK
    skip = offset - block * BLOCK
    while len(out) < length:
        out += random.Random(f"{seed}#{block}").randbytes(BLOCK)[skip:]
        skip = 0
        block += 1
    return bytes(out[:length])


@dataclass
class Emulation:
    """This process's emulator state (``ctx.part(Emulation)``)."""

    journal: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=JOURNAL_SIZE))
    faults: list[Fault] = field(default_factory=list)
    next_fault: int = 1
    rng: random.Random = field(default_factory=random.Random)
    remotes: dict[str, RemoteFile] = field(default_factory=dict)
    async_uploads: bool = False
    async_polls: int = 0
    # Polls of upload_async_result answered "not yet", by upload.
    polls: dict[str, int] = field(default_factory=dict)

    def match(self, method: str, path: str) -> Fault | None:
        """The first rule for this request that fires now (and count it), if any."""
        for rule in self.faults:
            if rule.path != path or (rule.method and rule.method != method):
                continue
            if rule.times is not None and rule.fired >= rule.times:
                continue
            if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                continue
            rule.fired += 1
            return rule
        return None

    def add_fault(self, **values: Any) -> Fault:
        rule = Fault(id=self.next_fault, **values)
        self.next_fault += 1
        self.faults.append(rule)
        return rule

    def remove_fault(self, fault_id: int) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) != before

    def still_verifying(self, preupload_id: str) -> bool:
        """Whether ``upload_async_result`` should say "not yet" once more for this upload."""
        done = self.polls.get(preupload_id, 0)
        if done >= self.async_polls:
            self.polls.pop(preupload_id, None)
            return False
        self.polls[preupload_id] = done + 1
        return True

    def clear(self, journal_size: int) -> None:
        """Everything back to how emulator mode starts."""
        vars(self).update(vars(Emulation(journal=deque(maxlen=journal_size))))
