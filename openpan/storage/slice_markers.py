"""The markers that say a slice of a local upload is complete: ``parts/<n>-<size>-w<token>``.

A marker is made only after all of its slice's bytes are written, and removed before the slice
is written again, so the directory listing is the set of complete slices. The token is unique
to the write that made the marker, so a marker's name changes whenever its slice may hold new
bytes (the running md5 relies on it), even when a slice is sent again with the same md5.

The slice's md5 is the marker's content. It is written with the marker when the caller checked
it already (the cloud disk's V2 ``sliceMD5``); otherwise the marker starts empty: hashing every
slice as it arrives would cost a whole md5 pass per upload that hardly anyone asks for, so
``list_upload_parts`` hashes a slice the first time it needs its md5 and keeps it there.
Markers made before this scheme carry the md5 as their tag (``<n>-<size>-<md5>``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

_MD5 = re.compile(r"[0-9a-f]{32}")
_NAME = re.compile(r"([0-9]+)-([0-9]+)-(w[0-9a-f]+|[0-9a-f]{32})")


def new_marker(parts: Path, number: int, size: int, md5: str | None = None) -> None:
    """Mark slice ``number`` of ``size`` bytes complete, with its md5 when it is known."""
    path = parts / f"{number}-{size}-w{secrets.token_hex(8)}"
    path.write_bytes(md5.encode("ascii") if md5 is not None and _MD5.fullmatch(md5) else b"")


def read_markers(parts: Path) -> dict[int, str]:
    """Slice number → marker name, for the complete slices under ``parts``."""
    found: dict[int, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(parts):
            if match := _NAME.fullmatch(name):
                found[int(match[1])] = name
    return found


def marker_size(name: str) -> int:
    """The slice size a marker name records."""
    return int(name.split("-", 2)[1])


def known_md5(parts: Path, name: str) -> str | None:
    """The md5 the marker ``name`` holds (in its name or, once computed, its content), if any;
    ``None`` also when the marker is gone."""
    tag = name.split("-", 2)[2]
    if _MD5.fullmatch(tag):
        return tag
    try:
        content = (parts / name).read_bytes()[:64].decode("ascii", "replace").strip()
    except FileNotFoundError:
        return None
    return content if _MD5.fullmatch(content) else None


def keep_md5(parts: Path, name: str, md5: str) -> None:
    """Write ``md5`` into the marker ``name`` for the next listing. A marker that is gone (its
    slice is being written again) is not made again."""
    try:
        fd = os.open(parts / name, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        os.write(fd, md5.encode("ascii"))
    finally:
        os.close(fd)
