"""Identifiers handed to clients."""

from __future__ import annotations

import random
import secrets
import time
import uuid

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_RANDOM_SPAN = 36**21


def _base36(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 36)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def sortable_id() -> str:
    """An opaque ID (image-bed files, copy tasks) that sorts by creation time.

    11 base36 digits of microseconds, then 21 random ones: later IDs sort after earlier ones,
    which keeps the ``lastFileId`` cursor stable while files come and go. The random part is
    drawn at once (one system call, not one a digit).
    """
    micros = time.time_ns() // 1000
    return _base36(micros, 11) + _base36(secrets.randbelow(_RANDOM_SPAN), 21)


def preupload_id() -> str:
    """An upload session ID: unguessable, URL-safe."""
    return secrets.token_urlsafe(32)


def trace_id() -> str:
    """The ``x-traceID`` of an answer: a version-4 UUID, as the real service sends. Drawn from
    ``random``, not the system's source: it must tell answers apart, not be unguessable, and
    every answer has one (a system call each let other threads take the GIL)."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def client_id() -> str:
    return secrets.token_hex(16)


def client_secret() -> str:
    return secrets.token_hex(32)
