"""Identifiers handed to clients."""

from __future__ import annotations

import secrets
import time
import uuid

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 36)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def sortable_id() -> str:
    """An opaque ID (image-bed files, copy tasks) that sorts by creation time.

    11 base36 digits of microseconds, then 22 random ones: later IDs sort after earlier ones,
    which keeps the ``lastFileId`` cursor stable while files come and go.
    """
    micros = time.time_ns() // 1000
    return _base36(micros, 11) + "".join(secrets.choice(_ALPHABET) for _ in range(21))


def preupload_id() -> str:
    """An upload session ID: unguessable, URL-safe."""
    return secrets.token_urlsafe(32)


def trace_id() -> str:
    return str(uuid.uuid4())


def client_id() -> str:
    return secrets.token_hex(16)


def client_secret() -> str:
    return secrets.token_hex(32)
